#!/usr/bin/python3
"""Captures real MySQL-protocol packets from MariaDB 10.11 and real clients (the mariadb client,
PyMySQL) for the golden tests of src/proto/my.

Starts a throwaway MariaDB (tests/integration/servers.py), puts a tiny recording proxy in front of
it and runs each client scenario once. Every packet (4-byte header + payload, as on the wire) is
written to tests/golden/my/<name>.pkt and what it must decode to, as computed by the independent
Python decoder below, to <name>.expect (key: value lines). tests/unit/test_myproto.c decodes each
.pkt with the C decoders and compares with .expect, and checks that re-encoding gives the same
bytes. Run as root: /usr/bin/python3 tests/golden/my/capture.py (files are overwritten).
"""
import os
import select
import socket
import ssl
import struct
import subprocess
import sys
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "integration"))
import servers  # noqa: E402

CLIENT_SSL = 0x800


def lenenc(b, off):
    c = b[off]
    if c < 0xFB:
        return c, off + 1
    n = {0xFC: 2, 0xFD: 3, 0xFE: 8}[c]
    return int.from_bytes(b[off + 1:off + 1 + n], "little"), off + 1 + n


def cstr(b, off):
    end = b.index(b"\0", off)
    return b[off:end], end + 1


def describe_greeting(p):
    out = []
    off = 1
    out.append(f"protocol: {p[0]}")
    ver, off = cstr(p, off)
    out.append(f"server_version: {ver.decode()}")
    tid, = struct.unpack_from("<I", p, off)
    off += 4
    s1 = p[off:off + 8]
    off += 9
    lo, = struct.unpack_from("<H", p, off)
    off += 2
    charset, status, hi, adl = struct.unpack_from("<BHHB", p, off)
    off += 6
    reserved = p[off:off + 10]
    off += 10
    caps = lo | hi << 16
    mcaps = int.from_bytes(reserved[6:], "little") if not caps & 1 else 0
    n2 = max(13, adl - 8)
    s2 = p[off:off + n2]
    off += n2
    plugin, off = cstr(p, off)
    assert off == len(p)
    out += [f"thread_id: {tid}", f"caps: {caps:08x}", f"charset: {charset}",
            f"status: {status}", f"auth_data_len: {adl}", f"mariadb_caps: {mcaps:08x}",
            f"scramble: {(s1 + s2).hex()}", f"auth_plugin: {plugin.decode()}"]
    return out


def describe_response(p):
    caps, maxp, charset = struct.unpack_from("<IIB", p, 0)
    filler = p[9:32]
    mcaps = int.from_bytes(filler[19:], "little") if not caps & 1 else 0
    out = [f"caps: {caps:08x}", f"max_packet: {maxp}", f"charset: {charset}",
           f"mariadb_caps: {mcaps:08x}"]
    if len(p) == 32:
        return ["kind: ssl_request"] + out
    off = 32
    user, off = cstr(p, off)
    if caps & 0x200000:
        n, off = lenenc(p, off)
        enc = "lenenc"
    elif caps & 0x8000:
        n, off = p[off], off + 1
        enc = "1byte"
    else:
        n = p.index(b"\0", off) - off
        enc = "nul"
    auth = p[off:off + n]
    off += n + (1 if enc == "nul" else 0)
    out = ["kind: response"] + out + [f"user: {user.decode()}", f"auth_enc: {enc}",
                                      f"auth: {auth.hex()}"]
    if caps & 0x8 and off < len(p):
        db, off = cstr(p, off)
        out.append(f"db: {db.decode()}")
    if caps & 0x80000 and off < len(p):
        plugin, off = cstr(p, off)
        out.append(f"plugin: {plugin.decode()}")
    if caps & 0x100000 and off < len(p):
        total, off = lenenc(p, off)
        end = off + total
        while off < end:
            kl, off = lenenc(p, off)
            k = p[off:off + kl]
            off += kl
            vl, off = lenenc(p, off)
            v = p[off:off + vl]
            off += vl
            out.append(f"attr: {k.decode()}={v.decode()}")
    assert off == len(p), (off, len(p))
    return out


def describe_server_auth(p):
    if p[0] == 0xFF:
        code, = struct.unpack_from("<H", p, 1)
        return ["kind: err", f"code: {code}", f"state: {p[4:9].decode()}",
                f"message: {p[9:].decode()}"]
    if p[0] == 0x00:
        return ["kind: ok"]
    if p[0] == 0xFE:
        plugin, off = cstr(p, 1)
        return ["kind: switch", f"plugin: {plugin.decode()}", f"data: {p[off:].hex()}"]
    if p[0] == 0x01:
        return ["kind: more_data", f"data: {p[1:].hex()}"]
    raise ValueError(p[:1])


def split_packets(buf):
    pkts = []
    while len(buf) >= 4:
        n = int.from_bytes(buf[:3], "little")
        if len(buf) < 4 + n:
            break
        pkts.append(bytes(buf[:4 + n]))
        buf = buf[4 + n:]
    return pkts, buf


class Recorder:
    """One-connection proxy: records the handshake packets in both directions. With
    fake_ssl=True it advertises CLIENT_SSL to the client and stops after its SSLRequest."""

    def __init__(self, backend, fake_ssl=False):
        self.backend = backend
        self.fake_ssl = fake_ssl
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(1)
        self.port = self.lsock.getsockname()[1]
        self.from_server = []
        self.from_client = []
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        c, _ = self.lsock.accept()
        s = socket.create_connection(self.backend)
        bufs = {c: b"", s: b""}
        try:
            while True:
                r, _, _ = select.select([c, s], [], [], 10)
                if not r:
                    return
                for sock in r:
                    data = sock.recv(65536)
                    if not data:
                        return
                    pkts, bufs[sock] = split_packets(bufs[sock] + data)
                    for pkt in pkts:
                        if sock is s:
                            if not self.from_server and self.fake_ssl:
                                pkt = self.set_ssl(pkt)
                            self.from_server.append(pkt)
                            c.sendall(pkt)
                        else:
                            self.from_client.append(pkt)
                            if self.fake_ssl and len(pkt) == 36:
                                return
                            s.sendall(pkt)
        finally:
            c.close()
            s.close()
            self.lsock.close()

    @staticmethod
    def set_ssl(pkt):
        p = bytearray(pkt)
        off = 4 + 1 + p[5:].index(0) + 1 + 4 + 8 + 1
        lo = int.from_bytes(p[off:off + 2], "little") | CLIENT_SSL
        p[off:off + 2] = lo.to_bytes(2, "little")
        return bytes(p)


def save(name, pkt, lines):
    with open(os.path.join(HERE, name + ".pkt"), "wb") as f:
        f.write(pkt)
    with open(os.path.join(HERE, name + ".expect"), "w") as f:
        f.write(f"seq: {pkt[3]}\n" + "".join(line + "\n" for line in lines))
    print(f"{name}: {len(pkt)} bytes")


def mariadb_client(port, user, password, *extra):
    return subprocess.run(["mariadb", "--no-defaults", "-h", "127.0.0.1", "-P", str(port),
                           "--protocol=TCP", "-u", user, f"--password={password}",
                           "--connect-timeout=5", *extra, "-e", "SELECT 1"],
                          capture_output=True, text=True, timeout=20)


def main():
    import pymysql
    with servers.MariaDbServer() as srv:
        be = (srv.host, srv.port)
        alice, apw = srv.ALICE

        rec = Recorder(be)
        cp = mariadb_client(rec.port, alice, apw, "--skip-ssl", "--database=app")
        assert cp.returncode == 0, cp.stderr
        rec.thread.join(10)
        save("greeting_mariadb1011", rec.from_server[0], describe_greeting(rec.from_server[0][4:]))
        save("response_mariadb_client", rec.from_client[0],
             describe_response(rec.from_client[0][4:]))
        save("ok_after_auth", rec.from_server[1], describe_server_auth(rec.from_server[1][4:]))

        rec = Recorder(be)
        conn = pymysql.connect(host="127.0.0.1", port=rec.port, user=alice, password=apw,
                               database="app", connect_timeout=5)
        conn.close()
        rec.thread.join(10)
        save("response_pymysql", rec.from_client[0], describe_response(rec.from_client[0][4:]))

        rec = Recorder(be)
        cp = mariadb_client(rec.port, alice, "wrong-password", "--skip-ssl")
        assert cp.returncode != 0
        rec.thread.join(10)
        save("err_access_denied", rec.from_server[1], describe_server_auth(rec.from_server[1][4:]))

        if srv.ed25519_user:
            u, pw = srv.ED25519
            rec = Recorder(be)
            cp = mariadb_client(rec.port, u, pw, "--skip-ssl")
            assert cp.returncode == 0, cp.stderr
            rec.thread.join(10)
            save("auth_switch_ed25519", rec.from_server[1],
                 describe_server_auth(rec.from_server[1][4:]))
            save("auth_switch_reply_ed25519", rec.from_client[1],
                 ["kind: raw", f"length: {len(rec.from_client[1]) - 4}"])

        rec = Recorder(be, fake_ssl=True)
        mariadb_client(rec.port, alice, apw, "--ssl")
        rec.thread.join(10)
        save("ssl_request_mariadb_client", rec.from_client[0],
             describe_response(rec.from_client[0][4:]))

        rec = Recorder(be, fake_ssl=True)
        try:
            pymysql.connect(host="127.0.0.1", port=rec.port, user=alice, password=apw,
                            ssl={"cert_reqs": ssl.CERT_NONE}, connect_timeout=5)
        except Exception:
            pass
        rec.thread.join(10)
        save("ssl_request_pymysql", rec.from_client[0], describe_response(rec.from_client[0][4:]))


if __name__ == "__main__":
    main()
