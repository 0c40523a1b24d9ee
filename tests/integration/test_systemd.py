"""dbtlsd under systemd: the sd_notify protocol (READY=1 once every listener is open, STATUS=
with the active configuration generation or why a reload failed, STOPPING=1 at SIGTERM) spoken
to a real datagram socket named by $NOTIFY_SOCKET, path or abstract; and the unit `meson
install` puts in lib/systemd/system, checked by systemd's own `systemd-analyze verify`.
"""
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import time
import uuid

import pytest

from cli_helpers import use_template


class NotifySocket:
    """The service manager's end: a SOCK_DGRAM unix socket collecting what dbtlsd says."""

    def __init__(self, address):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.messages = []

    def wait(self, text, timeout=15.0, start=0):
        """The first message (one datagram) from the start-th on containing text; fails after
        timeout."""
        deadline = time.monotonic() + timeout
        while True:
            for m in self.messages[start:]:
                if text in m:
                    return m
            left = deadline - time.monotonic()
            if left <= 0:
                pytest.fail(f"no notify message with {text!r}; got {self.messages!r}")
            self.sock.settimeout(left)
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except socket.timeout:
                pass

    def close(self):
        self.sock.close()


def _instance(dbtls, free_port, name="n1", listen=None):
    dbtls("instances", "create", name, "--engine", "postgres", "--listen",
          listen or f"127.0.0.1:{free_port()}", "--backend", "127.0.0.1:5432",
          "--endpoint", f"{name}.local")


@pytest.mark.parametrize("kind", ["path", "abstract"])
def test_sd_notify_ready_status_stopping(kind, dbtls, dbtlsd, state_dir, tmp_dir, free_port):
    use_template(dbtls)
    _instance(dbtls, free_port)
    if kind == "path":
        address = os.path.join(tmp_dir, "notify.sock")
        env_value = address
    else:
        env_value = "@dbtls-test-" + uuid.uuid4().hex
        address = "\0" + env_value[1:]
    ns = NotifySocket(address)
    try:
        d = dbtlsd.start(state_dir, env={"NOTIFY_SOCKET": env_value})
        ns.wait("STATUS=configuration generation 1 active (1 instance)")
        ns.wait("READY=1")
        # the listener is open by the time READY=1 is sent
        port = int(dbtls.json("instances", "describe", "n1")["listen"].rsplit(":", 1)[1])
        socket.create_connection(("127.0.0.1", port), timeout=5).close()

        _instance(dbtls, free_port, "n2")
        ns.wait("STATUS=configuration generation 2 active (2 instances)")

        # a reload that fails shows in `systemctl status` until one works
        busy = socket.socket()
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        try:
            _instance(dbtls, free_port, "n3", listen=f"127.0.0.1:{busy.getsockname()[1]}")
            m = ns.wait("the last reload failed")
            assert m.startswith("STATUS=configuration generation 2 active; the last reload "
                                "failed: "), m
            assert "n3" in m, m
        finally:
            busy.close()
        seen = len(ns.messages)
        dbtls("instances", "delete", "n3")
        # numbered by the generations used: the failed attempt took no number
        ns.wait("STATUS=configuration generation 3 active (2 instances)", start=seen)

        os.kill(d.pid, signal.SIGTERM)
        m = ns.wait("STOPPING=1")
        assert "STATUS=shutting down" in m, m
        d.stop()
    finally:
        ns.close()


def test_no_notify_socket_no_messages_and_bad_values_ignored(dbtls, dbtlsd, state_dir,
                                                             free_port):
    """Without $NOTIFY_SOCKET, or with one that is not an absolute path or @name, dbtlsd runs
    as usual (the protocol is optional)."""
    use_template(dbtls)
    _instance(dbtls, free_port)
    for value in ("relative/path", "@", "/nonexistent/dir/notify.sock"):
        d = dbtlsd.start(state_dir, env={"NOTIFY_SOCKET": value})
        assert d.alive()
        d.stop()


def meson_install(build_dir, tmp_dir):
    """`meson install` into tmp_dir/dest; returns (dest, the build's options)."""
    dest = os.path.join(tmp_dir, "dest")
    cp = subprocess.run(["meson", "install", "-C", build_dir, "--destdir", dest, "--no-rebuild",
                         "--quiet"], capture_output=True, text=True, timeout=300)
    assert cp.returncode == 0, cp.stdout + cp.stderr
    intro = subprocess.run(["meson", "introspect", "--buildoptions", build_dir],
                           capture_output=True, text=True, timeout=60, check=True).stdout
    return dest, {o["name"]: o["value"] for o in json.loads(intro)}


def test_installed_unit_verifies(build_dir, tmp_dir):
    """`meson install` puts dbtls, dbtlsd, the docs and the unit under the prefix; the unit names
    the installed dbtlsd and passes `systemd-analyze verify` (its directives, their values, the
    ExecStart binary) with nothing to say."""
    dest, opts = meson_install(build_dir, tmp_dir)
    root = dest + opts["prefix"]
    bindir = os.path.join(opts["prefix"], opts["bindir"])
    for name in ("dbtls", "dbtlsd"):
        assert os.access(os.path.join(dest + bindir, name), os.X_OK), name
    assert os.path.isfile(os.path.join(root, opts["datadir"], "doc", "dbtls", "dbtlsd.md"))
    unit = os.path.join(root, "lib", "systemd", "system", "dbtlsd.service")
    with open(unit) as f:
        text = f.read()
    assert f"ExecStart={bindir}/dbtlsd --state-dir /var/lib/dbtls" in text, text
    assert "Type=notify" in text and "@" not in text.replace("$MAINPID", ""), text
    # verify against the binary that exists here: the installed copy under dest
    check = os.path.join(tmp_dir, "unit")
    os.mkdir(check)
    with open(os.path.join(check, "dbtlsd.service"), "w") as f:
        f.write(text.replace(f"{bindir}/dbtlsd", f"{dest}{bindir}/dbtlsd"))
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is missing (Debian package systemd, scripts/install-deps.sh)"
    cp = subprocess.run([analyze, "verify", os.path.join(check, "dbtlsd.service")],
                        capture_output=True, text=True, timeout=60)
    assert cp.returncode == 0 and cp.stdout.strip() == "" and cp.stderr.strip() == "", \
        cp.stdout + cp.stderr


def test_installed_user_and_state_dir(build_dir, tmp_dir):
    """The unit's User=dbtls and /var/lib/dbtls come from the sysusers.d and tmpfiles.d files
    `meson install` adds: applied to an empty root by systemd's own tools they make a system
    user with no login and a 0700 directory it owns, as the unit and `dbtls init` want."""
    dest, opts = meson_install(build_dir, tmp_dir)
    lib = os.path.join(dest + opts["prefix"], "lib")
    sysusers = os.path.join(lib, "sysusers.d", "dbtls.conf")
    tmpfiles = os.path.join(lib, "tmpfiles.d", "dbtls.conf")
    root = os.path.join(tmp_dir, "root")
    os.makedirs(os.path.join(root, "etc"))
    for cmd in (["systemd-sysusers", f"--root={root}", sysusers],
                ["systemd-tmpfiles", f"--root={root}", "--create", tmpfiles]):
        cp = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        assert cp.returncode == 0, cmd + [cp.stdout, cp.stderr]
    with open(os.path.join(root, "etc", "passwd")) as f:
        users = {ln.split(":")[0]: ln.strip().split(":") for ln in f if ln.strip()}
    assert "dbtls" in users, users
    _, _, uid, _, _, home, shell = users["dbtls"]
    assert int(uid) < 1000 and home == "/var/lib/dbtls" and shell == "/usr/sbin/nologin", users
    st = os.stat(os.path.join(root, "var", "lib", "dbtls"))
    assert st.st_uid == int(uid) and stat.S_IMODE(st.st_mode) == 0o700, st
    with open(os.path.join(lib, "systemd", "system", "dbtlsd.service")) as f:
        unit = f.read()
    assert "User=dbtls" in unit and "ReadWritePaths=/var/lib/dbtls" in unit
