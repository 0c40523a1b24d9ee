"""MySQL wire helpers shared by the MySQL front tests: packet framing, a PyMySQL connect with the
tests' timeouts, an instance's server CA file, and ScriptedServer, a fake MySQL 8 server for
the protocol corners a real MariaDB cannot show (caching_sha2_password, auth switches)."""
import os
import socket
import struct
import threading

import pymysql


def pymy(port, user, password, ssl_opts=None, host="localhost", database="app"):
    return pymysql.connect(host=host, port=port, user=user, password=password,
                           database=database, ssl=ssl_opts, connect_timeout=10,
                           read_timeout=20, write_timeout=20)


def ca_file(dbtls, tmp_dir, name="my1"):
    path = os.path.join(tmp_dir, f"{name}-ca.pem")
    dbtls("ssl", "server-ca-certs", "download", "--instance", name, "--out", path)
    return path


def read_packet(sock, timeout=5.0):
    sock.settimeout(timeout)
    hdr = b""
    while len(hdr) < 4:
        chunk = sock.recv(4 - len(hdr))
        if not chunk:
            raise EOFError("connection closed")
        hdr += chunk
    n = int.from_bytes(hdr[:3], "little")
    body = b""
    while len(body) < n:
        chunk = sock.recv(n - len(body))
        if not chunk:
            raise EOFError("connection closed")
        body += chunk
    return hdr[3], body


def packet(seq, payload):
    return len(payload).to_bytes(3, "little") + bytes([seq]) + payload


class ScriptedServer:
    """A fake MySQL 8 server for one connection, on TCP (self.port) or a unix socket
    (unix_path): sends a greeting (plugin caching_sha2_password, scramble SCRAMBLE), records
    every packet the front forwards as (seq, payload) in self.received, authenticates per
    `script` — "fast" (AuthMoreData 0x03 + OK), "close" (hang up), "switch" (AuthSwitchRequest to
    mysql_native_password, then OK) — or as a subclass's authenticate() says, then answers every
    command with OK until COM_QUIT or EOF. self.done is set when the connection is over."""

    CAPS = (0x1 | 0x4 | 0x8 | 0x200 | 0x2000 | 0x8000 | 0x80000 | 0x100000 | 0x200000 |
            0x20 | 0x1000000)
    SCRAMBLE = b"abcdefghijklmnopqrst"

    def __init__(self, script=None, unix_path=None):
        self.script = script
        self.unix_path = unix_path
        self.port = None
        if unix_path:
            self.sock = socket.socket(socket.AF_UNIX)
            self.sock.bind(unix_path)
        else:
            self.sock = socket.socket()
            self.sock.bind(("127.0.0.1", 0))
            self.port = self.sock.getsockname()[1]
        self.sock.listen(4)
        self.received = []
        self.done = threading.Event()
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def greeting(self):
        caps = self.CAPS
        p = b"\x0a8.0.36-scripted\x00" + struct.pack("<I", 7) + self.SCRAMBLE[:8] + b"\x00"
        p += struct.pack("<HBHHB", caps & 0xFFFF, 255, 2, caps >> 16, 21) + b"\x00" * 10
        p += self.SCRAMBLE[8:] + b"\x00" + b"caching_sha2_password\x00"
        return packet(0, p)

    @staticmethod
    def ok(seq):
        return packet(seq, b"\x00\x00\x00\x02\x00\x00\x00")

    @staticmethod
    def err(seq, code, msg):
        return packet(seq, b"\xff" + struct.pack("<H", code) + b"#28000" + msg.encode())

    def recv(self, c, timeout=15):
        seq, p = read_packet(c, timeout=timeout)
        self.received.append((seq, p))
        return seq, p

    def authenticate(self, c, seq):
        """Answers the HandshakeResponse (sequence id seq); True when logged in."""
        if self.script == "fast":
            c.sendall(packet(seq + 1, b"\x01\x03") + self.ok(seq + 2))
            return True
        if self.script == "switch":
            c.sendall(packet(seq + 1, b"\xfemysql_native_password\x00" + b"Z" * 20 + b"\x00"))
            seq2, _ = self.recv(c)
            c.sendall(self.ok(seq2 + 1))
            return True
        return False  # "close"

    def run(self):
        self.sock.settimeout(120)  # dbtls init + dbtlsd start come first, slow under load
        try:
            c, _ = self.sock.accept()
        except OSError:
            self.done.set()
            return
        try:
            c.sendall(self.greeting())
            seq, _ = self.recv(c)
            if self.authenticate(c, seq):
                while True:
                    seq, p = self.recv(c)
                    if p[:1] == b"\x01":  # COM_QUIT
                        return
                    c.sendall(self.ok(seq + 1))
        except (EOFError, OSError, ValueError):
            pass
        finally:
            c.close()
            self.done.set()

    def close(self):
        self.sock.close()
        self.t.join(5)
        if self.unix_path and os.path.exists(self.unix_path):
            os.unlink(self.unix_path)
