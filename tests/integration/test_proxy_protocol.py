"""dbtlsd behind a TCP load balancer that speaks the PROXY protocol (HAProxy send-proxy /
send-proxy-v2, AWS NLB, nginx stream proxy_protocol): `--proxy-protocol-from` names the
balancers; their connections start with a PROXY header and the client address in it is the one
the access rules, the logs, `dbtls connections` and --client-info see. Everyone else connects as
before, and a header from them means nothing.

The balancer here is a small Python relay on 127.0.0.1 that connects to dbtlsd over ::1 (the
listed balancer address: instances behind it listen on [::1]; clients on 127.0.0.1 are not
balancers), sends a version 1 or 2 header claiming a client address from the documentation
ranges, then copies bytes both ways; real clients (psql, psycopg, PyMySQL) connect through it
with TLS verified end to end.
"""
import ipaddress
import os
import socket
import struct
import subprocess
import threading
import time

import psycopg
import pytest

import servers
from cli_helpers import use_template
from mysql_wire import pymy
from test_pg_front import SSL_REQUEST, ca_file, conninfo, startup_packet

LB_ADDR = "::1"
V2_SIG = b"\r\n\r\n\0\r\nQUIT\n"


def proxy_header(version, src, sport, dst="127.0.0.1", dport=5432, local=False):
    ip = ipaddress.ip_address(src)
    if version == 1:
        fam = "TCP4" if ip.version == 4 else "TCP6"
        return f"PROXY {fam} {src} {dst if ip.version == 4 else '::1'} {sport} {dport}\r\n".encode()
    if local:
        return V2_SIG + bytes([0x20, 0x00, 0, 0])
    if ip.version == 4:
        body = ip.packed + ipaddress.ip_address(dst).packed + struct.pack("!HH", sport, dport)
        fam = 0x11
    else:
        body = ip.packed + ipaddress.ip_address("::1").packed + struct.pack("!HH", sport, dport)
        fam = 0x21
    body += b"\x04\x00\x01\x00"  # a TLV (NOOP), as balancers add: skipped
    return V2_SIG + bytes([0x21, fam]) + struct.pack("!H", len(body)) + body


class Balancer:
    """Accepts on 127.0.0.1:port; each connection goes to target from LB_ADDR, led by
    header(client_port) (None: no header at all, bytes: sent as they are)."""

    def __init__(self, target_port, header):
        self.target_port = target_port
        self.header = header
        self.ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(16)
        self.port = self.ls.getsockname()[1]
        self.socks = []
        self.stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stopped:
            try:
                c, peer = self.ls.accept()
            except OSError:
                return
            up = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            try:
                up.connect((LB_ADDR, self.target_port))
            except OSError:
                c.close()
                continue
            self.socks += [c, up]
            h = self.header(peer[1]) if callable(self.header) else self.header
            if h:
                up.sendall(h)
            for a, b in ((c, up), (up, c)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a, b):
        try:
            while True:
                data = a.recv(65536)
                if not data:
                    break
                b.sendall(data)
        except OSError:
            pass
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self):
        self.stopped = True
        self.ls.close()
        for s in self.socks:
            try:
                s.close()
            except OSError:
                pass


@pytest.fixture
def balancers():
    made = []

    def make(target_port, header):
        b = Balancer(target_port, header)
        made.append(b)
        return b
    yield make
    for b in made:
        b.close()


def pg_front(dbtls, dbtlsd, state_dir, free_port, pg_server, tmp_dir, extra=()):
    """ALLOW instances whose rules reject 192.0.2.0/24: pg1 on [::1] behind the balancer, pg2 on
    127.0.0.1 for clients that are not balancers. Returns (pg1 port, pg2 port, CA, daemon)."""
    use_template(dbtls)
    hba = os.path.join(tmp_dir, "hba.conf")
    with open(hba, "w") as f:
        f.write("host all all 192.0.2.0/24 reject\nhost all all all backend\n")
    ports = []
    for name, listen in (("pg1", "[::1]"), ("pg2", "127.0.0.1")):
        ports.append(free_port())
        dbtls("instances", "create", name, "--engine", "postgres", "--engine-version", "15",
              "--listen", f"{listen}:{ports[-1]}", "--backend", pg_server.socket_path,
              "--endpoint", "localhost", "--ssl-mode", "ALLOW_UNENCRYPTED_AND_ENCRYPTED",
              "--hba-file", hba, "--client-info", "on")
    d = dbtlsd.start(state_dir, ["--workers", "2", "--proxy-protocol-from", f"{LB_ADDR}/128",
                                 *extra])
    return ports[0], ports[1], ca_file(dbtls, tmp_dir), d


def connection_of(dbtls, app):
    rows = [c for c in dbtls.json("connections")["connections"]
            if c.get("application_name") == app]
    assert len(rows) == 1, rows
    return rows[0]


@pytest.mark.parametrize("version", [1, 2])
def test_client_address_from_the_header(pg_server, dbtls, dbtlsd, state_dir, free_port, tmp_dir,
                                        psql, balancers, version):
    port, _, ca, d = pg_front(dbtls, dbtlsd, state_dir, free_port, pg_server, tmp_dir)
    ok = balancers(port, proxy_header(version, "198.51.100.9", 4711))
    refused = balancers(port, proxy_header(version, "192.0.2.7", 4712))
    six = balancers(port, proxy_header(version, "2001:db8::5", 4713))

    # the access rules see the client, not the balancer
    rc, so, se = psql(conninfo(refused.port, sslmode="verify-full", sslrootcert=ca), "SELECT 1")
    assert rc != 0
    assert ('pg_hba.conf rejects connection for host "192.0.2.7", user "alice", database "app", '
            'SSL encryption') in se, se
    d.wait_log('client 192.0.2.7 port 4712 refused')

    # so do `dbtls connections` and the backend (--client-info)
    for lb, addr, sport in ((ok, "198.51.100.9", 4711), (six, "2001:db8::5", 4713)):
        app = f"via-lb-{lb.port}"
        with psycopg.connect(conninfo(lb.port, sslmode="verify-full", sslrootcert=ca,
                                      application_name=app), connect_timeout=10) as c:
            assert c.execute("SELECT current_setting('dbtls.client_addr'), "
                             "current_setting('dbtls.client_port')").fetchone() == \
                (addr, str(sport))
            row = connection_of(dbtls, app)
            assert (row["client_addr"], row["client_port"], row["ssl"]) == (addr, sport, True)


def test_local_header_unknown_and_untrusted_peers(pg_server, dbtls, dbtlsd, state_dir,
                                                   free_port, tmp_dir, psql, balancers):
    port, direct, ca, d = pg_front(dbtls, dbtlsd, state_dir, free_port, pg_server, tmp_dir)
    # LOCAL (the balancer's own check) and UNKNOWN: the balancer's address stands
    for header in (proxy_header(2, "0.0.0.0", 0, local=True), b"PROXY UNKNOWN\r\n"):
        lb = balancers(port, header)
        app = f"local-{lb.port}"
        with psycopg.connect(conninfo(lb.port, sslmode="require", application_name=app),
                             connect_timeout=10):
            assert connection_of(dbtls, app)["client_addr"] == LB_ADDR
    # a client that is not a balancer connects as ever, and a header from it is not believed:
    # "PROX" is the length word of a startup packet, and PostgreSQL closes on such a length
    # without a word to the client, logging why
    rc, so, se = psql(conninfo(direct, sslmode="require"), "SELECT 1")
    assert rc == 0, se
    start = d.log_size()
    s = socket.create_connection(("127.0.0.1", direct), timeout=10)
    s.sendall(proxy_header(1, "198.51.100.9", 4711) + startup_packet("alice"))
    assert servers.recv_all(s) == b""
    s.close()
    d.wait_log("client 127.0.0.1 port", start=start)
    d.wait_log("invalid length of startup packet", start=start)
    assert "198.51.100.9" not in d.log()[start:]


def test_a_balancer_without_a_valid_header_is_cut(pg_server, dbtls, dbtlsd, state_dir, free_port,
                                                  tmp_dir, psql, balancers):
    port, _, ca, d = pg_front(dbtls, dbtlsd, state_dir, free_port, pg_server, tmp_dir,
                              extra=("--auth-timeout", "2"))
    start = d.log_size()
    cases = [(None, "no PROXY protocol header"),
             (b"PROXY TCP4 198.51.100.9 127.0.0.1 99999 5432\r\n", "invalid port"),
             (V2_SIG + bytes([0x21, 0x11, 0, 4, 1, 2, 3, 4]), "IPv4 addresses truncated")]
    for header, why in cases:
        lb = balancers(port, header)
        s = socket.create_connection(("127.0.0.1", lb.port), timeout=10)
        s.sendall(SSL_REQUEST)
        assert servers.recv_all(s) == b""  # closed, nothing said: the peer is not a client
        s.close()
        d.wait_log(f"connection from load balancer {LB_ADDR} port", start=start)
        d.wait_log(why, start=start)
    # a header that never completes is cut at the pre-authentication deadline like any stall;
    # meanwhile everyone else is served
    stalled = balancers(port, b"PROXY TCP4 198.51.")
    s = socket.create_connection(("127.0.0.1", stalled.port), timeout=10)
    t0 = time.monotonic()
    ok = balancers(port, proxy_header(2, "198.51.100.9", 4711))
    rc, so, se = psql(conninfo(ok.port, sslmode="require"), "SELECT 1")
    assert rc == 0, se
    assert servers.recv_all(s, timeout=10) == b""
    assert 1.5 <= time.monotonic() - t0 < 9
    s.close()
    d.wait_log("no whole PROXY header in time", start=start)
    assert d.alive()


def test_mysql_behind_the_balancer(mariadb_server, dbtls, dbtlsd, state_dir, free_port, tmp_dir,
                                   balancers):
    """MySQL's server speaks first: the greeting waits until the header has been read."""
    use_template(dbtls)
    port = free_port()
    dbtls("instances", "create", "my1", "--engine", "mariadb", "--engine-version", "10.11",
          "--listen", f"[::1]:{port}", "--backend", f"127.0.0.1:{mariadb_server.port}",
          "--endpoint", "localhost", "--ssl-mode", "ENCRYPTED_ONLY")
    ca = os.path.join(tmp_dir, "my-ca.pem")
    dbtls("ssl", "server-ca-certs", "download", "--instance", "my1", "--out", ca)
    dbtlsd.start(state_dir, ["--workers", "1", "--proxy-protocol-from", "192.0.2.0/24,::1"])
    for version in (1, 2):
        lb = balancers(port, proxy_header(version, "203.0.113.44", 3307 + version))
        conn = pymy(lb.port, *mariadb_server.ALICE, ssl_opts={"ca": ca, "check_hostname": True})
        with conn.cursor() as cur:
            cur.execute("SELECT 6 * 7")
            assert cur.fetchone() == (42,)
            rows = [c for c in dbtls.json("connections")["connections"] if c["instance"] == "my1"]
            assert [(r["client_addr"], r["client_port"]) for r in rows] == \
                [("203.0.113.44", 3307 + version)], rows
        conn.close()
        deadline = time.monotonic() + 10
        while dbtls.json("connections")["connections"] and time.monotonic() < deadline:
            time.sleep(0.1)


@pytest.mark.parametrize("value,why", [
    ("lb.example.com", '"lb.example.com" is not an IP address or range'),
    ("10.0.0.0/33", '"10.0.0.0/33": invalid prefix length (0 to 32)'),
    (",", '"," names no address range'),
])
def test_flag_errors(dbtlsd_bin, tmp_dir, value, why):
    cp = subprocess.run([dbtlsd_bin, "--state-dir", tmp_dir, "--proxy-protocol-from", value],
                        capture_output=True, text=True, timeout=30)
    assert cp.returncode == 2 and cp.stderr.splitlines()[0] == \
        f"dbtlsd: --proxy-protocol-from: {why}", cp.stderr
