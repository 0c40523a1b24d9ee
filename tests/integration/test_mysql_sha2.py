"""caching_sha2_password full authentication through the front (MySQL 8's default plugin).

A client on TLS answers "perform full authentication" with its password in clear. MySQL accepts
that only on TLS or its unix socket; on a plain TCP backend leg a MySQL client would fetch the
server's RSA public key and send the password encrypted, so the front does exactly that for the
client. Debian has no MySQL 8 server, so the peer is a scripted one that really decrypts with its
RSA private key (python3-cryptography) and checks the password as MySQL does: XOR with the
scramble, RSA-OAEP. The clients are real: PyMySQL over TLS and in clear.
"""
import os

import pymysql
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from cli_helpers import use_template
from mysql_wire import ScriptedServer, ca_file, packet, pymy


class Sha2Server(ScriptedServer):
    """A MySQL 8 peer that always asks for full authentication. On TCP it expects the RSA
    exchange (public key request 0x02, then the encrypted password); on a unix socket, the
    password in clear. `answer_key` False answers the key request with an ERR instead.
    self.plaintext is the password the server recovered, self.login_ok its verdict."""

    def __init__(self, password, unix_path=None, answer_key=True):
        self.password = password
        self.answer_key = answer_key
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.pem = self.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        self.plaintext = None
        self.login_ok = None
        super().__init__(unix_path=unix_path)

    def verdict(self, c, seq, password):
        self.plaintext = password
        self.login_ok = password == self.password.encode() + b"\x00"
        c.sendall(self.ok(seq) if self.login_ok else self.err(
            seq, 1045, "Access denied for user 'alice'@'localhost' (using password: YES)"))
        return self.login_ok

    def authenticate(self, c, seq):
        c.sendall(packet(seq + 1, b"\x01\x04"))  # perform full authentication
        seq, p = self.recv(c)
        if self.unix_path:
            return self.verdict(c, seq + 1, p)
        if p != b"\x02" or not self.answer_key:
            c.sendall(self.err(seq + 1, 1045, "no public key for you" if p == b"\x02"
                               else "expected a public key request"))
            return False
        c.sendall(packet(seq + 1, b"\x01" + self.pem))
        seq, p = self.recv(c)
        mixed = self.key.decrypt(p, padding.OAEP(mgf=padding.MGF1(hashes.SHA1()),
                                                 algorithm=hashes.SHA1(), label=None))
        pw = bytes(b ^ self.SCRAMBLE[i % len(self.SCRAMBLE)] for i, b in enumerate(mixed))
        return self.verdict(c, seq + 1, pw)


@pytest.fixture
def front(dbtls, dbtlsd, state_dir, free_port, tmp_dir):
    """start(srv) -> (port, ca, daemon): a MySQL 8.0 instance (ALLOW_UNENCRYPTED_AND_ENCRYPTED)
    in front of the scripted server srv, its server CA file, and dbtlsd running. Servers given
    to start are closed afterwards."""
    started = []

    def start(srv):
        started.append(srv)
        use_template(dbtls)
        port = free_port()
        dbtls("instances", "create", "my1", "--engine", "mysql", "--engine-version", "8.0",
              "--listen", f"127.0.0.1:{port}", "--backend",
              srv.unix_path or f"127.0.0.1:{srv.port}", "--endpoint", "localhost",
              "--ssl-mode", "ALLOW_UNENCRYPTED_AND_ENCRYPTED")
        return port, ca_file(dbtls, tmp_dir), dbtlsd.start(state_dir)

    yield start
    for srv in started:
        srv.close()


def test_full_auth_over_plain_tcp_leg_is_rsa_encrypted(front):
    srv = Sha2Server("secret-password")
    port, ca, _ = front(srv)
    # PyMySQL on TLS sends its password in clear and checks every sequence id it gets
    conn = pymy(port, "alice", "secret-password", ssl_opts={"ca": ca})
    conn.ping(reconnect=False)
    conn.close()
    assert srv.done.wait(10)
    assert srv.login_ok and srv.plaintext == b"secret-password\x00"
    # response 1, key request 3, encrypted password 5 (256 bytes: the RSA-2048 block)
    assert [s for s, _ in srv.received[:3]] == [1, 3, 5]
    assert srv.received[1][1] == b"\x02" and len(srv.received[2][1]) == 256
    # the cleartext password never crossed the plain backend leg
    assert b"secret-password" not in b"".join(p for _, p in srv.received)
    # the command after authentication starts again at 0
    assert srv.received[3][0] == 0


def test_full_auth_wrong_password_gets_the_servers_refusal(front, dbtls):
    srv = Sha2Server("secret-password")
    port, ca, d = front(srv)
    with pytest.raises(pymysql.err.OperationalError) as ei:
        pymy(port, "alice", "wrong", ssl_opts={"ca": ca})
    assert ei.value.args[0] == 1045
    assert "Access denied for user 'alice'" in ei.value.args[1]
    assert srv.done.wait(10) and srv.login_ok is False
    assert srv.plaintext == b"wrong\x00"
    assert "wrong" not in d.log()  # no password in the log
    # the daemon serves the next client
    srv2 = Sha2Server("pw2")
    try:
        start = d.log_size()
        dbtls("instances", "patch", "my1", "--backend", f"127.0.0.1:{srv2.port}")
        d.wait_reload(start)
        pymy(port, "alice", "pw2", ssl_opts={"ca": ca}).close()
        assert srv2.done.wait(10) and srv2.login_ok
    finally:
        srv2.close()


def test_full_auth_key_refused_reaches_the_client(front):
    port, ca, _ = front(Sha2Server("secret-password", answer_key=False))
    # the ERR that answers the front's key request is the answer to the client's password,
    # with the sequence id the client expects (PyMySQL would report a packet sequence error)
    with pytest.raises(pymysql.err.OperationalError) as ei:
        pymy(port, "alice", "secret-password", ssl_opts={"ca": ca})
    assert ei.value.args == (1045, "no public key for you")


def test_full_auth_client_in_clear_does_its_own_rsa(front):
    srv = Sha2Server("secret-password")
    port, _, _ = front(srv)
    # no TLS on the client leg: PyMySQL asks for the key itself; the front relays untouched
    pymy(port, "alice", "secret-password").close()
    assert srv.done.wait(10) and srv.login_ok
    assert [s for s, _ in srv.received[:3]] == [1, 3, 5]


def test_full_auth_over_unix_socket_leg_is_forwarded(front, tmp_dir):
    # MySQL takes a cleartext password on its unix socket (a secure transport), as on TLS
    srv = Sha2Server("secret-password", unix_path=os.path.join(tmp_dir, "mysqld.sock"))
    port, ca, _ = front(srv)
    pymy(port, "alice", "secret-password", ssl_opts={"ca": ca}).close()
    assert srv.done.wait(10) and srv.login_ok
    assert srv.received[1] == (3, b"secret-password\x00")
