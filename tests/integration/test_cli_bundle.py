"""`dbtls bundle`: roots and intermediates as RDS serves them (global, per CA, per region, per
instance), as PEM and as PKCS#7 readable by `openssl pkcs7 -print_certs -inform DER`."""
import os

import pytest

from cli_helpers import (CA_IDS, create_instance, download_ca, openssl, split_pem,
                         use_template, verify, write)


@pytest.fixture
def d(dbtls):
    return use_template(dbtls)


def subjects(pems):
    return [openssl("x509", "-noout", "-subject", input=p.encode()).stdout.decode().strip()
            for p in pems]


def test_global_pem_bundle(d, tmp_dir):
    pem = d("bundle").stdout
    certs = split_pem(pem)
    assert len(certs) == 6  # 3 roots + 3 intermediates of the default region
    roots = {c["certificateIdentifier"]: c["cert"] for c in d.json("cas", "list")}
    assert set(roots.values()) <= set(certs)
    bundle = write(os.path.join(tmp_dir, "b.pem"), pem)
    # Every intermediate chains to its root.
    for c in certs:
        if c not in roots.values():
            ok, out = verify(bundle, c, tmp_dir)
            assert ok, out
    # Root first, then its intermediates, CA ids in order.
    order = [i for i, c in enumerate(certs) if c in roots.values()]
    assert order == [0, 2, 4]


@pytest.mark.parametrize("ca", CA_IDS)
def test_per_ca_bundle_and_p7b(d, tmp_dir, ca):
    pem = d("bundle", "--ca", ca).stdout
    certs = split_pem(pem)
    assert len(certs) == 2
    p7b = os.path.join(tmp_dir, "b.p7b")
    cp = d("bundle", "--ca", ca, "--format", "p7b", "--out", p7b)
    assert "PKCS#7" in cp.stderr
    out = openssl("pkcs7", "-print_certs", "-inform", "DER", "-in", p7b).stdout.decode()
    assert sorted(subjects(split_pem(out))) == sorted(subjects(certs))
    # DER, not PEM.
    assert open(p7b, "rb").read()[:1] == b"\x30"


def test_global_p7b_matches_pem(d, tmp_dir):
    p7b = os.path.join(tmp_dir, "all.p7b")
    d("bundle", "--format", "p7b", "--out", p7b)
    out = openssl("pkcs7", "-print_certs", "-inform", "DER", "-in", p7b).stdout.decode()
    assert sorted(split_pem(out)) == sorted(split_pem(d("bundle").stdout))


def test_region_and_instance_bundles(d, tmp_dir):
    create_instance(d, "eu", extra=["--region", "eu-central-1"], mode="per-instance")
    create_instance(d, "eu2", extra=["--region", "eu-central-1"])
    roots = {c["cert"] for c in d.json("cas", "list")}
    region = split_pem(d("bundle", "--region", "eu-central-1").stdout)
    default = split_pem(d("bundle", "--region", "default").stdout)
    inter = [c for c in region if c not in roots]
    # The region's intermediates (made on first use), none of the default region's.
    assert inter and not set(inter) & set(default)
    path = write(os.path.join(tmp_dir, "eu.pem"), "".join(region))
    leaf = d.json("ssl", "server-certs", "list", "--instance", "eu2")[0]["cert"]
    ok, out = verify(path, leaf, tmp_dir)
    assert ok, out
    path = write(os.path.join(tmp_dir, "def.pem"), "".join(default))
    ok, out = verify(path, leaf, tmp_dir)
    assert not ok
    cp = d.fail("bundle", "--region", "mars-north-1")
    assert "mars-north-1" in cp.stderr
    cp = d.fail("bundle", "--ca", "dbtls-ca-nope")
    assert "dbtls-ca-nope" in cp.stderr
    inst = d("bundle", "--instance", "eu").stdout
    assert inst == open(download_ca(d, "eu", tmp_dir)).read()
    d.fail("bundle", "--instance", "nope")


def test_out_file_and_json(d, tmp_dir):
    path = os.path.join(tmp_dir, "out.pem")
    cp = d("bundle", "--out", path)
    assert cp.stdout == "" and open(path).read() == d("bundle").stdout
    j = d.json("bundle", "--ca", "dbtls-ca-ecc384-g1")
    assert j["ca"] == "dbtls-ca-ecc384-g1" and len(split_pem(j["pem"])) == 2
    d.fail("bundle", "--format", "json", "--out", path, rc=2)
