"""dbtls and dbtlsd find the same state directory when none is named: DBTLS_STATE_DIR, else
$XDG_DATA_HOME/dbtls, else ~/.local/share/dbtls. The daemon serves exactly the store the
command line changed (an instance created by `dbtls` without --state-dir is listened on by a
`dbtlsd` started without it)."""
import os
import signal
import subprocess
import time

import pytest


def clean_env(**kw):
    env = {k: v for k, v in os.environ.items()
           if k not in ("DBTLS_STATE_DIR", "XDG_DATA_HOME", "HOME")}
    env.update(kw)
    return env


def wait_for(path, text, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(path, encoding="utf-8", errors="replace") as f:
            log = f.read()
        if text in log:
            return log
        time.sleep(0.1)
    raise AssertionError(f"{text!r} not in log:\n{log}")


@pytest.mark.parametrize("where", ["home", "xdg"])
def test_cli_and_daemon_share_the_default(where, dbtls_bin, dbtlsd_bin, tmp_dir, free_port):
    if where == "home":
        env = clean_env(HOME=tmp_dir)
        expect = os.path.join(tmp_dir, ".local", "share", "dbtls")
    else:
        env = clean_env(HOME=os.path.join(tmp_dir, "nohome"),
                        XDG_DATA_HOME=os.path.join(tmp_dir, "xdg"))
        expect = os.path.join(tmp_dir, "xdg", "dbtls")
    run = lambda *a: subprocess.run([dbtls_bin, *a], env=env, capture_output=True, text=True,
                                    timeout=120)
    cp = run("init")
    assert cp.returncode == 0, cp.stderr
    assert os.path.isfile(os.path.join(expect, "master.key"))
    port = free_port()
    cp = run("instances", "create", "d1", "--engine", "postgres", "--listen",
             f"127.0.0.1:{port}", "--backend", "127.0.0.1:1", "--endpoint", "localhost")
    assert cp.returncode == 0, cp.stderr

    log_path = os.path.join(tmp_dir, "dbtlsd.log")
    with open(log_path, "w") as log:
        proc = subprocess.Popen([dbtlsd_bin, "--workers", "1"], env=env, stderr=log,
                                stdout=subprocess.DEVNULL)
    try:
        text = wait_for(log_path, "dbtlsd: ready")
        assert f"listening on 127.0.0.1:{port}" in text, text
        assert os.path.exists(os.path.join(expect, "admin.sock"))
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = proc.wait()
    assert rc == 0, open(log_path).read()


def test_no_default_at_all_is_one_clear_line(dbtls_bin, dbtlsd_bin):
    env = clean_env()
    cp = subprocess.run([dbtls_bin, "cas", "list"], env=env, capture_output=True, text=True,
                        timeout=30)
    assert cp.returncode == 1 and cp.stderr.count("\n") == 1, cp.stderr
    assert "no state directory" in cp.stderr
    cp = subprocess.run([dbtlsd_bin], env=env, capture_output=True, text=True, timeout=30)
    assert cp.returncode == 2 and "no state directory" in cp.stderr, cp.stderr
