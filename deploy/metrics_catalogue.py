"""The metrics the gateway exports, read from src/metrics.rs, and checks that PromQL expressions
(the Grafana dashboard's, the alert rules') name only those metrics and their labels.

Used by deploy/check.sh:
  python3 metrics_catalogue.py dashboard grafana/portcullis-dashboard.json OUT_RULES_FILE
  python3 metrics_catalogue.py rules prometheus/portcullis-alerts.yaml
`dashboard` also writes every dashboard expression (Grafana variables replaced by plain
values) as a recording rule to OUT_RULES_FILE, for `promtool check rules` to parse.
"""

import json
import re
import sys
from pathlib import Path

SOURCE = Path(__file__).resolve().parent.parent / "src" / "metrics.rs"

# The prometheus crate's process collector (Linux), registered by metrics::init.
PROCESS = {
    name: set()
    for name in (
        "process_cpu_seconds_total",
        "process_open_fds",
        "process_max_fds",
        "process_virtual_memory_bytes",
        "process_resident_memory_bytes",
        "process_start_time_seconds",
        "process_threads",
    )
}
# Prometheus' own series about each target.
PROMETHEUS = {"up": set(), "scrape_duration_seconds": set()}
# Labels Prometheus adds to every scraped series.
TARGET_LABELS = {"instance", "job"}


def catalogue(source=SOURCE):
    """Metric name -> label names, from each `pub static` definition in src/metrics.rs: the
    first "portcullis_..." string literal is the name, the first `&[...]` of string literals
    after it the labels (none: an unlabelled metric). Histograms give _bucket (with le), _sum
    and _count."""
    text = source.read_text()
    metrics = {}
    for block in re.split(r"\npub static ", text)[1:]:
        name = re.search(r'"(portcullis_[a-z0-9_]+)"', block)
        if not name:
            continue
        rest = block[name.end():]
        labels = re.search(r'&\[((?:\s*"[a-z_]+"\s*,?)+)\]', rest)
        names = set(re.findall(r'"([a-z_]+)"', labels.group(1))) if labels else set()
        if "Histogram" in block.split("=", 1)[0]:
            metrics[name.group(1) + "_bucket"] = names | {"le"}
            metrics[name.group(1) + "_sum"] = names
            metrics[name.group(1) + "_count"] = names
        else:
            metrics[name.group(1)] = names
    if len(metrics) < 20:
        raise SystemExit(f"only {len(metrics)} metrics found in {source}: the parser is out of date")
    return {**metrics, **PROCESS, **PROMETHEUS}


# PromQL words that are not metric names.
KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
    "bool", "offset", "inf", "nan",
}
FUNCTION = re.compile(r"\b([a-z_][a-z0-9_]*)\s*\(")


def names_in(expr):
    """The metric names an expression selects: identifiers that are not functions, keywords,
    label names inside braces or grouping lists, or string contents."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)          # strings
    e = re.sub(r"\{[^}]*\}", "{}", e)                     # selectors' matchers
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    e = re.sub(r"\[[^\]]*\]", "", e)                      # ranges
    functions = set(FUNCTION.findall(e))
    found = set()
    for m in re.finditer(r"(?<![\w.$])([a-zA-Z_:][a-zA-Z0-9_:]*)", e):
        word = m.group(1)
        after = e[m.end():].lstrip()
        if word in KEYWORDS or (word in functions and after.startswith("(")):
            continue
        found.add(word)
    return found


def check(where, expr, metrics, errors):
    """Appends to `errors` every unknown metric and every label no metric of `expr` has."""
    names = names_in(expr)
    if not names:
        errors.append(f"{where}: no metric in {expr!r}")
    for n in sorted(names - metrics.keys()):
        errors.append(f"{where}: unknown metric {n}")
    known = [n for n in names if n in metrics]
    allowed = set().union(*(metrics[n] for n in known)) | TARGET_LABELS
    for sel in re.findall(r"[a-z0-9_]+\s*\{([^}]*)\}", expr):
        for lbl in re.findall(r"([a-z_]+)\s*(?:=~|!~|!=|=)", sel):
            if lbl not in allowed:
                errors.append(f"{where}: label {lbl} not on {sorted(known)}")
    for grp in re.findall(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)", expr):
        for lbl in (x.strip() for x in grp.split(",")):
            if lbl and lbl not in allowed:
                errors.append(f"{where}: grouping label {lbl} not on {sorted(known)}")
    # {{ $labels.x }} in annotations must name a label the result can carry.
    return names


# Grafana's variables, as plain values a recording rule can hold.
GRAFANA_VARIABLES = {
    "$__rate_interval": "5m",
    "$__interval": "1m",
    "$__range": "1h",
    "$instance": ".*",
    "$route": ".*",
}


def plain(expr):
    for var, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(var, value)
    if "$" in expr:
        raise ValueError(f"unknown Grafana variable in {expr!r}")
    return expr


def dashboard(path, out):
    d = json.load(open(path))
    metrics = catalogue()
    exprs = []
    for v in d["templating"]["list"]:
        q = v.get("query")
        if isinstance(q, dict):
            # label_values(SELECTOR, label): Grafana's, not PromQL; the selector is.
            m = re.fullmatch(r"label_values\((.*),\s*([a-z_]+)\)", q["query"])
            if not m:
                raise SystemExit(f"variable {v['name']}: not label_values(...): {q['query']!r}")
            exprs.append((f"variable {v['name']}", m.group(1)))
    for p in d["panels"]:
        for t in p.get("targets", []):
            exprs.append((p["title"], t["expr"]))
    errors, used, rules = [], set(), []
    for i, (where, e) in enumerate(exprs):
        used |= check(where, e, metrics, errors)
        try:
            rules.append({"record": f"portcullis_dashboard:expr{i}", "expr": plain(e)})
        except ValueError as err:
            errors.append(f"{where}: {err}")
    # JSON is YAML: promtool reads it.
    Path(out).write_text(json.dumps({"groups": [{"name": "dashboard", "rules": rules}]}, indent=1))
    portcullis = {m for m in metrics if m.startswith("portcullis_")}
    print(f"  {len(exprs)} expressions, {len(used)} metrics used; portcullis metrics not shown:"
          f" {sorted(portcullis - used) or 'none'}")
    return errors


def rules(path):
    import yaml

    metrics = catalogue()
    errors, used, count = [], set(), 0
    for group in yaml.safe_load(open(path))["groups"]:
        for rule in group["rules"]:
            name = rule.get("alert") or rule.get("record")
            count += 1
            names = check(name, rule["expr"], metrics, errors)
            used |= names
            labels = set().union(*(metrics.get(n, set()) for n in names)) | TARGET_LABELS
            text = " ".join(rule.get("annotations", {}).values())
            for lbl in re.findall(r"\$labels\.([a-z_]+)", text):
                if lbl not in labels:
                    errors.append(f"{name}: annotation names label {lbl}, not on {sorted(names)}")
            if "alert" in rule:
                if rule.get("labels", {}).get("severity") not in {"critical", "warning", "info"}:
                    errors.append(f"{name}: severity must be critical, warning or info")
                if not {"summary", "description"} <= rule.get("annotations", {}).keys():
                    errors.append(f"{name}: needs a summary and a description")
    print(f"  {count} rules, {len(used)} metrics used")
    return errors


if __name__ == "__main__":
    what = sys.argv[1]
    errs = dashboard(sys.argv[2], sys.argv[3]) if what == "dashboard" else rules(sys.argv[2])
    for e in dict.fromkeys(errs):
        print("  " + e)
    sys.exit(1 if errs else 0)
