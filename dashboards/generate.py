#!/usr/bin/env python3
"""Generate healthprobe's Grafana dashboards (the *.json files beside this one).

The JSON files are what users import or provision; this script is their source,
so that the four dashboards share one set of variables, one way of joining
`healthprobe_check_info` and one datasource reference. Edit here, then run

    python3 dashboards/generate.py          # rewrite the JSON files
    python3 dashboards/generate.py --check  # exit 1 if a JSON file is out of date

and `helm/healthprobe/sync-files.sh` to refresh the chart's copies.
Standard library only (it runs before any venv exists).

Conventions (see dashboards/README.md):
- the only datasource reference is `${datasource}`, a variable of type
  prometheus; nothing names a concrete datasource;
- every check query is filtered by the variables job, instance, pack and
  severity; severity lives on `healthprobe_check_info`, so check queries are
  multiplied by it (`* on (instance, job, pack, check) group_left (...)`),
  which keeps the value (info is always 1) and can bring its labels along.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCHEMA_VERSION = 42  # Grafana's classic dashboard model, as of Grafana 12/13
DS = {"type": "prometheus", "uid": "${datasource}"}
GUIDES = "https://github.com/healthprobe/healthprobe/tree/main/checks"

# Selectors shared by every check query.
SEL = 'job=~"$job", instance=~"$instance", pack=~"$pack"'
AGENT = 'job=~"$job", instance=~"$instance"'
INFO = f'healthprobe_check_info{{{SEL}, severity=~"$severity"}}'
ON = "on (instance, job, pack, check)"


def joined(expr: str, keep: str = "") -> str:
    """`expr` restricted to the selected severities, optionally with info labels."""
    return f"({expr})\n* {ON} group_left ({keep})\n{INFO}"


def check_sel(checks: list[str] | None) -> str:
    """SEL, narrowed to some checks when given."""
    return SEL + (f', check=~"{"|".join(checks)}"' if checks else "")


# ----------------------------------------------------------------- panels


class Board:
    """Collects panels and lays them out left to right on Grafana's 24-column grid."""

    def __init__(self) -> None:
        self.panels: list[dict] = []
        self.x = 0
        self.y = 0
        self.row_h = 0
        self.next_id = 1

    def _place(self, w: int, h: int) -> dict:
        if self.x + w > 24:
            self.x, self.y, self.row_h = 0, self.y + self.row_h, 0
        pos = {"h": h, "w": w, "x": self.x, "y": self.y}
        self.x += w
        self.row_h = max(self.row_h, h)
        return pos

    def row(self, title: str) -> None:
        if self.x:
            self.x, self.y, self.row_h = 0, self.y + self.row_h, 0
        self.panels.append(
            {
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": self.y},
                "id": self._id(),
                "panels": [],
                "title": title,
                "type": "row",
            }
        )
        self.y += 1

    def _id(self) -> int:
        i = self.next_id
        self.next_id += 1
        return i

    def add(self, panel: dict, w: int, h: int) -> None:
        panel["id"] = self._id()
        panel["gridPos"] = self._place(w, h)
        panel["datasource"] = DS
        for i, t in enumerate(panel.get("targets", [])):
            t.setdefault("refId", chr(ord("A") + i))
            t["datasource"] = DS
        self.panels.append(panel)


def target(expr: str, legend: str = "__auto", instant: bool = False, fmt: str = "time_series") -> dict:
    t = {"editorMode": "code", "expr": expr, "legendFormat": legend, "range": not instant, "instant": instant}
    if fmt != "time_series":
        t["format"] = fmt
    return t


OK_FAIL = [
    {
        "type": "value",
        "options": {
            "0": {"color": "red", "index": 0, "text": "FAIL"},
            "1": {"color": "green", "index": 1, "text": "OK"},
        },
    }
]
UP_DOWN = [
    {
        "type": "value",
        "options": {
            "0": {"color": "red", "index": 0, "text": "DOWN"},
            "1": {"color": "green", "index": 1, "text": "UP"},
        },
    }
]


def thresholds(*steps: tuple[str, float | None]) -> dict:
    return {"mode": "absolute", "steps": [{"color": c, "value": v} for c, v in steps]}


def timeseries(title: str, targets: list[dict], unit: str = "short", desc: str = "", **custom) -> dict:
    return {
        "type": "timeseries",
        "title": title,
        "description": desc,
        "targets": targets,
        "fieldConfig": {
            "defaults": {
                "unit": unit,
                "color": {"mode": "palette-classic"},
                "custom": {
                    "drawStyle": "line",
                    "lineWidth": 1,
                    "fillOpacity": 10,
                    "showPoints": "never",
                    "spanNulls": False,
                    **custom,
                },
                "thresholds": thresholds(("green", None)),
            },
            "overrides": [],
        },
        "options": {
            "legend": {"displayMode": "table", "placement": "right", "showLegend": True, "calcs": ["lastNotNull", "max"]},
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
    }


def stat(title: str, targets: list[dict], unit: str = "short", desc: str = "", mappings=None,
         steps=(("green", None),), color_mode: str = "background", text_mode: str = "auto", links=None) -> dict:
    return {
        "type": "stat",
        "title": title,
        "description": desc,
        "targets": targets,
        "fieldConfig": {
            "defaults": {
                "unit": unit,
                "mappings": mappings or [],
                "thresholds": thresholds(*steps),
                "color": {"mode": "thresholds"},
                "links": links or [],
            },
            "overrides": [],
        },
        "options": {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": color_mode,
            "graphMode": "none",
            "justifyMode": "auto",
            "orientation": "auto",
            "textMode": text_mode,
            "wideLayout": True,
            "showPercentChange": False,
        },
    }


def bargauge(title: str, targets: list[dict], unit: str, steps, desc: str = "", min_=None) -> dict:
    defaults = {"unit": unit, "thresholds": thresholds(*steps), "color": {"mode": "thresholds"}}
    if min_ is not None:
        defaults["min"] = min_
    return {
        "type": "bargauge",
        "title": title,
        "description": desc,
        "targets": targets,
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "displayMode": "gradient",
            "orientation": "horizontal",
            "showUnfilled": True,
            "valueMode": "color",
            "namePlacement": "auto",
            "sizing": "auto",
        },
    }


def check_grid(title: str, checks: list[str] | None, legend: str, desc: str) -> dict:
    """One tile per check, OK green / FAIL red, each linking to its guide section."""
    sel = f"healthprobe_check_success{{{check_sel(checks)}}}"
    return stat(
        title,
        [target(joined(sel, "title, doc"), legend, instant=True)],
        desc=desc,
        mappings=OK_FAIL,
        steps=(("red", None), ("green", 1)),
        text_mode="value_and_name",
        links=[{"title": "Guide: ${__field.labels.title}", "url": "${__field.labels.doc}", "targetBlank": True}],
    )


def state_history(title: str, checks: list[str] | None, legend: str) -> dict:
    sel = f"healthprobe_check_success{{{check_sel(checks)}}}"
    return {
        "type": "status-history",
        "title": title,
        "description": "Each check's result over time (green passed, red failed).",
        "targets": [target(joined(sel), legend)],
        "fieldConfig": {
            "defaults": {
                "mappings": OK_FAIL,
                "thresholds": thresholds(("red", None), ("green", 1)),
                "color": {"mode": "thresholds"},
                "custom": {"fillOpacity": 80, "lineWidth": 0},
            },
            "overrides": [],
        },
        "options": {
            "showValue": "never",
            "rowHeight": 0.9,
            "colWidth": 0.9,
            "legend": {"showLegend": False, "displayMode": "list", "placement": "bottom"},
            "tooltip": {"mode": "single", "sort": "none"},
        },
    }


def failing_table(title: str) -> dict:
    """Every check with its state and reason; failing checks sort first.

    The reason comes from healthprobe_check_failure == 1; a passing check gets
    reason "ok", and a failing check without a failure series "unknown".
    """
    ok = f'label_replace(healthprobe_check_success{{{SEL}}} == 1, "reason", "ok", "", "")'
    bad = (
        f"(healthprobe_check_success{{{SEL}}} == 0)\n"
        f"  * {ON} group_left (reason)\n"
        f"  (healthprobe_check_failure{{{SEL}}} == 1)"
    )
    unknown = f'label_replace(healthprobe_check_success{{{SEL}}} == 0, "reason", "unknown", "", "")'
    expr = (
        f"(\n  {ok}\nor\n  {bad}\nor {ON}\n  {unknown}\n)\n"
        f"* {ON} group_left (severity, kind, title, doc)\n{INFO}"
    )
    link = [{"title": "Open the guide section", "url": "${__data.fields.doc}", "targetBlank": True}]
    return {
        "type": "table",
        "title": title,
        "description": "Every selected check, failing ones first, with the failure reason and a link to the guide section that explains the fix.",
        "targets": [target(expr, "", instant=True, fmt="table")],
        "transformations": [
            {
                "id": "organize",
                "options": {
                    "excludeByName": {"Time": True, "__name__": True, "job": True},
                    "indexByName": {
                        "Value": 0, "severity": 1, "pack": 2, "check": 3, "title": 4,
                        "reason": 5, "kind": 6, "instance": 7, "doc": 8,
                    },
                    "renameByName": {"Value": "State"},
                },
            }
        ],
        "fieldConfig": {
            "defaults": {"custom": {"align": "auto", "cellOptions": {"type": "auto"}, "filterable": True}},
            "overrides": [
                {
                    "matcher": {"id": "byName", "options": "State"},
                    "properties": [
                        {"id": "mappings", "value": OK_FAIL},
                        {"id": "custom.cellOptions", "value": {"type": "color-background"}},
                        {"id": "custom.width", "value": 70},
                    ],
                },
                {"matcher": {"id": "byName", "options": "title"}, "properties": [{"id": "links", "value": link}]},
                {
                    "matcher": {"id": "byName", "options": "doc"},
                    "properties": [{"id": "links", "value": [{"title": "Open", "url": "${__value.raw}", "targetBlank": True}]}],
                },
                {
                    "matcher": {"id": "byName", "options": "severity"},
                    "properties": [
                        {
                            "id": "mappings",
                            "value": [
                                {
                                    "type": "value",
                                    "options": {
                                        "critical": {"color": "red", "index": 0},
                                        "warning": {"color": "orange", "index": 1},
                                        "info": {"color": "blue", "index": 2},
                                    },
                                }
                            ],
                        },
                        {"id": "custom.cellOptions", "value": {"type": "color-text"}},
                    ],
                },
            ],
        },
        "options": {"showHeader": True, "cellHeight": "sm", "sortBy": [{"displayName": "State", "desc": False}],
                    "footer": {"show": False, "reducer": ["sum"], "fields": ""}},
    }


def value_ts(title: str, check: str, unit: str, desc: str, pack: str | None = None, legend: str = "{{instance}}") -> dict:
    sel = SEL if pack is None else f'job=~"$job", instance=~"$instance", pack="{pack}"'
    expr = f'healthprobe_check_value{{{sel}, check="{check}"}}'
    return timeseries(title, [target(expr, legend)], unit, desc)


def durations(title: str, checks: list[str] | None, legend: str) -> dict:
    expr = joined(f"healthprobe_check_duration_seconds{{{check_sel(checks)}}}")
    return timeseries(title, [target(expr, legend)], "s", "How long each check's last run took (its timeout bounds it).")


def http_phases(title: str, checks: list[str] | None, legend: str) -> dict:
    expr = joined(f"healthprobe_http_phase_duration_seconds{{{check_sel(checks)}}}")
    return timeseries(title, [target(expr, legend)], "s",
                      "Where an HTTP check's time goes: DNS resolve, TCP connect, TLS handshake, server processing (time to first byte), transfer.",
                      stacking={"mode": "normal", "group": "A"}, fillOpacity=40)


def http_status(title: str, checks: list[str] | None, legend: str) -> dict:
    expr = joined(f"healthprobe_http_status_code{{{check_sel(checks)}}}")
    return stat(title, [target(expr, legend, instant=True)], "none",
                "The HTTP status code of each HTTP check's last response.",
                steps=(("green", None), ("orange", 300), ("red", 400)), color_mode="value", text_mode="value_and_name")


def tls_left(title: str, checks: list[str] | None, legend: str) -> dict:
    expr = joined(f"healthprobe_tls_cert_not_after_timestamp_seconds{{{check_sel(checks)}}} - time()")
    return bargauge(title, [target(expr, legend, instant=True)], "s",
                    (("red", None), ("orange", 3 * 86400), ("green", 14 * 86400)),
                    "Time left before the certificate each TLS-speaking check saw expires. Alerts: warning under 14 days, critical under 3.")


def log_matches(title: str, checks: list[str] | None, legend: str) -> dict:
    expr = joined(f"increase(healthprobe_log_matches_total{{{check_sel(checks)}}}[$__rate_interval])")
    return timeseries(title, [target(expr, legend)], "short",
                      "New log lines matching each known error signature, per interval.",
                      drawStyle="bars", fillOpacity=60)


def failure_ratio(title: str, checks: list[str] | None, legend: str) -> dict:
    failed = f'healthprobe_check_runs_total{{{check_sel(checks)}, result="failure"}}'
    runs = f"healthprobe_check_runs_total{{{check_sel(checks)}}}"
    expr = joined(
        f"sum by (instance, job, pack, check) (rate({failed}[$__rate_interval]))\n"
        f"/ sum by (instance, job, pack, check) (rate({runs}[$__rate_interval]))"
    )
    return timeseries(title, [target(expr, legend)], "percentunit",
                      "Share of runs that failed (from healthprobe_check_runs_total). A check that flaps shows here before it alerts.", min=0)


# -------------------------------------------------------------- dashboards


def variables(pack: str | None) -> list[dict]:
    def query(name: str, label: str, q: str, multi: bool = True) -> dict:
        return {
            "name": name,
            "label": label,
            "type": "query",
            "datasource": DS,
            "definition": q,
            "query": {"qryType": 1, "query": q, "refId": "PrometheusVariableQueryEditor-VariableQuery"},
            "refresh": 2,
            "regex": "",
            "sort": 1,
            "multi": multi,
            "includeAll": multi,
            **({"allValue": ".*"} if multi else {}),
            "current": {"selected": True, "text": ["All"], "value": ["$__all"]} if multi else {},
            "options": [],
            "hide": 0,
        }

    out = [
        {
            "name": "datasource",
            "label": "Data source",
            "type": "datasource",
            "query": "prometheus",
            "regex": "",
            "current": {},
            "options": [],
            "hide": 0,
            "includeAll": False,
            "multi": False,
            "refresh": 1,
        },
        query("job", "Job", "label_values(healthprobe_build_info, job)", multi=False),
        query("instance", "Instance", 'label_values(healthprobe_build_info{job=~"$job"}, instance)'),
    ]
    if pack is None:
        out.append(query("pack", "Pack", 'label_values(healthprobe_check_info{job=~"$job", instance=~"$instance"}, pack)'))
    else:
        out.append({"name": "pack", "label": "Pack", "type": "constant", "query": pack, "hide": 2,
                    "current": {"text": pack, "value": pack}, "options": [{"selected": True, "text": pack, "value": pack}]})
    out.append(query("severity", "Severity", f"label_values(healthprobe_check_info{{{SEL}}}, severity)"))
    return out


def dashboard(uid: str, title: str, desc: str, pack: str | None, board: Board) -> dict:
    return {
        "__comment": "Generated by dashboards/generate.py: edit that, not this file.",
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                },
                {
                    "datasource": DS,
                    "enable": True,
                    "hide": False,
                    "iconColor": "red",
                    "name": "healthprobe alerts firing",
                    "expr": f'ALERTS{{alertname=~"Healthprobe.*", alertstate="firing", {AGENT}, pack=~"$pack"}}',
                    "step": "60s",
                    "titleFormat": "{{alertname}}",
                    "textFormat": "{{pack}}/{{check}} {{title}}",
                    "useValueForTime": False,
                },
            ]
        },
        "description": desc,
        "editable": True,
        "fiscalYearStartMonth": 0,
        "graphTooltip": 1,
        "id": None,
        "links": [
            {"type": "dashboards", "tags": ["healthprobe"], "asDropdown": True, "includeVars": True,
             "keepTime": True, "title": "healthprobe", "icon": "external link", "targetBlank": False,
             "tooltip": "", "url": ""}
        ],
        "panels": board.panels,
        "refresh": "1m",
        "schemaVersion": SCHEMA_VERSION,
        "tags": ["healthprobe"] + ([pack] if pack else ["overview"]),
        "templating": {"list": variables(pack)},
        "time": {"from": "now-6h", "to": "now"},
        "timepicker": {},
        "timezone": "browser",
        "title": title,
        "uid": uid,
        "version": 1,
        "weekStart": "",
    }


def overview() -> dict:
    b = Board()
    leg = "{{pack}}/{{check}}"
    b.row("Checks")
    b.add(stat("Failing checks", [target(f"count({joined(f'healthprobe_check_success{{{SEL}}} == 0')}) or vector(0)", "failing", instant=True)],
               desc="Selected checks whose last run failed.", steps=(("green", None), ("red", 1))), 4, 4)
    crit = joined(f"healthprobe_check_success{{{SEL}}} == 0").replace('severity=~"$severity"', 'severity="critical"')
    b.add(stat("Failing critical", [target(f"count({crit}) or vector(0)", "critical", instant=True)],
               desc="Failing checks of severity critical.", steps=(("green", None), ("red", 1))), 4, 4)
    b.add(stat("Checks configured", [target(f"sum(healthprobe_checks_configured{{{SEL}}})", "checks", instant=True)],
               desc="Checks the agents have configured (healthprobe_checks_configured).", color_mode="value"), 4, 4)
    b.add(stat("Agents up", [target(f'sum(up{{{AGENT}}}) or vector(0)', "up", instant=True)],
               desc="Agents Prometheus scraped successfully.", color_mode="value",
               steps=(("red", None), ("green", 1))), 4, 4)
    b.add(stat("Stale checks", [target(
        f"count({joined(f'time() - healthprobe_check_last_run_timestamp_seconds{{{SEL}}} > 3 * healthprobe_check_interval_seconds{{{SEL}}}')}) or vector(0)",
        "stale", instant=True)],
        desc="Checks that have not run for three of their intervals (alert HealthprobeCheckStale).",
        steps=(("green", None), ("orange", 1))), 4, 4)
    b.add(stat("Alerts firing", [target(f'count(ALERTS{{alertname=~"Healthprobe.*", alertstate="firing", {AGENT}}}) or vector(0)', "alerts", instant=True)],
               desc="healthprobe alerts firing now, as Prometheus evaluates dashboards/alerts.yaml.",
               steps=(("green", None), ("red", 1))), 4, 4)
    b.add(check_grid("Check state (pack × check)", None, leg,
                     "Last result of every selected check. Click a tile for its guide section."), 24, 8)
    b.add(failing_table("Checks, failing first"), 24, 10)
    b.add(state_history("Check state over time", None, leg), 24, 8)

    b.row("Timing")
    b.add(durations("Run duration", None, leg), 12, 8)
    age = joined(f"time() - (healthprobe_check_last_success_timestamp_seconds{{{SEL}}} > 0)")
    b.add(bargauge("Last success age", [target(age, leg, instant=True)], "s",
                   (("green", None), ("orange", 300), ("red", 3600)),
                   "Time since each check last passed. A check that never passed is not shown."), 12, 8)
    staleness = joined(f"(time() - healthprobe_check_last_run_timestamp_seconds{{{SEL}}}) / healthprobe_check_interval_seconds{{{SEL}}}")
    ts = timeseries("Run age in intervals", [target(staleness, leg)], "short",
                    "Time since each check last ran, divided by its interval. Above 3 the check is stale and HealthprobeCheckStale fires.",
                    thresholdsStyle={"mode": "line"})
    ts["fieldConfig"]["defaults"]["thresholds"] = thresholds(("green", None), ("red", 3))
    b.add(ts, 12, 8)
    b.add(failure_ratio("Failure ratio", None, leg), 12, 8)

    b.row("HTTP, TLS and logs")
    b.add(http_phases("HTTP phases", None, "{{pack}}/{{check}} {{phase}}"), 12, 8)
    b.add(tls_left("TLS certificate expiry", None, leg), 12, 8)
    b.add(http_status("HTTP status", None, leg), 12, 6)
    b.add(log_matches("Log error signatures", None, "{{pack}}/{{check}} {{signature}}"), 12, 6)

    b.row("Host (pack host)")
    for check, title, unit in (("disk_free", "Disk free", "short"), ("memory_available", "Memory available", "short"),
                               ("swap", "Swap", "short"), ("load", "Load", "short")):
        b.add(value_ts(title, check, unit, f"healthprobe_check_value of host/{check}, as the host pack measures it.",
                       pack="host"), 6, 7)

    b.row("Agent")
    b.add(stat("Up", [target(f"up{{{AGENT}}}", "{{instance}}", instant=True)], desc="Prometheus' scrape of each agent.",
               mappings=UP_DOWN, steps=(("red", None), ("green", 1)), text_mode="value_and_name"), 6, 5)
    b.add(stat("Config reload", [target(f"healthprobe_config_last_reload_successful{{{AGENT}}}", "{{instance}}", instant=True)],
               desc="Whether the last configuration reload succeeded (alert HealthprobeConfigReloadFailed).",
               mappings=OK_FAIL, steps=(("red", None), ("green", 1)), text_mode="value_and_name"), 6, 5)
    b.add(stat("Last successful reload", [target(f"time() - healthprobe_config_last_reload_success_timestamp_seconds{{{AGENT}}}", "{{instance}}", instant=True)],
               "s", "Time since the configuration was last loaded successfully.", color_mode="value", text_mode="value_and_name"), 6, 5)
    bi = {"type": "table", "title": "Build", "description": "healthprobe_build_info: version and revision per agent.",
          "targets": [target(f"healthprobe_build_info{{{AGENT}}}", "", instant=True, fmt="table")],
          "transformations": [{"id": "organize", "options": {"excludeByName": {"Time": True, "Value": True, "__name__": True}}}],
          "fieldConfig": {"defaults": {}, "overrides": []}, "options": {"showHeader": True, "cellHeight": "sm"}}
    b.add(bi, 6, 5)
    lag = f"sum by (instance, le) (rate(healthprobe_scheduler_lag_seconds_bucket{{{AGENT}}}[$__rate_interval]))"
    b.add(timeseries("Scheduler lag", [target(f"histogram_quantile({q}, {lag})", f"p{int(q * 100)} {{{{instance}}}}") for q in (0.5, 0.9, 0.99)],
                     "s", "How late checks start compared to their schedule (quantiles of healthprobe_scheduler_lag_seconds). Growing lag means the agent is overloaded: raise concurrency or intervals."), 12, 8)
    b.add(bargauge("Checks configured by pack", [target(f"healthprobe_checks_configured{{{SEL}}}", "{{instance}} {{pack}}", instant=True)],
                   "short", (("green", None),), "healthprobe_checks_configured per pack.", min_=0), 12, 8)
    b.add(timeseries("Memory (resident)", [target(f"process_resident_memory_bytes{{{AGENT}}}", "{{instance}}")], "bytes",
                     "Resident memory of the agent process."), 6, 7)
    b.add(timeseries("CPU", [target(f"rate(process_cpu_seconds_total{{{AGENT}}}[$__rate_interval])", "{{instance}}")], "short",
                     "CPU used by the agent, in cores."), 6, 7)
    b.add(timeseries("Open file descriptors", [target(f"process_open_fds{{{AGENT}}} / process_max_fds{{{AGENT}}}", "{{instance}}")],
                     "percentunit", "Open file descriptors as a share of the limit.", min=0), 6, 7)
    render = f"sum by (instance, le) (rate(healthprobe_metrics_render_duration_seconds_bucket{{{AGENT}}}[$__rate_interval]))"
    b.add(timeseries("/metrics render time", [target(f"histogram_quantile(0.99, {render})", "p99 {{instance}}")], "s",
                     "Time to put the /metrics page together (healthprobe_metrics_render_duration_seconds), without sending it: "
                     "a few milliseconds for 10,000 checks. Prometheus' own scrape_duration_seconds adds the transfer."), 6, 7)
    return dashboard("healthprobe-overview", "healthprobe / Overview",
                     "Every healthprobe check: state, failures with their guide links, timings, and the agent's own health.", None, b)


def pack_header(b: Board, pack: str) -> None:
    b.row("Checks")
    b.add(check_grid(f"{pack} checks", None, "{{check}}", "Last result of every check of this pack. Click a tile for its guide section."), 24, 7)
    b.add(failing_table("Checks, failing first"), 24, 9)


def pack_footer(b: Board) -> None:
    b.row("All checks of this pack")
    b.add(state_history("Check state over time", None, "{{check}}"), 24, 8)
    b.add(durations("Run duration", None, "{{check}}"), 12, 8)
    b.add(failure_ratio("Failure ratio", None, "{{check}}"), 12, 8)


def invoiceninja() -> dict:
    b = Board()
    pack_header(b, "invoiceninja")
    b.row("Queue and scheduler")
    b.add(check_grid("Scheduler and queue", ["scheduler_fresh", "jobs_backlog", "jobs_stuck", "failed_jobs"], "{{check}}",
                     "The Laravel scheduler (cron) must run every minute and the queue worker must drain the jobs table."), 24, 4)
    b.add(value_ts("Jobs backlog", "jobs_backlog", "short", "Rows waiting in the jobs table (check jobs_backlog). A backlog that only grows means no queue worker runs."), 8, 8)
    b.add(value_ts("Failed jobs", "failed_jobs", "short", "Rows in failed_jobs (check failed_jobs): emails and PDFs that were not sent or made."), 8, 8)
    b.add(value_ts("Stuck jobs", "jobs_stuck", "short", "Jobs reserved for too long (check jobs_stuck): a worker died mid-job."), 8, 8)
    b.add(value_ts("Scheduler freshness", "scheduler_fresh", "s", "Age of the scheduler's last run as the check measures it (check scheduler_fresh). Above a few minutes, cron is not running `artisan schedule:run`."), 24, 7)
    b.row("PDF")
    pdf = ["pdf_no_store", "pdf_body", "pdf_robots_tag", "snappdf_binary"]
    b.add(check_grid("PDF checks", pdf, "{{check}}",
                     "PDFs must be served with Cache-Control no-store and X-Robots-Tag, start with %PDF-, and snappdf's Chromium must be runnable."), 24, 4)
    b.add(http_phases("PDF request phases", pdf[:3], "{{check}} {{phase}}"), 12, 8)
    b.add(http_status("PDF HTTP status", pdf[:3], "{{check}}"), 12, 8)
    b.row("Database and mail")
    b.add(check_grid("MySQL and SMTP", ["mysql_max_allowed_packet", "mysql_connection_headroom", "smtp_reachable", "env_mail_from"], "{{check}}",
                     "MySQL settings Invoice Ninja needs, and whether mail can leave."), 24, 4)
    b.add(value_ts("MySQL max_allowed_packet", "mysql_max_allowed_packet", "bytes", "max_allowed_packet as the server reports it (check mysql_max_allowed_packet)."), 8, 7)
    b.add(value_ts("MySQL connection headroom", "mysql_connection_headroom", "short", "Free connections left before max_connections, as the check measures it (check mysql_connection_headroom)."), 8, 7)
    b.add(durations("SMTP handshake time", ["smtp_reachable"], "{{check}}"), 8, 7)
    b.row("Files, configuration and logs")
    b.add(check_grid("Files and configuration",
                     ["storage_writable", "bootstrap_cache_writable", "public_storage_link", "env_update_secret", "migrations_pending", "upload_limit", "laravel_log_errors"],
                     "{{check}}", "Permissions, symlinks, .env settings, migrations and upload limits from the guide."), 24, 4)
    b.add(value_ts("Pending migrations", "migrations_pending", "short", "Migrations not yet run (check migrations_pending): run `php artisan migrate --force`."), 12, 7)
    b.add(log_matches("laravel.log errors by signature", ["laravel_log_errors"], "{{signature}}"), 12, 7)
    pack_footer(b)
    return dashboard("healthprobe-invoiceninja", "healthprobe / Invoice Ninja",
                     "Invoice Ninja v5 as healthprobe sees it: queue and scheduler, PDF generation and headers, MySQL, mail, files.",
                     "invoiceninja", b)


def mastodon() -> dict:
    b = Board()
    pack_header(b, "mastodon")
    web = ["web_health", "streaming_health", "request_id"]
    b.row("Web and streaming")
    b.add(check_grid("Endpoints", web, "{{check}}", "Puma (/health), the streaming server (/api/v1/streaming/health) and the X-Request-Id header nginx must pass."), 24, 4)
    b.add(http_phases("Request phases", web, "{{check}} {{phase}}"), 12, 8)
    b.add(durations("Response time", web, "{{check}}"), 12, 8)
    b.add(http_status("HTTP status", web, "{{check}}"), 12, 6)
    b.add(tls_left("TLS certificate expiry", web, "{{check}}"), 12, 6)
    b.row("Deployment state")
    b.add(check_grid("Deployment", ["assets_fresh", "migrations_pending", "post_migrations_pending", "rails_env"], "{{check}}",
                     "After an upgrade: precompiled assets, migrations and post-deployment migrations, RAILS_ENV=production."), 24, 4)
    b.add(value_ts("Pending migrations", "migrations_pending", "short", "Pre-deployment migrations not yet run (check migrations_pending)."), 12, 7)
    b.add(value_ts("Pending post-deployment migrations", "post_migrations_pending", "short",
                   "Post-deployment migrations not yet run (check post_migrations_pending): run them with SKIP_POST_DEPLOYMENT_MIGRATIONS unset once the new code is live."), 12, 7)
    b.row("Host")
    b.add(check_grid("Swap", ["swap_present"], "{{check}}", "Mastodon's guide asks for swap on small hosts (check swap_present)."), 6, 7)
    b.add(value_ts("Memory available (host pack)", "memory_available", "short", "healthprobe_check_value of host/memory_available.", pack="host"), 9, 7)
    b.add(value_ts("Swap (host pack)", "swap", "short", "healthprobe_check_value of host/swap.", pack="host"), 9, 7)
    pack_footer(b)
    return dashboard("healthprobe-mastodon", "healthprobe / Mastodon",
                     "Mastodon as healthprobe sees it: web and streaming endpoints, request ids, deployment state, swap.",
                     "mastodon", b)


def openhands() -> dict:
    b = Board()
    pack_header(b, "openhands")
    b.row("Docker and runtimes")
    b.add(check_grid("Docker", ["docker_reachable", "app_alive", "runtime_containers"], "{{check}}",
                     "OpenHands needs the Docker socket, its app container, and starts one runtime container per conversation."), 24, 4)
    b.add(value_ts("Runtime containers", "runtime_containers", "short", "Sandbox runtime containers counted by the check runtime_containers. Leftovers pile up when conversations end uncleanly."), 12, 8)
    b.add(durations("Docker API and app response time", ["docker_reachable", "app_alive"], "{{check}}"), 12, 8)
    b.row("LLM")
    b.add(check_grid("LLM endpoint", ["llm_endpoint"], "{{check}}", "The LLM endpoint (LiteLLM, Ollama, vLLM…) answers from where OpenHands runs."), 6, 8)
    b.add(http_phases("LLM endpoint phases", ["llm_endpoint", "app_alive"], "{{check}} {{phase}}"), 18, 8)
    b.row("State and secrets")
    b.add(check_grid("Persistence", ["file_store_persistent", "jwt_secret_fixed"], "{{check}}",
                     "Conversations survive restarts only with a persistent file store and a fixed JWT secret."), 24, 4)
    pack_footer(b)
    return dashboard("healthprobe-openhands", "healthprobe / OpenHands",
                     "OpenHands as healthprobe sees it: Docker socket, app, sandbox runtimes, LLM endpoint, persistence.",
                     "openhands", b)


DASHBOARDS = {
    "overview.json": overview,
    "invoiceninja.json": invoiceninja,
    "mastodon.json": mastodon,
    "openhands.json": openhands,
}


def render(fn) -> str:
    return json.dumps(fn(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    for name, fn in DASHBOARDS.items():
        text = render(fn)
        path = HERE / name
        if check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            path.write_text(text)
    if stale:
        print("out of date (run python3 dashboards/generate.py): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
