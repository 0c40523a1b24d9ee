"""The admin API over TCP with mutual TLS (dbtlsd --admin-listen) and the CLI's remote mode
(dbtls --server https://... --admin-cert/--admin-key/--admin-ca). Clients need a certificate
from the admin CA (`dbtls admin-certs create`): no certificate, a certificate from another CA
(an instance's client CA, a self-made one) and plaintext HTTP are refused; the daemon's
certificate verifies against admin-ca.pem for 127.0.0.1 and localhost. The remote CLI prints
what the local one prints."""
import json
import os
import socket
import ssl
import subprocess

import pytest

from api_client import tcp_api, tls_context, unix_api
from cli_helpers import use_template


@pytest.fixture
def remote(dbtls, dbtlsd, state_dir, tmp_dir, free_port):
    use_template(dbtls)
    out = os.path.join(tmp_dir, "ops")
    cp = dbtls("admin-certs", "create", "ops", "--out-dir", out)
    assert "Created admin certificate [ops]" in cp.stdout
    files = {k: os.path.join(out, f"admin-{k}.pem") for k in ("cert", "key", "ca")}
    assert os.stat(files["key"]).st_mode & 0o777 == 0o600
    port = free_port()
    d = dbtlsd.start(state_dir, ["--workers", "1", "--admin-listen", f"127.0.0.1:{port}"])
    return dbtls, d, port, files


def test_admin_cert_files(remote, dbtls, tmp_dir):
    _, d, port, files = remote
    cert = subprocess.run(["openssl", "x509", "-noout", "-subject", "-ext", "extendedKeyUsage",
                           "-in", files["cert"]], capture_output=True, text=True, check=True)
    assert "CN = ops" in cert.stdout and "TLS Web Client Authentication" in cert.stdout
    v = subprocess.run(["openssl", "verify", "-CAfile", files["ca"], files["cert"]],
                       capture_output=True, text=True)
    assert v.returncode == 0, v.stderr
    # refuses to overwrite and refuses a bad name
    cp = dbtls.fail("admin-certs", "create", "ops", "--out-dir", os.path.dirname(files["cert"]))
    assert "already exists" in cp.stderr
    cp = dbtls.fail("admin-certs", "create", "a/b", "--out-dir", os.path.join(tmp_dir, "x"))
    assert "a/b" in cp.stderr
    ev = [e["action"] for e in dbtls.json("events", "list")]
    assert ev.count("admin-ca.create") == 1 and "admin-cert.create" in ev
    assert ev[:2] == ["init", "admin-ca.create"]  # made by init, not by admin-certs create


def test_mtls_accepts_admin_cert(remote):
    dbtls, d, port, files = remote
    ctx = tls_context(files["ca"], files["cert"], files["key"])
    for host in ("127.0.0.1", "localhost"):
        api = tcp_api(host, port, ctx)
        r = api.get("/v1/instances")
        assert r.status == 200 and r.json() == {"items": []}
    api = tcp_api("127.0.0.1", port, ctx)
    r = api.post("/v1/instances", {"name": "pg1", "engine": "postgres", "listen":
                                   "127.0.0.1:1", "backend": "127.0.0.1:2",
                                   "endpoints": ["localhost"]})
    assert r.status == 201, r
    assert dbtls.json("instances", "describe", "pg1")["name"] == "pg1"
    # the event names the admin certificate that made the change
    ev = [e for e in dbtls.json("events", "list") if e["action"] == "instance.create"]
    assert [e["actor"] for e in ev] == ["admin:ops"]
    # the same error contract as on the unix socket
    r = api.get("/v1/instances/nope")
    assert r.status == 404 and r.error["status"] == "NOT_FOUND"
    # the negotiated protocol is TLS 1.2 or 1.3
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        with ctx.wrap_socket(s, server_hostname="127.0.0.1") as t:
            assert t.version() in ("TLSv1.2", "TLSv1.3")


def refused(api):
    """The request is refused: a 401/403 JSON error, or the TLS connection torn down."""
    try:
        r = api.get("/v1/instances")
    except (ssl.SSLError, ConnectionError, OSError) as ex:
        return f"tls: {ex}"
    assert r.status in (401, 403), r
    assert r.error["status"] in ("UNAUTHENTICATED", "PERMISSION_DENIED")
    assert "items" not in r.body.decode()
    return r.error["message"]


def test_mtls_refuses_without_certificate(remote):
    dbtls, d, port, files = remote
    msg = refused(tcp_api("127.0.0.1", port, tls_context(files["ca"])))
    assert "client certificate" in msg
    assert "refused a TCP client" in d.log()


def test_mtls_refuses_foreign_certificates(remote, tmp_dir):
    dbtls, d, port, files = remote
    # a client certificate of an instance (another dbtls CA, right purpose)
    unix = unix_api(d.admin_socket)
    assert unix.post("/v1/instances", {"name": "pg1", "engine": "postgres", "listen":
                                       "127.0.0.1:1", "backend": "127.0.0.1:2",
                                       "endpoints": ["localhost"]}).status == 201
    c = unix.post("/v1/instances/pg1/sslCerts", {"name": "ops"}).json()
    cert = os.path.join(tmp_dir, "inst-cert.pem")
    key = os.path.join(tmp_dir, "inst-key.pem")
    open(cert, "w").write(c["cert"])
    open(key, "w").write(c["privateKey"])
    msg = refused(tcp_api("127.0.0.1", port, tls_context(files["ca"], cert, key)))
    assert "admin CA" in msg
    # a self-signed certificate with the same name
    sk, sc = os.path.join(tmp_dir, "self-key.pem"), os.path.join(tmp_dir, "self-cert.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", sk, "-out", sc, "-days", "1",
                    "-subj", "/O=dbtls/OU=admin/CN=ops"], check=True, capture_output=True)
    refused(tcp_api("127.0.0.1", port, tls_context(files["ca"], sc, sk)))
    # nothing was changed by the refused clients
    assert [i["name"] for i in dbtls.json("instances", "list")] == ["pg1"]


def test_no_plaintext_on_tcp(remote):
    dbtls, d, port, files = remote
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"GET /v1/instances HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        try:
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        except (ConnectionResetError, socket.timeout):
            pass
    assert b"items" not in data and not data.startswith(b"HTTP/1.1 200")


def test_server_certificate_is_from_admin_ca(remote):
    dbtls, d, port, files = remote
    # verified against admin-ca.pem alone (no system roots), for the names we connect with
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(files["ca"])
    ctx.load_cert_chain(files["cert"], files["key"])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        with ctx.wrap_socket(s, server_hostname="localhost") as t:
            peer = t.getpeercert()
    assert ("DNS", "localhost") in peer["subjectAltName"]
    assert ("IP Address", "127.0.0.1") in peer["subjectAltName"]
    # a client that does not trust the admin CA does not accept the admin listener
    other = ssl.create_default_context()  # system roots only
    with pytest.raises(ssl.SSLError):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            other.wrap_socket(s, server_hostname="localhost").close()


def test_cli_remote_mode_round_trip(remote, dbtls_bin, state_dir, tmp_dir, free_port):
    dbtls, d, port, files = remote
    other_state = os.path.join(tmp_dir, "no-store")  # remote mode never opens a local store
    base = [dbtls_bin, "--state-dir", other_state, "--server", f"https://127.0.0.1:{port}",
            "--admin-cert", files["cert"], "--admin-key", files["key"], "--admin-ca",
            files["ca"]]

    def r(*args, rc=0):
        cp = subprocess.run([*base, *map(str, args)], capture_output=True, text=True,
                            timeout=60)
        assert cp.returncode == rc, (args, cp.stdout, cp.stderr)
        return cp

    def rj(*args):
        return json.loads(r(*args, "--format", "json").stdout)

    lport = free_port()
    hba = os.path.join(tmp_dir, "hba.conf")  # read by the remote CLI, its text sent
    open(hba, "w").write("hostssl all all 127.0.0.1/32 backend\n")
    cp = r("instances", "create", "pg1", "--engine", "postgres", "--engine-version", "15",
           "--listen", f"127.0.0.1:{lport}", "--backend", "127.0.0.1:5",
           "--endpoint", "localhost", "--endpoint", "db.example,127.0.0.1",
           "--ssl-mode", "ENCRYPTED_ONLY", "--hba-file", hba, "--max-client-certs", "5")
    assert "Created instance [pg1]." in cp.stderr
    local = dbtls.json("instances", "describe", "pg1")
    assert local["endpoints"] == ["localhost", "db.example", "127.0.0.1"]
    assert local["hbaRules"] == "hostssl all all 127.0.0.1/32 backend\n"
    assert local["maxClientCerts"] == 5
    assert rj("instances", "describe", "pg1") == local
    assert rj("instances", "list") == dbtls.json("instances", "list")
    assert r("instances", "list").stdout == dbtls("instances", "list").stdout
    assert r("instances", "describe", "pg1").stdout == dbtls("instances", "describe",
                                                             "pg1").stdout
    r("instances", "patch", "pg1", "--ssl-mode", "ALLOW_UNENCRYPTED_AND_ENCRYPTED")
    assert dbtls.json("instances", "describe", "pg1")["sslMode"] == \
        "ALLOW_UNENCRYPTED_AND_ENCRYPTED"
    assert rj("cas", "list") == dbtls.json("cas", "list")
    assert rj("engines", "list") == dbtls.json("engines", "list")

    # slot verbs
    up = rj("ssl", "server-certs", "create", "--instance", "pg1")
    assert up["slot"] == "upcoming"
    rot = rj("ssl", "server-certs", "rotate", "--instance", "pg1")
    assert {c["slot"]: c["certSerialNumber"] for c in rot}["active"] == up["certSerialNumber"]
    back = rj("ssl", "server-certs", "rollback", "--instance", "pg1")
    assert {c["slot"]: c["certSerialNumber"] for c in back}["upcoming"] == \
        up["certSerialNumber"]
    assert r("ssl", "server-certs", "list", "--instance", "pg1").stdout == \
        dbtls("ssl", "server-certs", "list", "--instance", "pg1").stdout
    cp = r("ssl", "server-ca-certs", "rotate", "--instance", "pg1", rc=1)
    local_err = dbtls.fail("ssl", "server-ca-certs", "rotate", "--instance", "pg1").stderr
    assert cp.stderr == local_err  # the same one-line message as locally

    # client certificates: the files psql takes
    out = os.path.join(tmp_dir, "app")
    cp = r("ssl", "client-certs", "create", "app", "--instance", "pg1", "--out-dir", out)
    assert "Created client certificate [app] for instance [pg1]." in cp.stdout
    # existing files refuse the command before anything is issued
    cp = r("ssl", "client-certs", "create", "app2", "--instance", "pg1", "--out-dir", out, rc=1)
    assert "already exists" in cp.stderr
    assert [x["name"] for x in dbtls.json("ssl", "client-certs", "list", "--instance",
                                          "pg1")] == ["app"]
    assert os.stat(os.path.join(out, "client-key.pem")).st_mode & 0o777 == 0o600
    key_pub = subprocess.run(["openssl", "pkey", "-pubout", "-in",
                              os.path.join(out, "client-key.pem")], capture_output=True,
                             check=True).stdout
    cert_pub = subprocess.run(["openssl", "x509", "-noout", "-pubkey", "-in",
                               os.path.join(out, "client-cert.pem")], capture_output=True,
                              check=True).stdout
    assert key_pub == cert_pub
    assert open(os.path.join(out, "server-ca.pem")).read() == dbtls(
        "ssl", "server-ca-certs", "download", "--instance", "pg1").stdout
    assert rj("ssl", "client-certs", "list", "--instance", "pg1") == \
        dbtls.json("ssl", "client-certs", "list", "--instance", "pg1")
    assert rj("ssl", "client-certs", "describe", "app", "--instance", "pg1")["name"] == "app"
    r("ssl", "client-certs", "delete", "app", "--instance", "pg1")
    assert dbtls.json("ssl", "client-certs", "list", "--instance", "pg1") == []

    # --pkcs12 (Java): made on this side from what the daemon sent, with the same chain as the
    # local command (the client CA); the password stays here
    out = os.path.join(tmp_dir, "java")
    cp = r("ssl", "client-certs", "create", "java", "--instance", "pg1", "--out-dir", out,
           "--pkcs12", "--pkcs12-password", "s3cret")
    p12 = os.path.join(out, "client.p12")
    assert f"{p12} (mode 0600, for Java)" in cp.stdout
    assert os.stat(p12).st_mode & 0o777 == 0o600
    info = subprocess.run(["openssl", "pkcs12", "-info", "-nokeys", "-passin", "pass:s3cret",
                           "-in", p12], capture_output=True, text=True, check=True).stdout
    assert info.count("BEGIN CERTIFICATE") == 2 and "CN = java" in info
    assert "client CA" in info  # the issuer travels as the chain
    key_p12 = subprocess.run(["openssl", "pkcs12", "-nocerts", "-nodes", "-passin",
                              "pass:s3cret", "-in", p12], capture_output=True,
                             check=True).stdout
    key_pem = open(os.path.join(out, "client-key.pem"), "rb").read()
    pub = [subprocess.run(["openssl", "pkey", "-pubout"], input=k, capture_output=True,
                          check=True).stdout for k in (key_p12, key_pem)]
    assert pub[0] == pub[1]
    assert subprocess.run(["openssl", "pkcs12", "-info", "-nokeys", "-passin", "pass:wrong",
                           "-in", p12], capture_output=True).returncode != 0
    assert rj("ssl", "client-certs", "create", "java2", "--instance", "pg1", "--out-dir",
              os.path.join(tmp_dir, "java2"), "--pkcs12")["files"]["pkcs12"].endswith(
        "client.p12")
    r("ssl", "client-certs", "delete", "java", "--instance", "pg1")
    r("ssl", "client-certs", "delete", "java2", "--instance", "pg1")

    # bundle, connections, events
    assert r("bundle").stdout == dbtls("bundle").stdout
    p7b = os.path.join(tmp_dir, "b.p7b")
    r("bundle", "--format", "p7b", "--out", p7b)
    local_p7b = os.path.join(tmp_dir, "local.p7b")
    dbtls("bundle", "--format", "p7b", "--out", local_p7b)
    assert open(p7b, "rb").read() == open(local_p7b, "rb").read()
    assert rj("connections") == {"connections": []}
    assert rj("events", "list") == dbtls.json("events", "list")
    assert rj("events", "list", "--instance", "pg1", "--limit", "2") == \
        dbtls.json("events", "list", "--instance", "pg1", "--limit", "2")

    r("instances", "delete", "pg1")
    assert dbtls.json("instances", "list") == []
    cp = r("instances", "describe", "pg1", rc=1)
    assert cp.stderr == dbtls.fail("instances", "describe", "pg1").stderr


def test_cli_remote_mode_refusals(remote, dbtls_bin, tmp_dir):
    dbtls, d, port, files = remote
    url = f"https://127.0.0.1:{port}"

    def run(*args):
        return subprocess.run([dbtls_bin, "--state-dir", os.path.join(tmp_dir, "x"), *args],
                              capture_output=True, text=True, timeout=60)

    cp = run("--server", url, "instances", "list")
    assert cp.returncode == 2 and "--admin-cert" in cp.stderr
    cp = run("--server", f"http://127.0.0.1:{port}", "--admin-cert", files["cert"],
             "--admin-key", files["key"], "--admin-ca", files["ca"], "instances", "list")
    assert cp.returncode == 2 and "https://" in cp.stderr
    cp = run("--server", url, "--admin-cert", files["cert"], "--admin-key", files["key"],
             "--admin-ca", files["ca"], "init")
    assert cp.returncode == 2 and "not available with --server" in cp.stderr
    # a CA that did not sign the daemon's certificate: the CLI refuses the server
    shared = os.path.join(tmp_dir, "shared.pem")
    open(shared, "w").write(dbtls("bundle").stdout)
    cp = run("--server", url, "--admin-cert", files["cert"], "--admin-key", files["key"],
             "--admin-ca", shared, "instances", "list")
    assert cp.returncode == 1 and "cannot reach dbtlsd" in cp.stderr
