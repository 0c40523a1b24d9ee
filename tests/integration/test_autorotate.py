"""Automatic server-certificate rotation by dbtlsd's scheduler (issue 5), with a real
PostgreSQL 15 behind the front and real clients (pgbench, psql, openssl s_client):

- a shared-mode instance whose server certificate lives 2 minutes is rotated at half-life while
  two pgbench runs go through the front (4 long-lived clients, and 2 clients opening a new
  TLS connection per transaction with -C), with verify-full against the unchanged
  server-ca.pem: zero failed transactions, zero failed connections, and the certificate that
  `openssl s_client -starttls postgres` sees changes serial;
- per-instance mode gets an upcoming server CA and an event telling the owner what to do;
- manual rotation only raises an event; the policy flags are validated.
"""
import os
import re
import subprocess
import threading
import time

from cli_helpers import use_template

PG_BIN = "/usr/lib/postgresql/15/bin"


def conninfo(port, ca, user="alice", password="alice-secret-1"):
    return (f"host=localhost port={port} user={user} password={password} dbname=app "
            f"sslmode=verify-full sslrootcert={ca}")


def presented_serial(port):
    """Serial of the certificate the front presents (openssl s_client -starttls postgres)."""
    cp = subprocess.run(["openssl", "s_client", "-starttls", "postgres", "-connect",
                         f"127.0.0.1:{port}", "-servername", "localhost"],
                        input="", capture_output=True, text=True, timeout=20)
    m = re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", cp.stdout, re.S)
    assert m, f"s_client printed no certificate:\n{cp.stdout}\n{cp.stderr}"
    x = subprocess.run(["openssl", "x509", "-noout", "-serial"], input=m.group(0),
                       capture_output=True, text=True, timeout=20, check=True)
    return x.stdout.strip().split("=", 1)[1].upper()


def slots(dbtls, name, kind="server-certs"):
    return {c["slot"]: c for c in dbtls.json("ssl", kind, "list", "--instance", name)}


def events(dbtls, action):
    return [e for e in dbtls.json("events", "list") if e["action"] == action]


def test_two_minute_cert_rotated_under_pgbench(pg_server, dbtls, dbtlsd, state_dir, tmp_dir,
                                               free_port):
    use_template(dbtls)
    port = free_port()
    # 120 s validity; the default lead (90 days) covers the whole lifetime, so the half-life
    # (60 s) decides
    dbtls("instances", "create", "auto1", "--engine", "postgres", "--engine-version", "15",
          "--listen", f"127.0.0.1:{port}", "--backend", f"127.0.0.1:{pg_server.port}",
          "--endpoint", "localhost", "--ssl-mode", "ENCRYPTED_ONLY", "--validity", "120")
    ca = os.path.join(tmp_dir, "server-ca.pem")
    dbtls("ssl", "server-ca-certs", "download", "--instance", "auto1", "--out", ca)
    first = slots(dbtls, "auto1")["active"]["certSerialNumber"]

    d = dbtlsd.start(state_dir, ["--workers", "2", "--scheduler-interval", "1"])
    assert presented_serial(port) == first
    env = dict(os.environ, PGPASSWORD="alice-secret-1")
    ci = conninfo(port, ca)
    cp = subprocess.run([f"{PG_BIN}/pgbench", "-i", "-s", "1", ci], capture_output=True,
                        text=True, timeout=120, env=env)
    assert cp.returncode == 0, cp.stderr

    duration = 150
    runs = {}

    def bench(key, args):
        runs[key] = subprocess.run([f"{PG_BIN}/pgbench", *args, "-T", str(duration), ci],
                                   capture_output=True, text=True, timeout=duration + 60,
                                   env=env)

    t1 = threading.Thread(target=bench, args=("steady", ["-c", "4", "-j", "2"]))
    t2 = threading.Thread(target=bench, args=("connect", ["-C", "-c", "2", "-j", "1", "-S"]))
    t1.start()
    t2.start()
    seen = [first]
    t_end = time.monotonic() + duration + 60
    while (t1.is_alive() or t2.is_alive()) and time.monotonic() < t_end:
        s = presented_serial(port)
        if s != seen[-1]:
            seen.append(s)
        time.sleep(2)
    t1.join(timeout=120)
    t2.join(timeout=120)

    for key in ("steady", "connect"):
        cp = runs[key]
        assert cp.returncode == 0, f"pgbench {key}: {cp.stderr}"
        assert "number of failed transactions: 0" in cp.stdout, cp.stdout
        assert "aborted" not in cp.stderr and "connection to server" not in cp.stderr, cp.stderr
        m = re.search(r"number of transactions actually processed: (\d+)", cp.stdout)
        assert m and int(m.group(1)) > 0, cp.stdout
    # the front presented at least one new certificate while the benches ran (rotated at
    # half-life: about 60 s after issue, then again 60 s later)
    assert len(seen) >= 2, seen
    rotated = events(dbtls, "server-cert.auto-rotate")
    assert rotated, dbtls("events", "list").stdout
    assert all(e["actor"] == "dbtlsd" for e in rotated)
    assert f"previous={first}" in rotated[0]["detail"]
    assert "server cert auto-rotated" in rotated[0]["detail"]
    now = slots(dbtls, "auto1")
    assert now["active"]["certSerialNumber"] == seen[-1]
    assert now["active"]["certSerialNumber"] != first
    assert "previous" in now
    # the new certificate lives as long as the first one did (2 minutes)
    assert "server certificate auto-rotated" in d.log()
    d.stop()


def test_per_instance_upcoming_ca_and_event(dbtls, dbtlsd, state_dir, free_port):
    use_template(dbtls)
    dbtls("instances", "create", "own", "--engine", "postgres", "--listen",
          f"127.0.0.1:{free_port()}", "--backend", "127.0.0.1:5432", "--endpoint", "own.local",
          "--ca-mode", "per-instance", "--ca-validity", "6", "--validity", "6")
    before = slots(dbtls, "own", "server-ca-certs")
    assert set(before) == {"active"}
    active = before["active"]["certSerialNumber"]
    d = dbtlsd.start(state_dir, ["--scheduler-interval", "1"])
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not events(dbtls, "server-ca.expiring"):
        time.sleep(0.5)
    ev = events(dbtls, "server-ca.expiring")
    assert len(ev) == 1, ev
    after = slots(dbtls, "own", "server-ca-certs")
    assert set(after) == {"active", "upcoming"}
    # per-instance mode never rotates by itself: the owner distributes server-ca.pem first
    assert after["active"]["certSerialNumber"] == active
    up = after["upcoming"]["certSerialNumber"]
    assert f"server CA {active} expires" in ev[0]["detail"]
    assert f"upcoming server CA {up} added" in ev[0]["detail"]
    assert "distribute server-ca.pem" in ev[0]["detail"] and "rotate" in ev[0]["detail"]
    time.sleep(3)  # raised once, not every tick
    assert len(events(dbtls, "server-ca.expiring")) == 1
    assert not events(dbtls, "server-cert.auto-rotate")
    d.stop()
    # a restart does not raise it again either
    d = dbtlsd.start(state_dir, ["--scheduler-interval", "1"])
    time.sleep(2.5)
    assert len(events(dbtls, "server-ca.expiring")) == 1
    d.stop()


def test_manual_policy_only_warns(dbtls, dbtlsd, state_dir, free_port):
    use_template(dbtls)
    dbtls("instances", "create", "man", "--engine", "postgres", "--listen",
          f"127.0.0.1:{free_port()}", "--backend", "127.0.0.1:5432", "--endpoint", "man.local",
          "--validity", "6", "--server-cert-rotation", "manual")
    first = slots(dbtls, "man")["active"]["certSerialNumber"]
    pol = [e for e in dbtls.json("events", "list") if e["action"] == "instance.rotation-policy"]
    assert pol and "server_cert_rotation=manual" in pol[-1]["detail"]
    d = dbtlsd.start(state_dir, ["--scheduler-interval", "1"])
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not events(dbtls, "server-cert.expiring"):
        time.sleep(0.5)
    time.sleep(2)
    ev = events(dbtls, "server-cert.expiring")
    assert len(ev) == 1 and first in ev[0]["detail"] and "manual" in ev[0]["detail"]
    assert slots(dbtls, "man")["active"]["certSerialNumber"] == first
    assert not events(dbtls, "server-cert.auto-rotate")
    # switching the policy to auto (patch with only the policy flag) rotates at the next tick
    dbtls("instances", "patch", "man", "--server-cert-rotation", "auto")
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not events(dbtls, "server-cert.auto-rotate"):
        time.sleep(0.5)
    assert events(dbtls, "server-cert.auto-rotate")
    assert slots(dbtls, "man")["active"]["certSerialNumber"] != first
    d.stop()


def test_policy_flags_validated(dbtls, free_port):
    use_template(dbtls)
    base = ["instances", "create", "v1", "--engine", "postgres", "--listen",
            f"127.0.0.1:{free_port()}", "--backend", "127.0.0.1:5432", "--endpoint", "v.local"]
    cp = dbtls.fail(*base, "--server-cert-rotation", "sometimes")
    assert 'server certificate rotation "sometimes" is not valid; use auto or manual' in cp.stderr
    dbtls.fail(*base, "--rotation-lead", "-3", rc=2)
    dbtls.fail(*base, "--rotation-lead", "99999", rc=2)
    # nothing was created by the refused commands
    assert dbtls.json("instances", "list") == []
    dbtls(*base, "--rotation-lead", "30")
    pol = [e for e in dbtls.json("events", "list") if e["action"] == "instance.rotation-policy"]
    assert "rotation_lead_days=30" in pol[-1]["detail"]
    assert "server_cert_rotation=default" in pol[-1]["detail"]
    cp = dbtls.fail("instances", "patch", "nosuch", "--rotation-lead", "10")
    assert 'instance "nosuch"' in cp.stderr
