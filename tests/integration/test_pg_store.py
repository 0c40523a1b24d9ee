"""The PostgreSQL store (docs/store.md): `dbtls init --store CONNINFO` keeps the control plane
in a real PostgreSQL 15 database instead of state-dir/dbtls.db. The control-plane flow gives the
same results as on SQLite; a second init on the same database is refused; two dbtlsd nodes
(two state dirs sharing master.key and store.conf) both serve the instance on one port
(SO_REUSEPORT) and both pick up a rotation made through either state dir, with no restart; an
unreachable store is a one-line error that never shows the password."""
import hashlib
import os
import shutil
import socket
import ssl
import stat
import struct
import time
import uuid

import pytest

from cli_helpers import use_template

SSL_REQUEST = struct.pack("!II", 8, 80877103)


@pytest.fixture
def store_db(pg_server):
    """A fresh database for the store, owned by alice (who logs in with a password over TCP):
    returns its libpq URI (with the password) and drops the database afterwards."""
    name = "dbtls_store_" + uuid.uuid4().hex[:10]
    pg_server.psql(f"CREATE DATABASE {name} OWNER alice", dbname="postgres")
    password = pg_server.users["alice"]
    uri = (f"postgresql://alice:{password}@{pg_server.host}:{pg_server.port}/{name}"
           "?sslmode=disable")
    yield uri
    pg_server.psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)", dbname="postgres")


def presented_cert(port):
    """SHA-1 (hex, lower) of the certificate the front presents on a PostgreSQL SSLRequest."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(SSL_REQUEST)
        assert s.recv(1) == b"S"
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        with ctx.wrap_socket(s, server_hostname="localhost") as t:
            return hashlib.sha1(t.getpeercert(binary_form=True)).hexdigest()


def active_sha1(dbtls):
    certs = dbtls.json("ssl", "server-certs", "list", "--instance", "pg1")
    active = [c for c in certs if c.get("slot") == "active"]
    assert len(active) == 1, certs
    return active[0]["sha1Fingerprint"].replace(":", "").lower()


def wait_all_present(port, want, n=24, timeout=10.0):
    """Until n connections in a row (spread over the nodes by SO_REUSEPORT) present `want`."""
    deadline = time.monotonic() + timeout
    while True:
        seen = [presented_cert(port) for _ in range(n)]
        if all(s == want for s in seen):
            return
        if time.monotonic() > deadline:
            pytest.fail(f"after {timeout} s the front still presents {set(seen) - {want}}, "
                        f"not {want}")
        time.sleep(0.3)


def control_plane_flow(dbtls, port, backend, out_dir):
    """Runs the control-plane flow and returns what it showed, free of times, serials and
    fingerprints, for comparing the two stores."""
    shown = []
    os.makedirs(out_dir)

    def slots():
        return sorted(c["slot"] for c in dbtls.json("ssl", "server-certs", "list",
                                                     "--instance", "pg1"))

    dbtls("instances", "create", "pg1", "--engine", "postgres", "--engine-version", "15",
          "--listen", f"127.0.0.1:{port}", "--backend", backend, "--endpoint", "localhost")
    desc = dbtls.json("instances", "describe", "pg1")
    shown.append(("describe", sorted(desc)))
    shown.append(("names", [i["name"] for i in dbtls.json("instances", "list")]))
    shown.append(("slots0", slots()))
    dbtls("ssl", "server-certs", "create", "--instance", "pg1")
    shown.append(("slots1", slots()))
    dbtls("ssl", "server-certs", "rotate", "--instance", "pg1")
    shown.append(("slots2", slots()))
    dbtls("ssl", "server-certs", "rollback", "--instance", "pg1")
    shown.append(("slots3", slots()))
    shown.append(("rollback-again", dbtls.fail("ssl", "server-certs", "rollback", "--instance",
                                               "pg1").stderr))
    for name in ("app-one", "app-two"):
        dbtls("ssl", "client-certs", "create", name, "--instance", "pg1", "--out-dir",
              os.path.join(out_dir, name))
    shown.append(("dup", dbtls.fail("ssl", "client-certs", "create", "app-one", "--instance",
                                    "pg1", "--out-dir", os.path.join(out_dir, "x")).stderr))
    shown.append(("clients", [c["commonName"] for c in dbtls.json(
        "ssl", "client-certs", "list", "--instance", "pg1")]))
    dbtls("ssl", "client-certs", "delete", "app-one", "--instance", "pg1")
    shown.append(("clients2", [c["commonName"] for c in dbtls.json(
        "ssl", "client-certs", "list", "--instance", "pg1")]))
    shown.append(("gone", dbtls.fail("ssl", "client-certs", "delete", "app-one", "--instance",
                                     "pg1").stderr))
    events = dbtls.json("events", "list")
    shown.append(("events", [(e["action"], e["object"]) for e in events]))
    return shown


def test_control_plane_same_as_sqlite(pg_server, dbtls, store_db, free_port, tmp_dir):
    sd_pg = os.path.join(tmp_dir, "pg-state")
    pg = dbtls.with_state_dir(sd_pg)
    pg("init", "--store", store_db)
    conf = os.path.join(sd_pg, "store.conf")
    assert stat.S_IMODE(os.stat(conf).st_mode) == 0o600
    assert not os.path.exists(os.path.join(sd_pg, "dbtls.db"))
    use_template(dbtls)
    backend = f"127.0.0.1:{pg_server.port}"
    # events of init itself differ (the template was made by another init): compare what follows
    n_pg, n_lite = len(pg.json("events", "list")), len(dbtls.json("events", "list"))
    got_pg = control_plane_flow(pg, free_port(), backend, os.path.join(tmp_dir, "pg"))
    got_lite = control_plane_flow(dbtls, free_port(), backend, os.path.join(tmp_dir, "lite"))
    for (k1, v1), (k2, v2) in zip(got_pg, got_lite):
        if k1 == "events":
            v1, v2 = v1[n_pg:], v2[n_lite:]
        assert (k1, v1) == (k2, v2)
    assert len(got_pg) == len(got_lite)
    # the data really is in PostgreSQL
    db = store_db.rsplit("/", 1)[1].split("?")[0]
    out = pg_server.psql("SELECT name FROM instances; SELECT version FROM dbtls_schema;",
                         dbname=db)
    assert "pg1" in out


def test_second_init_on_same_database_refused(dbtls, store_db, tmp_dir, pg_server):
    first = dbtls.with_state_dir(os.path.join(tmp_dir, "a"))
    first("init", "--store", store_db)
    sd_b = os.path.join(tmp_dir, "b")
    second = dbtls.with_state_dir(sd_b)
    cp = second.fail("init", "--store", store_db)
    assert "already holds a dbtls store" in cp.stderr
    assert pg_server.users["alice"] not in cp.stderr
    # nothing left behind: the state dir can be initialized against another store
    assert not os.path.exists(os.path.join(sd_b, "store.conf"))
    assert not os.path.exists(os.path.join(sd_b, "master.key"))
    # the first store is intact
    assert len(first.json("cas", "list")) == 3


def test_unreachable_store_one_line(dbtls, tmp_dir, free_port):
    port = free_port()
    uri = f"postgresql://alice:s3cret-word@127.0.0.1:{port}/nowhere?sslmode=disable"
    sd = os.path.join(tmp_dir, "x")
    cp = dbtls.with_state_dir(sd).fail("init", "--store", uri)
    assert "cannot connect to PostgreSQL store" in cp.stderr
    assert f"port={port}" in cp.stderr
    assert "s3cret-word" not in cp.stderr
    assert not os.path.exists(os.path.join(sd, "store.conf"))
    # a state dir whose store went away: every command says so in one line
    os.makedirs(sd, exist_ok=True)
    with open(os.open(os.path.join(sd, "store.conf"), os.O_WRONLY | os.O_CREAT, 0o600),
              "w") as f:
        f.write(uri + "\n")
    with open(os.open(os.path.join(sd, "master.key"), os.O_WRONLY | os.O_CREAT, 0o600),
              "wb") as f:
        f.write(os.urandom(32))
    cp = dbtls.with_state_dir(sd).fail("instances", "list")
    assert "cannot connect to PostgreSQL store" in cp.stderr
    assert "s3cret-word" not in cp.stderr
    cp = dbtls.with_state_dir(sd).fail("init", "--store", uri)
    assert "already names a store" in cp.stderr
    cp = dbtls.fail("init", "--store", "host=127.0.0.1 port")
    assert "invalid PostgreSQL store connection string" in cp.stderr


def two_nodes(dbtls, store_db, tmp_dir):
    """Node a's state dir initialized on the store, node b's a copy of its master.key and
    store.conf (no init): (state dir a, state dir b, dbtls on a, dbtls on b)."""
    sd_a, sd_b = os.path.join(tmp_dir, "node-a"), os.path.join(tmp_dir, "node-b")
    a = dbtls.with_state_dir(sd_a)
    a("init", "--store", store_db)
    os.makedirs(sd_b, mode=0o700)
    for f in ("master.key", "store.conf"):
        shutil.copy2(os.path.join(sd_a, f), os.path.join(sd_b, f))
    return sd_a, sd_b, a, dbtls.with_state_dir(sd_b)


def test_two_nodes_share_store_and_follow_rotation(pg_server, dbtls, dbtlsd, store_db,
                                                   free_port, tmp_dir):
    sd_a, sd_b, a, b = two_nodes(dbtls, store_db, tmp_dir)
    port = free_port()
    b("instances", "create", "pg1", "--engine", "postgres", "--engine-version", "15",
      "--listen", f"127.0.0.1:{port}", "--backend", f"127.0.0.1:{pg_server.port}",
      "--endpoint", "localhost")
    assert [i["name"] for i in a.json("instances", "list")] == ["pg1"]
    node_a = dbtlsd.start(sd_a)
    node_b = dbtlsd.start(sd_b)
    first = active_sha1(a)
    wait_all_present(port, first)

    # rotation through node b's state dir: both nodes present the new certificate
    b("ssl", "server-certs", "create", "--instance", "pg1")
    b("ssl", "server-certs", "rotate", "--instance", "pg1")
    second = active_sha1(a)
    assert second != first
    wait_all_present(port, second)
    node_a.stop()
    wait_all_present(port, second, n=4)  # node b alone: it took the change with no restart
    node_a = dbtlsd.start(sd_a)

    # and through node a's: node a (running all along now) follows too
    a("ssl", "server-certs", "create", "--instance", "pg1")
    a("ssl", "server-certs", "rotate", "--instance", "pg1")
    third = active_sha1(b)
    assert third not in (first, second)
    wait_all_present(port, third)
    node_b.stop()
    wait_all_present(port, third, n=4)
    node_a.stop()


def one_node(dbtls, dbtlsd, store_db, pg_server, free_port, tmp_dir, args=()):
    """A state dir on the PostgreSQL store with instance pg1 and its running dbtlsd:
    (dbtls bound to the state dir, the dbtlsd process, the instance's port)."""
    sd = os.path.join(tmp_dir, "node")
    d = dbtls.with_state_dir(sd)
    d("init", "--store", store_db)
    port = free_port()
    d("instances", "create", "pg1", "--engine", "postgres", "--listen", f"127.0.0.1:{port}",
      "--backend", f"127.0.0.1:{pg_server.port}", "--endpoint", "localhost")
    return d, dbtlsd.start(sd, list(args)), port


def rotate(d):
    d("ssl", "server-certs", "create", "--instance", "pg1")
    d("ssl", "server-certs", "rotate", "--instance", "pg1")
    return active_sha1(d)


def test_node_reloads_on_notification_and_survives_losing_it(pg_server, dbtls, dbtlsd,
                                                               store_db, free_port, tmp_dir):
    """DESIGN.md §2: nodes learn of changes through LISTEN/NOTIFY. A rotation reloads the node
    because the store notified it (while listening the node polls only every 10 s); when the
    listening connection is killed the node says so, polls, listens again within seconds and is
    notified of the next change."""
    d, node, port = one_node(dbtls, dbtlsd, store_db, pg_server, free_port, tmp_dir)
    node.wait_log("store change notifications on")

    mark = node.log_size()
    second = rotate(d)
    t0 = time.monotonic()
    node.wait_log(", notified): reloading", timeout=5, start=mark)
    assert time.monotonic() - t0 < 3
    wait_all_present(port, second, n=4, timeout=3)

    # the listening connection dies (e.g. the store's server restarted): poll, then listen again
    mark = node.log_size()
    killed = pg_server.psql("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                            "WHERE application_name = 'dbtls watch'", dbname="postgres")
    assert killed.strip() == "1", killed
    node.wait_log("change notifications lost", timeout=5, start=mark)
    node.wait_log("store change notifications on", timeout=15, start=mark)
    mark = node.log_size()
    third = rotate(d)
    node.wait_log(", notified): reloading", timeout=5, start=mark)
    wait_all_present(port, third, n=4, timeout=3)
    assert node.alive()
    node.stop()


def test_admin_revocation_is_notified(pg_server, dbtls, dbtlsd, store_db, free_port, tmp_dir):
    """The admin API's trust watcher listens too: on a PostgreSQL store `dbtls admin-certs
    revoke` reloads the admin CRL because the store notified it (its poll is then every 10 s),
    and the revoked certificate is refused in the handshake at once."""
    from api_client import make_admin
    from test_admin_revoke import handshake_error
    admin_port = free_port()
    d, node, _ = one_node(dbtls, dbtlsd, store_db, pg_server, free_port, tmp_dir,
                          ["--admin-listen", f"127.0.0.1:{admin_port}"])
    files = make_admin(d, tmp_dir, "ops")
    mark = node.log_size()
    time.sleep(1)  # the watcher is listening (it opened the watch at its first loop)
    assert handshake_error(admin_port, files) is None
    t0 = time.monotonic()
    d("admin-certs", "revoke", "ops")
    node.wait_log("1 revoked admin certificate, notified)", timeout=5, start=mark)
    assert time.monotonic() - t0 < 3
    err = handshake_error(admin_port, files)
    assert isinstance(err, ssl.SSLError) and "revoked" in str(err), err
    node.stop()


def test_stuck_store_never_hangs_the_daemon(pg_server, dbtls, dbtlsd, store_db, free_port,
                                            tmp_dir):
    """A store server that stops answering (its backends frozen with SIGSTOP: the kernel still
    ACKs, so only a client-side deadline helps) fails dbtlsd's reload after 20 s with one line
    instead of hanging forever; the front keeps serving meanwhile. Reloads run on a thread of
    their own, so SIGTERM is obeyed at once even while a reload waits for the store."""
    import signal
    _, node, port = one_node(dbtls, dbtlsd, store_db, pg_server, free_port, tmp_dir,
                             ["--scheduler-interval", "0"])
    served = presented_cert(port)
    db = store_db.rsplit("/", 1)[1].split("?")[0]

    def freeze():
        """SIGSTOPs dbtlsd's store backends; returns their pids."""
        pids = [int(p) for p in pg_server.psql(
            f"SELECT pid FROM pg_stat_activity WHERE datname = '{db}' "
            "AND application_name = 'dbtls'", dbname="postgres").split()]
        for p in pids:
            os.kill(p, signal.SIGSTOP)
        return pids

    pids = []
    try:
        pids += freeze()
        assert pids
        mark = node.log_size()
        node.reload()  # SIGHUP: the loader reads the store and gets no answer
        time.sleep(1)
        assert presented_cert(port) == served  # the workers serve on
        node.wait_log("no answer within 20 s", timeout=30, start=mark)
        assert "keeping configuration generation" in node.log()[mark:]
        # the failed connection was dropped: freeze the new one, and the postmaster so that
        # no other can be opened
        pids += freeze() + [pg_server.proc.pid]
        os.kill(pg_server.proc.pid, signal.SIGSTOP)
        mark = node.log_size()
        node.reload()  # waits for the store again
        node.wait_log("SIGHUP: reloading configuration", timeout=5, start=mark)
        time.sleep(1)
        assert presented_cert(port) == served
        t0 = time.monotonic()
        node.stop(timeout=30)
        took = time.monotonic() - t0
        log = node.log()[mark:]
        assert took < 8, (took, log)
        assert "shutting down" in log
        assert "stopped without waiting any longer for the store" in log, log
        assert "no answer within 20 s" not in log
    finally:
        for p in reversed(pids):
            os.kill(p, signal.SIGCONT)


def test_writer_waits_for_lock_then_fails_one_line(pg_server, dbtls, store_db, tmp_dir):
    """Writers serialize on the advisory lock; a wait is bounded (lock_timeout 10 s) and ends in
    one STORE line that changed nothing; readers do not wait."""
    import psycopg
    d = dbtls.with_state_dir(os.path.join(tmp_dir, "s"))
    d("init", "--store", store_db)
    n_events = len(d.json("events", "list"))
    db = store_db.rsplit("/", 1)[1].split("?")[0]
    with psycopg.connect(pg_server.dsn("alice", dbname=db), autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (0x44425453,))
        t0 = time.monotonic()
        cp = d.fail("cas", "set-default", "dbtls-ca-rsa2048-g1")
        waited = time.monotonic() - t0
        assert "locked by another process" in cp.stderr, cp.stderr
        assert 9 <= waited < 30, waited
        assert len(d.json("cas", "list")) == 3  # a reader does not wait
        assert len(d.json("events", "list")) == n_events
    d("cas", "set-default", "dbtls-ca-rsa2048-g1")  # the holder is gone: the lock is free
    events = d.json("events", "list")
    assert len(events) == n_events + 1 and "default" in events[-1]["action"], events[-1]


def test_master_key_rotation_reaches_every_node(pg_server, dbtls, dbtlsd, store_db, free_port,
                                                tmp_dir):
    """`dbtls master-key rotate` on the PostgreSQL store: node a re-seals every key and its
    daemon follows; node b, whose master.key is the old one, keeps serving what it has and says
    why it cannot reload, until the operator copies the new master.key there and sends SIGHUP:
    then it serves the certificate rotated meanwhile, with no restart."""
    sd_a, sd_b, a, b = two_nodes(dbtls, store_db, tmp_dir)
    port = free_port()
    a("instances", "create", "pg1", "--engine", "postgres", "--listen", f"127.0.0.1:{port}",
      "--backend", f"127.0.0.1:{pg_server.port}", "--endpoint", "localhost")
    node_a, node_b = dbtlsd.start(sd_a), dbtlsd.start(sd_b)
    first = active_sha1(a)
    wait_all_present(port, first)

    out = a.json("master-key", "rotate")
    assert out["masterKey"] == "file" and out["keys"] >= 8, out
    start_b = node_b.log_size()
    second = rotate(a)
    assert second != first
    node_b.wait_log("cannot decrypt a stored private key (wrong master key?)", start=start_b)
    r = b.fail("ssl", "server-certs", "create", "--instance", "pg1")
    assert "wrong master key?" in r.stderr
    # node a read the new key again when its own no longer opened the store's keys and serves
    # the new certificate; node b still serves the one it had (SO_REUSEPORT spreads the
    # connections over both: 24 all on one node would be a 1 in 8 million chance)
    assert {presented_cert(port) for _ in range(24)} == {first, second}
    shutil.copy2(os.path.join(sd_a, "master.key"), os.path.join(sd_b, "master.key"))
    assert stat.S_IMODE(os.stat(os.path.join(sd_b, "master.key")).st_mode) == 0o600
    node_b.reload()
    wait_all_present(port, second)
    node_a.stop()
    wait_all_present(port, second, n=4)  # node b alone serves the new certificate
    third = rotate(b)  # and node b's CLI issues under the new key
    wait_all_present(port, third, n=4)
    node_b.stop()


def test_backup_of_a_postgresql_store_is_pg_dumps_job(dbtls, store_db, tmp_dir, pg_server):
    sd = os.path.join(tmp_dir, "node")
    d = dbtls.with_state_dir(sd)
    d("init", "--store", store_db)
    out = os.path.join(tmp_dir, "b.db")
    r = d.fail("backup", "--out", out)
    assert "is the PostgreSQL database" in r.stderr and "back it up with pg_dump" in r.stderr
    assert "password" not in r.stderr and pg_server.users["alice"] not in r.stderr, r.stderr
    assert not os.path.exists(out)
    # nor is a SQLite copy restored over it (pg_restore's job), nothing staged
    sqlite_dir = os.path.join(tmp_dir, "sqlite")
    dbtls.with_state_dir(sqlite_dir)("init")
    dbtls.with_state_dir(sqlite_dir)("backup", "--out", out)
    r = d.fail("restore", "--from", out)
    assert r.stderr.strip() == (
        f'dbtls: the store of "{sd}" is the PostgreSQL database its store.conf names: restore '
        "it with pg_restore (docs/store.md)"), r.stderr
    assert sorted(os.listdir(sd)) == ["master.key", "store.conf"], os.listdir(sd)
