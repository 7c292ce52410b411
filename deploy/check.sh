#!/usr/bin/env bash
# Offline checks of the deployment artifacts in deploy/ (no cluster, no Docker, no Helm needed):
#   - yamllint on every YAML file (Helm templates excepted: they are Go templates), when
#     `yamllint` is on PATH (pip install yamllint);
#   - `kubectl kustomize deploy/kubernetes` renders, and its output parses, when kubectl exists;
#   - the Grafana dashboard parses, its panels do not overlap, and every PromQL expression names
#     only metrics (and labels) the gateway exports;
#   - `systemd-analyze verify` on the unit, with the binary path pointed at a stand-in;
#   - `portcullis check` on the config in the ConfigMap and in the chart's values, when
#     PORTCULLIS_BIN names a built binary (e.g. PORTCULLIS_BIN=target/debug/portcullis).
# Not checked here: docker build, helm lint/template, kubectl apply against a cluster.
set -euo pipefail
cd "$(dirname "$0")"
failed=0
fail() { echo "FAIL: $*"; failed=1; }
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

if command -v yamllint >/dev/null 2>&1; then
  yamllint -s -c .yamllint.yaml . && echo "ok: yamllint" || fail "yamllint"
else
  echo "skip: yamllint not installed"
fi

if command -v kubectl >/dev/null 2>&1; then
  if kubectl kustomize kubernetes >"$scratch/kustomized.yaml"; then
    python3 - "$scratch/kustomized.yaml" <<'PY' && echo "ok: kubectl kustomize" || fail "kustomize output"
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
kinds = sorted(f"{d['kind']}/{d['metadata']['name']}" for d in docs)
for d in docs:
    assert d["kind"] == "Namespace" or d["metadata"].get("namespace") == "portcullis", d["metadata"]
need = {"Namespace/portcullis", "ConfigMap/portcullis-config", "Deployment/portcullis",
        "Service/portcullis", "Service/portcullis-metrics", "PodDisruptionBudget/portcullis",
        "HorizontalPodAutoscaler/portcullis", "StatefulSet/redis", "Service/redis"}
missing = need - set(kinds)
assert not missing, missing
print("  " + ", ".join(kinds))
PY
  else
    fail "kubectl kustomize"
  fi
else
  echo "skip: kubectl not installed"
fi

python3 - grafana/portcullis-dashboard.json <<'PY' && echo "ok: grafana dashboard" || fail "grafana dashboard"
import json, re, sys
d = json.load(open(sys.argv[1]))
# Every metric the dashboard may use, with its labels (beside Prometheus' own instance/job).
METRICS = {
    "portcullis_requests_total": {"route", "method", "status_class"},
    "portcullis_request_duration_seconds_bucket": {"route", "le"},
    "portcullis_upstream_errors_total": {"upstream", "kind"},
    "portcullis_open_connections": set(),
    "portcullis_config_reloads_total": {"result"},
    "portcullis_stripped_headers_total": {"reason"},
    "portcullis_refused_requests_total": {"route", "reason"},
    "portcullis_auth_decisions_total": {"route", "result", "reason"},
    "portcullis_token_cache_total": {"result"},
    "portcullis_jwks_keys": {"provider"},
    "portcullis_jwks_state": {"provider"},
    "portcullis_jwks_last_success_timestamp_seconds": {"provider"},
    "portcullis_sign_ins_total": {"provider", "result"},
    "portcullis_session_refreshes_total": {"provider", "result"},
    "portcullis_session_store_up": set(),
    "portcullis_session_store_latency_seconds_bucket": {"op", "le"},
    "portcullis_session_store_errors_total": {"op", "kind"},
}
COMMON = {"instance", "job"}
assert d.get("schemaVersion", 0) >= 36, "schemaVersion"
assert any(i.get("name") == "DS_PROMETHEUS" for i in d.get("__inputs", [])), "DS_PROMETHEUS input"
exprs = []
for v in d["templating"]["list"]:
    q = v.get("query")
    if isinstance(q, dict):
        exprs.append((f"variable {v['name']}", q["query"]))
panels = [p for p in d["panels"] if p["type"] != "row"]
for p in panels:
    assert p["datasource"]["uid"] == "${DS_PROMETHEUS}", p["title"]
    assert p.get("targets"), p["title"]
    for t in p["targets"]:
        exprs.append((p["title"], t["expr"]))
errors = []
used = set()
for where, e in exprs:
    names = set(re.findall(r"\bportcullis_[a-z0-9_]+", e))
    if not names:
        errors.append(f"{where}: no portcullis metric in {e!r}")
    for n in names - METRICS.keys():
        errors.append(f"{where}: unknown metric {n}")
    used |= names
    known = [n for n in names if n in METRICS]
    allowed = set().union(*(METRICS[n] for n in known)) | COMMON if known else COMMON
    for sel in re.findall(r"portcullis_[a-z0-9_]+\{([^}]*)\}", e):
        for lbl in re.findall(r"([a-z_]+)\s*(?:=~|!~|!=|=)", sel):
            if lbl not in allowed:
                errors.append(f"{where}: label {lbl} not on {known}")
    for grp in re.findall(r"\bby\s*\(([^)]*)\)", e):
        for lbl in (x.strip() for x in grp.split(",")):
            if lbl and lbl not in allowed:
                errors.append(f"{where}: grouping label {lbl} not on {known}")
# Panels must not overlap on the 24-column grid.
cells = {}
for p in d["panels"]:
    g = p["gridPos"]
    assert g["x"] + g["w"] <= 24, p["title"]
    for yy in range(g["y"], g["y"] + g["h"]):
        for xx in range(g["x"], g["x"] + g["w"]):
            if (xx, yy) in cells:
                errors.append(f"panels overlap: {cells[(xx, yy)]!r} and {p['title']!r}")
            cells[(xx, yy)] = p["title"]
ids = [p["id"] for p in d["panels"]]
if len(ids) != len(set(ids)):
    errors.append("duplicate panel ids")
for e in dict.fromkeys(errors):
    print("  " + e)
print(f"  {len(panels)} panels, {len(exprs)} expressions, {len(used)} metrics used;"
      f" not used: {sorted(METRICS.keys() - used) or 'none'}")
sys.exit(1 if errors else 0)
PY

if command -v systemd-analyze >/dev/null 2>&1; then
  # The unit names /usr/local/bin/portcullis and /etc/portcullis/env, absent on a build machine:
  # verify a copy that points at stand-ins.
  cp /bin/true "$scratch/portcullis"
  cp systemd/env.example "$scratch/env"
  sed -e "s|/usr/local/bin/portcullis|$scratch/portcullis|g" -e "s|/etc/portcullis/env|$scratch/env|" \
    systemd/portcullis.service >"$scratch/portcullis.service"
  (cd "$scratch" && systemd-analyze verify ./portcullis.service) && echo "ok: systemd-analyze verify" \
    || fail "systemd-analyze verify"
else
  echo "skip: systemd-analyze not installed"
fi

if [ -n "${PORTCULLIS_BIN:-}" ]; then
  python3 - "$scratch" <<'PY'
import sys, yaml
out = sys.argv[1]
cm = next(yaml.safe_load_all(open("kubernetes/configmap.yaml")))
open(f"{out}/k8s.yaml", "w").write(cm["data"]["portcullis.yaml"])
config = yaml.safe_load(open("helm/portcullis/values.yaml"))["config"]
text = yaml.safe_dump(config).replace("{{ .Release.Name }}", "portcullis")
open(f"{out}/helm.yaml", "w").write(text)
PY
  for f in "$scratch/k8s.yaml" "$scratch/helm.yaml"; do
    PORTCULLIS_SESSION_SECRET="$(head -c 32 /dev/urandom | base64)" CORP_CLIENT_SECRET=example \
      REDIS_PASSWORD=example "$PORTCULLIS_BIN" check --config "$f" || fail "portcullis check $f"
  done
else
  echo "skip: portcullis check (set PORTCULLIS_BIN to a built binary)"
fi

if [ "$failed" -ne 0 ]; then
  echo "deploy/check.sh: some checks failed"
  exit 1
fi
echo "deploy/check.sh: all checks passed"
