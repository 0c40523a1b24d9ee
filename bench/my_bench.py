#!/usr/bin/python3
"""MariaDB TLS benchmark (issue 4): in one run on this machine, the same real MariaDB 10.11
reached with TLS two ways, with the same ECDSA P-256 certificate (issued by dbtls, exported with
`dbtls instances export`):

  native      MariaDB's own TLS (--ssl-cert/--ssl-key), client -> mariadbd over TCP
  dbtlsd      the dbtls front (instance ENCRYPTED_ONLY, engine mariadb) -> mariadbd without
              TLS over its unix socket (--backend-leg unix, as pg_bench's fronts reach
              PostgreSQL) or over 127.0.0.1 TCP (--backend-leg tcp)
  dbtlsd-bssl the same with --tls-library boringssl (its own state dir and instance: another CA
              of the same shape), where the build has the BoringSSL module

Measured with mariadb-slap (the C client shipped with MariaDB), mysql_native_password account:
  new conn/s     --detach=1: every query on a new TLS connection (connect, TLS, auth, query)
  CPU ms/conn    the daemon's utime+stime (/proc/<pid>/stat) over that run / connections
                 (native: mariadbd, i.e. TLS + authentication + thread; dbtlsd: the front only)
  queries/s      persistent connections, SELECT 1
Both run side by side; each measurement alternates between them --rounds times and reports
the median. Prints each front's ratios to native.

Run: /usr/bin/python3 bench/my_bench.py [--conn-queries 1500] [--queries 40000] [--rounds 3]
     [--concurrency 8] [--backend-leg unix|tcp] [--json FILE]
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

USER, PASSWORD = "bench", "bench-secret"
TARGETS = ["native", "dbtlsd", "dbtlsd-bssl"]


def state_with_instance(build_dir, state_dir, port, backend):
    """The instance bench-my in front of MariaDB at `backend` (its unix socket or
    127.0.0.1:port: --backend-leg) (bl.state_with_instance)."""
    return bl.state_with_instance(build_dir, state_dir, "bench-my", "mariadb", "10.11", port,
                                  backend)


def server_status(my):
    """(Connections, Com_select) of the MariaDB server: what the clients really did."""
    out = my.sql("SHOW GLOBAL STATUS WHERE Variable_name IN ('Connections', 'Com_select')")
    vals = dict(line.split("\t") for line in out.splitlines())
    return int(vals["Connections"]), int(vals["Com_select"])


# port -> a function returning the log of the process behind it (shown when a run fails)
LOGS = {}


def log_tail(port, lines=30):
    log = LOGS.get(port)
    if log is None:
        return ""
    return "--- last lines of the log behind that port:\n" + "\n".join(
        log().splitlines()[-lines:]) + "\n"


def slap(port, ca, queries, concurrency, detach):
    """Runs mariadb-slap over TLS (server certificate verified against `ca`): about `queries`
    SELECT 1 in all, spread over the clients. Returns the seconds it took."""
    cmd = ["mariadb-slap", "--no-defaults", "--host=127.0.0.1", f"--port={port}",
           "--protocol=TCP", f"--user={USER}", f"--password={PASSWORD}", "--ssl",
           f"--ssl-ca={ca}", "--ssl-verify-server-cert", f"--concurrency={concurrency}",
           "--iterations=1",
           f"--number-of-queries={queries}", "--query=SELECT 1",
           "--create-schema=app", "--no-drop", "--silent"]
    if detach:
        cmd.append(f"--detach={detach}")
    t0 = time.monotonic()
    cp = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    wall = time.monotonic() - t0
    if cp.returncode != 0:
        bl.die(f"mariadb-slap through port {port} failed ({cp.returncode}):\n"
               f"{cp.stderr}{cp.stdout}{log_tail(port)}")
    m = re.search(r"Average number of seconds to run all queries: ([\d.]+)", cp.stdout)
    return float(m.group(1)) if m and float(m.group(1)) > 0 else wall


def check_tls(port, ca):
    """One mariadb client session must report a TLS cipher (the run is really over TLS)."""
    cp = subprocess.run(["mariadb", "--no-defaults", "--host=127.0.0.1", f"--port={port}",
                         "--protocol=TCP", f"--user={USER}", f"--password={PASSWORD}", "--ssl",
                         f"--ssl-ca={ca}", "--ssl-verify-server-cert", "--connect-timeout=10",
                         "-e", "status"],
                        capture_output=True, text=True, timeout=60)
    m = re.search(r"SSL:\s+Cipher in use is (\S+)", cp.stdout)
    if cp.returncode != 0 or not m:
        bl.die(f"no TLS session through port {port}:\n{cp.stderr}{cp.stdout}")
    return m.group(1)


def m_connections(name, port, pid, ca, args, my):
    cpu = bl.CpuMeter(pid)
    c0, _ = server_status(my)
    cpu.start()
    secs = slap(port, ca, args.conn_queries, args.concurrency, detach=1)
    used = cpu.stop()
    c1, _ = server_status(my)
    n = c1 - c0 - 1  # less our own status query's connection
    return {"connections": n, "conn_per_s": n / secs, "cpu_ms_conn": used * 1000 / n}


def m_queries(name, port, pid, ca, args, my):
    _, q0 = server_status(my)
    secs = slap(port, ca, args.queries, args.concurrency, detach=0)
    _, q1 = server_status(my)
    n = q1 - q0 - 1
    return {"queries": n, "qps": n / secs}


def measure_all(tgts, args, my):
    """Counts come from the server's own status counters (Connections, Com_select), so they
    are what happened, whatever the client's options mean. Each measurement alternates between
    the targets --rounds times (the order turning each round, so a drifting machine load
    favours neither); each figure is the median."""
    samples = {t[0]: {"cipher": [check_tls(t[1], t[3])]} for t in tgts}
    for what, fn in (("new connections", m_connections), ("queries", m_queries)):
        for r in range(args.rounds):
            for t in tgts[r % len(tgts):] + tgts[:r % len(tgts)]:
                bl.log(f"{what}: {t[0]} (round {r + 1}/{args.rounds})")
                for k, v in fn(*t, args, my).items():
                    samples[t[0]].setdefault(k, []).append(v)
    results = {}
    for name, ks in samples.items():
        results[name] = {k: (vs[0] if k == "cipher" else statistics.median(vs))
                         for k, vs in ks.items()}
        results[name]["samples"] = ks
    return results


ROWS = [
    ("new conn/s (connect+TLS+auth+query)", "conn_per_s"),
    ("CPU ms / connection", "cpu_ms_conn"),
    ("queries/s (persistent, SELECT 1)", "qps"),
]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--conn-queries", type=int, default=1500,
                    help="connections in each new-connection run")
    ap.add_argument("--queries", type=int, default=40000, help="queries in each steady run")
    ap.add_argument("--rounds", type=int, default=3,
                    help="rounds over the targets per measurement (median)")
    ap.add_argument("--concurrency", type=int, default=8, help="mariadb-slap clients")
    ap.add_argument("--targets", default=None,
                    help="comma list of native, dbtlsd, dbtlsd-bssl (default: all; dbtlsd-bssl "
                         "where the build has the BoringSSL module)")
    ap.add_argument("--dbtlsd-args", default="", help="extra dbtlsd arguments")
    ap.add_argument("--backend-leg", choices=("unix", "tcp"), default="unix",
                    help="how dbtlsd reaches MariaDB: its unix socket (as pg_bench's fronts "
                    "reach PostgreSQL; a front on the database host) or 127.0.0.1 TCP")
    ap.add_argument("--no-build", action="store_true", help="use build/ as it is")
    ap.add_argument("--build-dir", help="use this build instead of building build/")
    ap.add_argument("--openssl-certs", action="store_true",
                    help="native only: make the certificate with the openssl command")
    ap.add_argument("--json", help="also write the results to this file")
    args = ap.parse_args()
    bl.raise_nofile()
    build_dir = os.path.abspath(args.build_dir) if args.build_dir else bl.build(args.no_build)
    bssl = os.path.exists(os.path.join(build_dir, "src", "tls", "dbtls-tls-boringssl.so"))
    targets = [t for t in args.targets.split(",") if t] if args.targets else \
        [t for t in TARGETS if bssl or t != "dbtlsd-bssl"]
    if set(targets) - set(TARGETS):
        bl.die(f"--targets: expected a comma list of {', '.join(TARGETS)}")
    if "dbtlsd-bssl" in targets and not bssl:
        bl.die(f"{build_dir} has no src/tls/dbtls-tls-boringssl.so (Debian's "
               "android-libboringssl-dev was not installed when it was configured)")
    work = bl.tmpdir("dbtls-mybench-")
    results, my, stops = {}, None, []
    try:
        front_port = servers.free_port()
        my = servers.MariaDbServer()
        backend = my.socket if args.backend_leg == "unix" else f"127.0.0.1:{my.port}"
        tls_dir = os.path.join(work, "tls")
        if args.openssl_certs:
            if set(targets) & {"dbtlsd", "dbtlsd-bssl"}:
                bl.die("--openssl-certs is only for runs without the dbtlsd targets")
            cert, key, root = bl.openssl_certs(tls_dir)
        else:
            dbtls = state_with_instance(build_dir, os.path.join(work, "state"), front_port,
                                        backend)
            cert, key, root = bl.export_cert(dbtls, "bench-my", tls_dir)
        if os.geteuid() == 0:
            subprocess.run(["chown", "-R", "mysql:mysql", tls_dir], check=True)
        my.ssl_cert, my.ssl_key = cert, key
        my.start()
        my.sql(f"CREATE USER '{USER}'@'%' IDENTIFIED VIA mysql_native_password USING "
               f"PASSWORD('{PASSWORD}'); GRANT ALL ON *.* TO '{USER}'@'%'")
        bl.log(f"MariaDB on 127.0.0.1:{my.port} with its own TLS")
        tgts = []
        if "native" in targets:
            tgts.append(("native", my.port, my.proc.pid, root))
            LOGS[my.port] = my.log
        if "dbtlsd" in targets:
            d = bl.start_dbtlsd(dbtls, work, args.dbtlsd_args.split())
            stops.append(d.stop)
            tgts.append(("dbtlsd", front_port, d.pid, root))
            LOGS[front_port] = d.log
        if "dbtlsd-bssl" in targets:
            # a dbtlsd of its own needs a state dir of its own (two daemons on one would both
            # serve every instance)
            port2, state2 = servers.free_port(), os.path.join(work, "state-bssl")
            dbtls2 = state_with_instance(build_dir, state2, port2, backend)
            root2 = os.path.join(work, "bssl-ca.pem")
            dbtls2("ssl", "server-ca-certs", "download", "--instance", "bench-my", "--out", root2)
            d = bl.start_dbtlsd(dbtls2, state2,
                                ["--tls-library", "boringssl", *args.dbtlsd_args.split()])
            stops.append(d.stop)
            tgts.append(("dbtlsd-bssl", port2, d.pid, root2))
            LOGS[port2] = d.log
        results = measure_all(tgts, args, my)
    finally:
        for stop in stops:
            stop()
        if my:
            my.stop()
        bl.rmtree(work)

    print(f"\nMariaDB 10.11 TLS benchmark: {os.cpu_count()} CPUs, medians of {args.rounds} "
          f"rounds, mariadb-slap "
          f"--concurrency={args.concurrency}, dbtlsd to MariaDB over "
          f"{'its unix socket' if args.backend_leg == 'unix' else '127.0.0.1 TCP'}, ciphers: "
          + ", ".join(f"{t} {r['cipher']}" for t, r in results.items()))
    bl.print_table("results", [(label, {t: results[t].get(k) for t in results})
                               for label, k in ROWS], list(results))
    for front in [t for t in ("dbtlsd", "dbtlsd-bssl") if t in results]:
        if "native" in results:
            bl.print_table(f"{front} / native", [(label, {"ratio": bl.ratio(
                results[front].get(k), results["native"].get(k))}) for label, k in ROWS],
                ["ratio"])
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "results": results}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
