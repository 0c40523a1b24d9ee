"""`dbtls instances ...`: create (every CA id, both CA modes, chains checked with openssl verify),
validation errors (exit 1, one line, store unchanged), list/describe/patch/delete,
reset-ssl-config and export."""
import os
import stat

import pytest

from cli_helpers import (CA_IDS, assert_chain_ok, assert_unchanged, create_instance, export,
                         global_bundle, next_port, openssl, san, slots, split_pem,
                         store_snapshot, use_template, verify, write, x509_text)


@pytest.fixture
def d(dbtls):
    return use_template(dbtls)


@pytest.mark.parametrize("mode", ["shared", "per-instance"])
@pytest.mark.parametrize("ca", CA_IDS)
def test_create_chain_verifies_for_every_ca_and_mode(d, tmp_dir, ca, mode):
    inst = create_instance(d, "db1", mode=mode, ca=ca,
                           endpoints=["db1.example.com", "db1.internal", "10.1.2.3", "::1"])
    assert inst["caMode"] == mode and inst["caId"] == ca
    leaf = assert_chain_ok(d, "db1", tmp_dir)
    names = san(leaf)
    assert "DNS:db1.example.com" in names and "DNS:db1.internal" in names
    assert "IP Address:10.1.2.3" in names and "IP Address:0:0:0:0:0:0:0:1" in names
    text = x509_text(leaf)
    assert "CN = db1.example.com" in text or "CN=db1.example.com" in text
    assert "TLS Web Server Authentication" in text
    assert "NIST CURVE: P-256" in text  # ECDSA P-256 leaf for fast handshakes
    assert "CA:FALSE" in text
    ca_pems = split_pem(open(os.path.join(tmp_dir, "server-ca.pem")).read())
    if mode == "per-instance":
        # Own self-signed server CA, not one of the shared roots.
        shared = {c["cert"] for c in d.json("cas", "list")}
        assert ca_pems and not (set(ca_pems) & shared)
        assert inst["serverCaCert"]["commonName"] != ca
    else:
        # The region intermediate signed it: verify fails with the root alone.
        root = next(c["cert"] for c in d.json("cas", "list") if c["certificateIdentifier"] == ca)
        root_file = write(os.path.join(tmp_dir, "root-only.pem"), root)
        ok, out = verify(root_file, leaf, tmp_dir)
        assert not ok, out
    # Leaf valid about a year in shared mode (per-instance: as long as its own CA, like
    # Cloud SQL's per-instance server certificates).
    years = (int(inst["serverCert"]["expirationTime"][:4]) -
             int(inst["serverCert"]["createTime"][:4]))
    assert years in ((0, 1) if mode == "shared" else (9, 10))


def test_describe_and_list(d):
    create_instance(d, "alpha", extra=["--ssl-mode", "ENCRYPTED_ONLY"])
    create_instance(d, "beta", engine="mysql", extra=["--engine-version", "8.0"])
    create_instance(d, "gamma", engine="mariadb")
    names = [i["name"] for i in d.json("instances", "list")]
    assert names == ["alpha", "beta", "gamma"]
    a = d.json("instances", "describe", "alpha")
    assert a["sslMode"] == "ENCRYPTED_ONLY"
    assert a["tlsMinVersion"] == "TLSv1.2" and a["tlsMaxVersion"] == "TLSv1.3"
    assert a["maxClientCerts"] == 10 and a["clientCertCount"] == 0
    assert a["endpoints"] == ["alpha.db.example.com", "127.0.0.1"]
    assert a["region"] == "default"
    for k in ("certSerialNumber", "cert", "commonName", "createTime", "expirationTime",
              "sha1Fingerprint"):
        assert a["serverCert"][k]
    b = d.json("instances", "describe", "beta")
    assert b["engine"] == "mysql" and b["engineVersion"] == "8.0"
    table = d("instances", "list").stdout.splitlines()
    assert table[0].split()[:3] == ["NAME", "ENGINE", "VERSION"] and len(table) == 4
    text = d("instances", "describe", "alpha").stdout
    assert "sslMode: ENCRYPTED_ONLY" in text and "sha1Fingerprint: " in text
    assert "BEGIN CERTIFICATE" not in text  # PEM only in JSON / download
    for out in (text, d("instances", "describe", "alpha", "--format", "json").stdout):
        assert "PRIVATE KEY" not in out
    cp = d.fail("instances", "describe", "nope")
    assert '"nope"' in cp.stderr


BAD_CREATES = [
    (["--engine", "oracle"], "oracle"),
    (["--listen", "not-an-address"], "not-an-address"),
    (["--backend", "host:99999"], "99999"),
    (["--endpoint", "bad_name!.example.com"], "bad_name!.example.com"),
    (["--ca", "dbtls-ca-nope"], "dbtls-ca-nope"),
    (["--tls-min", "TLSv1.3", "--tls-max", "TLSv1.2"], "TLSv1"),
    (["--ssl-mode", "SOMETIMES"], "SOMETIMES"),
    (["--ca-mode", "sideways"], "sideways"),
]


@pytest.mark.parametrize("override,needle", BAD_CREATES)
def test_create_validation_errors_change_nothing(d, override, needle):
    create_instance(d, "taken")
    before = store_snapshot(d.state_dir)
    opts = {"--engine": "postgres", "--listen": f"127.0.0.1:{next_port()}",
            "--backend": "127.0.0.1:5432", "--endpoint": "ok.example.com"}
    extra = []
    i = 0
    while i < len(override):
        if override[i] in opts:
            opts[override[i]] = override[i + 1]
        else:
            extra += override[i:i + 2]
        i += 2
    args = [x for kv in opts.items() for x in kv] + extra
    cp = d.fail("instances", "create", "newone", *args)
    assert needle in cp.stderr, cp.stderr
    assert cp.stderr.startswith("dbtls: ")
    assert_unchanged(before, d.state_dir)


def test_duplicate_name_refused(d):
    create_instance(d, "dup")
    before = store_snapshot(d.state_dir)
    cp = d.fail("instances", "create", "dup", "--engine", "postgres", "--listen",
                f"127.0.0.1:{next_port()}", "--backend", "/run/postgresql/.s.PGSQL.5432",
                "--endpoint", "dup2.example.com")
    assert '"dup"' in cp.stderr
    assert_unchanged(before, d.state_dir)


def test_rules_files_are_stored(d, tmp_dir):
    hba = write(os.path.join(tmp_dir, "hba.conf"),
                "hostssl all all 127.0.0.1/32 cert\nhost all all all reject\n")
    ident = write(os.path.join(tmp_dir, "ident.conf"), "m /^(.*)@example\\.com$ \\1\n")
    inst = create_instance(d, "rules", extra=["--hba-file", hba, "--ident-file", ident])
    assert inst["hbaRules"] == open(hba).read()
    assert inst["identMap"] == open(ident).read()
    cp = d.fail("instances", "patch", "rules", "--hba-file", os.path.join(tmp_dir, "missing"))
    assert "missing" in cp.stderr
    p = d.json("instances", "patch", "rules", "--hba-file", "")
    assert p["hbaRules"] in (None, "")


def test_patch_ssl_mode_and_tls(d):
    create_instance(d, "p1")
    p = d.json("instances", "patch", "p1", "--ssl-mode", "TRUSTED_CLIENT_CERTIFICATE_REQUIRED",
               "--tls-min", "TLSv1.3")
    assert p["sslMode"] == "TRUSTED_CLIENT_CERTIFICATE_REQUIRED"
    assert p["tlsMinVersion"] == "TLSv1.3"
    before = store_snapshot(d.state_dir)
    d.fail("instances", "patch", "p1", "--ssl-mode", "MAYBE")
    d.fail("instances", "patch", "p1", "--endpoint", "-bad-.example..com")
    assert_unchanged(before, d.state_dir)
    d.fail("instances", "patch", "missing", "--ssl-mode", "ENCRYPTED_ONLY")


def test_patch_ca_reissues_and_allows_rollback(d, tmp_dir):
    create_instance(d, "mv", ca="dbtls-ca-ecc384-g1")
    old = slots(d, "mv")["active"]
    p = d.json("instances", "patch", "mv", "--ca", "dbtls-ca-rsa2048-g1")
    assert p["caId"] == "dbtls-ca-rsa2048-g1"
    s = slots(d, "mv")
    assert s["previous"]["sha1Fingerprint"] == old["sha1Fingerprint"]
    assert s["active"]["sha1Fingerprint"] != old["sha1Fingerprint"]
    leaf = assert_chain_ok(d, "mv", tmp_dir)
    assert "sha256WithRSAEncryption" in x509_text(leaf)  # signed by the RSA-2048 intermediate
    d("ssl", "server-certs", "rollback", "--instance", "mv")
    assert slots(d, "mv")["active"]["sha1Fingerprint"] == old["sha1Fingerprint"]
    assert_chain_ok(d, "mv", tmp_dir)


def test_patch_endpoints_reissues_san(d, tmp_dir):
    create_instance(d, "ep")
    d("instances", "patch", "ep", "--endpoint", "new.example.com,192.0.2.7")
    leaf = assert_chain_ok(d, "ep", tmp_dir)
    assert san(leaf) == ["DNS:new.example.com", "IP Address:192.0.2.7"]


def test_ca_mode_per_instance_to_shared_only(d, tmp_dir):
    create_instance(d, "m", mode="per-instance")
    p = d.json("instances", "patch", "m", "--ca-mode", "shared")
    assert p["caMode"] == "shared"
    assert_chain_ok(d, "m", tmp_dir)
    before = store_snapshot(d.state_dir)
    cp = d.fail("instances", "patch", "m", "--ca-mode", "per-instance")
    assert "per-instance" in cp.stderr
    assert_unchanged(before, d.state_dir)


def test_new_region_gets_its_intermediates(d, tmp_dir):
    inst = create_instance(d, "eu", extra=["--region", "eu-west-1"])
    assert inst["region"] == "eu-west-1"
    assert_chain_ok(d, "eu", tmp_dir)
    cas = {c["certificateIdentifier"]: c for c in d.json("cas", "list")}
    assert "eu-west-1" in cas["dbtls-ca-ecc384-g1"]["regions"]
    path = global_bundle(d, tmp_dir, "--region", "eu-west-1", "--ca", "dbtls-ca-ecc384-g1")
    certs = split_pem(open(path).read())
    assert len(certs) == 2  # root + the eu-west-1 intermediate
    ok, out = verify(path, slots(d, "eu")["active"]["cert"], tmp_dir)
    assert ok, out


def test_delete(d, tmp_dir):
    create_instance(d, "gone")
    d("ssl", "client-certs", "create", "c1", "--instance", "gone", "--out-dir", tmp_dir)
    cp = d("instances", "delete", "gone")
    assert "Deleted instance [gone]" in cp.stderr
    assert d.json("instances", "list") == []
    d.fail("instances", "describe", "gone")
    d.fail("instances", "delete", "gone")
    d.fail("ssl", "client-certs", "list", "--instance", "gone")
    # The name is free again.
    create_instance(d, "gone")


def test_reset_ssl_config(d, tmp_dir):
    create_instance(d, "rs")
    out1 = os.path.join(tmp_dir, "c1")
    d("ssl", "client-certs", "create", "app", "--instance", "rs", "--out-dir", out1)
    d("ssl", "server-certs", "create", "--instance", "rs")
    d("ssl", "server-certs", "rotate", "--instance", "rs")
    before = export(d, "rs", tmp_dir, "before")
    old_leaf = slots(d, "rs")["active"]["sha1Fingerprint"]
    d("instances", "reset-ssl-config", "rs")
    s = slots(d, "rs")
    assert set(s) == {"active"} and s["active"]["sha1Fingerprint"] != old_leaf
    assert d.json("ssl", "client-certs", "list", "--instance", "rs") == []
    after = export(d, "rs", tmp_dir, "after")
    assert open(before["root.crt"]).read() != open(after["root.crt"]).read()
    # The old client certificate no longer verifies against the new client CA.
    ok, out = verify(after["root.crt"], open(os.path.join(out1, "client-cert.pem")).read(),
                     tmp_dir)
    assert not ok
    assert_chain_ok(d, "rs", tmp_dir)
    d.fail("instances", "reset-ssl-config", "nope")


def test_export_for_native_tls(d, tmp_dir):
    create_instance(d, "ex")
    files = export(d, "ex", tmp_dir, "native")
    assert stat.S_IMODE(os.stat(files["server.key"]).st_mode) == 0o600
    chain = split_pem(open(files["server.crt"]).read())
    assert len(chain) == 2  # leaf + intermediate, no root
    # The key belongs to the certificate.
    pub_cert = openssl("x509", "-noout", "-pubkey", "-in", files["server.crt"]).stdout
    pub_key = openssl("pkey", "-pubout", "-in", files["server.key"]).stdout
    assert pub_cert == pub_key
    openssl("crl", "-noout", "-in", files["root.crl"], "-CAfile", files["root.crt"])
    # Never overwrites.
    cp = d.fail("instances", "export", "ex", "--dir", os.path.dirname(files["server.crt"]))
    assert "already exists" in cp.stderr


def test_repeated_endpoint_options_are_joined(d, tmp_dir):
    d("instances", "create", "rep", "--engine", "postgres", "--listen",
      f"127.0.0.1:{next_port()}", "--backend", "127.0.0.1:5432",
      "--endpoint", "a.example.com", "--endpoint", "b.example.com,198.51.100.1")
    leaf = assert_chain_ok(d, "rep", tmp_dir)
    assert san(leaf) == ["DNS:a.example.com", "DNS:b.example.com", "IP Address:198.51.100.1"]
