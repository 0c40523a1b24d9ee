"""Evidence for a rotation decision (reference: "no system reports which clients use the old
server certificate"): every connection through dbtlsd records the server certificate it was
served, and clients that refuse the server certificate are counted apart.

- `dbtls connections` (JSON `server_cert_sha1`, table SERVER_CERT) and the metric
  dbtls_connections_open{server_cert_sha1} show a session opened before a rotation on the
  previous certificate and one opened after it on the active one, with the fingerprints of
  `dbtls ssl server-certs list` and of the expiry gauges' sha1 label (what joins them);
- a client that has only the old per-instance server CA is refused after the rotation, and
  dbtls_handshakes_total counts it under reason="server_cert_refused" (the client's TLS alert),
  not with client-certificate failures; the scheduler records one "tls.server-cert-refused"
  event per tick in which the count grew, delivered to the notification sinks;
- a client that refuses the certificate only after the handshake (libpq checks the host name
  itself, then closes: no TLS alert) is counted by dbtls_tls_hangups_total, with TLS probes.
Real PostgreSQL 15 behind the front, real libpq (psycopg) clients.
"""
import os
import time

import psycopg
import pytest

from api_client import samples, scrape
from cli_helpers import use_template, wait_notified


def sha1s_by_slot(dbtls, instance):
    return {c["slot"]: c["sha1Fingerprint"]
            for c in dbtls.json("ssl", "server-certs", "list", "--instance", instance)}


def create(dbtls, name, port, pg_server, *extra):
    use_template(dbtls)
    dbtls("instances", "create", name, "--engine", "postgres", "--engine-version", "15",
          "--listen", f"127.0.0.1:{port}", "--backend", pg_server.socket_path,
          "--endpoint", "localhost", "--ssl-mode", "ENCRYPTED_ONLY", *extra)


def connect(port, ca, app):
    return psycopg.connect(host="localhost", port=port, user="alice", password="alice-secret-1",
                           dbname="app", application_name=app, sslmode="verify-full",
                           sslrootcert=ca, connect_timeout=10)


def test_connections_show_the_certificate_they_were_served(pg_server, dbtls, dbtlsd, state_dir,
                                                           tmp_dir, free_port):
    port = free_port()
    create(dbtls, "rot", port, pg_server)
    ca = os.path.join(tmp_dir, "ca.pem")
    dbtls("ssl", "server-ca-certs", "download", "--instance", "rot", "--out", ca)
    d = dbtlsd.start(state_dir, ["--scheduler-interval", "0"])
    before = connect(port, ca, "opened-before")
    try:
        mark = d.log_size()
        dbtls("ssl", "server-certs", "create", "--instance", "rot")
        dbtls("ssl", "server-certs", "rotate", "--instance", "rot")
        d.wait_reload(mark)
        slots = sha1s_by_slot(dbtls, "rot")
        assert slots["previous"] != slots["active"]
        with connect(port, ca, "opened-after") as after:
            assert before.execute("SELECT 1").fetchone() == (1,)  # still up, still old cert
            assert after.execute("SELECT 1").fetchone() == (1,)
            conns = {c["application_name"]: c
                     for c in dbtls.json("connections", "--instance", "rot")["connections"]}
            assert conns["opened-before"]["server_cert_sha1"] == slots["previous"]
            assert conns["opened-after"]["server_cert_sha1"] == slots["active"]

            table = dbtls("connections", "--instance", "rot").stdout.splitlines()
            assert "SERVER_CERT" in table[0].split()
            row = {ln.split()[4]: ln for ln in table[1:]}  # APPLICATION is the 5th column
            assert slots["previous"][:10] in row["opened-before"]
            assert slots["active"][:10] in row["opened-after"]

            fams, _ = scrape(d)
            for slot in ("previous", "active"):
                got = samples(fams, "dbtls_connections_open", instance="rot",
                              server_cert_sha1=slots[slot])
                assert [s.value for s in got] == [1.0], (slot, got)
                # the expiry gauges carry the same fingerprint (label sha1): a PromQL join of
                # connections with slots ("still on the previous certificate")
                exp = samples(fams, "dbtls_certificate_expiry_seconds", instance="rot",
                              kind="server-cert", slot=slot)
                assert [e.labels["sha1"] for e in exp] == [slots[slot]], exp
    finally:
        before.close()
    d.stop()


def test_clients_refusing_the_new_server_ca_are_counted(pg_server, dbtls, dbtlsd, state_dir,
                                                        tmp_dir, free_port):
    port = free_port()
    create(dbtls, "pi", port, pg_server, "--ca-mode", "per-instance")
    old_ca = os.path.join(tmp_dir, "old-ca.pem")
    dbtls("ssl", "server-ca-certs", "download", "--instance", "pi", "--out", old_ca)
    notified = os.path.join(tmp_dir, "events.jsonl")
    d = dbtlsd.start(state_dir, ["--scheduler-interval", "1",
                                 "--notify-command", f"cat >> '{notified}'"])
    with connect(port, old_ca, "old-bundle") as c:
        assert c.execute("SELECT 1").fetchone() == (1,)

    # rotate the server CA without giving this client the new one
    mark = d.log_size()
    dbtls("ssl", "server-ca-certs", "create", "--instance", "pi")
    dbtls("ssl", "server-ca-certs", "rotate", "--instance", "pi")
    d.wait_reload(mark)
    for _ in range(2):
        with pytest.raises(psycopg.OperationalError) as e:
            connect(port, old_ca, "old-bundle")
        assert "certificate verify failed" in str(e.value)
    new_ca = os.path.join(tmp_dir, "new-ca.pem")
    dbtls("ssl", "server-ca-certs", "download", "--instance", "pi", "--out", new_ca)
    with connect(port, new_ca, "new-bundle") as c:
        assert c.execute("SELECT 1").fetchone() == (1,)

    fams, _ = scrape(d)
    refused = samples(fams, "dbtls_handshakes_total", instance="pi", result="failure",
                      reason="server_cert_refused")
    assert [s.value for s in refused] == [2.0], refused
    assert samples(fams, "dbtls_handshakes_total", instance="pi", result="failure",
                   reason="certificate") == []
    ok = samples(fams, "dbtls_handshakes_total", instance="pi", result="success")
    assert [s.value for s in ok] == [2.0], ok
    assert "tlsv1 alert unknown ca" in d.log()

    # the scheduler turns them into one event (and a notification) saying what to do
    def refused_events():
        return [e for e in dbtls.json("events", "list")
                if e["action"] == "tls.server-cert-refused"]
    deadline = time.monotonic() + 10
    while not refused_events():
        assert time.monotonic() < deadline, "no tls.server-cert-refused event"
        time.sleep(0.2)
    time.sleep(2.5)  # more ticks with nothing new refused: no more events

    def counted(events):  # a tick may fall between the two refusals: 2, or 1 + 1
        return sum(int(e["detail"].split()[0]) for e in events)
    ev = refused_events()
    assert counted(ev) == 2 and len(ev) in (1, 2), ev
    assert ev[0]["object"] == "instance/pi" and ev[0]["actor"] == "dbtlsd"
    assert " refused the server certificate (TLS alert" in ev[0]["detail"]
    assert "server-ca-certs download" in ev[0]["detail"]
    n_before = len(ev)
    wait_notified(notified, "tls.server-cert-refused")
    # a later refusal is a new event with its own count
    with pytest.raises(psycopg.OperationalError):
        connect(port, old_ca, "old-bundle")
    deadline = time.monotonic() + 10
    while len(refused_events()) <= n_before:
        assert time.monotonic() < deadline, "no further tls.server-cert-refused event"
        time.sleep(0.2)
    assert refused_events()[-1]["detail"].startswith("1 client TLS handshake refused")
    assert counted(refused_events()) == 3
    d.stop()


def test_clients_hanging_up_after_the_handshake_are_counted(pg_server, dbtls, dbtlsd, state_dir,
                                                            tmp_dir, free_port):
    port = free_port()
    create(dbtls, "hang", port, pg_server)  # endpoint localhost only
    ca = os.path.join(tmp_dir, "ca.pem")
    dbtls("ssl", "server-ca-certs", "download", "--instance", "hang", "--out", ca)
    d = dbtlsd.start(state_dir, ["--scheduler-interval", "0"])

    def hangups():
        fams, _ = scrape(d)
        return [s.value for s in samples(fams, "dbtls_tls_hangups_total", instance="hang")]

    with connect(port, ca, "fine") as c:  # sends its startup after the handshake
        assert c.execute("SELECT 1").fetchone() == (1,)
    # verify-full to a name the certificate does not carry: libpq completes the handshake (the
    # chain is fine), checks the host name itself and hangs up without a word
    with pytest.raises(psycopg.OperationalError) as e:
        psycopg.connect(host="127.0.0.1", port=port, user="alice", password="alice-secret-1",
                        dbname="app", sslmode="verify-full", sslrootcert=ca, connect_timeout=10)
    assert 'does not match host name "127.0.0.1"' in str(e.value), e.value
    deadline = time.monotonic() + 5
    while hangups() != [1.0]:
        assert time.monotonic() < deadline, hangups()
        time.sleep(0.1)
    fams, _ = scrape(d)
    assert [s.value for s in samples(fams, "dbtls_handshakes_total", instance="hang",
                                     result="success")] == [2.0]
    assert samples(fams, "dbtls_handshakes_total", instance="hang", result="failure") == []
    d.stop()
