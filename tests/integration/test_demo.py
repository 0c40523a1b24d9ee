"""The README's first command, scripts/demo.sh, runs to the end against the build under test:
every step in it checks what a user should see (TLS 1.3 through the front, the exact refusal
texts, client-certificate login, rotation with a session kept open, MariaDB through the front)
and it stops everything it started."""
import os
import pathlib
import subprocess

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _our_processes(marker):
    out = subprocess.run(["ps", "-eo", "args="], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if marker in line]


def test_demo_runs_clean(build_dir, dbtls_bin, dbtlsd_bin):
    env = dict(os.environ, DBTLS_BUILD=build_dir)
    env.pop("DBTLS_STATE_DIR", None)
    cp = subprocess.run([str(ROOT / "scripts" / "demo.sh"), "--keep"], capture_output=True,
                        text=True, env=env, timeout=600, cwd=ROOT)
    out = cp.stdout + cp.stderr
    kept = [line.split()[-1] for line in out.splitlines() if line.startswith("demo: kept ")]
    try:
        assert cp.returncode == 0, out[-6000:]
        assert "demo: FAILED" not in out
        for text in [
            "SSL connection (protocol: TLSv1.3",
            'does not match host name "wrong.example"',
            'no pg_hba.conf entry for host "127.0.0.1", user "alice", database "app", '
            "no encryption",
            "connection requires a valid client certificate",
            "Issued an ephemeral client certificate for [certuser]",
            "new connections get the new certificate",
            "the session opened before the rotation still works",
            "A second instance on the same port, chosen by the TLS server name",
            "demo-pg lets alice in without one",
            "Cipher in use is TLS_",
            "ERROR 3159 (HY000)",
        ]:
            assert text in out, f"{text!r} missing from the demo output"
        # Nothing the demo started is still running.
        assert kept, "the demo did not say which directory it kept"
        assert _our_processes(kept[0]) == []
    finally:
        for d in kept:
            if d.startswith("/tmp/dbtls-demo-"):
                subprocess.run(["rm", "-rf", d])
