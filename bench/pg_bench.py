#!/usr/bin/python3
"""PostgreSQL TLS benchmark (issue 3): in one run on this machine, the same real PostgreSQL 15
reached four ways, all with TLS on the client leg and the same ECDSA P-256 certificate (the one
dbtls issues, exported with `dbtls instances export`):

  native      PostgreSQL's own TLS (ssl=on), client -> postgres over TCP
  pgb-term    PgBouncer 1.18 (Debian) with client TLS as a pure terminator: pool_mode=session,
              server_lifetime=0, so every client gets a fresh server connection (dbtlsd's work)
  pgb-pool    PgBouncer in its pooling default (session mode, server connections reused)
  dbtlsd      the dbtls front, instance ENCRYPTED_ONLY
  dbtlsd-bssl the same with --tls-library boringssl (its own state dir and instance: another CA
              of the same shape), where the build has the BoringSSL module

PgBouncer and dbtlsd reach PostgreSQL over its unix socket without TLS (trust). Measured:
  new conn/s        pgbench -C -S (TLS, sslmode=require): one connection per transaction
  TLS handshakes/s  handshake-only client: SSLRequest, TLS handshake, hang up
  CPU ms/handshake  the daemon's utime+stime (/proc/<pid>/stat) / handshakes, handshake-only run
                    (native: postmaster + reaped backends, i.e. a fork and backend start too)
  CPU ms/conn       the same over the pgbench -C run (TLS + startup + relay + close)
  steady tps, lat   pgbench -S -P 1 with persistent connections: the last --seconds after a
                    --warmup (new backends start slow), and the whole run's tps
  CPU us/tx         the daemon's CPU over that run / transactions (native: the backends'
                    TLS and query work too; not comparable)
  COPY out/in MB/s  a 50 MB COPY TO STDOUT / FROM STDIN through psql (\\timing)
  idle kB/conn      daemon RSS delta / N after opening N idle TLS connections (psycopg)
All run side by side; each measurement goes round the targets --rounds times (the order
turning each round, so a drifting machine load favours no one) and reports the median. Prints
the table, dbtlsd's ratios to the others, and the goals of issue 3.

Run: /usr/bin/python3 bench/pg_bench.py [--seconds 5] [--warmup 5] [--rounds 3] [--idle 1000]
     [--targets ...] [--only ...] [--json F]
(as root: PostgreSQL and PgBouncer are run as the postgres user).
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time

import benchlib as bl
from benchlib import servers

TARGETS = ["native", "pgb-term", "pgb-pool", "dbtlsd", "dbtlsd-bssl"]
FRONTS = ["dbtlsd", "dbtlsd-bssl"]
USER = "trustuser"


def pg_env(extra=None):
    e = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    e.update({"PGSSLMODE": "require", "PGCONNECT_TIMEOUT": "10"})
    e.update(extra or {})
    return e


def pgbench(port, seconds, clients, threads, connect_each=False):
    cmd = ["pgbench", "-n", "-S", "-T", str(seconds), "-c", str(clients), "-j", str(threads),
           "-h", "127.0.0.1", "-p", str(port), "-U", USER]
    if connect_each:
        cmd.append("-C")
    cmd.append("app")
    cp = subprocess.run(cmd, capture_output=True, text=True, env=pg_env(),
                        timeout=seconds + 120)
    if cp.returncode != 0:
        bl.die(f"{' '.join(cmd)} failed ({cp.returncode}):\n{cp.stderr}{cp.stdout}")

    def grab(rx):
        m = re.search(rx, cp.stdout)
        return float(m.group(1)) if m else None
    return {
        "tps": grab(r"tps = ([\d.]+)"),
        "latency_ms": grab(r"latency average = ([\d.]+) ms"),
        "xacts": grab(r"number of transactions actually processed: (\d+)"),
        "failed": grab(r"number of failed transactions: (\d+)"),
    }


def psql_timed(port, sql, stdin=None, repeat=3):
    """Best (lowest) server-round-trip time in seconds of `sql` run through psql's \\timing."""
    times = []
    for _ in range(repeat):
        fin = open(stdin, "rb") if stdin else subprocess.DEVNULL
        try:
            cp = subprocess.run(["psql", "-X", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1",
                                 "-p", str(port), "-U", USER, "-d", "app", "-c", "\\timing on",
                                 "-c", sql, "-o", "/dev/null"], stdin=fin, capture_output=True,
                                text=True, env=pg_env(), timeout=300)
        finally:
            if stdin:
                fin.close()
        m = re.search(r"Time: ([\d.]+) ms", cp.stdout)
        if cp.returncode != 0 or not m:
            bl.die(f"psql {sql!r} through port {port} failed:\n{cp.stderr}{cp.stdout}")
        times.append(float(m.group(1)) / 1000)
    return min(times)


class PgBouncer:
    def __init__(self, name, workdir, pg, cert, key, terminator):
        self.name = name
        self.port = servers.free_port()
        d = os.path.join(workdir, name)
        os.makedirs(d)
        with open(os.path.join(d, "userlist.txt"), "w") as f:
            f.write(f'"{USER}" ""\n')
        lines = [
            "[databases]",
            f"app = host={pg.socket_dir} port={pg.port} dbname=app",
            "[pgbouncer]",
            "listen_addr = 127.0.0.1",
            f"listen_port = {self.port}",
            "unix_socket_dir =",
            "auth_type = trust",
            f"auth_file = {d}/userlist.txt",
            "pool_mode = session",
            "max_client_conn = 5000",
            "client_tls_sslmode = require",
            f"client_tls_cert_file = {cert}",
            f"client_tls_key_file = {key}",
            "log_connections = 0",
            "log_disconnections = 0",
            "ignore_startup_parameters = extra_float_digits",
        ]
        if terminator:
            # "Setting it to 0 means the connection is to be used only once, then closed."
            lines += ["server_lifetime = 0", "default_pool_size = 100"]
        with open(os.path.join(d, "pgbouncer.ini"), "w") as f:
            f.write("\n".join(lines) + "\n")
        if os.geteuid() == 0:
            subprocess.run(["chown", "-R", "postgres:postgres", d], check=True)
        self.daemon = bl.Daemon(name, ["pgbouncer", os.path.join(d, "pgbouncer.ini")],
                                os.path.join(d, "pgbouncer.log"), port=self.port,
                                user="postgres")
        self.pid = self.daemon.pid

    def stop(self):
        self.daemon.stop()


def idle_memory(port, pid, n):
    """Opens n idle TLS connections (psycopg, sslmode=require) and returns the RSS delta of
    `pid` per connection in kB (after a warm-up of 20 connections opened and closed)."""
    import psycopg
    dsn = f"host=127.0.0.1 port={port} dbname=app user={USER} sslmode=require connect_timeout=10"
    for c in [psycopg.connect(dsn) for _ in range(20)]:
        c.close()
    time.sleep(0.5)
    before = bl.rss_kb(pid)
    conns = []
    try:
        for _ in range(n):
            conns.append(psycopg.connect(dsn))
        time.sleep(1.0)
        after = bl.rss_kb(pid)
    finally:
        for c in conns:
            c.close()
    return (after - before) / n


class Target:
    """One way to reach the server: name, TLS port, and the process whose CPU and memory count
    (children=True: also its reaped children, for PostgreSQL's postmaster)."""

    def __init__(self, name, port, pid, children=False):
        self.name, self.port, self.pid, self.children = name, port, pid, children


def m_handshakes(t, args, ctx):
    cpu = bl.CpuMeter(t.pid, t.children)
    cpu.start()
    t0 = time.monotonic()
    n, errors = bl.pg_handshakes("127.0.0.1", t.port, args.seconds, args.workers)
    elapsed = time.monotonic() - t0
    used = cpu.stop()
    if n == 0:
        bl.die(f"{t.name}: no TLS handshake succeeded ({errors} errors)")
    return {"hs_per_s": n / elapsed, "cpu_ms_hs": used * 1000 / n, "hs_errors": errors}


def m_connections(t, args, ctx):
    cpu = bl.CpuMeter(t.pid, t.children)
    cpu.start()
    pb = pgbench(t.port, args.seconds, args.clients, args.threads, connect_each=True)
    used = cpu.stop()
    return {"conn_per_s": pb["tps"],
            "cpu_ms_conn": used * 1000 / pb["xacts"] if pb["xacts"] else None}


def m_steady(t, args, ctx):
    """pgbench -S on persistent connections for --warmup + --seconds, reading pgbench's
    per-second progress as it comes: tps, latency and the daemon's CPU over the last --seconds
    only. Every target but PgBouncer pooling starts new backends for each run, and a new
    backend runs at half speed for its first seconds (page faults on the shared buffers, cold
    caches: pgbench -P shows it ramp from ~7k to ~15k tps), which pooling skipped in an
    earlier round; the steady state is what follows. The whole run's tps is kept too."""
    # two seconds more than measured: pgbench may end before printing its last progress line,
    # or print it late
    cmd = ["pgbench", "-n", "-S", "-T", str(args.warmup + args.seconds + 2), "-P", "1",
           "-c", str(args.clients), "-j", str(args.threads), "-h", "127.0.0.1",
           "-p", str(t.port), "-U", USER, "app"]
    cpu = bl.CpuMeter(t.pid, t.children)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=pg_env())
    # progress lines: (seconds since the start, tps and mean latency since the line before);
    # a pgbench thread that falls behind prints one line for the seconds it missed
    start = end = used = None
    window, err = [], []
    try:
        for line in proc.stderr:  # pgbench writes progress to stderr, unbuffered
            err.append(line)
            m = re.match(r"progress: ([\d.]+) s, ([\d.]+) tps, lat ([\d.]+) ms", line)
            if not m or end is not None:
                continue
            at, tps, lat = (float(x) for x in m.groups())
            if start is None:
                if at >= args.warmup:
                    start = last = at
                    cpu.start()
                continue
            window.append((tps * (at - last), lat))
            last = at
            if at >= start + args.seconds:
                end = at
                used = cpu.stop(settle=0)
        out = proc.stdout.read()
        proc.wait(timeout=args.warmup + args.seconds + 120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    whole = re.search(r"tps = ([\d.]+)", out)
    if proc.returncode != 0 or not whole or end is None:
        bl.die(f"{' '.join(cmd)} failed ({proc.returncode}) or its progress did not cover "
               f"{args.seconds} s after a warm-up of {args.warmup} s:\n{''.join(err)}{out}")
    xacts = sum(n for n, _lat in window)
    return {"tps": xacts / (end - start),
            "lat_ms": sum(n * lat for n, lat in window) / xacts if xacts else None,
            "cpu_us_tx": used * 1e6 / xacts if xacts else None,
            "tps_whole": float(whole.group(1))}


def m_copy(t, args, ctx):
    size_mb = os.path.getsize(ctx["bulk_file"]) / 1e6
    out = size_mb / psql_timed(t.port, "COPY bulk TO STDOUT", repeat=1)
    ctx["pg"].psql("TRUNCATE bulk_in", user=USER)
    inn = size_mb / psql_timed(t.port, "COPY bulk_in FROM STDIN", stdin=ctx["bulk_file"],
                               repeat=1)
    return {"copy_out_mbs": out, "copy_in_mbs": inn}


def m_idle(t, args, ctx):
    if not args.idle or t.children:
        return {}
    return {"idle_kb": idle_memory(t.port, t.pid, args.idle)}


# (what, function, rounds, --only name): every measurement runs in rounds over all targets, the
# order turning each round, so that a machine whose load drifts during the run does not favour
# one target; each figure is the median of its rounds.
METRICS = [
    ("handshake-only client", m_handshakes, None, "handshakes"),
    ("pgbench -C -S", m_connections, None, "connections"),
    ("pgbench -S", m_steady, None, "steady"),
    ("COPY out and in", m_copy, None, "copy"),
    ("idle TLS connections", m_idle, 1, "idle"),
]


def state_with_instance(build_dir, state_dir, port, pg):
    """The instance bench-pg in front of pg's unix socket (bl.state_with_instance)."""
    return bl.state_with_instance(build_dir, state_dir, "bench-pg", "postgres", "15", port,
                                  pg.socket_path)


def tls_floor(build_dir, program="tls_floor"):
    """Server CPU ms per new TLS connection that no front on that TLS library can go below here
    (see bench/tls_floor.c; tls_floor_boringssl: the same with BoringSSL), or None when the
    program is not built."""
    exe = os.path.join(build_dir, "bench", program)
    if not os.path.exists(exe):
        return None
    bl.log(f"floor: {program} 3000")
    cp = subprocess.run([exe, "3000"], capture_output=True, text=True, timeout=600)
    m = re.search(r"^floor\s+([0-9.]+) ms", cp.stdout, re.M)
    if cp.returncode != 0 or not m:
        bl.die(f"tls_floor failed:\n{cp.stdout}{cp.stderr}")
    return float(m.group(1))


def measure_all(tgts, args, ctx):
    samples = {t.name: {} for t in tgts}
    only = [m for m in args.only.split(",") if m]
    for what, fn, rounds, name in METRICS:
        if only and name not in only:
            continue
        rounds = rounds or args.rounds
        for r in range(rounds):
            order = tgts[r % len(tgts):] + tgts[:r % len(tgts)]
            for t in order:
                bl.log(f"{what}: {t.name} (round {r + 1}/{rounds})")
                for k, v in fn(t, args, ctx).items():
                    samples[t.name].setdefault(k, []).append(v)
    results = {}
    for name, ks in samples.items():
        results[name] = {}
        for k, vs in ks.items():
            vs = [v for v in vs if v is not None]
            results[name][k] = statistics.median(vs) if vs else None
        results[name]["samples"] = ks
    return results


ROWS = [
    ("new conn/s (pgbench -C -S)", "conn_per_s"),
    ("TLS handshakes/s (handshake only)", "hs_per_s"),
    ("CPU ms / TLS handshake", "cpu_ms_hs"),
    ("CPU ms / connection (pgbench -C)", "cpu_ms_conn"),
    ("steady tps (pgbench -S)", "tps"),
    ("  whole run, incl. warm-up", "tps_whole"),
    ("steady latency ms", "lat_ms"),
    ("CPU us / transaction (pgbench -S)", "cpu_us_tx"),
    ("COPY out MB/s", "copy_out_mbs"),
    ("COPY in MB/s", "copy_in_mbs"),
    ("idle kB / TLS connection", "idle_kb"),
]

# (label, metric, other target, op, bound): dbtlsd's metric / other's metric `op` bound.
GOALS = [
    ("CPU per new TLS connection <= 0.5x PgBouncer", "cpu_ms_conn", "pgb-term", "<=", 0.5),
    ("new-connection rate >= PgBouncer terminator", "conn_per_s", "pgb-term", ">=", 1.0),
    ("new-connection rate >= 1.2x native TLS", "conn_per_s", "native", ">=", 1.2),
    ("steady tps >= 1.25x PgBouncer", "tps", "pgb-pool", ">=", 1.25),
    ("steady tps >= 0.9x native TLS", "tps", "native", ">=", 0.9),
    ("bulk COPY out MB/s >= 1x native TLS", "copy_out_mbs", "native", ">=", 1.0),
    ("memory per idle TLS connection <= 1.1x PgBouncer", "idle_kb", "pgb-term", "<=", 1.1),
]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=int, default=5, help="duration of each timed run")
    ap.add_argument("--warmup", type=int, default=5, choices=range(1, 3600), metavar="S",
                    help="pgbench -S: seconds before the steady state is measured")
    ap.add_argument("--rounds", type=int, default=3,
                    help="rounds over all targets per measurement (median)")
    ap.add_argument("--clients", type=int, default=8, help="pgbench clients")
    ap.add_argument("--threads", type=int, default=2, help="pgbench threads")
    ap.add_argument("--workers", type=int, default=max(2, os.cpu_count() or 2),
                    help="handshake-only client processes")
    ap.add_argument("--idle", type=int, default=1000, help="idle connections (0 = skip)")
    ap.add_argument("--bulk-mb", type=int, default=50, help="size of the COPY")
    ap.add_argument("--scale", type=int, default=10, help="pgbench -i scale")
    ap.add_argument("--targets", default="",
                    help=f"comma list of {', '.join(TARGETS)} (default: all; dbtlsd-bssl where "
                         "the build has the BoringSSL module)")
    ap.add_argument("--only", default="",
                    help="comma list of measurements to run: " +
                         ", ".join(m[3] for m in METRICS) + " (default: all)")
    ap.add_argument("--dbtlsd-args", default="", help="extra dbtlsd arguments")
    ap.add_argument("--no-build", action="store_true", help="use build/ as it is")
    ap.add_argument("--build-dir", help="use this build instead of building build/")
    ap.add_argument("--openssl-certs", action="store_true",
                    help="baselines only: make the P-256 certificate with the openssl command "
                         "instead of dbtls (same key type and chain shape)")
    ap.add_argument("--json", help="also write the results to this file")
    args = ap.parse_args()
    build_dir = os.path.abspath(args.build_dir) if args.build_dir else bl.build(args.no_build)
    bssl = os.path.exists(os.path.join(build_dir, "src", "tls", "dbtls-tls-boringssl.so"))
    targets = [t for t in args.targets.split(",") if t] or \
        [t for t in TARGETS if bssl or t != "dbtlsd-bssl"]
    for m in args.only.split(","):
        if m and m not in [x[3] for x in METRICS]:
            bl.die(f"unknown measurement {m!r}: expected some of "
                   f"{', '.join(x[3] for x in METRICS)}")
    for t in targets:
        if t not in TARGETS:
            bl.die(f"unknown target {t!r}: expected some of {', '.join(TARGETS)}")

    if "dbtlsd-bssl" in targets and not bssl:
        bl.die(f"{build_dir} has no src/tls/dbtls-tls-boringssl.so (Debian's "
               "android-libboringssl-dev was not installed when it was configured)")
    bl.raise_nofile()
    work = bl.tmpdir("dbtls-bench-")
    results, stops, floor, floor_bssl = {}, [], None, None
    try:
        pg = servers.PgServer(max_connections=args.idle + 200)
        stops.append(pg.stop)
        front_port = servers.free_port()
        if args.openssl_certs:
            if set(FRONTS) & set(targets):
                bl.die("--openssl-certs is only for runs without the dbtlsd target")
            cert, key, _root = bl.openssl_certs(os.path.join(work, "tls"))
        else:
            dbtls = state_with_instance(build_dir, os.path.join(work, "state"), front_port, pg)
            cert, key, _root = bl.export_cert(dbtls, "bench-pg", os.path.join(work, "tls"))
        if os.geteuid() == 0:
            subprocess.run(["chown", "-R", "postgres:postgres", os.path.join(work, "tls")],
                           check=True)
        os.chmod(key, 0o600)
        pg.extra_conf.update({"ssl": "on", "ssl_cert_file": f"'{cert}'",
                              "ssl_key_file": f"'{key}'", "log_connections": "off"})
        bl.log(f"PostgreSQL 15 on 127.0.0.1:{pg.port} (ssl=on) and {pg.socket_dir}")
        pg.start()
        bl.log(f"pgbench -i -s {args.scale}")
        cp = subprocess.run(["pgbench", "-i", "-q", "-s", str(args.scale), "-h", pg.socket_dir,
                             "-p", str(pg.port), "-U", USER, "app"], capture_output=True,
                            text=True, timeout=600)
        if cp.returncode != 0:
            bl.die(f"pgbench -i failed:\n{cp.stderr}")
        rows = args.bulk_mb * 1_000_000 // 490
        pg.psql("CREATE TABLE bulk AS SELECT i AS id, repeat(md5(i::text), 15) AS payload "
                f"FROM generate_series(1, {rows}) i; CREATE TABLE bulk_in (LIKE bulk);",
                user=USER)
        bulk_file = os.path.join(work, "bulk.copy")
        with open(bulk_file, "wb") as f:
            subprocess.run(["psql", "-X", "-h", pg.socket_dir, "-p", str(pg.port), "-U", USER,
                            "-d", "app", "-c", "COPY bulk TO STDOUT"], stdout=f, check=True,
                           timeout=300)
        bl.log(f"COPY data: {os.path.getsize(bulk_file) / 1e6:.1f} MB")

        tgts = []
        for t in targets:
            if t == "native":
                tgts.append(Target(t, pg.port, pg.proc.pid, children=True))
            elif t in ("pgb-term", "pgb-pool"):
                pgb = PgBouncer(t, work, pg, cert, key, terminator=(t == "pgb-term"))
                stops.append(pgb.stop)
                tgts.append(Target(t, pgb.port, pgb.pid))
            elif t == "dbtlsd":
                d = bl.start_dbtlsd(dbtls, work, args.dbtlsd_args.split())
                stops.append(d.stop)
                tgts.append(Target(t, front_port, d.pid))
            elif t == "dbtlsd-bssl":
                # a dbtlsd of its own needs a state dir of its own (two daemons on one would
                # both serve every instance)
                port2 = servers.free_port()
                dbtls2 = state_with_instance(build_dir, os.path.join(work, "state-bssl"), port2,
                                             pg)
                d = bl.start_dbtlsd(dbtls2, os.path.join(work, "state-bssl"),
                                    ["--tls-library", "boringssl", *args.dbtlsd_args.split()])
                stops.append(d.stop)
                tgts.append(Target(t, port2, d.pid))
        results = measure_all(tgts, args, {"pg": pg, "bulk_file": bulk_file})
        floor = tls_floor(build_dir)
        if "dbtlsd-bssl" in results:
            floor_bssl = tls_floor(build_dir, "tls_floor_boringssl")
    finally:
        for stop in reversed(stops):
            stop()
        bl.rmtree(work)

    print(f"\nPostgreSQL 15 TLS benchmark: {os.cpu_count()} CPUs, medians of {args.rounds} "
          f"rounds of {args.seconds} s, "
          f"pgbench -c {args.clients} -j {args.threads}, {args.workers} handshake clients, "
          f"{args.idle} idle connections")
    bl.print_table("results", [(label, {t: results[t].get(k) for t in results})
                               for label, k in ROWS], list(results))
    for front in [f for f in FRONTS if f in results]:
        others = [t for t in results if t not in FRONTS]
        bl.print_table(f"{front} / other", [(label, {t: bl.ratio(results[front].get(k),
                                                                 results[t].get(k))
                                                     for t in others}) for label, k in ROWS],
                       others)
        print("\ngoals (issue 3)" + ("" if front == "dbtlsd" else ", dbtlsd --tls-library boringssl"))
        for label, k, other, op, bound in GOALS:
            r = bl.ratio(results[front].get(k), results.get(other, {}).get(k))
            if r is None:
                verdict = "not measured"
            else:
                met = r <= bound if op == "<=" else r >= bound
                verdict = f"{r:.2f}x  {'met' if met else 'NOT met'}"
            print(f"  {label:<52} {verdict}")
    if floor is not None:
        print(f"\nfloor (build/bench/tls_floor: OpenSSL's own handshake in memory + a loopback "
              f"TCP connection): {floor:.3f} ms server CPU per new TLS connection")
        for t in ("pgb-term", "dbtlsd"):
            v = results.get(t, {}).get("cpu_ms_hs")
            if v is not None:
                print(f"  {t:<9} CPU per TLS handshake {v:.3f} ms = floor + {v - floor:.3f} ms")
    v = results.get("dbtlsd-bssl", {}).get("cpu_ms_hs")
    if floor_bssl is not None and v is not None:
        print(f"floor with BoringSSL (build/bench/tls_floor_boringssl): {floor_bssl:.3f} ms\n"
              f"  dbtlsd-bssl CPU per TLS handshake {v:.3f} ms = floor + {v - floor_bssl:.3f} ms")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "results": results, "floor_ms": floor,
                       "floor_boringssl_ms": floor_bssl}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
