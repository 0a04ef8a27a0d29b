"""A small client of ringmaild's admin API for the integration tests
(http.client, so that every status, header and body is visible as sent)."""

import http.client
import json
import os
import secrets

from harness import free_port


def admin_overrides(rm_dir_hint=None):
    """Config keys for an admin API on a free loopback port (token file written by enable())."""
    return {"admin": {"address": f"127.0.0.1:{free_port()}", "token_file": "admin.token"}}


def write_token(rm, token=None):
    token = token or secrets.token_hex(16)
    with open(os.path.join(rm.dir, "admin.token"), "w") as f:
        f.write(token + "\n")
    return token


class Api:
    def __init__(self, rm, token):
        host, port = rm.config["admin"]["address"].rsplit(":", 1)
        self.host, self.port, self.token = host, int(port), token

    def request(self, method, path, body=None, token=True, headers=None, raw=None, timeout=20):
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        h = dict(headers or {})
        if token is True:
            h["Authorization"] = f"Bearer {self.token}"
        elif token:
            h["Authorization"] = f"Bearer {token}"
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        conn.request(method, path, body=data, headers=h)
        resp = conn.getresponse()
        payload = resp.read()
        conn.close()
        parsed = None
        if resp.getheader("Content-Type", "").startswith("application/json"):
            parsed = json.loads(payload)
        return resp.status, parsed, resp, payload

    def announce_oversized(self, path, length):
        """POSTs only the headers of a body of `length` bytes and reads the
        answer: the server refuses it from Content-Length alone, and a client
        still sending the body would race its close (EPIPE or RST)."""
        import socket
        with socket.create_connection((self.host, self.port), timeout=20) as s:
            s.sendall((f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\n"
                       f"Authorization: Bearer {self.token}\r\n"
                       f"Content-Type: application/json\r\nContent-Length: {length}\r\n"
                       f"\r\n").encode())
            reply = b""
            while b"\r\n\r\n" not in reply or len(reply) < reply.find(b"\r\n\r\n") + 4 + int(
                    next((line.split(b":", 1)[1] for line in reply.split(b"\r\n")
                          if line.lower().startswith(b"content-length:")), b"0")):
                chunk = s.recv(65536)
                if not chunk:
                    break
                reply += chunk
        head, _, payload = reply.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        return status, json.loads(payload) if payload else None

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self.request("POST", path, body=body, **kw)

    def ok(self, method, path, body=None):
        status, parsed, resp, payload = self.request(method, path, body=body)
        if status != 200:
            raise AssertionError(f"{method} {path}: {status} {payload[:500]!r}")
        return parsed
