#!/usr/bin/env bash
# The README's demo, all on loopback: a demo-only OpenID Provider (tests/idp/server.mjs with
# deploy/demo/idp.json), a sample legacy app, and Portcullis in front of it with browser sign-in
# (config/demo.yaml). Ctrl-C stops all three.
# Ports: gateway 8080, admin 9090, legacy app 9001, OpenID Provider 9010.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=tests/setup.sh
source tests/setup.sh
portcullis_setup

for port in 8080 9090 9001 9010; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "demo: port $port on 127.0.0.1 is already in use; stop what holds it and retry" >&2
    exit 1
  fi
done

cargo build --bin portcullis

# Secrets, in the environment that config/demo.yaml reads with ${env:...}: a fresh session key at
# every start, and the client secret written in deploy/demo/idp.json (demo-only).
PORTCULLIS_SESSION_SECRET="$(head -c 32 /dev/urandom | base64)"
DEMO_CLIENT_SECRET="$(node -e \
  'process.stdout.write(JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).clients[0].client_secret)' \
  deploy/demo/idp.json)"
export PORTCULLIS_SESSION_SECRET DEMO_CLIENT_SECRET

pids=()
work="$(mktemp -d)"
cleanup() {
  trap - EXIT INT TERM
  if ((${#pids[@]})); then
    kill "${pids[@]}" 2>/dev/null || true
  fi
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The OpenID Provider first: the gateway is ready once it has read the provider's discovery
# document and keys. The provider's request log goes to a file (the terminal gets the gateway's
# access log and the app's), shown if it fails.
node tests/idp/server.mjs deploy/demo/idp.json >"$work/idp.out" 2>"$work/idp.log" &
pids+=($!)
for _ in $(seq 1 100); do
  grep -q '^READY ' "$work/idp.out" 2>/dev/null && break
  kill -0 "${pids[0]}" 2>/dev/null || break
  sleep 0.1
done
if ! grep -q '^READY ' "$work/idp.out" 2>/dev/null; then
  echo "demo: the OpenID Provider did not start within 10s; its log:" >&2
  cat "$work/idp.log" >&2
  exit 1
fi

python3 deploy/demo/legacy_app.py 9001 &
pids+=($!)
./target/debug/portcullis run --config config/demo.yaml &
pids+=($!)

for _ in $(seq 1 50); do
  curl -fsS -o /dev/null http://127.0.0.1:9090/readyz 2>/dev/null && break
  sleep 0.2
done
if ! curl -fsS -o /dev/null http://127.0.0.1:9090/readyz 2>/dev/null; then
  echo "demo: the gateway is not ready after 10s: $(curl -sS http://127.0.0.1:9090/readyz 2>&1)" >&2
  exit 1
fi

cat <<MSG

  Portcullis is up in front of a sample legacy app, with sign-in at a real OpenID Provider.

  Open       http://localhost:8080/      (localhost, not 127.0.0.1: the provider runs on
                                          127.0.0.1:9010, and a different host name keeps its
                                          cookies and the gateway's apart)
  Sign in    any user name, any password (demo provider):
               alice   group staff            -> the app; /admin/ answers 403
               admin   groups staff, admins   -> the app and /admin/
  The app shows the identity headers the gateway sent it (it trusts them and knows nothing of
  OAuth); the gateway strips any that a client sends itself.

  Try        a deep link before signing in: http://localhost:8080/reports/2024/q3?region=eu
             (you come back to it after sign-in)
             http://localhost:8080/admin/           as alice: 403 page; as admin: the app
             http://localhost:8080/oauth2/userinfo  your session's claims, as JSON
             the app's "Sign out" button (signs out here and at the provider)
             curl -s -H 'X-Forwarded-User: admin' http://localhost:8080/api/public/whoami
               (public route; the spoofed header never reaches the app: "user": null)
             curl -si http://localhost:8080/api/whoami         (401: sign-in required)
             curl -s 'http://localhost:8080/%2e%2e/etc/passwd'  (400: ambiguous path)
  Metrics    http://127.0.0.1:9090/metrics
  Reload     kill -HUP ${pids[2]}   after editing config/demo.yaml

  Cookies are Secure (__Host-) over plain HTTP: Chromium and Firefox accept that on localhost.
  Ctrl-C to stop.

MSG
# The demo stops when any of the three exits. Ctrl-C reaches all of them: they exit 0 and the
# script ends quietly; a non-zero status is a failure, reported with the component's name.
names=("OpenID Provider" "legacy app" "gateway")
status=0
wait -n || status=$?
if ((status != 0)); then
  for i in "${!pids[@]}"; do
    if ! kill -0 "${pids[$i]}" 2>/dev/null; then
      echo "demo: the ${names[$i]} exited (status $status); stopping the others" >&2
      ((i == 0)) && tail -n 20 "$work/idp.log" >&2
    fi
  done
fi
exit "$status"
