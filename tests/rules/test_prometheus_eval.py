"""Every dashboard query and alert rule, evaluated by a real Prometheus.

A stand-in exporter serves the metric families of the contract (DESIGN.md,
"Metrics") for every planned check of every built-in pack, some passing and
some failing; Debian's Prometheus scrapes it every second under
job="healthprobe" and loads dashboards/alerts.yaml. Then:

- every panel query, annotation query and variable query of the four
  dashboards runs through /api/v1/query without error and returns series
  (joins with healthprobe_check_info, label_replace, histogram_quantile...
  fail at evaluation time, not at parse time: this is where they would);
- every rule evaluates with health "ok", and exactly the alerts the stand-in's
  state calls for are pending (their `for` keeps them from firing during a
  test this short; tests/rules/alerts_test.yaml covers the timing).

The stand-in covers every planned check of every pack at once; the same
assertions against the real agent, and the alerts going to firing, are in
test_real_agent.py.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from test_dashboards import EXPECTED, PLANNED, instant_queries, load, substitute

TOP = Path(__file__).resolve().parents[2]

HTTP_CHECKS = {"pdf_no_store", "pdf_body", "pdf_robots_tag", "web_health", "streaming_health", "request_id",
               "llm_endpoint", "app_alive"}
FAILING = {  # (pack, check): reason
    ("invoiceninja", "scheduler_fresh"): "timeout",          # critical
    ("invoiceninja", "pdf_no_store"): "assertion_failed",    # warning
    ("host", "swap"): "not_found",                            # info
}
SEVERITY = {("invoiceninja", "scheduler_fresh"): "critical", ("invoiceninja", "pdf_no_store"): "warning",
            ("host", "swap"): "info"}
STALE = ("openhands", "jwt_secret_fixed")
TLS_SOON = ("mastodon", "web_health")
ORPHAN = ("demo", "orphan")  # results without healthprobe_check_info
REASONS = ["assertion_failed", "timeout", "connection_refused", "dns_error", "tls_error", "permission_denied",
           "not_found", "auth_failed", "protocol_error", "internal_error"]


class Exporter:
    """Serves an exposition like the agent's; counters grow on every scrape."""

    def __init__(self):
        self.scrapes = 0
        self.lock = threading.Lock()

    def text(self) -> str:
        with self.lock:
            self.scrapes += 1
            n = self.scrapes
        now = time.time()
        out: list[str] = []

        def fam(name, typ, help_):
            out.append(f"# HELP {name} {help_}")
            out.append(f"# TYPE {name} {typ}")

        def s(name, labels, value):
            lab = ",".join(f'{k}="{v}"' for k, v in labels.items())
            out.append(f"{name}{{{lab}}} {value}")

        checks = [(p, c) for p, cs in PLANNED.items() for c in cs] + [ORPHAN]

        def L(p, c, **extra):
            return {"pack": p, "check": c, **extra}

        fam("healthprobe_check_success", "gauge", "1 if the last run passed.")
        for p, c in checks:
            s("healthprobe_check_success", L(p, c), 0 if (p, c) in FAILING else 1)
        fam("healthprobe_check_failure", "gauge", "1 for the current failure reason.")
        for (p, c), reason in FAILING.items():
            for r in REASONS:
                s("healthprobe_check_failure", L(p, c, reason=r), 1 if r == reason else 0)
        fam("healthprobe_check_value", "gauge", "Measured value.")
        for i, (p, c) in enumerate(checks):
            s("healthprobe_check_value", L(p, c), i + n % 5)
        fam("healthprobe_check_duration_seconds", "gauge", "Last run duration.")
        for i, (p, c) in enumerate(checks):
            s("healthprobe_check_duration_seconds", L(p, c), 0.01 * (i + 1))
        fam("healthprobe_check_last_run_timestamp_seconds", "gauge", "Last run.")
        for p, c in checks:
            s("healthprobe_check_last_run_timestamp_seconds", L(p, c), now - (1000 if (p, c) == STALE else 2))
        fam("healthprobe_check_last_success_timestamp_seconds", "gauge", "Last success.")
        for p, c in checks:
            s("healthprobe_check_last_success_timestamp_seconds", L(p, c), now - (3600 if (p, c) in FAILING else 2))
        fam("healthprobe_check_interval_seconds", "gauge", "Configured interval.")
        for p, c in checks:
            s("healthprobe_check_interval_seconds", L(p, c), 30)
        fam("healthprobe_check_runs_total", "counter", "Runs by result.")
        for p, c in checks:
            bad = (p, c) in FAILING
            s("healthprobe_check_runs_total", L(p, c, result="success"), 0 if bad else n)
            s("healthprobe_check_runs_total", L(p, c, result="failure"), n if bad else 0)
        fam("healthprobe_check_info", "gauge", "Check metadata.")
        for p, c in checks:
            if (p, c) == ORPHAN:
                continue
            sev = SEVERITY.get((p, c), "warning")
            kind = "http" if c in HTTP_CHECKS else "file"
            s("healthprobe_check_info", L(p, c, kind=kind, severity=sev, title=f"Title of {c}",
                                           doc=f"https://example.org/{p}#{c}"), 1)
        fam("healthprobe_http_phase_duration_seconds", "gauge", "HTTP phases.")
        fam_http = [(p, c) for p, c in checks if c in HTTP_CHECKS]
        for p, c in fam_http:
            for ph in ("resolve", "connect", "tls", "processing", "transfer"):
                s("healthprobe_http_phase_duration_seconds", L(p, c, phase=ph), 0.001)
        fam("healthprobe_http_status_code", "gauge", "HTTP status.")
        for p, c in fam_http:
            s("healthprobe_http_status_code", L(p, c), 200)
        fam("healthprobe_tls_cert_not_after_timestamp_seconds", "gauge", "Certificate expiry.")
        for p, c in fam_http:
            s("healthprobe_tls_cert_not_after_timestamp_seconds", L(p, c), now + (10 if (p, c) == TLS_SOON else 90) * 86400)
        fam("healthprobe_log_matches_total", "counter", "Log lines per signature.")
        for sig in ("sql_error", "memory_exhausted"):
            s("healthprobe_log_matches_total", L("invoiceninja", "laravel_log_errors", signature=sig), 3 * n)
        fam("healthprobe_build_info", "gauge", "Build.")
        s("healthprobe_build_info", {"version": "0.0.0-standin", "revision": "none"}, 1)
        fam("healthprobe_config_last_reload_successful", "gauge", "Reload status.")
        out.append("healthprobe_config_last_reload_successful 0")
        fam("healthprobe_config_last_reload_success_timestamp_seconds", "gauge", "Last good reload.")
        out.append(f"healthprobe_config_last_reload_success_timestamp_seconds {now - 600}")
        fam("healthprobe_checks_configured", "gauge", "Checks per pack.")
        for p, cs in PLANNED.items():
            s("healthprobe_checks_configured", {"pack": p}, len(cs))
        fam("healthprobe_scheduler_lag_seconds", "histogram", "Scheduler lag.")
        for le, k in (("0.001", 1), ("0.01", 3), ("0.1", 4), ("+Inf", 4)):
            s("healthprobe_scheduler_lag_seconds_bucket", {"le": le}, k * n)
        out.append(f"healthprobe_scheduler_lag_seconds_sum {0.02 * n}")
        out.append(f"healthprobe_scheduler_lag_seconds_count {4 * n}")
        fam("healthprobe_metrics_render_duration_seconds", "histogram", "Render time.")
        for le, k in (("0.001", 2), ("0.01", 3), ("+Inf", 3)):
            s("healthprobe_metrics_render_duration_seconds_bucket", {"le": le}, k * n)
        out.append(f"healthprobe_metrics_render_duration_seconds_sum {0.005 * n}")
        out.append(f"healthprobe_metrics_render_duration_seconds_count {3 * n}")
        fam("process_resident_memory_bytes", "gauge", "RSS.")
        out.append("process_resident_memory_bytes 12345678")
        fam("process_cpu_seconds_total", "counter", "CPU.")
        out.append(f"process_cpu_seconds_total {0.01 * n}")
        fam("process_open_fds", "gauge", "FDs.")
        out.append("process_open_fds 12")
        fam("process_max_fds", "gauge", "FD limit.")
        out.append("process_max_fds 1024")
        return "\n".join(out) + "\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop(proc: subprocess.Popen, timeout: float = 20) -> None:
    """SIGTERM, then SIGKILL if the process has not exited within `timeout`."""
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


@pytest.fixture(scope="module")
def prom(tmp_path_factory):
    if not shutil.which("prometheus"):
        pytest.fail("prometheus is not installed (apt-get install prometheus)")
    d = tmp_path_factory.mktemp("prom")
    exporter = Exporter()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            body = exporter.text().encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    target = f"127.0.0.1:{server.server_address[1]}"
    port = free_port()
    (d / "prometheus.yml").write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(TOP / "dashboards" / "alerts.yaml")],
        "scrape_configs": [{"job_name": "healthprobe", "static_configs": [{"targets": [target]}]}],
    }))
    proc = subprocess.Popen(
        ["prometheus", f"--config.file={d / 'prometheus.yml'}", f"--storage.tsdb.path={d / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=open(d / "prometheus.log", "w"), stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            try:
                r = get(f"{base}/api/v1/query?query=" + urllib.parse.quote('count_over_time(up{job="healthprobe"}[1m])'))
                if r["data"]["result"] and float(r["data"]["result"][0]["value"][1]) >= 8:
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                pytest.fail("Prometheus did not scrape the stand-in:\n" + (d / "prometheus.log").read_text()[-3000:])
            time.sleep(0.5)
        yield {"base": base, "exporter": exporter, "dir": d}
    finally:
        stop(proc)
        server.shutdown()


def query(prom, expr: str) -> list:
    r = get(f"{prom['base']}/api/v1/query?query=" + urllib.parse.quote(expr))
    assert r["status"] == "success", r
    return r["data"]["result"]


def test_standin_exposition_is_valid(prom):
    text = prom["exporter"].text()
    r = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_dashboard_query_returns_series(prom, name):
    pack = EXPECTED[name][1]
    empty = []
    for where, q in instant_queries(name, pack):
        try:
            result = query(prom, q)
        except urllib.error.HTTPError as err:
            pytest.fail(f"{name} {where}: Prometheus refused\n{q}\n{err.read().decode()}")
        if not result and "ALERTS{" not in q:
            empty.append(f"{where}: {q}")
    assert not empty, "queries that returned nothing:\n" + "\n".join(empty)


def test_failing_table_shows_reasons_and_failing_first(prom):
    [table] = [p for p in load("overview.json")["panels"] if p["title"] == "Checks, failing first"]
    rows = query(prom, substitute(table["targets"][0]["expr"], None))
    by_check = {(r["metric"]["pack"], r["metric"]["check"]): r for r in rows}
    assert len(rows) == sum(len(v) for v in PLANNED.values()), "one row per check with info"
    for key, reason in FAILING.items():
        assert by_check[key]["metric"]["reason"] == reason and by_check[key]["value"][1] == "0"
        assert by_check[key]["metric"]["doc"] == f"https://example.org/{key[0]}#{key[1]}"
    ok = by_check[("mastodon", "request_id")]
    assert ok["metric"]["reason"] == "ok" and ok["value"][1] == "1"


def test_rules_evaluate_and_the_right_alerts_are_pending(prom):
    deadline = time.time() + 30
    while True:
        groups = get(f"{prom['base']}/api/v1/rules")["data"]["groups"]
        rules = [r for g in groups for r in g["rules"]]
        if rules and all(r.get("lastEvaluation", "").startswith("20") for r in rules) and \
                any(r["alerts"] for r in rules):
            break
        assert time.time() < deadline, "rules were not evaluated"
        time.sleep(0.5)
    source = yaml.safe_load((TOP / "dashboards" / "alerts.yaml").read_text())
    assert {r["name"] for r in rules} == {r["alert"] for g in source["groups"] for r in g["rules"]}
    for r in rules:
        assert r["health"] == "ok", f"{r['name']}: {r.get('lastError')}"
    active = {(r["name"], a["labels"].get("pack"), a["labels"].get("check")) for r in rules for a in r["alerts"]}
    assert active == {
        ("HealthprobeCheckFailingCritical", "invoiceninja", "scheduler_fresh"),
        ("HealthprobeCheckFailingWarning", "invoiceninja", "pdf_no_store"),
        ("HealthprobeCheckFailingInfo", "host", "swap"),
        ("HealthprobeCheckStale", *STALE),
        ("HealthprobeCheckInfoMissing", *ORPHAN),
        ("HealthprobeTLSCertificateExpiringSoon", *TLS_SOON),
        ("HealthprobeConfigReloadFailed", None, None),
    }
    crit = next(a for r in rules if r["name"] == "HealthprobeCheckFailingCritical" for a in r["alerts"])
    assert crit["state"] == "pending"
    assert crit["annotations"]["reason"] == "timeout"
    assert crit["annotations"]["runbook_url"] == "https://example.org/invoiceninja#scheduler_fresh"
    assert crit["labels"]["severity"] == "critical" and crit["labels"]["title"] == "Title of scheduler_fresh"
