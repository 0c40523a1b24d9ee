"""What a new connection through the front costs in system calls, counted by strace on the
running dbtlsd while real clients (psycopg, PyMySQL) connect over TLS, query and hang up.

On the machines dbtls is measured on a system call and the sleep/wake-up around it are most of
the front's CPU per connection (README, Benchmarks), so the front makes no call it can know to be
useless: no read that ends in EAGAIN where epoll will say when bytes arrive (after 'S', after a
message that was read whole, on a backend just connected, on a MySQL client before the
greeting), no accept4 that ends in EAGAIN, no per-connection TCP_NODELAY (the listener's is
inherited), no EPOLLOUT wait for a unix-socket connect that completed at once.
"""
import collections
import os
import re
import signal
import subprocess
import time

import psycopg

from cli_helpers import use_template
from mysql_wire import ca_file as my_ca_file, pymy

N = 20


class Strace:
    """strace -c -f attached to a running process; counts per system call once stopped (strace
    comes with scripts/install-deps.sh)."""

    def __init__(self, pid, out):
        self.out = out
        self.proc = subprocess.Popen(["strace", "-c", "-f", "-p", str(pid), "-o", out],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        # strace prints "attached" once per thread on stderr before tracing starts
        deadline = time.time() + 10
        line = b""
        while time.time() < deadline and b"attached" not in line:
            line = self.proc.stderr.readline()
        assert b"attached" in line, f"strace did not attach: {line!r}"
        time.sleep(0.2)

    def stop(self):
        self.proc.send_signal(signal.SIGINT)
        self.proc.communicate(timeout=20)
        calls, errors = collections.Counter(), collections.Counter()
        with open(self.out) as f:
            for line in f:
                m = re.match(r"\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(\d*)\s*(\w+)$", line)
                if m and m.group(3) != "total":
                    calls[m.group(3)] += int(m.group(1))
                    errors[m.group(3)] += int(m.group(2) or 0)
        return calls, errors


def per_connection(d, tmp_dir, connect_once):
    connect_once()  # warm: the first connection also loads what later ones reuse
    st = Strace(d.proc.pid, os.path.join(tmp_dir, "strace.txt"))
    try:
        for _ in range(N):
            connect_once()
        time.sleep(0.5)  # the front sees the last hang-up and closes both legs
    finally:
        calls, errors = st.stop()
    return calls, errors


def check_economy(calls, errors, tcp_backend=False, epoll_ctl_per_conn=4):
    assert calls["accept4"] == N, calls
    assert errors["accept4"] == 0, "an accept4 ended in EAGAIN"
    # accepted sockets inherit TCP_NODELAY and SO_KEEPALIVE from the listener; a TCP backend leg
    # (a connected socket inherits nothing) sets both
    assert calls["setsockopt"] == (2 * N if tcp_backend else 0), calls
    # the only read that may end in EAGAIN is the TLS library's own, after it wrote the server's
    # handshake flight (it reads on for the client's Finished)
    assert errors["read"] <= 1.5 * N, (calls, errors)
    # registering both legs and taking them off at close (a TCP backend: its EPOLLOUT wait for
    # the connect, then EPOLLIN)
    assert calls["epoll_ctl"] <= epoll_ctl_per_conn * N + 2, calls


def instance(dbtls, free_port, name, engine, version, backend):
    """An ENCRYPTED_ONLY instance on a free loopback port, which it returns."""
    use_template(dbtls)
    port = free_port()
    dbtls("instances", "create", name, "--engine", engine, "--engine-version", version,
          "--listen", f"127.0.0.1:{port}", "--backend", backend, "--endpoint", "localhost",
          "--ssl-mode", "ENCRYPTED_ONLY")
    return port


def test_pg_connection_syscalls(pg_server, dbtls, dbtlsd, state_dir, free_port, tmp_dir):
    port = instance(dbtls, free_port, "pg1", "postgres", "15", pg_server.socket_path)
    d = dbtlsd.start(state_dir, ["--workers", "1"])

    def connect_once():
        with psycopg.connect(host="127.0.0.1", port=port, user="alice",
                             password="alice-secret-1", dbname="app", sslmode="require",
                             connect_timeout=10) as c:
            assert c.execute("SELECT 1").fetchone() == (1,)

    calls, errors = per_connection(d, tmp_dir, connect_once)
    check_economy(calls, errors)
    # the backend is a unix socket: its connect completes at once and is not waited on
    assert calls["connect"] == N and errors["connect"] == 0, calls
    assert d.alive()


def test_mysql_connection_syscalls(mariadb_server, dbtls, dbtlsd, state_dir, free_port,
                                   tmp_dir):
    port = instance(dbtls, free_port, "my1", "mariadb", "10.11",
                    f"127.0.0.1:{mariadb_server.port}")
    ca = my_ca_file(dbtls, tmp_dir)
    d = dbtlsd.start(state_dir, ["--workers", "1"])
    user, pw = mariadb_server.ALICE

    def connect_once():
        conn = pymy(port, user, pw, ssl_opts={"ca": ca})
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
            assert cur.fetchone() == (1,)
        conn.close()

    calls, errors = per_connection(d, tmp_dir, connect_once)
    # the backend leg is TCP here: TCP_NODELAY and SO_KEEPALIVE on it
    check_economy(calls, errors, tcp_backend=True, epoll_ctl_per_conn=5)
    assert d.alive()
