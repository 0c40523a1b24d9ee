"""Operation errors of `dbtls` that are not about one command: master key file permissions,
--master-key-command, a corrupt or missing store. Each gives exit 1, one line saying what and
why, and changes nothing."""
import os

import pytest

from cli_helpers import (assert_unchanged, create_instance, store_snapshot, use_template,
                         assert_chain_ok)

HEX_KEY = "5f" * 32


@pytest.fixture
def d(dbtls):
    use_template(dbtls)
    create_instance(dbtls, "db")
    return dbtls


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_master_key_with_group_or_world_access_is_refused(d, mode):
    key = os.path.join(d.state_dir, "master.key")
    before = store_snapshot(d.state_dir)
    os.chmod(key, mode)
    for args in (["instances", "list"], ["ssl", "server-certs", "create", "--instance", "db"]):
        cp = d.fail(*args)
        assert key in cp.stderr and "group or world access" in cp.stderr
        assert "0600" in cp.stderr
    assert_unchanged(before, d.state_dir)
    os.chmod(key, 0o600)
    d("ssl", "server-certs", "create", "--instance", "db")


def test_missing_master_key(d):
    os.unlink(os.path.join(d.state_dir, "master.key"))
    cp = d.fail("ssl", "server-certs", "create", "--instance", "db")
    assert "master.key" in cp.stderr


def test_wrong_master_key_changes_nothing(d):
    key = os.path.join(d.state_dir, "master.key")
    with open(key, "wb") as f:
        f.write(b"\x01" * 32)
    before = store_snapshot(d.state_dir)
    d.fail("ssl", "server-certs", "create", "--instance", "db")
    assert_unchanged(before, d.state_dir)


@pytest.mark.parametrize("garbage", [b"this is not a database\n" * 100, b"", b"SQLite format 3\x00" + b"\xff" * 4000])
def test_corrupt_store_file(d, garbage):
    db = os.path.join(d.state_dir, "dbtls.db")
    for suffix in ("-wal", "-shm"):
        if os.path.exists(db + suffix):
            os.unlink(db + suffix)
    with open(db, "wb") as f:
        f.write(garbage)
    for args in (["instances", "list"], ["ssl", "server-certs", "rotate", "--instance", "db"],
                 ["cas", "list"]):
        cp = d.run(*args, check=False)
        assert cp.returncode == 1, cp.stderr
        lines = cp.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("dbtls: "), cp.stderr
        assert "dbtls.db" in cp.stderr
    assert open(db, "rb").read() == garbage


def test_master_key_command(dbtls, tmp_dir):
    cmd = f"printf {HEX_KEY}"
    cp = dbtls("--master-key-command", cmd, "init")
    assert not os.path.exists(os.path.join(dbtls.state_dir, "master.key"))
    assert "master-key-command" in cp.stderr
    dbtls("--master-key-command", cmd, "instances", "create", "k", "--engine", "postgres",
          "--listen", "127.0.0.1:41999", "--backend", "127.0.0.1:5432", "--endpoint",
          "k.example.com")
    # Also from the environment.
    env = {"DBTLS_MASTER_KEY_COMMAND": cmd}
    dbtls("ssl", "server-certs", "create", "--instance", "k", env=env)
    dbtls("ssl", "server-certs", "rotate", "--instance", "k", env=env)
    # A failing command and a wrong key are operation errors that change nothing.
    before = store_snapshot(dbtls.state_dir)
    cp = dbtls.fail("--master-key-command", "exit 3", "ssl", "server-certs", "create",
                    "--instance", "k")
    assert "3" in cp.stderr
    dbtls.fail("--master-key-command", f"printf {'ab' * 32}", "ssl", "server-certs", "create",
               "--instance", "k")
    dbtls.fail("--master-key-command", "printf nothex", "ssl", "server-certs", "create",
               "--instance", "k")
    assert_unchanged(before, dbtls.state_dir)
    assert_chain_ok(Env(dbtls, cmd), "k", tmp_dir)


class Env:
    """A runner that adds --master-key-command to every call (for the shared helpers)."""

    def __init__(self, dbtls, cmd):
        self.d, self.cmd = dbtls, cmd
        self.state_dir = dbtls.state_dir

    def __call__(self, *args, **kw):
        return self.d("--master-key-command", self.cmd, *args, **kw)

    def json(self, *args, **kw):
        return self.d.json("--master-key-command", self.cmd, *args, **kw)


def test_unwritable_state_dir_for_init(dbtls_bin, tmp_dir):
    import subprocess
    f = os.path.join(tmp_dir, "file")
    open(f, "w").close()
    cp = subprocess.run([dbtls_bin, "--state-dir", os.path.join(f, "sub"), "init"],
                        capture_output=True, text=True, timeout=60)
    assert cp.returncode == 1 and len(cp.stderr.strip().splitlines()) == 1
    assert f in cp.stderr
