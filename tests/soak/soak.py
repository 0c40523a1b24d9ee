#!/usr/bin/python3
"""Soak run of the fronts, for minutes (the test command runs 45 s of it: test_soak.py).

A real PostgreSQL 15 and a real MariaDB, an ENCRYPTED_ONLY instance for each, and one dbtlsd
from a sanitizer build; for --seconds, pgbench runs through the PostgreSQL front twice at once
(one connection per transaction, and persistent connections) with sslmode=verify-full, and
mariadb-slap through the MariaDB front (a connection per query, then persistent connections,
in turn) with --ssl-verify-server-cert, while a churn loop keeps changing what the daemon
serves: server certificates created, rotated and rolled back on both instances, client
certificates created, used for a login and deleted (revoked), --tls-min patched up and down,
SIGHUP. Each change makes a new configuration generation while connections of the old ones are
still open.

It fails, naming why, when: pgbench reports a failed transaction or a connection error,
mariadb-slap fails, a client-certificate login or a verify-full connection fails, dbtlsd dies
or logs a sanitizer report, or dbtlsd does not exit 0 on SIGTERM at the end (ASan's leak check
runs then).
Prints "SOAK OK" or "SOAK FAILED: ..." last; exit status 0 or 1.

Run: /usr/bin/python3 tests/soak/soak.py [--seconds 150] [--build-dir build-asan]
(the build dir defaults to the one scripts/build.sh --asan makes; as root, PostgreSQL runs as
the postgres user).
"""
import argparse
import os
import re
import signal
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "bench"))
import benchlib as bl  # noqa: E402
from benchlib import servers  # noqa: E402

USER = "trustuser"
MY_USER, MY_PASSWORD = "soak", "soak-pw-1"


def pgbench(port, root_crt, seconds, connect_each, out):
    cmd = ["pgbench", "-n", "-S", "-T", str(seconds), "-c", "4", "-j", "2", "-h", "localhost",
           "-p", str(port), "-U", USER, "app"]
    if connect_each:
        cmd.insert(1, "-C")
    env = dict(os.environ, PGSSLMODE="verify-full", PGSSLROOTCERT=root_crt, PGCONNECT_TIMEOUT="10")
    cp = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=seconds + 120)
    out[connect_each] = cp


def psql_ok(port, root_crt, extra=""):
    conninfo = (f"host=localhost port={port} user={USER} dbname=app sslmode=verify-full "
                f"sslrootcert={root_crt} connect_timeout=10 {extra}")
    # sslmode=verify-full: a plaintext or unverified connection fails (the backend's own
    # pg_stat_ssl would show the front's unix-socket leg, not the client's)
    cp = subprocess.run(["psql", "-X", "-At", conninfo, "-c", "select 't'"], capture_output=True,
                        text=True, timeout=30)
    return cp.returncode == 0, (cp.stdout + cp.stderr).strip()


def slap_loop(port, ca, stop_at, out):
    """mariadb-slap in turn with a connection per query and with persistent connections, until
    stop_at; out gets the number of runs and the first failure."""
    out.update(runs=0, failure=None)
    detach = True
    while time.monotonic() < stop_at and out["failure"] is None:
        cmd = ["mariadb-slap", "--no-defaults", "--host=127.0.0.1", f"--port={port}",
               "--protocol=TCP", f"--user={MY_USER}", f"--password={MY_PASSWORD}", "--ssl",
               f"--ssl-ca={ca}", "--ssl-verify-server-cert", "--concurrency=4", "--iterations=1",
               "--number-of-queries=" + ("200" if detach else "20000"), "--query=SELECT 1",
               "--create-schema=app", "--no-drop", "--silent"]
        if detach:
            cmd.append("--detach=1")
        cp = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        if cp.returncode != 0:
            out["failure"] = f"mariadb-slap (detach={int(detach)}): rc={cp.returncode}\n" \
                             f"{cp.stderr[-2000:]}{cp.stdout[-500:]}"
        out["runs"] += 1
        detach = not detach


def churn(dbtls, dbtlsd, port, work, root_crt, stop_at, counts, errors):
    """One change after another until stop_at; every step is checked."""
    step = 0
    while time.monotonic() < stop_at and not errors:
        step += 1
        kind = (step - 1) % 6  # a rotation first: a rollback needs a previous certificate
        try:
            if kind == 0:
                for inst in ("soak", "soakmy"):
                    dbtls("ssl", "server-certs", "create", "--instance", inst)
                    dbtls("ssl", "server-certs", "rotate", "--instance", inst)
                counts["rotate"] += 1
            elif kind == 1:
                for inst in ("soak", "soakmy"):
                    dbtls("ssl", "server-certs", "rollback", "--instance", inst)
                counts["rollback"] += 1
            elif kind == 2:
                name = f"c{step}"
                out = os.path.join(work, name)
                dbtls("ssl", "client-certs", "create", name, "--instance", "soak",
                      "--out-dir", out)
                ok, text = psql_ok(port, root_crt,
                                   f"sslcert={out}/client-cert.pem sslkey={out}/client-key.pem")
                if not ok:
                    errors.append(f"client-certificate login failed: {text}")
                dbtls("ssl", "client-certs", "delete", name, "--instance", "soak")
                counts["client-cert"] += 1
            elif kind == 3:
                dbtls("instances", "patch", "soak", "--tls-min", "TLSv1.3")
                counts["patch"] += 1
            elif kind == 4:
                dbtls("instances", "patch", "soak", "--tls-min", "TLSv1.2")
                counts["patch"] += 1
            else:
                dbtlsd.proc.send_signal(signal.SIGHUP)
                counts["sighup"] += 1
            ok, text = psql_ok(port, root_crt)
            if not ok or text != "t":
                errors.append(f"verify-full connection after step {step} failed: {text}")
        except SystemExit as e:  # bl.Dbtls dies on a failed command
            errors.append(f"dbtls command failed at step {step}: {e}")
        if dbtlsd.proc.poll() is not None:
            errors.append(f"dbtlsd exited ({dbtlsd.proc.returncode}) at step {step}")
        time.sleep(0.5)


def pgbench_problem(name, cp):
    if cp is None:
        return f"{name}: did not finish"
    text = cp.stdout + cp.stderr
    failed = re.search(r"number of failed transactions: (\d+)", text)
    if cp.returncode != 0 or (failed and failed.group(1) != "0") or "error" in cp.stderr.lower():
        return f"{name}: rc={cp.returncode}\n{text[-2000:]}"
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=int, default=150)
    ap.add_argument("--build-dir", default=os.path.join(ROOT, "build-asan"))
    args = ap.parse_args()
    bl.raise_nofile()
    os.environ.setdefault("ASAN_OPTIONS", "detect_leaks=1:halt_on_error=1")
    os.environ.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
    work = bl.tmpdir("dbtls-soak-")
    pg = my = dbtlsd = None
    problems = []
    try:
        pg = servers.PgServer()
        pg.start()
        subprocess.run(["pgbench", "-i", "-q", "-s", "1", "-h", pg.socket_dir, "-p",
                        str(pg.port), "-U", USER, "app"], check=True, capture_output=True,
                       timeout=300)
        dbtls = bl.Dbtls(os.path.abspath(args.build_dir), os.path.join(work, "state"))
        os.makedirs(dbtls.state_dir, mode=0o700)
        dbtls("init")
        port = servers.free_port()
        dbtls("instances", "create", "soak", "--engine", "postgres", "--listen",
              f"127.0.0.1:{port}", "--backend", pg.socket_path, "--endpoint",
              "localhost,127.0.0.1", "--ssl-mode", "ENCRYPTED_ONLY")
        root_crt = os.path.join(work, "root.crt")
        dbtls("bundle", "--instance", "soak", "--out", root_crt)
        my = servers.MariaDbServer()
        my.start()
        my.sql(f"CREATE DATABASE IF NOT EXISTS app; CREATE USER '{MY_USER}'@'%' IDENTIFIED VIA "
               f"mysql_native_password USING PASSWORD('{MY_PASSWORD}'); "
               f"GRANT ALL ON *.* TO '{MY_USER}'@'%'")
        my_port = servers.free_port()
        dbtls("instances", "create", "soakmy", "--engine", "mariadb", "--listen",
              f"127.0.0.1:{my_port}", "--backend", f"127.0.0.1:{my.port}", "--endpoint",
              "localhost,127.0.0.1", "--ssl-mode", "ENCRYPTED_ONLY")
        my_ca = os.path.join(work, "my-ca.pem")
        dbtls("bundle", "--instance", "soakmy", "--out", my_ca)
        dbtlsd = bl.start_dbtlsd(dbtls, work, ["--workers", "2"])
        bl.log(f"soak: {args.seconds} s, dbtlsd pid {dbtlsd.pid}, front 127.0.0.1:{port}")

        results = {}
        benches = [threading.Thread(target=pgbench,
                                    args=(port, root_crt, args.seconds, each, results))
                   for each in (True, False)]
        slapped = {}
        benches.append(threading.Thread(target=slap_loop, args=(
            my_port, my_ca, time.monotonic() + args.seconds, slapped)))
        for t in benches:
            t.start()
        counts = dict.fromkeys(("rotate", "rollback", "client-cert", "patch", "sighup"), 0)
        churn(dbtls, dbtlsd, port, work, root_crt, time.monotonic() + args.seconds - 5, counts,
              problems)
        for t in benches:
            t.join()
        for each, name in ((True, "pgbench -C"), (False, "pgbench")):
            cp = results.get(each)
            p = pgbench_problem(name, cp)
            if p:
                problems.append(p)
            elif cp is not None:
                tps = re.search(r"tps = ([\d.]+)", cp.stdout)
                bl.log(f"{name}: tps {tps.group(1) if tps else '?'}")
        if slapped.get("failure"):
            problems.append(slapped["failure"])
        bl.log(f"mariadb-slap: {slapped.get('runs', 0)} runs")
        bl.log("changes: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
        if dbtlsd.proc.poll() is not None:
            problems.append(f"dbtlsd exited early ({dbtlsd.proc.returncode})")
        dbtlsd.stop()
        rc = dbtlsd.proc.returncode
        log = dbtlsd.log()
        if rc != 0:
            problems.append(f"dbtlsd exited {rc} on SIGTERM")
        for marker in ("AddressSanitizer", "LeakSanitizer", "runtime error:"):
            if marker in log:
                i = log.index(marker)
                problems.append(f"sanitizer report in dbtlsd's log:\n{log[max(0, i - 200):i + 3000]}")
                break
    finally:
        if dbtlsd is not None:
            dbtlsd.stop()
        if pg is not None:
            pg.stop()
        if my is not None:
            my.stop()
        bl.rmtree(work)
    if problems:
        print("SOAK FAILED: " + "\n".join(problems))
        return 1
    print("SOAK OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
