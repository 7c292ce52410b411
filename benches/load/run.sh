#!/usr/bin/env bash
# Whole-gateway load benchmark for Portcullis.
#
# Starts, on 127.0.0.1 only and under a private temp dir:
#   - a backend (Debian's nginx returning a fixed body),
#   - a plain nginx reverse proxy to it (the reference row),
#   - Portcullis with one route per gateway target,
# then loads every target with the same wrk invocation and prints a table
# (rps, p50, p99, rps ratio to the nginx proxy) followed by the same data as JSON.
# "backend conns" is how many TCP connections the backend accepted during the
# measured run (after warm-up): near 0 for a proxy that reuses its upstream
# connections, = CONNECTIONS for the backend row.
# A run with any non-2xx/3xx response or socket error is reported as FAILED
# (wrk's output is printed) and the script exits 1.
# Nothing in the repository is written; set OUT=file to also save the JSON.
#
# Targets:
#   backend                  the backend nginx itself, no proxy (the ceiling)
#   nginx                    plain nginx reverse proxy (the reference of "vs nginx")
#   portcullis-public        Portcullis route with `auth: public`
#   portcullis-bearer-rs256  Portcullis route with `auth: bearer`, JWT access token signed RS256
#   portcullis-bearer-es256  the same with an ES256 token
#   portcullis-session       Portcullis route with `auth: session` (cookie store), requests carrying
#                            the session cookie of a real sign-in, like a signed-in browser
# The bearer targets need no network and no IdP process: the provider's discovery document
# and JWKS (public part of tests/idp/keys/primary.json) are static files on the backend nginx,
# and benches/load/mint.mjs (Node.js + jose from tests/idp/node_modules, installed by
# tests/setup.sh, which this script runs) signs one token per target (typ at+jwt,
# exp = now + 1h or longer than the run) with tests/idp/keys/rsa-1.pem / ec-1.pem.
# Portcullis is loaded only once its /readyz is 200, i.e. once it has the keys.
# wrk sends the same token on every request, so only the first request verifies the
# signature; every later one is answered by the gateway's verified-token cache (a SHA-256
# of the token and a map look-up), then the per-route checks and header rewriting run as
# usual. That is the realistic hot path of a client reusing its access token; it is not a
# measure of signature verification (benches/token_validation.rs is). The sanity check of
# a bearer target also requires 401 for a request without the token.
# The session target signs in for real: the test OpenID Provider (tests/idp/server.mjs, config
# idp.json.tmpl: devInteractions accept any login, access/ID/refresh tokens live as long as the
# bearer tokens above) is started before Portcullis (which is not ready without its keys), and
# benches/load/session_cookie.py (Python 3 standard library) plays a browser's sign-in: a
# navigation to the session route, the provider's login form, the gateway's callback, which
# sets the sealed session cookie(s) (AES-256-GCM, ~2-3 KB with a JWT access token, a refresh
# token and an ID token). The provider is then stopped, before any load: a cookie-store
# session is self-contained. wrk replays that Cookie header; the session is read (cookie
# parsed, opened, JSON-decoded) and the route's rules applied on every request. It is never
# rewritten during the run: the idle timeout (and lifetime) is 8 times the token lifetime,
# so the gateway would only re-seal it ("touch", with a Set-Cookie, every idle timeout / 8)
# after every run of the invocation is over, and its access token is not due for refresh. The sanity check of every target requires a response without Set-Cookie, that of
# the session target also 401 without the cookie, and a run during which the gateway
# refreshed a session fails.
# Portcullis always runs with all routes and both providers, whichever targets are chosen,
# so it needs Node.js (>= 20.18) whenever a portcullis-* target is selected (and python3 for
# portcullis-session).
#
# Usage: benches/load/run.sh [--targets LIST]
#
# Environment (defaults in brackets):
#   TARGETS         comma-separated targets
#                   [backend,nginx,portcullis-public,portcullis-bearer-rs256,portcullis-bearer-es256,
#                   portcullis-session]
#   WORKERS         nginx proxy worker_processes = Portcullis threads [2]
#   BACKEND_WORKERS backend nginx worker_processes [WORKERS]
#   DURATION        measured wrk run per target [10s]
#   WARMUP          unmeasured wrk run before each measured one [2s]
#   CONNECTIONS     wrk connections [64]
#   THREADS         wrk threads [2]
#   BODY            backend response: small ("ok\n") or 1k (1024 bytes) [small]
#   ACCESS_LOG      Portcullis access log, off (like the nginx proxy) or stdout [off]
#   PORTCULLIS_BIN  use this binary instead of `cargo build --profile release-lto --bin portcullis`
#   OUT             also write the JSON result to this file
#
# Adding a target "foo-bar": write a function target_foo_bar that starts what it
# needs through the idempotent start_* helpers and sets T_URL (and optionally
# T_HEADERS, an array of "Name: value" sent by both the sanity check and wrk, and
# T_NOAUTH_STATUS, the status the sanity check then requires without T_HEADERS);
# for a gateway route, add a route stanza to portcullis.yaml.tmpl under its own
# path prefix. Then run with TARGETS=...,foo-bar.

set -euo pipefail
shopt -u patsub_replacement 2>/dev/null || true

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"

TARGETS="${TARGETS:-backend,nginx,portcullis-public,portcullis-bearer-rs256,portcullis-bearer-es256,portcullis-session}"
WORKERS="${WORKERS:-2}"
ACCESS_LOG="${ACCESS_LOG:-off}"
BACKEND_WORKERS="${BACKEND_WORKERS:-$WORKERS}"
DURATION="${DURATION:-10s}"
WARMUP="${WARMUP:-2s}"
CONNECTIONS="${CONNECTIONS:-64}"
THREADS="${THREADS:-2}"
BODY="${BODY:-small}"
OUT="${OUT:-}"

# The same request path is used against every server, so rows differ only in
# what sits between wrk and the backend.
PUBLIC_PATH="/public/bench"
# The bearer routes' paths (also served by the backend's catch-all) and the audience of
# the `bench` provider in portcullis.yaml.tmpl.
BEARER_RS_PATH="/bearer-rs/bench"
BEARER_ES_PATH="/bearer-es/bench"
BEARER_AUDIENCE="urn:portcullis:bench"
# The session route's path (also served by the backend's catch-all).
SESSION_PATH="/session/bench"

log() { printf '[load] %s\n' "$*" >&2; }
die() { printf '[load] error: %s\n' "$*" >&2; exit 1; }

usage() { sed -n '2,/^$/{s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; }

while (($#)); do
    case "$1" in
        --targets) [[ $# -ge 2 ]] || die "--targets needs a value"; TARGETS="$2"; shift 2 ;;
        --targets=*) TARGETS="${1#--targets=}"; shift ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown argument: $1 (see --help)" ;;
    esac
done

is_uint() { [[ "$1" =~ ^[1-9][0-9]*$ ]]; }
for v in WORKERS BACKEND_WORKERS CONNECTIONS THREADS; do
    is_uint "${!v}" || die "$v must be a positive integer, got '${!v}'"
done

# wrk duration ("10", "10s", "2m", "1h") -> whole seconds.
dur_secs() {
    local d="$1"
    case "$d" in
        *[0-9]s) d="${d%s}"; [[ "$d" =~ ^[0-9]+$ ]] && echo "$d" && return ;;
        *[0-9]m) d="${d%m}"; [[ "$d" =~ ^[0-9]+$ ]] && echo "$((d * 60))" && return ;;
        *[0-9]h) d="${d%h}"; [[ "$d" =~ ^[0-9]+$ ]] && echo "$((d * 3600))" && return ;;
        *) [[ "$d" =~ ^[0-9]+$ ]] && echo "$d" && return ;;
    esac
    return 1
}
DURATION_S="$(dur_secs "$DURATION")" || die "bad DURATION '$DURATION'"
WARMUP_S="$(dur_secs "$WARMUP")" || die "bad WARMUP '$WARMUP'"
((DURATION_S > 0)) || die "DURATION must be > 0"

case "$BODY" in
    small) BODY_TEXT='ok\n' ;;                                      # nginx unescapes \n
    1k) BODY_TEXT="$(head -c 1023 /dev/zero | tr '\0' x)"'\n' ;;    # 1024 bytes
    *) die "BODY must be small or 1k, got '$BODY'" ;;
esac

IFS=',' read -r -a TARGET_LIST <<<"${TARGETS// /}"
((${#TARGET_LIST[@]})) || die "no targets"
target_fn() { printf 'target_%s' "${1//-/_}"; }

# ---------------------------------------------------------------- dependencies

ensure_deps() {
    local missing=()
    command -v nginx >/dev/null 2>&1 || [[ -x /usr/sbin/nginx ]] || missing+=(nginx-light)
    command -v wrk >/dev/null 2>&1 || missing+=(wrk)
    command -v curl >/dev/null 2>&1 || missing+=(curl)
    if [[ -z "${PORTCULLIS_BIN:-}" ]]; then
        command -v cmake >/dev/null 2>&1 || missing+=(cmake)
    fi
    ((${#missing[@]})) || return 0
    log "installing: ${missing[*]}"
    local sudo=()
    if ((EUID != 0)); then
        command -v sudo >/dev/null 2>&1 || die "not root and no sudo; install ${missing[*]}"
        sudo=(sudo)
    fi
    "${sudo[@]}" apt-get update
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"
}

NGINX="$(command -v nginx 2>/dev/null || echo /usr/sbin/nginx)"

# ---------------------------------------------------------------- processes, temp dir

TMP=""
PIDS=()

cleanup() {
    local rc=$? pid i
    trap - EXIT INT TERM
    [[ -z "${WRK_PID:-}" ]] || kill -TERM "$WRK_PID" 2>/dev/null || true
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do
        for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$pid" 2>/dev/null; then
            pkill -KILL -P "$pid" 2>/dev/null || true
            kill -KILL "$pid" 2>/dev/null || true
        fi
        wait "$pid" 2>/dev/null || true
    done
    [[ -n "$TMP" && -d "$TMP" ]] && rm -rf "$TMP"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

TMP="$(mktemp -d "${TMPDIR:-/tmp}/portcullis-load.XXXXXX")"

USED_PORTS=" "
port_in_use() {
    local p="$1"
    if command -v ss >/dev/null 2>&1; then
        [[ -n "$(ss -Hltn "sport = :$p" 2>/dev/null)" ]]
    else
        (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null
    fi
}
free_port() { # VAR: set VAR to a free loopback port not handed out before
    local p i
    for ((i = 0; i < 200; i++)); do
        p=$((20000 + RANDOM % 40000))
        [[ "$USED_PORTS" == *" $p "* ]] && continue
        port_in_use "$p" && continue
        USED_PORTS+="$p "
        printf -v "$1" '%s' "$p"
        return 0
    done
    die "no free port found"
}

# render TEMPLATE OUTPUT: replace @NAME@ with $NAME for the variables below.
render() {
    local text key
    text="$(<"$1")"
    for key in TMP WORKERS ACCESS_LOG BACKEND_WORKERS BACKEND_PORT PROXY_PORT GATEWAY_PORT ADMIN_PORT \
        IDP_ISSUER IDP_KEYS SESSION_TTL SESSION_IDLE SESSION_SECRET; do
        text="${text//@"$key"@/"${!key:-}"}"
    done
    text="${text//@BODY@/"$BODY_TEXT"}"
    [[ "$text" != *@[A-Z_]*@* ]] || die "unrendered placeholder in $1: $(grep -o '@[A-Z_]*@' <<<"$text" | sort -u | tr '\n' ' ')"
    printf '%s\n' "$text" >"$2"
}

# wait_http NAME URL LOGFILE PID: until URL answers 200, the process dies, or 30s pass.
wait_http() {
    local name="$1" url="$2" logf="$3" pid="$4" i
    for ((i = 0; i < 300; i++)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            log "$name exited during startup; its log:"
            tail -n 40 "$logf" >&2 2>/dev/null || true
            die "$name failed to start"
        fi
        [[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$url" 2>/dev/null)" == 200 ]] && return 0
        sleep 0.1
    done
    log "$name not ready after 30s; its log:"
    tail -n 40 "$logf" >&2 2>/dev/null || true
    die "$name did not become ready at $url"
}

LAST_PID=""
start_nginx() { # NAME CONF
    "$NGINX" -p "$TMP/" -e "$TMP/$1.error.log" -c "$2" -g 'daemon off;' \
        >"$TMP/$1.out" 2>&1 </dev/null &
    PIDS+=("$!")
    LAST_PID=$!
}

BACKEND_PORT=""
start_backend() {
    [[ -z "$BACKEND_PORT" ]] || return 0
    free_port BACKEND_PORT
    render "$HERE/backend.nginx.conf.tmpl" "$TMP/backend.conf"
    start_nginx backend "$TMP/backend.conf"
    wait_http backend "http://127.0.0.1:$BACKEND_PORT/__backend_status" "$TMP/backend.error.log" "$LAST_PID"
    log "backend nginx on 127.0.0.1:$BACKEND_PORT (workers $BACKEND_WORKERS, body $BODY)"
}

PROXY_PORT=""
start_nginx_proxy() {
    [[ -z "$PROXY_PORT" ]] || return 0
    start_backend
    free_port PROXY_PORT
    render "$HERE/proxy.nginx.conf.tmpl" "$TMP/proxy.conf"
    start_nginx proxy "$TMP/proxy.conf"
    wait_http "nginx proxy" "http://127.0.0.1:$PROXY_PORT$PUBLIC_PATH" "$TMP/proxy.error.log" "$LAST_PID"
    log "nginx proxy on 127.0.0.1:$PROXY_PORT (workers $WORKERS)"
}

portcullis_bin() {
    if [[ -n "${PORTCULLIS_BIN:-}" ]]; then
        [[ -x "$PORTCULLIS_BIN" ]] || die "PORTCULLIS_BIN=$PORTCULLIS_BIN is not executable"
        printf '%s\n' "$PORTCULLIS_BIN"
        return
    fi
    log "cargo build --profile release-lto --bin portcullis"
    (cd "$ROOT" && cargo build --profile release-lto --bin portcullis >&2) || die "release build failed"
    printf '%s\n' "${CARGO_TARGET_DIR:-$ROOT/target}/release-lto/portcullis"
}

# Lifetime of every token of this invocation (bearer tokens, the session's access token):
# at least 1h and longer than every warm-up and run.
token_ttl() {
    local ttl=$((${#TARGET_LIST[@]} * (DURATION_S + WARMUP_S + 60) + 600))
    ((ttl >= 3600)) || ttl=3600
    echo "$ttl"
}

# The bearer targets' provider, as static files under $TMP/idp served by the backend:
# discovery document, public JWKS and one access token per algorithm (mint.mjs).
TOKEN_RS256=""
TOKEN_ES256=""
mint_tokens() {
    local issuer="http://127.0.0.1:$BACKEND_PORT" ttl doc
    ttl="$(token_ttl)"
    node "$HERE/mint.mjs" "$issuer" "$BEARER_AUDIENCE" "$ttl" "$TMP/idp" || die "mint.mjs failed"
    # Started by root, nginx's workers run as nobody: let them reach the two public documents
    # (the temp dir is only traversable, not listable; the tokens stay private).
    chmod 711 "$TMP"
    chmod 755 "$TMP/idp"
    chmod 644 "$TMP/idp/openid-configuration.json" "$TMP/idp/jwks.json"
    chmod 600 "$TMP/idp/"*.jwt
    TOKEN_RS256="$(<"$TMP/idp/token-rs256.jwt")"
    TOKEN_ES256="$(<"$TMP/idp/token-es256.jwt")"
    doc="$(curl -sf --max-time 2 "$issuer/.well-known/openid-configuration")" ||
        die "the backend does not serve the discovery document"
    [[ "$doc" == *"\"issuer\": \"$issuer\""* ]] || die "served discovery document has the wrong issuer: $doc"
    curl -sf --max-time 2 -o /dev/null "$issuer/jwks.json" || die "the backend does not serve jwks.json"
    log "provider bench: issuer $issuer, JWKS on the backend, tokens valid ${ttl}s"
}

# The session target's provider: the test OpenID Provider, which knows the gateway's callback
# (so GATEWAY_PORT is chosen first). Prints `READY <issuer>` once it serves.
IDP_PID=""
IDP_ISSUER=""
IDP_KEYS=""
SESSION_TTL=""
SESSION_IDLE=""
start_idp() {
    local i
    [[ -z "$IDP_PID" ]] || return 0
    [[ -n "$GATEWAY_PORT" ]] || die "start_idp needs GATEWAY_PORT"
    IDP_KEYS="$ROOT/tests/idp/keys/primary.json"
    SESSION_TTL="$(token_ttl)"
    # sessions.idle_timeout and lifetime (seconds): the gateway touches a session every
    # idle_timeout / 8 = SESSION_TTL, i.e. never during this invocation.
    SESSION_IDLE=$((8 * SESSION_TTL))
    render "$HERE/idp.json.tmpl" "$TMP/idp.json"
    node "$ROOT/tests/idp/server.mjs" "$TMP/idp.json" >"$TMP/idp.out" 2>"$TMP/idp.err" </dev/null &
    IDP_PID=$!
    PIDS+=("$IDP_PID")
    for ((i = 0; i < 300; i++)); do
        if ! kill -0 "$IDP_PID" 2>/dev/null; then
            log "the test IdP exited during startup; its log:"
            tail -n 40 "$TMP/idp.err" >&2 2>/dev/null || true
            die "the test IdP failed to start"
        fi
        IDP_ISSUER="$(awk '$1 == "READY" { print $2; exit }' "$TMP/idp.out" 2>/dev/null || true)"
        [[ -z "$IDP_ISSUER" ]] || break
        sleep 0.1
    done
    [[ -n "$IDP_ISSUER" ]] || die "the test IdP printed no READY line in 30s"
    log "test IdP (session provider) at $IDP_ISSUER, tokens valid ${SESSION_TTL}s"
}

# Stops the test IdP (SIGTERM, SIGKILL after 5s); nothing of a load run needs it.
stop_idp() {
    local i pid keep=()
    [[ -n "$IDP_PID" ]] || return 0
    kill -TERM "$IDP_PID" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do kill -0 "$IDP_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$IDP_PID" 2>/dev/null || true
    wait "$IDP_PID" 2>/dev/null || true
    for pid in "${PIDS[@]}"; do [[ "$pid" == "$IDP_PID" ]] || keep+=("$pid"); done
    PIDS=("${keep[@]}")
    IDP_PID=""
    log "test IdP stopped: no IdP process runs during the load"
}

GATEWAY_PORT=""
ADMIN_PORT=""
SESSION_SECRET=""
start_portcullis() {
    [[ -z "$GATEWAY_PORT" ]] || return 0
    start_backend
    # Node.js and jose (tests/idp/node_modules) for mint.mjs; idempotent, quick when installed.
    bash "$ROOT/tests/setup.sh" >&2 || die "tests/setup.sh failed (Node.js >= 20.18 and npm are needed)"
    local bin
    bin="$(portcullis_bin)"
    mint_tokens
    free_port GATEWAY_PORT
    free_port ADMIN_PORT
    start_idp
    # A fresh random session secret per run (32 bytes, base64); the rendered config is private.
    SESSION_SECRET="$(head -c 32 /dev/urandom | base64 -w0)"
    render "$HERE/portcullis.yaml.tmpl" "$TMP/portcullis.yaml"
    chmod 600 "$TMP/portcullis.yaml"
    "$bin" check --config "$TMP/portcullis.yaml" >&2 || die "portcullis check rejected the benchmark config"
    # ACCESS_LOG=stdout measures the gateway with its JSON access log on (discarded here);
    # the default `off` matches the nginx proxy's `access_log off`.
    "$bin" run --config "$TMP/portcullis.yaml" >/dev/null 2>"$TMP/portcullis.err" </dev/null &
    PIDS+=("$!")
    # /readyz is 503 until both providers' keys are fetched (backend, test IdP).
    wait_http portcullis "http://127.0.0.1:$ADMIN_PORT/readyz" "$TMP/portcullis.err" "$!"
    log "portcullis on 127.0.0.1:$GATEWAY_PORT, admin $ADMIN_PORT (threads $WORKERS, $bin)"
}

# ---------------------------------------------------------------- targets

# Each sets T_URL (required) and T_HEADERS (optional array of "Name: value").

target_backend() {
    start_backend
    T_URL="http://127.0.0.1:$BACKEND_PORT$PUBLIC_PATH"
}

target_nginx() {
    start_nginx_proxy
    T_URL="http://127.0.0.1:$PROXY_PORT$PUBLIC_PATH"
}

target_portcullis_public() {
    start_portcullis
    T_URL="http://127.0.0.1:$GATEWAY_PORT$PUBLIC_PATH"
}

target_portcullis_bearer_rs256() {
    start_portcullis
    T_URL="http://127.0.0.1:$GATEWAY_PORT$BEARER_RS_PATH"
    T_HEADERS=("Authorization: Bearer $TOKEN_RS256")
    T_NOAUTH_STATUS=401
}

target_portcullis_bearer_es256() {
    start_portcullis
    T_URL="http://127.0.0.1:$GATEWAY_PORT$BEARER_ES_PATH"
    T_HEADERS=("Authorization: Bearer $TOKEN_ES256")
    T_NOAUTH_STATUS=401
}

SESSION_COOKIE=""
target_portcullis_session() {
    start_portcullis
    if [[ -z "$SESSION_COOKIE" ]]; then
        [[ -n "$IDP_PID" ]] || die "the test IdP is no longer running; cannot sign in"
        command -v python3 >/dev/null 2>&1 || die "python3 is needed for the session target"
        # One real sign-in, bounded in time; the Cookie header value on stdout.
        SESSION_COOKIE="$(timeout -k 5 60 python3 "$HERE/session_cookie.py" \
            "http://127.0.0.1:$GATEWAY_PORT$SESSION_PATH")" || {
            log "sign-in failed; the test IdP's log and the gateway's:"
            tail -n 20 "$TMP/idp.err" >&2 2>/dev/null || true
            tail -n 20 "$TMP/portcullis.err" >&2 2>/dev/null || true
            die "session_cookie.py could not sign in"
        }
        [[ -n "$SESSION_COOKIE" ]] || die "session_cookie.py printed no cookie"
    fi
    T_URL="http://127.0.0.1:$GATEWAY_PORT$SESSION_PATH"
    T_HEADERS=("Cookie: $SESSION_COOKIE")
    T_NOAUTH_STATUS=401
}

# ---------------------------------------------------------------- measuring

backend_accepts() {
    curl -s --max-time 2 "http://127.0.0.1:$BACKEND_PORT/__backend_status" | awk 'NR == 3 { print $1 }'
}

# Parse wrk --latency output on stdin into "rps p50_ms p99_ms requests non2xx sockerr".
parse_wrk() {
    awk '
        function ms(v,   n, u) {
            n = v; sub(/[a-z]+$/, "", n); u = v; sub(/^[0-9.]+/, "", u)
            if (u == "us") return n / 1000
            if (u == "ms") return n
            if (u == "s")  return n * 1000
            if (u == "m")  return n * 60000
            if (u == "h")  return n * 3600000
            return -1
        }
        /^ +50%/ { p50 = ms($2) }
        /^ +99%/ { p99 = ms($2) }
        / requests in / { req = $1 }
        /^Requests\/sec:/ { rps = $2 }
        /Non-2xx or 3xx responses:/ { non2xx = $NF }
        /Socket errors:/ {
            s = $0; sub(/.*Socket errors: */, "", s); gsub(/,/, "", s)
            n = split(s, a, " "); for (i = 2; i <= n; i += 2) err += a[i]
        }
        END {
            if (rps == "" || p50 == "" || p99 == "") exit 1
            printf "%.2f %.3f %.3f %d %d %d\n", rps, p50, p99, req, non2xx + 0, err + 0
        }'
}

# run_wrk OUTFILE LIMIT_SECONDS WRK_ARGS...: wrk, killed after LIMIT_SECONDS; run in the
# background and waited for so that INT/TERM reach the cleanup trap immediately.
WRK_PID=""
run_wrk() {
    local outf="$1" limit="$2" rc=0
    shift 2
    timeout -k 5 "$limit" wrk "$@" >"$outf" 2>&1 </dev/null &
    WRK_PID=$!
    wait "$WRK_PID" || rc=$?
    WRK_PID=""
    return "$rc"
}

declare -A R_URL R_RPS R_P50 R_P99 R_REQ R_NON2XX R_ERR R_CONNS R_OK
FAILED=0

measure() { # TARGET
    local t="$1" hdr_args=() curl_hdr=() h code out parsed a0 a1
    for h in "${T_HEADERS[@]}"; do hdr_args+=(-H "$h"); curl_hdr+=(-H "$h"); done
    R_URL[$t]="$T_URL"
    R_OK[$t]=false

    code="$(curl -s -o "$TMP/sanity.body" -D "$TMP/sanity.headers" -w '%{http_code}' --max-time 5 \
        "${curl_hdr[@]}" "$T_URL" || true)"
    if [[ "$code" != 200 ]]; then
        log "$t: sanity request to $T_URL returned HTTP $code:"
        head -c 500 "$TMP/sanity.body" >&2 2>/dev/null || true
        echo >&2
        FAILED=1
        return
    fi
    # wrk never stores cookies: a response setting one (a session re-sealed on every request)
    # would make the run measure something else than the target says.
    if grep -qi '^set-cookie:' "$TMP/sanity.headers"; then
        log "$t: sanity response to $T_URL sets a cookie:"
        grep -i '^set-cookie:' "$TMP/sanity.headers" | cut -c 1-120 >&2
        FAILED=1
        return
    fi
    log "$t: sanity request OK ($(wc -c <"$TMP/sanity.body") byte body)"
    if [[ -n "$T_NOAUTH_STATUS" ]]; then
        code="$(curl -s -o "$TMP/sanity.body" -w '%{http_code}' --max-time 5 "$T_URL" || true)"
        if [[ "$code" != "$T_NOAUTH_STATUS" ]]; then
            log "$t: request without its headers to $T_URL returned HTTP $code, not $T_NOAUTH_STATUS:"
            head -c 500 "$TMP/sanity.body" >&2 2>/dev/null || true
            echo >&2
            FAILED=1
            return
        fi
        log "$t: request without its headers refused as expected (HTTP $code)"
    fi

    if ((WARMUP_S > 0)); then
        run_wrk /dev/null "$((WARMUP_S + 30))" -t "$THREADS" -c "$CONNECTIONS" -d "$WARMUP" --timeout 5s \
            "${hdr_args[@]}" "$T_URL" || true
    fi

    # Tokens and cookies are long and say nothing: the log shows their size only.
    local shown=() a
    for a in "${hdr_args[@]}"; do
        if [[ "$a" =~ ^(Authorization:\ Bearer\ )(.*)$ ]]; then
            shown+=("'${BASH_REMATCH[1]}<${#BASH_REMATCH[2]}-byte token>'")
        elif [[ "$a" =~ ^(Cookie:\ )(.*)$ ]]; then
            shown+=("'${BASH_REMATCH[1]}<${#BASH_REMATCH[2]}-byte session cookie>'")
        else
            shown+=("$a")
        fi
    done
    log "$t: wrk --latency -t $THREADS -c $CONNECTIONS -d $DURATION --timeout 5s ${shown[*]:+${shown[*]} }$T_URL"
    a0="$(backend_accepts)"
    if ! run_wrk "$TMP/wrk.out" "$((DURATION_S + 30))" --latency -t "$THREADS" -c "$CONNECTIONS" -d "$DURATION" \
        --timeout 5s "${hdr_args[@]}" "$T_URL"; then
        log "$t: wrk failed or timed out:"
        cat "$TMP/wrk.out" >&2
        FAILED=1
        return
    fi
    out="$(<"$TMP/wrk.out")"
    a1="$(backend_accepts)"
    if [[ -n "$a0" && -n "$a1" ]]; then
        R_CONNS[$t]=$((a1 - a0 - 1)) # minus the status request's own connection
    fi

    if ! parsed="$(parse_wrk <<<"$out")"; then
        log "$t: could not parse wrk output:"
        printf '%s\n' "$out" >&2
        FAILED=1
        return
    fi
    local rps p50 p99 req non2xx err
    read -r rps p50 p99 req non2xx err <<<"$parsed"
    R_RPS[$t]="$rps" R_P50[$t]="$p50" R_P99[$t]="$p99" R_REQ[$t]="$req" R_NON2XX[$t]="$non2xx" R_ERR[$t]="$err"
    if ((non2xx != 0 || err != 0 || req == 0)); then
        log "$t: FAILED run (non-2xx/3xx: $non2xx, socket errors: $err, requests: $req):"
        printf '%s\n' "$out" >&2
        FAILED=1
        return
    fi
    R_OK[$t]=true
}

# ---------------------------------------------------------------- main

for t in "${TARGET_LIST[@]}"; do
    [[ "$(type -t "$(target_fn "$t")")" == function ]] || die "unknown target '$t'"
done

ensure_deps

declare -A T_URLS T_HDRS T_NOAUTH
for t in "${TARGET_LIST[@]}"; do
    T_URL=""
    T_HEADERS=()
    T_NOAUTH_STATUS=""
    "$(target_fn "$t")"
    [[ -n "$T_URL" ]] || die "target $t set no T_URL"
    T_URLS[$t]="$T_URL"
    T_HDRS[$t]="$(printf '%s\n' "${T_HEADERS[@]}")"
    T_NOAUTH[$t]="$T_NOAUTH_STATUS"
done
# The test IdP was needed for start-up and sign-in only.
stop_idp

for t in "${TARGET_LIST[@]}"; do
    T_URL="${T_URLS[$t]}"
    T_NOAUTH_STATUS="${T_NOAUTH[$t]}"
    T_HEADERS=()
    [[ -z "${T_HDRS[$t]}" ]] || mapfile -t T_HEADERS <<<"${T_HDRS[$t]}"
    measure "$t"
done

# How the bearer requests were answered: misses should be about one per token (the sanity
# request), everything else hits.
if [[ -n "$GATEWAY_PORT" ]]; then
    cache="$(curl -s --max-time 2 "http://127.0.0.1:$ADMIN_PORT/metrics" |
        awk '/^portcullis_token_cache_total[{]/ { printf "%s%s", sep, $0; sep = ", " }' || true)"
    [[ -z "$cache" ]] || log "token cache: $cache"
    # The session target measures reads of a session that needs no refresh: a refresh during
    # the run (the provider is stopped, so each attempt would fail and be retried) voids it.
    refreshes="$(curl -s --max-time 2 "http://127.0.0.1:$ADMIN_PORT/metrics" |
        awk '/^portcullis_session_refreshes_total[{]/ { n += $NF } END { print n + 0 }' || true)"
    if [[ -n "$refreshes" && "$refreshes" != 0 ]]; then
        log "the gateway refreshed sessions $refreshes time(s) during the runs: the session figures are void"
        for t in "${TARGET_LIST[@]}"; do [[ "$t" != portcullis-session ]] || R_OK[$t]=false; done
        FAILED=1
    fi
fi

ratio() { # TARGET -> ratio of its rps to nginx's, or empty
    local base="${R_RPS[nginx]:-}"
    [[ "${R_OK[nginx]:-false}" == true && "${R_OK[$1]}" == true && -n "$base" ]] || return 0
    awk -v a="${R_RPS[$1]}" -v b="$base" 'BEGIN { if (b > 0) printf "%.2f", a / b }'
}

git_rev="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo none)"
cpus="$(nproc 2>/dev/null || echo '?')"

{
    printf '\nPortcullis load benchmark: wrk -t %s -c %s -d %s (warm-up %s), workers %s, backend workers %s, body %s, %s CPUs, rev %s\n\n' \
        "$THREADS" "$CONNECTIONS" "$DURATION" "$WARMUP" "$WORKERS" "$BACKEND_WORKERS" "$BODY" "$cpus" "$git_rev"
    w=20
    for t in "${TARGET_LIST[@]}"; do ((${#t} <= w)) || w=${#t}; done
    printf '%-*s %12s %9s %9s %9s %14s\n' "$w" target rps "p50 ms" "p99 ms" "vs nginx" "backend conns"
    for t in "${TARGET_LIST[@]}"; do
        if [[ "${R_OK[$t]}" == true ]]; then
            r="$(ratio "$t")"
            printf '%-*s %12s %9s %9s %9s %14s\n' "$w" "$t" "${R_RPS[$t]}" "${R_P50[$t]}" "${R_P99[$t]}" \
                "${r:+${r}x}" "${R_CONNS[$t]:--}"
        else
            printf '%-*s %12s\n' "$w" "$t" FAILED
        fi
    done
    echo
}

json_num() { if [[ -n "${1:-}" ]]; then printf '%s' "$1"; else printf 'null'; fi; }
json() {
    local first=1 t
    printf '{"duration":"%s","warmup":"%s","connections":%s,"wrk_threads":%s,"workers":%s,' \
        "$DURATION" "$WARMUP" "$CONNECTIONS" "$THREADS" "$WORKERS"
    printf '"backend_workers":%s,"body":"%s","cpus":"%s","rev":"%s","results":[' \
        "$BACKEND_WORKERS" "$BODY" "$cpus" "$git_rev"
    for t in "${TARGET_LIST[@]}"; do
        ((first)) || printf ','
        first=0
        printf '{"target":"%s","url":"%s","ok":%s,"rps":%s,"p50_ms":%s,"p99_ms":%s,"ratio_vs_nginx":%s,"requests":%s,"non_2xx_3xx":%s,"socket_errors":%s,"backend_conns":%s}' \
            "$t" "${R_URL[$t]:-}" "${R_OK[$t]:-false}" "$(json_num "${R_RPS[$t]:-}")" \
            "$(json_num "${R_P50[$t]:-}")" "$(json_num "${R_P99[$t]:-}")" "$(json_num "$(ratio "$t")")" \
            "$(json_num "${R_REQ[$t]:-}")" "$(json_num "${R_NON2XX[$t]:-}")" "$(json_num "${R_ERR[$t]:-}")" \
            "$(json_num "${R_CONNS[$t]:-}")"
    done
    printf ']}\n'
}
JSON="$(json)"
printf '%s\n' "$JSON"
[[ -z "$OUT" ]] || printf '%s\n' "$JSON" >"$OUT"

exit "$FAILED"
