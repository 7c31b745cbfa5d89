"""The Grafana dashboards in dashboards/: shape, datasource, variables, queries.

What a failure here means:
- test_generated_files_are_current: someone edited a JSON file by hand (or
  generate.py without regenerating); the JSON and its source disagree.
- test_no_hard_coded_datasource: a panel, target, variable or annotation names
  a concrete datasource instead of the ${datasource} variable, so the
  dashboard breaks on any Grafana whose Prometheus has another uid.
- test_queries_parse: a PromQL expression does not parse (promtool).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

TOP = Path(__file__).resolve().parents[2]
DASH = TOP / "dashboards"

EXPECTED = {
    "overview.json": ("healthprobe-overview", None),
    "invoiceninja.json": ("healthprobe-invoiceninja", "invoiceninja"),
    "mastodon.json": ("healthprobe-mastodon", "mastodon"),
    "openhands.json": ("healthprobe-openhands", "openhands"),
}

# The checks each built-in pack is planned to have: a pack dashboard must show
# every one of them somewhere.
PLANNED = {
    "invoiceninja": [
        "scheduler_fresh", "jobs_backlog", "jobs_stuck", "failed_jobs", "mysql_max_allowed_packet",
        "mysql_connection_headroom", "snappdf_binary", "pdf_no_store", "pdf_body", "pdf_robots_tag",
        "smtp_reachable", "storage_writable", "bootstrap_cache_writable", "public_storage_link",
        "env_update_secret", "env_mail_from", "laravel_log_errors", "migrations_pending", "upload_limit",
    ],
    "mastodon": [
        "web_health", "streaming_health", "request_id", "assets_fresh", "migrations_pending",
        "post_migrations_pending", "rails_env", "swap_present",
    ],
    "openhands": [
        "docker_reachable", "app_alive", "runtime_containers", "llm_endpoint", "file_store_persistent",
        "jwt_secret_fixed",
    ],
    "host": ["disk_free", "memory_available", "swap", "load"],
}

DS_VAR = {"type": "prometheus", "uid": "${datasource}"}


def load(name: str) -> dict:
    return json.loads((DASH / name).read_text())


def all_panels(dash: dict):
    for p in dash["panels"]:
        yield p
        yield from p.get("panels", [])


def walk(obj, path=""):
    """Yield (path, key, value) for every key in nested dicts/lists."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield path, k, v
            yield from walk(v, f"{path}.{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from walk(v, f"{path}[{i}]")


def exprs(dash: dict) -> list[tuple[str, str]]:
    """(where, PromQL) for every panel target, annotation and variable query."""
    out = []
    for p in all_panels(dash):
        for t in p.get("targets", []):
            out.append((f"panel {p['title']!r} target {t['refId']}", t["expr"]))
    for a in dash["annotations"]["list"]:
        if "expr" in a:
            out.append((f"annotation {a['name']!r}", a["expr"]))
    for v in dash["templating"]["list"]:
        if v["type"] == "query":
            m = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", v["definition"])
            assert m, f"variable {v['name']}: unexpected query {v['definition']}"
            out.append((f"variable {v['name']}", m.group(1)))
    return out


def substitute(expr: str, pack: str | None) -> str:
    """Replace Grafana's variables the way Grafana would for 'All' selections."""
    return (
        expr.replace("$__rate_interval", "1m")
        .replace("$job", "healthprobe")
        .replace("$instance", ".*")
        .replace("$severity", ".*")
        .replace("$pack", pack or ".*")
    )


def instant_queries(name: str, pack: str | None) -> list[tuple[str, str]]:
    """(where, PromQL) for every query of a dashboard, ready for /api/v1/query.

    Variables are substituted as for 'All' (and `$pack` as given), ranges are
    cut to 5s (a test's Prometheus holds seconds of data, not minutes), and a
    variable's `label_values(SELECTOR, LABEL)` is asked the way Grafana asks
    it: the values of LABEL among the series of SELECTOR.
    """
    dash = load(name)
    variables = {f"variable {v['name']}": v for v in dash["templating"]["list"]}
    out = []
    for where, e in exprs(dash):
        q = substitute(e, pack).replace("[1m]", "[5s]")
        if where in variables:
            label = variables[where]["definition"].rsplit(",", 1)[1].strip(" )")
            q = f"group by ({label}) ({q})"
        out.append((where, q))
    return out


def test_generated_files_are_current():
    r = subprocess.run([sys.executable, str(DASH / "generate.py"), "--check"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_exactly_the_expected_dashboards():
    assert sorted(p.name for p in DASH.glob("*.json")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_identity_and_schema(name):
    d = load(name)
    uid, pack = EXPECTED[name]
    assert d["uid"] == uid and len(uid) <= 40
    assert d["id"] is None, "exported dashboards must not carry a database id"
    assert d["schemaVersion"] >= 41
    assert "healthprobe" in d["tags"]
    assert d["title"].startswith("healthprobe / ")
    if pack:
        assert pack in d["tags"]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_variables(name):
    d = load(name)
    vs = {v["name"]: v for v in d["templating"]["list"]}
    assert {"datasource", "job", "instance", "pack", "severity"} <= set(vs)
    assert vs["datasource"]["type"] == "datasource" and vs["datasource"]["query"] == "prometheus"
    assert d["templating"]["list"][0]["name"] == "datasource", "datasource must come first: others query it"
    for n in ("instance", "severity"):
        assert vs[n]["type"] == "query" and vs[n]["multi"] and vs[n]["includeAll"]
        assert vs[n]["allValue"] == ".*"
    pack = EXPECTED[name][1]
    if pack:
        assert vs["pack"]["type"] == "constant" and vs["pack"]["query"] == pack
    else:
        assert vs["pack"]["type"] == "query" and vs["pack"]["multi"]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_no_hard_coded_datasource(name):
    d = load(name)
    seen = 0
    for path, key, value in walk(d):
        if key != "datasource" or path.startswith(".templating.list[0]"):
            continue
        if value == {"type": "grafana", "uid": "-- Grafana --"}:
            assert path.startswith(".annotations"), f"{path}: the Grafana built-in datasource outside annotations"
            continue
        assert value == DS_VAR, f"{path}.datasource = {value!r}"
        seen += 1
    assert seen > 10
    # and no concrete uid hides anywhere else (e.g. "datasourceUid")
    text = json.dumps(d)
    for m in re.finditer(r'"(?:datasource)?[uU]id":\s*"([^"]*)"', text):
        assert m.group(1) in ("${datasource}", "-- Grafana --", d["uid"]), m.group(0)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_panels_have_queries_ids_and_no_overlap(name):
    d = load(name)
    ids = [p["id"] for p in all_panels(d)]
    assert len(ids) == len(set(ids)), "duplicate panel ids"
    cells = {}
    for p in all_panels(d):
        g = p["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24, f"{p['title']} leaves the grid"
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{p['title']!r} overlaps {cells[(x, y)]!r}"
                cells[(x, y)] = p["title"]
        if p["type"] != "row":
            assert p.get("targets"), f"panel {p['title']!r} has no query"
            assert p.get("description"), f"panel {p['title']!r} explains nothing"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_check_queries_honour_the_variables(name):
    """Every query on a check family is filtered by job, instance, pack and severity."""
    d = load(name)
    for where, e in exprs(d):
        if where.startswith(("variable", "annotation")):
            continue
        for fam in re.findall(r"(healthprobe_(?:check|http|tls|log)_\w+)\{", e):
            assert 'instance=~"$instance"' in e and 'job=~"$job"' in e, f"{where}: {fam} unfiltered"
            if 'pack="host"' not in e:  # host panels pin their pack on purpose
                assert 'pack=~"$pack"' in e, f"{where}: {fam} ignores $pack"
                if fam != "healthprobe_check_value":
                    assert 'severity=~"$severity"' in e or 'severity="critical"' in e, f"{where}: ignores $severity"


def test_pack_dashboards_cover_their_checks():
    for name, (_, pack) in EXPECTED.items():
        text = "\n".join(e for _, e in exprs(load(name)))
        wanted = PLANNED["host"] if pack is None else PLANNED[pack]
        missing = [c for c in wanted if not re.search(rf"\b{c}\b", text)]
        assert not missing, f"{name} shows nothing of {missing}"


def test_overview_has_the_promised_panels():
    d = load("overview.json")
    by_title = {p["title"]: p for p in all_panels(d)}
    table = by_title["Checks, failing first"]
    assert table["type"] == "table"
    assert table["options"]["sortBy"] == [{"displayName": "State", "desc": False}]
    expr = table["targets"][0]["expr"]
    assert "group_left (severity, kind, title, doc)" in expr and "healthprobe_check_failure" in expr
    links = [o for o in table["fieldConfig"]["overrides"] if o["matcher"]["options"] in ("title", "doc")]
    assert len(links) == 2 and all("links" in str(o) for o in links)
    assert by_title["Check state (pack × check)"]["type"] == "stat"
    lag = by_title["Scheduler lag"]["targets"]
    assert [t["expr"].split(",")[0] for t in lag] == [
        "histogram_quantile(0.5", "histogram_quantile(0.9", "histogram_quantile(0.99"]
    for t in ("Up", "Config reload", "Memory (resident)", "CPU", "Run duration", "Last success age"):
        assert t in by_title, t


def test_queries_parse(tmp_path):
    """promtool parses every query (as a recording rule) after variable substitution."""
    rules = []
    for name, (_, pack) in EXPECTED.items():
        for i, (where, e) in enumerate(exprs(load(name))):
            e = substitute(e, pack)
            assert "$" not in e, f"{name} {where}: unsubstituted variable in {e}"
            rules.append({"record": f"dashboard:{name.split('.')[0]}:q{i}", "expr": e})
    assert len(rules) > 60
    f = tmp_path / "dash_rules.yaml"
    f.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    r = subprocess.run(["promtool", "check", "rules", str(f)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"SUCCESS: {len(rules)} rules found" in r.stdout


def test_provisioning_examples():
    ds = yaml.safe_load((DASH / "provisioning/datasources/prometheus.yaml").read_text())
    assert ds["apiVersion"] == 1 and ds["datasources"][0]["type"] == "prometheus"
    prov = yaml.safe_load((DASH / "provisioning/dashboards/healthprobe.yaml").read_text())
    assert prov["apiVersion"] == 1 and prov["providers"][0]["type"] == "file"
