"""`dbtls ssl client-certs ...`: the files psql takes (sslcert, sslkey 0600, sslrootcert) and
client.p12, verification against the instance's client CA with CRL checks before and after
delete, the limit, refusal to overwrite, describe without keys."""
import os
import stat

import pytest

from cli_helpers import (assert_unchanged, create_instance, download_ca, export, openssl,
                         sha1_of, serial_of, store_snapshot, use_template, verify, x509_text)


@pytest.fixture
def d(dbtls):
    use_template(dbtls)
    create_instance(dbtls, "db")
    return dbtls


def make(d, tmp_dir, name, *extra, sub=None):
    out = os.path.join(tmp_dir, sub or name)
    cp = d("ssl", "client-certs", "create", name, "--instance", "db", "--out-dir", out, *extra)
    return out, cp


def test_create_writes_the_three_files(d, tmp_dir):
    out, cp = make(d, tmp_dir, "app user")
    assert "Created client certificate [app user]" in cp.stdout
    assert sorted(os.listdir(out)) == ["client-cert.pem", "client-key.pem", "server-ca.pem"]
    mode = lambda f: stat.S_IMODE(os.stat(os.path.join(out, f)).st_mode)  # noqa: E731
    assert mode("client-key.pem") == 0o600
    cert = open(os.path.join(out, "client-cert.pem")).read()
    text = x509_text(cert)
    assert "CN = app user" in text or "CN=app user" in text
    assert "TLS Web Client Authentication" in text
    assert "CA:FALSE" in text
    # Key and certificate belong together.
    assert openssl("x509", "-noout", "-pubkey", "-in", os.path.join(out, "client-cert.pem")
                   ).stdout == openssl("pkey", "-pubout", "-in",
                                       os.path.join(out, "client-key.pem")).stdout
    # server-ca.pem is what download gives.
    assert open(os.path.join(out, "server-ca.pem")).read() == \
        open(download_ca(d, "db", tmp_dir)).read()
    # The private key appears nowhere on stdout/stderr.
    assert "PRIVATE KEY" not in cp.stdout + cp.stderr
    # Verifies against the client CA, with the CRL checked.
    files = export(d, "db", tmp_dir, "exp1")
    ok, why = verify(files["root.crt"], cert, tmp_dir, crl_file=files["root.crl"],
                     purpose="sslclient")
    assert ok, why
    # ... and not against the server CA (the two CAs are distinct).
    ok, _ = verify(os.path.join(out, "server-ca.pem"), cert, tmp_dir)
    assert not ok


def test_json_output_has_sslcert_fields_and_no_key(d, tmp_dir):
    out = os.path.join(tmp_dir, "j")
    j = d.json("ssl", "client-certs", "create", "j", "--instance", "db", "--out-dir", out)
    cert = open(os.path.join(out, "client-cert.pem")).read()
    assert j["commonName"] == "j" and j["name"] == "j"
    assert j["sha1Fingerprint"] == sha1_of(cert)
    assert j["certSerialNumber"] == serial_of(cert)
    assert j["cert"] == cert
    assert j["files"]["key"].endswith("client-key.pem")
    assert "PRIVATE KEY" not in str(j)


def test_pkcs12(d, tmp_dir):
    out, _ = make(d, tmp_dir, "java", "--pkcs12")
    p12 = os.path.join(out, "client.p12")
    assert stat.S_IMODE(os.stat(p12).st_mode) == 0o600
    info = openssl("pkcs12", "-info", "-nokeys", "-passin", "pass:", "-in", p12).stdout.decode()
    assert "BEGIN CERTIFICATE" in info and "CN = java" in info
    # the alias PgJDBC looks the key up under (test_jdbc.py logs in with this file)
    assert "friendlyName: user" in info, info
    out2, _ = make(d, tmp_dir, "java2", "--pkcs12", "--pkcs12-password", "s3cret")
    p12 = os.path.join(out2, "client.p12")
    assert openssl("pkcs12", "-info", "-nokeys", "-passin", "pass:wrong", "-in", p12,
                   check=False).returncode != 0
    openssl("pkcs12", "-info", "-nokeys", "-passin", "pass:s3cret", "-in", p12)


def test_refuses_to_overwrite_any_file(d, tmp_dir):
    out = os.path.join(tmp_dir, "busy")
    os.makedirs(out)
    with open(os.path.join(out, "server-ca.pem"), "w") as f:
        f.write("precious\n")
    before = store_snapshot(d.state_dir)
    cp = d.fail("ssl", "client-certs", "create", "x", "--instance", "db", "--out-dir", out)
    assert "server-ca.pem" in cp.stderr and "already exists" in cp.stderr
    assert os.listdir(out) == ["server-ca.pem"]
    assert open(os.path.join(out, "server-ca.pem")).read() == "precious\n"
    assert_unchanged(before, d.state_dir)
    # client.p12 is checked only with --pkcs12
    out2 = os.path.join(tmp_dir, "p12busy")
    os.makedirs(out2)
    open(os.path.join(out2, "client.p12"), "w").close()
    d.fail("ssl", "client-certs", "create", "y", "--instance", "db", "--out-dir", out2,
           "--pkcs12")
    assert os.listdir(out2) == ["client.p12"]
    assert_unchanged(before, d.state_dir)


def test_eleventh_is_refused_until_one_is_deleted(d, tmp_dir):
    for i in range(10):
        make(d, tmp_dir, f"u{i}")
    before = store_snapshot(d.state_dir)
    cp = d.fail("ssl", "client-certs", "create", "u10", "--instance", "db", "--out-dir",
                os.path.join(tmp_dir, "u10"))
    assert "10" in cp.stderr and '"db"' in cp.stderr
    assert not os.path.exists(os.path.join(tmp_dir, "u10"))
    assert_unchanged(before, d.state_dir)
    assert len(d.json("ssl", "client-certs", "list", "--instance", "db")) == 10
    d("ssl", "client-certs", "delete", "u3", "--instance", "db")
    make(d, tmp_dir, "u10")
    # The limit is configurable.
    d("instances", "patch", "db", "--max-client-certs", "11")
    make(d, tmp_dir, "u11")
    d.fail("ssl", "client-certs", "create", "u12", "--instance", "db", "--out-dir",
           os.path.join(tmp_dir, "u12"))


def test_list_describe_delete_and_crl(d, tmp_dir):
    out, _ = make(d, tmp_dir, "alice")
    make(d, tmp_dir, "bob")
    cert = open(os.path.join(out, "client-cert.pem")).read()
    lst = d.json("ssl", "client-certs", "list", "--instance", "db")
    assert [c["name"] for c in lst] == ["alice", "bob"]
    by_name = d.json("ssl", "client-certs", "describe", "alice", "--instance", "db")
    sha1 = sha1_of(cert)
    by_sha1 = d.json("ssl", "client-certs", "describe", sha1.upper(), "--instance", "db")
    assert by_name == by_sha1 and by_name["sha1Fingerprint"] == sha1
    text = d("ssl", "client-certs", "describe", "alice", "--instance", "db").stdout
    assert f"sha1Fingerprint: {sha1}" in text and "PRIVATE KEY" not in text
    table = d("ssl", "client-certs", "list", "--instance", "db").stdout.splitlines()
    assert table[0].split()[0] == "NAME" and len(table) == 3

    # Duplicate and invalid names.
    before = store_snapshot(d.state_dir)
    cp = d.fail("ssl", "client-certs", "create", "alice", "--instance", "db", "--out-dir",
                os.path.join(tmp_dir, "again"))
    assert '"alice"' in cp.stderr
    d.fail("ssl", "client-certs", "create", "bad/name", "--instance", "db", "--out-dir",
           os.path.join(tmp_dir, "bad"))
    d.fail("ssl", "client-certs", "create", "x", "--instance", "nope", "--out-dir",
           os.path.join(tmp_dir, "nope"))
    # A refused command leaves no directory behind either.
    for sub in ("again", "bad", "nope"):
        assert not os.path.exists(os.path.join(tmp_dir, sub))
    assert_unchanged(before, d.state_dir)

    files = export(d, "db", tmp_dir, "crl-before")
    ok, why = verify(files["root.crt"], cert, tmp_dir, crl_file=files["root.crl"])
    assert ok, why
    cp = d("ssl", "client-certs", "delete", sha1, "--instance", "db")
    assert "revoked" in cp.stderr
    files = export(d, "db", tmp_dir, "crl-after")
    ok, why = verify(files["root.crt"], cert, tmp_dir, crl_file=files["root.crl"])
    assert not ok and "revoked" in why
    crl = openssl("crl", "-noout", "-text", "-in", files["root.crl"]).stdout.decode()
    assert serial_of(cert) in crl.upper().replace(":", "")
    assert [c["name"] for c in d.json("ssl", "client-certs", "list", "--instance", "db")] == \
        ["bob"]
    d.fail("ssl", "client-certs", "describe", "alice", "--instance", "db")
    d.fail("ssl", "client-certs", "delete", "alice", "--instance", "db")
    # The name can be used again; the new certificate is not revoked.
    out2, _ = make(d, tmp_dir, "alice", sub="alice2")
    files = export(d, "db", tmp_dir, "crl-new")
    ok, why = verify(files["root.crt"], open(os.path.join(out2, "client-cert.pem")).read(),
                     tmp_dir, crl_file=files["root.crl"])
    assert ok, why


def test_validity_option(d, tmp_dir):
    out, _ = make(d, tmp_dir, "short", "--validity", "3600")
    j = d.json("ssl", "client-certs", "describe", "short", "--instance", "db")
    from datetime import datetime
    exp = datetime.strptime(j["expirationTime"], "%Y-%m-%dT%H:%M:%SZ")
    made = datetime.strptime(j["createTime"], "%Y-%m-%dT%H:%M:%SZ")
    assert 3500 <= (exp - made).total_seconds() <= 3700
    d.fail("ssl", "client-certs", "create", "z", "--instance", "db", "--validity", "-5", rc=2)
