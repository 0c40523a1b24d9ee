"""The soak script keeps working (docs/testing.md "Soak"): a short run of tests/soak/soak.py
against the build under test, both fronts under pgbench and mariadb-slap while certificates
rotate and roll back, client certificates come and go, the TLS policy changes and SIGHUP
arrives. Under the sanitizer build this is also a check of the reload paths under load: a
failed transaction or query, a sanitizer report or an unclean exit fails it."""
import os
import pathlib
import re
import subprocess

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_soak_short_run(build_dir, dbtls_bin, dbtlsd_bin):
    cp = subprocess.run(["/usr/bin/python3", str(ROOT / "tests" / "soak" / "soak.py"),
                         "--seconds", "45", "--build-dir", build_dir], capture_output=True,
                        text=True, timeout=600, cwd=ROOT, env=dict(os.environ))
    out = cp.stdout + cp.stderr
    assert cp.returncode == 0 and cp.stdout.rstrip().endswith("SOAK OK"), out[-6000:]
    # every kind of change happened at least once, and both fronts carried load
    m = re.search(r"changes: rotate (\d+), rollback (\d+), client-cert (\d+), patch (\d+), "
                  r"sighup (\d+)", out)
    assert m and all(int(n) >= 1 for n in m.groups()), out[-3000:]
    assert re.search(r"mariadb-slap: [1-9]\d* runs", out), out[-3000:]
    for name in ("pgbench -C", "pgbench"):
        m = re.search(rf"{name}: tps ([\d.]+)", out)
        assert m and float(m.group(1)) > 0, out[-3000:]
