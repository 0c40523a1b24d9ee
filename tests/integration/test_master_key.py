"""`dbtls master-key rotate`: every stored private key (shared CAs, an imported CA, client CAs,
per-instance server CAs, server certificates of every slot, the admin CA) re-sealed under a new
master key in one transaction, as key-management rules (a cryptoperiod, a leaked backup of
master.key, a move to a key store) ask of keys at rest. Checked with the real binaries: every
operation that needs a key works after it and fails with the old key; a running dbtlsd in front
of a real PostgreSQL 15 takes the next rotation of a certificate without a restart, and its admin
API issues client certificates; a crash between the store's commit and the key file's rename is
completed by the next command, one inside the transaction changes nothing; a key that does not
open, a command that fails or prints the current key, and a second rotation at once are refused
with one line and nothing changed."""
import contextlib
import fcntl
import os
import sqlite3
import stat

import psycopg

from api_client import unix_api
from cli_helpers import (STORE_SIDECARS, assert_unchanged, download_ca, pg_instance, slots,
                         store_snapshot, use_template)
from test_cas_import import corp_pki
from test_autorotate import presented_serial

def state_files(state_dir):
    """The state directory's files but SQLite's own beside the store (a read-only snapshot
    leaves -wal and -shm)."""
    return sorted(f for f in os.listdir(state_dir) if f not in STORE_SIDECARS)


def master(state_dir):
    with open(os.path.join(state_dir, "master.key"), "rb") as f:
        return f.read()


def store_with_every_kind_of_key(dbtls, tmp_dir, free_port):
    """A store holding one key of each kind; returns how many keys it holds."""
    use_template(dbtls)
    f = corp_pki(tmp_dir)
    dbtls("cas", "import", "corp-db", "--cert", f("db.pem"), "--key", f("db.key"), "--chain",
          f("root.pem"))
    pg_instance(dbtls, "shared1", f"127.0.0.1:{free_port()}", "127.0.0.1:1", "db1.example.com")
    pg_instance(dbtls, "corp1", f"127.0.0.1:{free_port()}", "127.0.0.1:1", "db2.example.com",
                "--ca", "corp-db")
    pg_instance(dbtls, "own1", f"127.0.0.1:{free_port()}", "127.0.0.1:1", "db3.example.com",
                "--ca-mode", "per-instance")
    dbtls("ssl", "server-ca-certs", "create", "--instance", "own1")  # an upcoming CA + cert
    dbtls("ssl", "server-certs", "create", "--instance", "shared1")
    dbtls("ssl", "server-certs", "rotate", "--instance", "shared1")  # a previous slot
    dbtls("ssl", "client-certs", "create", "app", "--instance", "shared1", "--out-dir",
          os.path.join(tmp_dir, "app"))
    dbtls("admin-certs", "create", "ops", "--out-dir", os.path.join(tmp_dir, "ops"))
    # 3 roots + 3 intermediates + the imported CA; 3 client CAs; shared1 active + previous,
    # corp1 active, own1 active and upcoming (each a CA and a certificate); the admin CA
    return 7 + 3 + 3 + 4 + 1


def assert_keys_work(dbtls, tmp_dir, tag, global_args=()):
    """Operations that open each kind of stored key (global_args: --master-key-command)."""
    def run(*args):
        dbtls(*global_args, *args)

    out = os.path.join(tmp_dir, f"work-{tag}")
    run("ssl", "client-certs", "create", f"u-{tag}", "--instance", "own1", "--out-dir",
        f"{out}-c")  # own1's client CA
    run("ssl", "server-certs", "create", "--instance", "corp1")  # the imported CA
    run("ssl", "server-certs", "create", "--instance", "shared1")  # a shared intermediate
    run("ssl", "server-ca-certs", "rotate", "--instance", "own1")  # own1's upcoming CA...
    run("instances", "export", "own1", "--dir", f"{out}-x")  # ...and its server key
    run("ssl", "server-ca-certs", "create", "--instance", "own1")  # a new upcoming again
    run("admin-certs", "create", f"a-{tag}", "--out-dir", f"{out}-a")  # the admin CA
    run("instances", "create", f"new-{tag}", "--engine", "postgres", "--listen", "127.0.0.1:1",
        "--backend", "127.0.0.1:1", "--endpoint", "x.example.com", "--ca",
        "dbtls-ca-rsa2048-g1")  # another shared root's intermediate
    run("instances", "delete", f"new-{tag}")


def test_rotate_reseals_every_key(dbtls, state_dir, tmp_dir, free_port):
    n = store_with_every_kind_of_key(dbtls, tmp_dir, free_port)
    old = master(state_dir)
    out = dbtls.json("master-key", "rotate")
    assert out == {"keys": n, "masterKey": "file"}, out
    new = master(state_dir)
    assert new != old and len(new) == 32
    assert stat.S_IMODE(os.stat(os.path.join(state_dir, "master.key")).st_mode) == 0o600
    assert state_files(state_dir) == ["dbtls.db", "master.key"]
    ev = [e for e in dbtls.json("events", "list") if e["action"] == "master-key.rotate"]
    assert len(ev) == 1 and ev[0]["detail"] == f"keys={n} source=file", ev
    assert_keys_work(dbtls, tmp_dir, "after")

    # the old key opens nothing any more: put it back and every key-needing operation fails
    path = os.path.join(state_dir, "master.key")
    with open(path, "wb") as f:
        f.write(old)
    r = dbtls.fail("ssl", "client-certs", "create", "u-old", "--instance", "own1", "--out-dir",
                   os.path.join(tmp_dir, "old"))
    assert "cannot decrypt a stored private key (wrong master key?)" in r.stderr, r.stderr
    r = dbtls.fail("master-key", "rotate")
    assert r.stderr.startswith("dbtls: the private key of CA corp-db: cannot decrypt a stored "
                               "private key (wrong master key?)"), r.stderr
    assert master(state_dir) == old and state_files(state_dir) == ["dbtls.db",
                                                                         "master.key"]
    with open(path, "wb") as f:
        f.write(new)
    # twice in a row: each rotation re-seals what the one before wrote
    dbtls("master-key", "rotate")
    assert master(state_dir) not in (old, new)
    assert_keys_work(dbtls, tmp_dir, "twice")


def test_rotate_to_and_between_key_commands(dbtls, state_dir, tmp_dir, free_port):
    store_with_every_kind_of_key(dbtls, tmp_dir, free_port)
    k1, k2 = os.path.join(tmp_dir, "k1.hex"), os.path.join(tmp_dir, "k2.hex")
    for k in (k1, k2):
        with open(k, "w") as f:
            f.write(os.urandom(32).hex() + "\n")
    before = store_snapshot(state_dir)
    # a failing command, or one that prints no key: nothing changes
    r = dbtls.fail("master-key", "rotate", "--new-master-key-command", "exit 3")
    assert r.stderr.strip() == ('dbtls: --new-master-key-command: master key command "exit 3" '
                                'failed (exit status 3)'), r.stderr
    r = dbtls.fail("master-key", "rotate", "--new-master-key-command", "echo nokey")
    assert "must print 64 hex characters or exactly 32 bytes" in r.stderr
    assert_unchanged(before, state_dir)
    dbtls.fail("master-key", "rotate", "--new-master-key-command", "", rc=2)

    # file -> command: the store is sealed under the command's key, master.key goes
    out = dbtls.json("master-key", "rotate", "--new-master-key-command", f"cat {k1}")
    assert out["masterKey"] == "command"
    assert state_files(state_dir) == ["dbtls.db"]
    r = dbtls.fail("instances", "list")
    assert "master key file" in r.stderr and "does not exist" in r.stderr
    cmd1 = ["--master-key-command", f"cat {k1}"]
    dbtls(*cmd1, "ssl", "client-certs", "create", "via-k1", "--instance", "own1", "--out-dir",
          os.path.join(tmp_dir, "via-k1"))
    # with a command, a new key must come from a command too, and be new
    r = dbtls.fail(*cmd1, "master-key", "rotate")
    assert "give --new-master-key-command CMD" in r.stderr, r.stderr
    r = dbtls.fail(*cmd1, "master-key", "rotate", "--new-master-key-command", f"cat {k1}")
    assert "printed the current master key" in r.stderr
    # command -> command
    dbtls(*cmd1, "master-key", "rotate", "--new-master-key-command", f"cat {k2}")
    r = dbtls.fail(*cmd1, "ssl", "client-certs", "create", "via-old", "--instance", "own1",
                   "--out-dir", os.path.join(tmp_dir, "via-old"))
    assert "wrong master key?" in r.stderr
    assert_keys_work(dbtls, tmp_dir, "k2", global_args=["--master-key-command", f"cat {k2}"])


def test_interrupted_rotation_is_completed_or_undone(dbtls, state_dir, tmp_dir, free_port):
    store_with_every_kind_of_key(dbtls, tmp_dir, free_port)
    old = master(state_dir)
    new_path = os.path.join(state_dir, "master.key.new")
    # killed inside the transaction: the store is as before, the next command removes the
    # unused new key file
    before = store_snapshot(state_dir)
    r = dbtls("master-key", "rotate", env={"DBTLS_FAULT": "rekey-mid"}, check=False)
    assert r.returncode != 0 and "DBTLS_FAULT=rekey-mid" in r.stderr
    assert os.path.exists(new_path)
    assert_unchanged(before, state_dir)
    dbtls("instances", "list")
    assert not os.path.exists(new_path) and master(state_dir) == old
    assert_keys_work(dbtls, tmp_dir, "mid")

    # killed after the commit, before the rename: the store is sealed under master.key.new;
    # the next command finds that out and completes the rename
    r = dbtls("master-key", "rotate", env={"DBTLS_FAULT": "rekey-committed"}, check=False)
    assert r.returncode != 0 and "DBTLS_FAULT=rekey-committed" in r.stderr
    with open(new_path, "rb") as f:
        committed = f.read()
    assert master(state_dir) == old
    dbtls("instances", "list")
    assert not os.path.exists(new_path) and master(state_dir) == committed
    assert_keys_work(dbtls, tmp_dir, "committed")


def test_one_rotation_at_a_time(dbtls, state_dir, tmp_dir, free_port):
    store_with_every_kind_of_key(dbtls, tmp_dir, free_port)
    old = master(state_dir)
    before = store_snapshot(state_dir)
    fd = os.open(state_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # what a rotation in progress holds
        r = dbtls.fail("master-key", "rotate")
        assert r.stderr.strip() == (f'dbtls: another master key rotation or restore is running on '
                                    f'"{state_dir}"'), r.stderr
        # a leftover-looking master.key.new is the running rotation's: left alone
        with open(os.path.join(state_dir, "master.key.new"), "wb") as f:
            f.write(os.urandom(32))
        dbtls("instances", "list")
        assert os.path.exists(os.path.join(state_dir, "master.key.new"))
    finally:
        os.close(fd)
    assert_unchanged(before, state_dir)
    # once the lock is gone it is stale (it opens nothing): removed, and a rotation runs
    dbtls("master-key", "rotate")
    assert master(state_dir) != old
    assert state_files(state_dir) == ["dbtls.db", "master.key"]
    # not over the admin API: a master key does not travel
    r = dbtls("--server", "https://127.0.0.1:1", "master-key", "rotate", rc=2)
    assert "is not available with --server" in r.stderr


def test_damaged_key_refuses_the_whole_rotation(dbtls, state_dir, tmp_dir, free_port):
    store_with_every_kind_of_key(dbtls, tmp_dir, free_port)
    old = master(state_dir)
    with contextlib.closing(sqlite3.connect(os.path.join(state_dir, "dbtls.db"))) as db, db:
        blob = db.execute("SELECT key_blob FROM server_slots WHERE slot = 'upcoming' AND "
                          "instance_id = (SELECT id FROM instances WHERE name = 'own1')"
                          ).fetchone()[0]
        bad = bytes(blob[:-1]) + bytes([blob[-1] ^ 1])
        db.execute("UPDATE server_slots SET key_blob = ? WHERE slot = 'upcoming' AND "
                   "instance_id = (SELECT id FROM instances WHERE name = 'own1')", (bad,))
    before = store_snapshot(state_dir)
    r = dbtls.fail("master-key", "rotate")
    assert ("the private key of the upcoming server certificate of instance own1: cannot "
            "decrypt a stored private key (wrong master key?)") in r.stderr, r.stderr
    assert_unchanged(before, state_dir)
    assert master(state_dir) == old
    assert state_files(state_dir) == ["dbtls.db", "master.key"]


def test_running_daemon_follows_the_rotation(dbtls, dbtlsd, state_dir, tmp_dir, free_port,
                                             pg_server):
    use_template(dbtls)
    port = free_port()
    pg_instance(dbtls, "pg1", f"127.0.0.1:{port}", f"127.0.0.1:{pg_server.port}", "localhost",
                "--ssl-mode", "ENCRYPTED_ONLY")
    d = dbtlsd.start(state_dir, ["--workers", "1"])
    ca = download_ca(dbtls, "pg1", tmp_dir)
    conninfo = (f"host=localhost hostaddr=127.0.0.1 port={port} user=trustuser dbname=app "
                f"sslmode=verify-full sslrootcert={ca} connect_timeout=5")
    with psycopg.connect(conninfo) as c:
        start = d.log_size()
        dbtls("master-key", "rotate")
        d.wait_reload(start)  # the rotation bumps the change counter: the daemon reloads
        assert c.execute("SELECT 1").fetchone() == (1,)
        # a rotation after the key's: the daemon opens the new server key with the new master
        # key, which it read again when its own did not open the store's keys
        dbtls("ssl", "server-certs", "create", "--instance", "pg1")
        start = d.log_size()
        dbtls("ssl", "server-certs", "rotate", "--instance", "pg1")
        d.wait_reload(start)
        assert c.execute("SELECT 2").fetchone() == (2,)
    assert presented_serial(port) == slots(dbtls, "pg1")["active"]["certSerialNumber"]
    with psycopg.connect(conninfo) as c:  # the same shared CA signed the new certificate
        assert c.execute("SELECT 3").fetchone() == (3,)
    # the admin API (its own store handles) issues a client certificate under the new key
    r = unix_api(d.admin_socket).post("/v1/instances/pg1/sslCerts", {"name": "after"})
    assert r.status == 201, r
    log = d.log()
    assert "wrong master key" not in log and "cannot decrypt" not in log, log
    assert master(state_dir).hex() not in log
