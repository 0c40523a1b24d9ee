"""`dbtls apply --file FLEET.json`: a fleet's instances as one file, made true idempotently. The
first run creates, a second run changes nothing at all (the store's rows and change counter are
equal), an edited field patches exactly that field (a changed ssl mode is served by a running
dbtlsd in front of a real PostgreSQL 15: psql's plaintext connection gets PostgreSQL's own
rejection), --prune deletes what the file does not name, --dry-run changes nothing. A bad file
is refused whole with one line naming the instance and the field; a change the store refuses
stops the run there, and the next run converges."""
import json
import os
import subprocess

from cli_helpers import assert_unchanged, store_snapshot, use_template, write


def fleet(tmp_dir, instances, name="fleet.json"):
    path = os.path.join(tmp_dir, name)
    write(path, json.dumps({"instances": instances}, indent=1))
    return path


def plan(dbtls, path, *args):
    return {r["name"]: (r["action"], r["fields"])
            for r in dbtls.json("apply", "--file", path, *args)}


def test_apply_is_idempotent_and_patches_only_what_differs(dbtls, state_dir, tmp_dir):
    use_template(dbtls)
    write(os.path.join(tmp_dir, "pg1-hba.conf"), "hostssl all all all backend\n")
    pg1 = {"name": "pg1", "engine": "postgres", "engineVersion": "15",
           "listen": "127.0.0.1:41101", "backend": "/var/run/postgresql",
           "endpoints": ["pg1.example.com", "127.0.0.1"], "sslMode": "ENCRYPTED_ONLY",
           "hbaFile": "pg1-hba.conf", "clientInfo": True}
    my1 = {"name": "my1", "engine": "mariadb", "listen": "127.0.0.1:41102",
           "backend": "127.0.0.1:3306", "endpoints": "my1.example.com", "maxClientCerts": 20,
           "serverCertRotation": "manual", "rotationLeadDays": 30}
    path = fleet(tmp_dir, [pg1, my1])
    before = store_snapshot(state_dir)
    assert plan(dbtls, path, "--dry-run") == {
        "pg1": ("create", ["engine", "engineVersion", "listen", "backend", "endpoints",
                           "sslMode", "clientInfo", "hbaRules"]),
        "my1": ("create", ["engine", "listen", "backend", "endpoints", "maxClientCerts",
                           "serverCertRotation", "rotationLeadDays"])}
    assert_unchanged(before, state_dir)
    plan(dbtls, path)
    got = dbtls.json("instances", "describe", "pg1")
    assert got["hbaRules"] == "hostssl all all all backend\n" and got["clientInfo"] is True
    assert got["endpoints"] == ["pg1.example.com", "127.0.0.1"]
    assert dbtls.json("instances", "describe", "my1")["maxClientCerts"] == 20

    # again: nothing at all changes, not even the change counter (no daemon reload)
    before = store_snapshot(state_dir)
    assert plan(dbtls, path) == {"pg1": ("unchanged", []), "my1": ("unchanged", [])}
    assert_unchanged(before, state_dir)
    r = dbtls("apply", "--file", path)
    assert r.stderr.strip() == "Applied 0 changes; 2 instances unchanged.", r.stderr

    # one field edited: exactly it is patched; the server certificate stays
    serial = got["serverCert"]["certSerialNumber"]
    pg1["sslMode"] = "TRUSTED_CLIENT_CERTIFICATE_REQUIRED"
    path = fleet(tmp_dir, [pg1, my1])
    assert plan(dbtls, path) == {"pg1": ("patch", ["sslMode"]), "my1": ("unchanged", [])}
    got = dbtls.json("instances", "describe", "pg1")
    assert got["sslMode"] == "TRUSTED_CLIENT_CERTIFICATE_REQUIRED"
    assert got["serverCert"]["certSerialNumber"] == serial
    # an endpoint added: the certificate is re-issued with it (the patch's own behaviour)
    pg1["endpoints"] = ["pg1.example.com", "127.0.0.1", "pg1.internal"]
    path = fleet(tmp_dir, [pg1, my1])
    assert plan(dbtls, path)["pg1"] == ("patch", ["endpoints"])
    got = dbtls.json("instances", "describe", "pg1")
    assert got["serverCert"]["certSerialNumber"] != serial

    # the rotation policy: only the lead differs, so only it changes; the certificate stays
    events = len(dbtls.json("events", "list"))
    my1["rotationLeadDays"] = 45
    path = fleet(tmp_dir, [pg1, my1])
    serial = dbtls.json("instances", "describe", "my1")["serverCert"]["certSerialNumber"]
    assert plan(dbtls, path)["my1"] == ("patch", ["rotationLeadDays"])
    ev = dbtls.json("events", "list")[events:]
    assert [e["action"] for e in ev] == ["instance.rotation-policy"], ev
    assert dbtls.json("instances", "describe", "my1")["serverCert"]["certSerialNumber"] == serial
    assert plan(dbtls, path)["my1"] == ("unchanged", [])

    # --prune: what the file does not name goes; without it, it stays
    dbtls("instances", "create", "extra", "--engine", "postgres", "--listen",
          "127.0.0.1:41103", "--backend", "127.0.0.1:5432", "--endpoint", "extra.test")
    assert "extra" not in plan(dbtls, path)
    assert plan(dbtls, path, "--prune", "--dry-run")["extra"] == ("delete", [])
    assert plan(dbtls, path, "--prune")["extra"] == ("delete", [])
    assert sorted(i["name"] for i in dbtls.json("instances", "list")) == ["my1", "pg1"]


def test_apply_in_front_of_postgresql(dbtls, dbtlsd, state_dir, tmp_dir, free_port, pg_server):
    use_template(dbtls)
    port = free_port()
    inst = {"name": "pg1", "engine": "postgres", "engineVersion": "15",
            "listen": f"127.0.0.1:{port}", "backend": pg_server.socket_path,
            "endpoints": ["localhost"]}
    path = fleet(tmp_dir, [inst])
    dbtls("apply", "--file", path)
    d = dbtlsd.start(state_dir)
    psql = ["psql", f"host=127.0.0.1 port={port} user=trustuser dbname=app sslmode=disable "
            "connect_timeout=5", "-Atc", "SELECT 1"]
    cp = subprocess.run(psql, capture_output=True, text=True, timeout=20)
    assert cp.returncode == 0 and cp.stdout.strip() == "1", cp.stderr
    inst["sslMode"] = "ENCRYPTED_ONLY"
    start = d.log_size()
    path = fleet(tmp_dir, [inst])
    assert plan(dbtls, path) == {"pg1": ("patch", ["sslMode"])}
    d.wait_reload(start)
    cp = subprocess.run(psql, capture_output=True, text=True, timeout=20)
    assert cp.returncode != 0
    assert ('no pg_hba.conf entry for host "127.0.0.1", user "trustuser", database "app", '
            "no encryption") in cp.stderr, cp.stderr


def test_apply_refuses_a_bad_file_whole(dbtls, state_dir, tmp_dir):
    use_template(dbtls)
    ok = {"name": "pg1", "engine": "postgres", "listen": "127.0.0.1:41111",
          "backend": "127.0.0.1:5432", "endpoints": "pg1.test"}
    dbtls("apply", "--file", fleet(tmp_dir, [ok]))
    before = store_snapshot(state_dir)

    def refused(instances_or_text, expected):
        path = os.path.join(tmp_dir, "bad.json")
        if isinstance(instances_or_text, str):
            write(path, instances_or_text)
        else:
            fleet(tmp_dir, instances_or_text, "bad.json")
        r = dbtls.fail("apply", "--file", path)
        assert r.stderr.strip() == f'dbtls: --file "{path}": {expected}' or \
            r.stderr.strip() == f"dbtls: {expected}", r.stderr
        assert_unchanged(before, state_dir)

    new = {"name": "pg2", "engine": "postgres", "listen": "127.0.0.1:41112",
           "backend": "127.0.0.1:5432", "endpoints": "pg2.test"}
    refused([ok, dict(new, sslmode="ENCRYPTED_ONLY")],
            'instances[1] ("pg2"): unknown field "sslmode"; known fields: name, region, engine, '
            "engineVersion, listen, backend, backendTlsCa, backendTlsCert, backendTlsKey, "
            "clientInfo, endpoints, caMode, caId, sslMode, tlsMinVersion, tlsMaxVersion, "
            "ciphers, ciphersuites, groups, hbaRules, identMap, userRequire, maxClientCerts, "
            "validitySeconds, caValiditySeconds, hbaFile, identFile, userRequireFile, "
            "serverCertRotation, rotationLeadDays")
    refused([ok, dict(new, serverCertRotation="weekly")],
            'instances[1] ("pg2"): server certificate rotation "weekly" is not valid; use auto '
            'or manual')
    refused([ok, dict(new, maxClientCerts="ten")],
            'instances[1] ("pg2"): field "maxClientCerts" must be an integer from 1 to 1000')
    refused([ok, dict(new, name="pg1")],
            'instances[0] and instances[1] are both named "pg1"')
    refused([{k: v for k, v in new.items() if k != "backend"}],
            'instance "pg2" does not exist yet: its field "backend" is required to create it')
    refused([dict(ok, region="eu")],
            'instance "pg1" is in region "default": the region is fixed at creation (delete '
            'and create it, or remove "region" from the file)')
    refused([dict(new, hbaFile="missing.conf")],
            f'instances[0] ("pg2"): cannot read field "hbaFile": "{tmp_dir}/missing.conf": '
            "No such file or directory")
    refused([dict(new, hbaFile="x.conf", hbaRules="local all all trust\n")],
            'instances[0] ("pg2"): give "hbaFile" or "hbaRules", not both')
    refused([{"engine": "postgres"}], 'instances[0]: field "name" is required')
    refused('{"instances": [', "']' expected near end of file (line 1, column 15)")
    refused('{"instance": []}', 'unknown field "instance"; known fields: instances')
    missing = os.path.join(tmp_dir, "nope.json")
    r = dbtls.fail("apply", "--file", missing)
    assert r.stderr.strip() == f'dbtls: cannot read --file "{missing}": No such file or directory'
    dbtls("apply", rc=2)  # --file is required


def test_a_refused_change_stops_the_run_and_the_next_converges(dbtls, state_dir, tmp_dir):
    use_template(dbtls)
    a = {"name": "a", "engine": "postgres", "listen": "127.0.0.1:41121",
         "backend": "127.0.0.1:5432", "endpoints": "a.test"}
    b = {"name": "b", "engine": "postgres", "listen": "127.0.0.1:41122",
         "backend": "127.0.0.1:5432", "endpoints": "b.test", "engineVersion": "9.6"}
    c = {"name": "c", "engine": "postgres", "listen": "127.0.0.1:41123",
         "backend": "127.0.0.1:5432", "endpoints": "c.test"}
    path = fleet(tmp_dir, [a, b, c])
    r = dbtls.fail("apply", "--file", path)
    assert r.stderr.startswith('dbtls: apply stopped at instance "b" (create) after 1 of 3 '
                               "changes; run it again once fixed: "), r.stderr
    assert [i["name"] for i in dbtls.json("instances", "list")] == ["a"]
    b["engineVersion"] = "16"
    path = fleet(tmp_dir, [a, b, c])
    assert plan(dbtls, path) == {"a": ("unchanged", []),
                                 "b": ("create", ["engine", "listen", "backend", "endpoints",
                                                  "engineVersion"]),
                                 "c": ("create", ["engine", "listen", "backend", "endpoints"])}
    assert plan(dbtls, path) == {"a": ("unchanged", []), "b": ("unchanged", []),
                                 "c": ("unchanged", [])}
