"""libpq's sslmode against each instance ssl mode, through dbtlsd, with real clients.

Every combination of client (psql, psycopg), sslmode (disable, allow, prefer, require, verify-ca,
verify-full) and instance ssl mode (ALLOW_UNENCRYPTED_AND_ENCRYPTED, ENCRYPTED_ONLY,
TRUSTED_CLIENT_CERTIFICATE_REQUIRED, with and without a client certificate) connects to the
front, which relays to a real PostgreSQL 15 that authenticates alice by SCRAM. Each outcome is
what a PostgreSQL server configured with the equivalent pg_hba.conf gives: the connection works
with or without TLS as libpq's fallback rules say, or fails with PostgreSQL's exact FATAL text
(libpq 14+ reports every attempt, so a fallback shows both texts). verify-full succeeds against
the endpoint name and fails against a name that is not in the certificate's SAN.

One daemon with three instances serves the whole module (each test connects fresh).
"""
import os
import re
import shutil
import tempfile

import psycopg
import pytest

from cli_helpers import use_template
import conftest
import servers

MODES = {
    "ALLOW_UNENCRYPTED_AND_ENCRYPTED": "allowall",
    "ENCRYPTED_ONLY": "enconly",
    "TRUSTED_CLIENT_CERTIFICATE_REQUIRED": "certreq",
}
SSLMODES = ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]

NO_ENTRY = ('FATAL:  no pg_hba.conf entry for host "127.0.0.1", user "alice", database "app", '
            'no encryption')
CERT_REQUIRED = "FATAL:  connection requires a valid client certificate"

# (instance ssl mode, client certificate?) -> sslmode -> ("ok", tls expected) | ("fail", [texts])
EXPECT = {
    ("ALLOW_UNENCRYPTED_AND_ENCRYPTED", False): {
        "disable": ("ok", False),
        "allow": ("ok", False),     # allow tries plaintext first, and plaintext is accepted
        "prefer": ("ok", True),
        "require": ("ok", True),
        "verify-ca": ("ok", True),
        "verify-full": ("ok", True),
    },
    ("ENCRYPTED_ONLY", False): {
        "disable": ("fail", [NO_ENTRY]),
        "allow": ("ok", True),      # plaintext refused by hostssl, libpq retries with TLS
        "prefer": ("ok", True),
        "require": ("ok", True),
        "verify-ca": ("ok", True),
        "verify-full": ("ok", True),
    },
    ("TRUSTED_CLIENT_CERTIFICATE_REQUIRED", False): {
        "disable": ("fail", [NO_ENTRY]),
        "allow": ("fail", [NO_ENTRY, CERT_REQUIRED]),
        "prefer": ("fail", [CERT_REQUIRED, NO_ENTRY]),  # TLS refused, then plaintext refused
        "require": ("fail", [CERT_REQUIRED]),
        "verify-ca": ("fail", [CERT_REQUIRED]),
        "verify-full": ("fail", [CERT_REQUIRED]),
    },
    ("TRUSTED_CLIENT_CERTIFICATE_REQUIRED", True): {
        "disable": ("fail", [NO_ENTRY]),
        "allow": ("ok", True),
        "prefer": ("ok", True),
        "require": ("ok", True),
        "verify-ca": ("ok", True),
        "verify-full": ("ok", True),
    },
}


class Front:
    """The module's daemon: instance ports by ssl mode, CA files, alice's client cert files."""

    def __init__(self):
        self.ports = {}
        self.ca = {}
        self.cert_dir = None
        self.daemon = None


@pytest.fixture(scope="module")
def front(pg_server, dbtls_bin, dbtlsd_bin):
    base = tempfile.mkdtemp(prefix="dbtls-sm-")
    os.chmod(base, 0o700)
    st = os.path.join(base, "st")
    os.mkdir(st, 0o700)
    dbtls = conftest.Dbtls(dbtls_bin, st)
    f = Front()
    try:
        use_template(dbtls)
        for mode, name in MODES.items():
            port = servers.free_port()
            dbtls("instances", "create", name, "--engine", "postgres", "--engine-version", "15",
                  "--listen", f"127.0.0.1:{port}", "--backend",
                  f"127.0.0.1:{pg_server.port}", "--endpoint", "localhost", "--ssl-mode", mode)
            f.ports[mode] = port
            f.ca[mode] = os.path.join(base, f"{name}-ca.pem")
            dbtls("ssl", "server-ca-certs", "download", "--instance", name, "--out", f.ca[mode])
        f.cert_dir = os.path.join(base, "alice")
        dbtls("ssl", "client-certs", "create", "alice", "--instance",
              MODES["TRUSTED_CLIENT_CERTIFICATE_REQUIRED"], "--out-dir", f.cert_dir)
        f.daemon = conftest.DbtlsdProcess(dbtlsd_bin, st, ["--workers", "2"], None, base)
        f.daemon.wait_log("dbtlsd: ready", timeout=20)
        yield f
        rc = f.daemon.stop(expect_clean=False)
        assert rc == 0, f"dbtlsd did not exit cleanly ({rc}):\n{f.daemon.log()}"
    finally:
        if f.daemon is not None and not f.daemon.stopped:
            f.daemon.stop(expect_clean=False)
        if not conftest.KEEP_TMP:
            shutil.rmtree(base, ignore_errors=True)


def conninfo(front, mode, sslmode, with_cert, host="localhost"):
    parts = {
        "host": host,
        "hostaddr": "127.0.0.1",  # the front listens on IPv4 only: no ::1 attempt first
        "port": front.ports[mode],
        "user": "alice",
        "password": pg_password(),
        "dbname": "app",
        "sslmode": sslmode,
        "connect_timeout": "10",
    }
    if sslmode.startswith("verify"):
        parts["sslrootcert"] = front.ca[mode]
    if with_cert:
        parts["sslcert"] = os.path.join(front.cert_dir, "client-cert.pem")
        parts["sslkey"] = os.path.join(front.cert_dir, "client-key.pem")
    else:
        # No ~/.postgresql/postgresql.crt may sneak in: name files that do not exist.
        parts["sslcert"] = "/nonexistent/cert.pem"
        parts["sslkey"] = "/nonexistent/key.pem"
    return " ".join(f"{k}='{v}'" for k, v in parts.items())


def pg_password():
    return servers.PgServer.ALICE[1]


CASES = [(mode, cert, sslmode)
         for (mode, cert) in EXPECT
         for sslmode in SSLMODES]


def case_id(c):
    mode, cert, sslmode = c
    return f"{MODES[mode]}-{'cert' if cert else 'nocert'}-{sslmode}"


@pytest.mark.parametrize("case", CASES, ids=[case_id(c) for c in CASES])
def test_psql(front, psql, case):
    mode, cert, sslmode = case
    want = EXPECT[(mode, cert)][sslmode]
    rc, out, err = psql(conninfo(front, mode, sslmode, cert), r"\conninfo")
    if want[0] == "ok":
        assert rc == 0, err
        assert 'You are connected to database "app" as user "alice"' in out
        assert ("SSL connection (protocol: TLSv1.3" in out) == want[1], out
    else:
        assert rc != 0, out
        for text in want[1]:
            assert text in err, f"{text!r} not in {err!r}"
        if len(want[1]) == 2:  # both attempts are reported, in the order libpq made them
            assert err.index(want[1][0]) < err.index(want[1][1]), err


@pytest.mark.parametrize("case", CASES, ids=[case_id(c) for c in CASES])
def test_psycopg(front, case):
    mode, cert, sslmode = case
    want = EXPECT[(mode, cert)][sslmode]
    ci = conninfo(front, mode, sslmode, cert)
    if want[0] == "ok":
        with psycopg.connect(ci) as c:
            assert c.pgconn.ssl_in_use == want[1]
            assert c.execute("SELECT current_user, current_database()").fetchone() == \
                ("alice", "app")
    else:
        with pytest.raises(psycopg.OperationalError) as ei:
            psycopg.connect(ci)
        msg = str(ei.value)
        for text in want[1]:
            assert text in msg, f"{text!r} not in {msg!r}"


@pytest.mark.parametrize("client", ["psql", "psycopg"])
def test_verify_full_name_not_in_san(front, psql, client):
    mode = "ENCRYPTED_ONLY"
    ci = conninfo(front, mode, "verify-full", False, host="db.not-in-san.example")
    want = 'server certificate for "localhost" does not match host name "db.not-in-san.example"'
    if client == "psql":
        rc, out, err = psql(ci, "SELECT 1")
        assert rc != 0
        assert want in err, err
    else:
        with pytest.raises(psycopg.OperationalError) as ei:
            psycopg.connect(ci)
        assert want in str(ei.value)
    # the endpoint name itself verifies
    rc, out, err = psql(conninfo(front, mode, "verify-full", False), "SELECT 1")
    assert rc == 0, err


def test_verify_ca_refuses_foreign_ca(front, psql):
    """verify-ca with another instance's CA bundle: the chain does not verify (shared CA mode
    gives every instance the same root, so use a CA made by openssl)."""
    d = tempfile.mkdtemp(prefix="dbtls-ca-")
    try:
        key = os.path.join(d, "k.pem")
        ca = os.path.join(d, "ca.pem")
        servers.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                     "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", ca, "-days",
                     "2", "-subj", "/CN=foreign test CA"])
        ci = conninfo(front, "ENCRYPTED_ONLY", "verify-ca", False).replace(
            front.ca["ENCRYPTED_ONLY"], ca)
        rc, out, err = psql(ci, "SELECT 1")
        assert rc != 0
        assert "certificate verify failed" in err, err
    finally:
        shutil.rmtree(d, ignore_errors=True)


# --- client certificates: the front and a real PostgreSQL 15 with native TLS agree -----------
CERT_HBA = [
    "hostssl app certuser  127.0.0.1/32 cert",
    "hostssl app trustuser 127.0.0.1/32 cert map=r",
    "hostssl postgres trustuser 127.0.0.1/32 cert",
    "hostssl app bob       127.0.0.1/32 trust clientcert=verify-ca",
    "hostssl app alice     127.0.0.1/32 cert map=m",
    "hostssl app postgres  127.0.0.1/32 cert map=m",
]
CERT_IDENT = ["m certuser alice", "r /^cert(user)$ trust\\1"]


@pytest.fixture(scope="module")
def cert_reference(pg_server, dbtls_bin, dbtlsd_bin):
    """Instance `cref` (the rules above as --hba-file/--ident-file) before the session's server,
    and a second real PostgreSQL 15 running native TLS with the files `dbtls instances export`
    writes and the very same pg_hba.conf / pg_ident.conf lines. Yields (ref_port, front_port,
    dir of certuser's client certificate files)."""
    base = tempfile.mkdtemp(prefix="dbtls-cr-")
    os.chmod(base, 0o755)
    st = os.path.join(base, "st")
    os.mkdir(st, 0o700)
    dbtls = conftest.Dbtls(dbtls_bin, st)
    daemon = None
    ref = None
    try:
        hba = os.path.join(base, "hba.conf")
        ident = os.path.join(base, "ident.conf")
        with open(hba, "w") as f:
            f.write("\n".join(CERT_HBA) + "\n")
        with open(ident, "w") as f:
            f.write("\n".join(CERT_IDENT) + "\n")
        use_template(dbtls)
        port = servers.free_port()
        dbtls("instances", "create", "cref", "--engine", "postgres", "--engine-version", "15",
              "--listen", f"127.0.0.1:{port}", "--backend", f"127.0.0.1:{pg_server.port}",
              "--endpoint", "localhost", "--hba-file", hba, "--ident-file", ident)
        certs = os.path.join(base, "certuser")
        dbtls("ssl", "client-certs", "create", "certuser", "--instance", "cref", "--out-dir",
              certs)
        tls = dict.fromkeys(("server.crt", "server.key", "root.crt", "root.crl"))
        ref = servers.PgServer(keep=conftest.KEEP_TMP)
        tls_dir = os.path.join(ref.base, "tls")
        dbtls("instances", "export", "cref", "--dir", tls_dir)
        for k in tls:
            tls[k] = os.path.join(tls_dir, k)
        ref.extra_conf.update({
            "ssl": "on",
            "ssl_cert_file": f"'{tls['server.crt']}'",
            "ssl_key_file": f"'{tls['server.key']}'",
            "ssl_ca_file": f"'{tls['root.crt']}'",
            "ssl_crl_file": f"'{tls['root.crl']}'",
        })
        ref.start()  # chowns its base (tls files included) to postgres
        ref.write_hba(["local all all trust"] + CERT_HBA)
        with open(os.path.join(ref.datadir, "pg_ident.conf"), "w") as f:
            f.write("\n".join(CERT_IDENT) + "\n")
        servers._chown_tree(os.path.join(ref.datadir, "pg_ident.conf"), "postgres")
        ref.reload()
        daemon = conftest.DbtlsdProcess(dbtlsd_bin, st, [], None, base)
        daemon.wait_log("dbtlsd: ready", timeout=20)
        yield ref.port, port, certs
        assert daemon.stop(expect_clean=False) == 0, daemon.log()
    finally:
        if daemon is not None and not daemon.stopped:
            daemon.stop(expect_clean=False)
        if ref is not None:
            ref.stop()
        if not conftest.KEEP_TMP:
            shutil.rmtree(base, ignore_errors=True)


PASSWORDS = {"alice": servers.PgServer.ALICE[1], "bob": servers.PgServer.BOB[1]}


@pytest.mark.parametrize("user,cert,sslmode,db", [
    ("certuser", True, "require", "app"),        # cert, CN = user
    ("trustuser", True, "require", "postgres"),  # cert, CN != user
    ("trustuser", True, "require", "app"),       # cert + regex map with \1: certuser -> trustuser
    ("certuser", False, "require", "app"),       # cert without a certificate
    ("bob", False, "require", "app"),            # clientcert=verify-ca without a certificate
    ("bob", True, "require", "app"),             # clientcert=verify-ca with one (any CN)
    ("alice", True, "require", "app"),           # cert + map: certuser -> alice
    ("postgres", True, "require", "app"),        # cert + map: no line maps to postgres
    ("certuser", True, "disable", "app"),        # hostssl only
    ("nobody", True, "require", "app"),          # no line at all
])
def test_cert_rules_answer_like_postgresql(cert_reference, psql, user, cert, sslmode, db):
    ref_port, front_port, certs = cert_reference

    def attempt(port):
        parts = {"host": "127.0.0.1", "port": port, "user": user, "dbname": db,
                 "sslmode": sslmode, "connect_timeout": "10"}
        if user in PASSWORDS:
            parts["password"] = PASSWORDS[user]
        if cert:
            parts["sslcert"] = os.path.join(certs, "client-cert.pem")
            parts["sslkey"] = os.path.join(certs, "client-key.pem")
        else:
            parts["sslcert"] = "/nonexistent/cert.pem"
            parts["sslkey"] = "/nonexistent/key.pem"
        rc, out, err = psql(" ".join(f"{k}='{v}'" for k, v in parts.items()),
                            "SELECT current_user")
        return rc == 0, out.strip() if rc == 0 else re.findall(r"FATAL:  ([^\n]*)", err)

    want = attempt(ref_port)
    got = attempt(front_port)
    assert got == want
    assert want[0] or want[1], want  # a refusal always carries PostgreSQL's text
