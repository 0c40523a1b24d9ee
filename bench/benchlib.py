"""Shared pieces of the benchmark scripts (pg_bench.py, my_bench.py): the optimized build, a
dbtls state directory with an instance and its exported certificate, dbtlsd / PgBouncer
processes, CPU and memory readings from /proc, a handshake-only TLS client, and the table
printer. The database servers themselves come from tests/integration/servers.py, the same code
the integration tests use.
"""
import multiprocessing
import os
import pathlib
import resource
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "integration"))
import servers  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


def die(msg):
    print(f"bench: {msg}", file=sys.stderr)
    sys.exit(1)


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def raise_nofile():
    """Lifts RLIMIT_NOFILE to the hard limit (children inherit it): 1000 idle connections need
    2000+ descriptors in the daemons and in this process."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def build(skip=False):
    """Builds with scripts/build.sh (optimized build/ dir) and returns the absolute build dir."""
    if skip:
        d = ROOT / "build"
    else:
        cp = subprocess.run([str(ROOT / "scripts" / "build.sh")], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE)
        if cp.returncode != 0:
            die("scripts/build.sh failed")
        d = ROOT / cp.stdout.strip().splitlines()[-1]
    return str(d)


# --- /proc readings -------------------------------------------------------------------------
def _stat_fields(pid):
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()


def cpu_seconds(pid, children=False):
    """utime+stime of `pid` in seconds (all its threads); with children=True also the CPU of
    its children: those that have exited and been reaped (cutime+cstime) and those still
    running (their own utime+stime). PostgreSQL's postmaster forks every backend, so this
    covers the whole server's per-connection work, also in the middle of a run whose backends
    live on. (The children first: one that ends between the two reads is counted twice rather
    than not at all, a backend's life at most; persistent connections end after the run.)"""
    ticks = 0
    if children:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            kids = f.read().split()
        for kid in kids:
            try:
                fields = _stat_fields(kid)
            except (FileNotFoundError, ProcessLookupError):
                continue  # gone: counted in cutime below
            ticks += int(fields[11]) + int(fields[12])
    fields = _stat_fields(pid)
    ticks += int(fields[11]) + int(fields[12])
    if children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / CLK_TCK


def rss_kb(pid):
    """Resident set size of `pid` in kB (VmRSS)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


class CpuMeter:
    """Measures the CPU a process spends between start() and stop()."""

    def __init__(self, pid, children=False):
        self.pid = pid
        self.children = children
        self.t0 = None

    def start(self):
        self.t0 = cpu_seconds(self.pid, self.children)

    def stop(self, settle=0.5):
        time.sleep(settle)  # let the server reap/close what the run left behind
        return cpu_seconds(self.pid, self.children) - self.t0


# --- processes ------------------------------------------------------------------------------
def _as(user):
    if os.geteuid() != 0:
        return {}
    import pwd
    pw = pwd.getpwnam(user)
    return {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}


class Dbtls:
    """A dbtls state directory driven by the CLI of the build under test."""

    def __init__(self, build_dir, state_dir):
        self.bin = os.path.join(build_dir, "src", "bin", "dbtls")
        self.dbtlsd_bin = os.path.join(build_dir, "src", "bin", "dbtlsd")
        self.state_dir = state_dir
        if not os.access(self.bin, os.X_OK):
            die(f"{self.bin} is not built")

    def __call__(self, *args):
        cp = subprocess.run([self.bin, "--state-dir", self.state_dir, *map(str, args)],
                            capture_output=True, text=True, timeout=120)
        if cp.returncode != 0:
            die(f"dbtls {' '.join(map(str, args))} failed ({cp.returncode}): "
                f"{cp.stderr.strip()}")
        return cp.stdout


class Daemon:
    """A long-running process with stderr to a log file; stop() = SIGTERM then SIGKILL."""

    def __init__(self, name, cmd, log_path, ready=None, port=None, user=None, env=None,
                 timeout=30):
        self.name = name
        self.log_path = log_path
        self._logf = open(log_path, "w")
        kw = _as(user) if user else {}
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self._logf,
                                     stderr=subprocess.STDOUT, env=env, **kw)
        self.pid = self.proc.pid
        deadline = time.monotonic() + timeout
        try:
            if ready:
                while ready not in self.log():
                    if self.proc.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError("not ready")
                    time.sleep(0.05)
            if port:
                servers.wait_port("127.0.0.1", port, timeout=timeout, proc=self.proc)
        except (RuntimeError, TimeoutError) as e:
            self.stop()
            die(f"{name} did not start ({e}):\n{self.log()}")

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._logf.close()


def start_dbtlsd(dbtls, log_dir, extra=()):
    if not os.access(dbtls.dbtlsd_bin, os.X_OK):
        die(f"{dbtls.dbtlsd_bin} is not built (the TLS front): cannot benchmark dbtlsd")
    return Daemon("dbtlsd", [dbtls.dbtlsd_bin, "--state-dir", dbtls.state_dir, *extra],
                  os.path.join(log_dir, "dbtlsd.log"), ready="dbtlsd: ready")


def state_with_instance(build_dir, state_dir, name, engine, version, port, backend):
    """A new dbtls state dir holding one ENCRYPTED_ONLY instance `name` on 127.0.0.1:port in
    front of `backend`; returns its Dbtls. (Each dbtlsd target needs a state dir of its own: two
    daemons on one would both serve every instance.)"""
    dbtls = Dbtls(build_dir, state_dir)
    os.makedirs(dbtls.state_dir, mode=0o700)
    dbtls("init")
    dbtls("instances", "create", name, "--engine", engine, "--engine-version", version,
          "--listen", f"127.0.0.1:{port}", "--backend", backend,
          "--endpoint", "localhost,127.0.0.1", "--ssl-mode", "ENCRYPTED_ONLY")
    return dbtls


def export_cert(dbtls, instance, out_dir):
    """`dbtls instances export` + `ssl server-ca-certs download` -> (server.crt with chain,
    server.key, server-ca.pem) paths: the same certificate and key dbtlsd serves, for the
    native servers and PgBouncer, and the CA file clients verify it with. (The export's
    root.crt is the instance's client CA, what a native server trusts for client certs.)"""
    os.makedirs(out_dir, exist_ok=True)
    dbtls("instances", "export", instance, "--dir", out_dir)
    ca = os.path.join(out_dir, "server-ca.pem")
    dbtls("ssl", "server-ca-certs", "download", "--instance", instance, "--out", ca)
    paths = [os.path.join(out_dir, n) for n in ("server.crt", "server.key")] + [ca]
    for p in paths:
        if not os.path.exists(p):
            die(f"dbtls did not write {p}")
    return paths


# --- handshake-only client ------------------------------------------------------------------
PG_SSLREQUEST = struct.pack("!II", 8, 80877103)


def _pg_handshake_worker(args):
    host, port, seconds, ca = args
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    n = errors = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=10) as s:
                s.sendall(PG_SSLREQUEST)
                if s.recv(1) != b"S":
                    errors += 1
                    continue
                with ctx.wrap_socket(s, do_handshake_on_connect=True):
                    n += 1
        except OSError:
            errors += 1
    return n, errors


def pg_handshakes(host, port, seconds, workers):
    """Runs `workers` processes that each, for `seconds`, connect, send the PostgreSQL
    SSLRequest, complete a TLS handshake and hang up. Returns (handshakes, errors)."""
    with multiprocessing.Pool(workers) as pool:
        res = pool.map(_pg_handshake_worker, [(host, port, seconds, None)] * workers)
    return sum(r[0] for r in res), sum(r[1] for r in res)


# --- output ---------------------------------------------------------------------------------
def fmt(v, digits=1):
    if v is None:
        return "-"
    if isinstance(v, str):
        return v
    if abs(v) >= 100:
        return f"{v:,.0f}"
    return f"{v:.{digits}f}" if abs(v) >= 1 else f"{v:.3f}"


def print_table(title, rows, columns):
    """rows: [(label, {column: value})]."""
    w0 = max(len(r[0]) for r in rows) + 2
    ws = [max(len(c), 10) + 2 for c in columns]
    print(f"\n{title}")
    print(" " * w0 + "".join(c.rjust(w) for c, w in zip(columns, ws)))
    for label, vals in rows:
        print(label.ljust(w0) + "".join(fmt(vals.get(c)).rjust(w) for c, w in zip(columns, ws)))


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def tmpdir(prefix):
    d = tempfile.mkdtemp(prefix=prefix)
    os.chmod(d, 0o755)
    return d


def rmtree(d):
    shutil.rmtree(d, ignore_errors=True)
