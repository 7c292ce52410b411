#!/usr/bin/env python3
"""A stand-in for a legacy app that cannot be changed: it trusts the identity headers it is sent.

It knows nothing of OAuth or OpenID Connect: Portcullis signs the user in and sends who they are
as plain request headers (X-Forwarded-User, -Email, -Groups, -Name, -Department and the signed
X-Portcullis-Assertion). Every page shows that identity, the path it was asked for and every
header it received, so you can see what Portcullis forwards, normalises and strips; its sign-out
button posts to the gateway's /oauth2/sign_out. /api/... answers the same as JSON.
Usage: legacy_app.py [PORT]  (listens on 127.0.0.1 only)
"""
import base64
import html
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

USER, EMAIL, GROUPS = "x-forwarded-user", "x-forwarded-email", "x-forwarded-groups"
NAME, DEPARTMENT, ASSERTION = "x-forwarded-name", "x-forwarded-department", "x-portcullis-assertion"
IDENTITY = (USER, EMAIL, GROUPS, NAME, DEPARTMENT, ASSERTION)

STYLE = (
    "body{font-family:system-ui,sans-serif;margin:2em;max-width:60em;color:#222}"
    "td,th{padding:3px 8px;border-bottom:1px solid #ddd;text-align:left;vertical-align:top}"
    "td{word-break:break-all}td:first-child,th{white-space:nowrap;word-break:normal}"
    ".id{background:#efe}.card{border:1px solid #ccc;border-radius:6px;padding:1em 1.5em;"
    "margin:1em 0}.hdr{color:#777;font-size:.85em}nav a{margin-right:1em}"
    "button{font-size:1em;padding:.3em 1em}pre{background:#f6f6f6;padding:.5em;white-space:pre-wrap}"
    ".none{color:#999}")


def esc(value):
    return html.escape(value, quote=True)


def assertion_claims(token):
    """The payload of the assertion JWT, decoded for display only: this app does not verify it
    (an app that wants to, checks its signature with the keys at /oauth2/jwks.json)."""
    try:
        payload = token.split(".")[1]
        return json.dumps(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))),
                          indent=2, sort_keys=True)
    except (IndexError, ValueError):
        return "(not a JWT)"


class Handler(BaseHTTPRequestHandler):
    server_version = "LegacyApp/1.0"
    protocol_version = "HTTP/1.1"

    def _page(self, headers):
        get = self.headers.get
        user = get(USER)

        def row(label, header, shown):
            return f"<tr><th>{esc(label)}</th><td>{shown}</td><td class=hdr>{esc(header)}</td></tr>"

        def text(header):
            value = get(header)
            return esc(value) if value else "<span class=none>(not sent)</span>"

        assertion = get(ASSERTION)
        if assertion:
            assertion_cell = (
                f"present ({len(assertion)} bytes, a JWT signed by the gateway)<details><summary>"
                f"claims (decoded, not verified by this app)</summary><pre>"
                f"{esc(assertion_claims(assertion))}</pre></details>")
        else:
            assertion_cell = "<span class=none>(not sent)</span>"
        if user:
            card = (
                f"<div class=card><h2>Signed in as {esc(get(NAME) or user)}</h2><table>"
                f"{row('User', USER, text(USER))}{row('Email', EMAIL, text(EMAIL))}"
                f"{row('Groups', GROUPS, text(GROUPS))}{row('Name', NAME, text(NAME))}"
                f"{row('Department', DEPARTMENT, text(DEPARTMENT))}"
                f"{row('Assertion', ASSERTION, assertion_cell)}</table>"
                "<form method=post action=/oauth2/sign_out><input type=hidden name=rd value=/>"
                "<button type=submit>Sign out</button></form></div>")
        else:
            card = ("<div class=card><h2>No signed-in user</h2><p>This request came through a "
                    "public route: no identity headers (and none a client tried to send).</p></div>")
        rows = "".join(
            f"<tr{' class=id' if k.lower() in IDENTITY else ''}><td>{esc(k)}</td>"
            f"<td>{esc(v)}</td></tr>" for k, v in headers)
        return (
            "<!doctype html><meta charset=utf-8><title>Legacy app</title>"
            f"<style>{STYLE}</style><h1>Legacy app</h1>"
            "<nav><a href=/>Home</a><a href=/reports/2024/q3?region=eu>A deep link</a>"
            "<a href=/admin/>Admin area (group admins)</a><a href=/api/whoami>/api/whoami (JSON)</a>"
            "<a href=/oauth2/userinfo>/oauth2/userinfo</a></nav>"
            f"{card}<p>{esc(self.command)} <code>{esc(self.path)}</code></p>"
            "<h2>Headers this app received</h2>"
            f"<table><tr><th>Header</th><th>Value</th></tr>{rows}</table>")

    def _answer(self):
        length = int(self.headers.get("content-length") or 0)
        body_len = len(self.rfile.read(length)) if length else 0
        headers = [(k, v) for k, v in self.headers.items()]
        if self.path.startswith("/api/"):
            data = {"method": self.command, "path": self.path, "body_bytes": body_len,
                    "user": self.headers.get(USER), "email": self.headers.get(EMAIL),
                    "groups": self.headers.get(GROUPS), "headers": headers}
            payload, ctype = json.dumps(data, indent=2).encode(), "application/json"
        else:
            payload, ctype = self._page(headers).encode(), "text/html; charset=utf-8"
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
