"""Real database servers and client helpers for the integration tests, the demo and the benchmarks.

Everything here starts real programs from Debian packages (PostgreSQL 15, MariaDB 10.11, psql,
the mariadb client) in throwaway directories, bounded in time, and stops what it started. The
pytest fixtures in conftest.py wrap these classes; bench/*.py import them directly.

We usually run as root; PostgreSQL refuses to run as root, so its programs run as the `postgres`
OS user and MariaDB's as `mysql` (subprocess's user=/group=, so the server is our direct child
and can be signalled and reaped without a wrapper process). The base directories are 0755 so that
root and those users can reach the unix sockets inside them.
"""
import os
import pwd
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time

PG_BIN = "/usr/lib/postgresql/15/bin"

# Ports handed out by free_port() in this process: never hand the same one out twice, even if
# the first taker has not bound it yet.
_given_ports = set()


def free_port(host="127.0.0.1"):
    """Returns a TCP port that nothing listens on at `host` right now.

    Ports come from 20000-32767, below Linux's ephemeral range (32768-60999), so an outgoing
    connection cannot grab the port between this call and the caller's bind; each port is
    handed out at most once per process.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(1000):
        port = random.randint(20000, 32767)
        if port in _given_ports:
            continue
        with socket.socket(family, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
        _given_ports.add(port)
        return port
    raise RuntimeError("free_port: no free TCP port found in 20000-32767")


def wait_port(host, port, timeout=20.0, proc=None):
    """Waits until a TCP connect to host:port succeeds; raises TimeoutError (or RuntimeError if
    `proc` exits meanwhile)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process {proc.args[0]} exited with {proc.returncode} "
                               f"before listening on {host}:{port}")
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout} s")


def recv_all(sock, timeout=5.0):
    """Everything a peer sends until it closes the connection or stays silent for timeout s."""
    sock.settimeout(timeout)
    data = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    except (socket.timeout, ConnectionResetError):
        pass
    return data


def _ids(user):
    pw = pwd.getpwnam(user)
    return pw.pw_uid, pw.pw_gid


def _as_user(user):
    """subprocess keyword arguments that run a child as `user` when we are root."""
    if os.geteuid() != 0:
        return {}
    uid, gid = _ids(user)
    return {"user": uid, "group": gid, "extra_groups": []}


def _chown_tree(path, user):
    if os.geteuid() != 0:
        return
    uid, gid = _ids(user)
    for root, dirs, files in os.walk(path):
        os.chown(root, uid, gid)
        for name in dirs + files:
            os.chown(os.path.join(root, name), uid, gid, follow_symlinks=False)


def _stop_child(proc, first_signal, grace, then=None):
    """Sends first_signal, waits `grace` seconds, then `then` (if given) for another `grace`,
    then SIGKILL. Returns the exit code."""
    if proc.poll() is not None:
        return proc.returncode
    for sig in (first_signal, then):
        if sig is None:
            continue
        try:
            proc.send_signal(sig)
        except ProcessLookupError:
            pass
        try:
            return proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
    proc.kill()
    return proc.wait(timeout=10)


def _rmtree(path):
    """Removes a server's temp dir; retries a few times in case the last of its processes were
    still writing when we got here."""
    for _ in range(10):
        shutil.rmtree(path, ignore_errors=True)
        if not os.path.exists(path):
            return
        time.sleep(0.2)


def run(cmd, timeout=60, check=True, input=None, env=None, **kw):
    """subprocess.run with text I/O, captured output and a timeout; on an unexpected non-zero
    exit (check=True) raises RuntimeError with the command, exit code and stderr."""
    cp = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout,
                        env=env, **kw)
    if check and cp.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} exited with {cp.returncode}:\n"
                           f"{cp.stderr}{cp.stdout}")
    return cp


def psql(conninfo, sql, timeout=30, env=None, connect_timeout=10, args=()):
    """Runs `psql -X -A -t -c sql conninfo` and returns (rc, stdout, stderr).

    PGCONNECT_TIMEOUT bounds the connection attempt and `timeout` the whole run (on expiry the
    result is (-1, partial stdout, stderr + a note)). Only PG* variables given in `env` are
    passed, so the caller's environment cannot change what is tested. `sql` may hold
    backslash commands such as \\conninfo (which prints psql's "SSL connection (...)" line).
    """
    e = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    e["PGCONNECT_TIMEOUT"] = str(connect_timeout)
    if env:
        e.update(env)
    cmd = ["psql", "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", *args, "-c", sql, conninfo]
    try:
        cp = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=e)
    except subprocess.TimeoutExpired as ex:
        out = ex.stdout.decode() if isinstance(ex.stdout, bytes) else (ex.stdout or "")
        err = ex.stderr.decode() if isinstance(ex.stderr, bytes) else (ex.stderr or "")
        return -1, out, err + f"\npsql: timed out after {timeout} s"
    return cp.returncode, cp.stdout, cp.stderr


class _ServerProcess:
    """What PgServer and MariaDbServer share: a context manager around start()/stop(), and the
    stop itself (signal the server, escalate after a grace period, close the log, remove the
    temp dir unless keep=True)."""

    def _stop(self, first_signal, grace, then=None):
        rc = None
        if self.proc is not None:
            rc = _stop_child(self.proc, first_signal, grace, then=then)
            self.proc = None
        if self._logf:
            self._logf.close()
            self._logf = None
        if not self.keep:
            _rmtree(self.base)
        return rc

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc):
        self.stop()


class PgServer(_ServerProcess):
    """A real PostgreSQL 15 server in a throwaway directory, run as the `postgres` OS user.

    Attributes: host ("127.0.0.1"), port, socket_dir, socket_path (the .s.PGSQL.<port> file),
    datadir, base (the temp dir), log_path, users ({role: password} for the password roles),
    superuser ("postgres"), dbname ("app").

    Roles and access (pg_hba.conf, first match wins):
      local  all all                 trust          (unix socket: everyone, no password — the
                                                     front's backend leg for cert/trust rules)
      host   all trustuser 127.0.0.1 trust          (TCP, no password)
      host   all certuser  127.0.0.1 trust          (the CN of test client certificates)
      host   all all 127.0.0.1, ::1  scram-sha-256  (alice, bob: password roles)
    Roles: alice / bob (LOGIN, scram passwords in .users), trustuser, certuser (LOGIN, no
    password), postgres (superuser). Database `app` owned by alice; every role may connect.
    No TLS of its own (ssl=off): the tests put dbtlsd in front of it.
    """

    ALICE = ("alice", "alice-secret-1")
    BOB = ("bob", "bob-secret-2")

    def __init__(self, port=None, extra_conf=None, max_connections=200, keep=False):
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.base = tempfile.mkdtemp(prefix="dbtls-pg-")
        os.chmod(self.base, 0o755)
        self.datadir = os.path.join(self.base, "data")
        self.socket_dir = os.path.join(self.base, "sock")
        self.socket_path = os.path.join(self.socket_dir, f".s.PGSQL.{self.port}")
        self.log_path = os.path.join(self.base, "postgres.log")
        self.superuser = "postgres"
        self.dbname = "app"
        self.users = dict([self.ALICE, self.BOB])
        self.extra_conf = dict(extra_conf or {})
        self.max_connections = max_connections
        self.keep = keep
        self.proc = None
        self._logf = None

    # --- life cycle -------------------------------------------------------------------------
    def start(self, timeout=60):
        """initdb, configure, start, wait until it accepts connections, create roles and db."""
        os.mkdir(self.socket_dir, 0o755)
        open(self.log_path, "w").close()
        _chown_tree(self.base, "postgres")
        pwfile = os.path.join(self.base, "pwfile")
        with open(pwfile, "w") as f:
            f.write("postgres-secret\n")
        _chown_tree(pwfile, "postgres")
        run([f"{PG_BIN}/initdb", "-D", self.datadir, "-U", "postgres", "--pwfile", pwfile,
             "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"],
            timeout=timeout, cwd=self.base, **_as_user("postgres"))
        os.unlink(pwfile)
        conf = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.socket_dir}'",
            "unix_socket_permissions": "0777",
            "ssl": "off",
            "password_encryption": "'scram-sha-256'",
            "max_connections": str(self.max_connections),
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "logging_collector": "off",
            "log_connections": "on",
            "log_line_prefix": "'%m [%p] %u@%d '",
        }
        conf.update(self.extra_conf)
        with open(os.path.join(self.datadir, "postgresql.auto.conf"), "a") as f:
            for k, v in conf.items():
                f.write(f"{k} = {v}\n")
        self.write_hba(self.default_hba())
        self._logf = open(self.log_path, "a")
        self.proc = subprocess.Popen([f"{PG_BIN}/postgres", "-D", self.datadir],
                                     stdout=self._logf, stderr=subprocess.STDOUT,
                                     cwd=self.base, start_new_session=True,
                                     **_as_user("postgres"))
        self._wait_ready(timeout)
        a, b = self.ALICE, self.BOB
        self.psql(f"CREATE ROLE {a[0]} LOGIN PASSWORD '{a[1]}';"
                  f"CREATE ROLE {b[0]} LOGIN PASSWORD '{b[1]}';"
                  "CREATE ROLE trustuser LOGIN; CREATE ROLE certuser LOGIN;", dbname="postgres")
        self.psql(f"CREATE DATABASE {self.dbname} OWNER {a[0]}", dbname="postgres")
        self.psql(f"GRANT ALL ON DATABASE {self.dbname} TO PUBLIC", dbname="postgres")
        self.psql("GRANT ALL ON SCHEMA public TO PUBLIC;", dbname=self.dbname)
        return self

    def _wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"postgres exited with {self.proc.returncode}:\n{self.log()}")
            cp = subprocess.run([f"{PG_BIN}/pg_isready", "-q", "-h", self.socket_dir,
                                 "-p", str(self.port), "-U", "postgres"], timeout=10)
            if cp.returncode == 0:
                return
            time.sleep(0.1)
        raise TimeoutError(f"postgres not ready after {timeout} s:\n{self.log()}")

    def stop(self):
        """Fast shutdown (SIGINT), then immediate (SIGQUIT), then SIGKILL; removes the temp dir
        unless keep=True. Returns postgres's exit code (None if it never started)."""
        return self._stop(signal.SIGINT, 10, then=signal.SIGQUIT)


    # --- configuration ----------------------------------------------------------------------
    @staticmethod
    def default_hba():
        return [
            "local all all trust",
            "host all trustuser 127.0.0.1/32 trust",
            "host all certuser 127.0.0.1/32 trust",
            "host all all 127.0.0.1/32 scram-sha-256",
            "host all all ::1/128 scram-sha-256",
        ]

    def write_hba(self, lines):
        """Replaces pg_hba.conf with `lines` (call reload() afterwards on a running server)."""
        path = os.path.join(self.datadir, "pg_hba.conf")
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        _chown_tree(path, "postgres")

    def reload(self):
        """SIGHUP: re-reads postgresql.conf and pg_hba.conf."""
        self.psql("SELECT pg_reload_conf();", dbname="postgres")

    # --- clients ----------------------------------------------------------------------------
    def log(self):
        """The server log so far (connections are logged)."""
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def dsn(self, user="trustuser", dbname=None, password=None, host=None, port=None, **kw):
        """A libpq conninfo string straight to this server over TCP (host/port overridable,
        e.g. host=socket_dir for the unix socket). Password defaults to the role's own."""
        if password is None:
            password = self.users.get(user)
        parts = {"host": host or self.host, "port": port or self.port, "user": user,
                 "dbname": dbname or self.dbname, "sslmode": "disable"}
        if password is not None:
            parts["password"] = password
        parts.update(kw)
        return " ".join(f"{k}='{v}'" for k, v in parts.items())

    def psql(self, sql, user="postgres", dbname=None, timeout=30):
        """Runs sql as `user` over the unix socket (trust) and returns psql's stdout (unaligned,
        tuples only); raises RuntimeError with stderr on failure."""
        conninfo = f"host='{self.socket_dir}' port={self.port} user='{user}' " \
                   f"dbname='{dbname or self.dbname}'"
        rc, out, err = psql(conninfo, sql, timeout=timeout)
        if rc != 0:
            raise RuntimeError(f"psql as {user} failed ({rc}): {err.strip()}\nSQL: {sql}")
        return out


class MariaDbServer(_ServerProcess):
    """A real MariaDB 10.11 server in a throwaway directory, run as the `mysql` OS user, with no
    TLS of its own (--skip-ssl) unless ssl_cert/ssl_key are given.

    Attributes: host ("127.0.0.1"), port, socket (the unix socket path), datadir, base,
    log_path, users ({user: password} for the password accounts, all '%' hosts, plugin
    mysql_native_password), ed25519_user (name, or None when the auth_ed25519 plugin does not
    load), dbname ("app"). root@localhost has no password (unix socket or TCP from localhost).
    Accounts: alice, bob (native password), certuser (native password, for certificate tests),
    edna (ed25519, if available). All have ALL on `app`.*.
    """

    ALICE = ("alice", "alice-secret-1")
    BOB = ("bob", "bob-secret-2")
    CERTUSER = ("certuser", "certuser-secret-3")
    ED25519 = ("edna", "edna-secret-4")

    def __init__(self, port=None, extra_args=(), keep=False, ssl_cert=None, ssl_key=None):
        """ssl_cert/ssl_key: PEM files to run MariaDB's own TLS with (the benchmarks' native
        baseline); without them the server has no TLS."""
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.ssl_cert, self.ssl_key = ssl_cert, ssl_key
        self.base = tempfile.mkdtemp(prefix="dbtls-my-")
        os.chmod(self.base, 0o755)
        self.datadir = os.path.join(self.base, "data")
        self.socket = os.path.join(self.base, "mysqld.sock")
        self.log_path = os.path.join(self.base, "mariadbd.log")
        self.dbname = "app"
        self.users = dict([self.ALICE, self.BOB, self.CERTUSER])
        self.ed25519_user = None
        self.extra_args = list(extra_args)
        self.keep = keep
        self.proc = None
        self._logf = None

    def start(self, timeout=60):
        """mariadb-install-db, start mariadbd, wait for its port, create accounts."""
        _chown_tree(self.base, "mysql")
        run(["mariadb-install-db", "--no-defaults", f"--datadir={self.datadir}",
             "--auth-root-authentication-method=normal", "--skip-test-db",
             "--skip-name-resolve"], timeout=timeout, cwd=self.base, **_as_user("mysql"))
        self._logf = open(self.log_path, "a")
        cmd = ["mariadbd", "--no-defaults", f"--datadir={self.datadir}",
               f"--socket={self.socket}", f"--port={self.port}", "--bind-address=127.0.0.1",
               *(["--ssl", f"--ssl-cert={self.ssl_cert}", f"--ssl-key={self.ssl_key}"]
                 if self.ssl_cert else ["--skip-ssl"]),
               "--skip-name-resolve", "--skip-log-bin",
               f"--pid-file={os.path.join(self.base, 'mariadbd.pid')}",
               f"--tmpdir={self.base}", "--innodb-buffer-pool-size=64M",
               "--innodb-log-file-size=16M", "--innodb-flush-log-at-trx-commit=0",
               "--max-connections=1200",
               f"--log-error={self.log_path}", *self.extra_args]
        self.proc = subprocess.Popen(cmd, stdout=self._logf, stderr=subprocess.STDOUT,
                                     cwd=self.base, start_new_session=True,
                                     **_as_user("mysql"))
        try:
            wait_port(self.host, self.port, timeout=timeout, proc=self.proc)
            deadline = time.monotonic() + timeout
            while not os.path.exists(self.socket):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"no socket {self.socket}")
                time.sleep(0.05)
        except (RuntimeError, TimeoutError) as e:
            raise RuntimeError(f"mariadbd did not start: {e}\n{self.log()}") from None
        stmts = [f"CREATE DATABASE {self.dbname}"]
        for user, pw in self.users.items():
            stmts += [f"CREATE USER '{user}'@'%' IDENTIFIED VIA mysql_native_password "
                      f"USING PASSWORD('{pw}')",
                      f"GRANT ALL ON {self.dbname}.* TO '{user}'@'%'"]
        self.sql(";\n".join(stmts))
        try:
            self.sql("INSTALL SONAME 'auth_ed25519'")
            u, pw = self.ED25519
            self.sql(f"CREATE USER '{u}'@'%' IDENTIFIED VIA ed25519 USING PASSWORD('{pw}');\n"
                     f"GRANT ALL ON {self.dbname}.* TO '{u}'@'%'")
            self.ed25519_user = u
            self.users[u] = pw
        except RuntimeError:
            self.ed25519_user = None
        return self

    def stop(self):
        """SIGTERM (clean shutdown), then SIGKILL after 20 s; removes the temp dir unless
        keep=True. Returns mariadbd's exit code (None if it never started)."""
        return self._stop(signal.SIGTERM, 20)


    def log(self):
        """The server's error log so far."""
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def client_args(self, user="root", password=None, database=None, tcp=False):
        """Arguments for the `mariadb` client to reach this server directly (socket by default,
        127.0.0.1:port with tcp=True), TLS off."""
        args = ["mariadb", "--no-defaults", f"--user={user}", "--connect-timeout=10",
                "--skip-ssl"]
        if password is None:
            password = self.users.get(user)
        if password:
            args.append(f"--password={password}")
        if tcp:
            args += [f"--host={self.host}", f"--port={self.port}", "--protocol=TCP"]
        else:
            args += [f"--socket={self.socket}"]
        if database:
            args.append(f"--database={database}")
        return args

    def sql(self, sql, user="root", database=None, timeout=30):
        """Runs sql with the mariadb client as root over the unix socket (batch mode, no column
        names) and returns stdout; raises RuntimeError with stderr on failure."""
        cp = subprocess.run(self.client_args(user, database=database) + ["-N", "-B", "-e", sql],
                            capture_output=True, text=True, timeout=timeout)
        if cp.returncode != 0:
            raise RuntimeError(f"mariadb as {user} failed ({cp.returncode}): "
                               f"{cp.stderr.strip()}\nSQL: {sql}")
        return cp.stdout
