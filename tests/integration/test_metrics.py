"""GET /metrics on dbtlsd's admin socket (issue 5), scraped and parsed with the Prometheus
text-format parser of prometheus_client (Debian python3-prometheus-client):

- certificate expiry gauges for every shared CA, server certificate slot, per-instance server
  CA, client CA and client certificate, compared with `dbtls ... --format json` listings;
- handshakes by result and reason, connections open by TLS version and cipher, bytes each way
  (monotonic), reloads and reload failures, build info; a real PostgreSQL 15 behind the front.
"""
import calendar
import os
import re
import socket
import subprocess
import time

import psycopg
import pytest

from api_client import admin_http as http, samples, scrape
from cli_helpers import use_template


def unix(rfc3339):
    return calendar.timegm(time.strptime(rfc3339, "%Y-%m-%dT%H:%M:%SZ"))


def conninfo(port, ca, user="alice"):
    return (f"host=localhost port={port} user={user} password=alice-secret-1 dbname=app "
            f"sslmode=verify-full sslrootcert={ca}")


@pytest.fixture
def setup(pg_server, dbtls, dbtlsd, state_dir, tmp_dir, free_port):
    use_template(dbtls)
    port = free_port()
    dbtls("instances", "create", "m1", "--engine", "postgres", "--engine-version", "15",
          "--listen", f"127.0.0.1:{port}", "--backend", f"127.0.0.1:{pg_server.port}",
          "--endpoint", "localhost", "--ssl-mode", "ENCRYPTED_ONLY")
    dbtls("ssl", "server-certs", "create", "--instance", "m1")  # an upcoming slot too
    dbtls("ssl", "client-certs", "create", "app", "--instance", "m1", "--out-dir",
          os.path.join(tmp_dir, "app"), "--validity", "3600")
    dbtls("instances", "create", "own", "--engine", "postgres", "--listen",
          f"127.0.0.1:{free_port()}", "--backend", "127.0.0.1:5432", "--endpoint", "own.local",
          "--ca-mode", "per-instance")
    ca = os.path.join(tmp_dir, "ca.pem")
    dbtls("ssl", "server-ca-certs", "download", "--instance", "m1", "--out", ca)
    # no scheduler: nothing may change what the listings show while the test compares
    d = dbtlsd.start(state_dir, ["--workers", "2", "--scheduler-interval", "0"])
    return d, port, ca


def test_expiry_gauges_match_listings(setup, dbtls):
    d, port, ca = setup
    fams, text = scrape(d)
    now = time.time()
    exp = "dbtls_certificate_expiry_seconds"
    assert fams[exp].type == "gauge"
    seen = 0

    def check(sample_list, not_after, what):
        assert len(sample_list) == 1, f"{what}: {sample_list}\n{text}"
        s = sample_list[0]
        assert abs(s.value - (not_after - now)) <= 5, (what, s.value, not_after - now)
        ts = samples(fams, "dbtls_certificate_expiry_timestamp_seconds", **s.labels)
        assert len(ts) == 1 and ts[0].value == not_after, (what, ts)

    for c in dbtls.json("cas", "list"):
        check(samples(fams, exp, kind="root-ca", name=c["certificateIdentifier"], instance=""),
              unix(c["validTill"]), c["certificateIdentifier"])
        seen += 1
    assert seen == 3
    assert len(samples(fams, exp, kind="intermediate-ca")) == 3  # one region per CA
    for inst in ("m1", "own"):
        for c in dbtls.json("ssl", "server-certs", "list", "--instance", inst):
            check(samples(fams, exp, instance=inst, kind="server-cert", slot=c["slot"],
                          serial=c["certSerialNumber"]),
                  unix(c["expirationTime"]), f"{inst} server cert {c['slot']}")
            seen += 1
    slots_m1 = {s.labels["slot"] for s in samples(fams, exp, instance="m1", kind="server-cert")}
    assert slots_m1 == {"active", "upcoming"}
    for c in dbtls.json("ssl", "server-ca-certs", "list", "--instance", "own"):
        check(samples(fams, exp, instance="own", kind="server-ca", slot=c["slot"],
                      serial=c["certSerialNumber"]),
              unix(c["expirationTime"]), f"own server CA {c['slot']}")
    # shared-mode slots are signed by the shared intermediate: no per-instance server CA
    assert samples(fams, exp, instance="m1", kind="server-ca") == []
    for c in dbtls.json("ssl", "client-certs", "list", "--instance", "m1"):
        check(samples(fams, exp, instance="m1", kind="client-cert", name=c["name"],
                      serial=c["certSerialNumber"]),
              unix(c["expirationTime"]), f"client cert {c['name']}")
    app = samples(fams, exp, instance="m1", kind="client-cert", name="app")[0]
    assert 3500 < app.value <= 3600
    assert len(samples(fams, exp, kind="client-ca")) == 2
    # deleting a client certificate removes its gauge
    dbtls("ssl", "client-certs", "delete", "app", "--instance", "m1")
    fams, _ = scrape(d)
    assert samples(fams, exp, instance="m1", kind="client-cert") == []

    version = subprocess.run([d.args[0], "--version"], capture_output=True, text=True,
                             check=True).stdout.split()[1]
    bi = samples(fams, "dbtls_build_info")
    assert len(bi) == 1 and bi[0].labels == {"version": version} and bi[0].value == 1


def test_front_counters(setup, dbtls, free_port):
    d, port, ca = setup
    fams, _ = scrape(d)
    assert fams["dbtls_handshakes"].type == "counter"
    assert samples(fams, "dbtls_handshakes_total", instance="m1") == []
    assert samples(fams, "dbtls_connections_open", instance="m1") == []
    reloads0 = samples(fams, "dbtls_reloads_total")[0].value
    assert reloads0 >= 1
    assert samples(fams, "dbtls_reload_failures_total")[0].value == 0

    with psycopg.connect(conninfo(port, ca)) as c:
        c.execute("SELECT repeat('x', 100000)").fetchone()
        fams, _ = scrape(d)
        ok = samples(fams, "dbtls_handshakes_total", instance="m1", result="success")
        assert len(ok) == 1 and ok[0].value == 1
        ver = c.execute("SELECT version FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        del ver  # the backend has no TLS (the front terminates it); the front knows
        op = samples(fams, "dbtls_connections_open", instance="m1")
        assert len(op) == 1 and op[0].value == 1, op
        assert op[0].labels["tls_version"] == "TLSv1.3"
        assert op[0].labels["cipher"].startswith("TLS_")
        out_open = samples(fams, "dbtls_bytes_total", instance="m1", direction="out")[0].value
        assert out_open > 100000
    # a failed handshake: TLS 1.1 is below the instance's minimum (TLSv1.2)
    cp = subprocess.run(["openssl", "s_client", "-starttls", "postgres", "-connect",
                         f"127.0.0.1:{port}", "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"],
                        input="", capture_output=True, text=True, timeout=20)
    assert cp.returncode != 0
    deadline = time.monotonic() + 5
    while True:
        fams, _ = scrape(d)
        if not samples(fams, "dbtls_connections_open", instance="m1") or \
                time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert samples(fams, "dbtls_connections_open", instance="m1") == []
    bad = samples(fams, "dbtls_handshakes_total", instance="m1", result="failure")
    assert len(bad) == 1 and bad[0].value == 1 and bad[0].labels["reason"] == "protocol_version"
    # bytes of the closed session stay counted (a counter never goes down)
    bin_ = samples(fams, "dbtls_bytes_total", instance="m1", direction="in")[0].value
    bout = samples(fams, "dbtls_bytes_total", instance="m1", direction="out")[0].value
    assert bout >= out_open and bin_ > 0

    # reloads: a SIGHUP counts; a reload that fails (listen port taken) counts as a failure
    start = d.log_size()
    d.reload()
    d.wait_log("configuration generation", start=start)
    fams, _ = scrape(d)
    assert samples(fams, "dbtls_reloads_total")[0].value == reloads0 + 1
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    try:
        start = d.log_size()
        dbtls("instances", "patch", "m1", "--listen", f"127.0.0.1:{busy.getsockname()[1]}")
        d.wait_log("reload failed", start=start)
        fams, _ = scrape(d)
        assert samples(fams, "dbtls_reload_failures_total")[0].value == 1
        assert samples(fams, "dbtls_reloads_total")[0].value == reloads0 + 2
        assert samples(fams, "dbtls_config_last_reload_successful")[0].value == 0
    finally:
        busy.close()
    # the change undone: loaded again, and the gauges say what the working reload cost
    start = d.log_size()
    dbtls("instances", "patch", "m1", "--listen", f"127.0.0.1:{port}")
    d.wait_reload(start)
    fams, _ = scrape(d)
    assert samples(fams, "dbtls_config_last_reload_successful")[0].value == 1
    assert abs(samples(fams, "dbtls_config_last_reload_success_timestamp_seconds")[0].value -
               time.time()) < 30
    assert 0 <= samples(fams, "dbtls_config_last_reload_duration_seconds")[0].value < 30
    # a new listen address is not a new TLS context: nothing was rebuilt
    assert samples(fams, "dbtls_config_last_reload_rebuilt_instances")[0].value == 0


def test_backend_connections(setup, pg_server, dbtls, free_port):
    """Connections to each backend by result: what an alert on an unreachable database server
    counts (sessions' connects; a refused one is a failure, not a session that never started)."""
    d, port, ca = setup
    dead_backend, dead_port = free_port(), free_port()
    start = d.log_size()
    dbtls("instances", "create", "dead", "--engine", "postgres", "--listen",
          f"127.0.0.1:{dead_port}", "--backend", f"127.0.0.1:{dead_backend}", "--endpoint",
          "dead.local")
    d.wait_reload(start)
    for _ in range(2):
        with psycopg.connect(conninfo(port, ca)) as c:
            assert c.execute("SELECT 1").fetchone() == (1,)
    for _ in range(3):
        with pytest.raises(psycopg.OperationalError, match="could not connect to the database"):
            psycopg.connect(f"host=127.0.0.1 port={dead_port} user=u dbname=d sslmode=disable "
                            f"connect_timeout=5").close()
    fams, _ = scrape(d)
    assert fams["dbtls_backend_connections"].type == "counter"

    def n(inst, result):
        got = samples(fams, "dbtls_backend_connections_total", instance=inst, result=result)
        assert len(got) == 1, got
        return got[0].value

    assert (n("m1", "success"), n("m1", "failure")) == (2, 0)
    assert (n("dead", "success"), n("dead", "failure")) == (0, 3)

    # the log says it once per outage, not once per client: the first failure with its reason
    # and that the backend does not answer; the retries only at debug level
    log = d.log()[start:]
    assert log.count('instance "dead": the backend does not answer') == 1, log
    assert log.count("could not connect to the database server") == 1, log
    # the backend back (here: the instance pointed at a live one): one line says how long it
    # was gone and how many connections failed meanwhile
    start = d.log_size()
    dbtls("instances", "patch", "dead", "--backend", f"127.0.0.1:{pg_server.port}")
    d.wait_reload(start)
    with psycopg.connect(f"host=127.0.0.1 port={dead_port} user=alice password=alice-secret-1 "
                         f"dbname=app sslmode=disable connect_timeout=5") as c:
        assert c.execute("SELECT 1").fetchone() == (1,)
    assert re.search(r'instance "dead": the backend answers again after \d+ s \(3 connections '
                     r'failed meanwhile\)', d.log()[start:]), d.log()[start:]


def test_methods_and_parse_errors_absent(setup):
    d, _, _ = setup
    status, headers, body = http(d.admin_socket, "POST")
    assert status == 405 and "GET" in headers.get("Allow", ""), (status, headers, body)
    status, _, body = http(d.admin_socket, "GET", "/metrics/extra")
    assert status == 404
    # the whole exposition parses and every family has HELP and TYPE
    _, text = scrape(d)
    names = {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE")}
    helps = {line.split()[2] for line in text.splitlines() if line.startswith("# HELP")}
    assert names == helps
    assert {"dbtls_build_info", "dbtls_certificate_expiry_seconds", "dbtls_handshakes_total",
            "dbtls_connections_open", "dbtls_bytes_total", "dbtls_reloads_total",
            "dbtls_reload_failures_total", "dbtls_tls_hangups_total"} <= names
