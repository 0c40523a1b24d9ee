"""`dbtls restore --from FILE`: a `dbtls backup` copy put back as the store, with dbtlsd serving a
real PostgreSQL 15 in front of clients with client certificates (psycopg/libpq). The PKI forgets
nothing it did after the copy was taken: a client certificate revoked since stays refused (CRL
signed again, number going up), one issued since keeps working and can still be revoked by name.
Also: instances the copy lacks are not deleted without --force; a copy taken before a master key
rotation needs (and then takes) the old key; a missing or damaged store is replaced (the damaged
file kept aside); a killed restore leaves the store as it was; bad copies are refused with one
line naming the file, and nothing changes."""
import fcntl
import os
import shutil
import sqlite3
import stat
import subprocess

import psycopg
import pytest

from cli_helpers import assert_unchanged, pg_instance, store_snapshot, use_template, write


def rows(path, sql):
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def make_cert(dbtls, tmp_dir, name, instance="pg1"):
    d = os.path.join(tmp_dir, name)
    dbtls("ssl", "client-certs", "create", name, "--instance", instance, "--out-dir", d)
    return d


def connect(port, certs):
    """A verify-full libpq connection as certuser with the client certificate in certs."""
    return psycopg.connect(
        host="localhost", hostaddr="127.0.0.1", port=port, user="certuser", dbname="app",
        sslmode="verify-full", sslrootcert=os.path.join(certs, "server-ca.pem"),
        sslcert=os.path.join(certs, "client-cert.pem"),
        sslkey=os.path.join(certs, "client-key.pem"), connect_timeout=5)


def works(port, certs):
    with connect(port, certs) as c:
        return c.execute("SELECT current_user").fetchone() == ("certuser",)


def refused(port, certs):
    with pytest.raises(psycopg.OperationalError) as e:
        connect(port, certs).close()
    return str(e.value)


def no_stage_files(state_dir):
    left = [f for f in os.listdir(state_dir) if ".restore-" in f]
    assert not left, left


def test_restore_keeps_what_the_pki_did_since(dbtls, dbtlsd, state_dir, tmp_dir, free_port,
                                               pg_server):
    use_template(dbtls)
    port = free_port()
    pg_instance(dbtls, "pg1", f"127.0.0.1:{port}", pg_server.socket_path, "localhost",
                "--engine-version", "15", "--ssl-mode", "TRUSTED_CLIENT_CERTIFICATE_REQUIRED")
    old = make_cert(dbtls, tmp_dir, "old-laptop")
    kept = make_cert(dbtls, tmp_dir, "kept")
    copy = os.path.join(tmp_dir, "copy.db")
    dbtls("backup", "--out", copy)
    crl_before = rows(os.path.join(state_dir, "dbtls.db"), "SELECT crl_number FROM instances")

    # after the copy: one certificate revoked, one issued, an instance deleted
    pg_instance(dbtls, "gone", f"127.0.0.1:{free_port()}", pg_server.socket_path, "gone.test",
                "--engine-version", "15")
    dbtls("instances", "delete", "gone")
    dbtls("ssl", "client-certs", "delete", "old-laptop", "--instance", "pg1")
    new = make_cert(dbtls, tmp_dir, "new-laptop")
    d = dbtlsd.start(state_dir)
    assert works(port, kept) and works(port, new)
    assert "revoked" in refused(port, old)
    live_crl = rows(os.path.join(state_dir, "dbtls.db"), "SELECT crl_number FROM instances")

    trail = [(e["action"], e["object"]) for e in dbtls.json("events", "list")]
    start = d.log_size()
    out = dbtls.json("restore", "--from", copy)
    assert out["replaced"] is True and out["rekeyed"] is False
    assert out["instances"] == 1 and out["keys"] >= 9
    assert (out["clientCertsCarried"], out["revocationsCarried"]) == (1, 1), out
    assert out["instancesRemoved"] == [] and out["instancesReturned"] == []
    assert out["damagedStoreMovedTo"] is None
    no_stage_files(state_dir)
    d.wait_reload(start)  # the counter went above the replaced store's: the daemon reloads

    # the daemon serves the restored store: revoked stays revoked, issued-since still works
    assert "revoked" in refused(port, old)
    assert works(port, kept) and works(port, new)
    names = {c["name"] for c in dbtls.json("ssl", "client-certs", "list", "--instance", "pg1")}
    assert names == {"kept", "new-laptop"}
    db = os.path.join(state_dir, "dbtls.db")
    (crl,) = rows(db, "SELECT crl_number FROM instances")[0]
    assert crl > live_crl[0][0] > crl_before[0][0]  # CRL numbers never go back
    assert rows(db, "PRAGMA foreign_key_check") == []
    assert stat.S_IMODE(os.stat(db).st_mode) == 0o600
    # the audit trail stays whole: what happened after the copy, then the restore
    events = dbtls.json("events", "list")
    assert [(e["action"], e["object"]) for e in events[:-1]] == trail
    assert ("store.backup", "store") in trail[-out["eventsCarried"]:]
    assert ("client-cert.delete", "instance/pg1/client-cert/old-laptop") in trail[-5:]
    assert events[-1]["action"] == "store.restore" and f"file={copy}" in events[-1]["detail"]
    assert "client_certs_carried=1 revocations_carried=1" in events[-1]["detail"]
    ids = rows(db, "SELECT id FROM events ORDER BY id")
    assert len(ids) == len(set(ids)) == len(events)

    # a certificate issued after the copy can still be revoked by name
    start = d.log_size()
    dbtls("ssl", "client-certs", "delete", "new-laptop", "--instance", "pg1")
    d.wait_reload(start)
    assert "revoked" in refused(port, new)
    assert works(port, kept)


def test_restore_does_not_delete_newer_instances_without_force(dbtls, state_dir, tmp_dir):
    use_template(dbtls)
    pg_instance(dbtls, "pg1", "127.0.0.1:41001", "127.0.0.1:5432", "pg1.test")
    copy = os.path.join(tmp_dir, "copy.db")
    dbtls("backup", "--out", copy)
    pg_instance(dbtls, "pg2", "127.0.0.1:41002", "127.0.0.1:5432", "pg2.test")
    pg_instance(dbtls, "pg3", "127.0.0.1:41003", "127.0.0.1:5432", "pg3.test")
    before = store_snapshot(state_dir)
    r = dbtls.fail("restore", "--from", copy)
    assert r.stderr.strip() == (
        f'dbtls: restoring "{copy}" would delete instances pg2, pg3, which the copy does not '
        "have (created after it was taken?); nothing was restored: give --force to restore "
        "anyway"), r.stderr
    assert_unchanged(before, state_dir)
    no_stage_files(state_dir)
    # --dry-run: the same checks and report, nothing changed
    out = dbtls.json("restore", "--from", copy, "--dry-run")
    assert out["dryRun"] is True and out["replaced"] is True
    assert out["instancesRemoved"] == ["pg2", "pg3"]
    r = dbtls("restore", "--from", copy, "--dry-run")
    assert r.stderr.strip().endswith("Dry run: the above is what restoring would do; nothing "
                                     "changed (deleting those instances needs --force)."), r.stderr
    assert r.stderr.startswith(f"Checked a restore of the store from {copy} "), r.stderr
    assert_unchanged(before, state_dir)
    no_stage_files(state_dir)
    out = dbtls.json("restore", "--from", copy, "--force")
    assert out["instancesRemoved"] == ["pg2", "pg3"]
    assert [i["name"] for i in dbtls.json("instances", "list")] == ["pg1"]


def test_restore_a_copy_from_before_a_master_key_rotation(dbtls, state_dir, tmp_dir):
    use_template(dbtls)
    pg_instance(dbtls, "pg1", "127.0.0.1:41011", "127.0.0.1:5432", "pg1.test")
    copy = os.path.join(tmp_dir, "copy.db")
    dbtls("backup", "--out", copy)
    old_key = os.path.join(tmp_dir, "old.key")
    shutil.copy2(os.path.join(state_dir, "master.key"), old_key)
    dbtls("master-key", "rotate")
    before = store_snapshot(state_dir)
    r = dbtls.fail("restore", "--from", copy)
    msg = r.stderr.strip()
    assert msg.startswith(f'dbtls: "{copy}": the private key of CA '), msg
    assert "wrong master key?" in msg and "--from-master-key FILE" in msg, msg
    assert_unchanged(before, state_dir)
    # the old key: a group-readable key file is refused as master.key would be
    os.chmod(old_key, 0o644)
    r = dbtls.fail("restore", "--from", copy, "--from-master-key", old_key)
    assert r.stderr.startswith("dbtls: --from-master-key: "), r.stderr
    os.chmod(old_key, 0o600)
    out = dbtls.json("restore", "--from", copy, "--from-master-key", old_key)
    assert out["rekeyed"] is True
    # every key opens under the current master key: issue with the client CA, rotate with the CA
    dbtls("ssl", "client-certs", "create", "after", "--instance", "pg1", "--out-dir",
          os.path.join(tmp_dir, "after"))
    dbtls("ssl", "server-certs", "create", "--instance", "pg1")
    dbtls("ssl", "server-certs", "rotate", "--instance", "pg1")
    # the same key from a command
    out = dbtls.json("restore", "--from", copy, "--from-master-key-command", f"cat {old_key}")
    assert out["rekeyed"] is True
    dbtls("restore", "--from", copy, "--from-master-key", old_key,
          "--from-master-key-command", "true", rc=2)


def test_restore_onto_a_missing_or_damaged_store(dbtls, state_dir, tmp_dir):
    use_template(dbtls)
    pg_instance(dbtls, "pg1", "127.0.0.1:41021", "127.0.0.1:5432", "pg1.test")
    make_cert(dbtls, tmp_dir, "c1")
    copy = os.path.join(tmp_dir, "copy.db")
    dbtls("backup", "--out", copy)

    # a new machine without the master key: refused, no directory made
    bare = os.path.join(tmp_dir, "bare")
    r = dbtls.with_state_dir(bare).fail("restore", "--from", copy)
    assert r.stderr.strip() == (f'dbtls: master key file "{bare}/master.key" does not exist; '
                                "run `dbtls init` or give --master-key-command"), r.stderr
    assert not os.path.exists(bare)
    # with it from a command the state directory is made (mode 0700)
    key_cmd = f"cat {os.path.join(state_dir, 'master.key')}"
    cmd_dir = os.path.join(tmp_dir, "by-command")
    dbtls.with_state_dir(cmd_dir)("--master-key-command", key_cmd, "restore", "--from", copy)
    assert stat.S_IMODE(os.stat(cmd_dir).st_mode) == 0o700
    # a new machine: the state directory holds only master.key
    fresh = os.path.join(tmp_dir, "fresh")
    os.makedirs(fresh, mode=0o700)
    shutil.copy2(os.path.join(state_dir, "master.key"), os.path.join(fresh, "master.key"))
    f = dbtls.with_state_dir(fresh)
    out = f.json("restore", "--from", copy)
    assert out["replaced"] is False and out["damagedStoreMovedTo"] is None
    assert [c["name"] for c in f.json("ssl", "client-certs", "list", "--instance", "pg1")] == \
        ["c1"]
    assert stat.S_IMODE(os.stat(os.path.join(fresh, "dbtls.db")).st_mode) == 0o600

    # a damaged store (and a WAL of it, which must not be replayed into the copy)
    db = os.path.join(state_dir, "dbtls.db")
    with open(db, "r+b") as fh:
        fh.seek(0)
        fh.write(b"\0" * 4096)
    r = dbtls.fail("instances", "list")
    assert "is damaged or not a dbtls store" in r.stderr, r.stderr
    write(db + "-wal", "not a WAL of the copy", 0o600)
    out = dbtls.json("restore", "--from", copy)
    aside = out["damagedStoreMovedTo"]
    assert aside.startswith(db + ".damaged-") and os.path.exists(aside), out
    assert not os.path.exists(db + "-wal")
    assert [i["name"] for i in dbtls.json("instances", "list")] == ["pg1"]
    assert rows(db, "PRAGMA integrity_check") == [("ok",)]
    no_stage_files(state_dir)


def test_a_killed_restore_leaves_the_store_as_it_was(dbtls, state_dir, tmp_dir):
    use_template(dbtls)
    pg_instance(dbtls, "pg1", "127.0.0.1:41031", "127.0.0.1:5432", "pg1.test")
    copy = os.path.join(tmp_dir, "copy.db")
    dbtls("backup", "--out", copy)
    make_cert(dbtls, tmp_dir, "c1")
    dbtls("ssl", "client-certs", "delete", "c1", "--instance", "pg1")
    before = store_snapshot(state_dir)
    for point in ("restore-mid", "restore-prepared"):
        r = dbtls("restore", "--from", copy, env={"DBTLS_FAULT": point}, check=False)
        assert r.returncode != 0 and f"DBTLS_FAULT={point}" in r.stderr, r.stderr
        assert_unchanged(before, state_dir)
    # one at a time: a restore (or a master key rotation) holds the state directory's lock
    fd = os.open(state_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        r = dbtls.fail("restore", "--from", copy)
        assert r.stderr.strip() == ("dbtls: another master key rotation or restore is running "
                                    f'on "{state_dir}"'), r.stderr
    finally:
        os.close(fd)
    assert_unchanged(before, state_dir)
    # what the killed runs staged is removed by the next restore, which completes
    out = dbtls.json("restore", "--from", copy)
    assert out["revocationsCarried"] == 1
    no_stage_files(state_dir)


def test_restore_refuses_bad_copies(dbtls, state_dir, tmp_dir):
    use_template(dbtls)
    pg_instance(dbtls, "pg1", "127.0.0.1:41041", "127.0.0.1:5432", "pg1.test")
    newer = os.path.join(tmp_dir, "newer.db")
    dbtls("backup", "--out", newer)  # an event: before the snapshot
    before = store_snapshot(state_dir)

    def refused_with(path, expected):
        r = dbtls.fail("restore", "--from", path)
        assert r.stderr.strip() == f"dbtls: {expected}", r.stderr
        assert_unchanged(before, state_dir)
        no_stage_files(state_dir)

    missing = os.path.join(tmp_dir, "missing.db")
    refused_with(missing, f'cannot read "{missing}": No such file or directory')
    text = os.path.join(tmp_dir, "notes.txt")
    write(text, "not a database\n" * 300)
    refused_with(text, f'"{text}" is not a dbtls store (file is not a database)')
    other = os.path.join(tmp_dir, "other.db")
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE t (x)")
    con.commit()
    con.close()
    refused_with(other, f'"{other}" is not a dbtls store (an SQLite database with '
                 "application_id 0)")
    con = sqlite3.connect(newer)
    con.execute("PRAGMA user_version = 999")
    con.commit()
    con.close()
    refused_with(newer, f'"{newer}" has schema version 999, newer than this dbtls '
                 f"({rows(os.path.join(state_dir, 'dbtls.db'), 'PRAGMA user_version')[0][0]}); "
                 "upgrade dbtls")
    refused_with(os.path.join(state_dir, "dbtls.db"),
                 f'"{os.path.join(state_dir, "dbtls.db")}" is the store itself')
    # a copy of another state directory: its keys were sealed under another master key
    other_dir = os.path.join(tmp_dir, "other-state")
    o = dbtls.with_state_dir(other_dir)
    o("init")
    foreign = os.path.join(tmp_dir, "foreign.db")
    o("backup", "--out", foreign)
    r = dbtls.fail("restore", "--from", foreign)
    assert "cannot decrypt a stored private key (wrong master key?)" in r.stderr, r.stderr
    assert_unchanged(before, state_dir)
    dbtls("restore", rc=2)  # --from is required


def test_restore_across_a_reset_ssl_config(dbtls, state_dir, tmp_dir):
    """reset-ssl-config after the copy revoked every client certificate of the old client CA and
    made a new one: restored, the copy's (old) client CA is back, with the reset's revocations;
    the certificates of the new CA no longer work, and the output says both."""
    use_template(dbtls)
    pg_instance(dbtls, "pg1", "127.0.0.1:41051", "127.0.0.1:5432", "pg1.test")
    make_cert(dbtls, tmp_dir, "before-reset")
    copy = os.path.join(tmp_dir, "copy.db")
    dbtls("backup", "--out", copy)
    dbtls("instances", "reset-ssl-config", "pg1")
    make_cert(dbtls, tmp_dir, "after-reset")
    out = dbtls.json("restore", "--from", copy)
    assert out["clientCaChanged"] == ["pg1"], out
    assert (out["revocationsCarried"], out["clientCertsLost"]) == (1, 1), out
    assert dbtls.json("ssl", "client-certs", "list", "--instance", "pg1") == []
    crl = os.path.join(tmp_dir, "exp")
    dbtls("instances", "export", "pg1", "--dir", crl)
    serial = rows(copy, "SELECT serial FROM client_certs")[0][0]
    text = subprocess.run(["openssl", "crl", "-in", os.path.join(crl, "root.crl"), "-noout",
                           "-text"], capture_output=True, text=True, check=True).stdout
    assert serial.upper() in text.upper(), text
    r = dbtls("restore", "--from", copy)
    assert "Instances whose client CA is the copy's again" not in r.stderr  # same CA now


def test_restore_migrates_an_older_copy(dbtls, state_dir, tmp_dir):
    """A copy from an older dbtls (schema 5: before the backend client certificate and
    client-info columns) is migrated while staged; the store keeps the current schema."""
    use_template(dbtls)
    pg_instance(dbtls, "pg1", "127.0.0.1:41061", "127.0.0.1:5432", "pg1.test",
                "--client-info", "on")
    copy = os.path.join(tmp_dir, "copy.db")
    dbtls("backup", "--out", copy)
    db = os.path.join(state_dir, "dbtls.db")
    version = rows(db, "PRAGMA user_version")[0][0]
    con = sqlite3.connect(copy)
    for col in ("backend_tls_cert", "backend_tls_key", "client_info"):
        con.execute(f"ALTER TABLE instances DROP COLUMN {col}")
    con.execute(f"PRAGMA user_version = {version - 1}")
    con.commit()
    con.close()
    out = dbtls.json("restore", "--from", copy)
    assert out["instances"] == 1 and out["replaced"] is True
    assert rows(db, "PRAGMA user_version") == [(version,)]
    got = dbtls.json("instances", "describe", "pg1")
    assert got["clientInfo"] is False and got["backendTlsCert"] is None  # the migration's default
