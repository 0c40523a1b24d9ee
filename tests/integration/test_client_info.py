"""--client-info on: the database server behind dbtlsd sees its client as the front does.
Behind a TLS front the backend's own pg_stat_activity/pg_stat_ssl show the front's connection
(its address or unix socket, no TLS); with client info the forwarded startup packet carries
run-time parameters the backend keeps as placeholder settings, readable in SQL (audit triggers,
logging): dbtls.client_addr, dbtls.client_port, dbtls.ssl, dbtls.ssl_version, dbtls.ssl_cipher,
dbtls.client_dn, dbtls.instance. A client cannot pose as another address at startup: its own
dbtls.* parameters are dropped. Real PostgreSQL 15, psql and asyncpg. For MariaDB the same names
arrive as connection attributes (performance_schema.session_connect_attrs), real MariaDB 10.11
with the mariadb client and PyMySQL.
"""
import asyncio
import os
import ssl
import subprocess

import asyncpg
import pymysql

import servers
from cli_helpers import download_ca, pg_instance, use_template, write

SETTINGS = ("SELECT current_setting('dbtls.client_addr') || ' ' || "
            "current_setting('dbtls.ssl') || ' ' || current_setting('dbtls.ssl_version') || ' ' "
            "|| current_setting('dbtls.client_dn') || ' ' || current_setting('dbtls.instance') "
            "|| ' ' || coalesce(host(client_addr), 'socket') || ' ' || "
            "(current_setting('dbtls.client_port')::int > 0)::text "
            "FROM pg_stat_activity WHERE pid = pg_backend_pid()")


def test_client_info_reaches_the_backend(pg_server, dbtls, dbtlsd, state_dir, tmp_dir, free_port,
                                         psql):
    use_template(dbtls)
    port, plain_port = free_port(), free_port()
    hba = os.path.join(tmp_dir, "hba.conf")
    write(hba, "hostssl all certuser all cert\nhost all all all backend\n")
    j = pg_instance(dbtls, "pg1", f"127.0.0.1:{port}", pg_server.socket_path, "localhost",
                    "--engine-version", "15", "--hba-file", hba, "--client-info", "on")
    assert j["clientInfo"] is True
    pg_instance(dbtls, "pg2", f"127.0.0.1:{plain_port}", pg_server.socket_path, "localhost")
    ca = download_ca(dbtls, "pg1", tmp_dir)
    cc = os.path.join(tmp_dir, "cc")
    dbtls("ssl", "client-certs", "create", "certuser", "--instance", "pg1", "--out-dir", cc)
    dbtlsd.start(state_dir)

    # TLS with a client certificate: address, TLS facts and DN, on a unix-socket backend leg
    rc, out, err = psql(f"host=localhost port={port} user=certuser dbname=app sslmode=verify-full "
                        f"sslrootcert={ca} sslcert={cc}/client-cert.pem "
                        f"sslkey={cc}/client-key.pem", SETTINGS)
    assert rc == 0, err
    assert out.strip() == "127.0.0.1 on TLSv1.3 /O=dbtls/CN=certuser pg1 socket true", out
    rc, out, err = psql(f"host=localhost port={port} user=certuser dbname=app sslmode=verify-full "
                        f"sslrootcert={ca} sslcert={cc}/client-cert.pem "
                        f"sslkey={cc}/client-key.pem",
                        "SELECT current_setting('dbtls.client_serial') || '|' || "
                        "current_setting('dbtls.issuer_dn')")
    serial = dbtls.json("ssl", "client-certs", "describe", "certuser", "--instance", "pg1")
    assert rc == 0 and out.strip().split("|")[1].startswith("/O=dbtls/CN="), (out, err)
    assert int(out.strip().split("|")[0]) == int(serial["certSerialNumber"], 16), serial
    # plaintext: dbtls.ssl off, the TLS fields empty; a -c in `options` does not win either
    # (PostgreSQL applies the packet's parameters after the options switches)
    rc, out, err = psql(f"host=127.0.0.1 port={port} user=trustuser dbname=app sslmode=disable "
                        "options='-c dbtls.client_addr=203.0.113.9'",
                        "SELECT current_setting('dbtls.ssl') || '|' || "
                        "current_setting('dbtls.ssl_version') || '|' || "
                        "current_setting('dbtls.client_addr')")
    assert rc == 0 and out.strip() == "off||127.0.0.1", (out, err)

    # a client's own dbtls.* startup parameters are dropped, its others kept
    async def spoof(p):
        c = await asyncpg.connect(host="localhost", port=p, user="trustuser", database="app",
                                  ssl=ssl.create_default_context(cafile=ca), timeout=10,
                                  server_settings={"dbtls.client_addr": "203.0.113.9",
                                                   "application_name": "spoofer"})
        try:
            return await c.fetchrow("SELECT current_setting('dbtls.client_addr', true) AS a, "
                                    "current_setting('application_name') AS n")
        finally:
            await c.close()
    row = asyncio.run(spoof(port))
    assert (row["a"], row["n"]) == ("127.0.0.1", "spoofer"), row
    # without --client-info the packet goes as received (here: the client's own value)
    row = asyncio.run(spoof(plain_port))
    assert (row["a"], row["n"]) == ("203.0.113.9", "spoofer"), row

    # switched off again, and refused where it cannot work
    assert dbtls.json("instances", "patch", "pg1", "--client-info", "off")["clientInfo"] is False
    cp = dbtls.fail("instances", "patch", "pg1", "--client-info", "yes")
    assert 'client info must be on or off (got "yes")' in cp.stderr, cp.stderr


def test_client_info_as_mariadb_connection_attributes(dbtls, dbtlsd, state_dir, tmp_dir,
                                                      free_port):
    srv = servers.MariaDbServer(extra_args=["--performance-schema=ON"])
    try:
        srv.start()
        srv.sql("GRANT SELECT ON performance_schema.* TO 'alice'@'%'")
        use_template(dbtls)
        port = free_port()
        dbtls("instances", "create", "my1", "--engine", "mariadb", "--engine-version", "10.11",
              "--listen", f"127.0.0.1:{port}", "--backend", f"127.0.0.1:{srv.port}",
              "--endpoint", "localhost", "--client-info", "on")
        ca = download_ca(dbtls, "my1", tmp_dir)
        dbtlsd.start(state_dir)
        a, apw = srv.ALICE
        sql = ("SELECT ATTR_NAME, ATTR_VALUE FROM performance_schema.session_connect_attrs "
               "WHERE PROCESSLIST_ID = CONNECTION_ID() AND ATTR_NAME LIKE 'dbtls.%' "
               "ORDER BY ATTR_NAME")

        def attrs(**ssl_kw):
            c = pymysql.connect(host="localhost", port=port, user=a, password=apw,
                                database=srv.dbname, connect_timeout=10, defer_connect=True,
                                **ssl_kw)
            c._connect_attrs["dbtls.client_addr"] = "203.0.113.9"  # dropped by the front
            c._connect_attrs["program_name"] = "attr-test"          # kept
            c.connect()
            try:
                with c.cursor() as cur:
                    cur.execute(sql)
                    got = dict(cur.fetchall())
                    cur.execute("SELECT ATTR_VALUE FROM performance_schema.session_connect_attrs "
                                "WHERE PROCESSLIST_ID = CONNECTION_ID() AND "
                                "ATTR_NAME = 'program_name'")
                    got["program_name"] = cur.fetchone()[0]
                return got
            finally:
                c.close()

        got = attrs(ssl={"ca": ca})
        assert got["dbtls.client_addr"] == "127.0.0.1" and got["dbtls.ssl"] == "on", got
        assert got["dbtls.ssl_version"].startswith("TLSv1."), got
        assert got["dbtls.instance"] == "my1" and int(got["dbtls.client_port"]) > 0, got
        assert got["program_name"] == "attr-test", got
        got = attrs()
        assert got["dbtls.ssl"] == "off" and not got["dbtls.ssl_version"], got  # "" shows as NULL
        # the mariadb client (libmariadb) too
        cp = subprocess.run(["mariadb", "--no-defaults", "--host=127.0.0.1", f"--port={port}",
                             f"--user={a}", f"--password={apw}", f"--ssl-ca={ca}", "-N", "-B",
                             "-e", sql], capture_output=True, text=True, timeout=30)
        assert cp.returncode == 0 and "dbtls.ssl\ton" in cp.stdout, cp.stderr
    finally:
        srv.stop()
