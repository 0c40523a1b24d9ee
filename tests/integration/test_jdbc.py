"""Java clients through dbtlsd, on OpenJDK 17 with Debian's drivers: PgJDBC 42.5
(libpostgresql-jdbc-java) — sslmode=verify-full against the endpoint name, the TLS server name
choosing among instances on one port (Java sends SNI for host names), a client certificate from
`client-certs create --pkcs12` (client.p12, the file the CLI writes for Java), PostgreSQL's own
refusal texts as JDBC shows them; and MariaDB Connector/J 2.7 (libmariadb-java) — TLS inside the
MySQL handshake with the server certificate verified, the keystore client.p12 for a REQUIRE X509
user, MySQL's error 3159 for plaintext. Host names resolve through a JDK hosts file
(-Djdk.net.hosts.file), so the system's /etc/hosts is not touched.
"""
import os
import shutil
import subprocess

import pytest

from cli_helpers import alpha_and_beta, mariadb_bob_x509, write

JARS = ["/usr/share/java/postgresql.jar", "/usr/share/java/mariadb-java-client.jar"]
CLIENT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "java", "JdbcClient.java")
SERVER_ADDR = "SELECT coalesce(host(inet_server_addr()), 'socket')"


@pytest.fixture
def jdbc(tmp_dir):
    """jdbc(url, sql, **props) -> (rc, stdout, stderr): JdbcClient.java on the JDK."""
    if not (shutil.which("java") and all(os.path.exists(j) for j in JARS)):
        pytest.fail("java or a JDBC driver is missing: run scripts/install-deps.sh")
    hosts = os.path.join(tmp_dir, "hosts")
    write(hosts, "127.0.0.1 alpha.test beta.test\n")

    def run(url, sql, **props):
        cmd = ["java", f"-Djdk.net.hosts.file={hosts}", "-cp", ":".join(JARS), CLIENT, url, sql,
               *[f"{k}={v}" for k, v in props.items()]]
        cp = subprocess.run(cmd, capture_output=True, text=True, timeout=90)
        return cp.returncode, cp.stdout, cp.stderr
    return run


def test_jdbc_verify_full_sni_pkcs12_and_refusals(pg_server, dbtls, dbtlsd, state_dir, tmp_dir,
                                                  free_port, jdbc):
    port, alpha_ca, beta_ca = alpha_and_beta(dbtls, pg_server, tmp_dir, free_port)
    p12dir = os.path.join(tmp_dir, "p12")
    dbtls("ssl", "client-certs", "create", "certuser", "--instance", "beta", "--out-dir", p12dir,
          "--pkcs12", "--pkcs12-password", "p12-secret")
    dbtlsd.start(state_dir)

    def url(host):
        return f"jdbc:postgresql://{host}:{port}/app"

    # verify-full, and the server name picks the instance (its certificate, its backend path)
    rc, out, err = jdbc(url("beta.test"), SERVER_ADDR, user="trustuser", sslmode="verify-full",
                        sslrootcert=beta_ca)
    assert rc == 0 and out.strip() == "127.0.0.1", err
    rc, out, err = jdbc(url("alpha.test"), SERVER_ADDR, user="trustuser", sslmode="verify-full",
                        sslrootcert=alpha_ca)
    assert rc == 0 and out.strip() == "socket", err

    # client.p12 (the CLI's file for Java) logs in with `cert`: CN = certuser
    rc, out, err = jdbc(url("beta.test"), "SELECT current_user", user="certuser",
                        sslmode="verify-full", sslrootcert=beta_ca,
                        sslkey=os.path.join(p12dir, "client.p12"), sslpassword="p12-secret")
    assert rc == 0 and out.strip() == "certuser", err
    # without it: PostgreSQL's words, through JDBC
    rc, out, err = jdbc(url("beta.test"), "SELECT 1", user="certuser", sslmode="verify-full",
                        sslrootcert=beta_ca)
    assert rc == 1 and "connection requires a valid client certificate" in err, err
    # plaintext: refused as PostgreSQL refuses it (ENCRYPTED_ONLY)
    rc, out, err = jdbc(url("alpha.test"), "SELECT 1", user="trustuser", sslmode="disable")
    assert rc == 1 and ('no pg_hba.conf entry for host "127.0.0.1", user "trustuser", '
                        'database "app", no encryption') in err, err


def test_mariadb_connector_j(mariadb_server, dbtls, dbtlsd, state_dir, tmp_dir, free_port, jdbc):
    port, ca = mariadb_bob_x509(dbtls, mariadb_server, tmp_dir, free_port, "localhost")
    p12dir = os.path.join(tmp_dir, "bob")
    dbtls("ssl", "client-certs", "create", "bob", "--instance", "my1", "--out-dir", p12dir,
          "--pkcs12", "--pkcs12-password", "p12-secret")
    dbtlsd.start(state_dir)
    url = f"jdbc:mariadb://localhost:{port}/{mariadb_server.dbname}"
    a, apw = mariadb_server.ALICE
    b, bpw = mariadb_server.BOB

    # TLS with the server certificate and its name verified by Connector/J
    rc, out, err = jdbc(url, "SELECT CURRENT_USER()", user=a, password=apw, useSsl="true",
                        serverSslCert=ca)
    assert rc == 0 and out.strip() == "alice@%", err
    # plaintext: MySQL's own words (require_secure_transport)
    rc, out, err = jdbc(url, "SELECT 1", user=a, password=apw, useSsl="false")
    assert rc == 1 and ("Connections using insecure transport are prohibited while "
                        "--require_secure_transport=ON.") in err, err
    # REQUIRE X509: the keystore client.p12 from the CLI
    rc, out, err = jdbc(url, "SELECT CURRENT_USER()", user=b, password=bpw, useSsl="true",
                        serverSslCert=ca, keyStore="file://" + os.path.join(p12dir, "client.p12"),
                        keyStorePassword="p12-secret", keyStoreType="PKCS12")
    assert rc == 0 and out.strip() == "bob@%", err
    rc, out, err = jdbc(url, "SELECT 1", user=b, password=bpw, useSsl="true", serverSslCert=ca)
    assert rc == 1 and "Access denied for user 'bob'" in err, err
