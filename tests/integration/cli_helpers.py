"""Helpers for the integration tests: an initialized state directory made once per session and
copied per test (use_template, for every test to which `dbtls init` is only setup), certificate
checks with the `openssl` command-line tool (an implementation independent of ours), and a
snapshot of the store to prove that a refused command changed nothing.
"""
import atexit
import json
import os
import re
import shutil
import sqlite3
import subprocess
import tempfile
import time

import pytest

CA_IDS = ["dbtls-ca-rsa2048-g1", "dbtls-ca-rsa4096-g1", "dbtls-ca-ecc384-g1"]

_templates = {}  # dbtls binary -> template state dir
STORE_SIDECARS = ("dbtls.db-wal", "dbtls.db-shm", "dbtls.db-journal")


def initialized_template(dbtls_bin):
    """Path of a state directory on which `dbtls init` ran: made once per pytest session (per
    binary), as RSA-4096 roots take seconds to make (~5 s under ASan), and removed at exit.
    Nothing ever runs on it: tests get a copy through use_template()."""
    if dbtls_bin in _templates:
        return _templates[dbtls_bin]
    d = tempfile.mkdtemp(prefix="dbtls-tpl-")
    atexit.register(shutil.rmtree, d, True)
    sd = os.path.join(d, "state")
    # run() returns once dbtls has exited: the store is closed before anything copies it
    cp = subprocess.run([dbtls_bin, "--state-dir", sd, "init"], capture_output=True, text=True,
                        timeout=300)
    if cp.returncode != 0:
        pytest.fail(f"dbtls init (the state template) failed ({cp.returncode}):\n{cp.stderr}")
    # the last connection to close checkpoints the WAL into dbtls.db and removes it: a file
    # left beside the store would mean dbtls.db alone is not the whole store
    left = [f for f in STORE_SIDECARS if os.path.exists(os.path.join(sd, f))]
    assert not left, f"dbtls init left {left} beside the store in {sd}"
    # immutable=1: read without locks or a -shm file, so the template stays as init left it
    con = sqlite3.connect(f"file:{os.path.join(sd, 'dbtls.db')}?immutable=1", uri=True)
    try:
        check = con.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        con.close()
    assert check == "ok", f"store made by dbtls init: integrity_check: {check}"
    _templates[dbtls_bin] = sd
    return sd


def use_template(dbtls):
    """Makes the runner's state directory (empty or not there yet) the state `dbtls init`
    leaves: a copy of the session's template (shutil.copytree keeps the modes: directory 0700,
    master.key and dbtls.db 0600). Every copy holds the same CA keys and master key; tests of
    init itself, or of two inits differing, run the real one. Returns the runner."""
    src = initialized_template(dbtls.bin)
    dst = dbtls.state_dir
    if os.path.isdir(dst) and os.listdir(dst):
        pytest.fail(f"use_template: state dir {dst} is not empty: {sorted(os.listdir(dst))}")
    shutil.copytree(src, dst, dirs_exist_ok=True)
    return dbtls


# --- openssl ---------------------------------------------------------------------------------
def openssl(*args, input=None, check=True):
    """Runs `openssl *args`; bytes input/output. Raises with stderr when check and it fails."""
    cp = subprocess.run(["openssl", *map(str, args)], input=input, capture_output=True,
                        timeout=60)
    if check and cp.returncode != 0:
        raise AssertionError(f"openssl {' '.join(map(str, args))} failed ({cp.returncode}):\n"
                             f"{cp.stderr.decode(errors='replace')}")
    return cp


def openssl_ca_under_root(d, prefix, root_days, ca_days, root_cn, ca_cn):
    """With the openssl command (which, unlike dbtls, lets a CA outlive its issuer): a
    self-signed root of root_days and a P-256 CA of ca_days under it, in directory d.
    Returns the paths (root.pem, ca.pem, ca.key); the key is mode 0600."""
    def f(name):
        return os.path.join(d, f"{prefix}{name}")

    with open(f("ca.ext"), "w") as out:
        out.write("basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n")
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", f("root.key"), "-out", f("root.pem"), "-days", root_days, "-subj",
            root_cn, "-addext", "basicConstraints=critical,CA:TRUE", "-addext",
            "keyUsage=critical,keyCertSign,cRLSign")
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
            f("ca.key"), "-out", f("ca.csr"), "-subj", ca_cn)
    openssl("x509", "-req", "-in", f("ca.csr"), "-CA", f("root.pem"), "-CAkey", f("root.key"),
            "-CAcreateserial", "-days", ca_days, "-out", f("ca.pem"), "-extfile", f("ca.ext"))
    os.chmod(f("ca.key"), 0o600)
    return f("root.pem"), f("ca.pem"), f("ca.key")


PEM_RE = re.compile(r"-----BEGIN CERTIFICATE-----\n.*?-----END CERTIFICATE-----\n?", re.S)


def split_pem(text):
    """The certificates of a PEM text, each as its own PEM string."""
    return [m.group(0).rstrip("\n") + "\n" for m in PEM_RE.finditer(text)]


def write(path, text, mode=0o644):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)
    return path


def verify(ca_file, cert_pem, tmp_dir, untrusted=None, crl_file=None, purpose=None):
    """`openssl verify -CAfile ca_file [-untrusted] [-crl_check -CRLfile] leaf` ->
    (ok, output text)."""
    leaf = write(os.path.join(tmp_dir, "leaf-under-test.pem"), cert_pem)
    args = ["verify", "-CAfile", ca_file]
    if untrusted:
        args += ["-untrusted", untrusted]
    if crl_file:
        args += ["-crl_check", "-CRLfile", crl_file]
    if purpose:
        args += ["-purpose", purpose]
    args.append(leaf)
    cp = openssl(*args, check=False)
    out = (cp.stdout + cp.stderr).decode(errors="replace")
    return cp.returncode == 0 and ": OK" in out, out


def x509_text(cert_pem):
    return openssl("x509", "-noout", "-text", input=cert_pem.encode()).stdout.decode()


def x509_field(cert_pem, *flags):
    return openssl("x509", "-noout", *flags, input=cert_pem.encode()).stdout.decode().strip()


def san(cert_pem):
    """Subject alternative names as ["DNS:x", "IP Address:1.2.3.4"]."""
    text = x509_field(cert_pem, "-ext", "subjectAltName")
    lines = [ln.strip() for ln in text.splitlines()[1:]]
    return [s.strip() for ln in lines for s in ln.split(",") if s.strip()]


def sha1_of(cert_pem):
    """SHA-1 fingerprint as openssl computes it, lower case hex without colons."""
    out = x509_field(cert_pem, "-fingerprint", "-sha1")
    return out.split("=", 1)[1].replace(":", "").lower()


def serial_of(cert_pem):
    return x509_field(cert_pem, "-serial").split("=", 1)[1].upper()


# --- store -----------------------------------------------------------------------------------
def store_snapshot(state_dir):
    """Every row of every table of the store (dbtls.db), read through SQLite itself: equal
    snapshots mean a command changed nothing. Also the files of the state dir and their
    modes."""
    path = os.path.join(state_dir, "dbtls.db")
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        tables = [r[0] for r in con.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        snap = {t: sorted(map(repr, con.execute(f'SELECT * FROM "{t}"').fetchall()))
                for t in tables}
        snap["_user_version"] = con.execute("PRAGMA user_version").fetchone()
        check = con.execute("PRAGMA integrity_check").fetchone()[0]
        assert check == "ok", f"store integrity_check: {check}"
    finally:
        con.close()
    return snap


def assert_unchanged(before, state_dir):
    after = store_snapshot(state_dir)
    changed = [t for t in set(before) | set(after) if before.get(t) != after.get(t)]
    assert not changed, f"store tables changed by a refused command: {changed}"


# --- instances -------------------------------------------------------------------------------
_port = [40000]


def next_port():
    """Listen ports for instances: only stored, never bound by these tests."""
    _port[0] += 1
    return _port[0]


def create_instance(dbtls, name, engine="postgres", mode="shared", ca=None, endpoints=None,
                    extra=()):
    """`dbtls instances create` with sensible defaults; returns the JSON of the instance."""
    endpoints = endpoints or [f"{name}.db.example.com", "127.0.0.1"]
    args = ["instances", "create", name, "--engine", engine,
            "--listen", f"127.0.0.1:{next_port()}",
            "--backend", "127.0.0.1:5432" if engine == "postgres" else "127.0.0.1:3306",
            "--endpoint", ",".join(endpoints), "--ca-mode", mode]
    if ca:
        args += ["--ca", ca]
    return dbtls.json(*args, *extra)


def pg_instance(dbtls, name, listen, backend, endpoint, *extra):
    """`dbtls instances create NAME --engine postgres` on listen/backend/endpoint, then the extra
    options; returns the JSON of the instance."""
    return dbtls.json("instances", "create", name, "--engine", "postgres", "--listen", listen,
                      "--backend", backend, "--endpoint", endpoint, *extra)


def alpha_and_beta(dbtls, pg_server, tmp_dir, free_port):
    """Two ENCRYPTED_ONLY PostgreSQL instances on one 127.0.0.1 port, told apart by the TLS server
    name: `alpha` (endpoint alpha.test, backend over the unix socket) and `beta` (beta.test,
    backend over TCP, rules `hostssl all certuser all cert` then `backend`). Initializes the
    state; returns (port, alpha's server-ca.pem, beta's)."""
    use_template(dbtls)
    port = free_port()
    listen = f"127.0.0.1:{port}"
    hba = os.path.join(tmp_dir, "beta-hba.conf")
    write(hba, "hostssl all certuser all cert\nhostssl all all all backend\n")
    pg_instance(dbtls, "alpha", listen, pg_server.socket_path, "alpha.test", "--engine-version",
                "15", "--ssl-mode", "ENCRYPTED_ONLY")
    pg_instance(dbtls, "beta", listen, f"127.0.0.1:{pg_server.port}", "beta.test",
                "--engine-version", "15", "--ssl-mode", "ENCRYPTED_ONLY", "--hba-file", hba)
    return (port, download_ca(dbtls, "alpha", tmp_dir, "alpha-ca.pem"),
            download_ca(dbtls, "beta", tmp_dir, "beta-ca.pem"))


def mariadb_bob_x509(dbtls, mariadb_server, tmp_dir, free_port, endpoint):
    """An ENCRYPTED_ONLY MariaDB instance `my1` on a 127.0.0.1 port whose REQUIRE rules ask bob
    for a client certificate (bob=X509). Initializes the state; returns (port, its
    server-ca.pem)."""
    use_template(dbtls)
    port = free_port()
    rules = os.path.join(tmp_dir, "require.txt")
    write(rules, "bob=X509\n")
    dbtls("instances", "create", "my1", "--engine", "mariadb", "--engine-version", "10.11",
          "--listen", f"127.0.0.1:{port}", "--backend", f"127.0.0.1:{mariadb_server.port}",
          "--endpoint", endpoint, "--ssl-mode", "ENCRYPTED_ONLY", "--user-require-file", rules)
    return port, download_ca(dbtls, "my1", tmp_dir, "my-ca.pem")


def slots(dbtls, instance, kind="server-certs"):
    """{slot: cert json} of `ssl <kind> list`."""
    return {c["slot"]: c for c in dbtls.json("ssl", kind, "list", "--instance", instance)}


def active_server_cert(dbtls, instance):
    return slots(dbtls, instance, "server-certs")["active"]["cert"]


def download_ca(dbtls, instance, tmp_dir, name="server-ca.pem"):
    path = os.path.join(tmp_dir, name)
    if os.path.exists(path):
        os.unlink(path)
    dbtls("ssl", "server-ca-certs", "download", "--instance", instance, "--out", path)
    return path


def global_bundle(dbtls, tmp_dir, *args):
    path = os.path.join(tmp_dir, "bundle.pem")
    dbtls("bundle", *args, "--out", path)
    return path


def assert_chain_ok(dbtls, instance, tmp_dir):
    """The active server certificate verifies against the instance's server-ca.pem and, in
    shared mode, against the global bundle too; returns the leaf PEM."""
    leaf = active_server_cert(dbtls, instance)
    ok, out = verify(download_ca(dbtls, instance, tmp_dir), leaf, tmp_dir, purpose="sslserver")
    assert ok, f"server cert of {instance} does not verify against server-ca.pem: {out}"
    inst = dbtls.json("instances", "describe", instance)
    if inst["caMode"] == "shared":
        ok, out = verify(global_bundle(dbtls, tmp_dir), leaf, tmp_dir, purpose="sslserver")
        assert ok, f"server cert of {instance} does not verify against the bundle: {out}"
    return leaf


def export(dbtls, instance, tmp_dir, sub):
    """`dbtls instances export` into tmp_dir/sub; returns {name: path}."""
    d = os.path.join(tmp_dir, sub)
    dbtls("instances", "export", instance, "--dir", d)
    return {n: os.path.join(d, n) for n in ("server.crt", "server.key", "root.crt", "root.crl")}


def wait_notified(path, action, timeout=10):
    """Waits until the events a `--notify-command 'cat >> path'` received include one with this
    action; returns them all (JSON lines)."""
    deadline = time.monotonic() + timeout
    while True:
        sent = [json.loads(ln) for ln in open(path) if ln.strip()] \
            if os.path.exists(path) else []
        if any(e["action"] == action for e in sent):
            return sent
        assert time.monotonic() < deadline, f"{action} not delivered to the notify command: {sent}"
        time.sleep(0.2)


def assert_cancel(conn, delay=0.5):
    """conn (psycopg) runs pg_sleep(20) while a thread cancels it after `delay` s (libpq's
    CancelRequest, on a new connection): QueryCanceled well before the sleep ends."""
    import threading
    import time
    import psycopg
    import pytest
    t = threading.Timer(delay, conn.cancel)
    t.start()
    t0 = time.monotonic()
    try:
        with pytest.raises(psycopg.errors.QueryCanceled):
            conn.execute("SELECT pg_sleep(20)")
        assert time.monotonic() - t0 < 10
    finally:
        t.join()
