"""The health listener (dbtlsd --health-listen) and the drain on SIGTERM (--drain-delay): what a
load balancer in front of several dbtlsd nodes (DESIGN.md §2) checks before it sends a client.

/healthz says whether this node serves; /healthz/INSTANCE also says whether the instance's backend
answers, against a real PostgreSQL 15 and a real MariaDB: from what sessions saw in the last 30 s,
else by trying it the way a session reaches it, without logging in (PostgreSQL: without an error
line in its log; MariaDB logs each such probe as an aborted connection, so an idle instance is
probed at most once per 30 s). During the drain every check fails while the node still accepts,
so the balancer moves clients away before the node refuses them.
"""
import http.client
import os
import re
import socket
import subprocess
import time

import psycopg

from cli_helpers import download_ca, pg_instance, use_template


def get(port, path, method="GET"):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request(method, path)
        r = c.getresponse()
        return r.status, r.read().decode(), dict(r.getheaders())
    finally:
        c.close()


def test_health_checks_and_drain(pg_server, mariadb_server, dbtls, dbtlsd, state_dir, tmp_dir,
                                 free_port):
    use_template(dbtls)
    pg_port, my_port, dead_port, health = free_port(), free_port(), free_port(), free_port()
    pg_instance(dbtls, "pg1", f"127.0.0.1:{pg_port}", f"127.0.0.1:{pg_server.port}", "localhost")
    dbtls("instances", "create", "my1", "--engine", "mariadb", "--engine-version", "10.11",
          "--listen", f"127.0.0.1:{my_port}", "--backend", f"127.0.0.1:{mariadb_server.port}",
          "--endpoint", "localhost")
    d_port = free_port()
    pg_instance(dbtls, "down", f"127.0.0.1:{d_port}", f"127.0.0.1:{dead_port}", "down.test")
    ca = download_ca(dbtls, "pg1", tmp_dir)
    pg_log, my_log = len(pg_server.log()), len(mariadb_server.log())
    d = dbtlsd.start(state_dir, extra_args=("--health-listen", f"127.0.0.1:{health}",
                                            "--drain-delay", "3"))
    assert f"health checks on http://127.0.0.1:{health}" in d.log()

    st, body, hdr = get(health, "/healthz")
    assert st == 200 and re.fullmatch(r"ok: configuration generation \d+ active \(3 instances\)\n",
                                      body), body
    assert hdr["Content-Type"].startswith("text/plain")
    st, body, _ = get(health, "/healthz/pg1")
    assert st == 200 and body.startswith('ok: instance "pg1": PostgreSQL answered at 127.0.0.1:'), \
        body
    for _ in range(2):
        st, body, _ = get(health, "/healthz/my1")
        assert st == 200 and re.match(r'ok: instance "my1": (server 10\.11\.\S*MariaDB\S* answered '
                                      r'at|backend) 127\.0\.0\.1:', body), body
    # the second check took the first one's word (30 s): one probe, one line in MariaDB's log
    assert re.fullmatch(r'ok: instance "my1": backend 127\.0\.0\.1:\d+ reached 0 s ago\n', body), \
        body
    assert mariadb_server.log()[my_log:].count("Aborted connection") == 1, \
        mariadb_server.log()[my_log:]
    # a failing backend is tried at every check (so its recovery shows at the next one)
    for _ in range(2):
        st, body, _ = get(health, "/healthz/down")
        assert st == 503 and f'failing: instance "down": backend 127.0.0.1:{dead_port}: ' in body, \
            body
        assert "refused" in body, body
    # sessions are evidence too: a client's session through the front, no probe needed
    conninfo = (f"host=localhost hostaddr=127.0.0.1 port={pg_port} user=trustuser dbname=app "
                f"sslmode=verify-full sslrootcert={ca} connect_timeout=5")
    down_conninfo = (f"host=127.0.0.1 port={d_port} user=trustuser dbname=app sslmode=disable "
                     f"connect_timeout=5")
    with psycopg.connect(conninfo) as c:
        assert c.execute("SELECT 1").fetchone() == (1,)
    n_pg = pg_server.log().count("connection received")
    st, body, _ = get(health, "/healthz/pg1")
    assert st == 200 and "reached 0 s ago" in body, body
    assert pg_server.log().count("connection received") == n_pg
    try:
        psycopg.connect(down_conninfo).close()
        raise AssertionError("a session to a dead backend connected")
    except psycopg.OperationalError as e:
        assert "could not connect to the database server" in str(e), e
    st, body, _ = get(health, "/healthz/down")
    assert st == 503, body
    st, body, _ = get(health, "/healthz/nope")
    assert st == 404 and 'no instance "nope"' in body, body
    st, body, hdr = get(health, "/healthz", "POST")
    assert st == 405 and hdr.get("Allow") == "GET, HEAD", (st, body)
    st, body, _ = get(health, "/v1/instances")  # the admin API is not on this listener
    assert st == 404, body
    st, body, _ = get(health, "/metrics")
    assert st == 200 and "dbtls_build_info" in body and 'instance="pg1"' in body, body
    st, body, _ = get(health, "/healthz", "HEAD")
    assert st == 200 and body == ""
    # a change dbtlsd cannot load (its port is taken): still serving, and /healthz says why
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    try:
        start = d.log_size()
        pg_instance(dbtls, "late", f"127.0.0.1:{busy.getsockname()[1]}",
                    f"127.0.0.1:{pg_server.port}", "late.test")
        d.wait_log("reload failed", start=start)
        st, body, _ = get(health, "/healthz")
        assert st == 200 and "(3 instances); the last reload failed: " in body, body
        assert 'instance "late"' in body, body
    finally:
        busy.close()
    start = d.log_size()
    dbtls("instances", "delete", "late")
    d.wait_reload(start)
    st, body, _ = get(health, "/healthz")
    assert st == 200 and "failed" not in body, body

    # the probes left no error in the servers' logs (PostgreSQL logs the connection, with
    # log_connections on, and nothing else: no "incomplete startup packet", no FATAL)
    new_pg = pg_server.log()[pg_log:]
    assert "connection received" in new_pg
    assert not re.search(r"FATAL|ERROR|incomplete|could not", new_pg), new_pg

    # SIGTERM with --drain-delay 3: every check fails at once, the node still accepts (an open
    # session keeps working, a new one connects), then it stops accepting
    with psycopg.connect(conninfo) as open_conn:
        d.proc.terminate()
        d.wait_log("draining: health checks fail")
        for path in ("/healthz", "/healthz/pg1"):
            st, body, _ = get(health, path)
            assert st == 503 and body == "draining: dbtlsd is shutting down\n", (path, body)
        with psycopg.connect(conninfo) as c:
            assert c.execute("SELECT 1").fetchone() == (1,)
        d.wait_log("shutting down: no new connections", timeout=10)
        try:
            psycopg.connect(conninfo).close()
            raise AssertionError("dbtlsd still accepted after the drain delay")
        except psycopg.OperationalError as e:
            assert "refused" in str(e), e
        assert open_conn.execute("SELECT 2").fetchone() == (2,)
    assert d.proc.wait(timeout=15) == 0
    d.stopped = True


def test_health_listen_errors(dbtls, dbtlsd_bin, state_dir, free_port):
    use_template(dbtls)
    for args, rc, msg in (
            (["--health-listen", "nowhere"], 1, '--health-listen "nowhere": expected HOST:PORT'),
            (["--drain-delay", "soon"], 2,
             '--drain-delay: "soon" is not a number of seconds from 0 to 3600'),
            (["--health-user", ""], 2, '--health-user: "" is not a user name of 1 to 80'),
            (["--health-user", "u" * 81], 2, "is not a user name of 1 to 80 characters"),
    ):
        cp = subprocess.run([dbtlsd_bin, "--state-dir", state_dir, *args], capture_output=True,
                            text=True, timeout=30)
        assert cp.returncode == rc and msg in cp.stderr, (cp.returncode, cp.stderr)


def status(mariadb_server, name):
    out = mariadb_server.sql(f"SHOW GLOBAL STATUS LIKE '{name}'")
    return int(out.split()[-1])


def test_mysql_health_user_logs_in(mariadb_server, dbtls, dbtlsd, state_dir, free_port):
    """--health-user: the MariaDB probe logs in as a passwordless account and quits (HAProxy's
    mysql-check), so the server counts no aborted connect (no "Aborted connection" line, no
    Aborted_connects, nothing toward max_connect_errors for a front across the network); an
    account the server refuses fails the check with the server's own error."""
    use_template(dbtls)
    my_port, health = free_port(), free_port()
    dbtls("instances", "create", "my1", "--engine", "mariadb", "--engine-version", "10.11",
          "--listen", f"127.0.0.1:{my_port}", "--backend", f"127.0.0.1:{mariadb_server.port}",
          "--endpoint", "localhost")
    mariadb_server.sql("CREATE USER IF NOT EXISTS 'dbtls_health'@'%'")
    try:
        for user, ok in (("dbtls_health", True), ("nosuchuser", False)):
            d = dbtlsd.start(state_dir, extra_args=("--health-listen", f"127.0.0.1:{health}",
                                                    "--health-user", user))
            log0 = len(mariadb_server.log())
            aborted = status(mariadb_server, "Aborted_connects")
            conns = status(mariadb_server, "Connections")
            st, body, _ = get(health, "/healthz/my1")
            if ok:
                assert st == 200 and re.fullmatch(
                    r'ok: instance "my1": server 10\.11\.\S*MariaDB\S* answered, user '
                    r'"dbtls_health" logged in at 127\.0\.0\.1:\d+ in \d+ ms\n', body), body
                assert status(mariadb_server, "Aborted_connects") == aborted
                # the probe did connect (the status queries add one each)
                assert status(mariadb_server, "Connections") >= conns + 2
                new = mariadb_server.log()[log0:]
                assert "Aborted connection" not in new and "Access denied" not in new, new
            else:
                assert st == 503 and (
                    'failing: instance "my1": backend 127.0.0.1:%d: the backend refused the '
                    'health user "nosuchuser": ERROR 1045 (28000): Access denied for user '
                    "'nosuchuser'@'127.0.0.1' (using password: NO)\n" % mariadb_server.port) in body, body
                # a failure is probed again at the next check
                st2, body2, _ = get(health, "/healthz/my1")
                assert (st2, body2) == (st, body)
            d.stop()
    finally:
        mariadb_server.sql("DROP USER IF EXISTS 'dbtls_health'@'%'")
