#!/usr/bin/env bash
# Installs what the build and the tests need on a fresh Debian machine. Idempotent: installs only
# what is missing, and runs `apt-get update` only then. Sourced by tests/run.sh and .ci/run.
set -euo pipefail

portcullis_setup() {
  local need=()
  command -v cmake >/dev/null 2>&1 || need+=(cmake)   # pingora builds zlib-ng with it
  command -v cc >/dev/null 2>&1 || need+=(build-essential)
  command -v python3 >/dev/null 2>&1 || need+=(python3) # the demo's sample legacy app
  command -v curl >/dev/null 2>&1 || need+=(curl)
  # The browser tests drive headless Chromium through chromedriver (WebDriver).
  command -v chromium >/dev/null 2>&1 || need+=(chromium)
  command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
  # The forward-auth test puts nginx (Debian's `nginx` has the auth_request module) in front.
  command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx)
  # The Redis store's tests start their own servers, sentinels and clusters on loopback ports.
  command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
  command -v redis-cli >/dev/null 2>&1 || need+=(redis-tools)
  command -v openssl >/dev/null 2>&1 || need+=(openssl)
  # deploy/check.sh checks the alert rules and the dashboard's PromQL with promtool.
  command -v promtool >/dev/null 2>&1 || need+=(prometheus)
  # The DNS test starts its own dnsmasq on a loopback port (dnsmasq-base: the binary, no service).
  command -v dnsmasq >/dev/null 2>&1 || [ -x /usr/sbin/dnsmasq ] || need+=(dnsmasq-base)
  if ((${#need[@]})); then
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo=sudo
    echo "setup: installing ${need[*]}" >&2
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    _portcullis_no_service_starts $sudo env DEBIAN_FRONTEND=noninteractive \
      apt-get install -y -qq "${need[@]}" >/dev/null
    # Only promtool is wanted from the prometheus package: never a server that starts at boot.
    if [[ " ${need[*]} " == *" prometheus "* ]] && command -v systemctl >/dev/null 2>&1; then
      $sudo systemctl disable --now prometheus prometheus-node-exporter >/dev/null 2>&1 || true
    fi
  fi
  portcullis_setup_idp
}

# Runs "$@" with services kept from starting (the tests start their own nginx on loopback ports,
# never the system one on port 80): a policy-rc.d that refuses every start while it runs, unless
# the machine already has one.
_portcullis_no_service_starts() {
  local policy=/usr/sbin/policy-rc.d sudo="" rc=0
  [ "$(id -u)" -ne 0 ] && sudo=sudo
  if [ -e "$policy" ]; then
    "$@"
    return
  fi
  printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
  $sudo chmod 755 "$policy"
  "$@" || rc=$?
  $sudo rm -f "$policy"
  return "$rc"
}

# The end-to-end tests' OpenID Provider (tests/idp: panva's oidc-provider on Node.js) needs its npm
# dependencies. `npm ci` runs only when node_modules is missing or older than the lock file, under a
# lock so that concurrent set-ups do not install over each other.
portcullis_setup_idp() {
  local idp
  idp="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/idp"
  if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "setup: Node.js (>= 20.18) and npm are needed for the test OpenID Provider in $idp" >&2
    return 1
  fi
  _portcullis_idp_fresh "$idp" && return 0
  (
    if command -v flock >/dev/null 2>&1; then
      flock 9
    fi
    _portcullis_idp_fresh "$idp" && exit 0
    echo "setup: installing the test OpenID Provider's npm dependencies (npm ci in $idp)" >&2
    cd "$idp"
    npm ci --no-audit --no-fund --loglevel=error >/dev/null
  ) 9<"$idp/package-lock.json"
}

# True when tests/idp/node_modules was installed after the last change of package(-lock).json.
_portcullis_idp_fresh() {
  local stamp="$1/node_modules/.package-lock.json"
  [ -f "$stamp" ] && [ "$stamp" -nt "$1/package-lock.json" ] && [ "$stamp" -nt "$1/package.json" ]
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  portcullis_setup
fi
