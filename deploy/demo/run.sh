#!/usr/bin/env bash
# The README's demo: a sample legacy app behind Portcullis, on loopback. Ctrl-C stops both.
# Ports: gateway 8080, admin 9090, legacy app 9001 (config/demo.yaml).
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=tests/setup.sh
source tests/setup.sh
portcullis_setup

for port in 8080 9090 9001; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "demo: port $port on 127.0.0.1 is already in use; stop what holds it and retry" >&2
    exit 1
  fi
done

cargo build --bin portcullis
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

python3 deploy/demo/legacy_app.py 9001 &
pids+=($!)
./target/debug/portcullis run --config config/demo.yaml &
pids+=($!)

for _ in $(seq 1 50); do
  curl -fsS -o /dev/null http://127.0.0.1:9090/readyz 2>/dev/null && break
  sleep 0.2
done
curl -fsS -o /dev/null http://127.0.0.1:9090/readyz

cat <<MSG

  Portcullis is up in front of a sample legacy app.

  Open       http://127.0.0.1:8080/                the app, through the gateway
  Try        curl -s -H 'X-Forwarded-User: admin' http://127.0.0.1:8080/api/whoami
             (the spoofed identity header never reaches the app: "user": null)
             curl -s 'http://127.0.0.1:8080/%2e%2e/etc/passwd'   (400: ambiguous path)
  Metrics    http://127.0.0.1:9090/metrics
  Reload     kill -HUP ${pids[1]}   after editing config/demo.yaml

  Sign-in with a real OpenID Provider joins this demo with the browser sign-in capability.
  Ctrl-C to stop.

MSG
wait
