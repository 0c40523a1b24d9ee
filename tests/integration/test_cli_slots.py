"""`dbtls ssl server-ca-certs ...` (per-instance mode) and `dbtls ssl server-certs ...` (shared
mode): previous/active/upcoming semantics, chains after every rotate/rollback, refusals that
change nothing, and atomicity when dbtls dies in the middle (fault injection and SIGKILL)."""
import os
import random
import signal
import subprocess
import time

import pytest

from cli_helpers import (CA_IDS, assert_chain_ok, assert_unchanged, create_instance,
                         download_ca, slots, split_pem, store_snapshot, use_template, verify)

KIND = {"shared": "server-certs", "per-instance": "server-ca-certs"}
WORD = {"shared": "server certificate", "per-instance": "server CA"}


@pytest.fixture
def d(dbtls):
    return use_template(dbtls)


def fp(s, slot):
    return s[slot]["sha1Fingerprint"] if slot in s else None


@pytest.mark.parametrize("mode", ["shared", "per-instance"])
def test_create_rotate_rollback(d, tmp_dir, mode):
    kind = KIND[mode]
    create_instance(d, "db", mode=mode)
    s0 = slots(d, "db", kind)
    assert set(s0) == {"active"}
    a0 = fp(s0, "active")

    # Refusals with nothing to move: exit 1, one line naming the instance, store unchanged.
    before = store_snapshot(d.state_dir)
    cp = d.fail("ssl", kind, "rotate", "--instance", "db")
    assert '"db"' in cp.stderr and "no upcoming" in cp.stderr and WORD[mode] in cp.stderr
    cp = d.fail("ssl", kind, "rollback", "--instance", "db")
    assert '"db"' in cp.stderr and "no previous" in cp.stderr
    assert_unchanged(before, d.state_dir)

    # create -> upcoming; create again replaces the unused upcoming.
    u1 = d.json("ssl", kind, "create", "--instance", "db")
    assert u1["slot"] == "upcoming"
    u2 = d.json("ssl", kind, "create", "--instance", "db")
    s = slots(d, "db", kind)
    assert set(s) == {"active", "upcoming"}
    assert fp(s, "upcoming") == u2["sha1Fingerprint"] != u1["sha1Fingerprint"]
    assert fp(s, "active") == a0

    # What a client installs before the rotation (download: all slots, active first) keeps
    # working after the rotation.
    pre = download_ca(d, "db", tmp_dir, "pre-rotation.pem")
    pre_certs = split_pem(open(pre).read())
    if mode == "per-instance":
        assert len(pre_certs) == 2
        assert pre_certs[0] == s["active"]["cert"] and pre_certs[1] == s["upcoming"]["cert"]
    assert_chain_ok(d, "db", tmp_dir)

    moved = d.json("ssl", kind, "rotate", "--instance", "db")
    s = slots(d, "db", kind)
    assert {c["slot"] for c in moved} == {"active", "previous"}
    assert fp(s, "active") == u2["sha1Fingerprint"] and fp(s, "previous") == a0
    assert "upcoming" not in s
    leaf = assert_chain_ok(d, "db", tmp_dir)
    ok, out = verify(pre, leaf, tmp_dir)
    assert ok, f"the new server cert does not verify with the pre-rotation server-ca.pem: {out}"

    d("ssl", kind, "rollback", "--instance", "db")
    s = slots(d, "db", kind)
    assert fp(s, "active") == a0 and fp(s, "upcoming") == u2["sha1Fingerprint"]
    assert "previous" not in s
    assert_chain_ok(d, "db", tmp_dir)
    before = store_snapshot(d.state_dir)
    d.fail("ssl", kind, "rollback", "--instance", "db")
    assert_unchanged(before, d.state_dir)

    # And forward again: the upcoming kept by rollback is usable.
    d("ssl", kind, "rotate", "--instance", "db")
    assert fp(slots(d, "db", kind), "active") == u2["sha1Fingerprint"]
    assert_chain_ok(d, "db", tmp_dir)


@pytest.mark.parametrize("ca", CA_IDS)
def test_rotation_chain_for_every_ca(d, tmp_dir, ca):
    for mode in ("shared", "per-instance"):
        name = f"r{mode[0]}"
        create_instance(d, name, mode=mode, ca=ca)
        d("ssl", KIND[mode], "create", "--instance", name)
        d("ssl", KIND[mode], "rotate", "--instance", name)
        assert_chain_ok(d, name, tmp_dir)
        d("ssl", KIND[mode], "rollback", "--instance", name)
        assert_chain_ok(d, name, tmp_dir)


def test_wrong_kind_for_mode_is_refused(d):
    create_instance(d, "sh", mode="shared")
    create_instance(d, "pi", mode="per-instance")
    before = store_snapshot(d.state_dir)
    cp = d.fail("ssl", "server-ca-certs", "create", "--instance", "sh")
    assert "server-certs" in cp.stderr
    cp = d.fail("ssl", "server-certs", "create", "--instance", "pi")
    assert "server-ca-certs" in cp.stderr
    d.fail("ssl", "server-certs", "rotate", "--instance", "nope")
    assert_unchanged(before, d.state_dir)
    # Listing works for both kinds in both modes.
    assert slots(d, "sh", "server-ca-certs")["active"]["cert"]
    assert slots(d, "pi", "server-certs")["active"]["cert"]


def test_table_output(d):
    create_instance(d, "t")
    d("ssl", "server-certs", "create", "--instance", "t")
    out = d("ssl", "server-certs", "list", "--instance", "t").stdout.splitlines()
    assert out[0].split() == ["SLOT", "SERIAL", "COMMON_NAME", "SHA1_FINGERPRINT", "CREATED",
                              "EXPIRATION"]
    assert [ln.split()[0] for ln in out[1:]] == ["active", "upcoming"]


def test_download_to_stdout_and_json(d):
    create_instance(d, "dl", mode="per-instance")
    pem = d("ssl", "server-ca-certs", "download", "--instance", "dl").stdout
    j = d.json("ssl", "server-ca-certs", "download", "--instance", "dl")
    assert j["pem"] == pem and len(split_pem(pem)) == 1


def test_rollback_refused_once_previous_expired(d):
    # The first server cert lives 3 seconds; rotate to a normal one, let the old one expire.
    create_instance(d, "ex", extra=["--validity", "3"])
    d("ssl", "server-certs", "create", "--instance", "ex")
    d("ssl", "server-certs", "rotate", "--instance", "ex")
    time.sleep(4.5)
    before = store_snapshot(d.state_dir)
    cp = d.fail("ssl", "server-certs", "rollback", "--instance", "ex")
    assert "expired" in cp.stderr and '"ex"' in cp.stderr
    assert_unchanged(before, d.state_dir)


# --- atomicity -----------------------------------------------------------------------------------
FAULTS = [
    ("rotate-mid", ["ssl", "server-certs", "rotate", "--instance", "f"]),
    ("rollback-mid", ["ssl", "server-certs", "rollback", "--instance", "f"]),
    ("create-slot-mid", ["ssl", "server-certs", "create", "--instance", "f"]),
    ("reset-mid", ["instances", "reset-ssl-config", "f"]),
    ("patch-mid", ["instances", "patch", "f", "--ca", "dbtls-ca-rsa2048-g1"]),
    ("client-create-mid", ["ssl", "client-certs", "create", "c9", "--instance", "f",
                           "--out-dir", "{tmp}/c9"]),
    ("client-delete-mid", ["ssl", "client-certs", "delete", "c1", "--instance", "f"]),
    ("create-mid", ["instances", "create", "g", "--engine", "postgres", "--listen",
                    "127.0.0.1:39999", "--backend", "127.0.0.1:5432", "--endpoint",
                    "g.example.com"]),
]


@pytest.mark.parametrize("point,args", FAULTS, ids=[f[0] for f in FAULTS])
def test_fault_inside_transaction_leaves_old_state(d, tmp_dir, point, args):
    create_instance(d, "f")
    d("ssl", "client-certs", "create", "c1", "--instance", "f", "--out-dir",
      os.path.join(tmp_dir, "c1"))
    d("ssl", "server-certs", "create", "--instance", "f")
    d("ssl", "server-certs", "rotate", "--instance", "f")
    d("ssl", "server-certs", "create", "--instance", "f")
    args = [a.replace("{tmp}", tmp_dir) for a in args]
    before = store_snapshot(d.state_dir)
    cp = d.run(*args, check=False, env={"DBTLS_FAULT": point})
    # abort() inside the transaction: killed by SIGABRT (never a clean exit).
    assert cp.returncode not in (0, 1, 2), (cp.returncode, cp.stderr)
    assert_unchanged(before, d.state_dir)
    assert_chain_ok(d, "f", tmp_dir)
    # The same command succeeds afterwards.
    if point == "client-create-mid":
        import shutil
        shutil.rmtree(os.path.join(tmp_dir, "c9"), ignore_errors=True)
    d.run(*args)


def test_sigkill_during_rotations_leaves_a_consistent_store(d, tmp_dir):
    """Kills dbtls at random moments of create/rotate/rollback; every time the store passes
    integrity_check, has exactly one active slot, and its chain verifies."""
    create_instance(d, "k", mode="per-instance")
    rng = random.Random(1234)
    cmds = [["ssl", "server-ca-certs", "create", "--instance", "k"],
            ["ssl", "server-ca-certs", "rotate", "--instance", "k"],
            ["ssl", "server-ca-certs", "rollback", "--instance", "k"]]
    killed = 0
    for i in range(24):
        args = cmds[i % 3]
        p = subprocess.Popen([d.bin, "--state-dir", d.state_dir, *args],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.0, 0.25))
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
            killed += 1
        p.wait(timeout=60)
        store_snapshot(d.state_dir)  # integrity_check
        s = slots(d, "k", "server-ca-certs")
        assert "active" in s and len({c["slot"] for c in s.values()}) == len(s)
        assert_chain_ok(d, "k", tmp_dir)
    assert killed > 0
