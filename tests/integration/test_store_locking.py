"""The store's write lock is not held while a private key is generated: a `dbtls` command that
makes an RSA-4096 server CA (seconds of CPU) lets another write command, started meanwhile,
commit first. Before keys were made ahead of BEGIN IMMEDIATE, every other writer (dbtls
commands, the admin API, the daemon's scheduler) waited for the whole key generation."""
import os
import subprocess
import time

import pytest

from cli_helpers import create_instance, use_template

# CPU seconds after which `dbtls ssl server-ca-certs create` is surely generating its RSA-4096
# key: starting, opening the store and reading the instance take a few milliseconds of CPU.
IN_KEYGEN_CPU = 0.2
ATTEMPTS = 5


def cpu_seconds(pid):
    """User + system CPU time of a running process, from /proc/PID/stat (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def last_index(events, action):
    return max(i for i, e in enumerate(events) if e["action"] == action)


def test_writer_commits_while_rsa4096_key_is_generated(dbtls, tmp_dir):
    use_template(dbtls)
    create_instance(dbtls, "big", mode="per-instance", ca="dbtls-ca-rsa4096-g1")
    create_instance(dbtls, "small")
    outcomes = []
    for attempt in range(ATTEMPTS):
        slow = subprocess.Popen([dbtls.bin, "--state-dir", dbtls.state_dir, "ssl",
                                 "server-ca-certs", "create", "--instance", "big"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            while slow.poll() is None and cpu_seconds(slow.pid) < IN_KEYGEN_CPU:
                time.sleep(0.005)
            generating = slow.poll() is None
            # A second writer while the first is (or was) generating its RSA-4096 key.
            out = os.path.join(tmp_dir, f"c{attempt}")
            t0 = time.monotonic()
            dbtls("ssl", "client-certs", "create", f"app{attempt}", "--instance", "small",
                  "--out-dir", out)
            waited = time.monotonic() - t0
            stdout, stderr = slow.communicate(timeout=120)
        finally:
            if slow.poll() is None:
                slow.kill()
                slow.wait()
        assert slow.returncode == 0, f"server-ca-certs create failed:\n{stderr}{stdout}"
        events = dbtls.json("events", "list")
        first = (last_index(events, "client-cert.create") <
                 last_index(events, "server-ca.create"))
        outcomes.append(f"attempt {attempt}: key generation running when the client cert was "
                        f"requested: {generating}; client cert took {waited:.2f} s and "
                        f"committed {'first' if first else 'second'}")
        if generating and first:
            return
    # The RSA-4096 key can be done before the second command gets going, rarely more than once
    # in a row; every time the other writer waited for it means the lock is held during keygen.
    pytest.fail("a write command started while `server-ca-certs create` generated its RSA-4096 "
                "key never committed before it:\n" + "\n".join(outcomes))
