#!/usr/bin/env bash
# Bounded soak of the Portcullis gateway: a few minutes of mixed traffic with injected faults,
# watching for errors and for memory or file-descriptor growth.
#
# Starts, on 127.0.0.1 only and under a private temp dir (removed on exit):
#   - two backends (Debian's nginx, one process each, soak.backend.nginx.conf.tmpl) behind one
#     upstream of two targets, and a third (`big`, route /big) for the attack phase's 16 MiB answer,
#   - the test OpenID Provider (tests/idp/server.mjs, soak.idp.json.tmpl) on a fixed port,
#   - a release build of Portcullis (`cargo build --release --bin portcullis`, or PORTCULLIS_BIN)
#     with soak.portcullis.yaml.tmpl: routes /public (public), /bearer (bearer, provider idp),
#     /session (cookie session, provider idp) and /reload-a|b (moved by every reload).
# Bearer tokens are minted per run by mint.mjs with the provider's own test keys (issuer = the
# test provider); the session cookie comes from a real sign-in (session_cookie.py). The session
# secret and the client secret are random per run.
#
# Traffic, for SOAK_SECONDS:
#   public, bearer, session  one wrk each (soak.wrk.lua): SOAK_CONNECTIONS connections, each
#                            pausing SOAK_DELAY_MS before every request (a moderate, paced rate);
#                            every answer must be 2xx.
#   refused                  a trickle (one curl every ~0.25 s) of requests that must be refused
#                            with 401: bearer route without token, with a non-JWT, with a tampered
#                            signature, with an unknown kid, with another audience; session route
#                            without cookie and with a forged cookie.
#   fresh-bearer             a valid token never seen before, every T/(2*SOAK_FRESH_MINTS+1) s
#                            (from the same loop): wrk's token is answered from the gateway's
#                            verified-token cache after its first request, these need the cached
#                            keys (also while the provider is down); 2xx required.
#   oversized                one burst (see the schedule): a 40 KB header, 120 headers, a 20 KB
#                            cookie (431 expected each) and a 10 KB target (414 expected).
# Faults, at fractions of SOAK_SECONDS (T; figures for the default 180 s):
#   every SOAK_RELOAD_EVERY s (15)  SIGHUP with the config re-rendered (route reload-a <-> reload-b);
#                                   the probe then requires the new path 200 and the old one 404
#                                   within 5 s (an unapplied reload is an unexpected error)
#   5T/18 (50 s), for 20 s          backend 2 SIGKILLed, then restarted on its port
#   T/2 (90 s), for 20 s            the OpenID Provider stopped (SIGTERM), then restarted on its port:
#                                   cached keys and cookie sessions must keep working
#   13T/18 (130 s)                  the oversized burst
#   17T/22.5 (136 s), for 20 s      the attack phase (attack.py, from 127.0.0.2, at nice 19: an
#                                   attacker's CPU is not the gateway's): 64 silent sockets, 64
#                                   slow-loris heads (a byte a second), 4 HTTP/2 connections of 50
#                                   streams for a 16 MiB body with a window of 0, never read, and
#                                   2 WINDOW_UPDATE flooders, each reconnecting when closed, up to
#                                   SOAK_FLOOD_RATE times a second
# (the 20 s outages and windows are shortened to T/9 for runs under 180 s).
#
# Attack phase, compared with a quiet window of the same length at T/9 (20 s; one reload falls
# in each): a probe (wrk, 2 connections, paced like the others) on the public route runs in both.
# Gates: the probe's p99 under attack at most 2x the quiet one (SOAK_ATTACK_P99_RATIO; quiet p99
# taken as at least 2 ms, below which loopback jitter decides), every probe answer 2xx; RSS
# sampled every second of the attack must not keep growing (median of its second half at most
# 10% above the median of its first half: what the attackers hold is bounded, not accumulating);
# and each refusal the attack provokes must show in the metrics (idle and header deadlines, write
# deadlines of the stalled streams, HTTP/2 flood closes). The gateway's CPU in both windows is
# printed, with what the attack cost it per second.
#
# Classification (per second: wrk counts answers by second and status, the curl loops log each):
#   injected    a 502/503/504 on a healthy route within the backend-kill window (from 1 s before the
#               kill to 2 s after the restart), while in-flight requests may die with the backend
#   unexpected  any other non-2xx on a healthy route (the OpenID Provider outage and the reloads
#               excuse nothing), a refused/oversized request answered otherwise than expected,
#               any connection error (wrk socket errors, curl failures), an unapplied reload
# Memory: VmRSS, open fds and threads of the gateway (and its /readyz status, informational)
# every SOAK_SAMPLE_EVERY s (5). Printed:
# first/min/max/last, and the growth between the mean of the first and of the last minute
# (windows shortened to T/2 for shorter runs). The gate: the median of the samples in the 30 s
# from T/3 (once warm-up has filled pools and caches) against the median of the last 30 s of
# samples; more than 10% (SOAK_RSS_MAX_GROWTH_PCT) growth fails. Medians, so one sample taken
# in the middle of a reload's build does not decide. Open descriptors get the same gate in
# absolute terms: more than 32 (SOAK_FD_MAX_GROWTH) gained fails (idle upstream connections
# that outlive a reload's config would show here).
#
# Exit status: 0 when there are no unexpected errors and RSS and descriptors did not grow past the limits, 1
# otherwise (and on any set-up failure). Other load on the machine shows up as latency (and,
# past wrk's 5 s timeout, as connection errors).
#
# Usage: benches/load/soak.sh
#
# Environment (defaults in brackets):
#   SOAK_SECONDS             duration of the traffic, >= 60 [180]
#   SOAK_CONNECTIONS         wrk connections per healthy route [4]
#   SOAK_DELAY_MS            pause of each connection before each request [20]
#   SOAK_RELOAD_EVERY        seconds between SIGHUP reloads [15]
#   SOAK_FRESH_MINTS         mint.mjs runs for fresh-bearer tokens, two tokens each [10]
#   SOAK_SAMPLE_EVERY        seconds between memory samples [5]
#   SOAK_RSS_MAX_GROWTH_PCT  RSS growth allowed over the last two thirds [10]
#   SOAK_FD_MAX_GROWTH       open descriptors the gateway may gain over the last two thirds
#                            (same medians as RSS) [32]
#   SOAK_ATTACK              run the attack phase, 1 or 0 [1]
#   SOAK_ATTACK_P99_RATIO    probe p99 allowed under attack, times the quiet window's [2]
#   SOAK_FLOOD_RATE          new connections a second per flooder; 0: as fast as they are closed,
#                            which is a connection flood (accept, handshake, close: 50-80 µs of
#                            gateway CPU each, nothing an HTTP server can refuse cheaper) [200]
#   WORKERS                  Portcullis threads [2]
#   ACCESS_LOG               Portcullis access log, stdout (discarded) or off [stdout]
#   PORTCULLIS_BIN           use this binary instead of `cargo build --release --bin portcullis`
#   KEEP_TMP=1               keep the temp dir (logs, samples, rendered configs) and print its path

set -euo pipefail
export LC_ALL=C

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
LOG_NAME=soak
LOG_CLOCK=1
# shellcheck source=benches/load/lib.sh
source "$HERE/lib.sh"

SOAK_SECONDS="${SOAK_SECONDS:-180}"
SOAK_CONNECTIONS="${SOAK_CONNECTIONS:-4}"
SOAK_DELAY_MS="${SOAK_DELAY_MS:-20}"
SOAK_RELOAD_EVERY="${SOAK_RELOAD_EVERY:-15}"
SOAK_FRESH_MINTS="${SOAK_FRESH_MINTS:-10}"
SOAK_SAMPLE_EVERY="${SOAK_SAMPLE_EVERY:-5}"
SOAK_RSS_MAX_GROWTH_PCT="${SOAK_RSS_MAX_GROWTH_PCT:-10}"
SOAK_FD_MAX_GROWTH="${SOAK_FD_MAX_GROWTH:-32}"
WORKERS="${WORKERS:-2}"
ACCESS_LOG="${ACCESS_LOG:-stdout}"
SOAK_ATTACK="${SOAK_ATTACK:-1}"
SOAK_ATTACK_P99_RATIO="${SOAK_ATTACK_P99_RATIO:-2}"
SOAK_FLOOD_RATE="${SOAK_FLOOD_RATE:-200}"

BEARER_AUDIENCE="urn:portcullis:soak"

case "${1:-}" in
    "") ;;
    -h|--help) print_header "${BASH_SOURCE[0]}"; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
esac

require_uint SOAK_SECONDS SOAK_CONNECTIONS SOAK_DELAY_MS SOAK_RELOAD_EVERY SOAK_FRESH_MINTS SOAK_SAMPLE_EVERY \
    SOAK_RSS_MAX_GROWTH_PCT SOAK_FD_MAX_GROWTH WORKERS
((SOAK_SECONDS >= 60)) || die "SOAK_SECONDS must be at least 60"
[[ "$ACCESS_LOG" == stdout || "$ACCESS_LOG" == off ]] || die "ACCESS_LOG must be stdout or off"
[[ "$SOAK_ATTACK" == 0 || "$SOAK_ATTACK" == 1 ]] || die "SOAK_ATTACK must be 0 or 1"
is_uint "$SOAK_ATTACK_P99_RATIO" || die "SOAK_ATTACK_P99_RATIO must be a positive integer"
[[ "$SOAK_FLOOD_RATE" == 0 ]] || is_uint "$SOAK_FLOOD_RATE" || die "SOAK_FLOOD_RATE must be a non-negative integer"

for c in wrk curl node python3 awk; do
    command -v "$c" >/dev/null 2>&1 || die "$c is needed"
done
[[ -x "$NGINX" ]] || die "nginx is needed"

# ---------------------------------------------------------------- processes, temp dir

make_tmp portcullis-soak

RENDER_KEYS=(TMP WORKERS ACCESS_LOG BACKEND_NAME BACKEND_PORT BACKEND1_PORT BACKEND2_PORT BIG_PORT
    GATEWAY_PORT ADMIN_PORT IDP_PORT IDP_ISSUER IDP_KEYS TOKEN_TTL SESSION_TTL SESSION_SECRET
    CLIENT_SECRET RELOAD_TAG)

# ---------------------------------------------------------------- backends

declare -A BACKEND_PID BACKEND_PORTS
start_backend() { # NAME (b1|b2); its port is chosen once and kept across restarts
    local name="$1"
    BACKEND_NAME="$name"
    BACKEND_PORT="${BACKEND_PORTS[$name]}"
    render "$HERE/soak.backend.nginx.conf.tmpl" "$TMP/$name.conf"
    nginx_spawn "$name" "$TMP/$name.conf" # the template says `daemon off;`
    BACKEND_PID[$name]=$LAST_PID
    wait_http "backend $name" "http://127.0.0.1:$BACKEND_PORT/up" "$LAST_PID" "$TMP/$name.error.log" 10
}

kill_backend() { # NAME: SIGKILL, as a crash
    local name="$1" pid="${BACKEND_PID[$1]}"
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    forget_pid "$pid"
    BACKEND_PID[$name]=""
}

# ---------------------------------------------------------------- the test OpenID Provider

start_idp() { idp_spawn "http://127.0.0.1:$IDP_PORT"; } # IDP_PORT is fixed for the run: the issuer names it

# ---------------------------------------------------------------- set-up

run_setup # Node.js, jose (mint.mjs) and oidc-provider (the test IdP)
portcullis_bin release

free_port GATEWAY_PORT
free_port ADMIN_PORT
free_port IDP_PORT
free_port BACKEND1_PORT
free_port BACKEND2_PORT
BACKEND_PORTS[b1]="$BACKEND1_PORT"
BACKEND_PORTS[b2]="$BACKEND2_PORT"
# The stalled readers' backend, a process of its own: the gateway holds its answers back from
# clients that do not read, and a single-process nginx answering 200 of them at once was slower
# to answer everyone else (measured: 1.9 s for a small answer) — that is the backend's limit,
# not the gateway's, and the probe measures the gateway.
free_port BIG_PORT
BACKEND_PORTS[big]="$BIG_PORT"

head -c $((16 * 1024 * 1024)) /dev/zero >"$TMP/big.bin" # the stalled readers' body
start_backend b1 || die "backend b1 failed to start"
start_backend b2 || die "backend b2 failed to start"
start_backend big || die "backend big failed to start"
log "backends on 127.0.0.1:$BACKEND1_PORT (b1) and 127.0.0.1:$BACKEND2_PORT (b2)"

TOKEN_TTL=$((SOAK_SECONDS + 3600))
SESSION_TTL=$((8 * TOKEN_TTL))
IDP_KEYS="$ROOT/tests/idp/keys/primary.json"
CLIENT_SECRET="$(head -c 24 /dev/urandom | base64 -w0 | tr '+/' '-_')"
SESSION_SECRET="$(head -c 32 /dev/urandom | base64 -w0)"
render "$HERE/soak.idp.json.tmpl" "$TMP/idp.json"
start_idp || die "the test OpenID Provider failed to start"
log "test OpenID Provider at $IDP_ISSUER"

# Tokens of this run, signed with the provider's own test keys (mint.mjs also writes static
# provider files next to them; unused here).
node "$HERE/mint.mjs" "$IDP_ISSUER" "$BEARER_AUDIENCE" "$TOKEN_TTL" "$TMP/mint" >&2 || die "mint.mjs failed"
node "$HERE/mint.mjs" "$IDP_ISSUER" "urn:portcullis:not-this-gateway" "$TOKEN_TTL" "$TMP/mint-other" >&2 ||
    die "mint.mjs failed"
TOKEN="$(<"$TMP/mint/token-rs256.jwt")"
TOKEN_OTHER_AUD="$(<"$TMP/mint-other/token-es256.jwt")"
b64url() { base64 -w0 | tr '+/' '-_' | tr -d '='; }
# Tampered: the signature's first characters changed (a valid shape, a wrong signature).
sig="${TOKEN##*.}"
if [[ "${sig:0:4}" == AAAA ]]; then rep=BBBB; else rep=AAAA; fi
TOKEN_TAMPERED="${TOKEN%.*}.${rep}${sig:4}"
# Unknown kid: the gateway re-fetches the key set (at most every 5 s) before refusing it.
TOKEN_UNKNOWN_KID="$(printf '{"alg":"RS256","kid":"soak-unknown-kid","typ":"at+jwt"}' | b64url).${TOKEN#*.}"
unset sig rep
# Fresh tokens (RS256 and ES256), each sent once during the run.
FRESH_TOKENS=()
for ((i = 0; i < SOAK_FRESH_MINTS; i++)); do
    node "$HERE/mint.mjs" "$IDP_ISSUER" "$BEARER_AUDIENCE" "$TOKEN_TTL" "$TMP/fresh-$i" >&2 || die "mint.mjs failed"
    FRESH_TOKENS+=("$(<"$TMP/fresh-$i/token-rs256.jwt")" "$(<"$TMP/fresh-$i/token-es256.jwt")")
done

RELOAD_TAG=a
render "$HERE/soak.portcullis.yaml.tmpl" "$TMP/portcullis.yaml"
# The access log (stdout) is written, then discarded.
portcullis_spawn portcullis "$TMP/portcullis.yaml" "$ADMIN_PORT"
GW_PID=$LAST_PID
log "portcullis pid $GW_PID on 127.0.0.1:$GATEWAY_PORT, admin $ADMIN_PORT (threads $WORKERS, $PORTCULLIS)"

SESSION_COOKIE=""
sign_in SESSION_COOKIE "http://127.0.0.1:$GATEWAY_PORT/session/soak" "$TMP/portcullis.err"
# A forged cookie: the real names, random values of the same length.
FORGED_COOKIE=""
IFS=';' read -r -a parts <<<"$SESSION_COOKIE"
for p in "${parts[@]}"; do
    p="${p# }"
    v="${p#*=}"
    r="$(head -c $((${#v} * 3 / 4 + 3)) /dev/urandom | b64url)"
    FORGED_COOKIE+="${FORGED_COOKIE:+; }${p%%=*}=${r:0:${#v}}"
done
unset parts p v r

G="http://127.0.0.1:$GATEWAY_PORT"

# ---------------------------------------------------------------- request classes

# The refused trickle: KIND -> curl arguments (after the URL), expected status 401 each.
REFUSED_KINDS=(bearer-none bearer-garbage bearer-tampered bearer-unknown-kid bearer-other-aud
    session-none session-forged)
refused_request() { # KIND: prints the status
    case "$1" in
        bearer-none) http_code "$G/bearer/soak" ;;
        bearer-garbage) http_code "$G/bearer/soak" -H "Authorization: Bearer not-a-token" ;;
        bearer-tampered) http_code "$G/bearer/soak" -H "Authorization: Bearer $TOKEN_TAMPERED" ;;
        bearer-unknown-kid) http_code "$G/bearer/soak" -H "Authorization: Bearer $TOKEN_UNKNOWN_KID" ;;
        bearer-other-aud) http_code "$G/bearer/soak" -H "Authorization: Bearer $TOKEN_OTHER_AUD" ;;
        session-none) http_code "$G/session/soak" ;;
        session-forged) http_code "$G/session/soak" -H "Cookie: $FORGED_COOKIE" ;;
    esac
}

BIG_VALUE="$(head -c 40000 /dev/zero | tr '\0' x)"
BIG_COOKIE="c=$(head -c 20000 /dev/zero | tr '\0' y)"
MANY_HEADERS=()
for ((i = 0; i < 120; i++)); do MANY_HEADERS+=(-H "X-Soak-$i: $i"); done
LONG_PATH="/public/$(head -c 10000 /dev/zero | tr '\0' z)"
OVERSIZED_KINDS=(big-header many-headers big-cookie long-target)
declare -A OVERSIZED_EXPECT=([big-header]=431 [many-headers]=431 [big-cookie]=431 [long-target]=414)
oversized_request() { # KIND: prints the status
    case "$1" in
        big-header) http_code "$G/public/soak" -H "X-Soak-Big: $BIG_VALUE" ;;
        many-headers) http_code "$G/public/soak" "${MANY_HEADERS[@]}" ;;
        big-cookie) http_code "$G/public/soak" -H "Cookie: $BIG_COOKIE" ;;
        long-target) http_code "$G$LONG_PATH" ;;
    esac
}

# Sanity, before any load: every class answers as the run will require.
for c in public bearer session; do
    case "$c" in
        public) code="$(http_code "$G/public/soak")" ;;
        bearer) code="$(http_code "$G/bearer/soak" -H "Authorization: Bearer $TOKEN")" ;;
        session) code="$(http_code "$G/session/soak" -H "Cookie: $SESSION_COOKIE")" ;;
    esac
    [[ "$code" == 200 ]] || die "sanity: $c answered $code, not 200"
done
for k in "${REFUSED_KINDS[@]}"; do
    code="$(refused_request "$k")"
    [[ "$code" == 401 ]] || die "sanity: refused request $k answered $code, not 401"
done
for k in "${OVERSIZED_KINDS[@]}"; do
    code="$(oversized_request "$k")"
    [[ "$code" == "${OVERSIZED_EXPECT[$k]}" ]] || die "sanity: oversized request $k answered $code, not ${OVERSIZED_EXPECT[$k]}"
done
[[ "$(http_code "$G/reload-a")" == 200 && "$(http_code "$G/reload-b")" == 404 ]] ||
    die "sanity: /reload-a should be 200 and /reload-b 404"
log "sanity: healthy routes 200, refused 401, oversized 431/414"

metrics() { admin_metrics "$ADMIN_PORT"; }
metrics >"$TMP/metrics.before" # kept with KEEP_TMP=1

# ---------------------------------------------------------------- schedule

T="$SOAK_SECONDS"
OUTAGE=20
((T >= 180)) || OUTAGE=$((T / 9))
KILL_AT=$((T * 5 / 18))
IDP_AT=$((T / 2))
BURST_AT=$((T * 13 / 18))
EVENTS=()
for ((s = SOAK_RELOAD_EVERY; s <= T - 5; s += SOAK_RELOAD_EVERY)); do EVENTS+=("$s reload"); done
EVENTS+=("$KILL_AT kill-backend" "$((KILL_AT + OUTAGE)) start-backend")
EVENTS+=("$IDP_AT stop-idp" "$((IDP_AT + OUTAGE)) start-idp")
EVENTS+=("$BURST_AT oversized-burst")
WINDOW="$OUTAGE"
QUIET_AT=$((T / 9))
ATTACK_AT=$((T * 34 / 45))
if ((SOAK_ATTACK)); then
    EVENTS+=("$QUIET_AT quiet-start" "$((QUIET_AT + WINDOW + 1)) quiet-end")
    EVENTS+=("$ATTACK_AT attack-start" "$((ATTACK_AT + WINDOW + 1)) attack-end")
fi
mapfile -t EVENTS < <(printf '%s\n' "${EVENTS[@]}" | sort -n -k1,1 -s)

# ---------------------------------------------------------------- background loops

# Memory sampler: "elapsed_s rss_kb fds threads readyz_status" every SOAK_SAMPLE_EVERY s.
sampler() {
    local t0_ms="$1" n=0 rss thr fds ready
    while kill -0 "$GW_PID" 2>/dev/null; do
        rss="$(awk '$1 == "VmRSS:" { print $2 }' "/proc/$GW_PID/status" 2>/dev/null || true)"
        thr="$(awk '$1 == "Threads:" { print $2 }' "/proc/$GW_PID/status" 2>/dev/null || true)"
        fds="$(find "/proc/$GW_PID/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)"
        ready="$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$ADMIN_PORT/readyz" 2>/dev/null || true)"
        [[ -z "$rss" ]] || printf '%d %s %s %s %s\n' $((n * SOAK_SAMPLE_EVERY)) "$rss" "$fds" "$thr" "$ready"
        n=$((n + 1))
        ((n * SOAK_SAMPLE_EVERY <= T)) || break
        sleep_until_ms $((t0_ms + n * SOAK_SAMPLE_EVERY * 1000))
    done
}

# Refused trickle: "epoch kind status" lines until END_MS; a fresh token now and then, logged
# to $TMP/fresh.log.
trickle() {
    local t0_ms="$1" end_ms="$2" i=0 k code f=0 nf="${#FRESH_TOKENS[@]}" gap
    gap=$(((end_ms - t0_ms) / (nf + 1)))
    while (($(now_ms) < end_ms)); do
        if ((f < nf && $(now_ms) >= t0_ms + (f + 1) * gap)); then
            code="$(http_code "$G/bearer/soak" -H "Authorization: Bearer ${FRESH_TOKENS[f]}")"
            printf '%s bearer-fresh %s\n' "$(now_s)" "$code" >>"$TMP/fresh.log"
            f=$((f + 1))
        fi
        k="${REFUSED_KINDS[i % ${#REFUSED_KINDS[@]}]}"
        code="$(refused_request "$k")"
        printf '%s %s %s\n' "$(now_s)" "$k" "$code"
        i=$((i + 1))
        sleep 0.25
    done
}

# Oversized burst: 25 of each kind, interleaved, "epoch kind status" lines; 30 s at most.
burst() {
    local i k end_ms=$(($(now_ms) + 30000))
    for ((i = 0; i < 25; i++)); do
        (($(now_ms) < end_ms)) || break
        for k in "${OVERSIZED_KINDS[@]}"; do
            printf '%s %s %s\n' "$(now_s)" "$k" "$(oversized_request "$k")"
        done
    done
}

# ---------------------------------------------------------------- attack phase

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$GW_PID/stat" 2>/dev/null || echo 0; }
PROBE_PIDS=()
probe() { # NAME: the paced probe on the public route for WINDOW seconds -> $TMP/probe.NAME
    SOAK_WRK_OUT="$TMP/probe.$1" SOAK_DELAY_MS="$SOAK_DELAY_MS" \
        timeout -k 5 $((WINDOW + 30)) wrk -t 1 -c 2 -d "${WINDOW}s" --timeout 5s \
        -s "$HERE/soak.wrk.lua" "$G/public/soak" >"$TMP/probe.$1.stdout" 2>&1 </dev/null &
    PROBE_PIDS+=("$!")
    PIDS+=("$!")
}
# RSS every second for the attack window: "second rss_kb".
fine_rss() {
    local i
    for ((i = 0; i <= WINDOW; i++)); do
        printf '%d %s\n' "$i" "$(awk '$1 == "VmRSS:" { print $2 }' "/proc/$GW_PID/status" 2>/dev/null || echo 0)"
        sleep 1
    done
}

# ---------------------------------------------------------------- events

: >"$TMP/windows"
: >"$TMP/events.log"
RELOADS_SENT=0
RELOADS_UNAPPLIED=0
event() { # NAME
    local at
    at="$(now_s)"
    case "$1" in
        reload)
            local new old code_new="" code_old="" i
            if [[ "$RELOAD_TAG" == a ]]; then new=b old=a; else new=a old=b; fi
            RELOAD_TAG="$new"
            render "$HERE/soak.portcullis.yaml.tmpl" "$TMP/portcullis.yaml"
            kill -HUP "$GW_PID"
            RELOADS_SENT=$((RELOADS_SENT + 1))
            for ((i = 0; i < 50; i++)); do
                code_new="$(http_code "$G/reload-$new")"
                code_old="$(http_code "$G/reload-$old")"
                [[ "$code_new" != 200 || "$code_old" != 404 ]] || break
                sleep 0.1
            done
            if [[ "$code_new" == 200 && "$code_old" == 404 ]]; then
                printf '%s reload %d applied (/reload-%s) after %d probe(s)\n' "$at" "$RELOADS_SENT" "$new" $((i + 1)) >>"$TMP/events.log"
            else
                RELOADS_UNAPPLIED=$((RELOADS_UNAPPLIED + 1))
                printf '%s reload %d NOT applied within 5 s: /reload-%s %s, /reload-%s %s\n' "$at" "$RELOADS_SENT" \
                    "$new" "$code_new" "$old" "$code_old" >>"$TMP/events.log"
                log "reload $RELOADS_SENT not applied within 5 s (/reload-$new $code_new, /reload-$old $code_old)"
            fi
            ;;
        kill-backend)
            KILL_T="$at"
            kill_backend b2
            printf '%s backend b2 killed (SIGKILL)\n' "$at" >>"$TMP/events.log"
            log "backend b2 killed"
            ;;
        start-backend)
            if start_backend b2; then
                printf '%s backend b2 restarted\n' "$(now_s)" >>"$TMP/events.log"
                log "backend b2 restarted"
            else
                printf '%s backend b2 FAILED to restart\n' "$(now_s)" >>"$TMP/events.log"
                log "backend b2 failed to restart"
            fi
            # The window of injected errors: from 1 s before the kill to 2 s after the restart.
            printf '%d %d backend-kill\n' $((KILL_T - 1)) $(($(now_s) + 2)) >>"$TMP/windows"
            ;;
        stop-idp)
            IDP_STOP_T="$at"
            stop_idp
            printf '%s OpenID Provider stopped\n' "$at" >>"$TMP/events.log"
            log "OpenID Provider stopped"
            ;;
        start-idp)
            if start_idp; then
                printf '%s OpenID Provider restarted\n' "$(now_s)" >>"$TMP/events.log"
                log "OpenID Provider restarted"
            else
                printf '%s OpenID Provider FAILED to restart\n' "$(now_s)" >>"$TMP/events.log"
            fi
            # Informational only: nothing is excused during this window.
            printf '%d %d idp-down\n' "$IDP_STOP_T" "$(now_s)" >>"$TMP/windows"
            ;;
        quiet-start)
            QUIET_CPU0="$(cpu_ticks)"
            probe quiet
            printf '%s quiet window: probe started\n' "$at" >>"$TMP/events.log"
            ;;
        quiet-end)
            QUIET_CPU1="$(cpu_ticks)"
            ;;
        attack-start)
            metrics >"$TMP/metrics.attack-before"
            ATTACK_CPU0="$(cpu_ticks)"
            probe attack
            (fine_rss >"$TMP/attack.rss") &
            LOOP_PIDS+=("$!")
            nice -n 19 timeout -k 5 $((WINDOW + 20)) python3 "$HERE/attack.py" --port "$GATEWAY_PORT" \
                --seconds "$WINDOW" --source 127.0.0.2 --silent 64 --slowloris 64 --stalled 4:50 \
                --flood 2 --flood-rate "$SOAK_FLOOD_RATE" --path /big/big.bin >"$TMP/attack.json" 2>"$TMP/attack.err" </dev/null &
            ATTACK_PID=$!
            PIDS+=("$!")
            printf '%s attack started (probe, attack.py)\n' "$at" >>"$TMP/events.log"
            log "attack phase"
            ;;
        attack-end)
            ATTACK_CPU1="$(cpu_ticks)"
            wait "$ATTACK_PID" 2>/dev/null || true
            forget_pid "$ATTACK_PID"
            metrics >"$TMP/metrics.attack-after"
            printf '%s attack ended\n' "$(now_s)" >>"$TMP/events.log"
            ;;
        oversized-burst)
            (burst >"$TMP/oversized.log") &
            LOOP_PIDS+=("$!")
            printf '%s oversized burst started\n' "$at" >>"$TMP/events.log"
            log "oversized burst"
            ;;
    esac
}

# ---------------------------------------------------------------- run

LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg)"
log "soak: ${T}s, wrk -c $SOAK_CONNECTIONS per route, ${SOAK_DELAY_MS} ms pause per request; load average $LOAD_BEFORE"
log "schedule: reload every ${SOAK_RELOAD_EVERY}s, b2 killed at ${KILL_AT}s for ${OUTAGE}s, OpenID Provider stopped at ${IDP_AT}s for ${OUTAGE}s, oversized burst at ${BURST_AT}s"

T0_MS="$(now_ms)"
T0="$(now_s)"
END_MS=$((T0_MS + T * 1000))
declare -A WRK_PID WRK_RC
for c in public bearer session; do
    hdr=()
    case "$c" in
        bearer) hdr=(-H "Authorization: Bearer $TOKEN") ;;
        session) hdr=(-H "Cookie: $SESSION_COOKIE") ;;
    esac
    SOAK_WRK_OUT="$TMP/wrk.$c" SOAK_DELAY_MS="$SOAK_DELAY_MS" \
        timeout -k 5 $((T + 30)) wrk -t 1 -c "$SOAK_CONNECTIONS" -d "${T}s" --timeout 5s \
        -s "$HERE/soak.wrk.lua" "${hdr[@]}" "$G/$c/soak" >"$TMP/wrk.$c.stdout" 2>&1 </dev/null &
    WRK_PID[$c]=$!
    PIDS+=("$!")
done
(sampler "$T0_MS" >"$TMP/samples") &
LOOP_PIDS+=("$!")
(trickle "$T0_MS" "$END_MS" >"$TMP/refused.log") &
LOOP_PIDS+=("$!")

for ev in "${EVENTS[@]}"; do
    at="${ev%% *}"
    sleep_until_ms $((T0_MS + at * 1000))
    event "${ev#* }"
done
sleep_until_ms "$END_MS"

# Everything ends by itself; each wait is bounded.
for c in public bearer session; do
    pid="${WRK_PID[$c]}"
    for ((i = 0; i < 400; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    WRK_RC[$c]=0
    wait "$pid" 2>/dev/null || WRK_RC[$c]=$?
    forget_pid "$pid"
done
for pid in "${PROBE_PIDS[@]}"; do
    for ((i = 0; i < 400; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    wait "$pid" 2>/dev/null || true
    forget_pid "$pid"
done
for pid in "${LOOP_PIDS[@]}"; do
    for ((i = 0; i < 150; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    stop_pid "$pid"
done
LOOP_PIDS=()
LOAD_AFTER="$(cut -d' ' -f1-3 /proc/loadavg)"

GW_ALIVE=yes
kill -0 "$GW_PID" 2>/dev/null || GW_ALIVE=no
READY_END="$(http_code "http://127.0.0.1:$ADMIN_PORT/readyz")"
metrics >"$TMP/metrics.after"

# ---------------------------------------------------------------- report

FAILED=0
wrk_ok=1
for c in public bearer session; do
    if [[ "${WRK_RC[$c]}" != 0 || ! -s "$TMP/wrk.$c" ]]; then
        log "wrk ($c) exited ${WRK_RC[$c]}; its output:"
        cat "$TMP/wrk.$c.stdout" >&2 || true
        wrk_ok=0
    fi
done
((wrk_ok)) || FAILED=1

{
    printf '\nPortcullis soak: %ss, rev %s, %s CPUs, load average %s before / %s after\n' "$T" \
        "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo none)" "$(nproc 2>/dev/null || echo '?')" \
        "$LOAD_BEFORE" "$LOAD_AFTER"
    printf '\nEvents (seconds from the start):\n'
    awk -v t0="$T0" '{ $1 = sprintf("%5ds", $1 - t0); print "  " $0 }' "$TMP/events.log"
} >&2

# Requests per class: totals, expected answers, injected errors, unexpected errors.
# shellcheck disable=SC2016
CLASSIFY='
    FILENAME == WIN { if ($3 == "backend-kill") { ws[++nw] = $1; we[nw] = $2 }; next }
    function injected_at(t,   i) { for (i = 1; i <= nw; i++) if (t >= ws[i] && t <= we[i]) return 1; return 0 }
    # wrk: "epoch status count", "# errors k=v ...", "# latency k=v ..."
    mode == "wrk" && $1 == "#" {
        for (i = 3; i <= NF; i++) { split($i, kv, "="); v[$2, kv[1]] = kv[2] }
        next
    }
    mode == "wrk" {
        total += $3
        if ($2 >= 200 && $2 < 300) ok += $3
        else if (($2 == 502 || $2 == 503 || $2 == 504) && injected_at($1)) { inj += $3; injs[$2] += $3 }
        else { bad += $3; bads[$1 - t0 "s:" $2] += $3 }
        next
    }
    # curl loops: "epoch kind status"
    mode == "fresh" {
        total++
        if ($3 >= 200 && $3 < 300) ok++
        else if (($3 == 502 || $3 == 503 || $3 == 504) && injected_at($1)) { inj++; injs[$3]++ }
        else { bad++; bads[$1 - t0 "s:" $2 "=" $3]++ }
        next
    }
    {
        total++
        want = (mode == "refused") ? 401 : (($2 == "long-target") ? 414 : 431)
        if ($3 == want) ok++
        else { bad++; bads[$1 - t0 "s:" $2 "=" $3]++ }
    }
    END {
        sock = v["errors", "connect"] + v["errors", "read"] + v["errors", "write"] + v["errors", "timeout"]
        detail = ""
        for (k in injs) detail = detail " " k "x" injs[k]
        bd = ""; n = 0
        for (k in bads) if (n++ < 8) bd = bd " " k "x" bads[k]
        printf "%d %d %d %d %d %s|%s|%s|%s|%s\n", total, ok, inj, bad + sock, sock, \
            (mode == "wrk" ? v["latency", "p50_us"] / 1000 : "-"), (mode == "wrk" ? v["latency", "p99_us"] / 1000 : "-"), \
            (mode == "wrk" ? v["latency", "max_us"] / 1000 : "-"), detail, bd
    }'

TOTAL_UNEXPECTED=0
TOTAL_INJECTED=0
{
    printf '\n%-12s %9s %9s %9s %11s %10s %9s %9s %9s\n' class requests expected injected unexpected "conn errs" "p50 ms" "p99 ms" "max ms"
} >&2
for c in public bearer session fresh-bearer refused oversized; do
    case "$c" in
        fresh-bearer) f="$TMP/fresh.log" mode=fresh ;;
        refused) f="$TMP/refused.log" mode=refused ;;
        oversized) f="$TMP/oversized.log" mode=oversized ;;
        *) f="$TMP/wrk.$c" mode=wrk ;;
    esac
    [[ -f "$f" ]] || : >"$f"
    line="$(awk -v WIN="$TMP/windows" -v mode="$mode" -v t0="$T0" "$CLASSIFY" "$TMP/windows" "$f")"
    read -r total ok inj bad sock rest <<<"$line"
    IFS='|' read -r p50 p99 pmax injd badd <<<"$rest"
    printf '%-12s %9s %9s %9s %11s %10s %9s %9s %9s\n' "$c" "$total" "$ok" "$inj" "$bad" "$sock" "$p50" "$p99" "$pmax" >&2
    [[ -z "${injd// /}" ]] || printf '           injected by status:%s\n' "$injd" >&2
    [[ -z "${badd// /}" ]] || printf '           unexpected (second:status x count, first 8):%s\n' "$badd" >&2
    TOTAL_UNEXPECTED=$((TOTAL_UNEXPECTED + bad))
    TOTAL_INJECTED=$((TOTAL_INJECTED + inj))
    if [[ "$c" != fresh-bearer && "$total" == 0 ]] || [[ "$c" == fresh-bearer && "$total" != "${#FRESH_TOKENS[@]}" ]]; then
        log "class $c: $total requests sent, fewer than planned"
        FAILED=1
    fi
done
TOTAL_UNEXPECTED=$((TOTAL_UNEXPECTED + RELOADS_UNAPPLIED))
{
    printf '\nReloads: %d SIGHUP sent, %d not applied within 5 s\n' "$RELOADS_SENT" "$RELOADS_UNAPPLIED"
    printf 'Unexpected errors: %d (including unapplied reloads); injected errors: %d\n' "$TOTAL_UNEXPECTED" "$TOTAL_INJECTED"
} >&2
((TOTAL_UNEXPECTED == 0)) || FAILED=1

# Memory and descriptors.
# shellcheck disable=SC2016
MEM="$(awk -v T="$T" -v pct="$SOAK_RSS_MAX_GROWTH_PCT" -v fdmax="$SOAK_FD_MAX_GROWTH" '
    function median(a, n,   i, j, x) {
        for (i = 2; i <= n; i++) { x = a[i]; for (j = i - 1; j >= 1 && a[j] > x; j--) a[j + 1] = a[j]; a[j + 1] = x }
        return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    {
        n++; t[n] = $1; r[n] = $2; f[n] = $3; th[n] = $4
        if ($5 != 200) notready = notready " " $1 "s:" $5
        if (n == 1 || $2 < rmin) rmin = $2
        if (n == 1 || $2 > rmax) rmax = $2
        if (n == 1 || $3 > fmax) fmax = $3
    }
    END {
        if (n < 4) { print "FAIL too few samples (" n ")"; exit }
        m = (T / 2 < 60) ? T / 2 : 60
        for (i = 1; i <= n; i++) {
            if (t[i] < m) { s1 += r[i]; c1++ }
            if (t[i] >= T - m) { s2 += r[i]; c2++ }
            if (t[i] >= T / 3 && t[i] < T / 3 + 30) { b[++nb] = r[i]; fb[++nfb] = f[i] }
            if (t[i] >= T - 30) { e[++ne] = r[i]; fe[++nfe] = f[i] }
        }
        fbase = median(fb, nfb); fend = median(fe, nfe)
        g = (s2 / c2 - s1 / c1) / (s1 / c1) * 100
        base = median(b, nb); end = median(e, ne)
        gate = (end - base) / base * 100
        printf "RSS (MiB): first %.1f  min %.1f  max %.1f  last %.1f  (%d samples, every %ds)\n", \
            r[1] / 1024, rmin / 1024, rmax / 1024, r[n] / 1024, n, t[2] - t[1]
        printf "RSS growth, mean of the first %ds (%.1f MiB) to the mean of the last %ds (%.1f MiB): %+.1f%%\n", \
            m, s1 / c1 / 1024, m, s2 / c2 / 1024, g
        printf "RSS growth over the last two thirds, median of %ds..%ds (%.1f MiB) to median of the last 30 s (%.1f MiB): %+.1f%% (limit %d%%)\n", \
            T / 3, T / 3 + 30, base / 1024, end / 1024, gate, pct
        printf "open fds: first %d  last %d  max %d; threads: first %d  last %d\n", f[1], f[n], fmax, th[1], th[n]
        printf "/readyz in the samples: %s\n", (notready == "") ? "200 in every one" : "not 200 at" notready
        printf "series (s:MiB/fds):"
        for (i = 1; i <= n; i++) printf " %d:%.1f/%d", t[i], r[i] / 1024, f[i]
        printf "\n"
        printf "open fds over the last two thirds, median of %ds..%ds (%d) to median of the last 30 s (%d): %+d (limit +%d)\n", \
            T / 3, T / 3 + 30, fbase, fend, fend - fbase, fdmax
        printf "%s\n", (gate > pct) ? "FAIL rss" : ((fend - fbase > fdmax) ? "FAIL fds" : "OK rss")
    }' "$TMP/samples")"
printf '\n%s\n' "$(sed '$d' <<<"$MEM")" >&2
case "$(tail -n 1 <<<"$MEM")" in
    "OK rss") ;;
    *) log "memory: $(tail -n 1 <<<"$MEM")"; FAILED=1 ;;
esac

# What the gateway counted (its /metrics at the end).
{
    printf '\nGateway: alive %s, /readyz %s at the end\n' "$GW_ALIVE" "$READY_END"
    printf 'Gateway metrics at the end (non-zero, selected):\n'
    grep -E '^portcullis_(config_reloads_total|upstream_errors_total|refused_requests_total|jwks_refreshes_total|jwks_state|session_refreshes_total|token_cache_total|open_connections|connections_refused_total|access_log_dropped_total|auth_decisions_total|deadline_closes_total|http2_flood_closes_total)' \
        "$TMP/metrics.after" | awk '$NF != 0 { print "  " $0 }' || true
    printf 'Gateway stderr (warnings and errors, first 15 distinct):\n'
    grep -E 'WARN|ERROR|panic' "$TMP/portcullis.err" | sed -E 's/^[^ ]+ +//' | sort | uniq -c | sort -rn | head -n 15 | sed 's/^/  /' || true
} >&2
[[ "$GW_ALIVE" == yes ]] || FAILED=1

# The attack phase against the quiet window.
# shellcheck disable=SC2016
PROBE_AWK='
    $1 == "#" { for (i = 3; i <= NF; i++) { split($i, kv, "="); v[$2, kv[1]] = kv[2] }; next }
    { total += $3; if ($2 >= 200 && $2 < 300) ok += $3 }
    END {
        sock = v["errors", "connect"] + v["errors", "read"] + v["errors", "write"] + v["errors", "timeout"]
        printf "%d %d %d %.2f %.2f %.2f\n", total, ok, sock, v["latency", "p50_us"] / 1000, \
            v["latency", "p99_us"] / 1000, v["latency", "max_us"] / 1000
    }'
msum() { # FILE REGEX: the sum of the series whose line matches REGEX
    awk -v re="$2" '$0 ~ re && $1 !~ /^#/ { s += $NF } END { printf "%d\n", s }' "$1" 2>/dev/null || echo 0
}
if ((SOAK_ATTACK)); then
    printf '\nAttack phase (%ss at %ss) against the quiet window (%ss at %ss); probe: wrk -c 2 on /public\n' \
        "$WINDOW" "$ATTACK_AT" "$WINDOW" "$QUIET_AT" >&2
    printf '%-8s %9s %9s %10s %9s %9s %9s %12s\n' window requests 2xx "conn errs" "p50 ms" "p99 ms" "max ms" "gateway CPU" >&2
    declare -A P99
    for w in quiet attack; do
        [[ -f "$TMP/probe.$w" ]] || : >"$TMP/probe.$w"
        read -r total ok sock p50 p99 pmax <<<"$(awk "$PROBE_AWK" "$TMP/probe.$w")"
        if [[ "$w" == quiet ]]; then c0="${QUIET_CPU0:-0}" c1="${QUIET_CPU1:-0}"; else c0="${ATTACK_CPU0:-0}" c1="${ATTACK_CPU1:-0}"; fi
        cpu="$(awk -v a="$c0" -v b="$c1" -v w="$WINDOW" 'BEGIN { printf "%.0f%% of a core", (b - a) / (w + 1) }')"
        printf '%-8s %9s %9s %10s %9s %9s %9s %12s\n' "$w" "$total" "$ok" "$sock" "$p50" "$p99" "$pmax" "$cpu" >&2
        P99[$w]="$p99"
        if ((total == 0 || ok != total || sock != 0)); then
            log "attack phase: the $w probe had $((total - ok)) non-2xx answers and $sock connection errors of $total"
            FAILED=1
        fi
    done
    verdict="$(awk -v q="${P99[quiet]}" -v a="${P99[attack]}" -v r="$SOAK_ATTACK_P99_RATIO" 'BEGIN {
        base = (q < 2) ? 2 : q
        printf "%s %.2f", (a <= r * base) ? "OK" : "FAIL", a / base }')"
    printf 'probe p99 under attack: %.2fx the quiet window'"'"'s (quiet taken as >= 2 ms; limit %sx): %s\n' \
        "${verdict#* }" "$SOAK_ATTACK_P99_RATIO" "${verdict%% *}" >&2
    [[ "${verdict%% *}" == OK ]] || FAILED=1
    # shellcheck disable=SC2016
    rss="$(awk '
        function median(a, n,   i, j, x) {
            for (i = 2; i <= n; i++) { x = a[i]; for (j = i - 1; j >= 1 && a[j] > x; j--) a[j + 1] = a[j]; a[j + 1] = x }
            return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
        }
        { n++; r[n] = $2 }
        END {
            if (n < 4) { print "FAIL 0 0 0"; exit }
            h = int(n / 2); for (i = 1; i <= h; i++) a[i] = r[i]; for (i = h + 1; i <= n; i++) b[i - h] = r[i]
            m1 = median(a, h); m2 = median(b, n - h)
            printf "%s %.1f %.1f %+.1f", (m2 <= m1 * 1.10) ? "OK" : "FAIL", m1 / 1024, m2 / 1024, (m2 - m1) / m1 * 100
        }' "$TMP/attack.rss" 2>/dev/null || echo "FAIL 0 0 0")"
    read -r rverdict r1 r2 rg <<<"$rss"
    printf 'RSS during the attack (every second): median of the first half %s MiB, of the second half %s MiB (%s%%; limit +10%%): %s\n' \
        "$r1" "$r2" "$rg" "$rverdict" >&2
    [[ "$rverdict" == OK ]] || FAILED=1
    printf 'attack.py: %s\n' "$(cat "$TMP/attack.json" 2>/dev/null || echo 'no summary')" >&2
    for c in 'kind="idle"' 'kind="header"' 'kind="write"' portcullis_http2_flood_closes_total; do
        re="$c"
        [[ "$c" == kind=* ]] && re="^portcullis_deadline_closes_total.*$c"
        before="$(msum "$TMP/metrics.attack-before" "$re")"
        after="$(msum "$TMP/metrics.attack-after" "$re")"
        printf 'refusals counted during the attack, %s: %d\n' "$c" $((after - before)) >&2
        if ((after <= before)); then
            log "attack phase: $c did not grow"
            FAILED=1
        fi
    done
fi

if ((FAILED)); then
    log "FAILED"
else
    log "passed"
fi
exit "$FAILED"
