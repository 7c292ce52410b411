#!/usr/bin/env bash
# The test command (README): set up a fresh machine, build, check every example config, run every
# test — unit tests and the end-to-end suite, which starts the real gateway binary in front of
# real HTTP backends on loopback.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=tests/setup.sh
source tests/setup.sh
portcullis_setup

cargo build --bin portcullis
# The examples reference secrets by ${env:...}; give them throwaway values to check the rest.
for f in config/*.yaml; do
  PORTCULLIS_SESSION_SECRET="$(head -c 32 /dev/urandom | base64)" \
  CORP_CLIENT_SECRET=example GITHUB_CLIENT_SECRET=example DEMO_CLIENT_SECRET=example \
    ./target/debug/portcullis check --config "$f"
done
# The deployment artifacts: Kubernetes manifests render, the dashboard names only real metrics,
# the systemd unit verifies, and the configs they carry pass `portcullis check` (tools that are
# missing are skipped and said so).
PORTCULLIS_BIN="$PWD/target/debug/portcullis" bash deploy/check.sh
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --no-fail-fast "$@"
else
  cargo test --no-fail-fast "$@"
fi
