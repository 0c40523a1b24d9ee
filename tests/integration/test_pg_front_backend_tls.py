"""dbtlsd with TLS on the backend leg too (verify-full against a CA file): a real PostgreSQL 15
with ssl=on using a certificate dbtls issued (`dbtls instances export`), the front connecting to
it as `localhost`; the backend sees an SSL connection; a wrong CA makes the front answer FATAL
08006 naming the failure; a unix-socket backend works too.

SCRAM over a TLS backend leg: the backend offers SCRAM-SHA-256-PLUS (it is on TLS), the front
hides it (channel binding cannot cross the front), and libpq on TLS then sends the gs2 flag "y"
("I support channel binding, you did not offer it"), which the backend rightly treats as a
downgrade; the front recognises that answer and says so itself, with what to do. So with a TLS
backend, SCRAM users connect with channel_binding=disable (flag "n"), or the backend
authenticates the front's connections another way (trust/cert from the front).
"""
import json
import os
import shutil
import subprocess
import sys
import time

import psycopg
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from api_client import samples, scrape  # noqa: E402
from cli_helpers import use_template  # noqa: E402
import servers  # noqa: E402


def _chown(path, user="postgres"):
    subprocess.run(["chown", "-R", user, path], check=True)


def _backend_trusts_client_ca(dbtls, srv, tmp_dir, hba):
    """The backend's ssl_ca_file becomes instance "native"'s client CA (export's root.crt), so
    it verifies client certificates dbtls issued under "native"; then `hba` and a reload."""
    exp = os.path.join(tmp_dir, "export-client-ca")
    os.mkdir(exp)
    dbtls("instances", "export", "native", "--dir", exp)
    root = os.path.join(srv.base, "tls", "root.crt")
    shutil.copy(os.path.join(exp, "root.crt"), root)
    _chown(os.path.dirname(root))
    srv.psql(f"ALTER SYSTEM SET ssl_ca_file = '{root}'")
    srv.write_hba(["local all all trust", *hba, "hostnossl all all all reject"])
    srv.reload()


@pytest.fixture
def tls_backend(dbtls, state_dir, free_port, tmp_dir):
    """A PostgreSQL 15 with ssl=on serving the certificate of instance "native" (SAN
    localhost), and the CA file that verifies it."""
    use_template(dbtls)
    dbtls("instances", "create", "native", "--engine", "postgres", "--engine-version", "15",
          "--listen", f"127.0.0.1:{free_port()}", "--backend", "127.0.0.1:1",
          "--endpoint", "localhost")
    exp = os.path.join(tmp_dir, "export")
    os.mkdir(exp)
    dbtls("instances", "export", "native", "--dir", exp)
    ca = os.path.join(tmp_dir, "backend-ca.pem")
    dbtls("ssl", "server-ca-certs", "download", "--instance", "native", "--out", ca)
    srv = servers.PgServer(keep=False)
    keydir = os.path.join(srv.base, "tls")
    os.mkdir(keydir)
    for f in ("server.crt", "server.key"):
        shutil.copy(os.path.join(exp, f), keydir)
    os.chmod(os.path.join(keydir, "server.key"), 0o600)
    srv.extra_conf.update({"ssl": "on",
                           "ssl_cert_file": f"'{keydir}/server.crt'",
                           "ssl_key_file": f"'{keydir}/server.key'"})
    try:
        srv.start()
        srv.write_hba(["local all all trust",
                       "hostssl all trustuser 127.0.0.1/32 trust",
                       "hostssl all all 127.0.0.1/32 scram-sha-256",
                       "hostnossl all all all reject"])
        srv.reload()
        yield srv, ca
    finally:
        srv.stop()


def test_backend_leg_tls_verify_full(tls_backend, dbtls, dbtlsd, state_dir, free_port, tmp_dir):
    srv, ca = tls_backend
    port = free_port()
    dbtls("instances", "create", "pg1", "--engine", "postgres", "--engine-version", "15",
          "--listen", f"127.0.0.1:{port}", "--backend", f"localhost:{srv.port}",
          "--backend-tls-ca", ca, "--endpoint", "localhost", "--ssl-mode", "ENCRYPTED_ONLY")
    d = dbtlsd.start(state_dir)
    ci = (f"host=127.0.0.1 port={port} user=alice password=alice-secret-1 dbname=app "
          "sslmode=require channel_binding=disable")
    with psycopg.connect(ci) as c:
        # the backend saw TLS from the front (its own pg_stat_ssl)
        assert c.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
                         ).fetchone()[0] is True
        assert c.execute("SELECT current_user").fetchone()[0] == "alice"
    with psycopg.connect(f"host=127.0.0.1 port={port} user=trustuser dbname=app "
                         "sslmode=require") as c:
        assert c.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
                         ).fetchone()[0] is True
    # `dbtls instances check` verifies the backend's TLS as dbtlsd does
    got = {r["check"]: r for r in dbtls.json("instances", "check", "pg1")}
    assert got["backend"]["result"] == "ok", got
    assert f"verified against {ca}" in got["backend"]["detail"], got["backend"]
    # channel binding cannot cross the front: libpq's default (prefer) answers the hidden
    # SCRAM-SHA-256-PLUS with the gs2 flag "y", which the backend would refuse as a downgrade
    # ("SCRAM channel binding negotiation error"); the front says why and what to do instead
    start = d.log_size()
    with pytest.raises(psycopg.OperationalError) as ei:
        psycopg.connect(ci.replace("channel_binding=disable", ""))
    msg = str(ei.value)
    assert ("SCRAM channel binding cannot pass through dbtlsd to a database server that uses "
            "TLS") in msg, msg
    assert "channel_binding=disable" in msg, msg
    assert "negotiation error" not in msg
    assert "SCRAM channel binding refused" in d.log()[start:]
    # psql says the same
    cp = subprocess.run(["psql", "-X", "-At", "-c", "SELECT 1",
                         ci.replace("channel_binding=disable", "")],
                        capture_output=True, text=True, timeout=30,
                        env=dict(os.environ, PGPASSWORD="alice-secret-1"))
    assert cp.returncode != 0 and "channel_binding=disable" in cp.stderr, cp.stderr
    # channel_binding=require is refused by libpq itself: the front offers no PLUS
    with pytest.raises(psycopg.OperationalError) as ei:
        psycopg.connect(ci.replace("channel_binding=disable", "channel_binding=require"))
    assert "channel binding" in str(ei.value)
    # a CA that did not sign the backend's certificate: FATAL 08006 from the front
    other = os.path.join(tmp_dir, "other-ca.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout",
                    os.path.join(tmp_dir, "other.key"), "-out", other, "-days", "2", "-subj",
                    "/CN=other CA"], check=True, capture_output=True, timeout=30)
    start = d.log_size()
    dbtls("instances", "patch", "pg1", "--backend-tls-ca", other)
    d.wait_reload(start)
    with pytest.raises(psycopg.OperationalError) as ei:
        psycopg.connect(ci)
    msg = str(ei.value)
    assert "could not connect to the database server" in msg
    assert "certificate verify failed" in msg or "TLS" in msg
    assert "TLS handshake with backend" in d.log()
    cp = dbtls.run("instances", "check", "pg1", "--format", "json", check=False)
    assert cp.returncode == 1, cp.stdout + cp.stderr
    got = {r["check"]: r for r in json.loads(cp.stdout)}
    assert got["backend"]["result"] == "failed", got
    assert "certificate verify failed" in got["backend"]["detail"], got["backend"]


def test_unix_socket_backend(pg_server, dbtls, dbtlsd, state_dir, free_port):
    use_template(dbtls)
    port = free_port()
    dbtls("instances", "create", "pg1", "--engine", "postgres", "--engine-version", "15",
          "--listen", f"127.0.0.1:{port}", "--backend", pg_server.socket_path,
          "--endpoint", "localhost", "--ssl-mode", "ENCRYPTED_ONLY")
    dbtlsd.start(state_dir)
    with psycopg.connect(f"host=127.0.0.1 port={port} user=trustuser dbname=app "
                         "sslmode=require") as c:
        # the backend sees a unix-socket client: no client address
        assert c.execute("SELECT client_addr FROM pg_stat_activity "
                         "WHERE pid = pg_backend_pid()").fetchone()[0] is None


def test_backend_asks_for_a_client_certificate(tls_backend, dbtls, dbtlsd, state_dir, free_port,
                                               tmp_dir):
    """--backend-tls-cert/--backend-tls-key: the front shows a client certificate to a backend
    whose pg_hba.conf wants one (`cert`, `clientcert=verify-ca`); here one dbtls issued under
    the "native" instance's client CA, which the backend trusts (ssl_ca_file = export's
    root.crt)."""
    srv, ca = tls_backend
    ident = os.path.join(tmp_dir, "front-id")
    dbtls("ssl", "client-certs", "create", "trustuser", "--instance", "native",
          "--out-dir", ident)
    _backend_trusts_client_ca(dbtls, srv, tmp_dir,
                              ["hostssl all trustuser 127.0.0.1/32 cert",
                               "hostssl all all 127.0.0.1/32 scram-sha-256 clientcert=verify-ca"])
    cert, key = os.path.join(ident, "client-cert.pem"), os.path.join(ident, "client-key.pem")
    port = free_port()
    base = ["--listen", f"127.0.0.1:{port}", "--backend", f"localhost:{srv.port}",
            "--endpoint", "localhost", "--ssl-mode", "ENCRYPTED_ONLY"]

    # refused in one line, nothing stored
    cp = dbtls.fail("instances", "create", "pg1", "--engine", "postgres", *base,
                    "--backend-tls-cert", cert, "--backend-tls-key", key)
    assert "--backend-tls-cert needs --backend-tls-ca" in cp.stderr, cp.stderr
    cp = dbtls.fail("instances", "create", "pg1", "--engine", "postgres", *base,
                    "--backend-tls-ca", ca, "--backend-tls-cert", cert)
    assert "needs both --backend-tls-cert and --backend-tls-key" in cp.stderr, cp.stderr
    cp = dbtls.fail("instances", "create", "pg1", "--engine", "postgres", *base,
                    "--backend-tls-ca", ca, "--backend-tls-cert", "client-cert.pem",
                    "--backend-tls-key", key)
    assert "must be an absolute path" in cp.stderr, cp.stderr

    j = dbtls.json("instances", "create", "pg1", "--engine", "postgres", "--engine-version",
                   "15", *base, "--backend-tls-ca", ca, "--backend-tls-cert", cert,
                   "--backend-tls-key", key)
    assert j["backendTlsCert"] == cert and j["backendTlsKey"] == key, j
    d = dbtlsd.start(state_dir)
    with psycopg.connect(f"host=127.0.0.1 port={port} user=trustuser dbname=app "
                         "sslmode=require") as c:
        # the backend authenticated the front's certificate (cert method, CN = trustuser)
        assert c.execute("SELECT ssl, client_dn FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
                         ).fetchone() == (True, "/O=dbtls/CN=trustuser")
    with psycopg.connect(f"host=127.0.0.1 port={port} user=alice password=alice-secret-1 "
                         "dbname=app sslmode=require channel_binding=disable") as c:
        assert c.execute("SELECT current_user").fetchone()[0] == "alice"
    # its expiry is a gauge like every other certificate's (alert before the backend refuses)
    fams, _ = scrape(d)
    got = samples(fams, "dbtls_certificate_expiry_seconds", instance="pg1",
                  kind="backend-client-cert", name=cert)
    assert len(got) == 1 and 9 * 365 * 86400 < got[0].value < 11 * 365 * 86400, got

    # without it the backend refuses, in its own words, relayed to the client
    start = d.log_size()
    dbtls("instances", "patch", "pg1", "--backend-tls-cert", "", "--backend-tls-key", "")
    d.wait_reload(start)
    with pytest.raises(psycopg.OperationalError) as ei:
        psycopg.connect(f"host=127.0.0.1 port={port} user=trustuser dbname=app sslmode=require")
    assert "connection requires a valid client certificate" in str(ei.value), str(ei.value)

    # a key file others may read is refused when the configuration loads; the old one stays
    os.chmod(key, 0o644)
    start = d.log_size()
    dbtls("instances", "patch", "pg1", "--backend-tls-cert", cert, "--backend-tls-key", key)
    d.wait_log("has group or world access", start=start)
    assert f'backend TLS key file "{key}" has group or world access' in d.log()[start:]
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(f"host=127.0.0.1 port={port} user=trustuser dbname=app sslmode=require")
    # fixing the mode is a change of the file: taken up within a second or two, no SIGHUP
    start = d.log_size()
    os.chmod(key, 0o600)
    d.wait_log(f'instance "pg1": file "{key}" changed: reloading', start=start)
    d.wait_log(" active (", start=start)
    with psycopg.connect(f"host=127.0.0.1 port={port} user=trustuser dbname=app "
                         "sslmode=require") as c:
        assert c.execute("SELECT current_user").fetchone()[0] == "trustuser"


def test_channel_binding_crosses_when_the_server_shows_the_fronts_certificate(
        tls_backend, dbtls, dbtlsd, state_dir, tmp_dir):
    """SCRAM-SHA-256-PLUS end to end: the backend serves the certificate of the very instance
    the front serves (`dbtls instances export`), so tls-server-end-point (a hash of that
    certificate) is the same on both legs and the front leaves PLUS on offer; channel_binding=
    require then works through the front. After a rotation the front shows the new certificate
    and the backend still the old one: PLUS is hidden again and the front says what to do; the
    backend given the new export, binding works again."""
    srv, ca = tls_backend
    port = int(dbtls.json("instances", "describe", "native")["listen"].rsplit(":", 1)[1])
    dbtls("instances", "patch", "native", "--backend", f"localhost:{srv.port}",
          "--backend-tls-ca", ca, "--ssl-mode", "ENCRYPTED_ONLY")
    d = dbtlsd.start(state_dir)
    ci = (f"host=127.0.0.1 port={port} user=alice password=alice-secret-1 dbname=app "
          "sslmode=require")

    def bound_login():
        with psycopg.connect(ci + " channel_binding=require") as c:
            return c.execute("SELECT current_user, ssl FROM pg_stat_ssl "
                             "WHERE pid = pg_backend_pid()").fetchone()

    assert bound_login() == ("alice", True)
    with psycopg.connect(ci) as c:  # libpq's default, prefer, binds too
        assert c.execute("SELECT current_user").fetchone()[0] == "alice"
    # a client that cannot bind (plaintext leg) is unaffected: the front serves TLS only here,
    # so check a client that declines binding instead
    with psycopg.connect(ci + " channel_binding=disable") as c:
        assert c.execute("SELECT current_user").fetchone()[0] == "alice"

    # rotate: the front serves the new certificate at once, the backend still the old one
    start = d.log_size()
    dbtls("ssl", "server-certs", "create", "--instance", "native")
    dbtls("ssl", "server-certs", "rotate", "--instance", "native")
    d.wait_reload(start)
    with pytest.raises(psycopg.OperationalError) as ei:
        bound_login()
    assert "channel binding" in str(ei.value), str(ei.value)
    with pytest.raises(psycopg.OperationalError) as ei:
        psycopg.connect(ci)
    msg = str(ei.value)
    assert "SCRAM channel binding cannot pass through dbtlsd" in msg, msg
    assert "dbtls instances export" in msg and "channel_binding=disable" in msg, msg
    assert "another certificate than the front's" in d.log()[start:]

    # the backend gets the instance's new certificate; binding crosses again
    exp = os.path.join(tmp_dir, "export-rotated")
    os.mkdir(exp)
    dbtls("instances", "export", "native", "--dir", exp)
    keydir = os.path.join(srv.base, "tls")
    for f in ("server.crt", "server.key"):
        shutil.copy(os.path.join(exp, f), keydir)
    _chown(keydir)
    srv.reload()
    deadline = time.monotonic() + 15
    while True:
        try:
            assert bound_login() == ("alice", True)
            break
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_backend_files_renewed_in_place_are_taken_up(tls_backend, dbtls, dbtlsd, state_dir,
                                                     free_port, tmp_dir):
    """The front's client certificate for the backend is renewed by replacing its files (as a
    cron job or a Kubernetes secret does): dbtlsd notices within a second or two and shows the
    new one to new backend connections, with no SIGHUP and no store change; a half-done
    replacement (new certificate, old key) fails that reload and keeps the old configuration
    until the key follows; a vanished file is logged and the old configuration kept."""
    srv, ca = tls_backend
    _backend_trusts_client_ca(dbtls, srv, tmp_dir,
                              ["hostssl all all 127.0.0.1/32 scram-sha-256 clientcert=verify-ca"])
    ids = {}
    for name in ("front-a", "front-b"):
        ids[name] = os.path.join(tmp_dir, name)
        dbtls("ssl", "client-certs", "create", name, "--instance", "native",
              "--out-dir", ids[name])
    live = os.path.join(tmp_dir, "live")
    os.mkdir(live)
    cert, key = os.path.join(live, "tls.crt"), os.path.join(live, "tls.key")

    def install(name, which=("client-cert.pem", "client-key.pem")):
        for src, dst in (("client-cert.pem", cert), ("client-key.pem", key)):
            if src in which:
                tmp = dst + ".new"
                shutil.copy(os.path.join(ids[name], src), tmp)
                os.chmod(tmp, 0o600)
                os.rename(tmp, dst)  # atomic, as a renewal tool writes it

    install("front-a")
    port = free_port()
    dbtls("instances", "create", "pg1", "--engine", "postgres", "--engine-version", "15",
          "--listen", f"127.0.0.1:{port}", "--backend", f"localhost:{srv.port}",
          "--endpoint", "localhost", "--ssl-mode", "ENCRYPTED_ONLY", "--backend-tls-ca", ca,
          "--backend-tls-cert", cert, "--backend-tls-key", key)
    d = dbtlsd.start(state_dir)
    ci = (f"host=127.0.0.1 port={port} user=alice password=alice-secret-1 dbname=app "
          "sslmode=require channel_binding=disable")

    def front_dn():
        with psycopg.connect(ci) as c:
            return c.execute("SELECT client_dn FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
                             ).fetchone()[0]

    assert front_dn() == "/O=dbtls/CN=front-a"
    # half a renewal: the certificate is new, the key still the old one
    start = d.log_size()
    install("front-b", which=("client-cert.pem",))
    d.wait_log(f'instance "pg1": file "{cert}" changed: reloading', start=start)
    d.wait_log("reload failed, keeping configuration generation", start=start)
    assert front_dn() == "/O=dbtls/CN=front-a"  # the old pair still serves
    # the key follows: the next check loads the new pair
    start = d.log_size()
    install("front-b", which=("client-key.pem",))
    d.wait_log(f'file "{key}" changed: reloading', start=start)
    d.wait_log(" active (", start=start)
    assert front_dn() == "/O=dbtls/CN=front-b"
    # a vanished file: said once, the configuration in use stays
    start = d.log_size()
    os.rename(cert, cert + ".away")
    d.wait_log(f'file "{cert}" is gone: reloading', start=start)
    d.wait_log("reload failed", start=start)
    assert front_dn() == "/O=dbtls/CN=front-b"
    time.sleep(2.5)
    assert d.log()[start:].count("is gone: reloading") == 1
