"""`dbtls backup --out FILE`: a consistent copy of the SQLite store, taken while dbtlsd serves a
real PostgreSQL 15 and other `dbtls` commands write, that restores: a new state directory made
of the copy and master.key serves the instance to psql-compatible clients (psycopg, verify-full)
and its keys open. Refused with one line and nothing left behind: an existing file, a directory
that cannot be written, a PostgreSQL store (pg_dump's job)."""
import os
import shutil
import sqlite3
import stat
import threading
import time

import psycopg

from cli_helpers import download_ca, pg_instance, use_template


def rows(path, sql):
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_backup_while_writing_and_restore(dbtls, dbtlsd, state_dir, tmp_dir, free_port,
                                          pg_server):
    use_template(dbtls)
    port = free_port()
    pg_instance(dbtls, "pg1", f"127.0.0.1:{port}", f"127.0.0.1:{pg_server.port}", "localhost",
                "--ssl-mode", "ENCRYPTED_ONLY", "--max-client-certs", "1000")
    d = dbtlsd.start(state_dir)
    stop, made, errors = threading.Event(), [], []

    def writer():  # client certificates issued all along, each its own transaction
        i = 0
        while not stop.is_set():
            r = dbtls("ssl", "client-certs", "create", f"c{i}", "--instance", "pg1",
                      "--out-dir", os.path.join(tmp_dir, f"c{i}"), check=False)
            (made if r.returncode == 0 else errors).append(r.stderr)
            i += 1

    t = threading.Thread(target=writer)
    t.start()
    backups = []
    try:
        deadline = time.monotonic() + 60
        while len(made) < 3 and not errors and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(made) >= 3, errors
        for n in range(3):
            path = os.path.join(tmp_dir, f"backup-{n}.db")
            out = dbtls.json("backup", "--out", path)
            assert out == {"file": path}
            backups.append(path)
    finally:
        stop.set()
        t.join(timeout=60)
    assert not errors, errors
    for path in backups:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert rows(path, "PRAGMA integrity_check") == [("ok",)]
        # a snapshot: every client certificate row has its instance, its count is whole
        n = rows(path, "SELECT count(*) FROM client_certs")[0][0]
        assert 0 < n <= len(made)
        assert not [f for f in os.listdir(tmp_dir) if ".tmp-" in f]
    ev = [e for e in dbtls.json("events", "list") if e["action"] == "store.backup"]
    assert sorted(e["detail"] for e in ev) == [f"file={p}" for p in backups], ev

    # restore the last one: the copy and the master key make a state directory that serves
    ca = download_ca(dbtls, "pg1", tmp_dir)
    d.stop()
    restored = os.path.join(tmp_dir, "restored")
    os.makedirs(restored, mode=0o700)
    shutil.copy2(backups[-1], os.path.join(restored, "dbtls.db"))
    shutil.copy2(os.path.join(state_dir, "master.key"), os.path.join(restored, "master.key"))
    r = dbtls.with_state_dir(restored)
    listed = r.json("ssl", "client-certs", "list", "--instance", "pg1")
    assert len(listed) == rows(backups[-1], "SELECT count(*) FROM client_certs")[0][0]
    r("ssl", "client-certs", "create", "after-restore", "--instance", "pg1", "--out-dir",
      os.path.join(tmp_dir, "after"))
    dbtlsd.start(restored)
    conninfo = (f"host=localhost hostaddr=127.0.0.1 port={port} user=trustuser dbname=app "
                f"sslmode=verify-full sslrootcert={ca} connect_timeout=5")
    with psycopg.connect(conninfo) as c:
        assert c.execute("SELECT 1").fetchone() == (1,)


def test_backup_refusals_leave_nothing(dbtls, state_dir, tmp_dir):
    use_template(dbtls)
    path = os.path.join(tmp_dir, "b.db")
    with open(path, "w") as f:
        f.write("mine")
    r = dbtls.fail("backup", "--out", path)
    assert r.stderr.strip() == f'dbtls: backup file "{path}" already exists', r.stderr
    assert open(path).read() == "mine"
    ro = os.path.join(tmp_dir, "ro")
    os.makedirs(ro)
    os.chmod(ro, 0o500)
    try:
        target = os.path.join(ro, "b.db")
        if os.geteuid() != 0:  # root writes anywhere: a missing directory instead
            r = dbtls.fail("backup", "--out", target)
            assert "Permission denied" in r.stderr, r.stderr
        r = dbtls.fail("backup", "--out", os.path.join(tmp_dir, "missing", "b.db"))
        assert "cannot create backup file" in r.stderr and "No such file" in r.stderr, r.stderr
        assert os.listdir(ro) == []
    finally:
        os.chmod(ro, 0o700)
    dbtls("backup", rc=2)  # --out is required
