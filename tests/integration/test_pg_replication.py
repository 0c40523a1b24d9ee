"""Replication through the PostgreSQL front: what a fleet does to build a replica or feed a
change stream, over TLS, with real PostgreSQL 15 tools (pg_basebackup, pg_verifybackup,
pg_recvlogical, psql in replication mode).

PostgreSQL's rule that the `all` database keyword never matches a physical replication
connection (only `replication` does) holds in dbtlsd's access rules; the rules dbtlsd derives
from an ssl mode therefore carry a `replication` line beside the `all` one, so that the ssl
mode, not the absence of a line, decides: physical replication over TLS reaches the backend
(whose own pg_hba.conf then decides), and plaintext is refused as PostgreSQL refuses it.
"""
import os
import subprocess
import time

import pytest

import servers
from cli_helpers import use_template
from test_pg_front import ca_file, make_instance

PG_BIN = "/usr/lib/postgresql/15/bin"


@pytest.fixture(scope="module")
def repl_server():
    """A PostgreSQL 15 that allows replication (physical and logical) over its unix socket,
    where the front's backend leg arrives."""
    srv = servers.PgServer(extra_conf={"wal_level": "logical", "max_wal_senders": "10",
                                       "max_replication_slots": "10"})
    with srv:
        srv.write_hba(["local replication all trust"] + srv.default_hba())
        srv.reload()
        srv.psql("CREATE TABLE events (id int PRIMARY KEY, what text)", dbname=srv.dbname)
        yield srv


def _env():
    e = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    e["PGCONNECT_TIMEOUT"] = "10"
    return e


def _run(cmd, timeout=120):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=_env())


def _dsn(port, ca, sslmode="verify-full", **kw):
    parts = {"host": "localhost", "port": port, "user": "postgres", "sslmode": sslmode,
             "sslrootcert": ca}
    parts.update(kw)
    return " ".join(f"{k}='{v}'" for k, v in parts.items())


def test_basebackup_and_wal_stream_over_tls(repl_server, dbtls, dbtlsd, state_dir, free_port,
                                            tmp_dir, psql):
    use_template(dbtls)
    port = make_instance(dbtls, free_port, repl_server.socket_path)  # ENCRYPTED_ONLY, no rules
    ca = ca_file(dbtls, tmp_dir)
    d = dbtlsd.start(state_dir, ["--workers", "2"])

    # a whole base backup with its WAL streamed beside it: two replication connections, each a
    # CopyBoth/CopyOut stream relayed through the front
    out = os.path.join(tmp_dir, "backup")
    cp = _run([f"{PG_BIN}/pg_basebackup", "-d", _dsn(port, ca), "-D", out, "-X", "stream",
               "-c", "fast", "--no-sync"])
    assert cp.returncode == 0, cp.stderr + d.log()
    cp = _run([f"{PG_BIN}/pg_verifybackup", out])
    assert cp.returncode == 0, cp.stdout + cp.stderr
    assert "successfully verified" in cp.stdout

    # the replication protocol's own commands, in psql's replication mode
    rc, so, se = psql(_dsn(port, ca, replication="true"), "IDENTIFY_SYSTEM")
    assert rc == 0, se
    sysid = repl_server.psql("SELECT system_identifier FROM pg_control_system()").strip()
    assert so.split("|")[0] == sysid

    # plaintext is refused as PostgreSQL refuses a replication connection without its line
    rc, so, se = psql(_dsn(port, ca, sslmode="disable", replication="true"), "IDENTIFY_SYSTEM")
    assert rc != 0
    assert ('no pg_hba.conf entry for replication connection from host "127.0.0.1", '
            'user "postgres", no encryption') in se


def test_logical_decoding_stream_over_tls(repl_server, dbtls, dbtlsd, state_dir, free_port,
                                          tmp_dir):
    use_template(dbtls)
    port = make_instance(dbtls, free_port, repl_server.socket_path)
    ca = ca_file(dbtls, tmp_dir)
    dbtlsd.start(state_dir, ["--workers", "1"])
    db = _dsn(port, ca, dbname=repl_server.dbname)
    cp = _run([f"{PG_BIN}/pg_recvlogical", "-d", db, "--slot", "front_slot", "--create-slot",
               "--plugin", "test_decoding"])
    assert cp.returncode == 0, cp.stderr
    out = os.path.join(tmp_dir, "changes.txt")
    proc = subprocess.Popen([f"{PG_BIN}/pg_recvlogical", "-d", db, "--slot", "front_slot",
                             "--start", "--no-loop", "-F", "0", "-f", out],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env=_env())
    want = "table public.events: INSERT: id[integer]:1 what[text]:'through the front'"
    try:
        repl_server.psql("INSERT INTO events VALUES (1, 'through the front')",
                         dbname=repl_server.dbname)
        deadline = time.monotonic() + 30
        got = ""
        while want not in got and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
            got = open(out).read() if os.path.exists(out) else ""
        assert want in got, f"{got!r}; pg_recvlogical exit {proc.poll()}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        repl_server.psql("SELECT pg_drop_replication_slot('front_slot')")


def test_cert_required_mode_asks_replication_for_a_certificate(repl_server, dbtls, dbtlsd,
                                                               state_dir, free_port, tmp_dir,
                                                               psql):
    use_template(dbtls)
    port = make_instance(dbtls, free_port, repl_server.socket_path,
                         ssl_mode="TRUSTED_CLIENT_CERTIFICATE_REQUIRED")
    ca = ca_file(dbtls, tmp_dir)
    dbtlsd.start(state_dir, ["--workers", "1"])
    rc, so, se = psql(_dsn(port, ca, replication="true"), "IDENTIFY_SYSTEM")
    assert rc != 0
    assert "connection requires a valid client certificate" in se
    rc, so, se = psql(_dsn(port, ca, sslmode="disable", replication="true"), "IDENTIFY_SYSTEM")
    assert rc != 0
    assert ('no pg_hba.conf entry for replication connection from host "127.0.0.1", '
            'user "postgres", no encryption') in se
