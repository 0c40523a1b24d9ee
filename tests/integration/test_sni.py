"""Several PostgreSQL instances on one listen address, chosen by the TLS server name (SNI; libpq
sends it since PostgreSQL 14, reference "tls-fronts-compared" §6.7): one port in front of many
databases, each with its own certificate, client CA, access rules, TLS versions and backend.
Connections without a server name (plaintext, an IP address as host, sslsni=0) and names no
instance has go to the instance created first on the address.

Routing is shown with real PostgreSQL 15 and real clients: the two instances reach the same
server over different paths (unix socket vs TCP), so `inet_server_addr()` tells which instance
relayed a session; verify-full against each name shows which certificate was served.
"""
import os
import re
import sqlite3
import subprocess
import time

import psycopg

from cli_helpers import (assert_cancel, assert_unchanged, download_ca, pg_instance, sha1_of, slots,
                         store_snapshot, use_template, write)
import conftest


def two_instances(dbtls, pg_server, tmp_dir, port, beta_extra=()):
    """alpha (first, ALLOW, unix socket backend) and beta (ENCRYPTED_ONLY, TLS 1.3 only, TCP
    backend) on 127.0.0.1:port; returns their CA files."""
    use_template(dbtls)
    listen = f"127.0.0.1:{port}"
    pg_instance(dbtls, "alpha", listen, pg_server.socket_path, "alpha.test",
                "--engine-version", "15")
    pg_instance(dbtls, "beta", listen, f"127.0.0.1:{pg_server.port}", "beta.test,beta-alias.test",
                "--engine-version", "15", "--ssl-mode", "ENCRYPTED_ONLY", "--tls-min", "TLSv1.3",
                *beta_extra)
    return (download_ca(dbtls, "alpha", tmp_dir, "alpha-ca.pem"),
            download_ca(dbtls, "beta", tmp_dir, "beta-ca.pem"))


def ci(port, host, ca=None, sslmode="verify-full", user="trustuser", **kw):
    parts = [f"host={host}", "hostaddr=127.0.0.1", f"port={port}", f"user={user}",
             "dbname=app", f"sslmode={sslmode}"]
    if ca:
        parts.append(f"sslrootcert={ca}")
    parts += [f"{k}={v}" for k, v in kw.items()]
    return " ".join(parts)


SERVER_ADDR = "SELECT coalesce(host(inet_server_addr()), 'socket')"


def s_client(port, servername, *args):
    cmd = ["openssl", "s_client", "-starttls", "postgres", "-connect", f"127.0.0.1:{port}"]
    if servername:
        cmd += ["-servername", servername]
    return subprocess.run(cmd + list(args), input="", capture_output=True, text=True, timeout=20)


def test_server_name_chooses_the_instance(pg_server, dbtls, dbtlsd, state_dir, tmp_dir,
                                          free_port, psql):
    port = free_port()
    # BoringSSL's TLS 1.3 suites are fixed (an instance that names some is refused: there
    # test_tls_library); then beta differs from alpha in its versions alone
    bssl = conftest.TLS_LIBRARY == "boringssl"
    alpha_ca, beta_ca = two_instances(dbtls, pg_server, tmp_dir, port, beta_extra=() if bssl else (
        "--ciphersuites", "TLS_CHACHA20_POLY1305_SHA256"))
    pg_instance(dbtls, "delta", f"127.0.0.1:{port}", pg_server.socket_path, "delta.test",
                "--tls-max", "TLSv1.2", "--ciphers", "ECDHE-ECDSA-CHACHA20-POLY1305")
    pg_instance(dbtls, "wild", f"127.0.0.1:{port}", f"127.0.0.1:{pg_server.port}", "*.wild.test")
    d = dbtlsd.start(state_dir)
    assert d.log().count(f"listening on 127.0.0.1:{port}") == 1, d.log()
    assert (f'127.0.0.1:{port}: instance "alpha" and 3 more ("beta", "delta", "wild") chosen by '
            'TLS server name; "alpha" also takes connections without one') in d.log(), d.log()

    # each name gets its own instance: its certificate (verify-full), its backend path
    rc, out, err = psql(ci(port, "beta.test", beta_ca), SERVER_ADDR)
    assert rc == 0 and out.strip() == "127.0.0.1", err
    rc, out, err = psql(ci(port, "BETA-alias.test", beta_ca), SERVER_ADDR)  # names: any case
    assert rc == 0 and out.strip() == "127.0.0.1", err
    rc, out, err = psql(ci(port, "alpha.test", alpha_ca), SERVER_ADDR)
    assert rc == 0 and out.strip() == "socket", err

    # a wildcard endpoint takes one label more (and verify-full accepts its certificate)
    wild_ca = download_ca(dbtls, "wild", tmp_dir, "wild-ca.pem")
    rc, out, err = psql(ci(port, "db7.wild.test", wild_ca), SERVER_ADDR)
    assert rc == 0 and out.strip() == "127.0.0.1", err
    assert "CN = *.wild.test" not in s_client(port, "a.b.wild.test").stdout

    # no server name (an IP address as host, sslsni=0), plaintext, an unknown name: the first
    rc, out, err = psql(f"host=127.0.0.1 port={port} user=trustuser dbname=app sslmode=require",
                        SERVER_ADDR)
    assert rc == 0 and out.strip() == "socket", err
    rc, out, err = psql(ci(port, "beta.test", beta_ca, sslmode="require", sslsni=0), SERVER_ADDR)
    assert rc == 0 and out.strip() == "socket", err
    rc, out, err = psql(ci(port, "beta.test", sslmode="disable"), SERVER_ADDR)
    assert rc == 0 and out.strip() == "socket", err
    rc, out, err = psql(ci(port, "gamma.test", alpha_ca), SERVER_ADDR)
    assert rc != 0 and ('server certificate for "alpha.test" does not match host name '
                        '"gamma.test"') in err, err

    # beta's own TLS versions; alpha's are its own
    cp = s_client(port, "beta.test", "-tls1_2")
    assert "BEGIN CERTIFICATE" not in cp.stdout, cp.stdout
    assert "alert protocol version" in cp.stderr, cp.stderr
    assert "BEGIN CERTIFICATE" in s_client(port, "alpha.test", "-tls1_2").stdout
    assert "CN = beta.test" in s_client(port, "beta.test", "-tls1_3").stdout
    # and its own cipher lists: TLS 1.3 suites (beta), TLS 1.2 ciphers and versions (delta)
    if bssl:
        out = s_client(port, "alpha.test").stdout
        assert re.search(r"Cipher is TLS_AES_(128|256)_GCM_SHA(256|384)\b", out), out
    else:
        assert "TLS_CHACHA20_POLY1305_SHA256" in s_client(port, "beta.test").stdout
        assert "TLS_AES_256_GCM_SHA384" in s_client(port, "alpha.test").stdout
    out = s_client(port, "delta.test").stdout
    assert "Cipher is ECDHE-ECDSA-CHACHA20-POLY1305" in out and "TLSv1.2" in out, out
    out = s_client(port, "alpha.test", "-tls1_2").stdout
    # HIGH in each library's own order: OpenSSL's strongest first, BoringSSL's AES-128 first
    want = r"ECDHE-ECDSA-AES(128|256)-GCM-SHA(256|384)" if bssl else "ECDHE-ECDSA-AES256-GCM-SHA384"
    assert re.search(rf"Cipher is {want}\b", out), out
    d.wait_log("unsupported protocol")
    log = d.log()
    assert re.search(r'instance "beta": TLS handshake with client 127\.0\.0\.1 port \d+ failed: '
                     r'TLS handshake failed: unsupported protocol', log), log

    # direct TLS (PostgreSQL 17 sslnegotiation=direct): the ClientHello is the first thing
    cp = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername",
                         "beta.test", "-alpn", "postgresql"], input="", capture_output=True,
                        text=True, timeout=20)
    assert "CN = beta.test" in cp.stdout and "ALPN protocol: postgresql" in cp.stdout, cp.stdout

    # status and cancel follow the chosen instance
    with psycopg.connect(ci(port, "beta.test", beta_ca, application_name="sni-app")) as c:
        rows = [r for r in dbtls.json("connections")["connections"]
                if r["application_name"] == "sni-app"]
        assert [r["instance"] for r in rows] == ["beta"], rows
        assert rows[0]["version"] == "TLSv1.3" and rows[0]["server_name"] == "beta.test", rows
        assert [r["application_name"] for r in
                dbtls.json("connections", "--instance", "beta")["connections"]] == ["sni-app"]
        assert dbtls.json("connections", "--instance", "alpha")["connections"] == []
        assert_cancel(c)
        c.rollback()
        assert c.execute(SERVER_ADDR).fetchone()[0] == "127.0.0.1"
    d.wait_log("cancel request for backend pid")
    assert re.search(r'instance "beta": cancel request for backend pid \d+ forwarded', d.log())


def cert_instances(dbtls, dbtlsd, pg_server, state_dir, tmp_dir, port, psql, query):
    """two_instances with beta's rules "hostssl all all all cert", a client certificate
    "certuser" of each instance in tmp_dir/<instance>, dbtlsd started. Returns (d, alpha_ca,
    beta_ca, login): login(inst, host, ca) runs query as certuser with inst's certificate."""
    hba = os.path.join(tmp_dir, "beta-hba.conf")
    write(hba, "hostssl all all all cert\n")
    alpha_ca, beta_ca = two_instances(dbtls, pg_server, tmp_dir, port,
                                      beta_extra=("--hba-file", hba))
    for inst in ("alpha", "beta"):
        dbtls("ssl", "client-certs", "create", "certuser", "--instance", inst,
              "--out-dir", os.path.join(tmp_dir, inst))
    d = dbtlsd.start(state_dir)

    def login(inst, host, ca):
        return psql(ci(port, host, ca, user="certuser",
                       sslcert=os.path.join(tmp_dir, inst, "client-cert.pem"),
                       sslkey=os.path.join(tmp_dir, inst, "client-key.pem")), query)
    return d, alpha_ca, beta_ca, login


def test_each_instance_trusts_its_own_client_ca(pg_server, dbtls, dbtlsd, state_dir, tmp_dir,
                                               free_port, psql):
    port = free_port()
    d, alpha_ca, beta_ca, login = cert_instances(
        dbtls, dbtlsd, pg_server, state_dir, tmp_dir, port, psql,
        "SELECT current_user || ' ' || coalesce(host(inet_server_addr()), 'socket')")

    rc, out, err = login("beta", "beta.test", beta_ca)
    assert rc == 0 and out.strip() == "certuser 127.0.0.1", err
    # alpha's client certificate is not signed by beta's client CA: beta refuses it
    rc, out, err = login("alpha", "beta.test", beta_ca)
    assert rc != 0, out
    assert "alert unknown ca" in err, err
    d.wait_log("certificate verify failed")  # logged as the client hangs up: may come later
    assert re.search(r'instance "beta": TLS handshake with client 127\.0\.0\.1 port \d+ failed: '
                     r'.*certificate verify failed.*certificate subject: CN=certuser', d.log()
                     ), d.log()
    # without a client certificate beta's `cert` rule says PostgreSQL's words
    rc, out, err = psql(ci(port, "beta.test", beta_ca, user="certuser"), "SELECT 1")
    assert rc != 0 and "connection requires a valid client certificate" in err, err
    # and alpha (no rules: ALLOW -> backend) takes its own certificate and plain logins
    rc, out, err = login("alpha", "alpha.test", alpha_ca)
    assert rc == 0 and out.strip() == "certuser socket", err


def test_sharing_rules(pg_server, dbtls, dbtlsd, state_dir, tmp_dir, free_port, psql):
    port = free_port()
    listen = f"127.0.0.1:{port}"
    two_instances(dbtls, pg_server, tmp_dir, port)
    before = store_snapshot(state_dir)
    base = ["--listen", listen, "--backend", pg_server.socket_path]

    cp = dbtls.fail("instances", "create", "my1", "--engine", "mariadb", *base,
                    "--endpoint", "my1.test")
    assert (f'listen address {listen} is already used by instance "alpha" (only PostgreSQL '
            "instances can share a listen address") in cp.stderr, cp.stderr
    cp = dbtls.fail("instances", "create", "gamma", "--engine", "postgres", *base,
                    "--endpoint", "gamma.test,Beta.test")
    assert (f'endpoint Beta.test is already an endpoint of instance "beta" on listen address '
            f"{listen}") in cp.stderr, cp.stderr
    cp = dbtls.fail("instances", "create", "gamma", "--engine", "postgres", *base,
                    "--endpoint", "gamma.test", "--groups", "P-256")
    assert f'listen address {listen} is shared with instance "alpha", whose TLS groups' \
        in cp.stderr, cp.stderr
    cp = dbtls.fail("instances", "patch", "beta", "--endpoint", "alpha.test")
    assert 'endpoint alpha.test is already an endpoint of instance "alpha"' in cp.stderr
    assert_unchanged(before, state_dir)

    # IP endpoints may repeat (no client sends an IP address as server name)
    dbtls("instances", "create", "gamma", "--engine", "postgres", *base,
          "--endpoint", "gamma.test,127.0.0.1")
    dbtls("instances", "patch", "alpha", "--endpoint", "alpha.test,127.0.0.1")
    # moving an instance off the address and back
    other = free_port()
    dbtls("instances", "patch", "gamma", "--listen", f"127.0.0.1:{other}")
    d = dbtlsd.start(state_dir)
    gamma_ca = download_ca(dbtls, "gamma", tmp_dir, "gamma-ca.pem")
    rc, out, err = psql(ci(other, "gamma.test", gamma_ca), "SELECT 1")
    assert rc == 0 and out.strip() == "1", err
    dbtls("instances", "patch", "gamma", "--listen", listen)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        rc, out, err = psql(ci(port, "gamma.test", gamma_ca), "SELECT 1")
        if rc == 0:
            break
        time.sleep(0.3)
    assert rc == 0 and out.strip() == "1", err + d.log()


def test_schema_4_store_migrates_keeping_every_row(pg_server, dbtls, state_dir, tmp_dir,
                                                   free_port):
    """Migration 5 rebuilds the instances table (SQLite cannot drop UNIQUE otherwise); rows
    that reference it (certificates, slots, revocations) must survive: the rebuild runs with
    foreign keys off, or DROP TABLE would cascade into them."""
    use_template(dbtls)
    listen = f"127.0.0.1:{free_port()}"
    pg_instance(dbtls, "alpha", listen, pg_server.socket_path, "alpha.test")
    dbtls("ssl", "client-certs", "create", "app1", "--instance", "alpha",
          "--out-dir", os.path.join(tmp_dir, "app1"))
    dbtls("ssl", "client-certs", "create", "gone", "--instance", "alpha",
          "--out-dir", os.path.join(tmp_dir, "gone"))
    dbtls("ssl", "client-certs", "delete", "gone", "--instance", "alpha")
    db = os.path.join(state_dir, "dbtls.db")
    con = sqlite3.connect(db)
    counts = {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
              for t in ("instances", "server_slots", "client_certs", "revocations")}
    assert counts["client_certs"] == 1 and counts["revocations"] == 1, counts
    # back to what dbtls wrote at schema 4: UNIQUE (listen)
    sql = con.execute("SELECT sql FROM sqlite_master WHERE name = 'instances'").fetchone()[0]
    assert "listen TEXT NOT NULL," in sql, sql
    old = re.sub(r'^CREATE TABLE "?instances"?', "CREATE TABLE old", sql).replace(
        "listen TEXT NOT NULL,", "listen TEXT NOT NULL UNIQUE,")
    con.executescript(
        f"PRAGMA foreign_keys = OFF; BEGIN; {old}; INSERT INTO old SELECT * FROM instances;"
        "DROP TABLE instances; ALTER TABLE old RENAME TO instances; PRAGMA user_version = 4;"
        "COMMIT;")
    con.close()
    # the first command that writes migrates
    dbtls("instances", "list")
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA user_version").fetchone()[0] >= 5
    assert {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in counts} == counts
    assert con.execute("PRAGMA foreign_key_check").fetchall() == []
    con.close()
    assert [c["name"] for c in dbtls.json("ssl", "client-certs", "list", "--instance", "alpha")
            ] == ["app1"]
    pg_instance(dbtls, "beta", listen, pg_server.socket_path, "beta.test")


def test_connections_without_a_name_can_be_refused(pg_server, dbtls, dbtlsd, state_dir, tmp_dir,
                                                   free_port, psql):
    """The documented way to refuse connections that name no instance: create first on the
    address an instance whose access rules reject everything; its backend is never asked."""
    use_template(dbtls)
    port = free_port()
    listen = f"127.0.0.1:{port}"
    reject = os.path.join(tmp_dir, "reject.conf")
    write(reject, "host all all all reject\n")
    pg_instance(dbtls, "nobody", listen, "127.0.0.1:1", "nobody.invalid", "--engine-version", "15",
                "--hba-file", reject)
    pg_instance(dbtls, "beta", listen, pg_server.socket_path, "beta.test", "--engine-version",
                "15")
    beta_ca = download_ca(dbtls, "beta", tmp_dir, "beta-ca.pem")
    dbtlsd.start(state_dir)
    rc, out, err = psql(ci(port, "beta.test", beta_ca), "SELECT 1")
    assert rc == 0 and out.strip() == "1", err
    for conninfo, how in ((f"host=127.0.0.1 port={port} user=trustuser dbname=app "
                           "sslmode=require", "SSL encryption"),
                          (ci(port, "beta.test", sslmode="disable"), "no encryption")):
        rc, out, err = psql(conninfo, "SELECT 1")
        assert rc != 0 and ('pg_hba.conf rejects connection for host "127.0.0.1", user '
                            f'"trustuser", database "app", {how}') in err, err


REBUILT_RE = re.compile(r"configuration generation \d+ active \((\d+) instances, (\d+) rebuilt in "
                        r"\d+ ms, change counter (\d+)\)")


def rebuilt_since(d, start):
    """(instances, rebuilt) of the last generation logged after offset start."""
    found = REBUILT_RE.findall(d.log()[start:])
    assert found, d.log()[start:]
    return int(found[-1][0]), int(found[-1][1])


def test_a_change_rebuilds_only_its_instance(pg_server, dbtls, dbtlsd, state_dir, tmp_dir,
                                             free_port, psql):
    """A fleet behind one dbtlsd: a revocation or a rotation of one instance decrypts, signs and
    builds the TLS context of that instance only (the others keep theirs, serving on); SIGHUP
    builds all afresh. Every outcome is checked with real clients, since a context kept when it
    should not be would serve a revoked certificate or the old server certificate."""
    port = free_port()
    d, alpha_ca, beta_ca, login = cert_instances(dbtls, dbtlsd, pg_server, state_dir, tmp_dir,
                                                 port, psql, "SELECT 1")
    assert rebuilt_since(d, 0) == (2, 2)

    def served(host):
        return sha1_of(s_client(port, host).stdout)

    for inst in ("alpha", "beta"):
        rc, out, err = login(inst, f"{inst}.test", alpha_ca if inst == "alpha" else beta_ca)
        assert rc == 0, err
    alpha_sha1 = served("alpha.test")

    # beta's certificate revoked: beta rebuilt (its CRL), alpha kept and still serving
    start = d.log_size()
    dbtls("ssl", "client-certs", "delete", "certuser", "--instance", "beta")
    d.wait_reload(start)
    assert rebuilt_since(d, start) == (2, 1)
    rc, out, err = login("beta", "beta.test", beta_ca)
    assert rc != 0 and "revoked" in err, err
    rc, out, err = login("alpha", "alpha.test", alpha_ca)
    assert rc == 0, err
    assert served("alpha.test") == alpha_sha1

    # alpha rotated: alpha rebuilt and serving the new certificate; beta kept
    dbtls("ssl", "server-certs", "create", "--instance", "alpha")
    new_sha1 = slots(dbtls, "alpha")["upcoming"]["sha1Fingerprint"]
    start = d.log_size()
    dbtls("ssl", "server-certs", "rotate", "--instance", "alpha")
    d.wait_reload(start)
    assert rebuilt_since(d, start) == (2, 1)
    assert served("alpha.test") == new_sha1 != alpha_sha1
    alpha_ca = download_ca(dbtls, "alpha", tmp_dir, "alpha-ca2.pem")
    rc, out, err = login("alpha", "alpha.test", alpha_ca)
    assert rc == 0, err

    # a policy change (TLS versions) is a rebuild too; an ssl-mode change only swaps the rules
    start = d.log_size()
    dbtls("instances", "patch", "alpha", "--tls-min", "TLSv1.3")
    d.wait_reload(start)
    assert rebuilt_since(d, start) == (2, 1)
    cp = s_client(port, "alpha.test", "-tls1_2")
    assert "alert protocol version" in cp.stderr, cp.stderr
    start = d.log_size()
    dbtls("instances", "patch", "alpha", "--ssl-mode", "ENCRYPTED_ONLY")
    d.wait_reload(start)
    assert rebuilt_since(d, start) == (2, 0)
    rc, out, err = psql(ci(port, "alpha.test", sslmode="disable"), "SELECT 1")
    assert rc != 0 and "no encryption" in err, err

    # SIGHUP: everything read and built afresh
    start = d.log_size()
    d.reload()
    d.wait_log(" active (", start=start)
    assert rebuilt_since(d, start) == (2, 2)
    assert served("alpha.test") == new_sha1
