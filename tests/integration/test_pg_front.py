"""The PostgreSQL TLS front (dbtlsd) with a real PostgreSQL 15 behind it and real clients (psql,
psycopg): TLS versions, ssl modes with PostgreSQL's exact rejection texts, client certificates,
rotation without restart with a session kept open, cancel, reloads, listeners following the
configuration, graceful shutdown, the admin socket, and pgbench through the front.
"""
import json
import os
import re
import resource
import socket
import ssl
import struct
import subprocess
import time

import psycopg
import pytest

from cli_helpers import assert_cancel, use_template
from servers import recv_all

PG_BIN = "/usr/lib/postgresql/15/bin"


# --- helpers --------------------------------------------------------------------------------
def make_instance(dbtls, free_port, backend, name="pg1", ssl_mode="ENCRYPTED_ONLY", extra=()):
    port = free_port()
    dbtls("instances", "create", name, "--engine", "postgres", "--engine-version", "15",
          "--listen", f"127.0.0.1:{port}", "--backend", backend, "--endpoint", "localhost",
          "--ssl-mode", ssl_mode, *extra)
    return port


def ca_file(dbtls, tmp_dir, name="pg1"):
    path = os.path.join(tmp_dir, f"{name}-ca.pem")
    dbtls("ssl", "server-ca-certs", "download", "--instance", name, "--out", path)
    return path


def conninfo(port, user="alice", password="alice-secret-1", host="localhost", **kw):
    parts = {"host": host, "port": port, "user": user, "dbname": "app"}
    if password is not None:
        parts["password"] = password
    parts.update(kw)
    return " ".join(f"{k}='{v}'" for k, v in parts.items())


def startup_packet(user, database="app"):
    body = struct.pack("!I", 196608)
    for k, v in (("user", user), ("database", database)):
        body += k.encode() + b"\0" + v.encode() + b"\0"
    body += b"\0"
    return struct.pack("!I", len(body) + 4) + body


SSL_REQUEST = struct.pack("!II", 8, 80877103)


def server_cert_serial(port, cafile):
    """Serial (hex, upper) of the certificate the front presents (openssl -starttls postgres)."""
    cp = subprocess.run(["openssl", "s_client", "-starttls", "postgres", "-connect",
                         f"127.0.0.1:{port}", "-servername", "localhost", "-CAfile", cafile],
                        input="", capture_output=True, text=True, timeout=20)
    pem = cp.stdout[cp.stdout.index("-----BEGIN CERTIFICATE-----"):]
    pem = pem[:pem.index("-----END CERTIFICATE-----") + len("-----END CERTIFICATE-----")]
    out = subprocess.run(["openssl", "x509", "-noout", "-serial"], input=pem,
                         capture_output=True, text=True, timeout=10, check=True).stdout
    return out.strip().split("=", 1)[1].upper().lstrip("0"), cp.stdout




# --- TLS basics ---------------------------------------------------------------------------
def test_psql_verify_full_tls13_and_require(pg_server, dbtls, dbtlsd, state_dir, free_port,
                                            tmp_dir, psql):
    use_template(dbtls)
    port = make_instance(dbtls, free_port, f"127.0.0.1:{pg_server.port}")
    ca = ca_file(dbtls, tmp_dir)
    d = dbtlsd.start(state_dir, ["--workers", "2"])
    rc, out, err = psql(conninfo(port, sslmode="verify-full", sslrootcert=ca), r"\conninfo")
    assert rc == 0, err
    assert "SSL connection (protocol: TLSv1.3" in out
    rc, out, err = psql(conninfo(port, sslmode="require"), "SELECT current_user")
    assert rc == 0 and out.strip() == "alice", err
    with psycopg.connect(conninfo(port, sslmode="verify-full", sslrootcert=ca)) as c:
        assert c.pgconn.ssl_in_use
        row = c.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone()
        assert row[0] is False  # the backend leg is plain: TLS ends at the front
        assert c.execute("SELECT 40 + 2").fetchone()[0] == 42
    d.stop()


def test_verify_full_refuses_name_not_in_san(pg_server, dbtls, dbtlsd, state_dir, free_port,
                                             tmp_dir, psql):
    use_template(dbtls)
    port = make_instance(dbtls, free_port, f"127.0.0.1:{pg_server.port}")
    ca = ca_file(dbtls, tmp_dir)
    dbtlsd.start(state_dir)
    rc, out, err = psql(conninfo(port, host="127.0.0.1", sslmode="verify-full", sslrootcert=ca),
                        "SELECT 1")
    assert rc != 0
    assert 'does not match host name "127.0.0.1"' in err
    rc, out, err = psql(conninfo(port, sslmode="verify-ca", sslrootcert=ca, host="127.0.0.1"),
                        "SELECT 1")
    assert rc == 0, err


@pytest.mark.parametrize("mode,sslmode,ok", [
    ("ENCRYPTED_ONLY", "disable", False),
    ("ENCRYPTED_ONLY", "allow", True),
    ("ENCRYPTED_ONLY", "prefer", True),
    ("ALLOW_UNENCRYPTED_AND_ENCRYPTED", "disable", True),
    ("ALLOW_UNENCRYPTED_AND_ENCRYPTED", "require", True),
])
def test_ssl_modes(pg_server, dbtls, dbtlsd, state_dir, free_port, psql, mode, sslmode, ok):
    use_template(dbtls)
    port = make_instance(dbtls, free_port, f"127.0.0.1:{pg_server.port}", ssl_mode=mode)
    dbtlsd.start(state_dir)
    rc, out, err = psql(conninfo(port, host="127.0.0.1", sslmode=sslmode),
                        "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
    if ok:
        assert rc == 0, err
    else:
        assert rc != 0
        assert ('FATAL:  no pg_hba.conf entry for host "127.0.0.1", user "alice", '
                'database "app", no encryption') in err


def test_ssl_off_wording_before_14(pg_server, dbtls, dbtlsd, state_dir, free_port, psql):
    use_template(dbtls)
    port = free_port()
    dbtls("instances", "create", "old", "--engine", "postgres", "--engine-version", "13",
          "--listen", f"127.0.0.1:{port}", "--backend", f"127.0.0.1:{pg_server.port}",
          "--endpoint", "localhost", "--ssl-mode", "ENCRYPTED_ONLY", check=False)
    if not dbtls.json("instances", "list"):
        pytest.skip("engine version 13 is not in the engine table")
    dbtlsd.start(state_dir)
    rc, out, err = psql(conninfo(port, host="127.0.0.1", sslmode="disable"), "SELECT 1")
    assert rc != 0
    assert 'database "app", SSL off' in err


def test_tls12_policy_and_old_tls_refused(pg_server, dbtls, dbtlsd, state_dir, free_port):
    use_template(dbtls)
    port = make_instance(dbtls, free_port, f"127.0.0.1:{pg_server.port}")
    d = dbtlsd.start(state_dir)

    def s_client(*args):
        return subprocess.run(["openssl", "s_client", "-starttls", "postgres", "-connect",
                               f"127.0.0.1:{port}", *args], input="", capture_output=True,
                              text=True, timeout=20)

    cp = s_client("-tls1_1", "-cipher", "ALL:@SECLEVEL=0")
    assert "Cipher is (NONE)" in cp.stdout
    cp = s_client("-tls1", "-cipher", "ALL:@SECLEVEL=0")
    assert "Cipher is (NONE)" in cp.stdout
    cp = s_client("-tls1_2")
    assert "New, TLSv1.2" in cp.stdout
    # --tls-min TLSv1.3 and a cipher list are honoured after a patch (reload without restart)
    dbtls("instances", "patch", "pg1", "--tls-min", "TLSv1.3")
    d.wait_reload(0)
    cp = s_client("-tls1_2")
    assert "Cipher is (NONE)" in cp.stdout
    cp = s_client("-tls1_3")
    assert "New, TLSv1.3" in cp.stdout
    dbtls("instances", "patch", "pg1", "--tls-min", "TLSv1.2", "--tls-max", "TLSv1.2",
          "--ciphers", "ECDHE-ECDSA-AES128-GCM-SHA256")
    d.wait_reload(0)
    cp = s_client("-tls1_2")
    assert "ECDHE-ECDSA-AES128-GCM-SHA256" in cp.stdout
    cp = s_client("-tls1_2", "-cipher", "ECDHE-ECDSA-AES256-GCM-SHA384")
    assert "Cipher is (NONE)" in cp.stdout


# --- client certificates --------------------------------------------------------------------
def test_client_cert_required_mode(pg_server, dbtls, dbtlsd, state_dir, free_port, tmp_dir,
                                   psql):
    use_template(dbtls)
    port = make_instance(dbtls, free_port, pg_server.socket_path,
                         ssl_mode="TRUSTED_CLIENT_CERTIFICATE_REQUIRED")
    certs = os.path.join(tmp_dir, "certuser")
    os.mkdir(certs)
    dbtls("ssl", "client-certs", "create", "certuser", "--instance", "pg1", "--out-dir", certs)
    d = dbtlsd.start(state_dir)
    ca = os.path.join(certs, "server-ca.pem")
    rc, out, err = psql(conninfo(port, user="certuser", password=None, sslmode="verify-full",
                                 sslrootcert=ca, sslcert="/nonexistent", sslkey="/nonexistent"),
                        "SELECT 1")
    assert rc != 0
    assert "connection requires a valid client certificate" in err
    ci = conninfo(port, user="certuser", password=None, sslmode="verify-full", sslrootcert=ca,
                  sslcert=os.path.join(certs, "client-cert.pem"),
                  sslkey=os.path.join(certs, "client-key.pem"))
    rc, out, err = psql(ci, "SELECT current_user")
    assert rc == 0 and out.strip() == "certuser", err
    # the admin API shows the client certificate
    cp = dbtls("connections", "--format", "json", check=False)
    assert cp.returncode == 0, cp.stderr
    # revoke: the CRL reaches the daemon without a restart
    start = d.log_size()
    dbtls("ssl", "client-certs", "delete", "certuser", "--instance", "pg1")
    d.wait_reload(start)
    rc, out, err = psql(ci, "SELECT 1")
    assert rc != 0
    assert "revoked" in err or "certificate" in err
    # the daemon logs the refusal after the client has seen it: wait for the line
    log = d.wait_log("certificate revoked", start=start)
    assert "CN=certuser" in log[start:], log


def test_cert_method_and_verify_full_with_ident_map(pg_server, dbtls, dbtlsd, state_dir,
                                                    free_port, tmp_dir, psql):
    use_template(dbtls)
    hba = os.path.join(tmp_dir, "hba.conf")
    with open(hba, "w") as f:
        f.write("hostssl all certuser all cert\n"
                "hostssl all trustuser all trust clientcert=verify-full map=m\n"
                "hostssl all all all backend\n")
    ident = os.path.join(tmp_dir, "ident.conf")
    with open(ident, "w") as f:
        f.write("m /^(.*)-laptop$ \\1\n")
    port = make_instance(dbtls, free_port, pg_server.socket_path,
                         extra=("--hba-file", hba, "--ident-file", ident))
    out = os.path.join(tmp_dir, "c")
    os.mkdir(out)
    dbtls("ssl", "client-certs", "create", "certuser", "--instance", "pg1", "--out-dir", out)
    out2 = os.path.join(tmp_dir, "c2")
    os.mkdir(out2)
    dbtls("ssl", "client-certs", "create", "trustuser-laptop", "--instance", "pg1",
          "--out-dir", out2)
    daemon = dbtlsd.start(state_dir)

    def ci(user, d):
        return conninfo(port, user=user, password=None, sslmode="verify-full",
                        sslrootcert=os.path.join(d, "server-ca.pem"),
                        sslcert=os.path.join(d, "client-cert.pem"),
                        sslkey=os.path.join(d, "client-key.pem"))

    rc, o, err = psql(ci("certuser", out), "SELECT current_user")
    assert rc == 0 and o.strip() == "certuser", err
    rc, o, err = psql(ci("trustuser", out2), "SELECT current_user")
    assert rc == 0 and o.strip() == "trustuser", err
    # wrong CN for the user: PostgreSQL's texts
    rc, o, err = psql(ci("trustuser", out), "SELECT 1")
    assert rc != 0
    assert 'failed for user "trustuser"' in err
    hba2 = os.path.join(tmp_dir, "hba2.conf")
    with open(hba2, "w") as f:
        f.write("hostssl all all all cert\n")
    dbtls("instances", "patch", "pg1", "--hba-file", hba2)
    daemon.wait_reload(0)
    rc, o, err = psql(ci("alice", out), "SELECT 1")
    assert rc != 0
    assert 'certificate authentication failed for user "alice"' in err


def test_log_connections_and_disconnections(pg_server, dbtls, dbtlsd, state_dir, free_port,
                                            tmp_dir, psql):
    """--log-connections / --log-disconnections: PostgreSQL's lines of those names, from the
    front, with the TLS parameters, the client certificate's identity and the client address;
    off by default (as PostgreSQL), and never for a refused connection."""
    use_template(dbtls)
    hba = os.path.join(tmp_dir, "hba.conf")
    with open(hba, "w") as f:
        f.write("hostssl all certuser all cert\n"
                "hostssl all all all backend\n")
    port = make_instance(dbtls, free_port, pg_server.socket_path, extra=("--hba-file", hba))
    out = os.path.join(tmp_dir, "c")
    os.mkdir(out)
    dbtls("ssl", "client-certs", "create", "certuser", "--instance", "pg1", "--out-dir", out)
    ca = os.path.join(out, "server-ca.pem")
    cert = {"sslcert": os.path.join(out, "client-cert.pem"),
            "sslkey": os.path.join(out, "client-key.pem")}
    quiet = dbtlsd.start(state_dir, ["--workers", "1"])
    rc, o, err = psql(conninfo(port, sslmode="verify-full", sslrootcert=ca), "SELECT 1")
    assert rc == 0, err
    quiet.stop()
    assert "connection authorized" not in quiet.log() and "disconnection" not in quiet.log()

    d = dbtlsd.start(state_dir, ["--workers", "1", "--log-connections", "--log-disconnections"])
    rc, o, err = psql(conninfo(port, user="certuser", password=None, sslmode="verify-full",
                               sslrootcert=ca, application_name="nightly", **cert),
                      "SELECT pg_sleep(0.3)")
    assert rc == 0, err
    rc, o, err = psql(conninfo(port, user="nobody", sslmode="verify-full", sslrootcert=ca),
                      "SELECT 1")
    assert rc != 0 and 'role "nobody" does not exist' in err  # never authorized: no line
    d.wait_log("disconnection: session time:")
    lines = [ln for ln in d.log().splitlines()
             if "connection authorized" in ln or "disconnection" in ln]
    assert len(lines) == 2, lines
    assert re.search(r'INFO instance "pg1": connection authorized: user=certuser database=app '
                     r'application_name=nightly SSL enabled \(protocol=TLSv1\.3, '
                     r'cipher=TLS_AES_256_GCM_SHA384, bits=256\) '
                     r'identity="CN=certuser,O=dbtls" host=127\.0\.0\.1 port=\d+$',
                     lines[0]), lines[0]
    m = re.search(r'INFO instance "pg1": disconnection: session time: 0:00:(\d\d)\.(\d{3}) '
                  r'user=certuser database=app host=127\.0\.0\.1 port=\d+$', lines[1])
    assert m and 0.3 <= int(m.group(1)) + int(m.group(2)) / 1000 < 30, lines[1]


def test_foreign_ca_client_cert_refused(pg_server, dbtls, dbtlsd, state_dir, free_port, tmp_dir,
                                        psql):
    use_template(dbtls)
    port = make_instance(dbtls, free_port, pg_server.socket_path,
                         ssl_mode="TRUSTED_CLIENT_CERTIFICATE_REQUIRED")
    ca = ca_file(dbtls, tmp_dir)
    key = os.path.join(tmp_dir, "k.pem")
    crt = os.path.join(tmp_dir, "c.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", crt, "-days",
                    "2", "-subj", "/CN=certuser"], check=True, capture_output=True, timeout=30)
    os.chmod(key, 0o600)
    d = dbtlsd.start(state_dir)
    rc, o, err = psql(conninfo(port, user="certuser", password=None, sslmode="verify-full",
                               sslrootcert=ca, sslcert=crt, sslkey=key), "SELECT 1")
    assert rc != 0
    d.wait_log("TLS handshake with client 127.0.0.1")
    assert "CN=certuser" in d.log()


def test_expired_client_cert_refused(pg_server, dbtls, dbtlsd, state_dir, free_port, tmp_dir,
                                     psql):
    """A client certificate of the instance's own client CA is accepted while valid and refused
    once expired (no reload needed: the TLS library checks notAfter at each handshake)."""
    use_template(dbtls)
    port = make_instance(dbtls, free_port, pg_server.socket_path,
                         ssl_mode="TRUSTED_CLIENT_CERTIFICATE_REQUIRED")
    certs = os.path.join(tmp_dir, "short")
    os.mkdir(certs)
    issued = time.time()
    dbtls("ssl", "client-certs", "create", "certuser", "--instance", "pg1", "--out-dir", certs,
          "--validity", "20")
    not_after = subprocess.run(["openssl", "x509", "-noout", "-enddate", "-in",
                                os.path.join(certs, "client-cert.pem")], capture_output=True,
                               text=True, timeout=10, check=True).stdout
    d = dbtlsd.start(state_dir)
    ci = conninfo(port, user="certuser", password=None, sslmode="verify-full",
                  sslrootcert=os.path.join(certs, "server-ca.pem"),
                  sslcert=os.path.join(certs, "client-cert.pem"),
                  sslkey=os.path.join(certs, "client-key.pem"))
    rc, out, err = psql(ci, "SELECT current_user")
    if time.time() - issued < 15:  # still valid when the handshake ran (slow machine guard)
        assert rc == 0 and out.strip() == "certuser", (err, not_after)
    time.sleep(max(0.0, issued + 22 - time.time()))
    start = d.log_size()
    rc, out, err = psql(ci, "SELECT 1")
    assert rc != 0, out
    log = d.wait_log("certificate has expired", start=start)
    assert "CN=certuser" in log[start:]


# --- rotation without restart -----------------------------------------------------------------
def test_rotation_keeps_session_and_new_connections_get_new_cert(pg_server, dbtls, dbtlsd,
                                                                 state_dir, free_port, tmp_dir):
    use_template(dbtls)
    port = make_instance(dbtls, free_port, f"127.0.0.1:{pg_server.port}")
    d = dbtlsd.start(state_dir)
    dbtls("ssl", "server-certs", "create", "--instance", "pg1")
    ca = ca_file(dbtls, tmp_dir)
    before, _ = server_cert_serial(port, ca)
    session = psycopg.connect(conninfo(port, sslmode="verify-full", sslrootcert=ca),
                              autocommit=True)
    assert session.execute("SELECT 1").fetchone()[0] == 1
    start = d.log_size()
    dbtls("ssl", "server-certs", "rotate", "--instance", "pg1")
    d.wait_reload(start)
    after, _ = server_cert_serial(port, ca)
    assert after != before
    listing = dbtls.json("ssl", "server-certs", "list", "--instance", "pg1")
    text = json.dumps(listing).upper()
    assert after in text
    # the session opened before the rotation still works
    assert session.execute("SELECT 2").fetchone()[0] == 2
    with psycopg.connect(conninfo(port, sslmode="verify-full", sslrootcert=ca)) as c:
        assert c.execute("SELECT 3").fetchone()[0] == 3
    start = d.log_size()
    dbtls("ssl", "server-certs", "rollback", "--instance", "pg1")
    d.wait_reload(start)
    again, _ = server_cert_serial(port, ca)
    assert again == before
    assert session.execute("SELECT 4").fetchone()[0] == 4
    session.close()


# --- cancel, pgbench -------------------------------------------------------------------------
def test_cancel_request_routed(pg_server, dbtls, dbtlsd, state_dir, free_port):
    use_template(dbtls)
    port = make_instance(dbtls, free_port, f"127.0.0.1:{pg_server.port}",
                         ssl_mode="ALLOW_UNENCRYPTED_AND_ENCRYPTED")
    d = dbtlsd.start(state_dir, ["--workers", "2"])
    for sslmode in ("require", "disable"):
        with psycopg.connect(conninfo(port, host="127.0.0.1", sslmode=sslmode)) as c:
            assert_cancel(c)
    assert "cancel request for backend pid" in d.log()


def test_pgbench_through_front(pg_server, dbtls, dbtlsd, state_dir, free_port):
    use_template(dbtls)
    port = make_instance(dbtls, free_port, f"127.0.0.1:{pg_server.port}")
    d = dbtlsd.start(state_dir, ["--workers", "2"])
    ci = conninfo(port, host="127.0.0.1", sslmode="require")
    env = dict(os.environ, PGPASSWORD="alice-secret-1")
    cp = subprocess.run([f"{PG_BIN}/pgbench", "-i", "-s", "1", ci], capture_output=True,
                        text=True, timeout=120, env=env)
    assert cp.returncode == 0, cp.stderr
    cp = subprocess.run([f"{PG_BIN}/pgbench", "-c", "4", "-j", "2", "-T", "3", ci],
                        capture_output=True, text=True, timeout=120, env=env)
    assert cp.returncode == 0, cp.stderr
    assert "number of failed transactions: 0" in cp.stdout
    cp = subprocess.run([f"{PG_BIN}/pgbench", "-C", "-c", "2", "-t", "20", "-S", ci],
                        capture_output=True, text=True, timeout=120, env=env)
    assert cp.returncode == 0, cp.stderr
    assert "number of failed transactions: 0" in cp.stdout
    d.stop()


# --- backend down, hostile inputs, timeouts ------------------------------------------------------
def test_backend_down_fatal_08006(dbtls, dbtlsd, state_dir, free_port, psql):
    use_template(dbtls)
    dead = free_port()
    port = make_instance(dbtls, free_port, f"127.0.0.1:{dead}")
    dbtlsd.start(state_dir)
    with pytest.raises(psycopg.OperationalError) as ei:
        psycopg.connect(conninfo(port, sslmode="require", connect_timeout=10))
    assert "could not connect to the database server" in str(ei.value)
    assert f"127.0.0.1:{dead}" in str(ei.value)
    rc, out, err = psql(conninfo(port, sslmode="require"), "SELECT 1")
    assert rc != 0 and "could not connect" in err


def test_hostile_inputs_keep_daemon_serving(pg_server, dbtls, dbtlsd, state_dir, free_port,
                                            psql):
    use_template(dbtls)
    port = make_instance(dbtls, free_port, f"127.0.0.1:{pg_server.port}",
                         ssl_mode="ALLOW_UNENCRYPTED_AND_ENCRYPTED")
    d = dbtlsd.start(state_dir, ["--workers", "2", "--auth-timeout", "2"])

    def conn():
        return socket.create_connection(("127.0.0.1", port), timeout=5)

    # plaintext pipelined after SSLRequest (CVE-2021-3935): 'S' then FATAL 08P01, closed
    with conn() as s:
        s.sendall(SSL_REQUEST + startup_packet("alice"))
        data = recv_all(s)
        assert data[:1] == b"S"
        assert b"received unencrypted data after SSL request" in data
        assert b"08P01" in data
    # GSSENCRequest -> 'N', then a plain startup goes on
    with conn() as s:
        s.sendall(struct.pack("!II", 8, 80877104))
        assert s.recv(1) == b"N"
        s.sendall(startup_packet("trustuser"))
        s.settimeout(5)
        assert s.recv(1) == b"R"
    # SSLRequest twice (second inside TLS): refused
    with conn() as s:
        s.sendall(SSL_REQUEST)
        assert s.recv(1) == b"S"
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        t = ctx.wrap_socket(s, server_hostname="localhost")
        t.sendall(SSL_REQUEST)
        data = recv_all(t)
        assert b"unsupported frontend protocol 1234.5679" in data
        t.close()
    # oversize and undersize startup packets, garbage: closed without serving
    for payload in (struct.pack("!I", 10001) + b"\0" * 100, struct.pack("!I", 4),
                    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"):
        with conn() as s:
            s.sendall(payload)
            data = recv_all(s)
            assert b"R" not in data[:1]
    # direct TLS without ALPN: refused; with ALPN postgresql: served
    with conn() as s:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        t = ctx.wrap_socket(s, server_hostname="localhost")
        t.sendall(startup_packet("trustuser"))
        assert recv_all(t) == b""
        t.close()
    d.wait_log("without ALPN")
    with conn() as s:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.set_alpn_protocols(["postgresql"])
        t = ctx.wrap_socket(s, server_hostname="localhost")
        t.sendall(startup_packet("trustuser"))
        t.settimeout(5)
        assert t.recv(1) == b"R"
        t.close()
    # a slow client that stops mid-handshake is dropped at the auth timeout
    with conn() as s:
        s.sendall(SSL_REQUEST)
        assert s.recv(1) == b"S"
        s.sendall(b"\x16\x03\x01")
        t0 = time.monotonic()
        assert recv_all(s, timeout=10) == b""
        assert time.monotonic() - t0 < 8
    # a client that vanishes mid-relay
    s = conn()
    s.sendall(startup_packet("trustuser"))
    s.settimeout(5)
    assert s.recv(1) == b"R"
    s.close()
    # still serving
    rc, out, err = psql(conninfo(port, host="127.0.0.1", sslmode="require"), "SELECT 1")
    assert rc == 0, err
    assert d.alive()


def test_descriptor_limit_lifted_to_the_hard_one(pg_server, dbtls, dbtlsd, state_dir,
                                                 free_port):
    """Each session holds a descriptor per leg: started under a low soft limit (a shell's 1,024,
    here 256) dbtlsd lifts it to the hard one, and 400 clients at once are all answered
    instead of the ones past the soft limit waiting in the listen backlog."""
    use_template(dbtls)
    port = make_instance(dbtls, free_port, f"127.0.0.1:{pg_server.port}")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert hard == resource.RLIM_INFINITY or hard >= 1024, hard
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
    try:
        d = dbtlsd.start(state_dir, ["--workers", "1"])
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    with open(f"/proc/{d.pid}/limits") as f:
        row = next(line for line in f if line.startswith("Max open files")).split()
    want = "unlimited" if hard == resource.RLIM_INFINITY else str(hard)
    assert row[3] == want, row
    assert "file descriptors: up to" in d.log() and "raised from 256" in d.log()
    socks = []
    try:
        for _ in range(400):
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            s.sendall(SSL_REQUEST)
            socks.append(s)
        for i, s in enumerate(socks):
            s.settimeout(5)
            assert s.recv(1) == b"S", f"client {i} not answered"
    finally:
        for s in socks:
            s.close()
    assert d.alive()


# --- configuration changes --------------------------------------------------------------------
def test_listeners_follow_instances_and_bad_reload_keeps_old(pg_server, dbtls, dbtlsd, state_dir,
                                                             free_port, tmp_dir, psql):
    use_template(dbtls)
    port = make_instance(dbtls, free_port, f"127.0.0.1:{pg_server.port}")
    d = dbtlsd.start(state_dir)
    start = d.log_size()
    port2 = make_instance(dbtls, free_port, f"127.0.0.1:{pg_server.port}", name="pg2")
    d.wait_log(f"listening on 127.0.0.1:{port2}", start=start)
    rc, out, err = psql(conninfo(port2, sslmode="require"), "SELECT 1")
    assert rc == 0, err
    start = d.log_size()
    dbtls("instances", "delete", "pg2")
    d.wait_log(f"stopped listening on 127.0.0.1:{port2}", start=start)
    time.sleep(0.3)
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port2), timeout=2).close()
    # a broken rule file: the reload fails, names the instance, and the old rules stay
    bad = os.path.join(tmp_dir, "bad.conf")
    with open(bad, "w") as f:
        f.write("hostssl all all all md5x\n")
    # the command checks the rules with the daemon's parser: refused, one line, nothing stored
    cp = dbtls.fail("instances", "patch", "pg1", "--hba-file", bad)
    assert 'invalid authentication method "md5x"' in cp.stderr, cp.stderr
    # rules that reach the store anyway (written by an older dbtls) fail the reload
    start = d.log_size()
    dbtls.set_instance_field("pg1", "hba_text", "hostssl all all all md5x\n")
    log = d.wait_log("reload failed", start=start)
    assert 'instance "pg1"' in log[start:]
    rc, out, err = psql(conninfo(port, sslmode="require"), "SELECT 1")
    assert rc == 0, err
    # and at start the same configuration refuses to start
    d.stop()
    bad_d = dbtlsd.start(state_dir, wait_ready=False)
    assert bad_d.proc.wait(timeout=20) == 1
    bad_d.stopped = True
    assert 'instance "pg1"' in bad_d.log()
    assert "md5x" in bad_d.log()


def test_sighup_and_graceful_shutdown(pg_server, dbtls, dbtlsd, state_dir, free_port):
    use_template(dbtls)
    port = make_instance(dbtls, free_port, f"127.0.0.1:{pg_server.port}")
    d = dbtlsd.start(state_dir, ["--shutdown-timeout", "20"])
    start = d.log_size()
    d.reload()
    d.wait_log("SIGHUP", start=start)
    d.wait_reload(start)
    session = psycopg.connect(conninfo(port, sslmode="require"), autocommit=True)
    d.proc.send_signal(15)
    d.wait_log("shutting down")
    time.sleep(0.5)
    # the open session keeps working; new connections are refused
    assert session.execute("SELECT 5").fetchone()[0] == 5
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    assert d.alive()
    session.close()
    assert d.proc.wait(timeout=15) == 0
    d.stopped = True


def test_admin_socket_connections(pg_server, dbtls, dbtlsd, state_dir, free_port, tmp_dir):
    use_template(dbtls)
    port = make_instance(dbtls, free_port, f"127.0.0.1:{pg_server.port}")
    d = dbtlsd.start(state_dir)
    assert os.stat(d.admin_socket).st_mode & 0o777 == 0o600
    with psycopg.connect(conninfo(port, sslmode="require", application_name="front-test")) as c:
        pid_port = c.execute("SELECT client_port FROM pg_stat_activity "
                             "WHERE pid = pg_backend_pid()").fetchone()[0]
        assert pid_port is not None
        cp = subprocess.run(["curl", "-s", "--unix-socket", d.admin_socket,
                             "http://localhost/v1/connections"], capture_output=True, text=True,
                            timeout=10)
        doc = json.loads(cp.stdout)
        rows = [r for r in doc["connections"] if r["application_name"] == "front-test"]
        assert len(rows) == 1
        r = rows[0]
        assert r["instance"] == "pg1" and r["user"] == "alice" and r["database"] == "app"
        assert r["ssl"] is True and r["version"] == "TLSv1.3" and r["bits"] == 256
        assert r["client_addr"] == "127.0.0.1" and r["bytes_in"] > 0 and r["bytes_out"] > 0
        assert r["backend_start"].endswith("Z")
        listed = dbtls.json("connections")
        assert any(x.get("application_name") == "front-test" for x in
                   (listed if isinstance(listed, list) else listed.get("connections", [])))


def test_per_instance_ca_rotation_with_two_ca_pem(pg_server, dbtls, dbtlsd, state_dir, free_port,
                                                 tmp_dir, psql):
    """Cloud SQL's per-instance CA flow: download the PEM with both CAs after `create`, and the
    same file verifies the server across rotate and rollback; an open session survives both."""
    use_template(dbtls)
    port = make_instance(dbtls, free_port, f"127.0.0.1:{pg_server.port}",
                         extra=("--ca-mode", "per-instance"))
    d = dbtlsd.start(state_dir)
    only_active = ca_file(dbtls, tmp_dir)
    dbtls("ssl", "server-ca-certs", "create", "--instance", "pg1")
    both = os.path.join(tmp_dir, "both.pem")
    dbtls("ssl", "server-ca-certs", "download", "--instance", "pg1", "--out", both)
    with open(both) as f:
        assert f.read().count("BEGIN CERTIFICATE") >= 2
    ci = conninfo(port, sslmode="verify-full", sslrootcert=both)
    session = psycopg.connect(ci, autocommit=True)
    rc, out, err = psql(ci, "SELECT 1")
    assert rc == 0, err
    start = d.log_size()
    dbtls("ssl", "server-ca-certs", "rotate", "--instance", "pg1")
    d.wait_reload(start)
    # new connections: the new CA signs the server certificate; the two-CA file verifies it,
    # the file with only the old CA does not
    rc, out, err = psql(ci, "SELECT 2")
    assert rc == 0, err
    rc, out, err = psql(conninfo(port, sslmode="verify-full", sslrootcert=only_active),
                        "SELECT 1")
    assert rc != 0 and "certificate verify failed" in err
    assert session.execute("SELECT 3").fetchone()[0] == 3
    start = d.log_size()
    dbtls("ssl", "server-ca-certs", "rollback", "--instance", "pg1")
    d.wait_reload(start)
    rc, out, err = psql(ci, "SELECT 4")
    assert rc == 0, err
    rc, out, err = psql(conninfo(port, sslmode="verify-full", sslrootcert=only_active),
                        "SELECT 5")
    assert rc == 0, err
    assert session.execute("SELECT 6").fetchone()[0] == 6
    session.close()
