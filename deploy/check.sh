#!/usr/bin/env bash
# Offline checks of the deployment artifacts in deploy/ (no cluster, no Docker, no Helm needed):
#   - yamllint on every YAML file (Helm templates excepted: they are Go templates), when
#     `yamllint` is on PATH (pip install yamllint);
#   - `kubectl kustomize deploy/kubernetes` renders, and its output parses, when kubectl exists;
#   - the Grafana dashboard parses, its panels do not overlap, and every PromQL expression names
#     only metrics (and labels) the gateway exports (metrics_catalogue.py reads src/metrics.rs);
#   - the Prometheus alert rules name only real metrics, and, when `promtool` exists (Debian's
#     prometheus package), pass `promtool check rules` and their unit tests (`promtool test
#     rules`); promtool also parses every dashboard expression;
#   - the Helm chart's values.schema.json covers values.yaml and validates it (python jsonschema);
#     `helm lint` and `helm template` when helm exists;
#   - `systemd-analyze verify` on the unit, with the binary path pointed at a stand-in;
#   - `portcullis check` on the config in the ConfigMap and in the chart's values, when
#     PORTCULLIS_BIN names a built binary (e.g. PORTCULLIS_BIN=target/debug/portcullis); with it,
#     a gateway started on loopback serves build_info, process_* and a configured provider's key
#     series at 0 on /metrics, which `promtool check metrics` lints.
# Not checked here: docker build, kubectl apply against a cluster.
set -euo pipefail
cd "$(dirname "$0")"
failed=0
fail() { echo "FAIL: $*"; failed=1; }
scratch="$(mktemp -d)"
gateway=""
trap '[ -n "$gateway" ] && kill "$gateway" 2>/dev/null; rm -rf "$scratch"' EXIT

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

python3 - grafana/portcullis-dashboard.json <<'PY' && echo "ok: grafana dashboard layout" || fail "grafana dashboard layout"
import json, sys
d = json.load(open(sys.argv[1]))
assert d.get("schemaVersion", 0) >= 36, "schemaVersion"
assert any(i.get("name") == "DS_PROMETHEUS" for i in d.get("__inputs", [])), "DS_PROMETHEUS input"
errors = []
panels = [p for p in d["panels"] if p["type"] != "row"]
for p in panels:
    assert p["datasource"]["uid"] == "${DS_PROMETHEUS}", p["title"]
    assert p.get("targets"), p["title"]
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
print(f"  {len(panels)} panels")
sys.exit(1 if errors else 0)
PY

# Every PromQL expression of the dashboard and of the alert rules names only metrics (and labels)
# that src/metrics.rs defines (plus the process_* collector and Prometheus' `up`).
python3 metrics_catalogue.py dashboard grafana/portcullis-dashboard.json "$scratch/dashboard-rules.json" \
  && echo "ok: dashboard expressions name real metrics" || fail "dashboard expressions"
python3 metrics_catalogue.py rules prometheus/portcullis-alerts.yaml \
  && echo "ok: alert rules name real metrics" || fail "alert rule metrics"

# promtool (Debian's prometheus package; tests/setup.sh installs it) parses the alert rules, runs
# their unit tests, and parses every dashboard expression (written above as recording rules).
if command -v promtool >/dev/null 2>&1; then
  promtool check rules prometheus/portcullis-alerts.yaml && echo "ok: promtool check rules" \
    || fail "promtool check rules"
  (cd prometheus && promtool test rules portcullis-alerts.test.yaml) && echo "ok: promtool test rules" \
    || fail "promtool test rules"
  if [ -s "$scratch/dashboard-rules.json" ]; then
    promtool check rules "$scratch/dashboard-rules.json" >/dev/null \
      && echo "ok: promtool parses every dashboard expression" || fail "dashboard PromQL"
  fi
else
  echo "skip: promtool not installed (apt-get install prometheus)"
fi

# The chart's values.schema.json: draft-07, describes every key of values.yaml (no key without
# a schema), accepts the defaults and refuses wrong types; every .Values path the templates use
# is in the schema. helm lint/template use the same schema, where Helm is installed.
python3 - helm/portcullis <<'PY' && echo "ok: helm values.schema.json" || fail "helm values.schema.json"
import json, re, sys, yaml
from pathlib import Path
chart = Path(sys.argv[1])
schema = json.load(open(chart / "values.schema.json"))
values = yaml.safe_load(open(chart / "values.yaml"))
errors = []
def walk(value, node, path):
    """Every key of values.yaml has a schema node (except under free-form objects)."""
    if isinstance(value, dict) and node.get("additionalProperties", True) is False:
        for key, sub in value.items():
            child = node.get("properties", {}).get(key)
            if child is None:
                errors.append(f"values.yaml key {path}{key} is not in values.schema.json")
            else:
                walk(sub, child, f"{path}{key}.")
def schema_has(path):
    node = schema
    for key in path:
        props = node.get("properties", {})
        if key in props:
            node = props[key]
        elif node.get("additionalProperties", True) is not False:
            return True
        else:
            return False
    return True
walk(values, schema, "")
for tpl in sorted((chart / "templates").glob("*")):
    for ref in sorted(set(re.findall(r"\.Values((?:\.[A-Za-z_][A-Za-z0-9_]*)+)", tpl.read_text()))):
        if not schema_has(ref.strip(".").split(".")):
            errors.append(f"{tpl.name}: .Values{ref} is not in values.schema.json")
try:
    import jsonschema
except ImportError:
    print("  jsonschema (python) not installed: the values were not validated against the schema")
else:
    jsonschema.Draft7Validator.check_schema(schema)
    v = jsonschema.Draft7Validator(schema)
    for e in v.iter_errors(values):
        errors.append(f"values.yaml: {'.'.join(map(str, e.path))}: {e.message}")
    # Values the schema must refuse.
    bad = [
        ("metrics", {"serviceMonitor": {"enabled": "yes"}}),
        ("metrics", {"serviceMonitor": {"enabled": True, "interval": "soon"}}),
        ("replicaCount", -1),
        ("ports", {"http": 70000, "admin": 9090}),
        ("service", {"type": "Public", "port": 80}),
        ("image", {"repository": "portcullis", "tag": "", "pullPolicy": "Sometimes"}),
        ("unknownKey", True),
    ]
    for key, value in bad:
        if v.is_valid({**values, key: value}):
            errors.append(f"the schema accepts {key}: {value!r}")
    ok = {**values, "metrics": {**values["metrics"], "serviceMonitor": {
        **values["metrics"]["serviceMonitor"], "enabled": True, "interval": "15s",
        "labels": {"release": "kube-prometheus-stack"}}}}
    for e in v.iter_errors(ok):
        errors.append(f"a valid ServiceMonitor setting refused: {e.message}")
for e in errors:
    print("  " + e)
sys.exit(1 if errors else 0)
PY

if command -v helm >/dev/null 2>&1; then
  helm lint helm/portcullis && echo "ok: helm lint" || fail "helm lint"
  if helm template portcullis helm/portcullis --set metrics.serviceMonitor.enabled=true \
      >"$scratch/chart.yaml"; then
    grep -q '^kind: ServiceMonitor' "$scratch/chart.yaml" && echo "ok: helm template (ServiceMonitor)" \
      || fail "helm template renders no ServiceMonitor"
  else
    fail "helm template"
  fi
else
  echo "skip: helm not installed (helm lint, helm template)"
fi

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
  # The real exposition: a gateway with a provider that cannot be reached yet serves
  # build_info, process_* and the provider's key series at 0 from start-up, and promtool's
  # linter accepts its /metrics.
  read -r port admin < <(python3 -c 'import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*(x.getsockname()[1] for x in s))')
  cat >"$scratch/metrics.yaml" <<YAML
server:
  listen: ["127.0.0.1:$port"]
  admin: "127.0.0.1:$admin"
  pid_file: "$scratch/portcullis.pid"
  upgrade_sock: "$scratch/portcullis.sock"
upstreams:
  app: {targets: ["127.0.0.1:9"]}
providers:
  nowhere: {issuer: "http://127.0.0.1:9", audiences: [api]}
routes:
  - {name: app, upstream: app, auth: public}
YAML
  "$PORTCULLIS_BIN" run --config "$scratch/metrics.yaml" >"$scratch/run.log" 2>&1 &
  gateway=$!
  for _ in $(seq 100); do
    curl -fsS "http://127.0.0.1:$admin/metrics" >"$scratch/metrics.txt" 2>/dev/null && break
    sleep 0.1
  done
  kill "$gateway" 2>/dev/null || true
  wait "$gateway" 2>/dev/null || true
  gateway=""
  if python3 - "$scratch/metrics.txt" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
need = [r'portcullis_build_info\{commit="[^"]+",version="[^"]+"\} 1',
        r'portcullis_jwks_keys\{provider="nowhere"\} 0', r'portcullis_jwks_state\{provider="nowhere"\} 0',
        r'process_resident_memory_bytes \d', r'process_open_fds \d', r'process_start_time_seconds \d']
missing = [n for n in need if not re.search(n, text)]
for n in missing:
    print(f"  /metrics lacks {n}")
sys.exit(1 if missing else 0)
PY
  then
    echo "ok: /metrics has build_info, process_* and the provider's key series at 0"
  else
    fail "/metrics of a fresh gateway (log: $(tail -3 "$scratch/run.log"))"
  fi
  if command -v promtool >/dev/null 2>&1; then
    promtool check metrics <"$scratch/metrics.txt" && echo "ok: promtool check metrics" \
      || fail "promtool check metrics"
  fi
else
  echo "skip: portcullis check and /metrics (set PORTCULLIS_BIN to a built binary)"
fi

if [ "$failed" -ne 0 ]; then
  echo "deploy/check.sh: some checks failed"
  exit 1
fi
echo "deploy/check.sh: all checks passed"
