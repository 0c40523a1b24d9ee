"""Admin client certificates through the admin API and the CLI's remote mode: GET /v1/adminCerts
and POST /v1/adminCerts/{NAME_OR_SHA1}:revoke on both listeners, and `dbtls --server ...
admin-certs list|revoke`, which print exactly what the local commands print. A certificate
revoked remotely is refused by the TCP listener within about a second, its own holder's
included; errors are the control library's one line, exit 1."""
import json
import time

from api_client import unix_api
from test_admin_revoke import api_for, handshake_error, remote_cli


def remote_ok(dbtls_bin, tmp_dir, port, files, *args):
    cp = remote_cli(dbtls_bin, tmp_dir, port, files, *args)
    assert cp.returncode == 0, (cp.stdout, cp.stderr)
    return cp


def wait_refused(port, files):
    deadline = time.monotonic() + 5
    err = handshake_error(port, files)
    while err is None and time.monotonic() < deadline:
        time.sleep(0.1)
        err = handshake_error(port, files)
    assert err is not None, "the revoked certificate was still accepted after 5 s"
    return err


def test_remote_list_and_revoke_print_what_local_prints(two_admins, dbtls, dbtls_bin, tmp_dir):
    d, port, ops, dev = two_admins
    local_table = dbtls("admin-certs", "list")
    local_json = dbtls("admin-certs", "list", "--format", "json")
    cp = remote_ok(dbtls_bin, tmp_dir, port, ops, "admin-certs", "list")
    assert (cp.stdout, cp.stderr) == (local_table.stdout, local_table.stderr)
    assert cp.stdout.splitlines()[0].split()[0] == "NAME" and len(cp.stdout.splitlines()) == 3
    cp = remote_ok(dbtls_bin, tmp_dir, port, ops, "admin-certs", "list", "--format", "json")
    assert cp.stdout == local_json.stdout
    # the resource itself, on both listeners: {"items": the local JSON}
    items = {"items": dbtls.json("admin-certs", "list")}
    assert api_for(port, ops).get("/v1/adminCerts").json() == items
    assert unix_api(d.admin_socket).get("/v1/adminCerts").json() == items

    # ops revokes dev through --server, by name: the local sentence, the local JSON
    dev_row = next(c for c in items["items"] if c["name"] == "dev")
    cp = remote_ok(dbtls_bin, tmp_dir, port, ops, "admin-certs", "revoke", "dev")
    assert cp.stdout == ""
    assert cp.stderr == (f"Revoked admin certificate [dev] (serial {dev_row['certSerialNumber']});"
                         " dbtlsd refuses it from its next reload (about a second).\n")
    after = dbtls.json("admin-certs", "list")
    dev_after = next(c for c in after if c["name"] == "dev")
    assert dev_after["revoked"] is True and dev_after["revokeTime"]
    ev = [e for e in dbtls.json("events", "list") if e["action"] == "admin-cert.revoke"]
    assert len(ev) == 1 and ev[0]["actor"] == "admin:ops", ev

    # the revoked certificate is refused at the handshake; the revoker keeps working
    err = wait_refused(port, dev)
    assert "revoked" in str(err), err
    cp = remote_cli(dbtls_bin, tmp_dir, port, dev, "admin-certs", "list")
    assert cp.returncode == 1 and len(cp.stderr.strip().splitlines()) == 1, cp.stderr
    assert "cannot reach dbtlsd" in cp.stderr and "revoked" in cp.stderr, cp.stderr
    cp = remote_ok(dbtls_bin, tmp_dir, port, ops, "admin-certs", "list", "--format", "json")
    assert cp.stdout == dbtls("admin-certs", "list", "--format", "json").stdout

    # --format json of a revoke: the array of what it revoked, as locally; two of one name
    dbtls("admin-certs", "create", "ci", "--out-dir", f"{tmp_dir}/ci1")
    dbtls("admin-certs", "create", "ci", "--out-dir", f"{tmp_dir}/ci2")
    cp = remote_ok(dbtls_bin, tmp_dir, port, ops, "admin-certs", "revoke", "ci", "--format",
                   "json")
    revoked = [c for c in dbtls.json("admin-certs", "list") if c["name"] == "ci"]
    assert json.loads(cp.stdout) == revoked and len(revoked) == 2
    assert all(c["revoked"] for c in revoked)


def test_remote_revoke_refusals_match_local(two_admins, dbtls, dbtls_bin, tmp_dir):
    d, port, ops, dev = two_admins
    for key in ("nobody", "0" * 40):
        cp = remote_cli(dbtls_bin, tmp_dir, port, ops, "admin-certs", "revoke", key)
        assert cp.returncode == 1, (cp.stdout, cp.stderr)
        assert cp.stderr == dbtls.fail("admin-certs", "revoke", key).stderr
        assert cp.stdout == ""
    # by SHA-1 as openssl prints it (colons, upper case): the colons survive the path
    sha1 = next(c["sha1Fingerprint"] for c in dbtls.json("admin-certs", "list")
                if c["name"] == "dev")
    colons = ":".join(sha1[i:i + 2] for i in range(0, 40, 2)).upper()
    counter = dbtls.json("events", "list")
    remote_ok(dbtls_bin, tmp_dir, port, ops, "admin-certs", "revoke", colons)
    assert len(dbtls.json("events", "list")) == len(counter) + 1
    counter = dbtls.json("events", "list")
    cp = remote_cli(dbtls_bin, tmp_dir, port, ops, "admin-certs", "revoke", colons)
    assert cp.returncode == 1 and cp.stderr == dbtls.fail("admin-certs", "revoke", colons).stderr
    assert "already revoked" in cp.stderr
    assert dbtls.json("events", "list") == counter  # a refusal records nothing

    # the API's statuses, on the unix socket (and the same routes over TCP)
    for api in (unix_api(d.admin_socket), api_for(port, ops)):
        r = api.post("/v1/adminCerts/nobody:revoke")
        assert r.status == 404 and r.error["status"] == "NOT_FOUND"
        assert r.error["message"].startswith('admin certificate "nobody" does not exist')
        r = api.post("/v1/adminCerts/dev:revoke")
        assert r.status == 409 and r.error["status"] == "FAILED_PRECONDITION", r
        assert "already revoked" in r.error["message"]
        r = api.get("/v1/adminCerts/dev:revoke")
        assert r.status == 405 and r.headers["allow"] == "POST"
        r = api.post("/v1/adminCerts")
        assert r.status == 405 and r.headers["allow"] == "GET"
        r = api.post("/v1/adminCerts/dev:forget")
        assert r.status == 404 and "known: revoke" in r.error["message"]
        r = api.get("/v1/adminCerts/dev")
        assert r.status == 404 and "no such resource" in r.error["message"]
        r = api.post("/v1/adminCerts/ops:revoke", {"now": True})
        assert r.status == 400 and 'unknown field "now"' in r.error["message"]
    assert not next(c for c in dbtls.json("admin-certs", "list") if c["name"] == "ops")["revoked"]
    # create stays local (it writes a private key): a usage error, as before
    cp = remote_cli(dbtls_bin, tmp_dir, port, ops, "admin-certs", "create", "x", "--out-dir",
                    f"{tmp_dir}/x")
    assert cp.returncode == 2 and "`dbtls admin-certs create` is not available with --server" \
        in cp.stderr, cp.stderr

    # a revoke on the unix socket (no client certificate there) cuts off the TCP client
    r = unix_api(d.admin_socket).post("/v1/adminCerts/ops:revoke")
    assert r.status == 200 and [c["name"] for c in r.json()["items"]] == ["ops"]
    assert r.json()["items"][0]["revoked"] is True
    assert "revoked" in str(wait_refused(port, ops))


def test_admin_revokes_its_own_certificate(two_admins, dbtls, dbtls_bin, tmp_dir):
    d, port, ops, dev = two_admins
    cp = remote_ok(dbtls_bin, tmp_dir, port, ops, "admin-certs", "revoke", "ops")
    assert cp.stderr.startswith("Revoked admin certificate [ops] (serial ")
    # the reply arrived; from the listener's next reload on, ops is refused
    err = wait_refused(port, ops)
    assert "revoked" in str(err), err
    cp = remote_cli(dbtls_bin, tmp_dir, port, ops, "admin-certs", "list")
    assert cp.returncode == 1 and len(cp.stderr.strip().splitlines()) == 1, cp.stderr
    assert "cannot reach dbtlsd" in cp.stderr and "revoked" in cp.stderr, cp.stderr
    cp = remote_ok(dbtls_bin, tmp_dir, port, dev, "admin-certs", "list")
    assert cp.stdout == dbtls("admin-certs", "list").stdout
    assert d.alive()
