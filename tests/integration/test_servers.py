"""The server fixtures every other integration test stands on: real PostgreSQL 15 and MariaDB
10.11 servers reached directly (no dbtls) with psql, psycopg, the mariadb client and PyMySQL,
and the dbtlsd process fixture's own mechanics (against a stand-in daemon)."""
import os
import socket
import stat
import subprocess
import sys
import textwrap

import psycopg
import pymysql
import pytest

import servers


# --- PostgreSQL -----------------------------------------------------------------------------
def test_pg_unix_socket_is_reachable(pg_server):
    st = os.stat(pg_server.socket_path)
    assert stat.S_ISSOCK(st.st_mode)
    assert pg_server.socket_path == os.path.join(pg_server.socket_dir,
                                                 f".s.PGSQL.{pg_server.port}")
    assert len(pg_server.socket_path) < 100
    out = pg_server.psql("SELECT current_user, version()", user="alice")
    assert out.startswith("alice|PostgreSQL 15.")


def test_pg_tcp_password_users(pg_server, psql):
    for user, pw in pg_server.users.items():
        rc, out, err = psql(pg_server.dsn(user), "SELECT current_user, current_database()")
        assert rc == 0, err
        assert out.strip() == f"{user}|app"
    rc, out, err = psql(pg_server.dsn("alice", password="wrong"), "SELECT 1")
    assert rc == 2
    assert 'password authentication failed for user "alice"' in err


def test_pg_tcp_uses_scram(pg_server):
    rows = pg_server.psql("SELECT rolname, left(rolpassword, 14) FROM pg_authid "
                          "WHERE rolname IN ('alice','bob') ORDER BY 1", dbname="postgres")
    assert rows.split() == ["alice|SCRAM-SHA-256$", "bob|SCRAM-SHA-256$"]


def test_pg_trust_roles_over_tcp(pg_server, psql):
    for user in ("trustuser", "certuser"):
        rc, out, err = psql(pg_server.dsn(user), "SELECT current_user")
        assert (rc, out.strip()) == (0, user), err
    # Any other role without a password is refused over TCP (scram-sha-256 line).
    rc, _, err = psql(pg_server.dsn("postgres", password=""), "SELECT 1")
    assert rc == 2 and "fe_sendauth: no password supplied" in err


def test_pg_has_no_tls_of_its_own(pg_server, psql):
    rc, _, err = psql(pg_server.dsn("trustuser", sslmode="require"), "SELECT 1")
    assert rc == 2
    assert "server does not support SSL" in err
    assert pg_server.psql("SHOW ssl").strip() == "off"


def test_pg_psycopg(pg_server):
    with psycopg.connect(pg_server.dsn("bob"), connect_timeout=10) as conn:
        with conn.cursor() as cur:
            cur.execute("CREATE TEMP TABLE t(x int)")
            cur.execute("INSERT INTO t SELECT generate_series(1, 1000)")
            cur.execute("SELECT sum(x), current_setting('ssl') FROM t")
            assert cur.fetchone() == (500500, "off")
        assert conn.info.port == pg_server.port
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(pg_server.dsn("bob", password="nope"), connect_timeout=10)


def test_pg_psycopg_over_unix_socket(pg_server):
    dsn = pg_server.dsn("certuser", host=pg_server.socket_dir)
    with psycopg.connect(dsn, connect_timeout=10) as conn:
        assert conn.execute("SELECT inet_client_addr() IS NULL").fetchone() == (True,)


def test_psql_helper_times_out(psql):
    # A listener that accepts and never answers: the helper must come back, not hang.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        rc, _, err = psql(f"host=127.0.0.1 port={port} user=x sslmode=disable", "SELECT 1",
                          connect_timeout=2, timeout=10)
    assert rc != 0
    assert "timeout" in err.lower()


# --- MariaDB --------------------------------------------------------------------------------
def test_mariadb_version_and_no_tls(mariadb_server):
    out = mariadb_server.sql("SELECT version(); SHOW GLOBAL VARIABLES LIKE 'have_ssl'")
    lines = out.splitlines()
    assert lines[0].startswith("10.11.")
    assert lines[1] == "have_ssl\tDISABLED"


def test_mariadb_client_tcp_password(mariadb_server):
    cp = subprocess.run(mariadb_server.client_args("alice", database="app", tcp=True)
                        + ["-N", "-B", "-e", "SELECT current_user(), database()"],
                        capture_output=True, text=True, timeout=30)
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout.strip() == "alice@%\tapp"
    cp = subprocess.run(mariadb_server.client_args("alice", password="bad", tcp=True)
                        + ["-e", "SELECT 1"], capture_output=True, text=True, timeout=30)
    assert cp.returncode == 1
    assert "ERROR 1045 (28000): Access denied for user 'alice'@'127.0.0.1'" in cp.stderr


def test_mariadb_pymysql(mariadb_server):
    for user in ("alice", "bob", "certuser"):
        conn = pymysql.connect(host=mariadb_server.host, port=mariadb_server.port, user=user,
                               password=mariadb_server.users[user], database="app",
                               connect_timeout=10)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT current_user(), @@port")
                assert cur.fetchone() == (f"{user}@%", mariadb_server.port)
                cur.execute("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
                assert cur.fetchone() == ("Ssl_cipher", "")
        finally:
            conn.close()
    with pytest.raises(pymysql.err.OperationalError) as ei:
        pymysql.connect(host=mariadb_server.host, port=mariadb_server.port, user="bob",
                        password="wrong", connect_timeout=10)
    assert ei.value.args[0] == 1045


def test_mariadb_ed25519_account(mariadb_server):
    if mariadb_server.ed25519_user is None:
        pytest.skip("auth_ed25519 plugin did not load")
    u = mariadb_server.ed25519_user
    plugin = mariadb_server.sql(f"SELECT plugin FROM mysql.user WHERE user='{u}'").strip()
    assert plugin == "ed25519"
    cp = subprocess.run(mariadb_server.client_args(u, tcp=True) + ["-N", "-B", "-e",
                        "SELECT current_user()"], capture_output=True, text=True, timeout=30)
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout.strip() == f"{u}@%"


# --- the dbtlsd fixture's mechanics, against a stand-in daemon ------------------------------
FAKE_DAEMON = textwrap.dedent("""\
    import signal, sys, time
    mode = sys.argv[-1]
    def term(*_):
        print("dbtlsd: stopping", file=sys.stderr, flush=True)
        sys.exit(3 if mode == "dirty" else 0)
    signal.signal(signal.SIGTERM, term)
    if mode == "crash":
        print("dbtlsd: cannot start: bad config", file=sys.stderr, flush=True)
        sys.exit(1)
    if mode == "stubborn":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    print("dbtlsd: ready", file=sys.stderr, flush=True)
    while True:
        time.sleep(0.1)
""")


@pytest.fixture
def fake_dbtlsd(tmp_dir):
    path = os.path.join(tmp_dir, "fake-dbtlsd")
    with open(path, "w") as f:
        f.write(f"#!{sys.executable}\n" + FAKE_DAEMON)
    os.chmod(path, 0o755)
    return path


def _start_fake(fake, tmp_dir, mode):
    import conftest
    return conftest.DbtlsdProcess(fake, tmp_dir, [mode], None, tmp_dir)


def test_dbtlsd_process_ready_and_clean_stop(fake_dbtlsd, tmp_dir):
    d = _start_fake(fake_dbtlsd, tmp_dir, "clean")
    d.wait_log("dbtlsd: ready", timeout=20)
    assert d.alive()
    assert d.stop() == 0
    assert "dbtlsd: stopping" in d.log()


def test_dbtlsd_process_reports_unclean_exit(fake_dbtlsd, tmp_dir):
    d = _start_fake(fake_dbtlsd, tmp_dir, "dirty")
    d.wait_log("dbtlsd: ready", timeout=20)
    with pytest.raises(pytest.fail.Exception, match="exited with 3"):
        d.stop()


def test_dbtlsd_process_early_exit_fails_fast(fake_dbtlsd, tmp_dir):
    d = _start_fake(fake_dbtlsd, tmp_dir, "crash")
    with pytest.raises(pytest.fail.Exception, match="cannot start: bad config"):
        d.wait_log("dbtlsd: ready", timeout=20)


def test_dbtlsd_process_sigkill_after_timeout(fake_dbtlsd, tmp_dir):
    d = _start_fake(fake_dbtlsd, tmp_dir, "stubborn")
    d.wait_log("dbtlsd: ready", timeout=20)
    with pytest.raises(pytest.fail.Exception, match="did not exit within 1"):
        d.stop(timeout=1)
    assert not d.alive()


def test_free_port_is_bindable_and_unique(free_port):
    ports = {free_port() for _ in range(50)}
    assert len(ports) == 50
    for p in list(ports)[:5]:
        with socket.socket() as s:
            s.bind(("127.0.0.1", p))


def test_servers_module_runs_standalone():
    # bench/ and the demo import servers.py outside pytest.
    assert servers.PG_BIN.endswith("/15/bin")
    assert os.access(os.path.join(servers.PG_BIN, "postgres"), os.X_OK)
