"""Access rules, ident maps and MySQL REQUIRE rules are checked when they are stored, with the
parsers dbtlsd uses: a bad file is refused by `instances create/patch` with one line naming the
file's line and what is wrong, and nothing is stored (the daemon never sees it)."""
import os

import pytest

from cli_helpers import use_template

CASES = [
    ("postgres", "--hba-file", "hostssl all all all backend\nhostssl all all all md5x\n",
     'access rules: invalid authentication method "md5x"', "line 2"),
    ("postgres", "--ident-file", "m /(unclosed alice\n", "ident map: ", "regular expression"),
    # stacked quantifiers (glibc's regcomp expanded them exponentially) are refused by PCRE2
    ("postgres", "--ident-file", "m /^(.*)@e" + "+" * 100 + "xample$ \\1\n", "ident map: ",
     "quantifier does not follow a repeatable item"),
    ("mariadb", "--user-require-file", "alice=SSL\nbob=TLS\n", "user requirements: line 2",
     "expected NONE, SSL"),
]


@pytest.mark.parametrize("engine,opt,text,msg,detail", CASES)
def test_bad_rules_refused_at_create_and_patch(dbtls, tmp_dir, free_port, engine, opt, text,
                                               msg, detail):
    use_template(dbtls)
    path = os.path.join(tmp_dir, "rules")
    with open(path, "w") as f:
        f.write(text)
    base = ["--engine", engine, "--listen", f"127.0.0.1:{free_port()}", "--backend",
            "127.0.0.1:1", "--endpoint", "db.example.test"]
    cp = dbtls.fail("instances", "create", "bad", *base, opt, path)
    assert msg in cp.stderr and detail in cp.stderr, cp.stderr
    assert dbtls.json("instances", "list") == []

    dbtls("instances", "create", "good", *base)
    before = dbtls.json("instances", "describe", "good")
    cp = dbtls.fail("instances", "patch", "good", opt, path)
    assert msg in cp.stderr, cp.stderr
    assert dbtls.json("instances", "describe", "good") == before


def test_good_rules_are_stored(dbtls, tmp_dir, free_port):
    use_template(dbtls)
    hba = os.path.join(tmp_dir, "hba")
    ident = os.path.join(tmp_dir, "ident")
    with open(hba, "w") as f:
        f.write("hostssl all all 127.0.0.1/32 cert map=m\nhostssl all all all backend\n")
    with open(ident, "w") as f:
        f.write("m /^(.*)@example\\.com$ \\1\n")
    dbtls("instances", "create", "ok", "--engine", "postgres", "--listen",
          f"127.0.0.1:{free_port()}", "--backend", "127.0.0.1:1", "--endpoint",
          "db.example.test", "--hba-file", hba, "--ident-file", ident)
    inst = dbtls.json("instances", "describe", "ok")
    assert "cert map=m" in str(inst)


def test_clientname_needs_postgresql_14(dbtls, tmp_dir, free_port):
    """clientname= came with PostgreSQL 14: for an instance of engine version 13 it is refused
    with PostgreSQL 13's own words (the rules are also what `instances export` writes for that
    server), when the rules are stored and when the version is lowered under them."""
    use_template(dbtls)
    hba = os.path.join(tmp_dir, "hba")
    with open(hba, "w") as f:
        f.write("hostssl all all all backend\nhostssl all all all cert clientname=DN\n")
    base = ["--engine", "postgres", "--listen", f"127.0.0.1:{free_port()}", "--backend",
            "127.0.0.1:1", "--endpoint", "db.example.test", "--hba-file", hba]
    cp = dbtls.fail("instances", "create", "old", *base, "--engine-version", "13")
    assert cp.stderr.strip() == (
        'dbtls: access rules: unrecognized authentication option name: "clientname" (line 2 of '
        'configuration file "pg_hba.conf"): PostgreSQL 13 does not know it (it came with 14)'
    ), cp.stderr
    assert dbtls.json("instances", "list") == []
    dbtls("instances", "create", "new", *base, "--engine-version", "14")
    before = dbtls.json("instances", "describe", "new")
    cp = dbtls.fail("instances", "patch", "new", "--engine-version", "13")
    assert 'unrecognized authentication option name: "clientname" (line 2' in cp.stderr
    assert dbtls.json("instances", "describe", "new") == before
    # the same rules without the option are PostgreSQL 13's too
    with open(hba, "w") as f:
        f.write("hostssl all all all backend\nhostssl all all all cert\n")
    dbtls("instances", "patch", "new", "--engine-version", "13", "--hba-file", hba)
    assert dbtls.json("instances", "describe", "new")["engineVersion"] == "13"
