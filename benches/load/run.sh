#!/usr/bin/env bash
# Whole-gateway load benchmark for Portcullis.
#
# Starts, on 127.0.0.1 only and under a private temp dir:
#   - a backend (Debian's nginx returning a fixed body),
#   - a plain nginx reverse proxy to it (the reference row),
#   - Portcullis with one route per gateway target,
# then loads every target with the same wrk invocation and prints a table
# (rps, p50, p99, rps ratio to the target's baseline, nginx for plain-HTTP rows and the nginx
# TLS row of the same mode for TLS rows) followed by the same data as JSON.
# "backend conns" is how many TCP connections the backend accepted during the
# measured run (after warm-up): near 0 for a proxy that reuses its upstream
# connections, = CONNECTIONS for the backend row.
# The resource columns are those of the process(es) serving the row, read from /proc right
# before and right after the measured wrk run (not the warm-up, not start-up): the nginx proxy's
# worker processes (summed; not the master, which serves nothing) for the nginx* rows, the one
# process of the Portcullis instance for the portcullis-* rows (portcullis-redis for
# portcullis-session-redis; redis-server is not counted), the backend nginx's workers for the
# backend row. wrk, the backend behind a proxy and anything else on the machine are not counted.
# Counts over the run are divided by the requests wrk completed in it:
#   usr µs/req, sys µs/req  CPU time in user and in kernel mode per request: the change of utime
#                           and stime (/proc/PID/stat, whole process, every thread; in clock ticks,
#                           `getconf CLK_TCK`, usually 100/s: 10 ms, well under 1% of a 10 s run).
#                           What the server costs per request whatever the rps: on a small machine
#                           wrk, the backend and the proxy share the cores, so rps alone mixes
#                           the proxy's cost with theirs. Includes the process' background work
#                           (health checks, timers) during the run, next to nothing.
#   vcs/req, ivcs/req       context switches per request, voluntary (a thread gave up the CPU:
#                           waited for a socket, a lock, a timer; fewer means more work done per
#                           wake-up) and involuntary (a thread was preempted: its time slice ended
#                           or a woken task took its core; many means CPU contention), summed over
#                           every thread (voluntary_ctxt_switches, nonvoluntary_ctxt_switches of
#                           /proc/PID/task/*/status; a thread that exits during the run takes its
#                           counts with it).
#   RSS MiB                 resident memory (VmRSS of /proc/PID/status, summed) at the end of the run.
#   cpu ratio               (usr + sys) µs/req over that of the row in "vs" (the baseline of the rps
#                           ratio): 1.50x = the row spends 50% more CPU per request than its baseline.
# A row whose set of processes changed during the run (a worker restarted) shows "-" there.
# A run with any non-2xx/3xx response or socket error is reported as FAILED
# (wrk's output is printed) and the script exits 1.
# Nothing in the repository is written; set OUT=file to also save the JSON.
#
# Targets:
#   backend                  the backend nginx itself, no proxy (the ceiling)
#   nginx                    plain nginx reverse proxy (the reference of "vs nginx")
#   bare-loop                the floor of Portcullis' request loop (benches/bare_loop.rs): the
#                            same pingora-core sessions, shards and per-shard upstream connection
#                            stack, none of the gateway's decisions (no routing, hygiene, auth,
#                            metrics or log); built with `cargo build --profile release-lto
#                            --bench bare_loop` unless BARE_LOOP_BIN names a binary
#   portcullis-public        Portcullis route with `auth: public`
#   portcullis-bearer-rs256  Portcullis route with `auth: bearer`, JWT access token signed RS256
#   portcullis-bearer-es256  the same with an ES256 token
#   portcullis-bearer-pool   the RS256 route, each request carrying one of BEARER_POOL distinct
#                            RS256 tokens (round-robin over all wrk threads, bearer_pool.wrk.lua)
#   portcullis-session       Portcullis route with `auth: session` (cookie store), requests carrying
#                            the session cookie of a real sign-in, like a signed-in browser
#   portcullis-session-redis the same route on a second Portcullis instance whose sessions live in
#                            Redis (`sessions.store: redis`): the cookie is a ticket, each request
#                            reads the session from a Redis server the script starts
#   nginx-tls                the nginx proxy's TLS listener (baseline of portcullis-tls)
#   portcullis-tls           Portcullis' TLS listener, `auth: public` route
#   nginx-tls-newconn        nginx-tls with `Connection: close`: every request is a new TCP
#                            connection and a full TLS handshake (baseline of portcullis-tls-newconn)
#   portcullis-tls-newconn   portcullis-tls with `Connection: close`
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
# portcullis-bearer-pool spreads the load over BEARER_POOL tokens (mint.mjs POOL_SIZE writes them
# once, one a line; benches/load/bearer_pool.wrk.lua hands thread i of THREADS the tokens i,
# i+THREADS, ... in turn). The first pass over the pool verifies each token's signature (RS256,
# one miss of the verified-token cache each); every later request is a hit, as long as the pool
# fits the cache (65,536 entries; larger pools would evict). With the default 1,000 tokens the
# first pass falls in the warm-up, so the measured run is cache hits over 1,000 entries instead
# of one; WARMUP=0 puts the verifications in the measured run. The target logs the cache's hits
# and misses of its warm-up and of its run, and fails unless the two saw at least BEARER_POOL - 1
# misses (every token but the sanity request's verified), i.e. unless wrk sent the whole pool.
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
# portcullis-session-redis signs in the same way against a second instance (`portcullis-redis`,
# the same config but `sessions: {store: redis, redis: {url: redis://127.0.0.1:PORT, timeout:
# 500ms}}`) whose Redis server (redis-server, installed by tests/setup.sh, no persistence) the
# script starts on a loopback port. Before the load it checks that the Cookie header is a small
# ticket (< 300 bytes) and that Redis holds exactly one session (`portcullis:s:*` key); after
# the runs it prints that instance's store calls (about one `get` per request) and fails the
# target on any store error or session write during the runs.
# The TLS targets use a test CA and a leaf certificate for bench.test (EC P-256, made with
# openssl at run time under the temp dir), served by both the nginx proxy (a second listen
# with `ssl http2`) and Portcullis (a TLS listener). Their sanity request checks the chain and
# the name (curl with the test CA, bench.test resolved to 127.0.0.1) and the log shows the
# negotiated protocol, cipher suite and key exchange (openssl s_client); wrk connects to
# https://127.0.0.1:PORT and verifies nothing. wrk offers no ALPN, so both speak HTTP/1.1 over
# TLS. Keep-alive rows measure the TLS record layer on reused connections; -newconn rows send
# `Connection: close`, so both servers close after each response and wrk reconnects: one TCP
# connection and one full handshake (wrk resumes no session) per request. A -newconn run fails
# unless the kernel counted at least as many accepted TCP connections (PassiveOpens in
# /proc/net/snmp, machine-wide) as wrk completed requests. wrk's latency starts once the
# connection is up, so for -newconn rows the handshake shows in rps, not in p50/p99.
# The ratio column of a TLS row is against the nginx TLS row of the same mode (the table's
# "vs" column names each row's baseline).
# Portcullis always runs with all routes, both providers and a TLS listener, whichever targets
# are chosen, so it needs Node.js (>= 20.18) whenever a portcullis-* target is selected (and
# python3 for the session targets).
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
#   NEWCONN_CONNECTIONS  wrk connections of the -newconn targets [CONNECTIONS]
#   THREADS         wrk threads [2]
#   BODY            backend response: small ("ok\n") or 1k (1024 bytes) [small]
#   ACCESS_LOG      Portcullis access log, off (like the nginx proxy) or stdout [off]
#   BEARER_POOL     tokens of portcullis-bearer-pool, at least THREADS [1000]
#   PORTCULLIS_BIN  use this binary instead of `cargo build --profile release-lto --bin portcullis`
#                   (e.g. one built elsewhere: nothing is compiled then, and cmake is not needed)
#   OUT             also write the JSON result to this file
#
# Adding a target "foo-bar": write a function target_foo_bar that starts what it
# needs through the idempotent start_* helpers and sets T_URL (and optionally
# T_HEADERS, an array of "Name: value" sent by both the sanity check and wrk,
# T_NOAUTH_STATUS, the status the sanity check then requires without T_HEADERS,
# T_SANITY_URL and T_CURL_ARGS, the URL and extra curl arguments of the sanity check
# (default T_URL and none), T_BASELINE, the target its ratio is against (default nginx),
# T_CONNECTIONS (default CONNECTIONS), T_NEWCONN=1 for a run that must open one
# connection per request, T_PROC, the processes its resource columns are read from:
# backend, proxy (nginx workers) or a Portcullis instance (portcullis, portcullis-redis), none
# without, T_WRK_SCRIPT and T_WRK_SCRIPT_ARGS, a wrk Lua script for the warm-up and the run and
# its arguments, T_TOKEN_CACHE, the admin port whose token cache lookups are logged per run, and
# T_MIN_MISSES, the cache misses the warm-up and run must have had at least);
# for a gateway route, add a route stanza to portcullis.yaml.tmpl under its own
# path prefix. Then run with TARGETS=...,foo-bar.

set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
LOG_NAME=load
LOG_CLOCK=0
# shellcheck source=benches/load/lib.sh
source "$HERE/lib.sh"
KEEP_TMP=0 # not an option of this script

TARGETS="${TARGETS:-backend,nginx,portcullis-public,portcullis-bearer-rs256,portcullis-bearer-es256,portcullis-session}"
WORKERS="${WORKERS:-2}"
ACCESS_LOG="${ACCESS_LOG:-off}"
BACKEND_WORKERS="${BACKEND_WORKERS:-$WORKERS}"
DURATION="${DURATION:-10s}"
WARMUP="${WARMUP:-2s}"
CONNECTIONS="${CONNECTIONS:-64}"
NEWCONN_CONNECTIONS="${NEWCONN_CONNECTIONS:-$CONNECTIONS}"
THREADS="${THREADS:-2}"
BODY="${BODY:-small}"
BEARER_POOL="${BEARER_POOL:-1000}"
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
# The name in the TLS targets' certificate; only the sanity check's curl sends it (as SNI and
# Host, resolved to 127.0.0.1): wrk connects to the IP address and verifies nothing.
TLS_NAME="bench.test"

while (($#)); do
    case "$1" in
        --targets) [[ $# -ge 2 ]] || die "--targets needs a value"; TARGETS="$2"; shift 2 ;;
        --targets=*) TARGETS="${1#--targets=}"; shift ;;
        -h|--help) print_header "${BASH_SOURCE[0]}"; exit 0 ;;
        *) die "unknown argument: $1 (see --help)" ;;
    esac
done

require_uint WORKERS BACKEND_WORKERS CONNECTIONS NEWCONN_CONNECTIONS THREADS BEARER_POOL
# Every wrk thread of portcullis-bearer-pool needs a token of its own.
((BEARER_POOL >= THREADS)) || die "BEARER_POOL ($BEARER_POOL) must be at least THREADS ($THREADS)"

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

# shellcheck disable=SC2034 # BODY_TEXT is @BODY@ of render
case "$BODY" in
    small) BODY_TEXT='ok\n' ;;                                      # nginx unescapes \n
    1k) BODY_TEXT="$(head -c 1023 /dev/zero | tr '\0' x)"'\n' ;;    # 1024 bytes
    *) die "BODY must be small or 1k, got '$BODY'" ;;
esac

IFS=',' read -r -a TARGET_LIST <<<"${TARGETS// /}"
((${#TARGET_LIST[@]})) || die "no targets"
target_fn() { printf 'target_%s' "${1//-/_}"; }
selected() { [[ ",${TARGETS// /}," == *,"$1",* ]]; } # TARGET: whether it is to be run

# ---------------------------------------------------------------- dependencies

ensure_deps() {
    local missing=()
    command -v nginx >/dev/null 2>&1 || [[ -x /usr/sbin/nginx ]] || missing+=(nginx-light)
    command -v wrk >/dev/null 2>&1 || missing+=(wrk)
    command -v curl >/dev/null 2>&1 || missing+=(curl)
    command -v openssl >/dev/null 2>&1 || missing+=(openssl) # the TLS listeners' certificate
    if [[ ",${TARGETS// /}," == *,portcullis-session-redis,* ]]; then
        command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
        command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)
    fi
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

# ---------------------------------------------------------------- processes, temp dir

make_tmp portcullis-load

# render's placeholders: @BODY@ is the backend's response text.
RENDER_KEYS=(TMP WORKERS ACCESS_LOG BACKEND_WORKERS BACKEND_PORT PROXY_PORT PROXY_TLS_PORT INSTANCE
    GATEWAY_PORT GATEWAY_TLS_PORT ADMIN_PORT REDIS_GATEWAY_PORT IDP_ISSUER IDP_KEYS SESSION_TTL
    SESSION_IDLE SESSION_SECRET SESSION_STORE SESSION_REDIS BODY=BODY_TEXT)

# The processes of the resource columns, by T_PROC name: PROC_PID[NAME] is an nginx master
# (PROC_NGINX[NAME] set: the figures sum its worker processes) or a Portcullis process.
declare -A PROC_PID=() PROC_NGINX=()

start_nginx() { # NAME CONF
    nginx_spawn "$1" "$2" -g 'daemon off;'
    PROC_PID[$1]=$LAST_PID
    PROC_NGINX[$1]=1
}

BACKEND_PORT=""
start_backend() {
    [[ -z "$BACKEND_PORT" ]] || return 0
    free_port BACKEND_PORT
    render "$HERE/backend.nginx.conf.tmpl" "$TMP/backend.conf"
    start_nginx backend "$TMP/backend.conf"
    wait_http backend "http://127.0.0.1:$BACKEND_PORT/__backend_status" "$LAST_PID" "$TMP/backend.error.log" ||
        die "backend failed to start"
    log "backend nginx on 127.0.0.1:$BACKEND_PORT (workers $BACKEND_WORKERS, body $BODY)"
}

# The TLS listeners' certificate, as tests/e2e/support/certs.rs makes them: a test CA and a
# leaf for TLS_NAME (EC P-256, serverAuth), under $TMP/pki.
PKI=""
make_pki() {
    [[ -z "$PKI" ]] || return 0
    local d="$TMP/pki" ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
    command -v openssl >/dev/null 2>&1 || die "openssl is needed for the TLS listeners"
    mkdir -m 700 "$d"
    printf 'extendedKeyUsage=serverAuth\nsubjectAltName=DNS:%s\n' "$TLS_NAME" >"$d/$TLS_NAME.ext"
    (
        cd "$d" &&
            timeout -k 5 30 openssl req -x509 "${ec[@]}" -keyout ca.key -out ca.crt \
                -subj "/CN=Portcullis load benchmark CA" -days 2 \
                -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign &&
            timeout -k 5 30 openssl req "${ec[@]}" -keyout "$TLS_NAME.key" -out "$TLS_NAME.csr" \
                -subj "/CN=$TLS_NAME" &&
            timeout -k 5 30 openssl x509 -req -in "$TLS_NAME.csr" -CA ca.crt -CAkey ca.key \
                -set_serial 1001 -out "$TLS_NAME.crt" -days 2 -extfile "$TLS_NAME.ext"
    ) >"$TMP/openssl.log" 2>&1 || {
        cat "$TMP/openssl.log" >&2
        die "openssl could not make the test certificates"
    }
    PKI="$d"
    log "test CA and $TLS_NAME certificate (EC P-256) made"
}

# tls_params PORT: the protocol, cipher suite and key exchange an OpenSSL client with default
# settings (like wrk) negotiates with the TLS listener on PORT, verified against the test CA.
tls_params() {
    timeout -k 2 10 openssl s_client -connect "127.0.0.1:$1" -servername "$TLS_NAME" \
        -CAfile "$PKI/ca.crt" -verify_return_error -brief </dev/null 2>&1 |
        awk -F': ' '/^(Protocol version|Ciphersuite|Server Temp Key|Verification):/ { printf "%s%s", sep, $2; sep = ", " }' ||
        true
}

PROXY_PORT=""
PROXY_TLS_PORT=""
start_nginx_proxy() {
    [[ -z "$PROXY_PORT" ]] || return 0
    start_backend
    make_pki
    free_port PROXY_PORT
    free_port PROXY_TLS_PORT
    render "$HERE/proxy.nginx.conf.tmpl" "$TMP/proxy.conf"
    start_nginx proxy "$TMP/proxy.conf"
    wait_http "nginx proxy" "http://127.0.0.1:$PROXY_PORT$PUBLIC_PATH" "$LAST_PID" "$TMP/proxy.error.log" ||
        die "nginx proxy failed to start"
    log "nginx proxy on 127.0.0.1:$PROXY_PORT, TLS on $PROXY_TLS_PORT (workers $WORKERS)"
}

# The Redis server of the portcullis-redis instance: loopback only, no persistence.
REDIS_PORT=""
redis_cli() { timeout -k 2 10 redis-cli -h 127.0.0.1 -p "$REDIS_PORT" "$@"; }
start_redis() {
    local pid i
    [[ -z "$REDIS_PORT" ]] || return 0
    command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1 ||
        die "redis-server and redis-cli are needed for portcullis-session-redis (tests/setup.sh installs them)"
    free_port REDIS_PORT
    (cd "$TMP" && exec redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
        --dir "$TMP") >"$TMP/redis.out" 2>&1 </dev/null &
    pid=$!
    PIDS+=("$pid")
    for ((i = 0; i < 300; i++)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 20 "$TMP/redis.out" >&2 2>/dev/null || true
            die "redis-server failed to start"
        fi
        [[ "$(redis_cli ping 2>/dev/null)" != PONG ]] || break
        sleep 0.1
    done
    [[ "$(redis_cli ping 2>/dev/null)" == PONG ]] || die "redis-server did not answer PING in 30s"
    log "redis-server $(redis-server --version | grep -o 'v=[^ ]*') on 127.0.0.1:$REDIS_PORT (no persistence)"
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
# With portcullis-bearer-pool, also its BEARER_POOL RS256 tokens, one a line in POOL_FILE.
TOKEN_RS256=""
TOKEN_ES256=""
POOL_FILE=""
mint_tokens() {
    local issuer="http://127.0.0.1:$BACKEND_PORT" ttl doc pool=0 n
    ttl="$(token_ttl)"
    if selected portcullis-bearer-pool; then pool="$BEARER_POOL"; fi
    node "$HERE/mint.mjs" "$issuer" "$BEARER_AUDIENCE" "$ttl" "$TMP/idp" "$pool" || die "mint.mjs failed"
    # Started by root, nginx's workers run as nobody: let them reach the two public documents
    # (the temp dir is only traversable, not listable; the tokens stay private).
    chmod 711 "$TMP"
    chmod 755 "$TMP/idp"
    chmod 644 "$TMP/idp/openid-configuration.json" "$TMP/idp/jwks.json"
    chmod 600 "$TMP/idp/"*.jwt
    TOKEN_RS256="$(<"$TMP/idp/token-rs256.jwt")"
    TOKEN_ES256="$(<"$TMP/idp/token-es256.jwt")"
    if ((pool)); then
        POOL_FILE="$TMP/idp/pool-rs256.txt"
        chmod 600 "$POOL_FILE"
        n="$(sort -u "$POOL_FILE" | grep -c .)" || true
        ((n == pool)) || die "mint.mjs wrote $n distinct pool tokens, not $pool"
        log "portcullis-bearer-pool: $pool distinct RS256 tokens minted"
    fi
    doc="$(curl -sf --max-time 2 "$issuer/.well-known/openid-configuration")" ||
        die "the backend does not serve the discovery document"
    [[ "$doc" == *"\"issuer\": \"$issuer\""* ]] || die "served discovery document has the wrong issuer: $doc"
    curl -sf --max-time 2 -o /dev/null "$issuer/jwks.json" || die "the backend does not serve jwks.json"
    log "provider bench: issuer $issuer, JWKS on the backend, tokens valid ${ttl}s"
}

# The session targets' provider: the test OpenID Provider, which knows the callbacks of both
# instances (so GATEWAY_PORT and REDIS_GATEWAY_PORT are chosen first). Prints `READY <issuer>`
# once it serves.
IDP_KEYS=""
SESSION_TTL=""
SESSION_IDLE=""
start_idp() {
    [[ -z "$IDP_PID" ]] || return 0
    [[ -n "$GATEWAY_PORT" && -n "$REDIS_GATEWAY_PORT" ]] || die "start_idp needs GATEWAY_PORT and REDIS_GATEWAY_PORT"
    IDP_KEYS="$ROOT/tests/idp/keys/primary.json"
    SESSION_TTL="$(token_ttl)"
    # sessions.idle_timeout and lifetime (seconds): the gateway touches a session every
    # idle_timeout / 8 = SESSION_TTL, i.e. never during this invocation.
    SESSION_IDLE=$((8 * SESSION_TTL))
    render "$HERE/idp.json.tmpl" "$TMP/idp.json"
    # shellcheck disable=SC2119 # any issuer: the IdP picks its port
    idp_spawn || die "the test IdP failed to start"
    log "test IdP (session provider) at $IDP_ISSUER, tokens valid ${SESSION_TTL}s"
}

# run_portcullis INSTANCE GATEWAY_PORT GATEWAY_TLS_PORT ADMIN_PORT STORE: renders
# portcullis.yaml.tmpl into $TMP/INSTANCE.yaml (the arguments shadow the globals of the same
# name while it renders), checks it and starts that instance (log $TMP/INSTANCE.err) until its
# /readyz is 200, i.e. both providers' keys are fetched (backend, test IdP) and, with
# `store: redis`, Redis answers.
run_portcullis() {
    local INSTANCE="$1" GATEWAY_PORT="$2" GATEWAY_TLS_PORT="$3" ADMIN_PORT="$4" SESSION_STORE="$5"
    local SESSION_REDIS conf="$TMP/$1.yaml"
    case "$SESSION_STORE" in
        cookie) SESSION_REDIS="# cookie store: no redis block" ;;
        redis) SESSION_REDIS="redis: {url: \"redis://127.0.0.1:$REDIS_PORT\", timeout: 500ms}" ;;
        *) die "run_portcullis: unknown store $SESSION_STORE" ;;
    esac
    render "$HERE/portcullis.yaml.tmpl" "$conf"
    # ACCESS_LOG=stdout measures the gateway with its JSON access log on (discarded);
    # the default `off` matches the nginx proxy's `access_log off`.
    portcullis_spawn "$INSTANCE" "$conf" "$ADMIN_PORT"
    PROC_PID[$INSTANCE]=$LAST_PID
    log "$INSTANCE on 127.0.0.1:$GATEWAY_PORT, TLS $GATEWAY_TLS_PORT, admin $ADMIN_PORT (sessions: $SESSION_STORE, threads $WORKERS, $PORTCULLIS)"
}

GATEWAY_PORT=""
GATEWAY_TLS_PORT=""
ADMIN_PORT=""
REDIS_GATEWAY_PORT=""
SESSION_SECRET=""
start_portcullis() {
    [[ -z "$GATEWAY_PORT" ]] || return 0
    start_backend
    run_setup # Node.js and jose for mint.mjs
    portcullis_bin release-lto
    mint_tokens
    make_pki
    free_port GATEWAY_PORT
    free_port GATEWAY_TLS_PORT
    free_port ADMIN_PORT
    # The portcullis-redis instance's port, chosen now (whether or not it runs) so that the
    # test IdP knows its callback too.
    free_port REDIS_GATEWAY_PORT
    start_idp
    # A fresh random session secret per run (32 bytes, base64); the rendered configs are private.
    SESSION_SECRET="$(head -c 32 /dev/urandom | base64 -w0)"
    run_portcullis portcullis "$GATEWAY_PORT" "$GATEWAY_TLS_PORT" "$ADMIN_PORT" cookie
}

# The second instance, for portcullis-session-redis: the same config with `store: redis`.
REDIS_GATEWAY_TLS_PORT=""
REDIS_ADMIN_PORT=""
start_portcullis_redis() {
    [[ -z "$REDIS_ADMIN_PORT" ]] || return 0
    start_portcullis # the binary, the tokens, the certificate and the test IdP
    [[ -n "$IDP_PID" ]] || die "the test IdP is no longer running; cannot start portcullis-redis"
    start_redis
    free_port REDIS_GATEWAY_TLS_PORT
    free_port REDIS_ADMIN_PORT
    run_portcullis portcullis-redis "$REDIS_GATEWAY_PORT" "$REDIS_GATEWAY_TLS_PORT" "$REDIS_ADMIN_PORT" redis
}

# ---------------------------------------------------------------- targets

# Each sets T_URL (required) and optionally the other fields below (see the header). Every
# target is set up before the first is measured; TARGET_TABLE["TARGET FIELD"] keeps what each
# set (an array one element a line).
T_SCALARS=(T_URL T_NOAUTH_STATUS T_SANITY_URL T_BASELINE T_CONNECTIONS T_NEWCONN T_PROC T_WRK_SCRIPT
    T_TOKEN_CACHE T_MIN_MISSES)
T_ARRAYS=(T_HEADERS T_CURL_ARGS T_WRK_SCRIPT_ARGS)
declare -A TARGET_TABLE=()
target_setup() { # TARGET: runs its function with every field empty, then saves the fields
    local f ref
    for f in "${T_SCALARS[@]}"; do printf -v "$f" '%s' ""; done
    for f in "${T_ARRAYS[@]}"; do mapfile -t "$f" </dev/null; done
    "$(target_fn "$1")"
    [[ -n "$T_URL" ]] || die "target $1 set no T_URL"
    for f in "${T_SCALARS[@]}"; do TARGET_TABLE["$1 $f"]="${!f}"; done
    for f in "${T_ARRAYS[@]}"; do
        ref="${f}[@]"
        TARGET_TABLE["$1 $f"]="$(printf '%s\n' "${!ref}")"
    done
}
target_load() { # TARGET: sets the fields to what target_setup saved
    local f
    for f in "${T_SCALARS[@]}"; do printf -v "$f" '%s' "${TARGET_TABLE["$1 $f"]}"; done
    for f in "${T_ARRAYS[@]}"; do
        if [[ -z "${TARGET_TABLE["$1 $f"]}" ]]; then
            mapfile -t "$f" </dev/null
        else
            mapfile -t "$f" <<<"${TARGET_TABLE["$1 $f"]}"
        fi
    done
}

# The bare loop (target bare-loop): a bench binary, built once with the gateway's profile.
BARE=""
BARE_PORT=""
bare_loop_bin() { # sets BARE
    [[ -z "$BARE" ]] || return 0
    if [[ -n "${BARE_LOOP_BIN:-}" ]]; then
        [[ -x "$BARE_LOOP_BIN" ]] || die "BARE_LOOP_BIN=$BARE_LOOP_BIN is not executable"
        BARE="$BARE_LOOP_BIN"
        return
    fi
    log "cargo build --profile release-lto --bench bare_loop"
    BARE="$(cd "$ROOT" && cargo build --profile release-lto --bench bare_loop --message-format=json 2>/dev/null |
        sed -n 's/.*"executable":"\([^"]*bare_loop[^"]*\)".*/\1/p' | tail -n 1)"
    [[ -x "$BARE" ]] || die "building the bare loop failed"
}

start_bare_loop() {
    [[ -z "$BARE_PORT" ]] || return 0
    start_backend
    bare_loop_bin
    free_port BARE_PORT
    # TMPDIR: its pid file and upgrade socket go under the run's directory.
    TMPDIR="$TMP" "$BARE" "127.0.0.1:$BARE_PORT" "127.0.0.1:$BACKEND_PORT" "$WORKERS" \
        >"$TMP/bare.out" 2>&1 </dev/null &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
    PROC_PID[bare]=$LAST_PID
    wait_http "bare loop" "http://127.0.0.1:$BARE_PORT$PUBLIC_PATH" "$LAST_PID" "$TMP/bare.out" ||
        die "bare loop failed to start"
    log "bare loop on 127.0.0.1:$BARE_PORT (shards $WORKERS)"
}

target_bare_loop() {
    start_bare_loop
    T_URL="http://127.0.0.1:$BARE_PORT$PUBLIC_PATH"
    T_PROC=bare
}

target_backend() {
    start_backend
    T_URL="http://127.0.0.1:$BACKEND_PORT$PUBLIC_PATH"
    T_PROC=backend
}

target_nginx() {
    start_nginx_proxy
    T_URL="http://127.0.0.1:$PROXY_PORT$PUBLIC_PATH"
    T_PROC=proxy
}

target_portcullis_public() {
    start_portcullis
    T_URL="http://127.0.0.1:$GATEWAY_PORT$PUBLIC_PATH"
    T_PROC=portcullis
}

target_portcullis_bearer_rs256() {
    start_portcullis
    T_URL="http://127.0.0.1:$GATEWAY_PORT$BEARER_RS_PATH"
    T_HEADERS=("Authorization: Bearer $TOKEN_RS256")
    T_NOAUTH_STATUS=401
    T_PROC=portcullis
    T_TOKEN_CACHE="$ADMIN_PORT"
}

target_portcullis_bearer_es256() {
    start_portcullis
    T_URL="http://127.0.0.1:$GATEWAY_PORT$BEARER_ES_PATH"
    T_HEADERS=("Authorization: Bearer $TOKEN_ES256")
    T_NOAUTH_STATUS=401
    T_PROC=portcullis
    T_TOKEN_CACHE="$ADMIN_PORT"
}

# The RS256 route; the sanity check sends the pool's first token, wrk (bearer_pool.wrk.lua) each
# token in turn, replacing the -H Authorization of T_HEADERS.
target_portcullis_bearer_pool() {
    start_portcullis
    [[ -n "$POOL_FILE" ]] || die "no token pool was minted"
    T_URL="http://127.0.0.1:$GATEWAY_PORT$BEARER_RS_PATH"
    T_HEADERS=("Authorization: Bearer $(head -n 1 "$POOL_FILE")")
    T_NOAUTH_STATUS=401
    T_PROC=portcullis
    T_WRK_SCRIPT="$HERE/bearer_pool.wrk.lua"
    T_WRK_SCRIPT_ARGS=("$POOL_FILE" "$THREADS")
    T_TOKEN_CACHE="$ADMIN_PORT"
    T_MIN_MISSES=$((BEARER_POOL - 1))
}

SESSION_COOKIE=""
target_portcullis_session() {
    start_portcullis
    T_URL="http://127.0.0.1:$GATEWAY_PORT$SESSION_PATH"
    [[ -n "$SESSION_COOKIE" ]] || sign_in SESSION_COOKIE "$T_URL" "$TMP/portcullis.err"
    T_HEADERS=("Cookie: $SESSION_COOKIE")
    T_NOAUTH_STATUS=401
    T_PROC=portcullis
}

REDIS_SESSION_COOKIE=""
target_portcullis_session_redis() {
    local keys
    start_portcullis_redis
    T_URL="http://127.0.0.1:$REDIS_GATEWAY_PORT$SESSION_PATH"
    if [[ -z "$REDIS_SESSION_COOKIE" ]]; then
        sign_in REDIS_SESSION_COOKIE "$T_URL" "$TMP/portcullis-redis.err"
        # The cookie is only a ticket (an id and a key); the session is in Redis, once.
        ((${#REDIS_SESSION_COOKIE} < 300)) ||
            die "portcullis-redis: the session Cookie header is ${#REDIS_SESSION_COOKIE} bytes, not a small ticket (< 300)"
        keys="$(redis_cli --scan --pattern 'portcullis:s:*' | wc -l)" || die "redis-cli --scan failed"
        ((keys == 1)) || die "portcullis-redis: Redis holds $keys portcullis:s:* keys after one sign-in, not 1"
        log "portcullis-redis: session ticket cookie ${#REDIS_SESSION_COOKIE} bytes, 1 session in Redis ($(redis_cli dbsize) keys in all)"
    fi
    T_HEADERS=("Cookie: $REDIS_SESSION_COOKIE")
    T_NOAUTH_STATUS=401
    T_PROC=portcullis-redis
}

# tls_target PORT: the settings common to the TLS targets on the listener at PORT.
tls_target() {
    T_URL="https://127.0.0.1:$1$PUBLIC_PATH"
    T_SANITY_URL="https://$TLS_NAME:$1$PUBLIC_PATH"
    # HTTP/1.1 like wrk (curl would otherwise negotiate h2 by ALPN).
    T_CURL_ARGS=(--http1.1 --cacert "$PKI/ca.crt" --resolve "$TLS_NAME:$1:127.0.0.1")
    log "TLS on 127.0.0.1:$1: $(tls_params "$1")"
}

# newconn_target BASELINE: what turns a TLS target into its -newconn variant.
newconn_target() {
    T_HEADERS=("Connection: close")
    T_CONNECTIONS="$NEWCONN_CONNECTIONS"
    T_NEWCONN=1
    T_BASELINE="$1"
}

target_nginx_tls() {
    start_nginx_proxy
    tls_target "$PROXY_TLS_PORT"
    T_BASELINE=nginx-tls
    T_PROC=proxy
}

target_portcullis_tls() {
    start_portcullis
    tls_target "$GATEWAY_TLS_PORT"
    T_BASELINE=nginx-tls
    T_PROC=portcullis
}

target_nginx_tls_newconn() {
    start_nginx_proxy
    tls_target "$PROXY_TLS_PORT"
    newconn_target nginx-tls-newconn
    T_PROC=proxy
}

target_portcullis_tls_newconn() {
    start_portcullis
    tls_target "$GATEWAY_TLS_PORT"
    newconn_target nginx-tls-newconn
    T_PROC=portcullis
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
run_wrk() {
    local outf="$1" limit="$2" rc=0 pid
    shift 2
    timeout -k 5 "$limit" wrk "$@" >"$outf" 2>&1 </dev/null &
    pid=$!
    PIDS+=("$pid")
    wait "$pid" || rc=$?
    forget_pid "$pid"
    return "$rc"
}

# Connections the kernel accepted so far, machine-wide (Tcp PassiveOpens of /proc/net/snmp).
passive_opens() {
    awk '$1 == "Tcp:" { if (!col) { for (i = 2; i <= NF; i++) if ($i == "PassiveOpens") col = i } else { print $col; exit } }' \
        /proc/net/snmp 2>/dev/null || true
}

# proc_pids NAME: the PIDs the resource columns of T_PROC=NAME sum over, one a line (an nginx's
# worker processes, or a Portcullis process); fails if there are none.
proc_pids() {
    local pid="${PROC_PID[$1]:-}"
    [[ -n "$pid" ]] || return 1
    if [[ -n "${PROC_NGINX[$1]:-}" ]]; then
        pgrep -P "$pid" -f '^nginx: worker process'
    else
        kill -0 "$pid" 2>/dev/null && echo "$pid"
    fi
}

# proc_sample PID...: "UTIME STIME VOLUNTARY NONVOLUNTARY RSS_KB THREADS" so far, summed over the
# processes (CPU times in clock ticks, context switches over every thread); fails if one is gone.
proc_sample() {
    local pid
    for pid in "$@"; do [[ -r "/proc/$pid/stat" ]] || return 1; done
    for pid in "$@"; do
        # The fields after "PID (COMM) ", which starts at field 3: utime and stime are 14 and 15.
        printf 'stat %s\n' "$(sed 's/^.*) //' "/proc/$pid/stat")"
        grep '^VmRSS:' "/proc/$pid/status"
        cat "/proc/$pid/task/"*/status 2>/dev/null |
            grep -e '^voluntary_ctxt_switches:' -e '^nonvoluntary_ctxt_switches:'
    done | awk '
        $1 == "stat" { ut += $13; st += $14 }
        $1 == "VmRSS:" { rss += $2 }
        $1 == "voluntary_ctxt_switches:" { v += $2; threads++ }
        $1 == "nonvoluntary_ctxt_switches:" { nv += $2 }
        END { printf "%d %d %d %d %d %d\n", ut, st, v, nv, rss, threads }'
}
CLK_TCK="$(getconf CLK_TCK 2>/dev/null || echo 100)"

# token_cache ADMIN_PORT: "HITS MISSES" of that instance's verified-token cache so far.
token_cache() {
    admin_metrics "$1" | awk '
        /^portcullis_token_cache_total[{].*result="hit"/ { h = $NF }
        /^portcullis_token_cache_total[{].*result="miss"/ { m = $NF }
        END { printf "%d %d\n", h, m }'
}

declare -A R_URL R_RPS R_P50 R_P99 R_REQ R_NON2XX R_ERR R_CONNS R_OK R_BASE R_WRKCONNS R_NEWCONN R_OPENS
declare -A R_PROC R_NPROC R_THREADS R_USR R_SYS R_CPU R_VCS R_IVCS R_RSS
FAILED=0

measure() { # TARGET
    local t="$1" hdr_args=() curl_hdr=() h code out parsed a0 a1 o0 o1 pids=() pids1=() p0="" p1="" c0 c1 c2
    local sanity_url="${T_SANITY_URL:-$T_URL}" conns="${T_CONNECTIONS:-$CONNECTIONS}" script=() script_args=()
    for h in "${T_HEADERS[@]}"; do hdr_args+=(-H "$h"); curl_hdr+=(-H "$h"); done
    if [[ -n "$T_WRK_SCRIPT" ]]; then
        script=(-s "$T_WRK_SCRIPT")
        script_args=(-- "${T_WRK_SCRIPT_ARGS[@]}")
    fi
    R_URL[$t]="$T_URL"
    R_OK[$t]=false
    R_BASE[$t]="${T_BASELINE:-nginx}"
    R_WRKCONNS[$t]="$conns"
    R_NEWCONN[$t]="$([[ -n "$T_NEWCONN" ]] && echo true || echo false)"

    code="$(curl -s -o "$TMP/sanity.body" -D "$TMP/sanity.headers" -w '%{http_code}' --max-time 5 \
        "${T_CURL_ARGS[@]}" "${curl_hdr[@]}" "$sanity_url" || true)"
    if [[ "$code" != 200 ]]; then
        log "$t: sanity request to $sanity_url returned HTTP $code:"
        head -c 500 "$TMP/sanity.body" >&2 2>/dev/null || true
        echo >&2
        FAILED=1
        return
    fi
    # wrk never stores cookies: a response setting one (a session re-sealed on every request)
    # would make the run measure something else than the target says.
    if grep -qi '^set-cookie:' "$TMP/sanity.headers"; then
        log "$t: sanity response to $sanity_url sets a cookie:"
        grep -i '^set-cookie:' "$TMP/sanity.headers" | cut -c 1-120 >&2
        FAILED=1
        return
    fi
    # A -newconn run is only one if the server says it closes the connection (wrk reconnects on
    # that; a server closing without saying so would show as socket errors).
    if [[ -n "$T_NEWCONN" ]] && ! grep -qi '^connection: *close' "$TMP/sanity.headers"; then
        log "$t: the response to a Connection: close request does not say Connection: close"
        FAILED=1
        return
    fi
    log "$t: sanity request OK ($(wc -c <"$TMP/sanity.body") byte body)"
    if [[ -n "$T_NOAUTH_STATUS" ]]; then
        code="$(curl -s -o "$TMP/sanity.body" -w '%{http_code}' --max-time 5 "${T_CURL_ARGS[@]}" "$sanity_url" || true)"
        if [[ "$code" != "$T_NOAUTH_STATUS" ]]; then
            log "$t: request without its headers to $sanity_url returned HTTP $code, not $T_NOAUTH_STATUS:"
            head -c 500 "$TMP/sanity.body" >&2 2>/dev/null || true
            echo >&2
            FAILED=1
            return
        fi
        log "$t: request without its headers refused as expected (HTTP $code)"
    fi

    [[ -z "$T_TOKEN_CACHE" ]] || c0="$(token_cache "$T_TOKEN_CACHE")"
    if ((WARMUP_S > 0)); then
        run_wrk /dev/null "$((WARMUP_S + 30))" -t "$THREADS" -c "$conns" -d "$WARMUP" --timeout 5s \
            "${hdr_args[@]}" "${script[@]}" "$T_URL" "${script_args[@]}" || true
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
    [[ -z "$T_WRK_SCRIPT" ]] || shown+=(-s "${T_WRK_SCRIPT##*/}")
    log "$t: wrk --latency -t $THREADS -c $conns -d $DURATION --timeout 5s ${shown[*]:+${shown[*]} }$T_URL${script_args[*]:+ ${script_args[*]}}"
    [[ -z "$T_TOKEN_CACHE" ]] || c1="$(token_cache "$T_TOKEN_CACHE")"
    [[ -z "$T_PROC" ]] || mapfile -t pids < <(proc_pids "$T_PROC" || true)
    a0="$(backend_accepts)"
    o0="$(passive_opens)"
    # The resource counters are read last before the run and first after it, so that nothing
    # but wrk's load falls between (not the backend status requests of the backend row).
    ((${#pids[@]} == 0)) || p0="$(proc_sample "${pids[@]}" || true)"
    if ! run_wrk "$TMP/wrk.out" "$((DURATION_S + 30))" --latency -t "$THREADS" -c "$conns" -d "$DURATION" \
        --timeout 5s "${hdr_args[@]}" "${script[@]}" "$T_URL" "${script_args[@]}"; then
        log "$t: wrk failed or timed out:"
        cat "$TMP/wrk.out" >&2
        FAILED=1
        return
    fi
    [[ -z "$p0" ]] || p1="$(proc_sample "${pids[@]}" || true)"
    out="$(<"$TMP/wrk.out")"
    o1="$(passive_opens)"
    a1="$(backend_accepts)"
    [[ -z "$T_TOKEN_CACHE" ]] || c2="$(token_cache "$T_TOKEN_CACHE")"
    [[ -z "$T_PROC" ]] || mapfile -t pids1 < <(proc_pids "$T_PROC" || true)
    [[ -z "$o0" || -z "$o1" ]] || R_OPENS[$t]=$((o1 - o0))
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
    if [[ -n "$T_PROC" ]]; then
        R_PROC[$t]="$T_PROC"
        if [[ -z "$p0" || -z "$p1" || "${pids[*]}" != "${pids1[*]}" ]]; then
            log "$t: no resource figures: the $T_PROC processes were '${pids[*]}' before the run, '${pids1[*]}' after"
        elif ((req > 0)); then
            local usr sys cpu vcs ivcs rss
            read -r usr sys cpu vcs ivcs rss < <(awk -v a="$p0" -v b="$p1" -v n="$req" -v hz="$CLK_TCK" 'BEGIN {
                split(a, x, " "); split(b, y, " "); us = 1e6 / hz / n
                printf "%.2f %.2f %.3f %.3f %.3f %.1f\n", (y[1] - x[1]) * us, (y[2] - x[2]) * us,
                    (y[1] - x[1] + y[2] - x[2]) * us, (y[3] - x[3]) / n, (y[4] - x[4]) / n, y[5] / 1024 }')
            R_USR[$t]="$usr" R_SYS[$t]="$sys" R_CPU[$t]="$cpu" R_VCS[$t]="$vcs" R_IVCS[$t]="$ivcs" R_RSS[$t]="$rss"
            R_NPROC[$t]="${#pids[@]}"
            R_THREADS[$t]="$(awk '{ print $6 }' <<<"$p1")"
            log "$t: $T_PROC (${#pids[@]} process(es), ${R_THREADS[$t]} threads): usr $usr sys $sys µs/req, cs/req $vcs voluntary $ivcs involuntary, RSS $rss MiB"
        fi
    fi
    if [[ -n "$T_TOKEN_CACHE" ]]; then
        local h0 m0 h1 m1 h2 m2
        read -r h0 m0 <<<"$c0"
        read -r h1 m1 <<<"$c1"
        read -r h2 m2 <<<"$c2"
        log "$t: token cache lookups: warm-up $((h1 - h0)) hits $((m1 - m0)) misses, run $((h2 - h1)) hits $((m2 - m1)) misses"
        if [[ -n "$T_MIN_MISSES" ]] && ((m2 - m0 < T_MIN_MISSES)); then
            log "$t: FAILED run: $((m2 - m0)) token cache misses during the warm-up and the run, fewer than $T_MIN_MISSES (distinct tokens sent)"
            FAILED=1
            return
        fi
    fi
    if ((non2xx != 0 || err != 0 || req == 0)); then
        log "$t: FAILED run (non-2xx/3xx: $non2xx, socket errors: $err, requests: $req):"
        printf '%s\n' "$out" >&2
        FAILED=1
        return
    fi
    if [[ -n "$T_NEWCONN" ]]; then
        # Machine-wide, so other activity can only add: fewer accepts than requests means
        # connections were reused.
        if [[ -z "${R_OPENS[$t]:-}" ]] || ((R_OPENS[$t] < req)); then
            log "$t: FAILED run: the kernel accepted ${R_OPENS[$t]:-?} TCP connections for $req requests (one each expected)"
            FAILED=1
            return
        fi
        log "$t: $req requests, ${R_OPENS[$t]} TCP connections accepted (machine-wide) during the run"
    fi
    R_OK[$t]=true
}

# ---------------------------------------------------------------- main

for t in "${TARGET_LIST[@]}"; do
    [[ "$(type -t "$(target_fn "$t")")" == function ]] || die "unknown target '$t'"
done

ensure_deps

for t in "${TARGET_LIST[@]}"; do target_setup "$t"; done
# The test IdP was needed for start-up and sign-in only.
if [[ -n "$IDP_PID" ]]; then
    stop_idp
    log "test IdP stopped: no IdP process runs during the load"
fi
REDIS_PUTS_BEFORE=""
if [[ -n "$REDIS_ADMIN_PORT" ]]; then
    REDIS_PUTS_BEFORE="$(admin_metrics "$REDIS_ADMIN_PORT" |
        awk '/^portcullis_session_store_latency_seconds_count[{].*op="put"/ { n += $NF } END { print n + 0 }')"
fi

for t in "${TARGET_LIST[@]}"; do
    target_load "$t"
    measure "$t"
done

# How the bearer requests were answered: misses should be about one per token (the sanity
# request), everything else hits.
if [[ -n "$GATEWAY_PORT" ]]; then
    cache="$(admin_metrics "$ADMIN_PORT" |
        awk '/^portcullis_token_cache_total[{]/ { printf "%s%s", sep, $0; sep = ", " }' || true)"
    [[ -z "$cache" ]] || log "token cache: $cache"
fi
# The session targets measure reads of a session that needs no refresh: a refresh during
# the run (the provider is stopped, so each attempt would fail and be retried) voids it.
# void_target TARGET REASON
void_target() {
    log "$2: the $1 figures are void"
    [[ -z "${R_OK[$1]:-}" ]] || R_OK[$1]=false
    FAILED=1
}
for inst in portcullis:"$ADMIN_PORT":portcullis-session portcullis-redis:"$REDIS_ADMIN_PORT":portcullis-session-redis; do
    IFS=: read -r name port target <<<"$inst"
    [[ -n "$port" ]] || continue
    metrics="$(admin_metrics "$port")"
    refreshes="$(awk '/^portcullis_session_refreshes_total[{]/ { n += $NF } END { print n + 0 }' <<<"$metrics")"
    [[ "$refreshes" == 0 ]] || void_target "$target" "$name refreshed sessions $refreshes time(s) during the runs"
done
# The Redis store: about one `get` per request of portcullis-session-redis, and nothing else
# but the sign-in's writes (a `put` during the runs would be a touch or a refresh) and the
# gateway's health pings; no error.
if [[ -n "$REDIS_ADMIN_PORT" ]]; then
    metrics="$(admin_metrics "$REDIS_ADMIN_PORT")"
    ops="$(awk '/^portcullis_session_store_latency_seconds_count[{]/ {
            op = $0; sub(/.*op="/, "", op); sub(/".*/, "", op); printf "%s%s %s", sep, op, $NF; sep = ", " }' <<<"$metrics")"
    errors="$(awk '/^portcullis_session_store_errors_total[{]/ { n += $NF } END { print n + 0 }' <<<"$metrics")"
    puts="$(awk '/^portcullis_session_store_latency_seconds_count[{].*op="put"/ { n += $NF } END { print n + 0 }' <<<"$metrics")"
    log "portcullis-redis session store calls: ${ops:-none}; errors: $errors (puts before the runs: $REDIS_PUTS_BEFORE)"
    [[ "$errors" == 0 ]] || void_target portcullis-session-redis "the Redis store failed $errors time(s)"
    [[ "$puts" == "$REDIS_PUTS_BEFORE" ]] ||
        void_target portcullis-session-redis "portcullis-redis wrote sessions $((puts - REDIS_PUTS_BEFORE)) time(s) during the runs"
fi

ratio() { # TARGET -> ratio of its rps to its baseline's (nginx, or the nginx TLS row of its mode), or empty
    local b="${R_BASE[$1]:-nginx}"
    [[ "${R_OK[$b]:-false}" == true && "${R_OK[$1]:-false}" == true && -n "${R_RPS[$b]:-}" ]] || return 0
    awk -v a="${R_RPS[$1]}" -v b="${R_RPS[$b]}" 'BEGIN { if (b > 0) printf "%.2f", a / b }'
}

cpu_ratio() { # TARGET -> ratio of its (usr + sys) µs/req to its baseline's (as ratio), or empty
    local b="${R_BASE[$1]:-nginx}"
    [[ "${R_OK[$b]:-false}" == true && "${R_OK[$1]:-false}" == true && -n "${R_CPU[$b]:-}" && -n "${R_CPU[$1]:-}" ]] ||
        return 0
    awk -v a="${R_CPU[$1]}" -v b="${R_CPU[$b]}" 'BEGIN { if (b > 0) printf "%.2f", a / b }'
}

git_rev="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo none)"
cpus="$(nproc 2>/dev/null || echo '?')"

{
    # rev is this checkout's; the binary (PORTCULLIS_BIN) may have been built from another one.
    printf '\nPortcullis load benchmark: wrk -t %s -c %s -d %s (warm-up %s), workers %s, backend workers %s, body %s, %s CPUs, rev %s%s\n\n' \
        "$THREADS" "$CONNECTIONS" "$DURATION" "$WARMUP" "$WORKERS" "$BACKEND_WORKERS" "$BODY" "$cpus" "$git_rev" \
        "${PORTCULLIS:+, binary $PORTCULLIS}"
    w=20
    for t in "${TARGET_LIST[@]}"; do ((${#t} <= w)) || w=${#t}; done
    # printf pads by bytes: the two "µs" headers get one more for their two-byte µ.
    printf '%-*s %12s %9s %9s %7s %9s  %-*s %6s %14s %12s %12s %8s %8s %8s\n' "$w" target rps "p50 ms" \
        "p99 ms" ratio "cpu ratio" "$w" vs conns "backend conns" "usr µs/req" "sys µs/req" vcs/req ivcs/req \
        "RSS MiB"
    for t in "${TARGET_LIST[@]}"; do
        if [[ "${R_OK[$t]:-false}" == true ]]; then
            r="$(ratio "$t")"
            c="$(cpu_ratio "$t")"
            printf '%-*s %12s %9s %9s %7s %9s  %-*s %6s %14s %11s %11s %8s %8s %8s\n' "$w" "$t" "${R_RPS[$t]}" \
                "${R_P50[$t]}" "${R_P99[$t]}" "${r:+${r}x}" "${c:+${c}x}" "$w" "${R_BASE[$t]}" \
                "${R_WRKCONNS[$t]}$([[ "${R_NEWCONN[$t]}" != true ]] || echo '*')" "${R_CONNS[$t]:--}" \
                "${R_USR[$t]:--}" "${R_SYS[$t]:--}" "${R_VCS[$t]:--}" "${R_IVCS[$t]:--}" "${R_RSS[$t]:--}"
        else
            printf '%-*s %12s\n' "$w" "$t" FAILED
        fi
    done
    printf '\nratio: rps / rps of the row named in "vs" (nginx; the nginx TLS row of the same mode for TLS rows).\n'
    printf 'cpu ratio: (usr + sys) µs/req / that of the row named in "vs".\n'
    printf 'conns: wrk connections; * = Connection: close, a new connection (and TLS handshake) per request.\n'
    printf 'usr, sys µs/req: CPU time per request in user, kernel mode; vcs, ivcs/req: voluntary, involuntary\n'
    printf 'context switches per request; RSS MiB: resident memory at the end of the run. All of them over\n'
    printf 'the measured run, for the server of the row: nginx workers, the Portcullis process, backend workers.\n\n'
}

json_num() { if [[ -n "${1:-}" ]]; then printf '%s' "$1"; else printf 'null'; fi; }
json() {
    local first=1 t
    printf '{"duration":"%s","warmup":"%s","connections":%s,"wrk_threads":%s,"workers":%s,' \
        "$DURATION" "$WARMUP" "$CONNECTIONS" "$THREADS" "$WORKERS"
    printf '"backend_workers":%s,"body":"%s","cpus":"%s","rev":"%s","portcullis_bin":%s,"clk_tck":%s,"bearer_pool":%s,"results":[' \
        "$BACKEND_WORKERS" "$BODY" "$cpus" "$git_rev" \
        "$(if [[ -n "$PORTCULLIS" ]]; then printf '"%s"' "$PORTCULLIS"; else printf 'null'; fi)" "$CLK_TCK" "$BEARER_POOL"
    for t in "${TARGET_LIST[@]}"; do
        ((first)) || printf ','
        first=0
        # ratio_vs_nginx is against ratio_baseline: nginx, or the nginx TLS row of the same mode.
        printf '{"target":"%s","url":"%s","ok":%s,"rps":%s,"p50_ms":%s,"p99_ms":%s,"ratio_vs_nginx":%s,"ratio_baseline":"%s","connections":%s,"connection_close":%s,"requests":%s,"non_2xx_3xx":%s,"socket_errors":%s,"backend_conns":%s' \
            "$t" "${R_URL[$t]:-}" "${R_OK[$t]:-false}" "$(json_num "${R_RPS[$t]:-}")" \
            "$(json_num "${R_P50[$t]:-}")" "$(json_num "${R_P99[$t]:-}")" "$(json_num "$(ratio "$t")")" \
            "${R_BASE[$t]:-nginx}" "$(json_num "${R_WRKCONNS[$t]:-}")" "${R_NEWCONN[$t]:-false}" \
            "$(json_num "${R_REQ[$t]:-}")" "$(json_num "${R_NON2XX[$t]:-}")" "$(json_num "${R_ERR[$t]:-}")" \
            "$(json_num "${R_CONNS[$t]:-}")"
        # The resource figures of the processes named by "proc" (see the header); the CPU ratio is
        # against ratio_baseline too.
        printf ',"proc":%s,"proc_processes":%s,"proc_threads":%s,"cpu_user_us_per_req":%s,"cpu_sys_us_per_req":%s,"cpu_us_per_req":%s,"cpu_ratio_vs_nginx":%s,"ctx_switches_voluntary_per_req":%s,"ctx_switches_involuntary_per_req":%s,"rss_mib":%s}' \
            "$(if [[ -n "${R_PROC[$t]:-}" ]]; then printf '"%s"' "${R_PROC[$t]}"; else printf 'null'; fi)" \
            "$(json_num "${R_NPROC[$t]:-}")" "$(json_num "${R_THREADS[$t]:-}")" "$(json_num "${R_USR[$t]:-}")" \
            "$(json_num "${R_SYS[$t]:-}")" "$(json_num "${R_CPU[$t]:-}")" "$(json_num "$(cpu_ratio "$t")")" \
            "$(json_num "${R_VCS[$t]:-}")" "$(json_num "${R_IVCS[$t]:-}")" "$(json_num "${R_RSS[$t]:-}")"
    done
    printf ']}\n'
}
JSON="$(json)"
printf '%s\n' "$JSON"
[[ -z "$OUT" ]] || printf '%s\n' "$JSON" >"$OUT"

exit "$FAILED"
