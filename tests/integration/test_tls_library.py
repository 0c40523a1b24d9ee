"""dbtlsd --tls-library: the client-facing TLS on BoringSSL (Debian's android-libboringssl, the
module dbtls-tls-boringssl.so) next to the default OpenSSL 3, with a real PostgreSQL 15 and real
clients: verify-full with TLS 1.3, a client-certificate login that a revocation then stops
without a restart, `dbtls connections`, a refused TLS version; what BoringSSL cannot do (choose
TLS 1.3 suites) refused with the instance named, at start and on reload; a bad name refused on
the command line. The whole PostgreSQL/MySQL front suite runs on BoringSSL too: scripts/test.sh
runs it again with DBTLS_TLS_LIBRARY=boringssl.
"""
import os
import subprocess

import psycopg
import pytest

from cli_helpers import use_template

MODULE = os.path.join("src", "tls", "dbtls-tls-boringssl.so")


@pytest.fixture
def bssl(build_dir):
    if not os.path.exists(os.path.join(build_dir, MODULE)):
        pytest.fail(f"{build_dir} has no {MODULE}: scripts/install-deps.sh installs "
                    "android-libboringssl-dev, and the build must be configured after it")
    return ["--tls-library", "boringssl"]


def conninfo(port, **kw):
    parts = {"host": "localhost", "port": port, "dbname": "app"}
    parts.update(kw)
    return " ".join(f"{k}='{v}'" for k, v in parts.items())


def make_instance(dbtls, free_port, backend, name, mode, *extra):
    port = free_port()
    dbtls("instances", "create", name, "--engine", "postgres", "--engine-version", "15",
          "--listen", f"127.0.0.1:{port}", "--backend", backend, "--endpoint", "localhost",
          "--ssl-mode", mode, *extra)
    return port


def test_boringssl_front(pg_server, dbtls, dbtlsd, state_dir, free_port, tmp_dir, psql, bssl):
    use_template(dbtls)
    port = make_instance(dbtls, free_port, f"127.0.0.1:{pg_server.port}", "pg1",
                         "ENCRYPTED_ONLY")
    cport = make_instance(dbtls, free_port, pg_server.socket_path, "pgc",
                          "TRUSTED_CLIENT_CERTIFICATE_REQUIRED", "--tls-min", "TLSv1.3")
    certs = os.path.join(tmp_dir, "certuser")
    os.mkdir(certs)
    dbtls("ssl", "client-certs", "create", "certuser", "--instance", "pgc", "--out-dir", certs)
    ca = os.path.join(tmp_dir, "pg1-ca.pem")
    dbtls("ssl", "server-ca-certs", "download", "--instance", "pg1", "--out", ca)
    d = dbtlsd.start(state_dir, bssl)
    assert "client TLS: BoringSSL" in d.log()

    rc, out, err = psql(conninfo(port, user="alice", password="alice-secret-1",
                                 sslmode="verify-full", sslrootcert=ca), r"\conninfo")
    assert rc == 0, err
    assert "SSL connection (protocol: TLSv1.3" in out
    # plaintext refused with PostgreSQL's text, as with OpenSSL
    rc, out, err = psql(conninfo(port, user="alice", password="alice-secret-1",
                                 sslmode="disable"), "SELECT 1")
    assert rc != 0 and 'no pg_hba.conf entry for host "127.0.0.1", user "alice"' in err

    ci = conninfo(cport, user="certuser", sslmode="verify-full",
                  sslrootcert=os.path.join(certs, "server-ca.pem"),
                  sslcert=os.path.join(certs, "client-cert.pem"),
                  sslkey=os.path.join(certs, "client-key.pem"))
    rc, out, err = psql(ci, "SELECT current_user")
    assert rc == 0 and out.strip() == "certuser", err
    with psycopg.connect(ci) as c:
        assert c.execute("SELECT current_user").fetchone() == ("certuser",)
        rows = [r for r in dbtls.json("connections")["connections"] if r["instance"] == "pgc"]
        assert len(rows) == 1, rows
        assert rows[0]["ssl"] and rows[0]["version"] == "TLSv1.3", rows
        assert rows[0]["cipher"].startswith("TLS_") and "CN=certuser" in rows[0]["client_dn"]

    # TLS 1.2 below the instance's minimum: refused, and logged with the reason
    cp = subprocess.run(["openssl", "s_client", "-starttls", "postgres", "-connect",
                         f"127.0.0.1:{cport}", "-tls1_2"], input="", capture_output=True,
                        text=True, timeout=20)
    assert "Cipher is (NONE)" in cp.stdout or cp.returncode != 0
    d.wait_log("unsupported protocol")

    # a revoked client certificate is refused once the CRL reaches the daemon (no restart)
    start = d.log_size()
    dbtls("ssl", "client-certs", "delete", "certuser", "--instance", "pgc")
    d.wait_reload(start)
    rc, out, err = psql(ci, "SELECT 1")
    assert rc != 0
    log = d.wait_log("certificate revoked", start=start)
    assert "CN=certuser" in log[start:], log


def test_boringssl_refuses_tls13_suites(pg_server, dbtls, dbtlsd, dbtlsd_bin, state_dir,
                                        free_port, bssl):
    use_template(dbtls)
    make_instance(dbtls, free_port, f"127.0.0.1:{pg_server.port}", "pg1", "ENCRYPTED_ONLY")
    make_instance(dbtls, free_port, f"127.0.0.1:{pg_server.port}", "suites", "ENCRYPTED_ONLY",
                  "--ciphersuites", "TLS_CHACHA20_POLY1305_SHA256")
    # OpenSSL (the default) takes the same configuration: the refusal is BoringSSL's alone
    d = dbtlsd.start(state_dir)
    assert "client TLS: OpenSSL 3" in d.log()
    d.stop()
    cp = subprocess.run([dbtlsd_bin, "--state-dir", state_dir, *bssl], capture_output=True,
                        text=True, timeout=30)
    assert cp.returncode == 1
    assert ('invalid configuration, not starting: instance "suites": TLS 1.3 cipher suites '
            '"TLS_CHACHA20_POLY1305_SHA256" cannot be chosen with BoringSSL') in cp.stderr
    # on a running daemon the change is refused on reload and the instance keeps serving
    dbtls("instances", "delete", "suites")
    d = dbtlsd.start(state_dir, bssl)
    start = d.log_size()
    dbtls("instances", "patch", "pg1", "--ciphersuites", "TLS_AES_128_GCM_SHA256")
    log = d.wait_log("cannot be chosen with BoringSSL", start=start)
    assert 'instance "pg1"' in log[start:], log


def test_tls_library_name_checked(dbtlsd_bin, state_dir):
    cp = subprocess.run([dbtlsd_bin, "--state-dir", state_dir, "--tls-library", "wolfssl"],
                        capture_output=True, text=True, timeout=30)
    assert cp.returncode == 2
    assert cp.stderr.strip() == 'dbtlsd: --tls-library: "wolfssl" is not openssl or boringssl'
