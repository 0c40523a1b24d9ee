"""`dbtls instances check NAME`: the instance tried from this host as a client would meet it —
the active certificate's dates, its DNS endpoints, the front (the engine's own TLS request, then
a handshake verified like sslmode=verify-full with server-ca.pem, and whether the certificate
served is the active one), the backend (reachable; TLS verified with --backend-tls-ca; a MariaDB
greeting's version). Each row ok / warning / failed; exit 1 when one failed. Real dbtlsd,
PostgreSQL 15 and MariaDB servers.
"""
import json
import os
import socket
import threading

from cli_helpers import openssl_ca_under_root, pg_instance, use_template


def rows(dbtls, name, *extra, rc=0):
    cp = dbtls.run("instances", "check", name, "--format", "json", *extra, check=False)
    assert cp.returncode == rc, cp.stdout + cp.stderr
    return {r["check"]: r for r in json.loads(cp.stdout)}, cp


def test_all_well_then_each_failure_named(pg_server, dbtls, dbtlsd, state_dir, free_port):
    use_template(dbtls)
    port = free_port()
    pg_instance(dbtls, "pg1", f"127.0.0.1:{port}", pg_server.socket_path, "localhost",
                "--ssl-mode", "ENCRYPTED_ONLY")
    # dbtlsd not running: the front fails, named; the rest is checked all the same
    got, cp = rows(dbtls, "pg1", "--timeout", "2", rc=1)
    assert got["front"]["result"] == "failed", got
    assert f"127.0.0.1:{port}" in got["front"]["detail"] and "is dbtlsd running" in \
        got["front"]["detail"], got["front"]
    assert got["backend"]["result"] == "ok", got
    assert got["server-certificate"]["result"] == "ok", got
    assert got["dns localhost"]["result"] == "ok" and "127.0.0.1" in \
        got["dns localhost"]["detail"], got
    assert 'instance "pg1": 1 check failed' in cp.stderr, cp.stderr

    d = dbtlsd.start(state_dir)
    got, _ = rows(dbtls, "pg1")
    assert all(r["result"] == "ok" for r in got.values()), got
    assert "TLSv1.3" in got["front"]["detail"] and "the active certificate" in \
        got["front"]["detail"], got["front"]
    # the shared CA's intermediate and root, which last 10 and 40 years
    assert "2 CA certificates verified; the first to end: /O=dbtls/CN=dbtls-ca-" in \
        got["trust-chain"]["detail"], got["trust-chain"]
    # the table for people
    cp = dbtls.run("instances", "check", "pg1")
    assert cp.stdout.splitlines()[0].split() == ["CHECK", "RESULT", "DETAIL"], cp.stdout
    assert "front" in cp.stdout and "backend" in cp.stdout

    # a listener that is not dbtlsd: answers SSLRequest with 'N'
    other = socket.socket()
    other.bind(("127.0.0.1", 0))
    other.listen(4)
    oport = other.getsockname()[1]
    dbtls("instances", "patch", "pg1", "--backend", f"127.0.0.1:{free_port()}")
    pg_instance(dbtls, "pg2", f"127.0.0.1:{oport}", pg_server.socket_path, "nx.dbtls.invalid")
    def answer_n():
        c, _ = other.accept()
        c.recv(8)
        c.sendall(b"N")
        c.close()

    t = threading.Thread(target=answer_n, daemon=True)
    t.start()
    got, _ = rows(dbtls, "pg2", "--timeout", "3", rc=1)
    t.join(5)
    other.close()
    assert got["front"]["result"] == "failed" and "not 'S'" in got["front"]["detail"], got
    assert got["dns nx.dbtls.invalid"]["result"] == "warning", got
    assert "does not resolve" in got["dns nx.dbtls.invalid"]["detail"], got

    # backend down (pg1 now points at a port nothing listens on)
    got, _ = rows(dbtls, "pg1", rc=1)
    assert got["backend"]["result"] == "failed", got
    assert "Connection refused" in got["backend"]["detail"], got["backend"]
    assert "could not connect to the database server" in got["backend"]["detail"]
    d.stop()


def test_front_serving_another_certificate_is_a_warning(pg_server, dbtls, dbtlsd, state_dir,
                                                        free_port, tmp_dir):
    """The store moved on (a rotation) but dbtlsd cannot load it (a CA file it cannot read makes
    every reload fail, so it keeps serving its generation): the check names the served
    certificate as not the active one, and the unreadable file."""
    use_template(dbtls)
    pg_instance(dbtls, "pg1", f"127.0.0.1:{free_port()}", pg_server.socket_path, "localhost")
    d = dbtlsd.start(state_dir)
    served = rows(dbtls, "pg1")[0]["front"]
    assert served["result"] == "ok", served
    missing = os.path.join(tmp_dir, "no-such-ca.pem")
    start = d.log_size()
    dbtls("instances", "patch", "pg1", "--backend-tls-ca", missing)
    dbtls("ssl", "server-certs", "create", "--instance", "pg1")
    dbtls("ssl", "server-certs", "rotate", "--instance", "pg1")
    d.wait_log("reload failed", start=start)
    got, _ = rows(dbtls, "pg1", rc=1)
    assert got["front"]["result"] == "warning", got["front"]
    assert "not the active one" in got["front"]["detail"], got["front"]
    assert "has not loaded the latest change" in got["front"]["detail"]
    assert got["backend"]["result"] == "failed", got["backend"]
    assert f'cannot read --backend-tls-ca "{missing}"' in got["backend"]["detail"], got
    # the file fixed (cleared): dbtlsd loads the rotation, the check is clean again
    start = d.log_size()
    dbtls("instances", "patch", "pg1", "--backend-tls-ca", "")
    d.wait_log(" active (", start=start)
    got, _ = rows(dbtls, "pg1")
    assert all(r["result"] == "ok" for r in got.values()), got


def test_backend_tls_and_mariadb(mariadb_server, dbtls, dbtlsd, state_dir, free_port, tmp_dir):
    use_template(dbtls)
    port = free_port()
    dbtls("instances", "create", "my1", "--engine", "mariadb", "--engine-version", "10.11",
          "--listen", f"127.0.0.1:{port}", "--backend", f"127.0.0.1:{mariadb_server.port}",
          "--endpoint", "localhost", "--ssl-mode", "ENCRYPTED_ONLY")
    dbtlsd.start(state_dir)
    got, _ = rows(dbtls, "my1")
    assert all(r["result"] == "ok" for r in got.values()), got
    assert "MariaDB" in got["backend"]["detail"], got["backend"]
    assert "TLSv1.3" in got["front"]["detail"], got["front"]
    # the MariaDB server runs --skip-ssl: asking for TLS to it fails, named
    ca = os.path.join(tmp_dir, "ca.pem")
    dbtls("ssl", "server-ca-certs", "download", "--instance", "my1", "--out", ca)
    dbtls("instances", "patch", "my1", "--backend-tls-ca", ca)
    got, _ = rows(dbtls, "my1", rc=1)
    assert got["backend"]["result"] == "failed", got
    assert "does not offer TLS" in got["backend"]["detail"], got["backend"]


def test_usage_errors(dbtls, state_dir):
    use_template(dbtls)
    cp = dbtls.run("instances", "check", "nope", check=False)
    assert cp.returncode == 1 and "nope" in cp.stderr, cp.stderr
    for bad in ("0", "x", "301"):
        cp = dbtls.run("instances", "check", "nope", "--timeout", bad, check=False)
        assert cp.returncode == 2 and "--timeout" in cp.stderr, cp.stderr


def test_trust_chain_warns_when_a_ca_certificate_ends_soon(pg_server, dbtls, dbtlsd, state_dir,
                                                           free_port, tmp_dir):
    """An imported CA under a root that ends in 60 days: the server certificate is fine, the
    handshake verifies, but clients stop trusting it with the root: a warning (exit 0)."""
    use_template(dbtls)
    root, ca, key = openssl_ca_under_root(tmp_dir, "", 60, 1825, "/O=Example Corp/CN=Short Root",
                                          "/O=Example Corp/CN=Corp DB CA")
    dbtls("cas", "import", "corp", "--cert", ca, "--key", key, "--chain", root)
    port = free_port()
    pg_instance(dbtls, "pg1", f"127.0.0.1:{port}", pg_server.socket_path, "localhost",
                "--ca", "corp")
    dbtlsd.start(state_dir)
    got, _ = rows(dbtls, "pg1", rc=0)
    assert got["front"]["result"] == "ok", got
    chain = got["trust-chain"]
    assert chain["result"] == "warning", chain
    assert "CA certificate /O=Example Corp/CN=Short Root ends at" in chain["detail"], chain
    assert "(in 59 days)" in chain["detail"] or "(in 60 days)" in chain["detail"], chain
    assert "dbtls cas renew" in chain["detail"], chain
