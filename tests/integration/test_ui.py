"""The web page GET /ui of a real dbtlsd (docs/web-ui.md), looked at by a real browser: headless
Chromium (Debian `chromium`) loads it through a small TCP -> unix-socket forwarder (a browser
cannot open the 0600 admin socket), with a real PostgreSQL 15 behind the front, an instance whose
server certificate was rotated (previous / active / upcoming slots), client certificates, and a
live psycopg connection held open through the front. The rendered DOM must show the instance,
its slots with timeline bars coloured by time left, the client certificates, the live connection
with its TLS version and cipher (the same row as GET /v1/connections) and the recent events, with
JavaScript on and off; the screenshot is kept as a test artifact ($DBTLS_BUILD/artifacts/ui.png).
"""
import fcntl
import html.parser
import json
import os
import select
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time

import psycopg
import pytest

from api_client import tcp_api, tls_context, unix_api
from cli_helpers import use_template

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DAY = 86400


# --- a TCP -> unix socket forwarder ---------------------------------------------------------
class Forwarder:
    """Listens on 127.0.0.1:<port> and relays every connection to a unix socket (one thread per
    direction). close() stops accepting and closes every relayed connection."""

    def __init__(self, unix_path):
        self.unix_path = unix_path
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(32)
        self.port = self.lsock.getsockname()[1]
        self.socks = []
        self.lock = threading.Lock()
        self.closed = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while not self.closed:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            u = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                u.connect(self.unix_path)
            except OSError:
                c.close()
                u.close()
                continue
            with self.lock:
                self.socks += [c, u]
            for a, b in ((c, u), (u, c)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def close(self):
        self.closed = True
        try:
            self.lsock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.lsock.close()
        with self.lock:
            for s in self.socks:
                try:
                    s.close()
                except OSError:
                    pass
        self.thread.join(timeout=5)


# --- headless Chromium ----------------------------------------------------------------------
def chromium_env(profile):
    """The environment for a Chromium run: HOME and the XDG directories inside its temporary
    profile. --user-data-dir alone does not stop Chromium writing ~/.config/chromium/Crash Reports
    and ~/.cache/dconf of the user running the tests."""
    env = dict(os.environ)
    env.update(HOME=profile, XDG_CONFIG_HOME=os.path.join(profile, ".config"),
               XDG_CACHE_HOME=os.path.join(profile, ".cache"))
    return env


def chromium(url, *extra, timeout=90):
    """Runs headless Chromium on url with a fresh profile; returns its stdout (the DOM for
    --dump-dom). The whole process group is killed if it does not finish in time."""
    assert CHROMIUM, "chromium is not installed (scripts/install-deps.sh installs it)"
    profile = tempfile.mkdtemp(prefix="dbtls-chr-")
    args = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--disable-dev-shm-usage", f"--user-data-dir={profile}",
            "--window-size=1400,1000", *extra, url]
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         stdin=subprocess.DEVNULL, start_new_session=True,
                         env=chromium_env(profile))
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, err = p.communicate()
        pytest.fail(f"chromium did not finish in {timeout} s: {err.decode(errors='replace')}")
    finally:
        try:
            os.killpg(p.pid, signal.SIGKILL)  # helpers left behind, if any
        except ProcessLookupError:
            pass
        shutil.rmtree(profile, ignore_errors=True)
    assert p.returncode == 0, f"chromium exited with {p.returncode}: {err.decode(errors='replace')}"
    return out.decode()


def chromium_dom_without_js(url, timeout=60):
    """The DOM of url as headless Chromium builds it with JavaScript disabled. --dump-dom
    prints nothing when scripts are off (it serializes the page with a script), so this drives
    Chromium over the DevTools protocol on a pipe (--remote-debugging-pipe: commands in on fd 3,
    replies out on fd 4, NUL-terminated JSON): a new page with script execution disabled, load
    url, wait for the load event, DOM.getOuterHTML of the document."""
    assert CHROMIUM, "chromium is not installed (scripts/install-deps.sh installs it)"
    profile = tempfile.mkdtemp(prefix="dbtls-chr-")
    to_r, to_w = os.pipe()
    from_r, from_w = os.pipe()

    def child_fds():
        r = fcntl.fcntl(to_r, fcntl.F_DUPFD, 10)
        w = fcntl.fcntl(from_w, fcntl.F_DUPFD, 10)
        os.dup2(r, 3)
        os.dup2(w, 4)

    errlog = tempfile.TemporaryFile()
    p = subprocess.Popen(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--disable-dev-shm-usage", "--remote-debugging-pipe",
         "--blink-settings=scriptEnabled=false", f"--user-data-dir={profile}",
         "--window-size=1400,1000", "about:blank"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errlog,
        pass_fds=(3, 4), preexec_fn=child_fds, start_new_session=True,
        env=chromium_env(profile))
    os.close(to_r)
    os.close(from_w)
    deadline = time.monotonic() + timeout
    state = {"buf": b"", "id": 0, "events": []}

    def read_msg():
        while b"\0" not in state["buf"]:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([from_r], [], [], max(0.0, left))
            if not ready:
                pytest.fail(f"chromium (DevTools pipe) did not answer within {timeout} s")
            data = os.read(from_r, 65536)
            if not data:
                errlog.seek(0)
                pytest.fail("chromium closed its DevTools pipe: "
                            + errlog.read().decode(errors="replace")[-2000:])
            state["buf"] += data
        msg, state["buf"] = state["buf"].split(b"\0", 1)
        return json.loads(msg)

    def call(method, params=None, session=None):
        state["id"] += 1
        msg = {"id": state["id"], "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(to_w, json.dumps(msg).encode() + b"\0")
        while True:
            m = read_msg()
            if m.get("id") == state["id"]:
                assert "error" not in m, f"DevTools {method}: {m['error']}"
                return m["result"]
            state["events"].append(m)

    def wait_event(name, session):
        while True:
            for i, m in enumerate(state["events"]):
                if m.get("method") == name and m.get("sessionId") == session:
                    return state["events"].pop(i)
            state["events"].append(read_msg())

    try:
        target = call("Target.createTarget", {"url": "about:blank"})["targetId"]
        sid = call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        call("Page.enable", session=sid)
        call("Emulation.setScriptExecutionDisabled", {"value": True}, session=sid)
        call("Page.navigate", {"url": url}, session=sid)
        wait_event("Page.loadEventFired", sid)
        root = call("DOM.getDocument", {"depth": -1}, session=sid)["root"]
        return call("DOM.getOuterHTML", {"nodeId": root["nodeId"]}, session=sid)["outerHTML"]
    finally:
        try:
            os.write(to_w, b'{"id":999999,"method":"Browser.close"}\0')
        except OSError:
            pass
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait()
        errlog.close()
        os.close(to_w)
        os.close(from_r)
        shutil.rmtree(profile, ignore_errors=True)


class Node:
    def __init__(self, tag, attrs, parent):
        self.tag = tag
        self.attrs = dict(attrs)
        self.parent = parent
        self.children = []

    @property
    def classes(self):
        return (self.attrs.get("class") or "").split()

    def text(self):
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def iter(self):
        for c in self.children:
            if isinstance(c, Node):
                yield c
                yield from c.iter()

    def find_all(self, tag=None, cls=None, **attrs):
        return [n for n in self.iter()
                if (tag is None or n.tag == tag) and (cls is None or cls in n.classes)
                and all(n.attrs.get(k.replace("_", "-")) == v for k, v in attrs.items())]

    def find(self, tag=None, cls=None, **attrs):
        found = self.find_all(tag, cls, **attrs)
        assert found, f"no <{tag or '*'} class={cls} {attrs}> in:\n{self.text()[:3000]}"
        return found[0]


VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
        "track", "wbr"}


class Dom(html.parser.HTMLParser):
    """The DOM Chromium dumped, as a small tree (tags, attributes, text)."""

    def __init__(self, text):
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {}, None)
        self.cur = self.root
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        n = Node(tag, attrs, self.cur)
        self.cur.children.append(n)
        if tag not in VOID:
            self.cur = n

    def handle_startendtag(self, tag, attrs):
        self.cur.children.append(Node(tag, attrs, self.cur))

    def handle_endtag(self, tag):
        n = self.cur
        while n is not None and n.tag != tag:
            n = n.parent
        if n is not None and n.parent is not None:
            self.cur = n.parent

    def handle_data(self, data):
        self.cur.children.append(data)

    def find(self, *a, **kw):
        return self.root.find(*a, **kw)

    def find_all(self, *a, **kw):
        return self.root.find_all(*a, **kw)


def png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", head[16:24])


# --- the scene --------------------------------------------------------------------------------
def conninfo(port, **kw):
    parts = {"host": "localhost", "port": port, "user": "alice", "password": "alice-secret-1",
             "dbname": "app"}
    parts.update(kw)
    return " ".join(f"{k}='{v}'" for k, v in parts.items())


HOSTILE_APP = "ui-test <b>bold</b> & \"q\" <script>x=1</script>"


@pytest.fixture
def scene(pg_server, dbtls, dbtlsd, state_dir, free_port, tmp_dir):
    """dbtlsd with instance pg1 (shared CA, ENCRYPTED_ONLY) in front of the real PostgreSQL:
    slots previous (1 year), active (45 days, rotated in), upcoming (1 year); client certs
    app-reader (10 years) and batch-job (10 days); one live psycopg connection over TLS with a
    hostile application_name; a forwarder to the admin socket."""
    use_template(dbtls)
    port = free_port()
    dbtls("instances", "create", "pg1", "--engine", "postgres", "--engine-version", "15",
          "--listen", f"127.0.0.1:{port}", "--backend", f"127.0.0.1:{pg_server.port}",
          "--endpoint", "localhost,pg1.db.example", "--ssl-mode", "ENCRYPTED_ONLY")
    dbtls("ssl", "server-certs", "create", "--instance", "pg1", "--validity", str(45 * DAY))
    dbtls("ssl", "server-certs", "rotate", "--instance", "pg1")
    dbtls("ssl", "server-certs", "create", "--instance", "pg1")
    dbtls("ssl", "client-certs", "create", "app-reader", "--instance", "pg1", "--out-dir",
          os.path.join(tmp_dir, "c1"))
    dbtls("ssl", "client-certs", "create", "batch-job", "--instance", "pg1", "--out-dir",
          os.path.join(tmp_dir, "c2"), "--validity", str(10 * DAY))
    d = dbtlsd.start(state_dir, ["--workers", "2"])
    api = unix_api(d.admin_socket)
    ca = os.path.join(tmp_dir, "ca.pem")
    dbtls("ssl", "server-ca-certs", "download", "--instance", "pg1", "--out", ca)
    conn = psycopg.connect(conninfo(port, sslmode="verify-full", sslrootcert=ca,
                                    application_name=HOSTILE_APP), autocommit=True,
                           connect_timeout=10)
    fwd = None
    try:
        assert conn.execute("SELECT 1").fetchone()[0] == 1
        deadline = time.monotonic() + 10
        while True:
            rows = api.get("/v1/connections").json()["connections"]
            if any(r["instance"] == "pg1" and r["ssl"] for r in rows):
                break
            assert time.monotonic() < deadline, f"no live connection listed: {rows}"
            time.sleep(0.1)
        fwd = Forwarder(d.admin_socket)
        yield {"dbtls": dbtls, "d": d, "api": api, "conn": conn, "rows": rows,
               "url": f"http://127.0.0.1:{fwd.port}/ui"}
    finally:
        conn.close()
        if fwd is not None:
            fwd.close()


def check_page(dom, s):
    """What the page must show, with or without JavaScript: the instance, its slots with
    timeline bars, the client certificates, the live connection and the events."""
    dbtls = s["dbtls"]
    inst = dom.find("article", cls="instance", data_instance="pg1")
    head = inst.find(cls="inst-head").text()
    assert "pg1" in head and "postgres 15" in head and "ENCRYPTED_ONLY" in head
    facts = inst.find("dl", cls="facts").text()
    for want in ("127.0.0.1:", "localhost, pg1.db.example", "shared", "dbtls-ca-ecc384-g1",
                 "TLSv1.2", "TLSv1.3"):
        assert want in facts, (want, facts)

    # every slot the CLI lists, each with a bar coloured by the time it has left
    slots = {c["slot"]: c for c in dbtls.json("ssl", "server-certs", "list", "--instance",
                                              "pg1")}
    assert set(slots) == {"previous", "active", "upcoming"}
    rows = inst.find_all("tr", cls="slot")
    assert [r.attrs["data-slot"] for r in rows] == ["previous", "active", "upcoming"]
    want_cls = {"previous": "tl-ok", "active": "tl-warn", "upcoming": "tl-ok"}
    for r in rows:
        slot = r.attrs["data-slot"]
        assert r.attrs["data-serial"] == slots[slot]["certSerialNumber"]
        bar = r.find("div", cls="bar")
        assert want_cls[slot] in bar.classes, (slot, bar.classes)
        fill = bar.find("span", cls="fill")
        width = float(fill.attrs["style"].split("width:")[1].rstrip("%;"))
        assert 90.0 <= width <= 100.0, (slot, width)  # all were issued minutes ago
        left = int(bar.attrs["data-left-seconds"])
        expected = {"active": 45 * DAY}.get(slot, 365 * DAY)
        assert expected - 3600 < left <= expected, (slot, left)
        assert "d left" in r.find(cls="left").text()
    assert "44 d left" in rows[1].text() or "45 d left" in rows[1].text()
    # who is on which slot: the one live connection was served the active certificate
    assert [r.attrs["data-connections"] for r in rows] == ["0", "1", "0"]
    assert "1 connection" in rows[1].find("td", cls="slot").text()

    # client certificates, red when 30 days or less are left
    cc = {r.attrs["data-name"]: r for r in inst.find_all("tr", cls="client-cert")}
    assert set(cc) == {"app-reader", "batch-job"}
    assert "tl-ok" in cc["app-reader"].find("div", cls="bar").classes
    assert "tl-crit" in cc["batch-job"].find("div", cls="bar").classes
    listed = {c["name"]: c for c in dbtls.json("ssl", "client-certs", "list", "--instance",
                                               "pg1")}
    assert listed["batch-job"]["sha1Fingerprint"] in cc["batch-job"].text()

    # the live connection, as GET /v1/connections has it; the application name is text
    api_row = next(r for r in s["rows"] if r["instance"] == "pg1" and r["ssl"])
    conns = dom.find("section", id="connections").find_all("tr", cls="connection")
    assert len(conns) == 1, [c.text() for c in conns]
    c = conns[0]
    assert c.attrs["data-instance"] == "pg1"
    assert c.attrs["data-tls-version"] == api_row["version"] == "TLSv1.3"
    # the server certificate it was served: the active slot's (no rotation since it connected)
    active = [x for x in dbtls.json("ssl", "server-certs", "list", "--instance", "pg1")
              if x["slot"] == "active"][0]["sha1Fingerprint"]
    assert c.attrs["data-server-cert"] == api_row["server_cert_sha1"] == active
    assert "cert " + active[:10] in c.text()
    text = c.text()
    for want in ("alice", "app", api_row["cipher"], str(api_row["bits"]), HOSTILE_APP,
                 api_row["client_addr"]):
        assert want in text, (want, text)
    assert c.find_all("b") == [] and c.find_all("script") == []  # escaped, not markup

    # events, newest first
    ev = dom.find("section", id="events").find_all("tr", cls="event")
    texts = [r.text() for r in ev]
    for action in ("server-cert.rotate", "client-cert.create"):
        assert any(action in t for t in texts), (action, texts)
    times = [r.find("time").attrs["datetime"] for r in ev]
    assert times == sorted(times, reverse=True), times

    # the summary cards
    summary = dom.find("div", cls="summary").text()
    assert "live connections (1 with TLS)" in summary
    expiring = dom.find("div", id="expiring")
    # batch-job only: the active slot has 45 days left
    assert "alert" in expiring.classes and expiring.find(cls="n").text() == "1"


def test_ui_in_headless_chromium(scene, build_dir):
    s = scene
    # JavaScript on: the page as a browser renders it, the refresh script running
    dom = Dom(chromium(s["url"], "--dump-dom"))
    html_el = dom.find("html")
    assert html_el.attrs.get("data-js") == "on"
    assert "live" in dom.find(id="refresh-status").text()
    check_page(dom, s)

    # JavaScript off: the same content (server-rendered), a meta refresh instead of the script
    dom_off = Dom(chromium_dom_without_js(s["url"]))
    assert "data-js" not in dom_off.find("html").attrs
    assert dom_off.find(id="refresh-status").text() == "reloads every 30 s"
    meta = dom_off.find("meta", http_equiv="refresh")
    assert meta.attrs["content"] == "30" and meta.parent.tag == "noscript"
    check_page(dom_off, s)

    # the screenshot, kept as an artifact
    art = os.path.join(build_dir, "artifacts")
    os.makedirs(art, exist_ok=True)
    png = os.path.join(art, "ui.png")
    if os.path.exists(png):
        os.unlink(png)
    chromium(s["url"], f"--screenshot={png}", "--hide-scrollbars")
    assert os.path.exists(png), "chromium wrote no screenshot"
    assert png_size(png) == (1400, 1000)
    assert os.path.getsize(png) > 20000  # a rendered page, not a blank one
    print(f"\nweb page screenshot: {png}")


def test_ui_refreshes_itself(scene):
    """With JavaScript on, the page fetches /ui again and swaps in the new content: after a
    second connection opens, a browser that has been on the page long enough shows it without a
    reload (virtual time lets the timers run without waiting)."""
    s = scene
    dom = Dom(chromium(s["url"], "--dump-dom", "--virtual-time-budget=12000"))
    assert int(dom.find("html").attrs.get("data-refreshes", "0")) >= 1
    assert "live" in dom.find(id="refresh-status").text()
    check_page(dom, s)


def test_ui_http_contract(scene):
    """Over the admin socket: text/html, no external asset anywhere, 405 + Allow for other
    methods, and values from users escaped in the markup itself."""
    s = scene
    api = s["api"]
    r = api.get("/ui")
    assert r.status == 200
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    page = r.body.decode()
    assert page.startswith("<!DOCTYPE html>")
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    lowered = page.lower()
    for bad in ("src=\"http", "href=\"http", "src=\"//", "href=\"//", "@import", "url(http"):
        assert bad not in lowered, bad
    assert "<b>bold</b>" not in page and "<script>x=1" not in page
    assert "ui-test &lt;b&gt;bold&lt;/b&gt; &amp; &quot;q&quot; &lt;script&gt;x=1" in page
    r = api.request("HEAD", "/ui")
    assert r.status == 200 and r.body == b""
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    for method in ("POST", "DELETE", "PUT"):
        r = api.request(method, "/ui", b"")
        assert r.status == 405 and r.headers["allow"] == "GET, HEAD", r
        assert r.error["status"] == "METHOD_NOT_ALLOWED"


def test_ui_per_instance_ca_expired_cert_and_no_connections(dbtls, dbtlsd, state_dir, free_port,
                                                            tmp_dir):
    """A per-instance CA instance shows its server CA slots (what rotates in that mode); a client
    certificate past its notAfter is shown expired (grey bar, "expired ... ago"); a page with no
    connections says so. Checked on the served HTML and in Chromium."""
    use_template(dbtls)
    dbtls("instances", "create", "my1", "--engine", "mariadb", "--listen",
          f"127.0.0.1:{free_port()}", "--backend", "127.0.0.1:1", "--endpoint", "my1.example",
          "--ca-mode", "per-instance", "--ssl-mode", "TRUSTED_CLIENT_CERTIFICATE_REQUIRED")
    dbtls("ssl", "client-certs", "create", "short-lived", "--instance", "my1", "--out-dir",
          os.path.join(tmp_dir, "c"), "--validity", "2")
    cas = dbtls.json("ssl", "server-ca-certs", "list", "--instance", "my1")
    d = dbtlsd.start(state_dir, ["--workers", "1"])
    time.sleep(3)  # the client certificate expires
    api = unix_api(d.admin_socket)
    page = api.get("/ui").body.decode()
    fwd = Forwarder(d.admin_socket)
    try:
        browser = Dom(chromium(f"http://127.0.0.1:{fwd.port}/ui", "--dump-dom"))
    finally:
        fwd.close()
    for dom in (Dom(page), browser):
        inst = dom.find("article", cls="instance", data_instance="my1")
        assert "mariadb" in inst.find(cls="inst-head").text()
        assert "TRUSTED_CLIENT_CERTIFICATE_REQUIRED" in inst.find(cls="inst-head").text()
        assert "per-instance" in inst.find("dl", cls="facts").text()
        assert any(h.text().startswith("Server CA slots") for h in inst.find_all("h4"))
        rows = inst.find_all("tr", cls="slot")
        assert [r.attrs["data-slot"] for r in rows] == ["active"]
        assert rows[0].attrs["data-serial"] == cas[0]["certSerialNumber"]
        assert "tl-ok" in rows[0].find("div", cls="bar").classes  # a 10-year CA
        assert "3649 d left" in rows[0].text() or "3650 d left" in rows[0].text()
        cc = inst.find("tr", cls="client-cert", data_name="short-lived")
        bar = cc.find("div", cls="bar")
        assert "tl-expired" in bar.classes and int(bar.attrs["data-left-seconds"]) < 0
        assert bar.find("span", cls="fill").attrs["style"] == "width:0.0%"
        assert "expired" in cc.find(cls="left").text() and "ago" in cc.find(cls="left").text()
        assert dom.find("section", id="connections").find_all("tr", cls="connection") == []
        assert "no connections through the front" in dom.find("section", id="connections").text()
        assert dom.find("div", id="expiring").find(cls="n").text() == "1"


def test_ui_on_the_mutual_tls_listener(dbtls, dbtlsd, state_dir, tmp_dir, free_port):
    """The page is served on the TCP admin listener too, to a client with an admin
    certificate only."""
    use_template(dbtls)
    dbtls("instances", "create", "pg1", "--engine", "postgres", "--listen",
          f"127.0.0.1:{free_port()}", "--backend", "127.0.0.1:1", "--endpoint", "localhost")
    out = os.path.join(tmp_dir, "ops")
    dbtls("admin-certs", "create", "ops", "--out-dir", out)
    files = {k: os.path.join(out, f"admin-{k}.pem") for k in ("cert", "key", "ca")}
    port = free_port()
    dbtlsd.start(state_dir, ["--workers", "1", "--admin-listen", f"127.0.0.1:{port}"])
    api = tcp_api("127.0.0.1", port, tls_context(files["ca"], files["cert"], files["key"]))
    r = api.get("/ui")
    assert r.status == 200 and r.headers["content-type"] == "text/html; charset=utf-8"
    Dom(r.body.decode()).find("article", cls="instance", data_instance="pg1")
    r = tcp_api("127.0.0.1", port, tls_context(files["ca"])).get("/ui")
    assert r.status == 401 and b"<article" not in r.body
