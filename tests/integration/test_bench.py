"""The benchmark commands of the README keep working: a short run of bench/pg_bench.py and
bench/my_bench.py against the build under test measures every row for every target (the
figures of a sanitizer build mean nothing; that they are all there, positive and consistent,
does)."""
import json
import os
import pathlib
import subprocess

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _run(script, build_dir, out, *args):
    # ASan's allocator hands pages freed earlier in the run back to the OS at most every 5 s, at
    # a moment of its choosing: in the middle of the idle-memory sample that made dbtlsd's RSS
    # fall by tens of MB and idle_kb negative. Without that release the sample counts only what
    # the idle connections added (a no-op for a build without ASan).
    env = dict(os.environ)
    env["ASAN_OPTIONS"] = ":".join(filter(None, [env.get("ASAN_OPTIONS", ""),
                                                 "allocator_release_to_os_interval_ms=-1"]))
    cp = subprocess.run(["/usr/bin/python3", str(ROOT / "bench" / script), "--build-dir",
                         build_dir, "--json", out, *args], capture_output=True, text=True,
                        timeout=900, cwd=ROOT, env=env)
    assert cp.returncode == 0, cp.stderr[-4000:] + cp.stdout[-4000:]
    with open(out) as f:
        return json.load(f)["results"], cp.stdout


def test_pg_bench_short_run(build_dir, dbtls_bin, dbtlsd_bin, tmp_dir):
    res, out = _run("pg_bench.py", build_dir, os.path.join(tmp_dir, "pg.json"), "--seconds", "1",
                    "--warmup", "1", "--rounds", "1",
                    "--idle", "20", "--bulk-mb", "2", "--scale", "1")
    fronts = ["dbtlsd"]
    if os.path.exists(os.path.join(build_dir, "src", "tls", "dbtls-tls-boringssl.so")):
        fronts.append("dbtlsd-bssl")  # dbtlsd --tls-library boringssl, measured alongside
    assert set(res) == {"native", "pgb-term", "pgb-pool", *fronts}
    for target, r in res.items():
        for k in ("conn_per_s", "hs_per_s", "cpu_ms_hs", "cpu_ms_conn", "tps", "tps_whole",
                  "lat_ms", "cpu_us_tx", "copy_out_mbs", "copy_in_mbs"):
            assert r[k] is not None and r[k] > 0, (target, k, r)
        assert r["hs_errors"] == 0, (target, r)
        if target != "native":
            # measured; with only 20 idle connections a daemon may serve them from memory it
            # kept from the earlier rows (PgBouncer's slab caches did: a delta of 0)
            assert r["idle_kb"] is not None and r["idle_kb"] >= 0, (target, r)
    assert "goals (issue 3)" in out
    goals = out.split("goals (issue 3)", 1)[1].split("\nfloor", 1)[0]
    assert sum(1 for ln in goals.splitlines()
               if "met" in ln or "not measured" in ln) == 7 * len(fronts), goals
    for line in goals.splitlines():
        if "not measured" in line:
            # 20 idle connections may cost PgBouncer nothing new (a delta of 0, see above):
            # then there is no ratio to it; every other goal must have its figures
            assert "memory per idle" in line and res["pgb-term"]["idle_kb"] == 0, (line, res)
    # the floor the CPU rows are read against: OpenSSL's handshake plus the kernel's connection
    with open(os.path.join(tmp_dir, "pg.json")) as f:
        floor = json.load(f)["floor_ms"]
    # (no comparison with dbtlsd here: under ASan every malloc of OpenSSL's goes through the
    # sanitizer's allocator in both, so the figures mean nothing)
    assert floor is not None and floor > 0, floor
    assert "dbtlsd    CPU per TLS handshake" in out and "= floor + " in out
    if "dbtlsd-bssl" in fronts:
        assert "goals (issue 3), dbtlsd --tls-library boringssl" in out
        assert "dbtlsd-bssl CPU per TLS handshake" in out


def test_my_bench_short_run(build_dir, dbtls_bin, dbtlsd_bin, tmp_dir):
    res, out = _run("my_bench.py", build_dir, os.path.join(tmp_dir, "my.json"),
                    "--conn-queries", "200", "--queries", "4000", "--rounds", "1")
    fronts = ["dbtlsd"]
    if os.path.exists(os.path.join(build_dir, "src", "tls", "dbtls-tls-boringssl.so")):
        fronts.append("dbtlsd-bssl")
    assert set(res) == {"native", *fronts}
    assert "dbtlsd to MariaDB over its unix socket" in out
    for front in fronts:
        assert f"{front} / native" in out
    for target, r in res.items():
        assert r["cipher"].startswith("TLS_"), r
        # mariadb-slap's reconnects and queries, counted by the server itself.
        assert r["connections"] >= 200 and r["queries"] >= 3990, (target, r)
        assert r["conn_per_s"] > 0 and r["cpu_ms_conn"] > 0 and r["qps"] > 0, (target, r)


def test_my_bench_backend_over_tcp(build_dir, dbtls_bin, dbtlsd_bin, tmp_dir):
    # the default leg is MariaDB's unix socket; --backend-leg tcp puts the front on 127.0.0.1
    res, out = _run("my_bench.py", build_dir, os.path.join(tmp_dir, "my.json"),
                    "--conn-queries", "100", "--queries", "2000", "--rounds", "1",
                    "--targets", "dbtlsd", "--backend-leg", "tcp")
    assert set(res) == {"dbtlsd"}
    assert "dbtlsd to MariaDB over 127.0.0.1 TCP" in out
    r = res["dbtlsd"]
    assert r["connections"] >= 100 and r["queries"] >= 1990 and r["qps"] > 0, r
