"""Admin-API writes run concurrently (docs/admin-api.md): each connection has its own thread and
control handle, and writers serialize only on the store's write lock, which no operation holds
while it generates a key (ctl/keys.c) and for which a blocked writer waits (busy timeout /
lock_timeout 10 s) instead of failing. So a dozen writes started together all succeed, each
recorded once, on either store; a write path that upgraded a read transaction instead of
beginning with BEGIN IMMEDIATE would fail here at once with "database is locked" (SQLite skips
the busy wait for it). And a quick write is not held up by another admin's RSA-4096 key
generation: when the API ran its writes one at a time under a process-wide mutex, the second
test failed, the quick write always committing after the slow one."""
import os
import threading
import time
import uuid

import pytest

from api_client import unix_api
from cli_helpers import create_instance, use_template

# CPU seconds after which a thread of dbtlsd that serves `:addServerCa` on an RSA-4096
# per-instance CA is surely generating the key: reading the request and the instance take
# milliseconds, the key seconds (more under ASan).
IN_KEYGEN_CPU = 0.2
ATTEMPTS = 5


def thread_cpu(pid):
    """{thread id: user + system CPU seconds} of every thread of a running process."""
    out = {}
    tick = os.sysconf("SC_CLK_TCK")
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue  # the thread ended meanwhile
        out[int(tid)] = (int(fields[11]) + int(fields[12])) / tick
    return out


def new_events(api, after):
    items = api.get("/v1/events").json()["items"]
    return [e for e in items if e["id"] > after]


def max_event_id(api):
    items = api.get("/v1/events?limit=1").json()["items"]
    return items[-1]["id"] if items else 0


@pytest.fixture(params=["sqlite", "postgresql"])
def api_env(request, dbtls, dbtlsd, state_dir):
    """dbtlsd on a store with instances "a" and "b": the SQLite file or a PostgreSQL database
    (its own, dropped afterwards)."""
    if request.param == "sqlite":
        use_template(dbtls)
    else:
        pg = request.getfixturevalue("pg_server")
        name = "dbtls_conc_" + uuid.uuid4().hex[:10]
        pg.psql(f"CREATE DATABASE {name} OWNER alice", dbname="postgres")
        request.addfinalizer(lambda: pg.psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)",
                                             dbname="postgres"))
        dbtls("init", "--store", f"postgresql://alice:{pg.users['alice']}@{pg.host}:{pg.port}/"
              f"{name}?sslmode=disable", timeout=300)
        assert not os.path.exists(os.path.join(state_dir, "dbtls.db"))
    create_instance(dbtls, "a")
    create_instance(dbtls, "b")
    d = dbtlsd.start(state_dir, ["--workers", "1"])
    return dbtls, d, unix_api(d.admin_socket)


def test_concurrent_writes_all_succeed_once(api_env):
    dbtls, d, api = api_env
    before = max_event_id(api)
    names = {"a": [f"a{i}" for i in range(5)], "b": [f"b{i}" for i in range(5)]}
    jobs = [("POST", f"/v1/instances/{inst}/sslCerts", {"name": n})
            for inst, ns in names.items() for n in ns]
    jobs.append(("PATCH", "/v1/instances/a", {"maxClientCerts": 50}))
    jobs.append(("POST", "/v1/instances/b:addServerCert", {}))
    assert len(jobs) == 12
    barrier = threading.Barrier(len(jobs))
    replies = [None] * len(jobs)

    def run(i):
        method, path, body = jobs[i]
        barrier.wait(timeout=30)
        try:
            replies[i] = api.request(method, path, body=body)
        except Exception as ex:  # reported below with the request it belongs to
            replies[i] = ex

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a request did not finish in 120 s"
    failed = [(j[0], j[1], r) for j, r in zip(jobs, replies)
              if not (hasattr(r, "status") and 200 <= r.status < 300)]
    assert not failed, f"writes that did not succeed: {failed}\n{d.log()}"

    # each change is in the audit trail exactly once
    got = sorted((e["action"], e["object"]) for e in new_events(api, before))
    want = sorted([("client-cert.create", f"instance/{inst}/client-cert/{n}")
                   for inst, ns in names.items() for n in ns] +
                  [("instance.patch", "instance/a"), ("server-cert.create", "instance/b")])
    assert got == want

    # and in the store, as the API and the CLI read it
    for inst, ns in names.items():
        listed = api.get(f"/v1/instances/{inst}/sslCerts").json()["items"]
        assert sorted(c["name"] for c in listed) == ns
        assert listed == dbtls.json("ssl", "client-certs", "list", "--instance", inst)
    a = api.get("/v1/instances/a").json()
    assert a["maxClientCerts"] == 50
    assert a["serverCert"]["slot"] == "active"
    slots = [c["slot"] for c in api.get("/v1/instances/b/serverCerts").json()["items"]]
    assert sorted(slots) == ["active", "upcoming"]
    assert d.alive()


def test_quick_write_not_held_up_by_rsa4096_key_generation(dbtls, dbtlsd, state_dir):
    use_template(dbtls)
    create_instance(dbtls, "big", mode="per-instance", ca="dbtls-ca-rsa4096-g1")
    create_instance(dbtls, "small")
    d = dbtlsd.start(state_dir, ["--workers", "1"])
    api = unix_api(d.admin_socket)
    outcomes = []
    for attempt in range(ATTEMPTS):
        start_id = max_event_id(api)
        base = thread_cpu(d.pid)
        slow = {}

        def add_server_ca():
            slow["reply"] = api.post("/v1/instances/big:addServerCa", {})

        t = threading.Thread(target=add_server_ca)
        t.start()
        try:
            # Wait until one of dbtlsd's threads (the one serving the slow request: its thread
            # may be new) has spent enough CPU to be inside the RSA-4096 key generation.
            generating = False
            while t.is_alive():
                now = thread_cpu(d.pid)
                if any(cpu - base.get(tid, 0.0) >= IN_KEYGEN_CPU for tid, cpu in now.items()):
                    generating = t.is_alive()
                    break
                time.sleep(0.005)
            t0 = time.monotonic()
            r = api.post("/v1/instances/small/sslCerts", {"name": f"app{attempt}"})
            waited = time.monotonic() - t0
        finally:
            t.join(timeout=120)
        assert not t.is_alive(), "addServerCa did not finish in 120 s"
        assert r.status == 201, r
        assert slow["reply"].status == 200, slow["reply"]
        order = [e["action"] for e in new_events(api, start_id)
                 if e["action"] in ("client-cert.create", "server-ca.create")]
        assert sorted(order) == ["client-cert.create", "server-ca.create"], order
        first = order[0] == "client-cert.create"
        outcomes.append(f"attempt {attempt}: key generation running when the client cert was "
                        f"requested: {generating}; client cert took {waited:.2f} s and "
                        f"committed {'first' if first else 'second'}")
        if generating and first:
            return
    # The key can be done before the quick request gets going, rarely more than once in a row;
    # a quick write that always commits second waited for the slow one.
    pytest.fail("an admin-API write started while `:addServerCa` generated its RSA-4096 key "
                "never committed before it:\n" + "\n".join(outcomes))
