#!/usr/bin/env python3
"""A stand-in for a legacy app that cannot be changed: it trusts the identity headers it is sent.

Every page shows the path it was asked for and every header it received, so you can see what
Portcullis forwards, normalises and strips. /api/... answers the same as JSON.
Usage: legacy_app.py [PORT]  (listens on 127.0.0.1 only)
"""
import html
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

IDENTITY = ("x-forwarded-user", "x-forwarded-email", "x-forwarded-groups", "x-portcullis-assertion")


class Handler(BaseHTTPRequestHandler):
    server_version = "LegacyApp/1.0"
    protocol_version = "HTTP/1.1"

    def _answer(self):
        length = int(self.headers.get("content-length") or 0)
        body_len = len(self.rfile.read(length)) if length else 0
        headers = [(k, v) for k, v in self.headers.items()]
        if self.path.startswith("/api/"):
            data = {"method": self.command, "path": self.path, "body_bytes": body_len,
                    "user": self.headers.get("x-forwarded-user"), "headers": headers}
            payload, ctype = json.dumps(data, indent=2).encode(), "application/json"
        else:
            who = self.headers.get("x-forwarded-user") or "anonymous (public route)"
            rows = "".join(
                f"<tr{' class=id' if k.lower() in IDENTITY else ''}><td>{html.escape(k)}</td>"
                f"<td>{html.escape(v)}</td></tr>" for k, v in headers)
            payload = (
                "<!doctype html><meta charset=utf-8><title>Legacy app</title>"
                "<style>body{font-family:sans-serif;margin:2em}td{padding:2px 8px;border-bottom:1px solid #ddd}"
                ".id{background:#efe}</style>"
                f"<h1>Legacy app</h1><p>Signed-in user: <b>{html.escape(who)}</b></p>"
                f"<p>{html.escape(self.command)} <code>{html.escape(self.path)}</code></p>"
                f"<h2>Headers this app received</h2><table>{rows}</table>").encode()
            ctype = "text/html; charset=utf-8"
        self.send_response(200)
        self.send_header("content-type", ctype)
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _answer

    def log_message(self, fmt, *args):
        sys.stderr.write("legacy-app: " + (fmt % args) + "\n")


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 9001
    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
