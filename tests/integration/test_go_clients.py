"""Go clients through dbtlsd, whose TLS is Go's crypto/tls — neither OpenSSL nor JSSE — and whose
wire protocol code is their own, on Go 1.19 with Debian's driver packages: pgx v4
(golang-github-jackc-pgx-v4-dev) — sslmode=verify-full against the endpoint name, the TLS server
name choosing among instances on one port (Go sends SNI for host names), a client certificate
straight from `client-certs create` (PKCS#8 EC key, PEM), PostgreSQL's own refusal texts as pgx
reports them; and go-sql-driver/mysql 1.5 (golang-github-go-sql-driver-mysql-dev) — TLS inside
the MySQL handshake, verified, a client certificate for a REQUIRE X509 user, MySQL's errors. The
clients are tests/integration/go/*, built once per module in GOPATH mode from Debian's sources.
"""
import os
import shutil
import subprocess

import pytest

from cli_helpers import alpha_and_beta, mariadb_bob_x509, openssl

GO_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "go")
SERVER_ADDR = "SELECT coalesce(host(inet_server_addr()), 'socket')"


def go_build(tmp_path_factory, name, package):
    """Builds tests/integration/go/<name> (GOPATH mode: Debian's sources, no network)."""
    if not (shutil.which("go") and os.path.isdir(f"/usr/share/gocode/src/{package}")):
        pytest.fail(f"go or {package} is missing: run scripts/install-deps.sh")
    out = tmp_path_factory.mktemp(name)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GO")}
    env.update(GO111MODULE="off", GOPATH="/usr/share/gocode", GOCACHE=str(out / "cache"),
               HOME=str(out))
    exe = str(out / name)
    cp = subprocess.run(["go", "build", "-o", exe, "."], cwd=os.path.join(GO_DIR, name),
                        env=env, capture_output=True, text=True, timeout=600)
    assert cp.returncode == 0, cp.stderr
    return exe


@pytest.fixture(scope="module")
def pgx_client(tmp_path_factory):
    return go_build(tmp_path_factory, "pgxclient", "github.com/jackc/pgx")


@pytest.fixture(scope="module")
def go_mysql_client(tmp_path_factory):
    return go_build(tmp_path_factory, "mysqlclient", "github.com/go-sql-driver/mysql")


def run(exe, sql, **kw):
    dsn = " ".join(f"{k}={v}" for k, v in kw.items())
    cp = subprocess.run([exe, dsn, sql], capture_output=True, text=True, timeout=60,
                        env={k: v for k, v in os.environ.items() if not k.startswith("PG")})
    return cp.returncode, cp.stdout.strip()


def test_pgx_verify_full_sni_client_cert_and_refusals(pg_server, dbtls, dbtlsd, state_dir,
                                                       tmp_dir, free_port, pgx_client):
    port, alpha_ca, beta_ca = alpha_and_beta(dbtls, pg_server, tmp_dir, free_port)
    cc = os.path.join(tmp_dir, "cc")
    dbtls("ssl", "client-certs", "create", "certuser", "--instance", "beta", "--out-dir", cc)
    dbtlsd.start(state_dir)
    common = dict(port=port, dbname="app", connect_timeout=10)

    # verify-full over Go's TLS 1.3; the server name picks the instance (certificate, backend)
    rc, out = run(pgx_client, SERVER_ADDR, host="beta.test", user="trustuser",
                  sslmode="verify-full", sslrootcert=beta_ca, **common)
    assert rc == 0, out
    ok, addr, version, suite, cn = out.split()
    assert (addr, version, cn) == ("127.0.0.1", "TLSv1.3", "beta.test"), out
    # the server's choice: OpenSSL's first, AES-256; BoringSSL's (DBTLS_TLS_LIBRARY) AES-128
    assert suite in ("TLS_AES_256_GCM_SHA384", "TLS_AES_128_GCM_SHA256"), out
    rc, out = run(pgx_client, SERVER_ADDR, host="alpha.test", user="trustuser",
                  sslmode="verify-full", sslrootcert=alpha_ca, **common)
    assert rc == 0 and out.split()[1] == "socket" and out.split()[4] == "alpha.test", out

    # the client certificate's PEM files as the CLI wrote them log in with `cert`
    rc, out = run(pgx_client, "SELECT current_user", host="beta.test", user="certuser",
                  sslmode="verify-full", sslrootcert=beta_ca,
                  sslcert=os.path.join(cc, "client-cert.pem"),
                  sslkey=os.path.join(cc, "client-key.pem"), **common)
    assert rc == 0 and out.split()[1] == "certuser", out

    # refusals, in PostgreSQL's words through pgx
    rc, out = run(pgx_client, "SELECT 1", host="beta.test", user="certuser",
                  sslmode="verify-full", sslrootcert=beta_ca, **common)
    assert rc == 1 and "connection requires a valid client certificate (SQLSTATE 28000)" in out
    rc, out = run(pgx_client, "SELECT 1", host="alpha.test", user="trustuser", sslmode="disable",
                  **common)
    assert rc == 1 and ('no pg_hba.conf entry for host "127.0.0.1", user "trustuser", database '
                        '"app", no encryption (SQLSTATE 28000)') in out, out
    # Go's own certificate checks: a CA that did not sign it, a name not in the certificate
    foreign = os.path.join(tmp_dir, "foreign-ca.pem")
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", os.path.join(tmp_dir, "foreign.key"), "-out", foreign, "-days", "2",
            "-subj", "/CN=Foreign CA")
    rc, out = run(pgx_client, "SELECT 'x'", host="beta.test", user="trustuser",
                  sslmode="verify-full", sslrootcert=foreign, **common)
    assert rc == 1 and "x509: certificate signed by unknown authority" in out, out
    rc, out = run(pgx_client, "SELECT 'x'", host="gamma.test", user="trustuser",
                  sslmode="verify-full", sslrootcert=alpha_ca, **common)
    assert rc == 1 and "x509: certificate is valid for alpha.test, not gamma.test" in out, out


def test_go_mysql_tls_verified_client_cert_and_errors(mariadb_server, dbtls, dbtlsd, state_dir,
                                                     tmp_dir, free_port, go_mysql_client):
    port, ca = mariadb_bob_x509(dbtls, mariadb_server, tmp_dir, free_port, "db.test")
    cc = os.path.join(tmp_dir, "bob")
    dbtls("ssl", "client-certs", "create", "bob", "--instance", "my1", "--out-dir", cc)
    dbtlsd.start(state_dir)
    addr = f"127.0.0.1:{port}"
    a, apw = mariadb_server.ALICE
    b, bpw = mariadb_server.BOB

    def go(user, pw, name, cafile, *cert, sql="SELECT CURRENT_USER()"):
        cp = subprocess.run([go_mysql_client, addr, user, pw, name, cafile, *cert, "--", sql],
                            capture_output=True, text=True, timeout=60)
        return cp.returncode, cp.stdout.strip()

    assert go(a, apw, "db.test", ca) == (0, "OK alice@%")
    assert go(a, apw, "db.test", ca, sql="SELECT @@version_comment")[0] == 0
    # REQUIRE X509 with the CLI's PEM files; without them, MariaDB's own refusal
    bob_cert = (os.path.join(cc, "client-cert.pem"), os.path.join(cc, "client-key.pem"))
    assert go(b, bpw, "db.test", ca, *bob_cert) == (0, "OK bob@%")
    rc, out = go(b, bpw, "db.test", ca)
    assert rc == 1 and "Error 1045: Access denied for user 'bob'" in out, out
    # plaintext: MySQL's own words (require_secure_transport)
    rc, out = go(a, apw, "db.test", "-")
    assert rc == 1 and ("Error 3159: Connections using insecure transport are prohibited while "
                        "--require_secure_transport=ON.") in out, out
    # Go's checks of the front's certificate
    rc, out = go(a, apw, "other.test", ca)
    assert rc == 1 and "x509: certificate is valid for db.test, not other.test" in out, out
