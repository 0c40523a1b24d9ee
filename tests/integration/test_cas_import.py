"""`dbtls cas import`: a CA of the operator's own PKI (made here with the openssl command line, as
a corporate PKI would hand it over: a P-384 root and a P-256 issuing CA under it) issues the
server certificates of instances that name it, like Cloud SQL's customer-managed CA. Clients that
trust the corporate root alone connect with verify-full through dbtlsd to a real PostgreSQL 15,
across a rotation; what cannot work is refused at import with one line naming why."""
import os
import re
import subprocess

import psycopg

from api_client import samples, scrape
from cli_helpers import (assert_unchanged, openssl, openssl_ca_under_root, pg_instance,
                         store_snapshot, use_template)


def corp_pki(d):
    """root.pem/root.key (self-signed CA), db.pem/db.key (a CA under it), leaf.pem/leaf.key (not
    a CA), rsa3072.pem/.key (a self-signed CA with a key type dbtls does not sign with)."""
    def f(name):
        return os.path.join(d, name)

    with open(f("ca.ext"), "w") as out:
        out.write("basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n")
    with open(f("leaf.ext"), "w") as out:
        out.write("basicConstraints=critical,CA:FALSE\nextendedKeyUsage=serverAuth\n")
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-384", "-nodes",
            "-keyout", f("root.key"), "-out", f("root.pem"), "-days", "3650", "-subj",
            "/O=Example Corp/CN=Example Corp Root CA", "-addext",
            "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    for name, cn, ext in (("db", "Example Corp Databases CA", "ca.ext"),
                          ("leaf", "not-a-ca.example.com", "leaf.ext")):
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", f(f"{name}.key"), "-out", f(f"{name}.csr"), "-subj",
                f"/O=Example Corp/CN={cn}")
        openssl("x509", "-req", "-in", f(f"{name}.csr"), "-CA", f("root.pem"), "-CAkey",
                f("root.key"), "-CAcreateserial", "-days", "1825", "-out", f(f"{name}.pem"),
                "-extfile", f(ext))
    openssl("req", "-x509", "-newkey", "rsa:3072", "-nodes", "-keyout", f("rsa3072.key"), "-out",
            f("rsa3072.pem"), "-days", "3650", "-subj", "/CN=RSA 3072 CA", "-addext",
            "basicConstraints=critical,CA:TRUE")
    for k in ("root", "db", "leaf", "rsa3072"):
        os.chmod(f(f"{k}.key"), 0o600)
    return f


def test_imported_ca_issues_and_clients_trust_the_corporate_root(
        pg_server, dbtls, dbtlsd, state_dir, tmp_dir, free_port):
    use_template(dbtls)
    f = corp_pki(tmp_dir)
    out = dbtls.json("cas", "import", "corp-db", "--cert", f("db.pem"), "--key", f("db.key"),
                     "--chain", f("root.pem"))
    assert out == {"certificateIdentifier": "corp-db"}
    cas = {c["certificateIdentifier"]: c for c in dbtls.json("cas", "list")}
    assert cas["corp-db"]["certificateType"] == "imported CA", cas["corp-db"]
    assert cas["dbtls-ca-ecc384-g1"]["certificateType"] == "CA"
    events = dbtls.json("events", "list")
    assert any(e["action"] == "ca.import" and "ca=corp-db" in e["detail"] for e in events)

    port = free_port()
    pg_instance(dbtls, "pg1", f"127.0.0.1:{port}", f"127.0.0.1:{pg_server.port}",
                "db1.example.com", "--ca", "corp-db", "--ssl-mode", "ENCRYPTED_ONLY")
    cert = dbtls.json("instances", "describe", "pg1")["serverCert"]
    assert cert["issuer"] == "CN=Example Corp Databases CA,O=Example Corp", cert
    r = dbtls.fail("instances", "create", "pg2", "--engine", "postgres", "--listen",
                   f"127.0.0.1:{free_port()}", "--backend", "127.0.0.1:5432", "--endpoint",
                   "db2.example.com", "--ca", "corp-db", "--ca-mode", "per-instance")
    assert "CA corp-db is imported: it issues server certificates in shared mode only" in r.stderr
    # the bundles carry the imported CA and its root
    bundle = os.path.join(tmp_dir, "corp-bundle.pem")
    dbtls("bundle", "--ca", "corp-db", "--out", bundle)
    text = open(bundle).read()
    assert text.count("BEGIN CERTIFICATE") == 2 and open(f("root.pem")).read() in text

    d = dbtlsd.start(state_dir)
    # expiry gauges: the imported CA and its chain, which dbtls cannot renew, by their own kinds
    fams, _ = scrape(d)
    exp = {(x.labels["kind"], x.labels["name"]): x.labels["sha1"]
           for x in samples(fams, "dbtls_certificate_expiry_timestamp_seconds")
           if x.labels["kind"].startswith("imported") or x.labels["name"].startswith("corp")}
    assert exp == {("imported-ca", "corp-db"): cas["corp-db"]["thumbprint"],
                   ("imported-chain", "corp-db/1"): openssl(
                       "x509", "-in", f("root.pem"), "-noout", "-fingerprint", "-sha1"
                   ).stdout.decode().split("=")[1].strip().replace(":", "").lower()}, exp
    conninfo = (f"host=db1.example.com hostaddr=127.0.0.1 port={port} user=trustuser dbname=app "
                f"sslmode=verify-full sslrootcert={f('root.pem')} connect_timeout=5")
    with psycopg.connect(conninfo) as c:
        assert c.execute("SELECT 1").fetchone() == (1,)
        assert c.pgconn.ssl_in_use
        # a rotation under the imported CA: the open session goes on, a new one verifies too
        old = cert["sha1Fingerprint"]
        dbtls("ssl", "server-certs", "create", "--instance", "pg1")
        start = d.log_size()
        dbtls("ssl", "server-certs", "rotate", "--instance", "pg1")
        d.wait_reload(start)
        assert c.execute("SELECT 2").fetchone() == (2,)
    new = dbtls.json("instances", "describe", "pg1")["serverCert"]
    assert new["sha1Fingerprint"] != old and new["issuer"] == cert["issuer"]
    with psycopg.connect(conninfo) as c:
        assert c.execute("SELECT 3").fetchone() == (3,)

    # delete: refused while the CA issues for an instance, and for dbtls's own CAs
    r = dbtls.fail("cas", "delete", "corp-db")
    assert "CA corp-db still issues certificates of instances" in r.stderr
    r = dbtls.fail("cas", "delete", "dbtls-ca-ecc384-g1")
    assert "only imported CAs are deleted" in r.stderr
    dbtls("instances", "delete", "pg1")
    dbtls("cas", "delete", "corp-db")
    assert "corp-db" not in {c["certificateIdentifier"] for c in dbtls.json("cas", "list")}
    r = dbtls.fail("bundle", "--ca", "corp-db", "--out", bundle)
    assert 'unknown CA id "corp-db"' in r.stderr


def test_import_refuses_what_cannot_work(dbtls, tmp_dir):
    use_template(dbtls)
    f = corp_pki(tmp_dir)
    before = dbtls.json("cas", "list")

    def refused(*args, msg, rc=1):
        r = dbtls.fail("cas", "import", *args, rc=rc)
        assert msg in r.stderr, r.stderr

    refused("corp", "--cert", f("leaf.pem"), "--key", f("leaf.key"), "--chain", f("root.pem"),
            msg="is not a CA: it has no basicConstraints CA:TRUE")
    refused("corp", "--cert", f("db.pem"), "--key", f("leaf.key"), "--chain", f("root.pem"),
            msg="the key does not belong to the CA certificate")
    refused("corp", "--cert", f("db.pem"), "--key", f("db.key"),
            msg="is not self-signed and --chain does not reach its root")
    refused("corp", "--cert", f("db.pem"), "--key", f("db.key"), "--chain", f("rsa3072.pem"),
            msg="the CA certificate does not chain to the root given")
    refused("corp", "--cert", f("rsa3072.pem"), "--key", f("rsa3072.key"),
            msg="the CA key is RSA-3072; dbtls signs with RSA-2048, RSA-4096, EC P-256 and "
                "EC P-384 keys")
    # a root that ends in 20 days under a CA that lasts 5 years (openssl does not clamp it):
    # clients verify the whole chain, so every server certificate would stop working with it
    short_root, short_ca, short_key = openssl_ca_under_root(
        tmp_dir, "short-", 20, 1825, "/CN=Short Root", "/CN=Corp DB CA")
    refused("corp", "--cert", short_ca, "--key", short_key, "--chain", short_root,
            msg="the chain's certificate (CN=Short Root) expires in less than 30 days")
    refused("Corp_DB", "--cert", f("root.pem"), "--key", f("root.key"),
            msg='CA id "Corp_DB" is not 3 to 63 lowercase letters')
    refused("dbtls-mine", "--cert", f("root.pem"), "--key", f("root.key"),
            msg='ids starting with "dbtls-" are dbtls\'s own')
    refused("corp", "--cert", f("root.pem"), "--key", f("root.key"), "--chain", f("db.key"),
            msg="the chain: no certificate found in PEM text")
    refused("corp", "--cert", f("root.key"), "--key", f("root.key"),
            msg="the CA certificate: no certificate found in PEM text")
    os.chmod(f("root.key"), 0o644)
    refused("corp", "--cert", f("root.pem"), "--key", f("root.key"),
            msg="has group or world access (mode 0644)")
    os.chmod(f("root.key"), 0o600)
    refused("corp", "--key", f("root.key"), msg="--cert", rc=2)
    r = dbtls.run("--server", "https://127.0.0.1:1", "--admin-cert", f("db.pem"), "--admin-key",
                  f("db.key"), "--admin-ca", f("root.pem"), "cas", "import", "corp", "--cert",
                  f("root.pem"), "--key", f("root.key"), rc=2)
    assert "is not available with --server; run it on the daemon's host" in r.stderr
    assert dbtls.json("cas", "list") == before  # nothing half-imported
    # a self-signed CA alone is fine; the same id twice is not
    dbtls("cas", "import", "corp-root", "--cert", f("root.pem"), "--key", f("root.key"))
    refused("corp-root", "--cert", f("root.pem"), "--key", f("root.key"),
            msg="CA corp-root already exists")
    refused("dbtls-ca-ecc384-g1", "--cert", f("root.pem"), "--key", f("root.key"),
            msg="dbtls's own")
    # the key is stored sealed: its PEM is nowhere in the store file
    key_b64 = open(f("root.key")).read().splitlines()[1]
    with open(os.path.join(dbtls.state_dir, "dbtls.db"), "rb") as db:
        assert key_b64.encode() not in db.read()


def served_chain(port):
    """The certificates (PEM, in order) the front serves on a PostgreSQL SSLRequest."""
    cp = subprocess.run(["openssl", "s_client", "-starttls", "postgres", "-connect",
                         f"127.0.0.1:{port}", "-servername", "db1.example.com", "-showcerts"],
                        input="", capture_output=True, text=True, timeout=20)
    return re.findall(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----\n",
                      cp.stdout, re.S)


def test_renewed_ca_keeps_serving_what_it_issued(pg_server, dbtls, dbtlsd, state_dir, tmp_dir,
                                                 free_port):
    """The corporate PKI re-issues its databases CA with the same name and key and a later end
    (what CAs nearing their end get): `dbtls cas renew` takes it in place. The server
    certificates it issued stay valid, the front serves them with the renewed CA from the next
    connection on (an open session goes on), no instance moves; what is not a renewal of that
    CA is refused with one line and nothing changed."""
    use_template(dbtls)
    f = corp_pki(tmp_dir)
    dbtls("cas", "import", "corp-db", "--cert", f("db.pem"), "--key", f("db.key"), "--chain",
          f("root.pem"))

    def sign(csr, out, days):
        openssl("x509", "-req", "-in", csr, "-CA", f("root.pem"), "-CAkey", f("root.key"),
                "-CAcreateserial", "-days", str(days), "-out", f(out), "-extfile", f("ca.ext"))
        return f(out)

    renewed = sign(f("db.csr"), "db-renewed.pem", 3650)  # same CSR: same subject and key
    shorter = sign(f("db.csr"), "db-shorter.pem", 400)
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
            f("other.key"), "-out", f("other-key.csr"), "-subj",
            "/O=Example Corp/CN=Example Corp Databases CA")
    other_key = sign(f("other-key.csr"), "db-other-key.pem", 3650)
    openssl("req", "-new", "-key", f("db.key"), "-out", f("other-name.csr"), "-subj",
            "/O=Example Corp/CN=Example Corp Other CA")
    other_name = sign(f("other-name.csr"), "db-other-name.pem", 3650)

    port = free_port()
    pg_instance(dbtls, "pg1", f"127.0.0.1:{port}", f"127.0.0.1:{pg_server.port}",
                "db1.example.com", "--ca", "corp-db", "--ssl-mode", "ENCRYPTED_ONLY")
    leaf = dbtls.json("instances", "describe", "pg1")["serverCert"]["sha1Fingerprint"]
    before = store_snapshot(state_dir)
    for cert, why in (
            (other_key, "holds another key than CA corp-db: a renewal keeps the CA's key"),
            (other_name, "the certificate's subject (CN=Example Corp Other CA,O=Example Corp) "
                         "is not CA corp-db's"),
            (shorter, "ends no later than CA corp-db's current one"),
            (f("db.pem"), "is CA corp-db's current one")):
        r = dbtls.fail("cas", "renew", "corp-db", "--cert", cert, "--chain", f("root.pem"))
        assert why in r.stderr, r.stderr
    r = dbtls.fail("cas", "renew", "corp-db", "--cert", renewed)  # no way to its root
    assert "--chain does not reach its root" in r.stderr, r.stderr
    r = dbtls.fail("cas", "renew", "dbtls-ca-ecc384-g1", "--cert", renewed)
    assert "only imported CAs are renewed" in r.stderr
    assert_unchanged(before, state_dir)

    d = dbtlsd.start(state_dir)
    old_ca = open(f("db.pem")).read()
    assert served_chain(port)[1:] == [old_ca, open(f("root.pem")).read()]
    conninfo = (f"host=db1.example.com hostaddr=127.0.0.1 port={port} user=trustuser dbname=app "
                f"sslmode=verify-full sslrootcert={f('root.pem')} connect_timeout=5")
    with psycopg.connect(conninfo) as c:
        start = d.log_size()
        out = dbtls.json("cas", "renew", "corp-db", "--cert", renewed, "--chain", f("root.pem"))
        d.wait_reload(start)
        assert c.execute("SELECT 1").fetchone() == (1,)
    end = openssl("x509", "-in", renewed, "-noout", "-enddate").stdout.decode()
    cas = {c["certificateIdentifier"]: c for c in dbtls.json("cas", "list")}
    assert out == {"certificateIdentifier": "corp-db",
                   "validTill": cas["corp-db"]["validTill"]}, out
    assert cas["corp-db"]["thumbprint"] == openssl(
        "x509", "-in", renewed, "-noout", "-fingerprint", "-sha1").stdout.decode().split(
        "=")[1].strip().replace(":", "").lower()
    assert out["validTill"][:4] == end.split()[-2], (out, end)
    # the same server certificate, now with the renewed CA
    assert dbtls.json("instances", "describe", "pg1")["serverCert"]["sha1Fingerprint"] == leaf
    assert served_chain(port)[1] == open(renewed).read()
    with psycopg.connect(conninfo) as c:
        assert c.execute("SELECT 2").fetchone() == (2,)
    ev = [e for e in dbtls.json("events", "list") if e["action"] == "ca.renew"]
    assert len(ev) == 1 and "ca=corp-db" in ev[0]["detail"], ev
    # the key opens under its new label: the CA issues again, now up to its new end
    dbtls("ssl", "server-certs", "create", "--instance", "pg1")
    start = d.log_size()
    dbtls("ssl", "server-certs", "rotate", "--instance", "pg1")
    d.wait_reload(start)
    with psycopg.connect(conninfo) as c:
        assert c.execute("SELECT 3").fetchone() == (3,)
    r = dbtls.fail("cas", "renew", "corp-db", "--cert", renewed, "--chain", f("root.pem"))
    assert "is CA corp-db's current one" in r.stderr
