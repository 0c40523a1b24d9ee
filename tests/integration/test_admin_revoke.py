"""Admin client certificates can be listed and revoked (`dbtls admin-certs list|revoke`), and
dbtlsd's admin TCP listener (--admin-listen, mutual TLS) refuses a revoked one during the TLS
handshake, within about a second and without a restart, while other admins keep working. The
admin unix socket is not affected. Revoking an unknown or already revoked name fails with one
line and exit 1; every revocation is an event. The admin CA and the unrevoked admin certificates
have expiry gauges like every other certificate (an expired admin certificate locks its admin
out of the TCP listener)."""
import os
import socket
import ssl
import subprocess
import time

from api_client import make_admin, samples, scrape, tcp_api, tls_context, unix_api


def api_for(port, files):
    return tcp_api("127.0.0.1", port, tls_context(files["ca"], files["cert"], files["key"]))


def handshake_error(port, files):
    """Runs one request with the certificate; returns the TLS error that ended it, or None
    when the daemon answered (with any HTTP status)."""
    ctx = tls_context(files["ca"], files["cert"], files["key"])
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            with ctx.wrap_socket(s, server_hostname="127.0.0.1") as t:
                # TLS 1.3: the client's certificate is judged after the client's side of the
                # handshake ends, so the refusal arrives as an alert on the first read
                t.sendall(b"GET /v1/instances HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                data = t.recv(4096)
    except (ssl.SSLError, ConnectionError) as ex:
        return ex
    assert data.startswith(b"HTTP/1.1 "), data
    return None


def remote_cli(dbtls_bin, tmp_dir, port, files, *args):
    return subprocess.run([dbtls_bin, "--state-dir", os.path.join(tmp_dir, "none"), "--server",
                           f"https://127.0.0.1:{port}", "--admin-cert", files["cert"],
                           "--admin-key", files["key"], "--admin-ca", files["ca"], *args],
                          capture_output=True, text=True, timeout=60)


def test_revoked_admin_refused_without_restart(two_admins, dbtls, dbtls_bin, tmp_dir):
    d, port, ops, dev = two_admins
    for files in (ops, dev):
        r = api_for(port, files).get("/v1/instances")
        assert r.status == 200 and r.json() == {"items": []}
        assert handshake_error(port, files) is None

    start = d.log_size()
    cp = dbtls("admin-certs", "revoke", "ops")
    assert "Revoked admin certificate [ops]" in cp.stderr

    # within a few seconds, same process: ops is refused at the handshake, dev still works
    deadline = time.monotonic() + 5
    err = handshake_error(port, ops)
    while err is None and time.monotonic() < deadline:
        time.sleep(0.1)
        err = handshake_error(port, ops)
    assert err is not None, "the revoked certificate was still accepted after 5 s"
    assert isinstance(err, ssl.SSLError) and "revoked" in str(err), err
    assert d.alive()
    r = api_for(port, dev).get("/v1/instances")
    assert r.status == 200 and r.json() == {"items": []}
    assert handshake_error(port, dev) is None

    # the refusal is logged with the certificate's subject and why
    log = d.wait_log("refused a TCP client during the TLS handshake", start=start)[start:]
    line = next(x for x in log.splitlines() if "during the TLS handshake" in x)
    assert "CN=ops" in line and "revoked" in line, line
    assert "admin CRL reloaded (1 revoked admin certificate, polled)" in log  # SQLite: polled
    # libmicrohttpd's own words go through the daemon's log (debug), not raw onto stderr
    assert "handshake message out of context" not in d.log()

    # the remote CLI with the revoked certificate: one clear line, exit 1
    cp = remote_cli(dbtls_bin, tmp_dir, port, ops, "instances", "list")
    assert cp.returncode == 1, (cp.stdout, cp.stderr)
    assert len(cp.stderr.strip().splitlines()) == 1, cp.stderr
    assert "cannot reach dbtlsd" in cp.stderr and "revoked" in cp.stderr, cp.stderr
    cp = remote_cli(dbtls_bin, tmp_dir, port, dev, "instances", "list")
    assert cp.returncode == 0, cp.stderr

    # the unix socket is unaffected
    assert unix_api(d.admin_socket).get("/v1/instances").status == 200


def test_list_shows_revocation(two_admins, dbtls, tmp_dir):
    d, port, ops, dev = two_admins
    serial = subprocess.run(["openssl", "x509", "-noout", "-serial", "-in", ops["cert"]],
                            capture_output=True, text=True, check=True).stdout
    serial = serial.strip().split("=", 1)[1].upper().lstrip("0")
    sha1 = subprocess.run(["openssl", "x509", "-noout", "-fingerprint", "-sha1", "-in",
                           ops["cert"]], capture_output=True, text=True, check=True).stdout
    sha1 = sha1.strip().split("=", 1)[1].replace(":", "").lower()

    before = {c["name"]: c for c in dbtls.json("admin-certs", "list")}
    assert set(before) == {"ops", "dev"}
    assert before["ops"]["certSerialNumber"].lstrip("0") == serial
    assert before["ops"]["sha1Fingerprint"] == sha1
    assert before["ops"]["revoked"] is False and before["ops"]["revokeTime"] is None
    assert before["ops"]["createTime"] and before["ops"]["expirationTime"]

    # revoked by its SHA-1 fingerprint, as pasted from openssl (colons, upper case)
    colons = ":".join(sha1[i:i + 2] for i in range(0, 40, 2)).upper()
    dbtls("admin-certs", "revoke", colons)
    after = {c["name"]: c for c in dbtls.json("admin-certs", "list")}
    assert after["ops"]["revoked"] is True and after["ops"]["revokeTime"]
    assert after["dev"]["revoked"] is False
    table = dbtls("admin-certs", "list").stdout.splitlines()
    assert table[0].split() == ["NAME", "SERIAL", "SHA1_FINGERPRINT", "CREATED", "EXPIRATION",
                                "REVOKED"]
    rows = {r.split()[0]: r.split() for r in table[1:]}
    assert rows["ops"][-1] == after["ops"]["revokeTime"] and rows["dev"][-1] == "-"

    ev = [e for e in dbtls.json("events", "list") if e["action"] == "admin-cert.revoke"]
    assert len(ev) == 1 and f"serial={after['ops']['certSerialNumber']}" in ev[0]["detail"]
    assert "name=ops" in ev[0]["detail"]

    # two certificates of one name (say one per laptop): the name revokes both
    dbtls("admin-certs", "create", "dev", "--out-dir", os.path.join(tmp_dir, "dev-laptop"))
    revoked = dbtls.json("admin-certs", "revoke", "dev")
    assert [c["name"] for c in revoked] == ["dev", "dev"] and all(c["revoked"] for c in revoked)
    assert all(c["revoked"] for c in dbtls.json("admin-certs", "list") if c["name"] == "dev")


def test_revoke_refusals(two_admins, dbtls, tmp_dir):
    d, port, ops, dev = two_admins
    cp = dbtls.fail("admin-certs", "revoke", "nobody")
    assert 'admin certificate "nobody" does not exist' in cp.stderr
    dbtls("admin-certs", "revoke", "ops")
    counter = dbtls.json("events", "list")
    cp = dbtls.fail("admin-certs", "revoke", "ops")
    assert 'admin certificate "ops" is already revoked' in cp.stderr
    assert dbtls.json("events", "list") == counter  # a refusal records nothing
    # a revoked name can be issued again
    ops2 = make_admin(dbtls, tmp_dir, "ops-again")
    dbtls("admin-certs", "create", "ops", "--out-dir", os.path.join(tmp_dir, "ops3"))
    names = sorted((c["name"], c["revoked"]) for c in dbtls.json("admin-certs", "list"))
    assert names == [("dev", False), ("ops", False), ("ops", True), ("ops-again", False)]
    # the new certificate of the same name works (the daemon picks up the new store state)
    new_ops = {k: os.path.join(tmp_dir, "ops3", f"admin-{k}.pem") for k in ("cert", "key", "ca")}
    deadline = time.monotonic() + 5
    while handshake_error(port, ops) is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert handshake_error(port, ops) is not None
    assert api_for(port, new_ops).get("/v1/instances").status == 200
    assert api_for(port, ops2).get("/v1/instances").status == 200


def test_admin_certificates_have_expiry_gauges(two_admins, dbtls):
    d = two_admins[0]
    listed = {c["name"]: c for c in dbtls.json("admin-certs", "list")}

    def gauges():
        fams, _ = scrape(d)
        return {(s.labels["kind"], s.labels["name"]): s
                for s in samples(fams, "dbtls_certificate_expiry_timestamp_seconds")
                if s.labels["kind"].startswith("admin-")}

    g = gauges()
    assert set(g) == {("admin-ca", ""), ("admin-cert", "ops"), ("admin-cert", "dev")}, g
    assert g[("admin-ca", "")].value > time.time() + 9 * 365 * 86400  # ten years
    for name in ("ops", "dev"):
        s = g[("admin-cert", name)]
        assert s.labels["serial"] == listed[name]["certSerialNumber"]
        assert s.labels["sha1"] == listed[name]["sha1Fingerprint"]
        assert s.labels["instance"] == "" and s.labels["slot"] == ""
        assert time.time() + 300 * 86400 < s.value < time.time() + 400 * 86400
    dbtls("admin-certs", "revoke", "dev")  # a revoked certificate is no longer watched
    assert set(gauges()) == {("admin-ca", ""), ("admin-cert", "ops")}


def test_admin_certificate_nearing_expiry_is_noticed_once(dbtls, dbtlsd, state_dir, tmp_dir):
    """The scheduler says once, as an event delivered to the notify sinks, that an admin client
    certificate is past its renewal point (half its life here), and what to do; not again on
    the next ticks nor after a restart; revoked and fresh certificates are not mentioned."""
    from cli_helpers import use_template, wait_notified
    use_template(dbtls)
    make_admin(dbtls, tmp_dir, "fresh")
    dbtls("admin-certs", "create", "short", "--out-dir", os.path.join(tmp_dir, "short"),
          "--validity", "4")
    dbtls("admin-certs", "create", "gone", "--out-dir", os.path.join(tmp_dir, "gone"),
          "--validity", "4")
    dbtls("admin-certs", "revoke", "gone")
    time.sleep(2.5)  # past half of the 4 s
    notified = os.path.join(tmp_dir, "events.jsonl")

    def expiring():
        return [e for e in dbtls.json("events", "list") if e["action"] == "admin-cert.expiring"]

    d = dbtlsd.start(state_dir, ["--scheduler-interval", "1",
                                 "--notify-command", f"cat >> '{notified}'"])
    deadline = time.monotonic() + 15
    while not expiring():
        assert time.monotonic() < deadline, "no admin-cert.expiring event"
        time.sleep(0.2)
    time.sleep(2.5)  # more ticks
    ev = expiring()
    assert len(ev) == 1, ev
    assert ev[0]["detail"].startswith('admin certificate "short" (serial ')
    assert "dbtls admin-certs create short --out-dir DIR" in ev[0]["detail"]
    assert ev[0]["actor"] == "dbtlsd"
    wait_notified(notified, "admin-cert.expiring")
    d.stop()
    d = dbtlsd.start(state_dir, ["--scheduler-interval", "1"])
    time.sleep(2.5)
    assert len(expiring()) == 1
    d.stop()
