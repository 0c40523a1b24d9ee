"""The admin TCP listener's own server certificate (dbtlsd --admin-listen) is renewed at half its
lifetime without a restart, as the front's instance certificates are: with
--admin-cert-validity 10 the daemon serves a new certificate (new serial, from the admin CA,
still valid for 127.0.0.1 and localhost) within seconds, logs the renewal, and admin clients
keep working across it; a bad --admin-cert-validity is a usage error."""
import hashlib
import os
import socket
import ssl
import subprocess
import time

from api_client import tcp_api, tls_context
from cli_helpers import use_template

VALIDITY = 10


def served(port, ctx, host="127.0.0.1"):
    """(SHA-1 hex, notAfter as unix seconds) of the certificate the listener presents; the
    handshake verifies it against the admin CA for host."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        with ctx.wrap_socket(s, server_hostname=host) as t:
            der = t.getpeercert(binary_form=True)
            not_after = ssl.cert_time_to_seconds(t.getpeercert()["notAfter"])
    return hashlib.sha1(der).hexdigest(), not_after


def test_listener_certificate_renews_without_restart(dbtls, dbtlsd, state_dir, tmp_dir,
                                                      free_port):
    use_template(dbtls)
    out = os.path.join(tmp_dir, "ops")
    dbtls("admin-certs", "create", "ops", "--out-dir", out)
    files = {k: os.path.join(out, f"admin-{k}.pem") for k in ("cert", "key", "ca")}
    ctx = tls_context(files["ca"], files["cert"], files["key"])
    port = free_port()
    d = dbtlsd.start(state_dir, ["--workers", "1", "--admin-listen", f"127.0.0.1:{port}",
                                 "--admin-cert-validity", str(VALIDITY)])
    first, first_end = served(port, ctx)
    assert first_end - time.time() <= VALIDITY + 1
    assert tcp_api("127.0.0.1", port, ctx).get("/v1/instances").status == 200

    d.wait_log("TCP listener's server certificate renewed", timeout=VALIDITY)
    second, second_end = served(port, ctx)
    assert second != first and second_end > first_end
    for host in ("127.0.0.1", "localhost"):  # the SAN of the renewed one
        assert served(port, ctx, host)[0] in (second, served(port, ctx)[0])
        assert tcp_api(host, port, ctx).get("/v1/instances").status == 200
    # and again: every renewal comes from the admin CA, the daemon never restarted
    deadline = time.monotonic() + VALIDITY
    while served(port, ctx)[0] == second:
        assert time.monotonic() < deadline, "no second renewal"
        time.sleep(0.5)
    assert d.alive() and d.log().count("dbtlsd: ready") == 1
    d.stop()


def test_bad_admin_cert_validity_is_a_usage_error(dbtlsd_bin, state_dir):
    for bad in ("0", "5", "abc", "999999999999"):
        cp = subprocess.run([dbtlsd_bin, "--state-dir", state_dir, "--admin-cert-validity", bad],
                            capture_output=True, text=True, timeout=30)
        assert cp.returncode == 2, (bad, cp)
        assert "--admin-cert-validity" in cp.stderr and bad in cp.stderr
