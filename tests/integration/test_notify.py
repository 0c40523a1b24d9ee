"""Event delivery from dbtlsd's scheduler thread (issue 5): --notify-command (the event as JSON
on stdin of /bin/sh -c CMD) and --notify-webhook URL (HTTP POST of the JSON), in order, at least
once, retried with exponential backoff, with a delivered marker in the store so that a restart
neither loses nor repeats events. Automatic actions (client certificate nearing expiry) are
events like any change.
"""
import http.server
import json
import os
import threading
import time

import pytest

from cli_helpers import use_template


def read_events(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def wait_for(pred, timeout=15.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


def make_instance(dbtls, free_port, name="n1"):
    dbtls("instances", "create", name, "--engine", "postgres", "--listen",
          f"127.0.0.1:{free_port()}", "--backend", "127.0.0.1:5432", "--endpoint",
          f"{name}.local")


def test_notify_command_in_order_once_across_restart(dbtls, dbtlsd, state_dir, tmp_dir,
                                                     free_port):
    use_template(dbtls)
    make_instance(dbtls, free_port)
    out = os.path.join(tmp_dir, "events.jsonl")
    args = ["--scheduler-interval", "1", "--notify-command", f"cat >> '{out}'"]
    d = dbtlsd.start(state_dir, args)
    # a new sink starts after the existing history (init, instance.create are not sent)
    dbtls("ssl", "client-certs", "create", "app", "--instance", "n1", "--out-dir",
          os.path.join(tmp_dir, "app"))
    ev = wait_for(lambda: read_events(out), what="the first event")
    assert [e["action"] for e in ev] == ["client-cert.create"]
    e = ev[0]
    assert e["object"] == "instance/n1/client-cert/app" and e["instance"] == "n1"
    assert set(e) == {"id", "time", "actor", "action", "object", "instance", "detail"}
    listed = {x["id"]: x for x in dbtls.json("events", "list")}
    assert listed[e["id"]]["detail"] == e["detail"]
    assert listed[e["id"]]["time"] == e["time"]

    # automatic action: a short-lived client certificate raises "expiring" once
    dbtls("ssl", "client-certs", "create", "short", "--instance", "n1", "--out-dir",
          os.path.join(tmp_dir, "short"), "--validity", "4")
    wait_for(lambda: any(x["action"] == "client-cert.expiring" for x in read_events(out)),
             what="client-cert.expiring")
    exp = [x for x in read_events(out) if x["action"] == "client-cert.expiring"]
    assert len(exp) == 1 and exp[0]["actor"] == "dbtlsd"
    assert exp[0]["object"] == "instance/n1/client-cert/short"
    d.stop()

    # changes while the daemon is down are delivered after the restart, earlier ones are not
    # delivered again
    dbtls("ssl", "client-certs", "delete", "app", "--instance", "n1")
    dbtls("instances", "patch", "n1", "--ssl-mode", "ENCRYPTED_ONLY")
    d = dbtlsd.start(state_dir, args)
    wait_for(lambda: any(x["action"] == "instance.patch" for x in read_events(out)),
             what="the events made while the daemon was down")
    time.sleep(2)  # a few more ticks: nothing is repeated
    got = read_events(out)
    ids = [x["id"] for x in got]
    assert ids == sorted(set(ids)), ids  # in order, no repeats
    all_ids = [x["id"] for x in dbtls.json("events", "list")]
    assert ids == [i for i in all_ids if i >= ids[0]]  # nothing lost
    assert len([x for x in got if x["action"] == "client-cert.expiring"]) == 1
    assert "resumes after event" in d.log()
    d.stop()


def test_backend_client_cert_expiring_is_an_event(dbtls, dbtlsd, state_dir, tmp_dir,
                                                   free_port):
    """The certificate file dbtlsd shows a TLS backend (--backend-tls-cert) is the operator's to
    renew; past its renewal point the scheduler says so once per certificate, like dbtls's own."""
    use_template(dbtls)
    make_instance(dbtls, free_port, "n0")
    short = os.path.join(tmp_dir, "short")
    dbtls("ssl", "client-certs", "create", "front", "--instance", "n0", "--out-dir", short,
          "--validity", "6")
    ca = os.path.join(tmp_dir, "ca.pem")
    dbtls("ssl", "server-ca-certs", "download", "--instance", "n0", "--out", ca)
    cert = os.path.join(short, "client-cert.pem")
    dbtls("instances", "create", "n1", "--engine", "postgres", "--listen",
          f"127.0.0.1:{free_port()}", "--backend", "localhost:5432", "--endpoint", "n1.local",
          "--backend-tls-ca", ca, "--backend-tls-cert", cert,
          "--backend-tls-key", os.path.join(short, "client-key.pem"))
    out = os.path.join(tmp_dir, "events.jsonl")
    d = dbtlsd.start(state_dir, ["--scheduler-interval", "1", "--notify-command",
                                 f"cat >> '{out}'"])
    wait_for(lambda: any(x["action"] == "backend-client-cert.expiring"
                         for x in read_events(out)), what="backend-client-cert.expiring")
    time.sleep(2.5)  # more ticks: said once
    got = [x for x in read_events(out) if x["action"] == "backend-client-cert.expiring"]
    assert len(got) == 1, got
    e = got[0]
    assert e["object"] == "instance/n1/backend-client-cert" and e["instance"] == "n1", e
    assert e["actor"] == "dbtlsd"
    assert f'"{cert}"' in e["detail"] and "replace the file" in e["detail"], e["detail"]
    d.stop()


def test_notify_command_failure_retried_with_backoff(dbtls, dbtlsd, state_dir, tmp_dir,
                                                     free_port):
    use_template(dbtls)
    make_instance(dbtls, free_port)
    out = os.path.join(tmp_dir, "events.jsonl")
    tries = os.path.join(tmp_dir, "tries")
    # fails twice (exit 3), then appends the event
    cmd = (f"echo x >> '{tries}'; [ $(wc -l < '{tries}') -gt 2 ] || exit 3; "
           f"cat >> '{out}'")
    d = dbtlsd.start(state_dir, ["--scheduler-interval", "1", "--notify-command", cmd])
    t0 = time.monotonic()
    dbtls("instances", "patch", "n1", "--max-client-certs", "5")
    ev = wait_for(lambda: read_events(out), timeout=20, what="delivery after retries")
    took = time.monotonic() - t0
    assert [x["action"] for x in ev] == ["instance.patch"]
    # the command wrote the event before it exited; dbtlsd logs the delivery after that
    d.wait_log("delivered after 2 failed attempts")
    log = d.log()
    assert "(attempt 1): notify command exited with status 3; retrying in 1000 ms" in log
    assert "(attempt 2): notify command exited with status 3; retrying in 2000 ms" in log
    assert "delivered after 2 failed attempts" in log
    assert took >= 2.5  # 1 s then 2 s of backoff
    with open(tries) as f:
        assert len(f.read().split()) == 3


class Hook(http.server.BaseHTTPRequestHandler):
    """Answers 500 to the first `fail` POSTs, then 204; records bodies and headers."""

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(n)
        srv = self.server
        with srv.lock:
            srv.attempts += 1
            ok = srv.attempts > srv.fail
            if ok:
                srv.bodies.append(json.loads(body))
                srv.ctypes.append(self.headers.get("Content-Type"))
        self.send_response(204 if ok else 500)
        self.end_headers()

    def log_message(self, *a):
        pass


@pytest.fixture
def webhook():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    srv.lock = threading.Lock()
    srv.attempts = 0
    srv.fail = 2
    srv.bodies = []
    srv.ctypes = []
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    t.join(timeout=5)


def test_webhook_fails_then_succeeds(dbtls, dbtlsd, state_dir, tmp_dir, free_port, webhook):
    use_template(dbtls)
    make_instance(dbtls, free_port)
    url = f"http://127.0.0.1:{webhook.server_address[1]}/hook"
    d = dbtlsd.start(state_dir, ["--scheduler-interval", "1", "--notify-webhook", url])
    dbtls("ssl", "server-certs", "create", "--instance", "n1")
    dbtls("ssl", "server-certs", "rotate", "--instance", "n1")
    wait_for(lambda: len(webhook.bodies) >= 2, timeout=20, what="two webhook deliveries")
    actions = [b["action"] for b in webhook.bodies]
    assert actions == ["server-cert.create", "server-cert.rotate"]
    assert webhook.attempts == 4  # 2 refused + 2 accepted
    assert webhook.ctypes == ["application/json"] * 2
    assert webhook.bodies[0]["id"] < webhook.bodies[1]["id"]
    d.wait_log("delivered after 2 failed attempts")  # logged once the answer is read
    log = d.log()
    assert "not delivered to the webhook (attempt 1)" in log and "HTTP 500" in log
    assert "delivered after 2 failed attempts" in log
    d.stop()
    # the marker survived: a restart sends nothing again
    before = webhook.attempts
    d = dbtlsd.start(state_dir, ["--scheduler-interval", "1", "--notify-webhook", url])
    time.sleep(2.5)
    assert webhook.attempts == before
    d.stop()


def test_notify_flags_validated(dbtlsd_bin, state_dir, dbtls):
    import subprocess
    use_template(dbtls)
    cp = subprocess.run([dbtlsd_bin, "--state-dir", state_dir, "--notify-webhook", "ftp://x"],
                        capture_output=True, text=True, timeout=20)
    assert cp.returncode == 2 and "is not an http:// or https:// URL" in cp.stderr
    cp = subprocess.run([dbtlsd_bin, "--state-dir", state_dir, "--scheduler-interval", "0",
                         "--notify-command", "true"], capture_output=True, text=True, timeout=20)
    assert cp.returncode == 2 and "need the scheduler" in cp.stderr
    cp = subprocess.run([dbtlsd_bin, "--state-dir", state_dir, "--scheduler-interval", "x"],
                        capture_output=True, text=True, timeout=20)
    assert cp.returncode == 2 and "--scheduler-interval" in cp.stderr
