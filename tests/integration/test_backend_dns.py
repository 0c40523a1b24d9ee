"""A backend named by host name follows its DNS record (dbtlsd --backend-dns-interval): the
failover of RDS Multi-AZ, of Patroni behind a DNS name, of a cloud private zone moves the name,
and new connections through the front must go where it points now, with no SIGHUP; sessions
already open stay on the server they have.

Two real PostgreSQL 15 servers listen on the same port, of 127.0.0.1 and of ::1; the name
`dbhost.test` points at one, then the other. dbtlsd runs in a mount namespace of its own whose
/etc/hosts is a file of the test (unshare + a bind mount, as root), so the machine's /etc/hosts
is never touched and only dbtlsd sees the name.
"""
import os
import shutil
import stat
import subprocess
import time

import psycopg
import pytest

import conftest
import servers
from cli_helpers import use_template

WRAPPER = """#!/bin/sh
exec unshare --mount --propagation private sh -c \\
  'mount --bind "$DBTLS_TEST_HOSTS" /etc/hosts && exec "$0" "$@"' "$DBTLS_TEST_DBTLSD" "$@"
"""


@pytest.fixture
def two_servers(free_port):
    port = free_port()
    made = []
    try:
        for ip in ("127.0.0.1", "::1"):
            srv = servers.PgServer(port=port, extra_conf={"listen_addresses": f"'{ip}'"})
            made.append(srv)
            srv.start()
        yield port, made
    finally:
        for srv in made:
            srv.stop()


ALICE = dict(user="alice", password="alice-secret-1", dbname="app")


def server_addr(port):
    with psycopg.connect(host="127.0.0.1", port=port, sslmode="require", connect_timeout=10,
                         **ALICE) as c:
        return c.execute("SELECT host(inet_server_addr())").fetchone()[0]


def test_new_connections_follow_the_backend_name(two_servers, dbtls, dbtlsd_bin, state_dir,
                                                 free_port, tmp_dir):
    if os.geteuid() != 0 or not shutil.which("unshare"):
        pytest.fail("needs root and unshare (util-linux): the CI runs as root")
    pg_port, _ = two_servers
    hosts = os.path.join(tmp_dir, "hosts")
    with open(hosts, "w") as f:
        f.write("127.0.0.1 localhost dbhost.test\n")
    wrapper = os.path.join(tmp_dir, "dbtlsd-ns")
    with open(wrapper, "w") as f:
        f.write(WRAPPER)
    os.chmod(wrapper, stat.S_IRWXU)
    use_template(dbtls)
    port = free_port()
    dbtls("instances", "create", "pg1", "--engine", "postgres", "--engine-version", "15",
          "--listen", f"127.0.0.1:{port}", "--backend", f"dbhost.test:{pg_port}",
          "--endpoint", "localhost", "--ssl-mode", "ENCRYPTED_ONLY")
    d = conftest.DbtlsdProcess(wrapper, state_dir, ["--workers", "1", "--backend-dns-interval",
                                                    "1"],
                               {"DBTLS_TEST_HOSTS": hosts, "DBTLS_TEST_DBTLSD": dbtlsd_bin},
                               tmp_dir)
    try:
        d.wait_log("dbtlsd: ready", timeout=20)
        assert server_addr(port) == "127.0.0.1"
        with psycopg.connect(host="127.0.0.1", port=port, sslmode="require", connect_timeout=10,
                             **ALICE) as held:
            # the record moves (in place: the bind mount keeps the file's inode)
            start = d.log_size()
            with open(hosts, "w") as f:
                f.write("127.0.0.1 localhost\n::1 dbhost.test\n")
            d.wait_log('instance "pg1": backend dbhost.test now resolves to ::1, not '
                       '127.0.0.1: reloading', start=start)
            d.wait_reload(start)
            assert server_addr(port) == "::1"
            # the session opened before stays where it was
            assert held.execute("SELECT host(inet_server_addr())").fetchone()[0] == "127.0.0.1"
            # a name that stops resolving keeps its last address, said once
            start = d.log_size()
            with open(hosts, "w") as f:
                f.write("127.0.0.1 localhost\n")
            d.wait_log("backend host dbhost.test does not resolve now", start=start)
            assert server_addr(port) == "::1"
            time.sleep(2.5)
            assert d.log()[start:].count("does not resolve now") == 1
    finally:
        rc = d.stop(expect_clean=False)
    assert rc == 0, d.log()


def test_interval_flag_errors(dbtlsd_bin, tmp_dir):
    cp = subprocess.run([dbtlsd_bin, "--state-dir", tmp_dir, "--backend-dns-interval", "soon"],
                        capture_output=True, text=True, timeout=30)
    assert cp.returncode == 2 and cp.stderr.splitlines()[0] == (
        'dbtlsd: --backend-dns-interval: "soon" is not a number of seconds from 0 to 86400')
