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
  if ((${#need[@]})); then
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo=sudo
    echo "setup: installing ${need[*]}" >&2
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  fi
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  portcullis_setup
fi
