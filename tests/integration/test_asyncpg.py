"""asyncpg (python3-asyncpg 0.27), a PostgreSQL client with its own wire protocol code (not
libpq), through dbtlsd against a real PostgreSQL 15: TLS with the server certificate and name
verified, SCRAM-SHA-256 relayed to the backend, a client certificate for the `cert` method, a
query cancelled by a timeout (asyncpg's CancelRequest on a new connection, routed to the backend
that owns the key), and PostgreSQL's own refusal text for a plaintext attempt.
"""
import asyncio
import os
import ssl

import asyncpg
import pytest

from cli_helpers import download_ca, pg_instance, use_template, write


def tls_context(ca, cert=None, key=None):
    ctx = ssl.create_default_context(cafile=ca)  # verifies the chain and the host name
    if cert:
        ctx.load_cert_chain(cert, key)
    return ctx


def test_asyncpg_through_the_front(pg_server, dbtls, dbtlsd, state_dir, tmp_dir, free_port):
    use_template(dbtls)
    port = free_port()
    hba = os.path.join(tmp_dir, "hba.conf")
    write(hba, "hostssl all certuser all cert\nhostssl all all all backend\n")
    pg_instance(dbtls, "pg1", f"127.0.0.1:{port}", f"127.0.0.1:{pg_server.port}", "localhost",
                "--engine-version", "15", "--ssl-mode", "ENCRYPTED_ONLY", "--hba-file", hba)
    ca = download_ca(dbtls, "pg1", tmp_dir)
    cc = os.path.join(tmp_dir, "cc")
    dbtls("ssl", "client-certs", "create", "certuser", "--instance", "pg1", "--out-dir", cc)
    d = dbtlsd.start(state_dir)
    alice, alice_pw = "alice", pg_server.users["alice"]

    async def scenario():
        kw = dict(host="localhost", port=port, database="app", timeout=10)
        # SCRAM-SHA-256 through the front, on verified TLS
        c = await asyncpg.connect(user=alice, password=alice_pw, ssl=tls_context(ca),
                                  server_settings={"application_name": "asyncpg-test"}, **kw)
        try:
            assert await c.fetchval("SELECT current_user") == "alice"
            rows = [r for r in dbtls.json("connections")["connections"]
                    if r["application_name"] == "asyncpg-test"]
            assert len(rows) == 1 and rows[0]["ssl"] and rows[0]["user"] == "alice", rows
            # a timeout cancels the query: CancelRequest on a new connection, routed by key
            with pytest.raises(asyncio.TimeoutError):
                await c.execute("SELECT pg_sleep(20)", timeout=0.5)
            assert await c.fetchval("SELECT 41 + 1") == 42
        finally:
            await c.close()
        # a client certificate for `cert` (CN = user)
        c = await asyncpg.connect(user="certuser", ssl=tls_context(
            ca, os.path.join(cc, "client-cert.pem"), os.path.join(cc, "client-key.pem")), **kw)
        try:
            assert await c.fetchval("SELECT current_user") == "certuser"
        finally:
            await c.close()
        # plaintext: PostgreSQL's words
        with pytest.raises(asyncpg.InvalidAuthorizationSpecificationError) as ei:
            await asyncpg.connect(user=alice, password=alice_pw, ssl=False, **kw)
        assert ('no pg_hba.conf entry for host "127.0.0.1", user "alice", database "app", '
                "no encryption") in str(ei.value)
        # a name not in the certificate: refused by the client
        with pytest.raises(ssl.SSLCertVerificationError):
            await asyncpg.connect(user=alice, password=alice_pw, ssl=tls_context(ca),
                                  **dict(kw, host="127.0.0.1"))

    asyncio.run(scenario())
    d.wait_log("cancel request for backend pid")
