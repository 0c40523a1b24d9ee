"""`dbtls instances export` for native TLS: the database server itself terminates TLS with the
exported files and configuration lines, no dbtlsd involved.

A real PostgreSQL 15 starts with the exported postgresql.conf lines (included into its
configuration) and pg_hba.conf lines (in place of its host records); psql and psycopg connect
with sslmode=verify-full against the instance's endpoint name and the server-ca.pem that
`dbtls ssl server-ca-certs download` gives, with a client certificate from `dbtls ssl
client-certs create` when the ssl mode asks for one; PostgreSQL itself refuses plaintext,
missing and revoked certificates. A real MariaDB 10.11 starts with the exported my.cnf lines and
PyMySQL connects with the CA (and a client certificate for a REQUIRE X509 account). Refusals of
the command itself: unknown instance, existing files without --force (exit 1, one line,
nothing written).
"""
import os
import shutil
import signal
import stat
import subprocess
import tempfile
import time

import psycopg
import pymysql
import pytest

import servers
from cli_helpers import create_instance, download_ca, openssl, use_template

KEEP = os.environ.get("DBTLS_KEEP_TMP") == "1"
EXPORTED = ["server.crt", "server.key", "root.crt", "root.crl"]


# --- helpers --------------------------------------------------------------------------------
@pytest.fixture
def d(dbtls):
    return use_template(dbtls)


def export_json(d, name, out_dir, *extra):
    j = d.json("instances", "export", name, "--dir", out_dir, *extra)
    assert j["instance"] == name
    assert j["dir"] == os.path.abspath(out_dir)
    return j


def check_written(j, out_dir, snippet_names):
    """Every file is listed with its mode, the modes are right, the snippets are the files."""
    names = [f["name"] for f in j["files"]]
    assert names == EXPORTED + [f"{s}.dbtls" for s in snippet_names]
    assert sorted(os.listdir(out_dir)) == sorted(names)
    for f in j["files"]:
        assert f["path"] == os.path.join(os.path.abspath(out_dir), f["name"])
        want = 0o600 if f["name"] == "server.key" else 0o644
        assert f["mode"] == f"{want:04o}"
        assert stat.S_IMODE(os.stat(f["path"]).st_mode) == want, f["name"]
    assert sorted(j["snippets"]) == sorted(snippet_names)
    for s in snippet_names:
        assert open(os.path.join(out_dir, f"{s}.dbtls")).read() == j["snippets"][s]


def records(text):
    """The non-comment lines of a configuration snippet."""
    return [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]


def new_pg():
    """A PgServer whose base directory exists (the export goes there, so the postgres user
    owns it when the server starts) but which is not started yet."""
    return servers.PgServer(keep=KEEP)


def start_pg_with(srv, j):
    """Starts srv with the exported postgresql.conf lines included after its own settings
    (the same as appending them: later lines win) and the exported pg_hba.conf lines as its
    only host records."""
    # PostgreSQL refuses a key file that is not 0600 (or 0640 root-owned) and owned by the
    # server's user: hand the exported directory to postgres, modes unchanged.
    uid, gid = servers._ids("postgres")
    os.chown(j["dir"], uid, gid)
    for f in j["files"]:
        os.chown(f["path"], uid, gid)
    conf = os.path.join(j["dir"], "postgresql.conf.dbtls")
    srv.extra_conf["include"] = "'" + conf.replace("'", "''") + "'"
    srv.start()
    srv.write_hba(["local all all trust", j["snippets"]["pg_hba.conf"]])
    srv.reload()
    return srv


def conninfo(srv, endpoint, ca, user="alice", password=None, sslmode="verify-full", **kw):
    parts = {"hostaddr": "127.0.0.1", "host": endpoint, "port": srv.port, "user": user,
             "dbname": srv.dbname, "sslmode": sslmode, "sslrootcert": ca}
    pw = password if password is not None else srv.users.get(user)
    if pw:
        parts["password"] = pw
    parts.update(kw)
    return " ".join(f"{k}='{v}'" for k, v in parts.items())


SSL_ROW = "SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()"


def client_cert(d, instance, tmp_dir, name):
    out = os.path.join(tmp_dir, f"cc-{instance}-{name}")
    d("ssl", "client-certs", "create", name, "--instance", instance, "--out-dir", out)
    return {"sslcert": os.path.join(out, "client-cert.pem"),
            "sslkey": os.path.join(out, "client-key.pem")}


# --- PostgreSQL -----------------------------------------------------------------------------
def test_postgres_encrypted_only_verify_full(d, tmp_dir, psql):
    ep = "pgx.db.example.test"
    create_instance(d, "pgx", endpoints=[ep],
                    extra=("--engine-version", "15", "--ssl-mode", "ENCRYPTED_ONLY",
                           "--tls-min", "TLSv1.3", "--ciphers", "HIGH:!aNULL:!3DES:!SHA1"))
    srv = new_pg()
    try:
        out = os.path.join(srv.base, "tls")
        j = export_json(d, "pgx", out)
        check_written(j, out, ["postgresql.conf", "pg_hba.conf"])
        assert stat.S_IMODE(os.stat(out).st_mode) == 0o700
        assert j["engine"] == "postgres" and j["sslMode"] == "ENCRYPTED_ONLY"
        # The CRL's expiry is reported (past it OpenSSL fails every client certificate).
        nu = openssl("crl", "-noout", "-nextupdate", "-in", os.path.join(out, "root.crl"))
        nu = nu.stdout.decode().strip().split("=", 1)[1]
        nu = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.strptime(nu, "%b %d %H:%M:%S %Y GMT"))
        assert j["crlNextUpdate"] == nu
        assert f"# root.crl is valid until {nu}" in j["snippets"]["postgresql.conf"]
        assert records(j["snippets"]["postgresql.conf"]) == [
            "ssl = on",
            f"ssl_cert_file = '{out}/server.crt'",
            f"ssl_key_file = '{out}/server.key'",
            f"ssl_ca_file = '{out}/root.crt'",
            f"ssl_crl_file = '{out}/root.crl'",
            "ssl_min_protocol_version = 'TLSv1.3'",
            "ssl_max_protocol_version = 'TLSv1.3'",
            "ssl_ciphers = 'HIGH:!aNULL:!3DES:!SHA1'",
        ]
        assert records(j["snippets"]["pg_hba.conf"]) == [
            "hostssl\tall\tall\tall\tscram-sha-256",
            "hostssl\treplication\tall\tall\tscram-sha-256",
            "hostnossl\tall\tall\tall\treject",
            "hostnossl\treplication\tall\tall\treject",
        ]
        start_pg_with(srv, j)
        assert srv.psql("SHOW ssl").strip() == "on"
        assert srv.psql("SHOW ssl_min_protocol_version").strip() == "TLSv1.3"
        assert srv.psql("SHOW ssl_ciphers").strip() == "HIGH:!aNULL:!3DES:!SHA1"
        ca = download_ca(d, "pgx", tmp_dir)

        rc, so, se = psql(conninfo(srv, ep, ca), SSL_ROW)
        assert rc == 0, se + srv.log()
        assert so.strip() == "t|TLSv1.3"
        with psycopg.connect(conninfo(srv, ep, ca), connect_timeout=10) as conn:
            assert conn.execute(SSL_ROW).fetchone() == (True, "TLSv1.3")
            assert conn.pgconn.ssl_in_use

        # PostgreSQL itself refuses plaintext (hostnossl ... reject).
        rc, so, se = psql(conninfo(srv, ep, ca, sslmode="disable"), "SELECT 1")
        assert rc != 0
        assert ('pg_hba.conf rejects connection for host "127.0.0.1", user "alice", '
                'database "app", no encryption') in se
        # Physical replication follows the same mode (`all` never matches it): over TLS the
        # record admits it and the role decides; plaintext is rejected by its own record.
        rc, so, se = psql(conninfo(srv, ep, ca, replication="true"), "IDENTIFY_SYSTEM")
        assert rc != 0 and "must be superuser or replication role" in se, se
        rc, so, se = psql(conninfo(srv, ep, ca, sslmode="disable", replication="true"),
                          "IDENTIFY_SYSTEM")
        assert rc != 0
        assert ('pg_hba.conf rejects replication connection for host "127.0.0.1", user "alice", '
                'no encryption') in se, se
        # verify-full really checks the name, and against the instance's CA.
        rc, so, se = psql(conninfo(srv, "other.example.test", ca), "SELECT 1")
        assert rc != 0
        assert ('server certificate for "pgx.db.example.test" does not match host name '
                '"other.example.test"') in se
        foreign = os.path.join(tmp_dir, "foreign.pem")
        shutil.copy(os.path.join(out, "root.crt"), foreign)  # the client CA is not a server CA
        rc, so, se = psql(conninfo(srv, ep, foreign), "SELECT 1")
        assert rc != 0 and "certificate verify failed" in se
        # The TLS policy is the server's: a TLS 1.2-only client is turned away.
        rc, so, se = psql(conninfo(srv, ep, ca, ssl_max_protocol_version="TLSv1.2"), "SELECT 1")
        assert rc != 0 and "protocol version" in se, se
    finally:
        srv.stop()


def test_postgres_client_certificate_required_crl_and_force(d, tmp_dir, psql):
    ep = "pgc.db.example.test"
    create_instance(d, "pgc", endpoints=[ep],
                    extra=("--engine-version", "15",
                           "--ssl-mode", "TRUSTED_CLIENT_CERTIFICATE_REQUIRED"))
    laptop = client_cert(d, "pgc", tmp_dir, "laptop")
    stolen = client_cert(d, "pgc", tmp_dir, "stolen")
    d("ssl", "client-certs", "delete", "stolen", "--instance", "pgc")
    srv = new_pg()
    try:
        out = os.path.join(srv.base, "tls")
        j = export_json(d, "pgc", out)
        check_written(j, out, ["postgresql.conf", "pg_hba.conf"])
        assert records(j["snippets"]["pg_hba.conf"]) == [
            "hostssl\tall\tall\tall\tscram-sha-256\tclientcert=verify-ca",
            "hostssl\treplication\tall\tall\tscram-sha-256\tclientcert=verify-ca",
            "hostnossl\tall\tall\tall\treject",
            "hostnossl\treplication\tall\tall\treject",
        ]
        start_pg_with(srv, j)
        ca = download_ca(d, "pgc", tmp_dir)

        q = "SELECT ssl, client_dn FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
        rc, so, se = psql(conninfo(srv, ep, ca, **laptop), q)
        assert rc == 0, se + srv.log()
        assert so.strip() == "t|/O=dbtls/CN=laptop"
        with psycopg.connect(conninfo(srv, ep, ca, **laptop), connect_timeout=10) as conn:
            assert conn.execute(q).fetchone() == (True, "/O=dbtls/CN=laptop")
        # Certificate and password: the certificate alone is not enough...
        rc, so, se = psql(conninfo(srv, ep, ca, password="wrong", **laptop), "SELECT 1")
        assert rc != 0 and 'password authentication failed for user "alice"' in se
        # ...nor the password alone.
        rc, so, se = psql(conninfo(srv, ep, ca), "SELECT 1")
        assert rc != 0 and "connection requires a valid client certificate" in se
        # root.crl: the certificate deleted before the export is revoked for PostgreSQL too.
        rc, so, se = psql(conninfo(srv, ep, ca, **stolen), "SELECT 1")
        assert rc != 0 and "certificate revoked" in se, se

        # Existing files are never replaced without --force, and nothing is written.
        before = {f: open(os.path.join(out, f), "rb").read() for f in os.listdir(out)}
        d("ssl", "client-certs", "delete", "laptop", "--instance", "pgc")
        cp = d.fail("instances", "export", "pgc", "--dir", out)
        assert cp.stderr.startswith("dbtls: ") and "already exists" in cp.stderr
        assert "--force" in cp.stderr
        assert {f: open(os.path.join(out, f), "rb").read() for f in os.listdir(out)} == before
        # --force replaces them (the new CRL revokes laptop); a reload makes PostgreSQL use it.
        j2 = export_json(d, "pgc", out, "--force")
        check_written(j2, out, ["postgresql.conf", "pg_hba.conf"])
        assert open(os.path.join(out, "root.crl"), "rb").read() != before["root.crl"]
        uid, gid = servers._ids("postgres")
        for f in j2["files"]:
            os.chown(f["path"], uid, gid)
        srv.reload()
        deadline = time.monotonic() + 10
        while True:
            rc, so, se = psql(conninfo(srv, ep, ca, **laptop), "SELECT 1")
            if rc != 0 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert rc != 0 and "certificate revoked" in se, se
    finally:
        srv.stop()


def test_postgres_own_access_rules_are_translated(d, tmp_dir, psql):
    ep = "pgr.db.example.test"
    hba = os.path.join(tmp_dir, "rules.conf")
    with open(hba, "w") as f:
        f.write("# the instance's own rules\n"
                "hostssl app certuser 127.0.0.1/32 cert\n"
                "hostssl all alice 127.0.0.1/32 backend\n"
                'host "app" bob 127.0.0.0 255.0.0.0 \\\n  reject\n')
    create_instance(d, "pgr", mode="per-instance", endpoints=[ep],
                    extra=("--engine-version", "15", "--hba-file", hba))
    cert = client_cert(d, "pgr", tmp_dir, "certuser")
    other = client_cert(d, "pgr", tmp_dir, "someone")
    srv = new_pg()
    try:
        out = os.path.join(srv.base, "tls")
        j = export_json(d, "pgr", out)
        assert records(j["snippets"]["pg_hba.conf"]) == [
            "hostssl\tapp\tcertuser\t127.0.0.1/32\tcert",
            "hostssl\tall\talice\t127.0.0.1/32\tscram-sha-256",
            'host\t"app"\tbob\t127.0.0.0\t255.0.0.0\treject',
        ]
        start_pg_with(srv, j)
        ca = download_ca(d, "pgr", tmp_dir)
        # cert: PostgreSQL checks the certificate and that its CN is the user; no password.
        rc, so, se = psql(conninfo(srv, ep, ca, user="certuser", **cert), SSL_ROW)
        assert rc == 0, se + srv.log()
        assert so.strip().startswith("t|TLSv1.")
        rc, so, se = psql(conninfo(srv, ep, ca, user="certuser"), "SELECT 1")
        assert rc != 0 and "connection requires a valid client certificate" in se, se
        rc, so, se = psql(conninfo(srv, ep, ca, user="certuser", **other), "SELECT 1")
        assert rc != 0 and 'certificate authentication failed for user "certuser"' in se, se
        # backend -> scram-sha-256: the password is checked by PostgreSQL.
        rc, so, se = psql(conninfo(srv, ep, ca), "SELECT current_user")
        assert rc == 0 and so.strip() == "alice", se
        rc, so, se = psql(conninfo(srv, ep, ca, password="nope"), "SELECT 1")
        assert rc != 0 and 'password authentication failed for user "alice"' in se
        rc, so, se = psql(conninfo(srv, ep, ca, sslmode="disable"), "SELECT 1")
        assert rc != 0
        assert ('no pg_hba.conf entry for host "127.0.0.1", user "alice", database "app", '
                'no encryption') in se
        rc, so, se = psql(conninfo(srv, ep, ca, user="bob"), "SELECT 1")
        assert rc != 0
        assert ('pg_hba.conf rejects connection for host "127.0.0.1", user "bob", '
                'database "app", SSL encryption') in se
    finally:
        srv.stop()


def test_clientname_dn_same_answer_from_postgresql_and_the_front(d, dbtlsd, state_dir,
                                                                  free_port, tmp_dir, psql):
    """pg_hba.conf's clientname=DN (PostgreSQL 14): the whole subject, in RFC 2253 form, is the
    name the ident map sees. The same rules, map and certificates give the same answers from a
    real PostgreSQL 15 (exported configuration, its own TLS) and from dbtlsd in front of it:
    proof that the front matches the very string PostgreSQL does."""
    ep = "pgdn.db.example.test"
    hba = os.path.join(tmp_dir, "rules.conf")
    with open(hba, "w") as f:
        f.write("hostssl app certuser 127.0.0.1/32 cert clientname=DN map=dns\n"
                "hostssl app trustuser 127.0.0.1/32 cert clientname=CN\n")
    ident = os.path.join(tmp_dir, "ident.conf")
    with open(ident, "w") as f:
        f.write('dns "CN=ops-team,O=dbtls" certuser\n'
                'dns "/^CN=(.*)-dn,O=dbtls$" \\1\n')
    srv = new_pg()
    port = free_port()
    d("instances", "create", "pgdn", "--engine", "postgres", "--engine-version", "15",
      "--listen", f"127.0.0.1:{port}", "--backend", srv.socket_path, "--endpoint", ep,
      "--ca-mode", "per-instance", "--hba-file", hba, "--ident-file", ident)
    certs = {n: client_cert(d, "pgdn", tmp_dir, n)
             for n in ("ops-team", "certuser-dn", "certuser", "trustuser")}
    try:
        out = os.path.join(srv.base, "tls")
        j = export_json(d, "pgdn", out)
        assert records(j["snippets"]["pg_hba.conf"]) == [
            "hostssl\tapp\tcertuser\t127.0.0.1/32\tcert\tclientname=DN\tmap=dns",
            "hostssl\tapp\ttrustuser\t127.0.0.1/32\tcert\tclientname=CN",
        ]
        start_pg_with(srv, j)  # its unix socket (local all all trust) is the front's backend
        with open(os.path.join(srv.datadir, "pg_ident.conf"), "a") as f:
            f.write(j["snippets"]["pg_ident.conf"])
        srv.reload()
        ca = download_ca(d, "pgdn", tmp_dir)
        daemon = dbtlsd.start(state_dir, ["--workers", "1"])
        cases = [("ops-team", "certuser", True),      # the exact DN in the map
                 ("certuser-dn", "certuser", True),   # the map's regular expression
                 ("certuser", "certuser", False),     # CN = user, but the DN is what counts
                 ("trustuser", "trustuser", True),    # clientname=CN: the CN, as by default
                 ("ops-team", "trustuser", False)]
        for cert, user, ok in cases:
            answers = []
            for where in (srv.port, port):
                ci = conninfo(srv, ep, ca, user=user, port=where, **certs[cert])
                rc, so, se = psql(ci, "SELECT current_user")
                answers.append((rc == 0, so.strip() if rc == 0 else se.split("FATAL:")[-1]))
            assert answers[0] == answers[1], (cert, user, answers, srv.log(), daemon.log())
            assert answers[0][0] == ok, (cert, user, answers)
            if not ok:
                assert f'certificate authentication failed for user "{user}"' in answers[0][1]
        assert ('no match in usermap "dns" for user "certuser" authenticated as '
                '"CN=certuser,O=dbtls"') in daemon.log()
    finally:
        srv.stop()


# --- MariaDB --------------------------------------------------------------------------------
class NativeMariaDb(servers._ServerProcess):
    """A MariaDB 10.11 started from an option file: its own [mysqld] basics followed by the
    exported my.cnf lines, exactly as a user would add them (mariadbd --defaults-file)."""

    def __init__(self):
        self.host = "127.0.0.1"
        self.port = servers.free_port()
        self.base = tempfile_dir("dbtls-myx-")
        self.datadir = os.path.join(self.base, "data")
        self.socket = os.path.join(self.base, "mysqld.sock")
        self.log_path = os.path.join(self.base, "mariadbd.log")
        self.cnf = os.path.join(self.base, "my.cnf")
        self.proc = None
        self._logf = None
        self.keep = KEEP

    def start(self, snippet, timeout=60):
        open(self.log_path, "w").close()
        servers._chown_tree(self.base, "mysql")
        servers.run(["mariadb-install-db", "--no-defaults", f"--datadir={self.datadir}",
                     "--auth-root-authentication-method=normal", "--skip-test-db",
                     "--skip-name-resolve"], timeout=timeout, cwd=self.base,
                    **servers._as_user("mysql"))
        with open(self.cnf, "w") as f:
            f.write("[mysqld]\n"
                    f"datadir = {self.datadir}\n"
                    f"socket = {self.socket}\n"
                    f"port = {self.port}\n"
                    "bind-address = 127.0.0.1\n"
                    "skip-name-resolve\n"
                    "skip-log-bin\n"
                    f"pid-file = {os.path.join(self.base, 'mariadbd.pid')}\n"
                    f"tmpdir = {self.base}\n"
                    "innodb-buffer-pool-size = 64M\n"
                    f"log-error = {self.log_path}\n"
                    "\n" + snippet)
        os.chmod(self.cnf, 0o644)
        self._logf = open(self.log_path, "a")
        self.proc = subprocess.Popen(["mariadbd", f"--defaults-file={self.cnf}"],
                                     stdout=self._logf, stderr=subprocess.STDOUT,
                                     cwd=self.base, start_new_session=True,
                                     **servers._as_user("mysql"))
        try:
            servers.wait_port(self.host, self.port, timeout=timeout, proc=self.proc)
            deadline = time.monotonic() + timeout
            while not os.path.exists(self.socket):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"no socket {self.socket}")
                time.sleep(0.05)
        except (RuntimeError, TimeoutError) as e:
            raise RuntimeError(f"mariadbd did not start: {e}\n{self.log()}") from None
        return self

    def stop(self):
        self._stop(signal.SIGTERM, 20)

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def sql(self, sql):
        """As root over the unix socket (a secure transport for require_secure_transport)."""
        cp = subprocess.run(["mariadb", "--no-defaults", "--user=root", f"--socket={self.socket}",
                             "--connect-timeout=10", "-N", "-B", "-e", sql],
                            capture_output=True, text=True, timeout=30)
        if cp.returncode != 0:
            raise RuntimeError(f"mariadb failed ({cp.returncode}): {cp.stderr.strip()}\n{sql}")
        return cp.stdout


def tempfile_dir(prefix):
    d = tempfile.mkdtemp(prefix=prefix)
    os.chmod(d, 0o755)
    return d


def my_connect(srv, user, password, ssl):
    return pymysql.connect(host=srv.host, port=srv.port, user=user, password=password,
                           ssl=ssl, connect_timeout=10, read_timeout=20, write_timeout=20)


def status(conn, name):
    with conn.cursor() as cur:
        cur.execute("SHOW SESSION STATUS LIKE %s", (name,))
        return cur.fetchone()[1]


def test_mariadb_native_tls(d, tmp_dir):
    ep = "myx.db.example.test"
    req = os.path.join(tmp_dir, "require.txt")
    with open(req, "w") as f:
        f.write("certuser=X509\n")
    create_instance(d, "myx", engine="mariadb", endpoints=[ep, "127.0.0.1"],
                    extra=("--engine-version", "10.11", "--ssl-mode", "ENCRYPTED_ONLY",
                           "--user-require-file", req))
    cc = os.path.join(tmp_dir, "cc")
    d("ssl", "client-certs", "create", "certuser", "--instance", "myx", "--out-dir", cc)
    old = os.path.join(tmp_dir, "old")
    d("ssl", "client-certs", "create", "old", "--instance", "myx", "--out-dir", old)
    d("ssl", "client-certs", "delete", "old", "--instance", "myx")
    srv = NativeMariaDb()
    try:
        out = os.path.join(srv.base, "tls files")  # a blank in the path: quoted in my.cnf
        j = export_json(d, "myx", out)
        check_written(j, out, ["my.cnf"])
        assert j["engine"] == "mariadb"
        snippet = j["snippets"]["my.cnf"]
        assert records(snippet) == [
            "[mysqld]",
            f'ssl_ca = "{out}/root.crt"',
            f'ssl_cert = "{out}/server.crt"',
            f'ssl_key = "{out}/server.key"',
            f'ssl_crl = "{out}/root.crl"',
            "tls_version = TLSv1.2,TLSv1.3",
            "ssl_cipher = HIGH:!aNULL:!3DES",
            "require_secure_transport = ON",
        ]
        alter = [ln.lstrip("# ").strip() for ln in snippet.splitlines()
                 if ln.startswith("#") and "ALTER USER" in ln and "'certuser'" in ln]
        assert alter == ["ALTER USER 'certuser'@'%' REQUIRE X509;"]

        srv.start(snippet)
        assert srv.sql("SELECT @@require_secure_transport").strip() == "1"
        srv.sql("CREATE USER 'alice'@'%' IDENTIFIED BY 'alice-secret-1';"
                "CREATE USER 'certuser'@'%' IDENTIFIED BY 'certuser-secret-3';" + alter[0])
        ca = download_ca(d, "myx", tmp_dir)
        verify = {"ca": ca, "check_hostname": True}

        conn = my_connect(srv, "alice", "alice-secret-1", verify)
        try:
            assert status(conn, "Ssl_version") in ("TLSv1.2", "TLSv1.3")
            assert status(conn, "Ssl_cipher")
        finally:
            conn.close()
        # require_secure_transport: MariaDB itself refuses plaintext, the same account and
        # password that just got in over TLS. (MariaDB 10.11 answers 1045 "Access denied" here,
        # where MySQL says 3159 "Connections using insecure transport are prohibited...".)
        with pytest.raises(pymysql.err.OperationalError) as ei:
            my_connect(srv, "alice", "alice-secret-1", None)
        assert ei.value.args[0] == 1045, ei.value
        # The server certificate does not verify against a foreign CA.
        with pytest.raises(pymysql.err.OperationalError) as ei:
            my_connect(srv, "alice", "alice-secret-1",
                       {"ca": os.path.join(out, "root.crt"), "check_hostname": True})
        assert "CERTIFICATE_VERIFY_FAILED" in str(ei.value)
        # REQUIRE X509 (from the exported statement): a certificate of the instance's client
        # CA gets in, none is refused, a revoked one (root.crl) is refused.
        with pytest.raises(pymysql.err.OperationalError) as ei:
            my_connect(srv, "certuser", "certuser-secret-3", verify)
        assert ei.value.args[0] == 1045
        conn = my_connect(srv, "certuser", "certuser-secret-3",
                          dict(verify, cert=os.path.join(cc, "client-cert.pem"),
                               key=os.path.join(cc, "client-key.pem")))
        try:
            assert status(conn, "Ssl_version").startswith("TLSv1.")
        finally:
            conn.close()
        with pytest.raises(pymysql.err.OperationalError) as ei:
            my_connect(srv, "certuser", "certuser-secret-3",
                       dict(verify, cert=os.path.join(old, "client-cert.pem"),
                            key=os.path.join(old, "client-key.pem")))
        # MariaDB ends the TLS handshake (ssl_crl): no 1045, the connection never got that far.
        # With TLS 1.3 the client finishes its side of the handshake before the server has
        # checked the certificate, so the revoked alert reaches PyMySQL either in the handshake
        # (2006) or at its first read after it (2013): both are TLS failures, not a login.
        assert ei.value.args[0] in (2006, 2013) and "SSL" in str(ei.value), ei.value
    except BaseException:
        print(srv.log())
        raise
    finally:
        srv.stop()


# --- refusals of the command ----------------------------------------------------------------
def test_refusals_write_nothing(d, tmp_dir):
    create_instance(d, "r1", engine="mysql", extra=("--engine-version", "8.0",
                                                    "--ciphersuites", "TLS_AES_256_GCM_SHA384"))
    missing = os.path.join(tmp_dir, "never")
    cp = d.fail("instances", "export", "nope", "--dir", missing)
    assert cp.stderr == 'dbtls: instance "nope" does not exist\n'
    assert not os.path.exists(missing)

    out = os.path.join(tmp_dir, "exp")
    os.mkdir(out)
    open(os.path.join(out, "my.cnf.dbtls"), "w").write("mine\n")
    cp = d.fail("instances", "export", "r1", "--dir", out)
    assert f'"{out}/my.cnf.dbtls" already exists' in cp.stderr
    assert os.listdir(out) == ["my.cnf.dbtls"]  # nothing else written, not even temp files
    assert open(os.path.join(out, "my.cnf.dbtls")).read() == "mine\n"

    j = export_json(d, "r1", out, "--force")
    check_written(j, out, ["my.cnf"])
    rec = records(j["snippets"]["my.cnf"])
    assert "tls_ciphersuites = TLS_AES_256_GCM_SHA384" in rec  # MySQL 8.0 has its own setting
    assert "require_secure_transport = OFF" in rec  # the default ssl mode allows plaintext

    # Table output prints the lines too (stdout), the summary goes to stderr.
    out2 = os.path.join(tmp_dir, "exp2")
    cp = d("instances", "export", "r1", "--dir", out2)
    assert open(os.path.join(out2, "my.cnf.dbtls")).read() in cp.stdout
    assert "Wrote" in cp.stderr

    # A file in the way of the directory.
    blocker = os.path.join(tmp_dir, "file")
    open(blocker, "w").close()
    cp = d.fail("instances", "export", "r1", "--dir", blocker)
    assert "is not a directory" in cp.stderr


def test_rules_dbtlsd_could_not_load_are_refused(d, tmp_dir):
    """Access rules and REQUIRE rules are translated with the parsers dbtlsd uses: rules it
    would refuse are refused here too, with their message, and nothing is written."""
    bad_hba = os.path.join(tmp_dir, "bad_hba")
    with open(bad_hba, "w") as f:
        f.write("hostssl all all all backend\nhostssl all all all md5x\n")
    bad_req = os.path.join(tmp_dir, "bad_req")
    with open(bad_req, "w") as f:
        f.write("alice=FOO\n")
    cases = [("b1", "postgres", "--hba-file", bad_hba,
              'invalid authentication method "md5x" (line 2 of configuration file '
              '"access rules")'),
             ("b2", "mariadb", "--user-require-file", bad_req, "per-user REQUIRE rules: line 1")]
    for name, engine, opt, path, msg in cases:
        cp = d.run("instances", "create", name, "--engine", engine, "--listen",
                   f"127.0.0.1:{servers.free_port()}", "--backend", "127.0.0.1:1",
                   "--endpoint", f"{name}.example.test", opt, path, check=False)
        if cp.returncode != 0:
            continue  # refused at create: nothing to export
        out = os.path.join(tmp_dir, f"out-{name}")
        cp = d.fail("instances", "export", name, "--dir", out)
        assert cp.stderr.startswith(f'dbtls: instance "{name}": ') and msg in cp.stderr
        assert not os.path.exists(out)
