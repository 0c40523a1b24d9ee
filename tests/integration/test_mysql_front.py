"""The MySQL/MariaDB TLS front (dbtlsd) with a real MariaDB 10.11 behind it (no TLS of its own)
and real clients (the mariadb client, PyMySQL): TLS with server verification, ssl modes with
MySQL's exact errors (3159), client certificates, per-user REQUIRE rules (1045), revoked and
foreign certificates, rotation without dropping a session, ed25519 (auth switch), and the
status shown by the admin socket.
"""
import os
import re
import socket
import ssl
import struct
import subprocess
import time

import pymysql
import pytest

from cli_helpers import use_template
from servers import recv_all
from mysql_wire import ScriptedServer, ca_file, packet, pymy, read_packet

SECURE_TRANSPORT_MSG = ("Connections using insecure transport are prohibited while "
                        "--require_secure_transport=ON.")


# --- helpers --------------------------------------------------------------------------------
def make_instance(dbtls, free_port, mariadb_server, name="my1", ssl_mode="ENCRYPTED_ONLY",
                  extra=(), engine="mariadb"):
    port = free_port()
    dbtls("instances", "create", name, "--engine", engine, "--engine-version",
          "10.11" if engine == "mariadb" else "8.0",
          "--listen", f"127.0.0.1:{port}", "--backend",
          f"127.0.0.1:{mariadb_server.port}", "--endpoint", "localhost",
          "--ssl-mode", ssl_mode, *extra)
    return port


def client_cert(dbtls, tmp_dir, cert_name, instance="my1"):
    d = os.path.join(tmp_dir, f"cc-{cert_name}")
    os.mkdir(d)
    dbtls("ssl", "client-certs", "create", cert_name, "--instance", instance, "--out-dir", d)
    return {"ca": os.path.join(d, "server-ca.pem"), "cert": os.path.join(d, "client-cert.pem"),
            "key": os.path.join(d, "client-key.pem")}


def mariadb(port, user, password, *args, sql="SELECT CURRENT_USER()", host="localhost"):
    """Runs the mariadb client through the front over TCP; returns (rc, stdout, stderr)."""
    cmd = ["mariadb", "--no-defaults", f"--host={host}", f"--port={port}", "--protocol=TCP",
           f"--user={user}", "--connect-timeout=10", "-N", "-B", *args]
    if password is not None:
        cmd.append(f"--password={password}")
    cp = subprocess.run(cmd + ["-e", sql], capture_output=True, text=True, timeout=30)
    return cp.returncode, cp.stdout, cp.stderr


def parse_err(payload):
    assert payload[0] == 0xFF, payload
    code = struct.unpack_from("<H", payload, 1)[0]
    if payload[3:4] == b"#":
        return code, payload[4:9].decode(), payload[9:].decode()
    return code, None, payload[3:].decode()


CLIENT_CAPS = (0x1 | 0x4 | 0x8 | 0x200 | 0x8000 | 0x80000 | 0x200000)


def response41(user, caps=CLIENT_CAPS, db=b"app", plugin=b"mysql_native_password",
               auth=b""):
    p = struct.pack("<IIB", caps, 1 << 24, 33) + b"\0" * 23 + user + b"\0"
    p += bytes([len(auth)]) + auth + db + b"\0" + plugin + b"\0"
    return p


def ssl_request(caps=CLIENT_CAPS | 0x800):
    return struct.pack("<IIB", caps, 1 << 24, 33) + b"\0" * 23




# --- TLS with real clients ------------------------------------------------------------------
def test_mariadb_client_verify_server_cert(mariadb_server, dbtls, dbtlsd, state_dir, free_port,
                                           tmp_dir):
    use_template(dbtls)
    port = make_instance(dbtls, free_port, mariadb_server)
    ca = ca_file(dbtls, tmp_dir)
    d = dbtlsd.start(state_dir, ["--workers", "2"])
    user, pw = mariadb_server.ALICE
    rc, out, err = mariadb(port, user, pw, f"--ssl-ca={ca}", "--ssl-verify-server-cert",
                           sql="\\s")
    assert rc == 0, err
    assert "Cipher in use is TLS_AES" in out, out
    rc, out, err = mariadb(port, user, pw, f"--ssl-ca={ca}", "--ssl-verify-server-cert",
                           sql="SHOW STATUS LIKE 'Ssl_cipher'; SELECT CURRENT_USER(), DATABASE()",
                           )
    assert rc == 0, err
    assert out.startswith("Ssl_cipher\t")  # answered by the backend, whose leg is plain
    assert "alice@%" in out
    # a name that is not in the certificate's SAN fails verification
    rc, out, err = mariadb(port, user, pw, f"--ssl-ca={ca}", "--ssl-verify-server-cert",
                           host="127.0.0.1")
    assert rc != 0
    assert "certificate" in err.lower() or "SSL" in err or "TLS" in err, err
    assert d.alive()


def test_pymysql_ssl_ca_and_client_cert(mariadb_server, dbtls, dbtlsd, state_dir, free_port,
                                        tmp_dir):
    use_template(dbtls)
    port = make_instance(dbtls, free_port, mariadb_server)
    cc = client_cert(dbtls, tmp_dir, "certuser")
    d = dbtlsd.start(state_dir, ["--log-connections", "--log-disconnections"])
    user, pw = mariadb_server.ALICE
    conn = pymy(port, user, pw, ssl_opts={"ca": cc["ca"], "check_hostname": True})
    with conn.cursor() as cur:
        cur.execute("SELECT CURRENT_USER(), 6 * 7")
        assert cur.fetchone() == ("alice@%", 42)
    assert conn._sock.version() in ("TLSv1.3", "TLSv1.2")
    conn.close()
    u, pw = "certuser", mariadb_server.users["certuser"]
    conn = pymy(port, u, pw, ssl_opts={"ca": cc["ca"], "cert": cc["cert"], "key": cc["key"]})
    with conn.cursor() as cur:
        cur.execute("SELECT CURRENT_USER()")
        assert cur.fetchone()[0] == "certuser@%"
        # a larger result crosses many TLS records through the relay
        cur.execute("SELECT REPEAT('x', 3000000)")
        assert len(cur.fetchone()[0]) == 3000000
    conn.close()
    # --log-connections / --log-disconnections: the same lines as for PostgreSQL
    d.wait_log("disconnection: session time:")
    d.wait_log('connection authorized: user=certuser database=app SSL enabled (protocol=TLSv1.3, '
               'cipher=TLS_AES_256_GCM_SHA384, bits=256) identity="CN=certuser,O=dbtls" '
               'host=127.0.0.1 port=')
    assert 'connection authorized: user=alice database=app SSL enabled (protocol=TLSv1.3' in d.log()


def test_wrong_password_is_the_servers_error(mariadb_server, dbtls, dbtlsd, state_dir,
                                             free_port, tmp_dir):
    use_template(dbtls)
    port = make_instance(dbtls, free_port, mariadb_server)
    ca = ca_file(dbtls, tmp_dir)
    dbtlsd.start(state_dir)
    with pytest.raises(pymysql.err.OperationalError) as ei:
        pymy(port, "alice", "not-the-password", ssl_opts={"ca": ca})
    assert ei.value.args[0] == 1045
    assert "Access denied for user 'alice'@'127.0.0.1' (using password: YES)" in ei.value.args[1]


# --- ssl modes ------------------------------------------------------------------------------
@pytest.mark.parametrize("mode,client,ok", [
    ("ENCRYPTED_ONLY", "--ssl", True),
    ("ENCRYPTED_ONLY", "--skip-ssl", False),
    ("ALLOW_UNENCRYPTED_AND_ENCRYPTED", "--skip-ssl", True),
    ("ALLOW_UNENCRYPTED_AND_ENCRYPTED", "--ssl", True),
    ("TRUSTED_CLIENT_CERTIFICATE_REQUIRED", "--ssl", False),
    ("TRUSTED_CLIENT_CERTIFICATE_REQUIRED", "--skip-ssl", False),
])
def test_ssl_modes(mariadb_server, dbtls, dbtlsd, state_dir, free_port, mode, client, ok):
    use_template(dbtls)
    port = make_instance(dbtls, free_port, mariadb_server, ssl_mode=mode)
    dbtlsd.start(state_dir)
    user, pw = mariadb_server.BOB
    rc, out, err = mariadb(port, user, pw, client, sql="SELECT CURRENT_USER()")
    if ok:
        assert rc == 0, err
        assert out.strip() == "bob@%"
    else:
        assert rc != 0
        if client == "--skip-ssl":
            assert "ERROR 3159 (HY000)" in err and SECURE_TRANSPORT_MSG in err, err
        else:
            assert ("ERROR 1045 (28000): Access denied for user 'bob'@'127.0.0.1' "
                    "(using password: YES)") in err, err


@pytest.mark.parametrize("engine", ["mariadb", "mysql"])
def test_encrypted_only_3159_byte_exact(mariadb_server, dbtls, dbtlsd, state_dir, free_port,
                                        engine):
    use_template(dbtls)
    port = make_instance(dbtls, free_port, mariadb_server, engine=engine)
    dbtlsd.start(state_dir)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        seq, greeting = read_packet(s)
        assert seq == 0 and greeting[0] == 10
        caps = struct.unpack_from("<H", greeting, greeting.index(b"\0", 1) + 1 + 4 + 8 + 1)[0]
        assert caps & 0x800, "CLIENT_SSL must be advertised"
        assert not caps & 0x20, "CLIENT_COMPRESS must be masked"
        s.sendall(packet(1, response41(b"alice", auth=b"\x01" * 20)))
        seq, payload = read_packet(s)
        assert seq == 2
        assert payload == (b"\xff\x57\x0c#HY000" + SECURE_TRANSPORT_MSG.encode())
        assert recv_all(s, 3) == b""
    # PyMySQL sees the same
    with pytest.raises(pymysql.err.OperationalError) as ei:
        pymy(port, "alice", "alice-secret-1")
    assert ei.value.args == (3159, SECURE_TRANSPORT_MSG)


def test_greeting_keeps_backend_scramble_and_clears_ssl_without_tls(mariadb_server, dbtls,
                                                                    dbtlsd, state_dir,
                                                                    free_port):
    use_template(dbtls)
    port = make_instance(dbtls, free_port, mariadb_server,
                         ssl_mode="ALLOW_UNENCRYPTED_AND_ENCRYPTED")
    dbtlsd.start(state_dir)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        _, g = read_packet(s)
    with socket.create_connection(("127.0.0.1", mariadb_server.port), timeout=5) as s:
        _, direct = read_packet(s)
    # same server version and plugin; the capability bytes differ only in SSL/COMPRESS
    ver_end = g.index(b"\0", 1)
    assert g[:ver_end] == direct[:ver_end]
    assert g.endswith(b"mysql_native_password\0")
    off = ver_end + 1 + 4 + 8 + 1
    front = struct.unpack_from("<H", g, off)[0]
    back = struct.unpack_from("<H", direct, off)[0]
    assert front & 0x800 and not front & 0x20
    assert (front | 0x20) == (back | 0x800 | 0x20)


# --- per-user REQUIRE rules -------------------------------------------------------------------
def oneline(cert, which):
    """The certificate's subject or issuer as X509_NAME_oneline prints it (what MySQL compares
    REQUIRE SUBJECT / ISSUER with): "/O=dbtls/CN=certuser"."""
    out = subprocess.run(["openssl", "x509", "-noout", f"-{which}", "-nameopt", "compat", "-in",
                          cert], capture_output=True, text=True, check=True, timeout=10).stdout
    return out.strip().split("=", 1)[1]


def test_user_require_rules(mariadb_server, dbtls, dbtlsd, state_dir, free_port, tmp_dir):
    use_template(dbtls)
    port = make_instance(dbtls, free_port, mariadb_server,
                         ssl_mode="ALLOW_UNENCRYPTED_AND_ENCRYPTED")
    cc = client_cert(dbtls, tmp_dir, "certuser")
    other = client_cert(dbtls, tmp_dir, "someone-else")
    subject = oneline(cc["cert"], "subject")
    issuer = oneline(cc["cert"], "issuer")
    assert subject.startswith("/") and subject.endswith("/CN=certuser"), subject
    rules = os.path.join(tmp_dir, "require.txt")
    with open(rules, "w") as f:
        f.write("# mirrors ALTER USER ... REQUIRE\n"
                "alice=SSL\n"
                "bob=X509\n"
                f"certuser=SUBJECT '{subject}' AND ISSUER '{issuer}'\n")
    dbtls("instances", "patch", "my1", "--user-require-file", rules)
    d = dbtlsd.start(state_dir)
    a, apw = mariadb_server.ALICE
    b, bpw = mariadb_server.BOB
    c, cpw = "certuser", mariadb_server.users["certuser"]
    ca = cc["ca"]
    denied = "ERROR 1045 (28000): Access denied for user '{}'@'127.0.0.1' (using password: YES)"
    # REQUIRE SSL
    rc, out, err = mariadb(port, a, apw, "--skip-ssl")
    assert rc != 0 and denied.format(a) in err, err
    rc, out, err = mariadb(port, a, apw, f"--ssl-ca={ca}")
    assert rc == 0 and out.strip() == "alice@%", err
    # REQUIRE X509
    rc, out, err = mariadb(port, b, bpw, f"--ssl-ca={ca}")
    assert rc != 0 and denied.format(b) in err, err
    rc, out, err = mariadb(port, b, bpw, f"--ssl-ca={ca}", f"--ssl-cert={other['cert']}",
                           f"--ssl-key={other['key']}")
    assert rc == 0 and out.strip() == "bob@%", err
    # REQUIRE SUBJECT
    rc, out, err = mariadb(port, c, cpw, f"--ssl-ca={ca}", f"--ssl-cert={other['cert']}",
                           f"--ssl-key={other['key']}")
    assert rc != 0 and denied.format(c) in err, err
    rc, out, err = mariadb(port, c, cpw, f"--ssl-ca={ca}", f"--ssl-cert={cc['cert']}",
                           f"--ssl-key={cc['key']}")
    assert rc == 0 and out.strip() == "certuser@%", err
    # users without a rule: REQUIRE NONE
    rc, out, err = mariadb(port, "edna" if mariadb_server.ed25519_user else b, "x", "--skip-ssl")
    assert "3159" not in err
    log = d.log()
    assert "REQUIRE rule on line 2" in log and "REQUIRE rule on line 4" in log
    assert f"SUBJECT '{subject}'" in log and "/CN=someone-else" in log


def test_bad_require_rules_refused_at_reload(mariadb_server, dbtls, dbtlsd, state_dir, free_port,
                                             tmp_dir):
    use_template(dbtls)
    port = make_instance(dbtls, free_port, mariadb_server)
    ca = ca_file(dbtls, tmp_dir)
    d = dbtlsd.start(state_dir)
    rules = os.path.join(tmp_dir, "bad.txt")
    with open(rules, "w") as f:
        f.write("alice=SSL\nbob=TLS\n")
    # the command checks the rules with the daemon's parser: refused, one line, nothing stored
    cp = dbtls.fail("instances", "patch", "my1", "--user-require-file", rules)
    assert "user requirements: line 2: expected NONE, SSL" in cp.stderr, cp.stderr
    # rules that reach the store anyway (written by an older dbtls) are refused at reload
    start = d.log_size()
    dbtls.set_instance_field("my1", "user_require_text", "alice=SSL\nbob=TLS\n")
    d.wait_log("line 2: expected NONE, SSL", timeout=10, start=start)
    # the old generation keeps serving
    rc, out, err = mariadb(port, "alice", "alice-secret-1", f"--ssl-ca={ca}")
    assert rc == 0, err


# --- client certificates: trusted, revoked, foreign -------------------------------------------
def test_trusted_client_cert_required_revoked_and_foreign(mariadb_server, dbtls, dbtlsd,
                                                          state_dir, free_port, tmp_dir):
    use_template(dbtls)
    port = make_instance(dbtls, free_port, mariadb_server,
                         ssl_mode="TRUSTED_CLIENT_CERTIFICATE_REQUIRED")
    cc = client_cert(dbtls, tmp_dir, "certuser")
    d = dbtlsd.start(state_dir)
    u, pw = "certuser", mariadb_server.users["certuser"]
    opts = {"ca": cc["ca"], "cert": cc["cert"], "key": cc["key"]}
    conn = pymy(port, u, pw, ssl_opts=opts)
    with conn.cursor() as cur:
        cur.execute("SELECT CURRENT_USER()")
        assert cur.fetchone()[0] == "certuser@%"
    conn.close()
    # no certificate: access denied as for REQUIRE X509
    with pytest.raises(pymysql.err.OperationalError) as ei:
        pymy(port, u, pw, ssl_opts={"ca": cc["ca"]})
    assert ei.value.args[0] == 1045
    # a certificate from a foreign CA: the TLS handshake fails
    key = os.path.join(tmp_dir, "fk.pem")
    crt = os.path.join(tmp_dir, "fc.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", crt, "-days",
                    "2", "-subj", "/CN=certuser"], check=True, capture_output=True, timeout=30)
    rc, out, err = mariadb(port, u, pw, f"--ssl-ca={cc['ca']}", f"--ssl-cert={crt}",
                           f"--ssl-key={key}")
    assert rc != 0
    d.wait_log("TLS handshake with client 127.0.0.1")
    # revoked: the CRL reaches the daemon without a restart
    start = d.log_size()
    dbtls("ssl", "client-certs", "delete", "certuser", "--instance", "my1")
    d.wait_reload(start)
    with pytest.raises(pymysql.err.OperationalError):
        pymy(port, u, pw, ssl_opts=opts)
    d.wait_log("certificate revoked", start=start)


# --- rotation without a restart or a dropped session ------------------------------------------
@pytest.mark.parametrize("ca_mode,kind", [("shared", "server-certs"),
                                          ("per-instance", "server-ca-certs")])
def test_rotation_keeps_session(mariadb_server, dbtls, dbtlsd, state_dir, free_port, tmp_dir,
                                ca_mode, kind):
    use_template(dbtls)
    port = make_instance(dbtls, free_port, mariadb_server, extra=("--ca-mode", ca_mode))
    d = dbtlsd.start(state_dir)
    dbtls("ssl", kind, "create", "--instance", "my1")
    ca = ca_file(dbtls, tmp_dir)  # all slots: old and new
    session = pymy(port, "alice", "alice-secret-1", ssl_opts={"ca": ca, "check_hostname": True})
    before = session._sock.getpeercert(binary_form=True)
    start = d.log_size()
    dbtls("ssl", kind, "rotate", "--instance", "my1")
    d.wait_reload(start)
    with session.cursor() as cur:
        cur.execute("SELECT 2")
        assert cur.fetchone()[0] == 2
    fresh = pymy(port, "alice", "alice-secret-1", ssl_opts={"ca": ca, "check_hostname": True})
    assert fresh._sock.getpeercert(binary_form=True) != before
    fresh.close()
    with session.cursor() as cur:
        cur.execute("SELECT 3")
        assert cur.fetchone()[0] == 3
    session.close()


# --- other authentication plugins ----------------------------------------------------------
def test_ed25519_auth_switch_through_tls(mariadb_server, dbtls, dbtlsd, state_dir, free_port,
                                         tmp_dir):
    if not mariadb_server.ed25519_user:
        pytest.skip("auth_ed25519 plugin not available")
    use_template(dbtls)
    port = make_instance(dbtls, free_port, mariadb_server)
    ca = ca_file(dbtls, tmp_dir)
    dbtlsd.start(state_dir)
    u, pw = mariadb_server.ED25519
    # the client starts with mysql_native_password; the server switches to client_ed25519,
    # and the sequence ids of the switch exchange are renumbered both ways
    rc, out, err = mariadb(port, u, pw, f"--ssl-ca={ca}", "--ssl-verify-server-cert")
    assert rc == 0, err
    assert out.strip() == "edna@%"
    rc, out, err = mariadb(port, u, "wrong", f"--ssl-ca={ca}")
    assert rc != 0 and "1045" in err


# --- status ---------------------------------------------------------------------------------
def test_connections_show_mysql_sessions(mariadb_server, dbtls, dbtlsd, state_dir, free_port,
                                         tmp_dir):
    use_template(dbtls)
    port = make_instance(dbtls, free_port, mariadb_server)
    cc = client_cert(dbtls, tmp_dir, "certuser")
    dbtlsd.start(state_dir)
    conn = pymy(port, "certuser", mariadb_server.users["certuser"],
                ssl_opts={"ca": cc["ca"], "cert": cc["cert"], "key": cc["key"]})
    conns = dbtls.json("connections")
    rows = conns["connections"] if isinstance(conns, dict) else conns
    mine = [r for r in rows if r.get("instance") == "my1"]
    assert len(mine) == 1, rows
    r = mine[0]
    assert r["user"] == "certuser" and r["database"] == "app"
    assert r["ssl"] is True and r["version"].startswith("TLSv1.")
    assert "certuser" in r["client_dn"]
    conn.close()


# --- hostile input --------------------------------------------------------------------------
class FakeBackend:
    """A TCP server that sends scripted bytes to each connection and then closes it."""

    def __init__(self, payload, hold=0.0):
        import threading
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.payload = payload
        self.hold = hold
        self.stop = False
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        self.sock.settimeout(0.2)
        while not self.stop:
            try:
                c, _ = self.sock.accept()
            except (socket.timeout, OSError):
                continue
            try:
                c.sendall(self.payload)
                time.sleep(self.hold)
            except OSError:
                pass
            c.close()

    def close(self):
        self.stop = True
        self.t.join(2)
        self.sock.close()


def test_hostile_inputs_keep_daemon_serving(mariadb_server, dbtls, dbtlsd, state_dir, free_port,
                                            tmp_dir):
    use_template(dbtls)
    port = make_instance(dbtls, free_port, mariadb_server,
                         extra=())
    ca = ca_file(dbtls, tmp_dir)
    d = dbtlsd.start(state_dir, ["--auth-timeout", "2"])

    def conn():
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        seq, g = read_packet(s)
        assert seq == 0 and g[0] == 10
        return s

    # SSLRequest followed by plaintext: Bad handshake
    with conn() as s:
        s.sendall(packet(1, ssl_request()) + packet(2, response41(b"alice")))
        seq, p = read_packet(s)
        assert seq == 2 and parse_err(p) == (1043, "08S01", "Bad handshake")
    # oversize packet header: refused before its payload is buffered
    with conn() as s:
        s.sendall(b"\xff\xff\xff\x01")
        seq, p = read_packet(s)
        assert parse_err(p)[0] == 1153
    # wrong sequence id
    with conn() as s:
        s.sendall(packet(5, response41(b"alice")))
        seq, p = read_packet(s)
        assert parse_err(p)[:2] == (1156, "08S01")
    # truncated response / 32 bytes without CLIENT_SSL / CLIENT_SSL with credentials
    for bad in (response41(b"alice")[:40], ssl_request(CLIENT_CAPS),
                response41(b"alice", caps=CLIENT_CAPS | 0x800)):
        with conn() as s:
            s.sendall(packet(1, bad))
            seq, p = read_packet(s)
            assert parse_err(p) == (1043, "08S01", "Bad handshake")
    # a second SSLRequest inside TLS
    with conn() as s:
        s.sendall(packet(1, ssl_request()))
        ctx = ssl.create_default_context(cafile=ca)
        with ctx.wrap_socket(s, server_hostname="localhost") as t:
            t.sendall(packet(2, ssl_request()))
            seq, p = read_packet(t)
            assert seq == 3 and parse_err(p)[0] == 1043
    # a client that stops mid-handshake (after the greeting, after TLS): bounded by the deadline
    with conn() as s:
        t0 = time.monotonic()
        seq, p = read_packet(s, timeout=10)
        assert parse_err(p)[0] == 1043 and time.monotonic() - t0 < 8
    with conn() as s:
        s.sendall(packet(1, ssl_request()))
        ctx = ssl.create_default_context(cafile=ca)
        with ctx.wrap_socket(s, server_hostname="localhost") as t:
            seq, p = read_packet(t, timeout=10)
            assert seq == 3 and parse_err(p)[0] == 1043
    # garbage instead of a MySQL packet
    with conn() as s:
        s.sendall(os.urandom(3000))
        data = recv_all(s, 5)
        assert data == b"" or data[4] == 0xFF
    # the daemon still serves
    rc, out, err = mariadb(port, "alice", "alice-secret-1", f"--ssl-ca={ca}")
    assert rc == 0, err
    assert d.alive()


@pytest.mark.parametrize("payload,what", [
    (b"", "closed the connection before its greeting"),
    (b"\x30\x00\x00\x00\x0a5.5.5-10.11", "closed the connection before its greeting"),
    (b"\x05\x00\x00\x00\x0a\x00\x01\x02\x03", "invalid greeting"),
    (b"\x05\x00\x00\x00\x09abc\x00", "protocol version 9"),
    (b"\xff\xff\xff\x00", "invalid greeting"),
    (b"\x17\x00\x00\x00\xff\x10\x04Too many connections", None),
])
def test_broken_backend_greeting(dbtls, dbtlsd, state_dir, free_port, payload, what):
    fake = FakeBackend(payload, hold=0.5)
    try:
        use_template(dbtls)
        port = free_port()
        dbtls("instances", "create", "my1", "--engine", "mariadb", "--listen",
              f"127.0.0.1:{port}", "--backend", f"127.0.0.1:{fake.port}", "--endpoint",
              "localhost")
        d = dbtlsd.start(state_dir)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            seq, p = read_packet(s)
        assert seq == 0
        code, state, msg = parse_err(p)
        if what is None:
            assert (code, msg) == (1040, "Too many connections")
        else:
            assert code == 1429 and state is None
            assert what in msg, msg
        assert d.alive()
    finally:
        fake.close()


def test_backend_down(dbtls, dbtlsd, state_dir, free_port):
    use_template(dbtls)
    port = free_port()
    dead = free_port()
    dbtls("instances", "create", "my1", "--engine", "mariadb", "--listen", f"127.0.0.1:{port}",
          "--backend", f"127.0.0.1:{dead}", "--endpoint", "localhost")
    d = dbtlsd.start(state_dir)
    # an error in place of the greeting carries no SQLSTATE, as MySQL's own (PyMySQL 1.0 assumes
    # a SQLSTATE there and would cut the text); libmariadb flags any error before TLS as
    # unauthenticated but shows it
    rc, out, err = mariadb(port, "alice", "x", "--skip-ssl")
    assert rc != 0
    assert f"ERROR 1429 (HY000): Can't connect to MySQL server on '127.0.0.1:{dead}'" in err, err
    rc, out, err = mariadb(port, "alice", "x", "--ssl")
    assert rc != 0
    assert f"1429 - Can't connect to MySQL server on '127.0.0.1:{dead}'" in err, err
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        seq, p = read_packet(s)
    assert seq == 0 and parse_err(p)[:2] == (1429, None)
    assert d.alive()


# --- scripted backend: sequence ids, caching_sha2_password, auth switch ----------------------
def scripted_instance(dbtls, free_port, srv, ssl_mode="ALLOW_UNENCRYPTED_AND_ENCRYPTED"):
    port = free_port()
    dbtls("instances", "create", "my1", "--engine", "mysql", "--engine-version", "8.0",
          "--listen", f"127.0.0.1:{port}", "--backend", f"127.0.0.1:{srv.port}", "--endpoint",
          "localhost", "--ssl-mode", ssl_mode)
    return port


@pytest.mark.parametrize("tls", [True, False])
def test_caching_sha2_fast_auth_sequence_ids(dbtls, dbtlsd, state_dir, free_port, tmp_dir, tls):
    srv = ScriptedServer("fast")
    try:
        use_template(dbtls)
        port = scripted_instance(dbtls, free_port, srv)
        ca = ca_file(dbtls, tmp_dir)
        dbtlsd.start(state_dir)
        # PyMySQL checks every sequence id: success means the offset was applied both ways
        conn = pymy(port, "alice", "pw", ssl_opts={"ca": ca} if tls else None)
        conn.ping(reconnect=False)
        conn.close()
        srv.done.wait(10)
        seq, resp = srv.received[0]
        assert seq == 1  # renumbered from 2 when the client used TLS
        caps = struct.unpack_from("<I", resp)[0]
        assert not caps & 0x800, "CLIENT_SSL must be cleared towards a plain backend"
        assert not caps & 0x20
        assert resp[32:38] == b"alice\x00"
        # the command after authentication starts again at 0, untouched by the relay
        assert srv.received[1][0] == 0
    finally:
        srv.close()


def test_auth_switch_renumbered(dbtls, dbtlsd, state_dir, free_port, tmp_dir):
    srv = ScriptedServer("switch")
    try:
        use_template(dbtls)
        port = scripted_instance(dbtls, free_port, srv)
        ca = ca_file(dbtls, tmp_dir)
        dbtlsd.start(state_dir)
        conn = pymy(port, "alice", "pw", ssl_opts={"ca": ca})
        conn.close()
        srv.done.wait(10)
        # response 2 -> 1; the client's switch reply 4 -> 3
        assert [s for s, _ in srv.received[:2]] == [1, 3]
        assert len(srv.received[1][1]) == 20  # the native-password scramble of the new salt
    finally:
        srv.close()


# --- TLS on the backend leg ---------------------------------------------------------------------
def _backend_pki(d):
    """A CA and a server certificate for 127.0.0.1 / localhost, readable by the mysql user."""
    def run(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=30)
    ca_key, ca = os.path.join(d, "bca.key"), os.path.join(d, "bca.pem")
    key, csr, crt = (os.path.join(d, n) for n in ("b.key", "b.csr", "b.pem"))
    ext = os.path.join(d, "b.ext")
    with open(ext, "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", ca_key, "-out", ca, "-days", "2", "-subj", "/CN=backend test CA")
    run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key,
        "-out", csr, "-subj", "/CN=localhost")
    run("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-out", crt,
        "-days", "2", "-extfile", ext)
    for p in (ca, key, crt):
        os.chmod(p, 0o644)
    os.chmod(d, 0o755)
    return ca, crt, key


@pytest.fixture(scope="module")
def tls_mariadb():
    """A second MariaDB 10.11 with TLS of its own (for the front's TLS backend leg)."""
    import tempfile
    import servers
    d = tempfile.mkdtemp(prefix="dbtls-mytls-")
    ca, crt, key = _backend_pki(d)
    srv = servers.MariaDbServer(extra_args=["--ssl", f"--ssl-ca={ca}", f"--ssl-cert={crt}",
                                            f"--ssl-key={key}"])
    try:
        srv.start()
    except BaseException:
        srv.stop()
        raise
    srv.backend_ca = ca
    yield srv
    srv.stop()
    import shutil
    shutil.rmtree(d, ignore_errors=True)


def test_backend_tls_leg(tls_mariadb, dbtls, dbtlsd, state_dir, free_port, tmp_dir):
    use_template(dbtls)
    port = make_instance(dbtls, free_port, tls_mariadb, ssl_mode="ALLOW_UNENCRYPTED_AND_ENCRYPTED",
                         extra=("--backend-tls-ca", tls_mariadb.backend_ca))
    ca = ca_file(dbtls, tmp_dir)
    dbtlsd.start(state_dir)
    a, apw = tls_mariadb.ALICE
    # TLS client -> TLS backend: seq ids pass unchanged; the server sees its own TLS session
    for args in ([f"--ssl-ca={ca}", "--ssl-verify-server-cert"], ["--skip-ssl"]):
        rc, out, err = mariadb(port, a, apw, *args,
                               sql="SHOW STATUS LIKE 'Ssl_version'; SELECT CURRENT_USER()")
        assert rc == 0, err
        lines = out.strip().split("\n")
        assert lines[0].startswith("Ssl_version\tTLSv1."), out
        assert lines[1] == "alice@%"
    if tls_mariadb.ed25519_user:
        u, pw = tls_mariadb.ED25519
        for args in ([f"--ssl-ca={ca}"], ["--skip-ssl"]):
            rc, out, err = mariadb(port, u, pw, *args)
            assert rc == 0 and out.strip() == "edna@%", err
    conn = pymy(port, a, apw, ssl_opts={"ca": ca})
    with conn.cursor() as cur:
        cur.execute("SHOW STATUS LIKE 'Ssl_cipher'")
        assert cur.fetchone()[1] != ""
    conn.close()


def test_backend_tls_leg_client_certificate(tls_mariadb, dbtls, dbtlsd, state_dir, free_port,
                                           tmp_dir):
    """--backend-tls-cert/--backend-tls-key: a backend account with REQUIRE X509 accepts the
    front's leg only when the front shows a certificate its --ssl-ca trusts."""
    use_template(dbtls)
    d = os.path.dirname(tls_mariadb.backend_ca)
    key, csr, crt = (os.path.join(tmp_dir, n) for n in ("front.key", "front.csr", "front.pem"))
    for args in (["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                  "-keyout", key, "-out", csr, "-subj", "/CN=dbtlsd front"],
                 ["x509", "-req", "-in", csr, "-CA", tls_mariadb.backend_ca, "-CAkey",
                  os.path.join(d, "bca.key"), "-CAcreateserial", "-out", crt, "-days", "2"]):
        subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=30)
    os.chmod(key, 0o600)
    tls_mariadb.sql("CREATE USER IF NOT EXISTS 'xuser'@'%' IDENTIFIED BY 'x-secret-1' "
                    "REQUIRE X509; GRANT ALL ON app.* TO 'xuser'@'%'")
    port = make_instance(dbtls, free_port, tls_mariadb, ssl_mode="ALLOW_UNENCRYPTED_AND_ENCRYPTED",
                         extra=("--backend-tls-ca", tls_mariadb.backend_ca,
                                "--backend-tls-cert", crt, "--backend-tls-key", key))
    ca = ca_file(dbtls, tmp_dir)
    d8 = dbtlsd.start(state_dir)
    rc, out, err = mariadb(port, "xuser", "x-secret-1", f"--ssl-ca={ca}",
                           sql="SHOW STATUS LIKE 'Ssl_version'; SELECT CURRENT_USER()")
    assert rc == 0 and out.strip().split("\n")[-1] == "xuser@%", err
    start = d8.log_size()
    dbtls("instances", "patch", "my1", "--backend-tls-cert", "", "--backend-tls-key", "")
    d8.wait_reload(start)
    rc, out, err = mariadb(port, "xuser", "x-secret-1", f"--ssl-ca={ca}")
    assert rc != 0 and "Access denied for user 'xuser'" in err, err


def test_health_user_over_backend_tls(tls_mariadb, dbtls, dbtlsd, state_dir, free_port):
    """--health-user with TLS on the backend leg: the probe logs in over TLS, as sessions reach
    that backend, so a server with require_secure_transport=ON lets the health account in. An
    instance in front of it without backend TLS fails its check with the server's own error, and
    the daemon's log says why at the first failure (MariaDB: 1045, MySQL: 3159)."""
    import http.client
    use_template(dbtls)
    make_instance(dbtls, free_port, tls_mariadb, ssl_mode="ALLOW_UNENCRYPTED_AND_ENCRYPTED",
                  extra=("--backend-tls-ca", tls_mariadb.backend_ca))
    make_instance(dbtls, free_port, tls_mariadb, name="my2",
                  ssl_mode="ALLOW_UNENCRYPTED_AND_ENCRYPTED")
    health = free_port()
    tls_mariadb.sql("CREATE USER IF NOT EXISTS 'dbtls_health'@'%'; "
                    "SET GLOBAL require_secure_transport = ON")

    def get(path):
        c = http.client.HTTPConnection("127.0.0.1", health, timeout=10)
        try:
            c.request("GET", path)
            r = c.getresponse()
            return r.status, r.read().decode()
        finally:
            c.close()
    log0 = len(tls_mariadb.log())
    try:
        d = dbtlsd.start(state_dir, extra_args=("--health-listen", f"127.0.0.1:{health}",
                                                "--health-user", "dbtls_health"))
        st, body = get("/healthz/my1")
        assert st == 200 and re.fullmatch(
            r'ok: instance "my1": server 10\.11\.\S*MariaDB\S* answered, user "dbtls_health" '
            r'logged in over TLS at 127\.0\.0\.1:\d+ in \d+ ms\n', body), body
        st, body = get("/healthz/my2")
        # MariaDB 10.11 answers a login in clear under require_secure_transport with 1045
        assert st == 503 and ('the backend refused the health user "dbtls_health": ERROR 1045 '
                              "(28000): Access denied for user 'dbtls_health'@'127.0.0.1'") in body
        d.wait_log('instance "my2": health check: backend 127.0.0.1:%d: the backend refused the '
                   'health user "dbtls_health"' % tls_mariadb.port)
        assert "Aborted connection" not in tls_mariadb.log()[log0:]
    finally:
        tls_mariadb.sql("SET GLOBAL require_secure_transport = OFF; "
                        "DROP USER IF EXISTS 'dbtls_health'@'%'")


def test_backend_tls_leg_refused_when_backend_has_no_tls(mariadb_server, dbtls, dbtlsd,
                                                         state_dir, free_port, tmp_dir):
    use_template(dbtls)
    ca_pem = os.path.join(tmp_dir, "some-ca.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", os.path.join(tmp_dir, "k"),
                    "-out", ca_pem, "-days", "2", "-subj", "/CN=x"], check=True,
                   capture_output=True, timeout=30)
    port = make_instance(dbtls, free_port, mariadb_server,
                         ssl_mode="ALLOW_UNENCRYPTED_AND_ENCRYPTED",
                         extra=("--backend-tls-ca", ca_pem))
    dbtlsd.start(state_dir)
    rc, out, err = mariadb(port, "alice", "alice-secret-1", "--skip-ssl")
    assert rc != 0
    assert "does not offer TLS" in err, err


# --- COM_CHANGE_USER after authentication -------------------------------------------------------
def native_scramble(password, salt):
    import hashlib
    h1 = hashlib.sha1(password.encode()).digest()
    h2 = hashlib.sha1(h1).digest()
    h3 = hashlib.sha1(salt + h2).digest()
    return bytes(a ^ b for a, b in zip(h1, h3))


def tls_login(port, ca, user, password):
    """Logs in through the front over TLS with mysql_native_password, by hand; returns the TLS
    socket and the greeting's salt."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    seq, g = read_packet(s)
    off = g.index(b"\0", 1) + 1 + 4
    salt = g[off:off + 8]
    off += 8 + 1 + 2 + 1 + 2 + 2 + 1 + 10
    salt += g[off:off + 12]
    caps = CLIENT_CAPS | 0x800
    s.sendall(packet(1, ssl_request(caps)))
    t = ssl.create_default_context(cafile=ca).wrap_socket(s, server_hostname="localhost")
    t.sendall(packet(2, response41(user.encode(), caps=caps,
                                   auth=native_scramble(password, salt))))
    seq, p = read_packet(t)
    assert (seq, p[0]) == (3, 0), p
    return t, salt


def change_user(t, salt, user, password):
    p = b"\x11" + user.encode() + b"\0"
    auth = native_scramble(password, salt)
    p += bytes([len(auth)]) + auth + b"app\0" + struct.pack("<H", 33)
    p += b"mysql_native_password\0"
    t.sendall(packet(0, p))
    seq, r = read_packet(t)
    if r[:1] == b"\xfe":  # MariaDB switches to a fresh scramble
        end = r.index(b"\0", 1)
        t.sendall(packet(seq + 1, native_scramble(password, r[end + 1:end + 21])))
        seq, r = read_packet(t)
    return seq, r


def test_change_user_allowed(mariadb_server, dbtls, dbtlsd, state_dir, free_port, tmp_dir):
    use_template(dbtls)
    rules = os.path.join(tmp_dir, "require.txt")
    with open(rules, "w") as f:
        f.write("bob=SSL\n")
    port = make_instance(dbtls, free_port, mariadb_server, extra=("--user-require-file", rules))
    ca = ca_file(dbtls, tmp_dir)
    dbtlsd.start(state_dir)
    t, salt = tls_login(port, ca, "alice", "alice-secret-1")
    try:
        seq, p = change_user(t, salt, "bob", "bob-secret-2")
        assert p[0] == 0x00, p  # REQUIRE SSL is met by this TLS connection: the server's OK
        t.sendall(packet(0, b"\x03SELECT CURRENT_USER()"))
        seq, p = read_packet(t)
        assert seq == 1 and p == b"\x01"  # one column follows
    finally:
        t.close()


def test_change_user_to_an_account_whose_rule_is_not_met(mariadb_server, dbtls, dbtlsd,
                                                         state_dir, free_port, tmp_dir):
    use_template(dbtls)
    rules = os.path.join(tmp_dir, "require.txt")
    with open(rules, "w") as f:
        f.write("bob=X509\n")
    port = make_instance(dbtls, free_port, mariadb_server, extra=("--user-require-file", rules))
    ca = ca_file(dbtls, tmp_dir)
    d = dbtlsd.start(state_dir)
    t, salt = tls_login(port, ca, "alice", "alice-secret-1")
    try:
        # MySQL re-checks REQUIRE on COM_CHANGE_USER; the backend knows nothing of the front's
        # rules, so the front must refuse before the command reaches it
        seq, p = change_user(t, salt, "bob", "bob-secret-2")
        assert parse_err(p) == (1045, "28000", "Access denied for user 'bob'@'127.0.0.1' "
                                               "(using password: YES)")
        assert recv_all(t, 3) == b""
        assert "COM_CHANGE_USER to \"bob\"" in d.log()
    finally:
        t.close()


@pytest.mark.parametrize("tls", [True, False])
def test_backend_gone_during_authentication(dbtls, dbtlsd, state_dir, free_port, tmp_dir, tls):
    srv = ScriptedServer("close")
    try:
        use_template(dbtls)
        port = scripted_instance(dbtls, free_port, srv)
        ca = ca_file(dbtls, tmp_dir)
        d = dbtlsd.start(state_dir)
        with pytest.raises(pymysql.err.OperationalError) as ei:
            pymy(port, "alice", "pw", ssl_opts={"ca": ca} if tls else None)
        assert ei.value.args[0] == 1429
        assert "during authentication (the server closed the connection)" in ei.value.args[1]
        assert d.alive()
    finally:
        srv.close()


def test_client_hello_in_the_same_segment_as_ssl_request(mariadb_server, dbtls, dbtlsd,
                                                          state_dir, free_port, tmp_dir):
    """The server does not answer an SSLRequest, so a client may send its ClientHello right
    behind it, even in the same segment: those bytes belong to the TLS handshake."""
    use_template(dbtls)
    port = make_instance(dbtls, free_port, mariadb_server)
    ca = ca_file(dbtls, tmp_dir)
    dbtlsd.start(state_dir)
    ctx = ssl.create_default_context(cafile=ca)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        seq, g = read_packet(s)
        off = g.index(b"\0", 1) + 1 + 4
        salt = g[off:off + 8] + g[off + 8 + 1 + 2 + 1 + 2 + 2 + 1 + 10:][:12]
        try:
            tls.do_handshake()
        except ssl.SSLWantReadError:
            pass
        hello = outgoing.read()
        assert hello[:1] == b"\x16"
        s.sendall(packet(1, ssl_request()) + hello)  # one write
        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                out = outgoing.read()
                if out:
                    s.sendall(out)
                data = s.recv(65536)
                assert data, "front closed during the handshake"
                incoming.write(data)
        out = outgoing.read()
        if out:
            s.sendall(out)
        tls.write(packet(2, response41(b"alice", caps=CLIENT_CAPS | 0x800,
                                       auth=native_scramble("alice-secret-1", salt))))
        s.sendall(outgoing.read())
        reply = b""
        while len(reply) < 4 or len(reply) < 4 + int.from_bytes(reply[:3], "little"):
            try:
                reply += tls.read(65536)
            except ssl.SSLWantReadError:
                data = s.recv(65536)
                assert data
                incoming.write(data)
        assert reply[3] == 3 and reply[4] == 0x00, reply  # OK, renumbered to 3


def test_pymysql_verify_modes(mariadb_server, dbtls, dbtlsd, state_dir, free_port, tmp_dir):
    """What ssl-mode DISABLED / REQUIRED / VERIFY_CA / VERIFY_IDENTITY give a PyMySQL client."""
    use_template(dbtls)
    port = make_instance(dbtls, free_port, mariadb_server,
                         ssl_mode="ALLOW_UNENCRYPTED_AND_ENCRYPTED")
    ca = ca_file(dbtls, tmp_dir)
    other_ca = os.path.join(tmp_dir, "other-ca.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", os.path.join(tmp_dir, "ok"),
                    "-out", other_ca, "-days", "2", "-subj", "/CN=other"], check=True,
                   capture_output=True, timeout=30)
    dbtlsd.start(state_dir)
    a, apw = mariadb_server.ALICE

    def version(conn):
        v = conn._sock.version() if hasattr(conn._sock, "version") else None
        conn.close()
        return v

    assert version(pymy(port, a, apw)) is None                                  # DISABLED
    # REQUIRED (no CA: PyMySQL does not verify)
    assert version(pymy(port, a, apw, ssl_opts={"check_hostname": False})) == "TLSv1.3"
    # VERIFY_CA: chain checked, name not (an address that is not in the SAN)
    assert version(pymy(port, a, apw, ssl_opts={"ca": ca, "check_hostname": False},
                        host="127.0.0.1")) == "TLSv1.3"
    # VERIFY_IDENTITY
    assert version(pymy(port, a, apw, ssl_opts={"ca": ca, "check_hostname": True})) == "TLSv1.3"
    with pytest.raises(pymysql.err.OperationalError):                            # wrong CA
        pymy(port, a, apw, ssl_opts={"ca": other_ca})
    with pytest.raises(pymysql.err.OperationalError):                            # wrong name
        pymy(port, a, apw, ssl_opts={"ca": ca, "check_hostname": True}, host="127.0.0.1")
