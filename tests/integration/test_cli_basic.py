"""`dbtls` command line: help, usage errors (exit 2), state directory resolution, init, cas,
engines, events. Drives the real binary; checks CA certificates with the openssl CLI."""
import json
import os
import stat
import subprocess

import pytest

from cli_helpers import (CA_IDS, openssl, split_pem, sha1_of, use_template, write,
                         create_instance, store_snapshot, assert_unchanged,
                         initialized_template)


def run(dbtls_bin, *args, env=None, cwd=None):
    e = {k: v for k, v in os.environ.items() if not k.startswith(("DBTLS_", "XDG_"))}
    e.update(env or {})
    return subprocess.run([dbtls_bin, *args], capture_output=True, text=True, env=e,
                          timeout=300, cwd=cwd)


# --- help and usage ---------------------------------------------------------------------------
def test_help_lists_every_command(dbtls_bin):
    cp = run(dbtls_bin, "--help")
    assert cp.returncode == 0
    for cmd in ["init", "cas list", "cas set-default", "engines list", "instances create",
                "instances reset-ssl-config", "ssl server-ca-certs download",
                "ssl server-certs rotate", "ssl client-certs create", "bundle", "events list",
                "connections"]:
        assert cmd in cp.stdout, cmd


def test_noun_help_and_command_help(dbtls_bin):
    cp = run(dbtls_bin, "instances", "--help")
    assert cp.returncode == 0
    assert "instances create" in cp.stdout and "ssl server-certs" not in cp.stdout
    cp = run(dbtls_bin, "ssl", "client-certs", "create", "--help")
    assert cp.returncode == 0
    assert "--out-dir" in cp.stdout and "--pkcs12" in cp.stdout
    assert cp.stdout.startswith("usage: dbtls ssl client-certs create CERT_NAME --instance NAME")
    # Hidden test option is accepted but not advertised.
    assert "--validity" not in cp.stdout


@pytest.mark.parametrize("args,needle", [
    ([], "usage"),
    (["frobnicate"], "unknown command 'frobnicate'"),
    (["instances", "explode"], "unknown command 'instances explode'"),
    (["instances"], "'instances' needs a command"),
    (["instances", "describe"], "missing NAME"),
    (["instances", "list", "--bogus"], "unknown option '--bogus'"),
    (["instances", "create", "db1", "--engine"], "option '--engine' needs a value"),
    (["instances", "create", "db1", "--engine", "postgres"], "missing required option"),
    (["cas", "list", "extra"], "unexpected argument 'extra'"),
    (["cas", "list", "--format", "yaml"], "unknown format 'yaml'"),
    (["ssl", "server-certs", "list"], "missing required option --instance"),
    (["bundle", "--format", "der"], "unknown bundle format 'der'"),
    (["events", "list", "--limit", "many"], "invalid value \"many\" for --limit"),
    (["ssl", "client-certs", "create", "--instance", "x"], "missing CERT_NAME"),
    (["instances", "patch", "db1"], "nothing to change"),
])
def test_usage_errors_exit_2(dbtls_bin, state_dir, args, needle):
    cp = run(dbtls_bin, "--state-dir", state_dir, *args)
    assert cp.returncode == 2, cp.stderr
    assert needle in cp.stderr
    assert cp.stderr.startswith("dbtls: ") or cp.stderr.startswith("usage") \
        or "usage" in cp.stderr
    assert "usage" in cp.stderr
    # A usage error never creates or touches the state directory.
    assert os.listdir(state_dir) == []


def test_option_equals_form_and_global_options_anywhere(dbtls):
    use_template(dbtls)
    a = json.loads(dbtls.run("cas", "list", "--format=json").stdout)
    b = json.loads(subprocess.run([dbtls.bin, "--format", "json", "cas", "list",
                                   f"--state-dir={dbtls.state_dir}"],
                                  capture_output=True, text=True, timeout=60).stdout)
    assert a == b and len(a) == 3


# --- state directory -------------------------------------------------------------------------
def test_state_dir_resolution_order(dbtls_bin, tmp_dir):
    home = os.path.join(tmp_dir, "home")
    xdg = os.path.join(tmp_dir, "xdg")
    envdir = os.path.join(tmp_dir, "envdir")
    os.makedirs(home)
    # HOME only -> ~/.local/share/dbtls
    cp = run(dbtls_bin, "init", env={"HOME": home})
    assert cp.returncode == 0, cp.stderr
    assert os.path.isfile(os.path.join(home, ".local/share/dbtls/master.key"))
    # XDG_DATA_HOME wins over HOME
    cp = run(dbtls_bin, "init", env={"HOME": home, "XDG_DATA_HOME": xdg})
    assert cp.returncode == 0, cp.stderr
    assert os.path.isfile(os.path.join(xdg, "dbtls/master.key"))
    # DBTLS_STATE_DIR wins over both, and --state-dir over DBTLS_STATE_DIR
    cp = run(dbtls_bin, "cas", "list", "--format", "json",
             env={"HOME": home, "XDG_DATA_HOME": xdg, "DBTLS_STATE_DIR": envdir})
    assert cp.returncode == 1 and envdir in cp.stderr
    cp = run(dbtls_bin, "--state-dir", os.path.join(xdg, "dbtls"), "cas", "list",
             env={"DBTLS_STATE_DIR": envdir})
    assert cp.returncode == 0, cp.stderr


# --- init and CAs ------------------------------------------------------------------------------
def test_init_creates_state_and_refuses_twice(dbtls):
    cp = dbtls("init")
    assert "Initialized dbtls" in cp.stderr
    st = os.stat(os.path.join(dbtls.state_dir, "master.key"))
    assert stat.S_IMODE(st.st_mode) == 0o600 and st.st_size == 32
    assert stat.S_IMODE(os.stat(dbtls.state_dir).st_mode) == 0o700
    for ca in CA_IDS:
        assert ca in cp.stdout
    before = store_snapshot(dbtls.state_dir)
    cp = dbtls.fail("init")
    assert "already" in cp.stderr
    assert_unchanged(before, dbtls.state_dir)


def test_template_copy_is_what_init_leaves(dbtls, tmp_dir):
    """use_template(), where most tests start, gives what `dbtls init` gives: the same files
    with the same modes, a store with the same tables and row counts, and a copy of its own
    (changing it leaves the session's template as it was)."""
    dbtls("init")
    copy = use_template(dbtls.with_state_dir(os.path.join(tmp_dir, "copy")))

    def modes(d):
        return {n: stat.S_IMODE(os.stat(os.path.join(d, n)).st_mode)
                for n in [".", *os.listdir(d)]}

    assert modes(copy.state_dir) == modes(dbtls.state_dir)
    assert modes(copy.state_dir)["."] == 0o700

    def rows(d):
        return {t: len(r) for t, r in store_snapshot(d).items()}

    assert rows(copy.state_dir) == rows(dbtls.state_dir)
    template = initialized_template(dbtls.bin)

    def contents(d):
        out = {}
        for n in os.listdir(d):
            with open(os.path.join(d, n), "rb") as f:
                out[n] = f.read()
        return out

    before = contents(template)
    create_instance(copy, "c1")
    assert [i["name"] for i in copy.json("instances", "list")] == ["c1"]
    assert contents(template) == before


def test_cas_list_fields_match_the_certificates(dbtls, tmp_dir):
    use_template(dbtls)
    cas = dbtls.json("cas", "list")
    assert [c["certificateIdentifier"] for c in cas] == sorted(CA_IDS)
    want = {"dbtls-ca-rsa2048-g1": ("RSA-2048", "sha256WithRSAEncryption", "Public-Key: (2048"),
            "dbtls-ca-rsa4096-g1": ("RSA-4096", "sha384WithRSAEncryption", "Public-Key: (4096"),
            "dbtls-ca-ecc384-g1": ("EC P-384", "ecdsa-with-SHA384", "NIST CURVE: P-384")}
    for c in cas:
        key_alg, sig_alg, text_key = want[c["certificateIdentifier"]]
        assert c["keyAlgorithm"] == key_alg
        assert c["signatureAlgorithm"] == sig_alg
        assert c["certificateType"] == "CA"
        assert c["defaultForNewInstances"] == (c["certificateIdentifier"] == "dbtls-ca-ecc384-g1")
        assert "default" in c["regions"]
        text = openssl("x509", "-noout", "-text", input=c["cert"].encode()).stdout.decode()
        assert text_key in text and f"Signature Algorithm: {sig_alg}" in text
        assert "CA:TRUE" in text
        assert c["thumbprint"] == sha1_of(c["cert"])
        # Root valid 40 years (allow leap days and the backdating).
        years = (int(c["validTill"][:4]) - int(c["validFrom"][:4]))
        assert years in (39, 40), (c["validFrom"], c["validTill"])
        # self-signed root verifies against itself
        root = write(os.path.join(tmp_dir, "root.pem"), c["cert"])
        assert openssl("verify", "-CAfile", root, root, check=False).returncode == 0
    table = dbtls("cas", "list").stdout
    assert table.splitlines()[0].startswith("CERTIFICATE_IDENTIFIER")
    assert len(table.splitlines()) == 4


def test_cas_set_default_changes_new_instances(dbtls):
    use_template(dbtls)
    dbtls("cas", "set-default", "dbtls-ca-rsa2048-g1")
    cas = {c["certificateIdentifier"]: c for c in dbtls.json("cas", "list")}
    assert cas["dbtls-ca-rsa2048-g1"]["defaultForNewInstances"] is True
    assert cas["dbtls-ca-ecc384-g1"]["defaultForNewInstances"] is False
    inst = create_instance(dbtls, "db1")
    assert inst["caId"] == "dbtls-ca-rsa2048-g1"
    before = store_snapshot(dbtls.state_dir)
    cp = dbtls.fail("cas", "set-default", "dbtls-ca-nope")
    assert "dbtls-ca-nope" in cp.stderr
    assert_unchanged(before, dbtls.state_dir)


def test_engines_list(dbtls):
    engines = dbtls.json("engines", "list")
    got = {(e["engine"], e["engineVersion"]) for e in engines}
    for want in [("postgres", v) for v in ("13", "14", "15", "16", "17")] + \
            [("mysql", "5.7"), ("mysql", "8.0"), ("mariadb", "10.11")]:
        assert want in got
    for e in engines:
        assert e["supportsCertificateRotationWithoutRestart"] is True
        assert set(e["supportedCaCertificateIdentifiers"]) <= set(CA_IDS)
        assert e["supportedTlsVersions"]
        assert e["defaultCiphers"]
    pg = {e["engineVersion"]: e for e in engines if e["engine"] == "postgres"}
    assert pg["13"]["hbaRejectSuffix"] == "SSL off"
    assert pg["14"]["hbaRejectSuffix"] == "no encryption"
    my = [e for e in engines if e["engine"] == "mysql" and e["engineVersion"] == "8.0"][0]
    assert my["insecureTransportErrno"] == 3159
    assert "require_secure_transport=ON" in my["insecureTransportError"]
    only = dbtls.json("engines", "list", "--engine", "mariadb")
    assert {e["engine"] for e in only} == {"mariadb"}
    dbtls.fail("engines", "list", "--engine", "oracle")


def test_commands_before_init_say_so(dbtls):
    cp = dbtls.fail("instances", "list")
    assert dbtls.state_dir in cp.stderr


def test_events_record_changes(dbtls):
    use_template(dbtls)
    create_instance(dbtls, "ev1")
    dbtls("ssl", "server-certs", "create", "--instance", "ev1")
    dbtls("ssl", "server-certs", "rotate", "--instance", "ev1")
    events = dbtls.json("events", "list")
    actions = [e["action"] for e in events]
    assert actions[0] == "init"
    assert "instance.create" in actions
    assert any("rotate" in a for a in actions)
    assert all(e["time"].endswith("Z") and e["actor"] for e in events)
    mine = dbtls.json("events", "list", "--instance", "ev1")
    assert mine and all("ev1" in e["object"] for e in mine)
    last = dbtls.json("events", "list", "--limit", "1")
    assert len(last) == 1 and last[0] == events[-1]
    table = dbtls("events", "list").stdout
    assert table.splitlines()[0].split()[:3] == ["TIME", "ACTOR", "ACTION"]


def test_json_everywhere_is_valid(dbtls):
    use_template(dbtls)
    create_instance(dbtls, "j1")
    for args in [["cas", "list"], ["engines", "list"], ["instances", "list"],
                 ["instances", "describe", "j1"], ["ssl", "server-certs", "list", "--instance",
                                                   "j1"],
                 ["ssl", "server-ca-certs", "list", "--instance", "j1"],
                 ["ssl", "client-certs", "list", "--instance", "j1"], ["events", "list"],
                 ["ssl", "server-ca-certs", "download", "--instance", "j1"]]:
        dbtls.json(*args)
    # bundle's --format also takes pem|p7b; json wraps the PEM.
    b = dbtls.json("bundle")
    assert len(split_pem(b["pem"])) == 6


def test_help_word(dbtls_bin):
    cp = run(dbtls_bin, "help", "ssl", "client-certs", "delete")
    assert cp.returncode == 0
    assert cp.stdout.startswith("usage: dbtls ssl client-certs delete NAME_OR_SHA1")
    cp = run(dbtls_bin, "help")
    assert cp.returncode == 0 and "instances create" in cp.stdout
    cp = run(dbtls_bin, "--version")
    assert cp.returncode == 0 and cp.stdout.startswith("dbtls ")
