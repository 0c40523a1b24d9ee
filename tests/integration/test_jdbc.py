"""Java clients (PgJDBC 42.5, Debian's libpostgresql-jdbc-java, on OpenJDK 17) through dbtlsd:
sslmode=verify-full against the endpoint name, the TLS server name choosing among instances on
one port (Java sends SNI for host names), a client certificate from `client-certs create
--pkcs12` (client.p12, the file the CLI writes for Java), and PostgreSQL's own refusal texts as
JDBC shows them. Host names resolve through a JDK hosts file (-Djdk.net.hosts.file), so the
system's /etc/hosts is not touched.
"""
import os
import shutil
import subprocess

import pytest

from cli_helpers import download_ca, use_template, write

JAR = "/usr/share/java/postgresql.jar"
CLIENT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "java", "PgClient.java")
SERVER_ADDR = "SELECT coalesce(host(inet_server_addr()), 'socket')"


@pytest.fixture
def jdbc(tmp_dir):
    """jdbc(url, sql, **props) -> (rc, stdout, stderr): PgClient.java on the JDK."""
    if not (shutil.which("java") and os.path.exists(JAR)):
        pytest.fail("java or PgJDBC missing: run scripts/install-deps.sh")
    hosts = os.path.join(tmp_dir, "hosts")
    write(hosts, "127.0.0.1 alpha.test beta.test\n")

    def run(url, sql, **props):
        cmd = ["java", f"-Djdk.net.hosts.file={hosts}", "-cp", JAR, CLIENT, url, sql,
               *[f"{k}={v}" for k, v in props.items()]]
        cp = subprocess.run(cmd, capture_output=True, text=True, timeout=90)
        return cp.returncode, cp.stdout, cp.stderr
    return run


def test_jdbc_verify_full_sni_pkcs12_and_refusals(pg_server, dbtls, dbtlsd, state_dir, tmp_dir,
                                                  free_port, jdbc):
    use_template(dbtls)
    port = free_port()
    listen = f"127.0.0.1:{port}"
    hba = os.path.join(tmp_dir, "beta-hba.conf")
    write(hba, "hostssl all certuser all cert\nhostssl all all all backend\n")
    dbtls("instances", "create", "alpha", "--engine", "postgres", "--engine-version", "15",
          "--listen", listen, "--backend", pg_server.socket_path, "--endpoint", "alpha.test",
          "--ssl-mode", "ENCRYPTED_ONLY")
    dbtls("instances", "create", "beta", "--engine", "postgres", "--engine-version", "15",
          "--listen", listen, "--backend", f"127.0.0.1:{pg_server.port}",
          "--endpoint", "beta.test", "--ssl-mode", "ENCRYPTED_ONLY", "--hba-file", hba)
    alpha_ca = download_ca(dbtls, "alpha", tmp_dir, "alpha-ca.pem")
    beta_ca = download_ca(dbtls, "beta", tmp_dir, "beta-ca.pem")
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
