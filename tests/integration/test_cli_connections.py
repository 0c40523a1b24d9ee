"""`dbtls connections`: asks dbtlsd over its admin unix socket (HTTP GET /v1/connections). The
admin API is served here by a small stand-in HTTP server on a unix socket, so the CLI side is
tested on its own: request path, table and JSON output, --instance filter, --admin-socket, and
the one-line errors when no daemon runs or it answers badly."""
import http.server
import json
import os
import socketserver
import threading
import time

import pytest

CONNS = {"connections": [
    {"instance": "db1", "client_addr": "127.0.0.1", "client_port": 51234, "user": "alice",
     "database": "app", "application_name": "psql", "ssl": True, "version": "TLSv1.3",
     "cipher": "TLS_AES_256_GCM_SHA384", "bits": 256, "client_dn": "CN=alice",
     "client_serial": "0A1B", "issuer_dn": "CN=db1 client CA",
     "backend_start": "2026-11-23T18:00:00Z", "bytes_in": 1200, "bytes_out": 34000},
    {"instance": "db2", "client_addr": "::1", "client_port": 40000, "user": "bob",
     "database": "shop", "application_name": "", "ssl": False, "version": None,
     "cipher": None, "bits": None, "client_dn": None, "client_serial": None,
     "issuer_dn": None, "backend_start": "2026-11-23T18:01:00Z", "bytes_in": 10,
     "bytes_out": 20},
]}


class FakeAdmin:
    def __init__(self, path, status=200, body=None):
        self.path = path
        self.requests = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                outer.requests.append(self.path)
                data = body if body is not None else json.dumps(CONNS).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *a):
                pass

            def address_string(self):
                return "unix"

        class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
            daemon_threads = True

        self.server = Server(path, Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        if os.path.exists(self.path):
            os.unlink(self.path)


@pytest.fixture
def admin(state_dir):
    servers = []

    def start(path=None, **kw):
        s = FakeAdmin(path or os.path.join(state_dir, "admin.sock"), **kw)
        servers.append(s)
        return s
    yield start
    for s in servers:
        s.close()


def test_table_and_json(dbtls, admin):
    srv = admin()
    j = dbtls.json("connections")
    assert j == CONNS
    assert srv.requests == ["/v1/connections"]
    out = dbtls("connections").stdout.splitlines()
    assert out[0].split()[:4] == ["INSTANCE", "CLIENT", "USER", "DATABASE"]
    assert "127.0.0.1:51234" in out[1] and "TLSv1.3" in out[1] and "CN=alice" in out[1]
    assert "[::1]:40000" in out[2] and "false" in out[2]


def test_instance_filter(dbtls, admin):
    admin()
    j = dbtls.json("connections", "--instance", "db2")
    assert [c["user"] for c in j["connections"]] == ["bob"]
    cp = dbtls("connections", "--instance", "nothing")
    assert cp.stdout == "" and "Listed 0 items." in cp.stderr


def test_admin_socket_option(dbtls, admin, tmp_dir):
    path = os.path.join(tmp_dir, "other.sock")
    admin(path)
    assert dbtls.json("connections", "--admin-socket", path) == CONNS
    cp = dbtls.fail("connections")
    assert os.path.join(dbtls.state_dir, "admin.sock") in cp.stderr


def test_no_daemon(dbtls):
    sock = os.path.join(dbtls.state_dir, "admin.sock")
    cp = dbtls.fail("connections")
    assert cp.stderr.strip() == f"dbtls: cannot reach dbtlsd at {sock}: No such file or directory"


def test_stale_socket_file(dbtls):
    import socket
    sock = os.path.join(dbtls.state_dir, "admin.sock")
    s = socket.socket(socket.AF_UNIX)
    s.bind(sock)
    s.close()  # bound but nobody listens: a daemon that died
    cp = dbtls.fail("connections")
    assert "Connection refused" in cp.stderr and sock in cp.stderr


def test_daemon_errors_are_one_line(dbtls, admin):
    admin(status=500, body=b'{"error": "generation not loaded"}')
    cp = dbtls.fail("connections")
    assert "HTTP 500" in cp.stderr and "generation not loaded" in cp.stderr


@pytest.mark.parametrize("body", [b"not json", b'{"no": "list"}'])
def test_bad_reply(dbtls, admin, body):
    admin(body=body)
    cp = dbtls.fail("connections")
    assert "dbtlsd at" in cp.stderr


# --- against the real daemon ------------------------------------------------------------------
def test_real_dbtlsd_shows_a_client_certificate_session(dbtls, dbtlsd, pg_server, free_port,
                                                        tmp_dir):
    """End to end: the files of `ssl client-certs create` let psycopg log in through dbtlsd, and
    `dbtls connections` (table and JSON) shows that session with its TLS parameters and client
    certificate; --instance filters; after the daemon stops, the one-line error."""
    import psycopg
    from cli_helpers import use_template, serial_of, openssl

    def openssl_name(cert, which):
        out = openssl("x509", "-noout", which, "-nameopt", "compat", input=cert.encode())
        return out.stdout.decode().strip().split("=", 1)[1]
    use_template(dbtls)
    port = free_port()
    dbtls("instances", "create", "live", "--engine", "postgres", "--engine-version", "15",
          "--listen", f"127.0.0.1:{port}", "--backend", pg_server.socket_path,
          "--endpoint", "localhost", "--ssl-mode", "ENCRYPTED_ONLY")
    out = os.path.join(tmp_dir, "alice")
    dbtls("ssl", "client-certs", "create", "alice", "--instance", "live", "--out-dir", out)
    d = dbtlsd.start(dbtls.state_dir)
    user, password = pg_server.ALICE
    conn = psycopg.connect(host="localhost", port=port, user=user, password=password,
                           dbname="app", application_name="cli-test", sslmode="verify-full",
                           sslrootcert=os.path.join(out, "server-ca.pem"),
                           sslcert=os.path.join(out, "client-cert.pem"),
                           sslkey=os.path.join(out, "client-key.pem"), connect_timeout=10)
    try:
        assert conn.execute("SELECT 1").fetchone() == (1,)
        j = dbtls.json("connections")
        mine = [c for c in j["connections"] if c.get("application_name") == "cli-test"]
        assert len(mine) == 1, j
        c = mine[0]
        assert c["instance"] == "live" and c["user"] == "alice" and c["database"] == "app"
        assert c["ssl"] is True and c["version"] in ("TLSv1.2", "TLSv1.3") and c["cipher"]
        cert = open(os.path.join(out, "client-cert.pem")).read()
        # The DNs as pg_stat_ssl prints them (entries in certificate order, "/" separated: what
        # PostgreSQL's own TLS shows for this certificate, see test_export), checked against
        # the openssl command's one-line form of the same certificate.
        assert c["client_dn"] == "/O=dbtls/CN=alice"
        assert c["client_dn"] == openssl_name(cert, "-subject")
        assert c["issuer_dn"] == openssl_name(cert, "-issuer") and c["issuer_dn"].startswith("/")
        # Decimal, as pg_stat_ssl.client_serial shows it.
        assert int(c["client_serial"]) == int(serial_of(cert), 16)
        assert c["client_addr"] == "127.0.0.1" and c["backend_start"].endswith("Z")
        # idle after its query: the front holds no buffer for it (only the TLS library's own
        # state), whatever the last messages each way were; and idle since its login, with no
        # query yet (the buffers the startup and the backend's greeting were read into)
        assert c["buffer_bytes"] == 0, c
        with psycopg.connect(host="localhost", port=port, user=user, password=password,
                             dbname="app", application_name="no-query", sslmode="require",
                             connect_timeout=10):
            time.sleep(0.3)
            j = dbtls.json("connections")
            fresh = [c for c in j["connections"] if c.get("application_name") == "no-query"]
            assert len(fresh) == 1 and fresh[0]["buffer_bytes"] == 0, j
            # TLS without a client certificate: no certificate fields (null, as pg_stat_ssl)
            assert fresh[0]["ssl"] is True, fresh
            assert [fresh[0][k] for k in ("client_dn", "client_serial", "issuer_dn")] == \
                [None, None, None], fresh
        table = dbtls("connections", "--instance", "live").stdout
        assert "alice" in table and "cli-test" in table and c["version"] in table
        assert dbtls.json("connections", "--instance", "other")["connections"] == []
    finally:
        conn.close()
    d.stop()
    cp = dbtls.fail("connections")
    assert "cannot reach dbtlsd at" in cp.stderr
