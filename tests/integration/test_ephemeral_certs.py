"""Ephemeral client certificates (Cloud SQL's generateEphemeralCert; reference §6.10 "short-lived
certs without a cap"): `dbtls ssl client-certs create-ephemeral CN --public-key FILE` and
`POST /v1/instances/NAME:generateEphemeralCert` certify a public key the client generated and
keeps (or a certificate request), for an hour by default, under the instance's client CA. dbtls
never sees the private key; the certificate is not listed and does not count against the limit;
an event records it. psql logs in with it through dbtlsd (`cert` method, real PostgreSQL 15).
Bad keys, curves, sizes, requests and validities are refused with one line and change nothing.
"""
import base64
import os
import subprocess
import time

from api_client import unix_api
from cli_helpers import assert_unchanged, openssl, store_snapshot, use_template, x509_text

HBA = "hostssl all all all cert\n"


def keypair(tmp_dir, name, *genpkey):
    """A client key made with openssl (never given to dbtls) and its public key PEM."""
    key = os.path.join(tmp_dir, f"{name}.key")
    openssl("genpkey", *genpkey, "-out", key)
    os.chmod(key, 0o600)
    pub = os.path.join(tmp_dir, f"{name}.pub")
    openssl("pkey", "-in", key, "-pubout", "-out", pub)
    return key, pub


def make_instance(dbtls, tmp_dir, free_port, pg_server):
    use_template(dbtls)
    hba = os.path.join(tmp_dir, "hba.conf")
    with open(hba, "w") as f:
        f.write(HBA)
    port = free_port()
    dbtls("instances", "create", "pg1", "--engine", "postgres", "--engine-version", "15",
          "--listen", f"127.0.0.1:{port}", "--backend", pg_server.socket_path,
          "--endpoint", "localhost", "--ssl-mode", "ENCRYPTED_ONLY", "--hba-file", hba)
    return port


def login(psql, port, out, key, user="certuser"):
    ci = (f"host=localhost port={port} user={user} dbname=app sslmode=verify-full "
          f"sslrootcert={out}/server-ca.pem sslcert={out}/client-cert.pem sslkey={key}")
    return psql(ci, "SELECT current_user")


def test_ephemeral_cert_logs_in_and_is_not_listed(pg_server, dbtls, dbtlsd, state_dir, tmp_dir,
                                                 free_port, psql):
    port = make_instance(dbtls, tmp_dir, free_port, pg_server)
    d = dbtlsd.start(state_dir)
    key, pub = keypair(tmp_dir, "ec", "-algorithm", "EC", "-pkeyopt",
                       "ec_paramgen_curve:P-256")
    out = os.path.join(tmp_dir, "out")
    t0 = time.time()
    cp = dbtls("ssl", "client-certs", "create-ephemeral", "certuser", "--instance", "pg1",
               "--public-key", pub, "--out-dir", out)
    assert "Issued an ephemeral client certificate for [certuser]" in cp.stdout, cp.stdout
    assert sorted(os.listdir(out)) == ["client-cert.pem", "server-ca.pem"]  # no key
    cert = open(os.path.join(out, "client-cert.pem")).read()
    text = x509_text(cert)
    assert "CN = certuser" in text and "TLS Web Client Authentication" in text
    # it certifies the client's own key
    assert openssl("x509", "-noout", "-pubkey", "-in", os.path.join(out, "client-cert.pem")
                   ).stdout == open(pub, "rb").read()
    end = openssl("x509", "-noout", "-enddate", "-in", os.path.join(out, "client-cert.pem")
                  ).stdout.decode().strip().split("=", 1)[1]
    left = time.mktime(time.strptime(end, "%b %d %H:%M:%S %Y GMT")) - time.mktime(
        time.gmtime(t0))
    assert 3500 < left < 3700, end  # one hour by default

    rc, o, err = login(psql, port, out, key)
    assert rc == 0 and o.strip() == "certuser", err
    # the CN is the user for `cert`: another user is refused with PostgreSQL's text
    rc, o, err = login(psql, port, out, key, user="alice")
    assert rc != 0 and 'certificate authentication failed for user "alice"' in err, err

    # not listed, not counted; the event is the record
    assert dbtls.json("ssl", "client-certs", "list", "--instance", "pg1") == []
    assert dbtls.json("instances", "describe", "pg1")["clientCertCount"] == 0
    ev = [e for e in dbtls.json("events", "list") if e["action"] == "client-cert.ephemeral"]
    assert len(ev) == 1 and ev[0]["object"] == "instance/pg1/client-cert/certuser"
    assert "serial=" in ev[0]["detail"] and "expires=" in ev[0]["detail"]

    # a certificate request (RSA), shorter validity, JSON output
    rsa_key = os.path.join(tmp_dir, "rsa.key")
    openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", rsa_key)
    csr = os.path.join(tmp_dir, "req.csr")
    openssl("req", "-new", "-key", rsa_key, "-subj", "/CN=ignored", "-out", csr)
    out2 = os.path.join(tmp_dir, "out2")
    j = dbtls.json("ssl", "client-certs", "create-ephemeral", "certuser", "--instance", "pg1",
                   "--public-key", csr, "--validity", "120", "--out-dir", out2)
    assert j["commonName"] == "certuser" and j["files"]["cert"].endswith("client-cert.pem"), j
    assert "privateKey" not in j and "serverCaCert" not in j
    rc, o, err = login(psql, port, out2, rsa_key)
    assert rc == 0 and o.strip() == "certuser", err
    d.stop()


def test_bad_public_keys_are_refused(dbtls, state_dir, tmp_dir):
    use_template(dbtls)
    dbtls("instances", "create", "pg1", "--engine", "postgres", "--listen", "127.0.0.1:5999",
          "--backend", "127.0.0.1:5432", "--endpoint", "localhost")
    before = store_snapshot(state_dir)
    out = os.path.join(tmp_dir, "out")

    def refused(src, want, rc=1, name="certuser", instance="pg1", extra=()):
        cp = dbtls.fail("ssl", "client-certs", "create-ephemeral", name, "--instance", instance,
                        "--public-key", src, "--out-dir", out, *extra, rc=rc)
        assert want in cp.stderr, cp.stderr
        assert not os.path.exists(out)
        assert_unchanged(before, state_dir)

    key, pub = keypair(tmp_dir, "ok", "-algorithm", "EC", "-pkeyopt",
                       "ec_paramgen_curve:P-256")
    refused(key, "not a PEM public key")  # the private key: never wanted
    _, small = keypair(tmp_dir, "small", "-algorithm", "RSA", "-pkeyopt",
                       "rsa_keygen_bits:1024")
    refused(small, "RSA key of 1024 bits is not accepted (2048 to 8192)")
    _, k1 = keypair(tmp_dir, "k1", "-algorithm", "EC", "-pkeyopt",
                    "ec_paramgen_curve:secp256k1")
    refused(k1, 'curve "secp256k1" is not accepted')
    garbage = os.path.join(tmp_dir, "garbage.pem")
    with open(garbage, "w") as f:
        f.write("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
    refused(garbage, "cannot parse the public key PEM")
    # a request whose signature does not verify: its public key swapped for another one
    csr = os.path.join(tmp_dir, "req.csr")
    openssl("req", "-new", "-key", key, "-subj", "/CN=x", "-outform", "DER", "-out", csr)
    other_key, _ = keypair(tmp_dir, "other", "-algorithm", "EC", "-pkeyopt",
                           "ec_paramgen_curve:P-256")

    def spki(k):
        return openssl("pkey", "-in", k, "-pubout", "-outform", "DER").stdout

    der = open(csr, "rb").read()
    assert spki(key) in der and len(spki(key)) == len(spki(other_key))
    bad = os.path.join(tmp_dir, "bad.csr")
    with open(bad, "w") as f:
        b64 = base64.encodebytes(der.replace(spki(key), spki(other_key))).decode()
        f.write(f"-----BEGIN CERTIFICATE REQUEST-----\n{b64}-----END CERTIFICATE REQUEST-----\n")
    refused(bad, "signature does not verify")
    refused(pub, 'instance "nope" does not exist', instance="nope")
    refused(pub, "name", name="bad/name")
    refused(pub, "--validity", rc=2, extra=("--validity", "30"))
    refused(pub, "--validity", rc=2, extra=("--validity", "90000"))
    refused(os.path.join(tmp_dir, "missing.pem"), "cannot read --public-key")


def test_admin_api_generate_ephemeral_cert(dbtls, dbtlsd, state_dir, tmp_dir):
    use_template(dbtls)
    dbtls("instances", "create", "pg1", "--engine", "postgres", "--listen", "127.0.0.1:5999",
          "--backend", "127.0.0.1:5432", "--endpoint", "localhost")
    d = dbtlsd.start(state_dir)
    api = unix_api(d.admin_socket)
    _, pub = keypair(tmp_dir, "ed", "-algorithm", "ED25519")
    r = api.post("/v1/instances/pg1:generateEphemeralCert",
                 {"commonName": "svc", "publicKey": open(pub).read(), "validitySeconds": 600})
    assert r.status == 201, r.body
    j = r.json()
    assert j["commonName"] == "svc" and "privateKey" not in j
    assert "BEGIN CERTIFICATE" in j["cert"] and "BEGIN CERTIFICATE" in j["serverCaCert"]
    assert "ED25519" in x509_text(j["cert"]).upper()
    # bad input: the API's 400 with the same reason; unknown fields and instances
    r = api.post("/v1/instances/pg1:generateEphemeralCert",
                 {"commonName": "svc", "publicKey": "nope"})
    assert r.status == 400 and "not a PEM public key" in r.error["message"], r.body
    r = api.post("/v1/instances/pg1:generateEphemeralCert", {"commonName": "svc"})
    assert r.status == 400 and "publicKey" in r.error["message"], r.body
    r = api.post("/v1/instances/pg1:generateEphemeralCert",
                 {"commonName": "svc", "publicKey": open(pub).read(), "validitySeconds": 10})
    assert r.status == 400, r.body
    r = api.post("/v1/instances/nope:generateEphemeralCert",
                 {"commonName": "svc", "publicKey": open(pub).read()})
    assert r.status == 404, r.body
    r = api.get("/v1/instances/pg1:generateEphemeralCert")
    assert r.status == 405
    assert dbtls.json("ssl", "client-certs", "list", "--instance", "pg1") == []
    d.stop()


def test_remote_cli_create_ephemeral(two_admins, dbtls, dbtls_bin, tmp_dir):
    """`dbtls --server https://… ssl client-certs create-ephemeral`: the same files, through the
    admin API's mutual-TLS listener (only the public key travels)."""
    _d, port, ops, _dev = two_admins
    dbtls("instances", "create", "pg1", "--engine", "postgres", "--listen", "127.0.0.1:5999",
          "--backend", "127.0.0.1:5432", "--endpoint", "localhost")
    _, pub = keypair(tmp_dir, "ec", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384")
    out = os.path.join(tmp_dir, "remote-out")

    def remote(*args):
        return subprocess.run([dbtls_bin, "--state-dir", os.path.join(tmp_dir, "none"),
                               "--server", f"https://127.0.0.1:{port}", "--admin-cert",
                               ops["cert"], "--admin-key", ops["key"], "--admin-ca", ops["ca"],
                               *args], capture_output=True, text=True, timeout=60)

    cp = remote("ssl", "client-certs", "create-ephemeral", "svc", "--instance", "pg1",
                "--public-key", pub, "--validity", "300", "--out-dir", out)
    assert cp.returncode == 0, cp.stderr
    assert "Issued an ephemeral client certificate for [svc]" in cp.stdout
    assert sorted(os.listdir(out)) == ["client-cert.pem", "server-ca.pem"]
    assert "CN = svc" in x509_text(open(os.path.join(out, "client-cert.pem")).read())
    cp = remote("ssl", "client-certs", "create-ephemeral", "svc", "--instance", "pg1",
                "--public-key", pub, "--out-dir", out)  # the files exist now
    assert cp.returncode == 1 and "already exists" in cp.stderr, cp.stderr
    cp = remote("ssl", "client-certs", "create-ephemeral", "svc", "--instance", "pg1",
                "--public-key", ops["key"], "--out-dir", os.path.join(tmp_dir, "o2"))
    assert cp.returncode == 1 and "not a PEM public key" in cp.stderr, cp.stderr
    assert not os.path.exists(os.path.join(tmp_dir, "o2"))
