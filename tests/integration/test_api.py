"""The admin API of a real dbtlsd over its 0600 unix socket (docs/admin-api.md): every resource,
the same JSON as `dbtls --format json` (both come from src/admin/view.c), changes that the front
picks up through the change counter, and the error contract: bad JSON, unknown fields, wrong
types, oversize bodies (Content-Length and chunked), unknown instances and resources, wrong
methods (405 + Allow), conflicts (409) and limits (429)."""
import os
import pwd
import socket
import subprocess
import time

import pytest

from api_client import unix_api
from cli_helpers import use_template


@pytest.fixture
def api_env(dbtls, dbtlsd, state_dir):
    use_template(dbtls)
    d = dbtlsd.start(state_dir, ["--workers", "1"])
    return dbtls, d, unix_api(d.admin_socket)


def pg_body(name, port, **kw):
    b = {"name": name, "engine": "postgres", "engineVersion": "15",
         "listen": f"127.0.0.1:{port}", "backend": "127.0.0.1:1",
         "endpoints": ["localhost", "127.0.0.1"]}
    b.update(kw)
    return b


def wait_listening(port, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            time.sleep(0.1)
    return False


def openssl(*args, input=None):
    return subprocess.run(["openssl", *args], input=input, capture_output=True, check=True,
                          timeout=30)


def test_socket_mode_and_read_only_resources(api_env):
    dbtls, d, api = api_env
    assert os.stat(d.admin_socket).st_mode & 0o777 == 0o600
    r = api.get("/v1/cas")
    assert r.status == 200 and r.headers["content-type"] == "application/json"
    assert r.json() == {"items": dbtls.json("cas", "list")}
    assert [c["certificateIdentifier"] for c in r.json()["items"]] == [
        "dbtls-ca-ecc384-g1", "dbtls-ca-rsa2048-g1", "dbtls-ca-rsa4096-g1"]
    r = api.get("/v1/engines")
    assert r.status == 200 and r.json() == {"items": dbtls.json("engines", "list")}
    assert api.get("/v1/instances").json() == {"items": []}
    assert api.get("/v1/connections").json() == {"connections": []}


def test_instances_lifecycle(api_env, free_port):
    dbtls, d, api = api_env
    port = free_port()
    r = api.post("/v1/instances", pg_body("pg1", port, sslMode="ENCRYPTED_ONLY"))
    assert r.status == 201, r
    created = r.json()
    assert created["name"] == "pg1" and created["sslMode"] == "ENCRYPTED_ONLY"
    assert created["endpoints"] == ["localhost", "127.0.0.1"]
    assert created["serverCert"]["slot"] == "active"
    # the API and the CLI read the same store and print the same JSON
    assert api.get("/v1/instances/pg1").json() == dbtls.json("instances", "describe", "pg1")
    assert api.get("/v1/instances").json() == {"items": dbtls.json("instances", "list")}
    # the front picked the new instance up through the change counter: its listener is open
    assert wait_listening(port), d.log()

    # endpoints may also be one comma-separated string, as on the command line
    r = api.post("/v1/instances", pg_body("pg2", free_port(), endpoints="db2.example,db2b"))
    assert r.status == 201 and r.json()["endpoints"] == ["db2.example", "db2b"]

    r = api.patch("/v1/instances/pg1", {"sslMode": "TRUSTED_CLIENT_CERTIFICATE_REQUIRED",
                                        "maxClientCerts": 3})
    assert r.status == 200, r
    assert r.json()["sslMode"] == "TRUSTED_CLIENT_CERTIFICATE_REQUIRED"
    desc = dbtls.json("instances", "describe", "pg1")
    assert desc["sslMode"] == "TRUSTED_CLIENT_CERTIFICATE_REQUIRED"
    assert desc["maxClientCerts"] == 3

    r = api.delete("/v1/instances/pg2")
    assert r.status == 200 and r.json() == {"name": "pg2", "deleted": True}
    assert api.get("/v1/instances/pg2").status == 404
    assert [i["name"] for i in dbtls.json("instances", "list")] == ["pg1"]
    # every change is an event; the actor is the API and the socket peer's user (SO_PEERCRED)
    ev = api.get("/v1/events?instance=pg2").json()["items"]
    assert [e["action"] for e in ev] == ["instance.create", "instance.delete"]
    me = pwd.getpwuid(os.getuid()).pw_name
    assert all(e["actor"] == f"admin-api:{me}" for e in ev), ev
    assert api.get("/v1/events").json() == {"items": dbtls.json("events", "list")}
    assert len(api.get("/v1/events?limit=2").json()["items"]) == 2


def test_server_cert_slots(api_env, free_port):
    dbtls, d, api = api_env
    assert api.post("/v1/instances", pg_body("pg1", free_port())).status == 201
    r = api.get("/v1/instances/pg1/serverCerts")
    assert r.status == 200
    before = r.json()["items"]
    assert [c["slot"] for c in before] == ["active"]
    assert r.json() == {"items": dbtls.json("ssl", "server-certs", "list", "--instance", "pg1")}

    r = api.post("/v1/instances/pg1:addServerCert", {"validitySeconds": 3600})
    assert r.status == 200, r
    up = r.json()
    assert up["slot"] == "upcoming" and "BEGIN CERTIFICATE" in up["cert"]
    assert 3000 < iso(up["expirationTime"]) - time.time() < 3700

    r = api.post("/v1/instances/pg1:rotateServerCert")
    assert r.status == 200, r
    slots = {c["slot"]: c["certSerialNumber"] for c in r.json()["items"]}
    assert slots == {"active": up["certSerialNumber"],
                     "previous": before[0]["certSerialNumber"]}
    r = api.post("/v1/instances/pg1:rollbackServerCert", b"")
    assert r.status == 200
    slots = {c["slot"]: c["certSerialNumber"] for c in r.json()["items"]}
    assert slots == {"active": before[0]["certSerialNumber"],
                     "upcoming": up["certSerialNumber"]}
    # server CAs of a shared-mode instance: listed (the shared root), not rotatable
    r = api.get("/v1/instances/pg1/serverCas")
    assert r.status == 200 and r.json()["items"]
    r = api.post("/v1/instances/pg1:addServerCa")
    assert r.status == 409 and r.error["status"] == "FAILED_PRECONDITION"
    assert "server-certs" in r.error["message"] or "shared" in r.error["message"]


def iso(s):
    import datetime
    return datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


def test_server_ca_slots_per_instance(api_env, free_port):
    dbtls, d, api = api_env
    r = api.post("/v1/instances", pg_body("pi1", free_port(), caMode="per-instance"))
    assert r.status == 201, r
    first = api.get("/v1/instances/pi1/serverCas").json()["items"]
    assert [c["slot"] for c in first] == ["active"]
    r = api.post("/v1/instances/pi1:rotateServerCa")
    assert r.status == 409 and r.error["status"] == "FAILED_PRECONDITION"
    assert "no upcoming server CA" in r.error["message"]
    r = api.post("/v1/instances/pi1:addServerCa", {})
    assert r.status == 200 and r.json()["slot"] == "upcoming"
    new = r.json()["certSerialNumber"]
    r = api.post("/v1/instances/pi1:rotateServerCa")
    assert r.status == 200
    assert {c["slot"]: c["certSerialNumber"] for c in r.json()["items"]}["active"] == new
    r = api.post("/v1/instances/pi1:rollbackServerCa")
    assert r.status == 200
    assert {c["slot"]: c["certSerialNumber"] for c in r.json()["items"]}["active"] == \
        first[0]["certSerialNumber"]
    assert api.get("/v1/instances/pi1/serverCas").json() == {
        "items": dbtls.json("ssl", "server-ca-certs", "list", "--instance", "pi1")}
    r = api.post("/v1/instances/pi1:addServerCert")
    assert r.status == 409 and r.error["status"] == "FAILED_PRECONDITION"


def test_ssl_certs(api_env, free_port, tmp_dir):
    dbtls, d, api = api_env
    assert api.post("/v1/instances", pg_body("pg1", free_port(), maxClientCerts=2)).status == 201
    r = api.post("/v1/instances/pg1/sslCerts", {"name": "app user"})
    assert r.status == 201, r
    c = r.json()
    assert c["name"] == "app user" and c["commonName"] == "app user"
    key, cert = c["privateKey"], c["cert"]
    assert "PRIVATE KEY" in key and "BEGIN CERTIFICATE" in c["serverCaCert"]
    # the key belongs to the certificate
    pub_from_key = openssl("pkey", "-pubout", input=key.encode()).stdout
    pub_from_cert = openssl("x509", "-noout", "-pubkey", input=cert.encode()).stdout
    assert pub_from_key == pub_from_cert
    # the key is handed out once: never in a list or a describe
    listed = api.get("/v1/instances/pg1/sslCerts").json()
    assert listed == {"items": dbtls.json("ssl", "client-certs", "list", "--instance", "pg1")}
    assert "privateKey" not in listed["items"][0]
    by_name = api.get("/v1/instances/pg1/sslCerts/app%20user")
    assert by_name.status == 200 and "privateKey" not in by_name.json()
    sha1 = c["sha1Fingerprint"]
    by_sha1 = api.get(f"/v1/instances/pg1/sslCerts/{sha1.upper()}")
    assert by_sha1.status == 200 and by_sha1.json() == by_name.json()

    assert api.post("/v1/instances/pg1/sslCerts", {"name": "second",
                                                   "validitySeconds": 600}).status == 201
    r = api.post("/v1/instances/pg1/sslCerts", {"name": "third"})
    assert r.status == 429 and r.error["status"] == "RESOURCE_EXHAUSTED"
    assert "already has 2 client certificates" in r.error["message"]
    r = api.post("/v1/instances/pg1/sslCerts", {"name": "second"})
    assert r.status == 409 and r.error["status"] == "ALREADY_EXISTS"

    r = api.delete(f"/v1/instances/pg1/sslCerts/{sha1}")
    assert r.status == 200 and r.json()["revoked"] is True
    assert api.get("/v1/instances/pg1/sslCerts/app%20user").status == 404
    assert [x["name"] for x in dbtls.json("ssl", "client-certs", "list", "--instance",
                                          "pg1")] == ["second"]
    assert "client-cert.delete" in [e["action"] for e in
                                    api.get("/v1/events?instance=pg1").json()["items"]]

    # resetSslConfig: new server certificate, every client certificate revoked
    old = api.get("/v1/instances/pg1").json()["serverCert"]["certSerialNumber"]
    r = api.post("/v1/instances/pg1:resetSslConfig", {})
    assert r.status == 200 and r.json() == {"name": "pg1", "sslConfigReset": True}
    assert api.get("/v1/instances/pg1").json()["serverCert"]["certSerialNumber"] != old
    assert api.get("/v1/instances/pg1/sslCerts").json() == {"items": []}


def test_bundles(api_env, free_port, tmp_dir):
    dbtls, d, api = api_env
    assert api.post("/v1/instances", pg_body("pg1", free_port())).status == 201
    r = api.get("/v1/bundles")
    assert r.status == 200 and r.headers["content-type"] == "application/x-pem-file"
    assert r.body.decode() == dbtls("bundle").stdout
    r = api.get("/v1/bundles?ca=dbtls-ca-rsa2048-g1&region=default&format=pem")
    assert r.status == 200 and r.body.count(b"BEGIN CERTIFICATE") == 2
    assert r.body.decode() == dbtls("bundle", "--ca", "dbtls-ca-rsa2048-g1", "--region",
                                    "default").stdout
    r = api.get("/v1/bundles?instance=pg1")
    assert r.body.decode() == dbtls("ssl", "server-ca-certs", "download", "--instance",
                                    "pg1").stdout
    r = api.get("/v1/bundles?format=p7b")
    assert r.status == 200 and r.headers["content-type"] == "application/pkcs7-mime"
    certs = openssl("pkcs7", "-inform", "DER", "-print_certs", input=r.body).stdout
    assert certs.count(b"BEGIN CERTIFICATE") == api.get("/v1/bundles").body.count(
        b"BEGIN CERTIFICATE")
    r = api.get("/v1/bundles?region=nowhere")
    assert r.status == 404 and r.error["status"] == "NOT_FOUND"
    r = api.get("/v1/bundles?format=der")
    assert r.status == 400 and "pem or p7b" in r.error["message"]
    r = api.get("/v1/bundles?regoin=default")
    assert r.status == 400 and "regoin" in r.error["message"]


def test_bad_requests(api_env, free_port):
    dbtls, d, api = api_env
    good = pg_body("pg1", free_port())
    # bad JSON, not an object, duplicate keys, unknown and mistyped fields, missing fields
    for body, text in [
        (b"{bad", "not valid JSON"),
        (b"", "needs a JSON object body"),
        (b"[1, 2]", "must be a JSON object"),
        (b'{"name": "a", "name": "b"}', "not valid JSON"),
        ({**good, "colour": "red"}, 'unknown field "colour"'),
        ({**good, "maxClientCerts": "10"}, '"maxClientCerts" must be an integer'),
        ({**good, "maxClientCerts": 0}, '"maxClientCerts" must be an integer from 1'),
        ({**good, "engine": 5}, 'field "engine" must be a string'),
        ({**good, "clientInfo": 1}, 'field "clientInfo" must be true or false'),
        ({**good, "clientInfo": "maybe"}, 'client info must be on or off (got "maybe")'),
        ({**good, "endpoints": []}, '"endpoints" must be a non-empty array'),
        ({**good, "endpoints": ["a,b"]}, "without commas"),
        ({k: v for k, v in good.items() if k != "backend"}, 'field "backend" is required'),
        ({k: v for k, v in good.items() if k != "name"}, 'field "name" is required'),
    ]:
        r = api.post("/v1/instances", body)
        assert r.status == 400, (body, r)
        assert r.error["status"] == "INVALID_ARGUMENT"
        assert text in r.error["message"], (body, r.error)
    # validation by the control library comes back with its own message
    r = api.post("/v1/instances", {**good, "engine": "oracle"})
    assert r.status == 400 and "oracle" in r.error["message"]
    r = api.post("/v1/instances", {**good, "name": "1bad"})
    assert r.status == 400
    assert api.get("/v1/instances").json() == {"items": []}  # nothing was created

    assert api.post("/v1/instances", good).status == 201
    r = api.post("/v1/instances", good)
    assert r.status == 409 and r.error["status"] == "ALREADY_EXISTS"
    r = api.patch("/v1/instances/pg1", {})
    assert r.status == 400 and "nothing to change" in r.error["message"]
    r = api.patch("/v1/instances/pg1", {"name": "other"})
    assert r.status == 400 and 'unknown field "name"' in r.error["message"]
    r = api.post("/v1/instances/pg1:rotateServerCert", {"force": True})
    assert r.status == 400 and 'unknown field "force"' in r.error["message"]
    r = api.post("/v1/instances/pg1:addServerCert", {"validitySeconds": -1})
    assert r.status == 400
    r = api.post("/v1/instances/pg1/sslCerts", {"name": "x/y"})
    assert r.status == 400
    r = api.get("/v1/events?limit=0")
    assert r.status == 400
    # every /v1 resource refuses a query parameter it does not take (a typo must not be ignored)
    for path in ("/v1/instances?engine=postgres", "/v1/instances/pg1?view=full", "/v1/cas?x=1",
                 "/v1/connections?instance=pg1", "/v1/instances/pg1/sslCerts?limit=1"):
        r = api.get(path)
        assert r.status == 400 and "unknown query parameter" in r.error["message"], (path, r)
    r = api.post("/v1/instances/pg1:rotateServerCert?dry=1", {})
    assert r.status == 400 and '"dry"' in r.error["message"]
    assert api.get("/v1/instances/pg1").status == 200


def test_unknown_instances_and_resources(api_env):
    dbtls, d, api = api_env
    for method, path in [("GET", "/v1/instances/nope"), ("DELETE", "/v1/instances/nope"),
                         ("GET", "/v1/instances/nope/serverCerts"),
                         ("GET", "/v1/instances/nope/serverCas"),
                         ("GET", "/v1/instances/nope/sslCerts"),
                         ("GET", "/v1/instances/nope/sslCerts/app"),
                         ("DELETE", "/v1/instances/nope/sslCerts/app"),
                         ("POST", "/v1/instances/nope:rotateServerCert"),
                         ("POST", "/v1/instances/nope:addServerCa"),
                         ("POST", "/v1/instances/nope:resetSslConfig")]:
        r = api.request(method, path)
        assert r.status == 404, (method, path, r)
        assert r.error["status"] == "NOT_FOUND"
        assert 'instance "nope"' in r.error["message"], r.error
    r = api.patch("/v1/instances/nope", {"sslMode": "ENCRYPTED_ONLY"})
    assert r.status == 404
    r = api.post("/v1/instances/nope/sslCerts", {"name": "a"})
    assert r.status == 404
    for path in ["/", "/v1", "/v1/nothing", "/v2/instances", "/v1/instances/x/other",
                 "/v1/instances/x/sslCerts/a/b", "/v1/cas/extra"]:
        r = api.get(path)
        assert r.status == 404 and r.error["status"] == "NOT_FOUND", (path, r)
    r = api.post("/v1/instances/x:explode")
    assert r.status == 404 and "unknown instance action" in r.error["message"]


def test_wrong_methods(api_env):
    dbtls, d, api = api_env
    for method, path, allow in [
        ("POST", "/v1/cas", "GET"), ("DELETE", "/v1/engines", "GET"),
        ("PUT", "/v1/instances", "GET, POST"), ("DELETE", "/v1/instances", "GET, POST"),
        ("PUT", "/v1/instances/pg1", "GET, PATCH, DELETE"),
        ("POST", "/v1/instances/pg1", "GET, PATCH, DELETE"),
        ("GET", "/v1/instances/pg1:rotateServerCa", "POST"),
        ("DELETE", "/v1/instances/pg1/serverCerts", "GET"),
        ("PATCH", "/v1/instances/pg1/sslCerts", "GET, POST"),
        ("POST", "/v1/instances/pg1/sslCerts/a", "GET, DELETE"),
        ("POST", "/v1/bundles", "GET"), ("DELETE", "/v1/events", "GET"),
        ("POST", "/v1/connections", "GET"),
    ]:
        r = api.request(method, path)
        assert r.status == 405, (method, path, r)
        assert r.headers["allow"] == allow
        assert r.error["status"] == "METHOD_NOT_ALLOWED"


def test_oversize_bodies(api_env, free_port):
    dbtls, d, api = api_env
    limit = 64 * 1024
    big = {**pg_body("pg1", free_port()), "hbaRules": "# " + "x" * limit}
    r = api.post("/v1/instances", big)
    assert r.status == 413 and r.error["status"] == "PAYLOAD_TOO_LARGE"
    assert "65536 bytes" in r.error["message"]
    # without a Content-Length (chunked), refused while receiving
    r = api.post("/v1/instances", big, chunked=True)
    assert r.status == 413 and r.error["status"] == "PAYLOAD_TOO_LARGE"
    r = api.request("POST", "/v1/instances", body=b"x" * (10 * 1024 * 1024), chunked=True)
    assert r.status == 413
    assert api.get("/v1/instances").json() == {"items": []}
    # just under the limit is fine
    ok = {**pg_body("pg1", free_port()),
          "hbaRules": "host all all all backend # " + "x" * (limit - 1000) + "\n"}
    r = api.post("/v1/instances", ok)
    assert r.status == 201, r
    assert d.alive()


def test_connections_through_api(api_env, pg_server, free_port, psql):
    """A live session through the front shows up in GET /v1/connections (engine's JSON)."""
    dbtls, d, api = api_env
    port = free_port()
    r = api.post("/v1/instances", {**pg_body("pg1", port), "backend":
                                   f"127.0.0.1:{pg_server.port}"})
    assert r.status == 201
    assert wait_listening(port)
    import psycopg
    with psycopg.connect(host="127.0.0.1", port=port, user="alice", password="alice-secret-1",
                         dbname="app", sslmode="require", application_name="api-test") as c:
        c.execute("SELECT 1").fetchone()
        rows = [x for x in api.get("/v1/connections").json()["connections"]
                if x["application_name"] == "api-test"]
        assert len(rows) == 1 and rows[0]["instance"] == "pg1" and rows[0]["ssl"] is True


def test_slow_operation_does_not_block_other_requests(api_env, free_port):
    """Each connection has its own thread and control handle: while per-instance RSA-4096 CAs
    are being made, reads are answered at once."""
    import threading
    dbtls, d, api = api_env
    done = []

    def create(i):
        r = api.post("/v1/instances", pg_body(f"slow{i}", free_port(), caMode="per-instance",
                                              caId="dbtls-ca-rsa4096-g1"))
        done.append((time.monotonic(), r.status))

    threads = [threading.Thread(target=create, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    time.sleep(0.05)
    r = api.get("/v1/engines")
    t_get = time.monotonic()
    assert r.status == 200
    assert api.get("/v1/connections").status == 200
    for t in threads:
        t.join(timeout=120)
    assert sorted(s for _, s in done) == [201, 201, 201]
    # the read was answered before even the first writer finished (an RSA-4096 key takes far
    # longer than a GET); with one thread for all connections it would have waited
    assert t_get < min(t for t, _ in done), (t_get, done)
    assert len(api.get("/v1/instances").json()["items"]) == 3
