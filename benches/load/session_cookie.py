#!/usr/bin/env python3
"""Signs in through the gateway like a browser and prints the session's Cookie header value.

Called by benches/load/run.sh for the portcullis-session target; TEST-ONLY (the test IdP of
tests/idp accepts any login and password).

    python3 benches/load/session_cookie.py URL [--login NAME] [--timeout SECONDS]

URL is a path of a `session` route on the gateway (http://127.0.0.1:PORT/...). The sign-in is
the real one, with nothing forged:
  1. GET URL as a browser's top-level navigation (Accept: text/html, Sec-Fetch-Mode: navigate,
     Sec-Fetch-Dest: document): the gateway answers 302 to the provider's /auth and sets the
     sealed pending sign-in cookie (<name>_s_<tag>);
  2. the provider's pages are walked as tests/e2e/support/idp.rs `sign_in_with` does: the
     devInteractions login form (prompt=login, login, password: any), then consent if asked,
     following the provider's own redirects with its cookies;
  3. the provider's redirect to the gateway's callback is requested with the pending cookie:
     the gateway exchanges the code, checks the ID token, and answers 302 with the sealed
     session cookie(s) (<name>, <name>_1, ... when it is chunked);
  4. URL is requested again with only those cookies, as an API call (no navigation headers),
     and must answer 200.
Prints `name=value; name_1=value` (the session chunk cookies, in order) on stdout; progress and
errors go to stderr; exit status 1 on any failure.

Cookies are handled by hand from Set-Cookie headers: the gateway's are `__Host-` + Secure, which
cookie jars refuse over plain HTTP. Python 3 standard library only.
"""

import argparse
import http.client
import re
import sys
import urllib.parse

NAVIGATION = {
    "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    "Sec-Fetch-Mode": "navigate",
    "Sec-Fetch-Dest": "document",
    "Sec-Fetch-Site": "none",
}
FORM = "application/x-www-form-urlencoded"
MAX_STEPS = 12


class Failure(Exception):
    pass


def log(msg):
    print(f"session_cookie: {msg}", file=sys.stderr)


class Jar:
    """The cookies of one origin: name -> value, in the order first set (paths ignored)."""

    def __init__(self):
        self.cookies = {}

    def update(self, set_cookies):
        for line in set_cookies:
            parts = line.split(";")
            name, sep, value = parts[0].partition("=")
            if not sep:
                continue
            name = name.strip()
            attributes = [a.strip().lower() for a in parts[1:]]
            expired = any(
                a == "max-age=0" or a.startswith("expires=thu, 01 jan 1970") for a in attributes
            )
            self.cookies.pop(name, None)
            if not expired:
                self.cookies[name] = value.strip()

    def header(self, names=None):
        return "; ".join(
            f"{n}={v}" for n, v in self.cookies.items() if names is None or n in names
        )


def request(url, jar, timeout, headers=None, form=None):
    """One request, no redirect followed: (status, absolute Location or None, body text)."""
    u = urllib.parse.urlsplit(url)
    if u.scheme != "http" or not u.hostname:
        raise Failure(f"only http:// URLs are supported, got {url}")
    conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=timeout)
    try:
        target = u.path or "/"
        if u.query:
            target += "?" + u.query
        all_headers = dict(headers or {})
        cookie = jar.header()
        if cookie:
            all_headers["Cookie"] = cookie
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form).encode()
            all_headers["Content-Type"] = FORM
        conn.request("POST" if form is not None else "GET", target, body=body, headers=all_headers)
        resp = conn.getresponse()
        text = resp.read().decode("utf-8", "replace")
        jar.update(resp.msg.get_all("Set-Cookie") or [])
        location = resp.getheader("Location")
        if 300 <= resp.status < 400:
            if not location:
                raise Failure(f"{resp.status} without Location from {url}")
            location = urllib.parse.urljoin(url, location)
        else:
            location = None
        return resp.status, location, text
    except OSError as e:
        raise Failure(f"{url}: {e}") from e
    finally:
        conn.close()


def origin(url):
    u = urllib.parse.urlsplit(url)
    return (u.scheme, u.hostname, u.port or 80)


def form_action(body, current):
    """Where the page's form posts (its action, else the page itself)."""
    m = re.search(r'<form[^>]*\saction="([^"]*)"', body)
    if not m or not m.group(1):
        return current
    return urllib.parse.urljoin(current, m.group(1).replace("&amp;", "&"))


def provider_sign_in(start, login, timeout):
    """Walks the provider's pages from its /auth URL; returns the URL it sends the browser to."""
    jar = Jar()
    provider = origin(start)
    url, form = start, None
    for _ in range(MAX_STEPS):
        status, location, body = request(url, jar, timeout, NAVIGATION, form)
        form = None
        if location:
            if origin(location) != provider:
                return location
            url = location
        elif status == 200 and 'name="prompt" value="login"' in body:
            url = form_action(body, url)
            form = {"prompt": "login", "login": login, "password": "any password"}
        elif status == 200 and 'name="prompt" value="consent"' in body:
            url = form_action(body, url)
            form = {"prompt": "consent"}
        else:
            raise Failure(f"provider: unexpected {status} from {url}:\n{body[:500]}")
    raise Failure(f"provider: too many steps, last at {url}")


def sign_in(url, login, timeout):
    gateway = Jar()
    status, to_provider, body = request(url, gateway, timeout, NAVIGATION)
    if status != 302 or not to_provider:
        raise Failure(f"navigation to {url}: expected 302 to the provider, got {status}:\n{body[:500]}")
    if origin(to_provider) == origin(url):
        raise Failure(f"navigation to {url} redirected to the gateway itself ({to_provider})")
    pending = [n for n in gateway.cookies if "_s_" in n]
    if not pending:
        raise Failure(f"navigation to {url} set no pending sign-in cookie")
    log(f"redirected to the provider, pending cookie {pending[0]}")

    back = provider_sign_in(to_provider, login, timeout)
    if origin(back) != origin(url):
        raise Failure(f"the provider sent the browser to {back}, not back to the gateway")
    if "code=" not in urllib.parse.urlsplit(back).query:
        raise Failure(f"the provider's answer carries no code: {back}")
    log(f"provider signed in {login!r}; callback {urllib.parse.urlsplit(back).path}")

    status, location, body = request(back, gateway, timeout, NAVIGATION)
    if status != 302:
        raise Failure(f"callback: expected 302, got {status}:\n{body[:500]}")
    session = [n for n in gateway.cookies if "_s_" not in n]
    if not session:
        raise Failure("callback set no session cookie")
    # The chunks in order: the bare name first, then _1, _2, ...
    session.sort(key=lambda n: (len(n), n))
    cookie = gateway.header(set(session))
    log(f"session cookie(s) {', '.join(session)}: {len(cookie)} bytes of Cookie header")

    check = Jar()
    check.cookies = {n: gateway.cookies[n] for n in session}
    status, _, body = request(url, check, timeout)
    if status != 200:
        raise Failure(f"{url} with the session cookie answered {status}:\n{body[:500]}")
    if check.cookies != {n: gateway.cookies[n] for n in session}:
        raise Failure(f"{url} with the session cookie rewrote it (Set-Cookie on a fresh session)")
    return cookie


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("url", help="a path of a session route on the gateway, http://HOST:PORT/...")
    ap.add_argument("--login", default="bench-user", help="the subject to sign in as")
    ap.add_argument("--timeout", type=float, default=10.0, help="seconds per HTTP request")
    args = ap.parse_args()
    try:
        print(sign_in(args.url, args.login, args.timeout))
    except Failure as e:
        log(f"error: {e}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
