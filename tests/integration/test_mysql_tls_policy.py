"""TLS versions and ciphers of the MySQL/MariaDB front follow the engine version and the
instance's policy (issue 4, "Policy"): TLS 1.0/1.1 are refused by default, allowed only when
explicitly enabled and only for engine versions that had them (MySQL 5.7), and the TLS 1.2
cipher list is honoured. Checked with `openssl s_client -starttls mysql`, an implementation
independent of dbtls, through the front to a real MariaDB 10.11.
"""
import subprocess

from cli_helpers import use_template
from test_mysql_front import make_instance


def s_client(port, *args):
    """TLS inside the MySQL protocol; returns (ok, negotiated protocol, output)."""
    cp = subprocess.run(["openssl", "s_client", "-starttls", "mysql", "-connect",
                         f"127.0.0.1:{port}", "-servername", "localhost", *args],
                        input="", capture_output=True, text=True, timeout=30)
    out = cp.stdout + cp.stderr
    proto = session_proto = None
    for line in out.splitlines():
        line = line.strip()
        # "New, TLSv1.3, Cipher is ..." names the cipher's own version; the SSL-Session block
        # ("Protocol  : TLSv1.1") names the protocol but is absent for TLS 1.3 without tickets.
        if line.startswith("New, ") and ", Cipher is " in line:
            proto = line.split(",")[1].strip()
        if line.startswith("Protocol") and ":" in line:
            session_proto = line.split(":", 1)[1].strip()
    proto = session_proto or proto
    ok = cp.returncode == 0 and "Cipher is (NONE)" not in out and proto is not None
    return ok, proto, out


LEGACY = ("-cipher", "ALL:@SECLEVEL=0")


def test_default_policy_refuses_tls11_and_accepts_12_and_13(mariadb_server, dbtls, dbtlsd,
                                                            state_dir, free_port):
    use_template(dbtls)
    port = make_instance(dbtls, free_port, mariadb_server, engine="mysql",
                         ssl_mode="ALLOW_UNENCRYPTED_AND_ENCRYPTED")
    d = dbtlsd.start(state_dir, ["--workers", "1"])
    ok, _, out = s_client(port, "-tls1_1", *LEGACY)
    assert not ok, out
    ok, _, out = s_client(port, "-tls1", *LEGACY)
    assert not ok, out
    ok, proto, out = s_client(port, "-tls1_2")
    assert ok and proto == "TLSv1.2", out
    ok, proto, out = s_client(port, "-tls1_3")
    assert ok and proto == "TLSv1.3", out
    assert d.alive()


def test_tls11_only_when_enabled_and_only_for_engines_that_had_it(mariadb_server, dbtls,
                                                                   dbtlsd, state_dir, free_port):
    use_template(dbtls)
    # MySQL 5.7 had TLS 1.1: allowed when asked for explicitly
    port = free_port()
    dbtls("instances", "create", "old57", "--engine", "mysql", "--engine-version", "5.7",
          "--listen", f"127.0.0.1:{port}", "--backend", f"127.0.0.1:{mariadb_server.port}",
          "--endpoint", "localhost", "--tls-min", "TLSv1.1")
    # MariaDB 10.11 (as dbtls engines list says) did not: refused with one line, exit 1
    cp = dbtls("instances", "create", "new1011", "--engine", "mariadb", "--engine-version",
               "10.11", "--listen", f"127.0.0.1:{free_port()}", "--backend",
               f"127.0.0.1:{mariadb_server.port}", "--endpoint", "localhost", "--tls-min",
               "TLSv1.1", check=False)
    assert cp.returncode == 1
    assert cp.stderr.strip().count("\n") == 0 and "TLSv1.1" in cp.stderr, cp.stderr
    listed = [i["name"] for i in dbtls.json("instances", "list")]
    assert "new1011" not in listed

    d = dbtlsd.start(state_dir, ["--workers", "1"])
    ok, proto, out = s_client(port, "-tls1_1", *LEGACY)
    assert ok and proto == "TLSv1.1", out
    # and back to the default without a restart: TLS 1.1 refused again
    start = len(d.log())
    dbtls("instances", "patch", "old57", "--tls-min", "TLSv1.2")
    d.wait_reload(start)
    ok, _, out = s_client(port, "-tls1_1", *LEGACY)
    assert not ok, out
    ok, proto, out = s_client(port, "-tls1_2")
    assert ok and proto == "TLSv1.2", out


def test_cipher_list_honoured(mariadb_server, dbtls, dbtlsd, state_dir, free_port):
    use_template(dbtls)
    port = make_instance(dbtls, free_port, mariadb_server, engine="mysql",
                         ssl_mode="ENCRYPTED_ONLY",
                         extra=("--tls-max", "TLSv1.2", "--ciphers",
                                "ECDHE-ECDSA-AES128-GCM-SHA256"))
    dbtlsd.start(state_dir, ["--workers", "1"])
    ok, proto, out = s_client(port, "-tls1_2", "-cipher", "ECDHE-ECDSA-AES256-GCM-SHA384")
    assert not ok, out
    ok, proto, out = s_client(port, "-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256")
    assert ok and proto == "TLSv1.2", out
    assert "ECDHE-ECDSA-AES128-GCM-SHA256" in out
    ok, _, out = s_client(port, "-tls1_3")
    assert not ok, out
