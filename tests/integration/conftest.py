"""Shared pytest fixtures for the integration tests: where the build is, a runner for the real
`dbtls` binary, a factory for `dbtlsd` processes, and real PostgreSQL 15 / MariaDB 10.11 servers.

Fixture names are stable (other test files code against them):
  build_dir, dbtls_bin, dbtlsd_bin      paths of the build under test
  free_port                             function: a free TCP port on 127.0.0.1
  state_dir                             fresh 0700 temp dir per test
  dbtls                                 runner for `dbtls --state-dir <state_dir> ...`
  dbtlsd                                factory: start(state_dir, extra_args) -> DbtlsdProcess
  pg_server, mariadb_server             session-scoped real servers (see servers.py)
  psql                                  function psql(conninfo, sql) -> (rc, stdout, stderr)
The server classes and the psql helper live in servers.py (importable: `import servers`), so
the demo and the benchmarks use the same code.

Temp dirs are made under /tmp with short names (unix socket paths must stay under 108 bytes);
set DBTLS_KEEP_TMP=1 to keep them for a post-mortem.
"""
import contextlib
import json
import os
import pathlib
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import servers  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[2]
KEEP_TMP = os.environ.get("DBTLS_KEEP_TMP") == "1"
# dbtlsd's client TLS in this run (scripts/test.sh runs the front suites once per library):
# tests that see a library's own choices (BoringSSL's fixed TLS 1.3 suites) read it.
TLS_LIBRARY = os.environ.get("DBTLS_TLS_LIBRARY") or "openssl"


# --- build ----------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def build_dir():
    """Absolute path of the build under test: $DBTLS_BUILD, else <repo>/build-asan. Fails the
    test (not skips) when the directory does not exist."""
    d = os.path.abspath(os.environ.get("DBTLS_BUILD", str(ROOT / "build-asan")))
    if not os.path.isdir(d):
        pytest.fail(f"build directory {d} does not exist: run scripts/build.sh --asan "
                    "or set DBTLS_BUILD")
    return d


def _binary(build_dir, name):
    path = os.path.join(build_dir, "src", "bin", name)
    if not os.access(path, os.X_OK):
        pytest.fail(f"{name} is not built: {path} is missing (ninja -C {build_dir})")
    return path


@pytest.fixture(scope="session")
def dbtls_bin(build_dir):
    """Path of the `dbtls` CLI in the build (<build>/src/bin/dbtls); fails clearly if missing."""
    return _binary(build_dir, "dbtls")


@pytest.fixture(scope="session")
def dbtlsd_bin(build_dir):
    """Path of the `dbtlsd` daemon in the build (<build>/src/bin/dbtlsd); fails clearly if
    missing."""
    return _binary(build_dir, "dbtlsd")


# --- small helpers --------------------------------------------------------------------------
@pytest.fixture(scope="session", name="free_port")
def free_port_fixture():
    """The function free_port(host="127.0.0.1") -> int: a TCP port nothing listens on, from
    20000-32767 (below the ephemeral range), never the same twice in a session."""
    return servers.free_port


def _mkdtemp(prefix):
    d = tempfile.mkdtemp(prefix=prefix)
    os.chmod(d, 0o700)
    return d


@pytest.fixture
def state_dir():
    """A fresh, empty state directory (mode 0700, short path under /tmp) for one test; removed
    afterwards unless DBTLS_KEEP_TMP=1."""
    d = _mkdtemp("dbtls-st-")
    yield d
    if not KEEP_TMP:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def tmp_dir():
    """A fresh temp dir (0700, short path under /tmp) for files a test writes (certificates,
    hba files, sockets); removed afterwards unless DBTLS_KEEP_TMP=1."""
    d = _mkdtemp("dbtls-t-")
    yield d
    if not KEEP_TMP:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session", name="psql")
def psql_fixture():
    """The function psql(conninfo, sql, timeout=30, env=None, connect_timeout=10, args=()) ->
    (rc, stdout, stderr): runs `psql -X -A -t -v ON_ERROR_STOP=1 -c sql conninfo` with
    PGCONNECT_TIMEOUT set and no PG* variables inherited; rc is -1 on timeout."""
    return servers.psql


# --- dbtls CLI ------------------------------------------------------------------------------
class DbtlsError(AssertionError):
    """`dbtls` exited with an unexpected code; the message holds the command, code and
    stderr."""


class Dbtls:
    """Runs the real `dbtls` binary against one state directory.

    run(*args, check=True, env=None, input=None, rc=None, timeout=60) -> CompletedProcess
        Runs `dbtls --state-dir <state_dir> *args` (DBTLS_STATE_DIR is set too), text I/O,
        stdout/stderr captured. check=True expects exit 0, rc=N expects exit N, check=False
        accepts any code; an unexpected code raises DbtlsError with stderr and stdout.
    json(*args, **kw) -> parsed JSON of `dbtls --state-dir D *args --format json` (exit 0
        expected unless rc= says otherwise).
    set_instance_field(instance, column, value): writes the store directly (as an older dbtls
        could have) and bumps the change counter.
    fail(*args, rc=1, **kw) -> CompletedProcess: expects exit `rc` and exactly one stderr
        line (the `dbtls: <what and why>` rule); returns it for checks on the text.
    with_state_dir(other) -> a Dbtls for another state directory.
    Attributes: bin, state_dir.
    """

    def __init__(self, binary, state_dir):
        self.bin = binary
        self.state_dir = state_dir

    def with_state_dir(self, state_dir):
        return Dbtls(self.bin, state_dir)

    def run(self, *args, check=True, env=None, input=None, rc=None, timeout=60):
        e = dict(os.environ)
        e["DBTLS_STATE_DIR"] = self.state_dir
        if env:
            e.update(env)
        cmd = [self.bin, "--state-dir", self.state_dir, *map(str, args)]
        try:
            cp = subprocess.run(cmd, input=input, capture_output=True, text=True, env=e,
                                timeout=timeout)
        except subprocess.TimeoutExpired as ex:
            raise DbtlsError(f"{' '.join(cmd)} did not finish in {timeout} s; "
                             f"stderr: {ex.stderr}") from None
        want = rc if rc is not None else (0 if check else None)
        if want is not None and cp.returncode != want:
            raise DbtlsError(f"{' '.join(cmd)}\nexited with {cp.returncode}, expected {want}\n"
                             f"--- stderr:\n{cp.stderr}--- stdout:\n{cp.stdout}")
        return cp

    __call__ = run

    def json(self, *args, **kw):
        cp = self.run(*args, "--format", "json", **kw)
        try:
            return json.loads(cp.stdout)
        except ValueError as ex:
            raise DbtlsError(f"dbtls {' '.join(map(str, args))} --format json printed "
                             f"invalid JSON ({ex}):\n{cp.stdout}") from None

    def set_instance_field(self, instance, column, value):
        """Writes one column of an instance straight into the store and bumps the change
        counter, as an older dbtls (without today's checks) could have: for testing what the
        daemon does with stored data the CLI would now refuse."""
        with contextlib.closing(sqlite3.connect(os.path.join(self.state_dir, "dbtls.db"),
                                                timeout=30)) as db:
            with db:
                db.execute(f"UPDATE instances SET {column} = ? WHERE name = ?", (value, instance))
                db.execute("UPDATE counter SET n = n + 1")

    def fail(self, *args, rc=1, **kw):
        cp = self.run(*args, rc=rc, **kw)
        lines = cp.stderr.strip().splitlines()
        if rc == 1 and len(lines) != 1:
            raise DbtlsError(f"dbtls {' '.join(map(str, args))}: expected one error line, got:\n"
                             f"{cp.stderr}")
        return cp


@pytest.fixture
def dbtls(dbtls_bin, state_dir):
    """A Dbtls runner bound to this test's `state_dir` (see class Dbtls): dbtls("init"),
    dbtls.json("instances", "list"), dbtls.fail("ssl", "server-certs", "rotate", ...).
    cli_helpers.use_template(dbtls) fills state_dir with a copy of a session-wide init instead
    (for tests to which init is only setup: it is slow)."""
    return Dbtls(dbtls_bin, state_dir)


# --- dbtlsd daemon --------------------------------------------------------------------------
GENERATION_RE = re.compile(r"configuration generation \d+ active \(.*change counter (\d+)\)")


class DbtlsdProcess:
    """One running dbtlsd. Its stderr goes to a file (log_path).

    log() -> the log text so far; wait_log(text, timeout=10, start=0) -> waits until `text`
    appears in the log after offset `start` (returns the log; fails with the log on timeout);
    log_size() -> current log length, to pass as start=; reload() -> SIGHUP;
    alive() -> still running; stop(timeout=10, expect_clean=True) -> SIGTERM, SIGKILL after
    `timeout` s; with expect_clean it asserts exit code 0 (under ASan a leak or error report
    makes it non-zero) and returns the code.
    Attributes: proc, pid, state_dir, log_path, admin_socket, args.
    """

    def __init__(self, binary, state_dir, extra_args, env, log_dir):
        self.state_dir = state_dir
        extra = list(map(str, extra_args))
        if "--shutdown-timeout" not in extra:
            # below stop()'s 10 s wait: a test that leaves a session open still gets a clean
            # stop instead of a misleading "did not exit" teardown error
            extra = ["--shutdown-timeout", "5", *extra]
        self.args = [binary, "--state-dir", state_dir, *extra]
        self.admin_socket = os.path.join(state_dir, "admin.sock")
        args = list(map(str, extra_args))
        if "--admin-socket" in args:
            self.admin_socket = args[args.index("--admin-socket") + 1]
        fd, self.log_path = tempfile.mkstemp(prefix="dbtlsd-", suffix=".log", dir=log_dir)
        self._log = os.fdopen(fd, "w")
        e = dict(os.environ)
        e["DBTLS_STATE_DIR"] = state_dir
        if env:
            e.update(env)
        self.proc = subprocess.Popen(self.args, stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=self._log, env=e)
        self.pid = self.proc.pid
        self.stopped = False

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def log_size(self):
        return len(self.log())

    def alive(self):
        return self.proc.poll() is None

    def wait_reload(self, start, timeout=10.0):
        """Waits until dbtlsd serves a generation built, after log offset start, from the store
        as it is now: its "change counter N" must be at least the store's current counter. The
        reload of an earlier change, logged after start, does not count (that race let a test
        see the old certificate after a rotate)."""
        with contextlib.closing(sqlite3.connect(os.path.join(self.state_dir, "dbtls.db"),
                                                timeout=10)) as db:
            want = db.execute("SELECT n FROM counter WHERE id = 1").fetchone()[0]
        deadline = time.monotonic() + timeout
        while True:
            log = self.log()[start:]
            if any(int(n) >= want for n in GENERATION_RE.findall(log)):
                return
            if not self.alive():
                pytest.fail(f"dbtlsd exited with {self.proc.returncode}:\n{self.log()}")
            if time.monotonic() > deadline:
                pytest.fail(f"dbtlsd built no generation at change counter >= {want} within "
                            f"{timeout} s:\n{self.log()}")
            time.sleep(0.05)

    def wait_log(self, text, timeout=10.0, start=0):
        deadline = time.monotonic() + timeout
        while True:
            log = self.log()
            if text in log[start:]:
                return log
            if self.proc.poll() is not None:
                pytest.fail(f"dbtlsd exited with {self.proc.returncode} before logging "
                            f"{text!r}:\n{log}")
            if time.monotonic() > deadline:
                pytest.fail(f"dbtlsd did not log {text!r} within {timeout} s:\n{log}")
            time.sleep(0.05)

    def reload(self):
        self.proc.send_signal(signal.SIGHUP)

    def stop(self, timeout=10.0, expect_clean=True):
        if not self.stopped:
            self.stopped = True
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(timeout=10)
                    self._log.close()
                    if expect_clean:
                        pytest.fail(f"dbtlsd did not exit within {timeout} s of SIGTERM "
                                    f"(killed):\n{self.log()}")
            self._log.close()
        rc = self.proc.returncode
        if expect_clean and rc != 0:
            pytest.fail(f"dbtlsd exited with {rc} (expected a clean 0):\n{self.log()}")
        return rc


class DbtlsdFactory:
    """start(state_dir, extra_args=(), env=None, ready_timeout=20, wait_ready=True) ->
    DbtlsdProcess: starts `dbtlsd --state-dir state_dir *extra_args` and waits for its log line
    "dbtlsd: ready" (fails with the log if it exits first or the line does not come in time).
    Every daemon started is stopped at teardown (and must exit cleanly, unless the test
    already stopped it itself)."""

    def __init__(self, request, log_dir):
        self._request = request
        self._log_dir = log_dir
        self.started = []

    def start(self, state_dir, extra_args=(), env=None, ready_timeout=20.0, wait_ready=True):
        binary = self._request.getfixturevalue("dbtlsd_bin")
        d = DbtlsdProcess(binary, state_dir, extra_args, env, self._log_dir)
        self.started.append(d)
        if wait_ready:
            d.wait_log("dbtlsd: ready", timeout=ready_timeout)
        return d

    __call__ = start

    def stop_all(self):
        errors = []
        for d in self.started:
            if d.stopped:
                continue
            try:
                d.stop()
            except BaseException as ex:  # pytest.fail raises OutcomeException
                errors.append(str(ex))
        if errors:
            pytest.fail("\n".join(errors))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """When a test that started dbtlsd fails, its report gets a section per daemon with the
    daemon's log (the log files are removed at teardown)."""
    outcome = yield
    rep = outcome.get_result()
    if rep.when != "call" or not rep.failed:
        return
    factory = getattr(item, "funcargs", {}).get("dbtlsd")
    if not isinstance(factory, DbtlsdFactory):
        return
    for i, d in enumerate(factory.started):
        try:
            text = d.log()
        except OSError:
            continue
        if len(text) > 20000:
            text = "[...]\n" + text[-20000:]
        rep.sections.append((f"dbtlsd #{i + 1} log ({' '.join(d.args[1:])})", text))


@pytest.fixture
def dbtlsd(request):
    """Factory for dbtlsd processes (see DbtlsdFactory/DbtlsdProcess):
        d = dbtlsd.start(state_dir, ["--workers", "2"]); ...; d.log(); d.stop()
    Fails clearly (never hangs) when the binary is missing. Logs go to a temp dir removed at
    teardown unless DBTLS_KEEP_TMP=1; failing tests show the log in the failure message."""
    log_dir = _mkdtemp("dbtlsd-log-")
    f = DbtlsdFactory(request, log_dir)
    yield f
    try:
        f.stop_all()
    finally:
        if not KEEP_TMP:
            shutil.rmtree(log_dir, ignore_errors=True)


# --- real database servers ------------------------------------------------------------------
@pytest.fixture(scope="session")
def pg_server():
    """A real PostgreSQL 15 for the whole session (servers.PgServer): run as the postgres OS
    user in a temp dir, no TLS, listening on 127.0.0.1:<port> and a unix socket dir.
    Attributes host, port, socket_dir, socket_path, users {alice, bob: password}, dbname "app";
    roles trustuser/certuser log in without a password over TCP, every role over the socket;
    pg_server.psql(sql, user="postgres", dbname=None) -> stdout (raises on error);
    pg_server.dsn(user, ...) -> conninfo straight to the server; write_hba()/reload(); log().
    Stopped at the end of the session."""
    with servers.PgServer(keep=KEEP_TMP) as srv:
        yield srv


@pytest.fixture(scope="session")
def mariadb_server():
    """A real MariaDB 10.11 for the whole session (servers.MariaDbServer): run as the mysql OS
    user in a temp dir, --skip-ssl, on 127.0.0.1:<port> and a unix socket.
    Attributes host, port, socket, users {alice, bob, certuser[, edna]: password} (native
    password; edna is ed25519 when the plugin loads: see .ed25519_user), dbname "app";
    mariadb_server.sql(sql, user="root", database=None) -> stdout (raises on error);
    client_args(user, password, database, tcp) -> argv for the mariadb client; log().
    Stopped at the end of the session."""
    with servers.MariaDbServer(keep=KEEP_TMP) as srv:
        yield srv


# --- admin TCP listener ---------------------------------------------------------------------
@pytest.fixture
def two_admins(dbtls, dbtlsd, state_dir, tmp_dir, free_port):
    """(daemon, port, ops, dev): an initialized state dir (use_template), two admin client
    certificates "ops" and "dev" (each a dict of cert/key/ca paths, from `dbtls admin-certs
    create`), and dbtlsd with one worker and its mutual-TLS admin listener on 127.0.0.1:port."""
    from api_client import make_admin
    from cli_helpers import use_template
    use_template(dbtls)
    ops = make_admin(dbtls, tmp_dir, "ops")
    dev = make_admin(dbtls, tmp_dir, "dev")
    port = free_port()
    d = dbtlsd.start(state_dir, ["--workers", "1", "--admin-listen", f"127.0.0.1:{port}"])
    return d, port, ops, dev
