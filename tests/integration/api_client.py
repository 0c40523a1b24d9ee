"""Small clients for the dbtlsd admin API used by the test_api*.py files: HTTP/1.1 over the
admin unix socket (http.client on an AF_UNIX socket) and HTTPS over TCP with a client
certificate (mutual TLS)."""
import http.client
import json
import os
import socket
import ssl


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=30):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self._path)
        self.sock = s


def admin_http(sock, method="GET", path="/metrics"):
    """One request on the admin unix socket: (status, headers, body text)."""
    c = UnixHTTPConnection(sock)
    try:
        c.request(method, path)
        r = c.getresponse()
        return r.status, dict(r.getheaders()), r.read().decode()
    finally:
        c.close()


def scrape(d):
    """GET /metrics of the running dbtlsd d, parsed: ({family name: family}, text)."""
    from prometheus_client.parser import text_string_to_metric_families
    status, headers, text = admin_http(d.admin_socket)
    assert status == 200, text
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4"), headers
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    return fams, text


def samples(fams, metric, **labels):
    """Samples called `metric` (counters: the _total sample of their family) with these labels."""
    return [s for f in fams.values() for s in f.samples
            if s.name == metric and all(s.labels.get(k) == v for k, v in labels.items())]


class Reply:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body)

    @property
    def error(self):
        """The {"error": {...}} object of an error reply (asserting its documented shape)."""
        doc = self.json()
        assert set(doc) == {"error"}, doc
        e = doc["error"]
        assert set(e) == {"code", "status", "message"}, e
        assert e["code"] == self.status
        assert isinstance(e["message"], str) and e["message"]
        return e

    def __repr__(self):
        return f"<Reply {self.status} {self.body[:300]!r}>"


class Api:
    """api.get(path), api.post(path, obj), api.patch(...), api.delete(...), api.request(method,
    path, body=bytes|obj|None, headers=None) -> Reply. A fresh connection per request."""

    def __init__(self, connect):
        self._connect = connect

    def request(self, method, path, body=None, headers=None, chunked=False):
        conn = self._connect()
        try:
            hdrs = dict(headers or {})
            if body is not None and not isinstance(body, (bytes, str)):
                body = json.dumps(body)
                hdrs.setdefault("Content-Type", "application/json")
            if chunked:
                conn.putrequest(method, path)
                conn.putheader("Transfer-Encoding", "chunked")
                for k, v in hdrs.items():
                    conn.putheader(k, v)
                conn.endheaders()
                data = body.encode() if isinstance(body, str) else body
                try:
                    for i in range(0, len(data), 8192):
                        part = data[i:i + 8192]
                        conn.send(b"%x\r\n%s\r\n" % (len(part), part))
                    conn.send(b"0\r\n\r\n")
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the server may answer 413 and close before reading everything
            else:
                data = body.encode() if isinstance(body, str) else body
                conn.putrequest(method, path)
                conn.putheader("Content-Length", str(len(data or b"")))
                for k, v in hdrs.items():
                    conn.putheader(k, v)
                conn.endheaders()
                try:
                    if data:
                        conn.send(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # an early 413: the server answered before reading the body
            r = conn.getresponse()
            return Reply(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
        finally:
            conn.close()

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self.request("POST", path, body=body, **kw)

    def patch(self, path, body=None, **kw):
        return self.request("PATCH", path, body=body, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)


def unix_api(path):
    return Api(lambda: UnixHTTPConnection(path))


def tls_context(ca=None, cert=None, key=None):
    ctx = ssl.create_default_context(cafile=ca)
    if cert:
        ctx.load_cert_chain(cert, key)
    return ctx


def tcp_api(host, port, ctx, server_hostname=None):
    return Api(lambda: http.client.HTTPSConnection(host, port, context=ctx, timeout=30))


def make_admin(dbtls, out_root, name):
    """`dbtls admin-certs create NAME` into out_root/NAME; the {"cert", "key", "ca"} paths."""
    out = os.path.join(out_root, name)
    dbtls("admin-certs", "create", name, "--out-dir", out)
    return {k: os.path.join(out, f"admin-{k}.pem") for k in ("cert", "key", "ca")}
