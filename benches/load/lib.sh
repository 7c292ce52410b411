# shellcheck shell=bash
# Helpers shared by benches/load/run.sh and benches/load/soak.sh; sourced, not run.
#
# The sourcing script sets, before `source "$HERE/lib.sh"`:
#   HERE        the directory of the scripts (benches/load)
#   LOG_NAME    the prefix of its log lines: "[NAME] ..." on stderr
#   LOG_CLOCK   1: log lines carry the time of day, "[NAME HH:MM:SS] ..."; 0: not
# and, before the first render, RENDER_KEYS (see render). It calls make_tmp once, early: from
# then on every process it starts goes into PIDS (or LOOP_PIDS) and is stopped on exit, and the
# private temp dir TMP is removed (kept, and its path logged, with KEEP_TMP=1).
# Plain bash (Debian's) and POSIX awk (mawk) only.

# render's ${text//pattern/value}: bash 5.2 would otherwise expand & in the value.
shopt -u patsub_replacement 2>/dev/null || true

ROOT="$(cd "$HERE/../.." && pwd)"
NGINX="$(command -v nginx 2>/dev/null || echo /usr/sbin/nginx)"

# ---------------------------------------------------------------- messages, arguments

log() {
    if ((LOG_CLOCK)); then
        printf '[%s %(%T)T] %s\n' "$LOG_NAME" -1 "$*" >&2
    else
        printf '[%s] %s\n' "$LOG_NAME" "$*" >&2
    fi
}
die() { printf '[%s] error: %s\n' "$LOG_NAME" "$*" >&2; exit 1; }

# print_header FILE: FILE's leading comment block (from line 2 to the first empty line), without
# the "# ": a script's --help.
print_header() { sed -n '2,/^$/{s/^# \{0,1\}//;p}' "$1"; }

is_uint() { [[ "$1" =~ ^[1-9][0-9]*$ ]]; }
require_uint() { # VAR...: die unless each is a positive integer
    local v
    for v in "$@"; do
        is_uint "${!v}" || die "$v must be a positive integer, got '${!v}'"
    done
}

# ---------------------------------------------------------------- processes, temp dir

TMP=""
KEEP_TMP="${KEEP_TMP:-0}"
PIDS=()      # long-lived children, stopped on exit (TERM, then KILL after 5 s)
LOOP_PIDS=() # background loops (subshells): TERM, their children too, before the others
LAST_PID=""  # the process the last *_spawn started

stop_pid() { # PID: TERM, wait up to 5 s, then KILL (its direct children too)
    local pid="$1" i
    [[ -n "$pid" ]] || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
        pkill -KILL -P "$pid" 2>/dev/null || true
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

forget_pid() { # PID: no longer ours to stop
    local keep=() p
    for p in "${PIDS[@]}"; do [[ "$p" == "$1" ]] || keep+=("$p"); done
    PIDS=("${keep[@]}")
}

# Everything is sent TERM first, then each is waited for (and killed if it is still there), so
# the 5 s grace periods run side by side.
cleanup() {
    local rc=$? pid
    trap - EXIT INT TERM
    for pid in "${LOOP_PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
        pkill -TERM -P "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${LOOP_PIDS[@]}" "${PIDS[@]}"; do stop_pid "$pid"; done
    if [[ -n "$TMP" && -d "$TMP" ]]; then
        if [[ "$KEEP_TMP" == 1 ]]; then
            log "kept $TMP"
        else
            rm -rf "$TMP"
        fi
    fi
    exit "$rc"
}

make_tmp() { # NAME: the cleanup traps, then TMP, a private directory ${TMPDIR:-/tmp}/NAME.XXXXXX
    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    TMP="$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")"
    chmod 700 "$TMP"
}

# ---------------------------------------------------------------- ports, templates, HTTP

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

# render TEMPLATE OUTPUT: replace @NAME@ with the value of the variable NAME (empty if unset;
# locals of the caller count) for each NAME in RENDER_KEYS, or with that of VAR for an entry
# NAME=VAR. Any @NAME@ left is an error. OUTPUT is private (0600) and replaced atomically:
# a reload never reads half a file.
render() {
    local text key name var
    text="$(<"$1")"
    for key in "${RENDER_KEYS[@]}"; do
        name="${key%%=*}"
        var="${key#*=}"
        text="${text//@"$name"@/"${!var:-}"}"
    done
    [[ "$text" != *@[A-Z_0-9]*@* ]] ||
        die "unrendered placeholder in $1: $(grep -o '@[A-Z_0-9]*@' <<<"$text" | sort -u | tr '\n' ' ')"
    printf '%s\n' "$text" >"$2.new"
    chmod 600 "$2.new"
    mv -f "$2.new" "$2"
}

http_code() { # URL [curl args...]: the status, 000 on a connection error
    local url="$1"
    shift
    curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$@" "$url" 2>/dev/null || true
}

admin_metrics() { # ADMIN_PORT: that gateway's /metrics, empty if it does not answer
    curl -s --max-time 5 "http://127.0.0.1:$1/metrics" 2>/dev/null || true
}

# wait_http NAME URL PID LOGFILE [SECONDS]: until URL answers 200 (0), PID dies or SECONDS
# (30) pass (1, with the end of LOGFILE logged).
wait_http() {
    local name="$1" url="$2" pid="$3" logf="$4" secs="${5:-30}" i
    for ((i = 0; i < secs * 10; i++)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            log "$name exited during startup; its log:"
            tail -n 40 "$logf" >&2 2>/dev/null || true
            return 1
        fi
        [[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$url" 2>/dev/null)" == 200 ]] && return 0
        sleep 0.1
    done
    log "$name not ready at $url after ${secs}s; its log:"
    tail -n 40 "$logf" >&2 2>/dev/null || true
    return 1
}

# ---------------------------------------------------------------- time

now_s() { printf '%(%s)T' -1; }
now_ms() { local t="$EPOCHREALTIME"; echo $((${t%.*} * 1000 + 10#${t#*.} / 1000)); }
sleep_until_ms() { # EPOCH_MS
    local d=$(($1 - $(now_ms)))
    ((d <= 0)) || sleep "$((d / 1000)).$(printf '%03d' $((d % 1000)))"
}

# ---------------------------------------------------------------- the parts

# Node.js and the test IdP's npm dependencies (tests/idp/node_modules: jose for mint.mjs,
# oidc-provider); idempotent, quick when installed.
run_setup() {
    bash "$ROOT/tests/setup.sh" >&2 || die "tests/setup.sh failed (Node.js >= 20.18 and npm are needed)"
}

# nginx_spawn NAME CONF [NGINX ARGS...]: nginx with prefix $TMP/, error log $TMP/NAME.error.log
# and output $TMP/NAME.out (appended: a restart keeps the earlier lines); LAST_PID is its master.
nginx_spawn() {
    local name="$1" conf="$2"
    shift 2
    "$NGINX" -p "$TMP/" -e "$TMP/$name.error.log" -c "$conf" "$@" >>"$TMP/$name.out" 2>&1 </dev/null &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
}

PORTCULLIS=""
portcullis_bin() { # PROFILE: sets PORTCULLIS to PORTCULLIS_BIN or, once, builds it with that cargo profile
    [[ -z "$PORTCULLIS" ]] || return 0
    if [[ -n "${PORTCULLIS_BIN:-}" ]]; then
        [[ -x "$PORTCULLIS_BIN" ]] || die "PORTCULLIS_BIN=$PORTCULLIS_BIN is not executable"
        PORTCULLIS="$PORTCULLIS_BIN"
        return
    fi
    log "cargo build --profile $1 --bin portcullis"
    (cd "$ROOT" && cargo build --profile "$1" --bin portcullis >&2) || die "release build failed"
    PORTCULLIS="${CARGO_TARGET_DIR:-$ROOT/target}/$1/portcullis"
}

# portcullis_spawn NAME CONF ADMIN_PORT: `portcullis check`, then `portcullis run` of CONF
# (access log on stdout, discarded; its log in $TMP/NAME.err) until its /readyz on ADMIN_PORT
# is 200, i.e. its providers' keys are fetched (and the session store answers). LAST_PID is it.
portcullis_spawn() {
    local name="$1" conf="$2" admin="$3"
    "$PORTCULLIS" check --config "$conf" >&2 || die "portcullis check rejected the config ${conf##*/}"
    "$PORTCULLIS" run --config "$conf" >/dev/null 2>"$TMP/$name.err" </dev/null &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
    wait_http "$name" "http://127.0.0.1:$admin/readyz" "$LAST_PID" "$TMP/$name.err" 30 ||
        die "$name did not become ready"
}

# The test OpenID Provider (tests/idp/server.mjs) with the config $TMP/idp.json (the caller
# renders it); it prints `READY <issuer>` once it serves. Its log: $TMP/idp.err (appended).
IDP_PID=""
# shellcheck disable=SC2034 # the scripts' (and their templates')
IDP_ISSUER=""
idp_spawn() { # [ISSUER]: sets IDP_PID and IDP_ISSUER; 1 (the IdP stopped) unless it is ready as ISSUER in 30 s
    local want="${1:-}" i line=""
    : >"$TMP/idp.out"
    node "$ROOT/tests/idp/server.mjs" "$TMP/idp.json" >"$TMP/idp.out" 2>>"$TMP/idp.err" </dev/null &
    IDP_PID=$!
    PIDS+=("$IDP_PID")
    for ((i = 0; i < 300; i++)); do
        kill -0 "$IDP_PID" 2>/dev/null || break
        line="$(awk '$1 == "READY" { print $2; exit }' "$TMP/idp.out" 2>/dev/null || true)"
        [[ -z "$line" ]] || break
        sleep 0.1
    done
    if [[ -z "$line" || (-n "$want" && "$line" != "$want") ]]; then
        log "the test IdP did not start${want:+ as $want} (READY '$line'); its log:"
        tail -n 40 "$TMP/idp.err" >&2 2>/dev/null || true
        stop_idp
        return 1
    fi
    # shellcheck disable=SC2034 # the scripts' (and their templates')
    IDP_ISSUER="$line"
}

stop_idp() {
    [[ -n "$IDP_PID" ]] || return 0
    stop_pid "$IDP_PID"
    forget_pid "$IDP_PID"
    IDP_PID=""
}

# sign_in VAR URL GATEWAY_LOG: one real sign-in (session_cookie.py, a browser's navigation, the
# test IdP's login form, the gateway's callback) at URL, bounded in time; VAR is set to the
# session's Cookie header value. On failure the ends of the IdP's and GATEWAY_LOG are logged.
sign_in() {
    local cookie
    [[ -n "$IDP_PID" ]] || die "the test IdP is no longer running; cannot sign in"
    command -v python3 >/dev/null 2>&1 || die "python3 is needed for the session sign-in"
    cookie="$(timeout -k 5 60 python3 "$HERE/session_cookie.py" "$2")" || {
        log "sign-in failed; the test IdP's log and the gateway's:"
        tail -n 20 "$TMP/idp.err" >&2 2>/dev/null || true
        tail -n 20 "$3" >&2 2>/dev/null || true
        die "session_cookie.py could not sign in at $2"
    }
    [[ -n "$cookie" ]] || die "session_cookie.py printed no cookie"
    printf -v "$1" '%s' "$cookie"
}
