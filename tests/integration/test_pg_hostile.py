"""Hostile and broken PostgreSQL clients against dbtlsd: each ends its own connection the way
PostgreSQL would (its FATAL text and SQLSTATE, or a silent close where PostgreSQL only logs), and
the daemon keeps serving: after every case a normal psql connection works.

Cases: SSLRequest twice (and GSSENCRequest twice, and the two in either order), plaintext
pipelined after SSLRequest (CVE-2021-3935), oversize/undersize/garbage startup packets,
unsupported protocol versions, a startup packet without terminator or user, a malformed
CancelRequest, direct TLS without ALPN / with a foreign ALPN / with ALPN "postgresql", a client
that stops mid-handshake or mid-startup (cut by the pre-authentication deadline), and a client
that vanishes mid-relay (its backend session goes away too).
"""
import os
import shutil
import socket
import ssl
import struct
import subprocess
import tempfile
import time

import pytest

from cli_helpers import use_template
import conftest
import servers

AUTH_TIMEOUT = 3  # seconds: the daemon's pre-authentication deadline in this module

SSL_REQUEST = struct.pack("!II", 8, 80877103)
GSS_REQUEST = struct.pack("!II", 8, 80877104)


def startup(user="trustuser", database="app", proto=196608, extra=()):
    body = struct.pack("!I", proto)
    for k, v in (("user", user), ("database", database), *extra):
        body += k.encode() + b"\0" + v.encode() + b"\0"
    body += b"\0"
    return struct.pack("!I", len(body) + 4) + body


class Front:
    pass


@pytest.fixture(scope="module")
def front(pg_server, dbtls_bin, dbtlsd_bin):
    """One daemon: `tls` (ENCRYPTED_ONLY) and `plain` (ALLOW_UNENCRYPTED_AND_ENCRYPTED)
    instances in front of the session's PostgreSQL over TCP; short pre-auth deadline and TCP
    keepalive probes after 1 s idle."""
    base = tempfile.mkdtemp(prefix="dbtls-ho-")
    os.chmod(base, 0o700)
    st = os.path.join(base, "st")
    os.mkdir(st, 0o700)
    dbtls = conftest.Dbtls(dbtls_bin, st)
    f = Front()
    f.daemon = None
    f.pg = pg_server
    try:
        use_template(dbtls)
        f.tls_port = servers.free_port()
        f.plain_port = servers.free_port()
        for name, port, mode in (("tls", f.tls_port, "ENCRYPTED_ONLY"),
                                 ("plain", f.plain_port, "ALLOW_UNENCRYPTED_AND_ENCRYPTED")):
            dbtls("instances", "create", name, "--engine", "postgres", "--engine-version", "15",
                  "--listen", f"127.0.0.1:{port}", "--backend",
                  f"127.0.0.1:{pg_server.port}", "--endpoint", "localhost", "--ssl-mode", mode)
        f.ca = os.path.join(base, "ca.pem")
        dbtls("ssl", "server-ca-certs", "download", "--instance", "tls", "--out", f.ca)
        f.daemon = conftest.DbtlsdProcess(
            dbtlsd_bin, st, ["--workers", "2", "--auth-timeout", str(AUTH_TIMEOUT),
                             "--tcp-keepalives-idle", "1", "--tcp-keepalives-interval", "1",
                             "--tcp-keepalives-count", "3"], None, base)
        f.daemon.wait_log("dbtlsd: ready", timeout=20)
        yield f
        assert f.daemon.alive(), f"dbtlsd died:\n{f.daemon.log()}"
        rc = f.daemon.stop(expect_clean=False)
        assert rc == 0, f"dbtlsd did not exit cleanly ({rc}):\n{f.daemon.log()}"
    finally:
        if f.daemon is not None and not f.daemon.stopped:
            f.daemon.stop(expect_clean=False)
        if not conftest.KEEP_TMP:
            shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def serving(front, psql):
    """Runs the test, then proves the daemon still serves a normal TLS client."""
    yield front
    assert front.daemon.alive(), front.daemon.log()
    ci = (f"host=localhost hostaddr=127.0.0.1 port={front.tls_port} user=alice "
          f"password={servers.PgServer.ALICE[1]} dbname=app sslmode=verify-full "
          f"sslrootcert={front.ca}")
    rc, out, err = psql(ci, "SELECT 6 * 7")
    assert rc == 0 and out.strip() == "42", err


# --- wire helpers ---------------------------------------------------------------------------
def connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.settimeout(10)
    return s


def recv_exact(s, n):
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


def recv_until_close(s, timeout=10.0):
    """Everything the peer sends until it closes (fails if it does not close in time)."""
    s.settimeout(timeout)
    data = b""
    deadline = time.monotonic() + timeout
    while True:
        try:
            chunk = s.recv(65536)
        except (ConnectionResetError, ssl.SSLEOFError, ssl.SSLZeroReturnError):
            return data
        except (socket.timeout, TimeoutError):
            pytest.fail(f"the front did not close the connection within {timeout} s "
                        f"(got {data!r})")
        if not chunk:
            return data
        data += chunk
        if time.monotonic() > deadline:
            pytest.fail("the front kept sending")


def messages(data):
    """Splits backend messages: [(type, body)]; asserts the framing is whole."""
    out = []
    while data:
        assert len(data) >= 5, data
        t, n = data[0:1], struct.unpack("!I", data[1:5])[0]
        assert len(data) >= 1 + n, data
        out.append((t, data[5:1 + n]))
        data = data[1 + n:]
    return out


def error_fields(body):
    fields = {}
    for part in body.split(b"\0"):
        if part:
            fields[chr(part[0])] = part[1:].decode()
    return fields


def expect_fatal(data, sqlstate, message):
    msgs = messages(data)
    assert msgs and msgs[-1][0] == b"E", data
    f = error_fields(msgs[-1][1])
    assert f["S"] == "FATAL" and f["V"] == "FATAL", f
    assert f["C"] == sqlstate, f
    assert f["M"] == message, f
    return f


def tls_client(alpn=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if alpn:
        ctx.set_alpn_protocols(alpn)
    return ctx


def start_tls(port):
    s = connect(port)
    s.sendall(SSL_REQUEST)
    assert recv_exact(s, 1) == b"S"
    return tls_client().wrap_socket(s, server_hostname="localhost")


def log_has(front, text, start, timeout=5.0):
    front.daemon.wait_log(text, timeout=timeout, start=start)


# --- negotiation requests -------------------------------------------------------------------
def test_ssl_request_twice(serving):
    t = start_tls(serving.tls_port)
    t.sendall(SSL_REQUEST)
    data = recv_until_close(t)
    expect_fatal(data, "0A000",
                 "unsupported frontend protocol 1234.5679: server supports 3.0 to 3.2")


def test_gss_request_inside_tls(serving):
    """After TLS both negotiations are done: a GSSENCRequest is just a bad protocol version."""
    t = start_tls(serving.tls_port)
    t.sendall(GSS_REQUEST)
    expect_fatal(recv_until_close(t), "0A000",
                 "unsupported frontend protocol 1234.5680: server supports 3.0 to 3.2")


def test_gss_request_twice_and_either_order(serving):
    s = connect(serving.tls_port)
    s.sendall(GSS_REQUEST)
    assert recv_exact(s, 1) == b"N"
    s.sendall(GSS_REQUEST)
    data = recv_until_close(s)
    expect_fatal(data, "0A000",
                 "unsupported frontend protocol 1234.5680: server supports 3.0 to 3.2")
    # GSSENCRequest refused, then SSLRequest accepted, then a working session.
    s = connect(serving.tls_port)
    s.sendall(GSS_REQUEST)
    assert recv_exact(s, 1) == b"N"
    s.sendall(SSL_REQUEST)
    assert recv_exact(s, 1) == b"S"
    t = tls_client().wrap_socket(s, server_hostname="localhost")
    t.sendall(startup())
    head = recv_exact(t, 9)
    assert head[:1] == b"R" and struct.unpack("!I", head[5:9])[0] == 0, head  # AuthenticationOk
    t.close()


def test_plaintext_pipelined_after_ssl_request(serving):
    """CVE-2021-3935: bytes that arrive with the SSLRequest were not encrypted."""
    start = serving.daemon.log_size()
    s = connect(serving.tls_port)
    s.sendall(SSL_REQUEST + startup())
    data = recv_until_close(s)
    assert data[:1] == b"S", data
    f = expect_fatal(data[1:], "08P01", "received unencrypted data after SSL request")
    assert f["D"] == ("This could be either a client-software bug or evidence of an attempted "
                      "man-in-the-middle attack.")
    log_has(serving, "received unencrypted data after SSL request", start)


# --- broken startup packets -----------------------------------------------------------------
@pytest.mark.parametrize("raw", [
    struct.pack("!I", 10005) + struct.pack("!I", 196608),  # over MAX_STARTUP_PACKET_LENGTH
    struct.pack("!I", 0x7fffffff),
    struct.pack("!I", 7) + b"\0\3\0",                       # shorter than a version word
    struct.pack("!I", 4),
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",                   # garbage: a huge length word
    b"\0\0\0\0\0\0\0\0",
], ids=["oversize", "huge", "undersize", "len4", "http", "zeros"])
def test_invalid_length_closes_silently(serving, raw):
    """PostgreSQL logs "invalid length of startup packet" (COMMERROR) and closes: no reply."""
    start = serving.daemon.log_size()
    s = connect(serving.tls_port)
    s.sendall(raw)
    assert recv_until_close(s) == b""
    log_has(serving, "invalid length of startup packet", start)


def test_maximum_length_startup_is_accepted(serving):
    """10000 bytes after the length word is the limit, not past it."""
    pkt = startup(user="trustuser", extra=(("application_name", "x"),))
    pkt = startup(user="trustuser", extra=(("application_name", "x" * (1 + 10004 - len(pkt))),))
    assert len(pkt) == 10004
    t = start_tls(serving.tls_port)
    t.sendall(pkt)
    head = recv_exact(t, 9)
    assert head[:1] == b"R" and struct.unpack("!I", head[5:9])[0] == 0, (
        f"the front refused a {len(pkt)}-byte startup packet (PostgreSQL accepts 10000 bytes "
        f"after the length word): got {head!r}\n{serving.daemon.log()[-2000:]}")
    t.close()


@pytest.mark.parametrize("raw,sqlstate,message", [
    (startup(proto=0x00020000), "0A000",
     "unsupported frontend protocol 2.0: server supports 3.0 to 3.2"),
    (startup(proto=0x00040001), "0A000",
     "unsupported frontend protocol 4.1: server supports 3.0 to 3.2"),
    (startup()[:-1], "08P01",
     "invalid startup packet layout: expected terminator as last byte"),
    (startup() + b"x", "08P01",
     "invalid startup packet layout: expected terminator as last byte"),
    (struct.pack("!II", 9, 196608) + b"\0", "28000",
     "no PostgreSQL user name specified in startup packet"),
    (startup(extra=(("replication", "maybe"),)), "22023",
     'invalid value for parameter "replication": "maybe"'),
], ids=["proto2", "proto4", "no-terminator", "trailing", "no-user", "bad-replication"])
def test_bad_startup_packet_fatal(serving, raw, sqlstate, message):
    # the length word must cover the bytes we send
    raw = struct.pack("!I", len(raw)) + raw[4:]
    for port, wrap in ((serving.plain_port, False), (serving.tls_port, True)):
        s = start_tls(port) if wrap else connect(port)
        s.sendall(raw)
        expect_fatal(recv_until_close(s), sqlstate, message)


def test_malformed_cancel_request(serving):
    start = serving.daemon.log_size()
    s = connect(serving.tls_port)
    s.sendall(struct.pack("!III", 12, 80877102, 1234))  # no key
    assert recv_until_close(s) == b""
    log_has(serving, "invalid length of cancel key in cancel request packet", start)
    # a well-formed cancel for a key nobody owns: silently closed, like PostgreSQL
    s = connect(serving.tls_port)
    s.sendall(struct.pack("!IIII", 16, 80877102, 4242, 0xdeadbeef))
    assert recv_until_close(s) == b""


# --- direct TLS (PostgreSQL 17 sslnegotiation=direct) ---------------------------------------
def test_direct_tls_with_alpn_postgresql(serving):
    s = connect(serving.tls_port)
    t = tls_client(["postgresql"]).wrap_socket(s, server_hostname="localhost")
    assert t.selected_alpn_protocol() == "postgresql"
    t.sendall(startup())
    head = recv_exact(t, 9)
    assert head[:1] == b"R" and struct.unpack("!I", head[5:9])[0] == 0, head
    t.close()


def test_direct_tls_without_alpn_is_refused(serving):
    start = serving.daemon.log_size()
    s = connect(serving.tls_port)
    try:
        t = tls_client().wrap_socket(s, server_hostname="localhost")
    except (ssl.SSLError, ConnectionResetError):
        pass  # refused during the handshake
    else:
        try:
            t.sendall(startup())
        except (ssl.SSLError, BrokenPipeError, ConnectionResetError):
            pass
        assert recv_until_close(t) == b""  # no reply at all, as PostgreSQL
    log_has(serving, "received direct SSL connection request without ALPN protocol "
                     "negotiation extension", start)


def test_direct_tls_with_foreign_alpn_is_refused(serving):
    s = connect(serving.tls_port)
    with pytest.raises((ssl.SSLError, ConnectionResetError)):
        t = tls_client(["http/1.1"]).wrap_socket(s, server_hostname="localhost")
        t.sendall(startup())
        if recv_until_close(t) == b"":
            raise ssl.SSLError("closed without a reply")


# --- stalled and vanishing clients ----------------------------------------------------------
@pytest.mark.parametrize("stall", ["before-anything", "mid-length", "mid-startup",
                                   "after-ssl-answer", "mid-tls-handshake", "in-tls-no-startup"])
def test_stalled_client_is_cut_at_the_deadline(serving, psql, stall):
    s = connect(serving.tls_port)
    t0 = time.monotonic()
    if stall == "mid-length":
        s.sendall(b"\0\0")
    elif stall == "mid-startup":
        s.sendall(startup()[:11])
    elif stall in ("after-ssl-answer", "mid-tls-handshake", "in-tls-no-startup"):
        s.sendall(SSL_REQUEST)
        assert recv_exact(s, 1) == b"S"
        if stall == "mid-tls-handshake":
            # the first bytes of a ClientHello record, then nothing
            s.sendall(bytes.fromhex("16030100c8010000c40303"))
        elif stall == "in-tls-no-startup":
            s = tls_client().wrap_socket(s, server_hostname="localhost")
    # while this client stalls, others are served
    ci = (f"host=127.0.0.1 port={serving.plain_port} user=trustuser dbname=app "
          "sslmode=disable")
    rc, out, err = psql(ci, "SELECT 1")
    assert rc == 0, err
    data = recv_until_close(s, timeout=AUTH_TIMEOUT + 10)
    elapsed = time.monotonic() - t0
    assert elapsed >= AUTH_TIMEOUT - 0.5, elapsed
    assert b"R" not in data[:1], data  # never got anywhere near authentication


def _backend_sessions(pg, app):
    out = pg.psql(f"SELECT count(*) FROM pg_stat_activity WHERE application_name = '{app}'")
    return int(out.strip())


@pytest.mark.parametrize("use_tls", [False, True], ids=["plain", "tls"])
def test_client_vanishes_mid_relay(serving, use_tls):
    app = f"vanish-{'tls' if use_tls else 'plain'}-{os.getpid()}"
    s = start_tls(serving.tls_port) if use_tls else connect(serving.plain_port)
    s.sendall(startup(extra=(("application_name", app),)))
    data = b""
    while b"Z\0\0\0\x05I" not in data:  # ReadyForQuery (idle)
        chunk = s.recv(65536)
        assert chunk, data
        data += chunk
    # a query that streams a lot of rows, then the client disappears without Terminate
    q = b"SELECT repeat('x', 1000) FROM generate_series(1, 200000)\0"
    s.sendall(b"Q" + struct.pack("!I", len(q) + 4) + q)
    s.recv(1024)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST
    s.close()
    deadline = time.monotonic() + 15
    while _backend_sessions(serving.pg, app) != 0:
        assert time.monotonic() < deadline, "the backend session outlived its vanished client"
        time.sleep(0.2)


def test_control_characters_cannot_forge_log_lines(serving):
    """A user name is the peer's text, and the refusal is logged with it: a newline in it is
    written as \\x0a, so no client can end the line and write one of its own."""
    start = serving.daemon.log_size()
    forged = "2026-01-01T00:00:00.000Z ERROR forged line"
    s = connect(serving.tls_port)
    s.sendall(startup(user="evil\n" + forged + "\r"))
    data = recv_until_close(s)
    assert b"no pg_hba.conf entry" in data  # the client gets PostgreSQL's text, name as sent
    serving.daemon.wait_log('user "evil\\x0a' + forged + '\\x0d"', start=start)
    assert not any(ln.startswith(forged) for ln in serving.daemon.log().splitlines())


TCP_REPAIR = 19  # linux/tcp.h: a socket closed in repair mode leaves without a FIN or RST


def _dbtlsd_sockets(pid):
    """(local, peer, ss's timer text) of each established TCP socket dbtlsd holds."""
    out = servers.run(["ss", "-tnopH", "state", "established"], timeout=10).stdout
    rows = []
    for line in out.splitlines():
        if f"pid={pid}," not in line:
            continue
        f = line.split()
        timer = next((x for x in f if x.startswith("timer:")), "")
        rows.append((f[2], f[3], timer))
    return rows


def test_client_vanishes_silently_keepalive_finds_it(serving):
    """A client gone without a FIN or RST (a host powered off, a NAT that forgot the flow):
    nothing ever arrives on its socket again, and only TCP keepalive finds out. dbtlsd keeps
    it on both legs, as PostgreSQL does on its own connections, with the timings of
    --tcp-keepalives-* (1 s idle here): the session and its backend end within seconds."""
    app = f"vanish-silent-{os.getpid()}"
    s = start_tls(serving.tls_port)
    s.sendall(startup(extra=(("application_name", app),)))
    data = b""
    while b"Z\0\0\0\x05I" not in data:
        chunk = s.recv(65536)
        assert chunk, data
        data += chunk
    assert _backend_sessions(serving.pg, app) == 1
    client_port = s.getsockname()[1]
    # dbtlsd's end of both legs has its keepalive timer armed (once the last data sent is
    # acknowledged: until then ss shows the retransmission timer, "timer:(on,…)")
    deadline = time.monotonic() + 5
    while True:
        rows = _dbtlsd_sockets(serving.daemon.pid)
        client_leg = [r for r in rows if r[1] == f"127.0.0.1:{client_port}"]
        backend_legs = [r for r in rows if r[1] == f"127.0.0.1:{serving.pg.port}"]
        assert len(client_leg) == 1 and client_leg[0][0] == f"127.0.0.1:{serving.tls_port}", rows
        assert backend_legs, rows
        if all(r[2].startswith("timer:(keepalive,") for r in client_leg + backend_legs):
            break
        assert time.monotonic() < deadline, f"no keepalive timer: {client_leg + backend_legs}"
        time.sleep(0.1)
    try:
        s.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR, 1)
    except PermissionError:
        pytest.skip("TCP_REPAIR needs CAP_NET_ADMIN (the CI runs as root)")
    s.close()  # silently: the front sees nothing until a keepalive probe meets an RST
    deadline = time.monotonic() + 15
    while _backend_sessions(serving.pg, app) != 0:
        assert time.monotonic() < deadline, "the session outlived its silently vanished client"
        time.sleep(0.2)


@pytest.mark.parametrize("args,msg", [
    (["--tcp-keepalives-idle", "soon"],
     '--tcp-keepalives-idle: "soon" is not a number of seconds from 0 to 32767'),
    (["--tcp-keepalives-interval", "40000"],
     '--tcp-keepalives-interval: "40000" is not a number of seconds from 0 to 32767'),
    (["--tcp-keepalives-count", "128"],
     '--tcp-keepalives-count: "128" is not a number from 0 to 127'),
    (["--tcp-user-timeout", "-5"],
     '--tcp-user-timeout: "-5" is not a number of milliseconds from 0 to 2147483647'),
], ids=["idle", "interval", "count", "user-timeout"])
def test_keepalive_flags_refused_with_why(dbtlsd_bin, tmp_dir, args, msg):
    cp = subprocess.run([dbtlsd_bin, "--state-dir", tmp_dir, *args], capture_output=True,
                        text=True, timeout=30)
    assert cp.returncode == 2 and cp.stderr.splitlines()[0] == f"dbtlsd: {msg}", cp.stderr


# --- protocol versions ----------------------------------------------------------------------
@pytest.mark.parametrize("proto,options", [
    (0x00030002, ()),                         # protocol 3.2 (libpq 18)
    (0x00030000, (("_pq_.test_option", "1"),)),  # an unknown protocol option
    (0x00030009, (("_pq_.x", "y"),)),
], ids=["3.2", "pq-option", "3.9-and-option"])
def test_newer_protocol_is_negotiated_not_refused(serving, proto, options):
    """A client asking for a newer minor version or "_pq_." options gets the backend's
    NegotiateProtocolVersion relayed (PostgreSQL 15 speaks 3.0 and knows no options), then
    authentication proceeds."""
    for port, wrap in ((serving.plain_port, False), (serving.tls_port, True)):
        s = start_tls(port) if wrap else connect(port)
        s.sendall(startup(proto=proto, extra=options))
        data = b""
        while b"Z\0\0\0\x05I" not in data:
            chunk = s.recv(65536)
            assert chunk, data
            data += chunk
        msgs = messages(data)
        assert msgs[0][0] == b"v", msgs
        newest, n = struct.unpack("!II", msgs[0][1][:8])
        assert newest == 0x00030000
        names = [x.decode() for x in msgs[0][1][8:].split(b"\0") if x]
        assert n == len(names) and names == [k for k, _ in options]
        assert msgs[1][0] == b"R" and struct.unpack("!I", msgs[1][1][:4])[0] == 0
        s.close()


# --- the same bytes to a real PostgreSQL 15 and to the front --------------------------------
REF_RULES = [
    ("host app alice 10.0.0.0/8 scram-sha-256", "host app alice 10.0.0.0/8 backend"),
    ("host rejectdb all 127.0.0.1/32 reject", "host rejectdb all 127.0.0.1/32 reject"),
]


@pytest.fixture(scope="module")
def reference(pg_server, dbtls_bin, dbtlsd_bin):
    """A second, real PostgreSQL 15 with the rules above, and a front (instance `ref`, the same
    rules as an --hba-file) before the session's server: the two must answer alike."""
    ref = servers.PgServer(keep=conftest.KEEP_TMP)
    base = tempfile.mkdtemp(prefix="dbtls-rf-")
    os.chmod(base, 0o700)
    st = os.path.join(base, "st")
    os.mkdir(st, 0o700)
    daemon = None
    try:
        ref.start()
        ref.write_hba(["local all all trust"] + [pg for pg, _ in REF_RULES])
        ref.reload()
        hba = os.path.join(base, "hba.conf")
        with open(hba, "w") as f:
            f.write("\n".join(front for _, front in REF_RULES) + "\n")
        dbtls = conftest.Dbtls(dbtls_bin, st)
        use_template(dbtls)
        port = servers.free_port()
        dbtls("instances", "create", "ref", "--engine", "postgres", "--engine-version", "15",
              "--listen", f"127.0.0.1:{port}", "--backend", f"127.0.0.1:{pg_server.port}",
              "--endpoint", "localhost", "--hba-file", hba)
        daemon = conftest.DbtlsdProcess(dbtlsd_bin, st, [], None, base)
        daemon.wait_log("dbtlsd: ready", timeout=20)
        yield ref.port, port
        assert daemon.stop(expect_clean=False) == 0, daemon.log()
    finally:
        if daemon is not None and not daemon.stopped:
            daemon.stop(expect_clean=False)
        ref.stop()
        if not conftest.KEEP_TMP:
            shutil.rmtree(base, ignore_errors=True)


def _answer(port, raw):
    s = connect(port)
    s.sendall(raw)
    data = recv_until_close(s)
    if not data:
        return None
    msgs = messages(data)
    assert msgs[-1][0] == b"E", msgs
    f = error_fields(msgs[-1][1])
    return {k: v for k, v in f.items() if k in "SVCMDH"}  # F/L/R name PostgreSQL's source


def _relen(raw):
    """The same packet with its length word made to cover exactly its bytes."""
    return struct.pack("!I", len(raw)) + raw[4:]


@pytest.mark.parametrize("raw", [
    startup(user="alice", database="app"),
    startup(user="bob", database="rejectdb"),
    startup(user="alice", database="app", extra=(("replication", "true"),)),
    startup(user="alice", database="app", extra=(("replication", "database"),)),
    startup(user="alice", extra=(("replication", "maybe"),)),
    startup(user="alice", extra=(("replication", "database"), ("replication", "off"))),
    struct.pack("!II", 9, 196608) + b"\0",
    _relen(startup()[:-1]),
    _relen(startup() + b"x"),
    struct.pack("!II", 10005, 196608),
    struct.pack("!I", 6) + b"\0\0",
    struct.pack("!IIII", 16, 80877102, 1, 2),
], ids=["no-entry", "reject", "replication-no-entry", "logical-no-entry", "bad-replication",
        "replication-database-then-off", "no-user", "no-terminator", "trailing-byte", "oversize", "undersize", "cancel-unknown"])
def test_same_answer_as_postgresql(reference, raw):
    """PostgreSQL's own answer (severity, SQLSTATE, message, detail, hint) or its silent close,
    byte for byte the same from the front."""
    ref_port, front_port = reference
    assert _answer(front_port, raw) == _answer(ref_port, raw)
