"""`dbtls connections`: asks dbtlsd over its admin unix socket (HTTP GET /v1/connections). The
admin API is served here by a small stand-in HTTP server on a unix socket, so the CLI side is
tested on its own: request path, table and JSON output, --instance filter, --admin-socket, and
the one-line errors when no daemon runs or it answers badly."""
import http.server
import json
import os
import socketserver
import threading

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
