"""The dashboards and alert rules against the real agent, end to end.

test_prometheus_eval.py proves the queries against a stand-in that exports
every planned check of every pack; this file proves them against the agent
itself. Nothing is built here: the binary is `${CARGO_TARGET_DIR:-target}/
debug/healthprobe`, which `cargo test` (run first by tests/run) leaves behind;
only when it is missing is it built with `cargo build --bin healthprobe`.
Everything listens on 127.0.0.1.

The world the tests share (one module fixture, about 10 s to set up):

- an HTTPS server in this process, its certificate signed by a CA made here
  with openssl and valid for 2 days, so the agent exports
  `healthprobe_tls_cert_not_after_timestamp_seconds` and both TLS alerts are
  due; a log file that keeps receiving SQL errors;
- the *main agent* with the built-in `host` pack and the test pack `e2e`:
  passing and failing http (over that TLS), file, command, log and heartbeat
  checks (a heartbeat nobody pushes), of each severity;
- the *starved agent*, `concurrency: 1`, with `stale/victim` (every 1s); once
  the victim has run, a reload adds `stale/hog`, a command that holds the
  agent's only slot for a minute, so the victim really goes stale;
- Debian's Prometheus scraping both every second under `job="healthprobe"`,
  with a copy of dashboards/alerts.yaml whose `for:` are all cut to 2s.

What each test proves is in its docstring.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from test_dashboards import EXPECTED, instant_queries, load, substitute
from test_prometheus_eval import free_port, get, stop

TOP = Path(__file__).resolve().parents[2]
FOR = "2s"  # every alert's `for:` in the test's copy of the rules
GUIDE = "https://example.org/e2e-guide"
TOKEN = "e2e-heartbeat-token"

# The e2e checks that fail, with their severity and the reason the agent gives.
FAILING = {
    "cron_heartbeat": ("critical", "not_found"),         # file: the heartbeat file is missing
    "nightly_backup": ("critical", "assertion_failed"),  # heartbeat: never pushed
    "pdf_no_store": ("warning", "assertion_failed"),     # http over TLS: header absent
    "laravel_log_errors": ("warning", "assertion_failed"),  # log: a signature matches
    "php_cli": ("info", "assertion_failed"),             # command: exits 1
}
PASSING = {"site_up", "storage_present", "shell_ok"}
TLS_CHECKS = {"site_up", "pdf_no_store"}
SEVERITY_ALERT = {"critical": "HealthprobeCheckFailingCritical", "warning": "HealthprobeCheckFailingWarning",
                  "info": "HealthprobeCheckFailingInfo"}

PACK = """\
pack: e2e
title: End-to-end test pack
guide: {guide}
defaults: {{ interval: 1s, timeout: 900ms }}
checks:
  - name: site_up
    kind: http
    title: The site answers over TLS
    doc: "#site"
    http:
      url: {base}/
      tls: {{ ca_file: {ca} }}
      expect: {{ status: [200] }}
  - name: pdf_no_store
    kind: http
    title: PDFs are served with Cache-Control no-store
    remediation: Add `add_header Cache-Control no-store;` to the nginx location for .pdf files.
    doc: "#pdf-cache"
    http:
      url: {base}/invoice.pdf
      tls: {{ ca_file: {ca} }}
      expect:
        headers: [ {{ name: Cache-Control, matches: no-store }} ]
  - name: storage_present
    kind: file
    severity: critical
    title: storage/ exists
    file: {{ path: {dir}/storage, expect: {{ type: dir }} }}
  - name: cron_heartbeat
    kind: file
    severity: critical
    title: The scheduler touched its heartbeat file
    doc: "#cron"
    file: {{ path: {dir}/storage/cron.heartbeat }}
  - name: shell_ok
    kind: command
    severity: info
    title: true is true
    command: {{ argv: ["true"] }}
  - name: php_cli
    kind: command
    severity: info
    title: PHP CLI answers
    doc: https://example.org/php#cli
    command: {{ argv: ["false"] }}
  - name: laravel_log_errors
    kind: log
    title: No SQL errors in laravel.log
    doc: "#sql"
    log:
      path: {dir}/laravel.log
      signatures: [ {{ name: sql_error, regex: SQLSTATE, max_new_matches: 0 }} ]
  - name: nightly_backup
    kind: heartbeat
    severity: critical
    title: The nightly backup pushed its heartbeat
    doc: "#backup"
    heartbeat: {{ period: 1s, grace: 0s, token: {token} }}
"""

VICTIM = """\
pack: stale
title: A starved scheduler
guide: https://example.org/stale-guide
checks:
  - name: victim
    kind: file
    title: A check that should run every second
    interval: 1s
    timeout: 900ms
    doc: "#victim"
    file: { path: /tmp }
"""

HOG = """\
pack: hog
title: Holds the only slot
checks:
  - name: hog
    kind: command
    title: Runs for a minute
    interval: 60s
    timeout: 60s
    command: { argv: [sleep, "600"] }
"""


def binary() -> Path:
    path = TOP / os.environ.get("CARGO_TARGET_DIR", "target") / "debug" / "healthprobe"
    if not path.exists():
        subprocess.run(["cargo", "build", "--bin", "healthprobe"], cwd=TOP, check=True)
    return path


def http(method: str, url: str) -> tuple[int, str]:
    req = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def wait_for(what: str, fn, timeout: float = 30, logs=()):
    """Polls fn() until it returns something truthy; fails with `what` and the logs."""
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            last = fn()
        except (OSError, KeyError, ValueError) as e:
            last = e
        if last and not isinstance(last, Exception):
            return last
        time.sleep(0.25)
    tails = "".join(f"\n--- {p.name}:\n{p.read_text()[-2000:]}" for p in logs if p.exists())
    pytest.fail(f"timed out after {timeout}s waiting for {what} (last: {last!r}){tails}")


def make_certs(d: Path) -> tuple[Path, Path, Path, float]:
    """A CA and a leaf for 127.0.0.1 valid for 2 days; returns (ca, cert, key, not_after)."""
    def openssl(*args):
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "30",
            "-subj", "/CN=healthprobe e2e CA", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    openssl("req", *ec, "-keyout", "leaf.key", "-out", "leaf.csr", "-subj", "/CN=127.0.0.1")
    (d / "leaf.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n"
                                "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n")
    openssl("x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "leaf.pem", "-days", "2", "-extfile", "leaf.ext")
    end = subprocess.run(["openssl", "x509", "-enddate", "-noout", "-in", d / "leaf.pem"],
                         check=True, capture_output=True, text=True).stdout.strip().split("=", 1)[1]
    return d / "ca.pem", d / "leaf.pem", d / "leaf.key", float(ssl.cert_time_to_seconds(end))


def https_server(cert: Path, key: Path) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            body = b"%PDF-1.4\n" if self.path.endswith(".pdf") else b"ok\n"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "public, max-age=60")  # what pdf_no_store rejects
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@dataclass
class Agent:
    name: str
    dir: Path
    port: int
    proc: subprocess.Popen | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def instance(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.dir / "agent.log"

    def start(self, env: dict):
        self.proc = subprocess.Popen(
            [str(binary()), "run", "--config", str(self.dir / "healthprobe.yaml")],
            stdout=open(self.log, "w"), stderr=subprocess.STDOUT, env=env)

    def checks(self) -> dict[str, dict]:
        return {c["id"]: c for c in get(f"{self.base}/api/v1/checks")["checks"]}

    def stop(self):
        if self.proc:
            stop(self.proc, 10)  # on SIGTERM the agent kills its commands' process groups


@dataclass
class World:
    prom: str
    main: Agent
    starved: Agent
    pack_file: Path
    pack_text: str
    not_after: float
    logs: list[Path] = field(default_factory=list)


def rules_copy(dst: Path) -> Path:
    """dashboards/alerts.yaml with every `for:` cut to FOR (text edit: anchors kept)."""
    text = (TOP / "dashboards" / "alerts.yaml").read_text()
    text, n = re.subn(r"(?m)^(\s+for:\s*)\S+\s*$", rf"\g<1>{FOR}", text)
    rules = [r for g in yaml.safe_load(text)["groups"] for r in g["rules"]]
    assert n == len(rules) and all(r["for"] == FOR for r in rules)
    dst.write_text(text)
    return dst


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    if not shutil.which("prometheus"):
        pytest.fail("prometheus is not installed (apt-get install prometheus)")
    d = tmp_path_factory.mktemp("real")
    ca, cert, key, not_after = make_certs(d)
    server = https_server(cert, key)
    base = f"https://127.0.0.1:{server.server_address[1]}"

    app = d / "app"
    (app / "storage").mkdir(parents=True)
    log = app / "laravel.log"
    log.write_text("")
    done = threading.Event()

    def write_errors():  # a new SQL error every 250 ms: each 1s run sees some
        while not done.wait(0.25):
            with log.open("a") as f:
                f.write(f"[{time.strftime('%F %T')}] production.ERROR: SQLSTATE[HY000] [2002] "
                        "Connection refused\n")

    threading.Thread(target=write_errors, daemon=True).start()

    main = Agent("main", d / "main", free_port())
    starved = Agent("starved", d / "starved", free_port())
    for a in (main, starved):
        (a.dir / "checks").mkdir(parents=True)
    pack_text = PACK.format(guide=GUIDE, base=base, ca=ca, dir=app, token=TOKEN)
    pack_file = main.dir / "checks" / "e2e.yaml"
    pack_file.write_text(pack_text)
    (main.dir / "healthprobe.yaml").write_text(yaml.safe_dump({
        "listen": main.instance, "packs": {"host": {}}, "checks_dirs": [str(main.dir / "checks")]}))
    (starved.dir / "checks" / "stale.yaml").write_text(VICTIM)
    (starved.dir / "healthprobe.yaml").write_text(yaml.safe_dump({
        "listen": starved.instance, "concurrency": 1, "checks_dirs": [str(starved.dir / "checks")]}))

    # No Docker socket: the host pack's docker_reachable stays off everywhere.
    env = {**os.environ, "DOCKER_SOCKET": str(d / "no-docker.sock"), "HEALTHPROBE_LOG": "info"}
    prom_port = free_port()
    (d / "prometheus.yml").write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(rules_copy(d / "alerts.yaml"))],
        "scrape_configs": [{"job_name": "healthprobe",
                            "static_configs": [{"targets": [main.instance, starved.instance]}]}],
    }))
    prom_log = d / "prometheus.log"
    logs = [main.log, starved.log, prom_log]
    prom = None
    try:
        main.start(env)
        starved.start(env)
        prom = subprocess.Popen(
            ["prometheus", f"--config.file={d / 'prometheus.yml'}", f"--storage.tsdb.path={d / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{prom_port}"],
            stdout=open(prom_log, "w"), stderr=subprocess.STDOUT)
        wait_for("both agents ready", lambda: all(http("GET", f"{a.base}/-/ready")[0] == 200
                                                   for a in (main, starved)), 20, logs)
        # Starve the victim only once it has run: a check that never ran has no
        # last-run timestamp, hence nothing to be stale about.
        wait_for("stale/victim to run", lambda: starved.checks()["stale/victim"]["state"] == "passing", 10, logs)
        (starved.dir / "checks" / "hog.yaml").write_text(HOG)
        status, body = http("POST", f"{starved.base}/-/reload")
        assert status == 200 and body.startswith("Reloaded"), body
        promq = f"http://127.0.0.1:{prom_port}/api/v1/query?query="
        wait_for("Prometheus to scrape both agents", lambda: len([
            r for r in get(promq + urllib.parse.quote('up{job="healthprobe"} == 1'))["data"]["result"]]) == 2,
            60, logs)
        yield World(f"http://127.0.0.1:{prom_port}", main, starved, pack_file, pack_text, not_after, logs)
    finally:
        done.set()
        for a in (main, starved):
            a.stop()
        if prom:
            stop(prom)
        server.shutdown()


def query(w: World, expr: str) -> list:
    r = get(f"{w.prom}/api/v1/query?query=" + urllib.parse.quote(expr))
    assert r["status"] == "success", r
    return r["data"]["result"]


def alerts(w: World) -> list[dict]:
    return get(f"{w.prom}/api/v1/alerts")["data"]["alerts"]


def key(a: dict) -> tuple:
    return a["labels"]["alertname"], a["labels"].get("pack"), a["labels"].get("check")


EXPECTED_FIRING = {
    *((SEVERITY_ALERT[sev], "e2e", c) for c, (sev, _) in FAILING.items()),
    *(("HealthprobeTLSCertificateExpiringSoon", "e2e", c) for c in TLS_CHECKS),
    *(("HealthprobeTLSCertificateExpiringCritical", "e2e", c) for c in TLS_CHECKS),
    ("HealthprobeCheckStale", "stale", "victim"),
}


@pytest.fixture(scope="module")
def firing(world):
    """Waits until every expected alert fires; returns the alerts then."""
    def ready():
        got = alerts(world)
        if EXPECTED_FIRING <= {key(a) for a in got if a["state"] == "firing"}:
            return got
    return wait_for("the alerts of the failing checks to fire", ready, 40, world.logs)


def test_agent_exports_what_the_dashboards_read(world, firing):
    """The agent's own /metrics has the families the dashboards and alerts
    read, for the kinds of the pack, and the certificate's expiry is the leaf's
    notAfter as openssl wrote it."""
    status, text = http("GET", f"{world.main.base}/metrics")
    assert status == 200
    families = set(re.findall(r"(?m)^# TYPE (\w+) ", text))
    for f in ("healthprobe_check_success", "healthprobe_check_failure", "healthprobe_check_value",
              "healthprobe_check_duration_seconds", "healthprobe_check_last_run_timestamp_seconds",
              "healthprobe_check_last_success_timestamp_seconds", "healthprobe_check_interval_seconds",
              "healthprobe_check_runs_total", "healthprobe_check_info", "healthprobe_http_phase_duration_seconds",
              "healthprobe_http_status_code", "healthprobe_tls_cert_not_after_timestamp_seconds",
              "healthprobe_log_matches_total", "healthprobe_build_info", "healthprobe_config_last_reload_successful",
              "healthprobe_config_last_reload_success_timestamp_seconds", "healthprobe_checks_configured",
              "healthprobe_scheduler_lag_seconds", "healthprobe_metrics_render_duration_seconds",
              "process_resident_memory_bytes", "process_cpu_seconds_total",
              "process_open_fds", "process_max_fds"):
        assert f in families, f"{f} missing from the agent's /metrics"
    for c in TLS_CHECKS:
        [r] = query(world, f'healthprobe_tls_cert_not_after_timestamp_seconds{{pack="e2e",check="{c}"}}')
        assert float(r["value"][1]) == world.not_after
    [r] = query(world, 'healthprobe_log_matches_total{pack="e2e",check="laravel_log_errors",signature="sql_error"}')
    assert float(r["value"][1]) > 0


def test_failing_checks_fire_with_guide_and_reason(world, firing):
    """Every rule of the copy loads and evaluates with health ok against the
    real exposition; the alerts of the failing checks (each severity, the
    file, command, log, heartbeat and http kinds) reach `firing` with the
    check's guide link as runbook_url and the agent's reason; the 2-day
    certificate fires both TLS alerts; the starved victim fires the stale
    alert; nothing fires for a passing check, no check lacks its info series,
    and every check alert of any pack (the host pack's too) names a check the
    agent itself reports failing, with the same severity and reason."""
    groups = get(f"{world.prom}/api/v1/rules")["data"]["groups"]
    rules = [r for g in groups for r in g["rules"]]
    source = yaml.safe_load((TOP / "dashboards" / "alerts.yaml").read_text())
    assert {r["name"] for r in rules} == {r["alert"] for g in source["groups"] for r in g["rules"]}
    for r in rules:
        assert r["health"] == "ok", f"{r['name']}: {r.get('lastError')}"

    api = {**world.main.checks(), **world.starved.checks()}
    ours = {key(a): a for a in firing if a["labels"].get("pack") in ("e2e", "stale")}
    assert set(ours) == EXPECTED_FIRING, "alerts about the test packs, beyond or short of the expected ones"
    assert all(a["state"] == "firing" for a in ours.values())
    for c, (sev, reason) in FAILING.items():
        a = ours[(SEVERITY_ALERT[sev], "e2e", c)]
        check = api[f"e2e/{c}"]
        assert check["state"] == "failing" and check["reason"] == reason, check
        assert a["labels"]["severity"] == sev and a["labels"]["kind"] == check["kind"]
        assert a["labels"]["title"] == check["title"]
        assert a["annotations"]["runbook_url"] == check["doc"] != ""
        assert a["annotations"]["reason"] == reason
        assert f"with reason {reason}" in a["annotations"]["description"]
    assert ours[("HealthprobeCheckFailingWarning", "e2e", "pdf_no_store")]["annotations"]["runbook_url"] == \
        f"{GUIDE}#pdf-cache"
    assert ours[("HealthprobeCheckFailingInfo", "e2e", "php_cli")]["annotations"]["runbook_url"] == \
        "https://example.org/php#cli"
    for c in TLS_CHECKS:
        soon = ours[("HealthprobeTLSCertificateExpiringSoon", "e2e", c)]
        assert soon["labels"]["severity"] == "warning"
        assert ours[("HealthprobeTLSCertificateExpiringCritical", "e2e", c)]["labels"]["severity"] == "critical"
        assert "expires in 1d 23h" in soon["annotations"]["summary"], soon
        assert soon["annotations"]["runbook_url"] == api[f"e2e/{c}"]["doc"]
    stale = ours[("HealthprobeCheckStale", "stale", "victim")]
    assert stale["annotations"]["runbook_url"] == "https://example.org/stale-guide#victim"
    assert stale["labels"]["instance"] == world.starved.instance
    assert api["stale/victim"]["state"] == "passing", "stale, not failing: its last run passed"
    assert api["hog/hog"]["state"] == "pending", "the hog still holds the only slot"

    for a in firing:
        name = a["labels"]["alertname"]
        assert name not in ("HealthprobeCheckInfoMissing", "HealthprobeAgentAbsent", "HealthprobeAgentDown",
                            "HealthprobeConfigReloadFailed"), a
        if name in SEVERITY_ALERT.values():
            check = api[f"{a['labels']['pack']}/{a['labels']['check']}"]
            assert check["state"] == "failing" and check["severity"] == a["labels"]["severity"], (a, check)
            assert a["annotations"]["reason"] == check["reason"]
    assert not PASSING & {c for (n, p, c) in ours if n in SEVERITY_ALERT.values()}


def selectors(q: str) -> list[str]:
    """The vector selectors of a dashboard query (`name{...}`, or the whole query when it is a bare name)."""
    found = [m.group(0) for m in re.finditer(r"(?<![\w:])[a-zA-Z_:][\w:]*\{[^{}]*\}", q)]
    if not found and re.fullmatch(r"group by \(\w+\) \(([a-zA-Z_:][\w:]*)\)", q):
        found = [q.split("(")[-1].rstrip(")")]
    return found


# (dashboard, value of $pack): every dashboard as shipped, and each pack
# dashboard pointed at the test pack (`$pack` = e2e), where its per-pack panels
# have data to show.
CASES = [(n, p) for n, (_, p) in sorted(EXPECTED.items())] + \
        [(n, "e2e") for n, (_, p) in sorted(EXPECTED.items()) if p]


@pytest.mark.parametrize(("name", "pack"), CASES, ids=[f"{n}-{p or 'all'}" for n, p in CASES])
def test_every_dashboard_query_evaluates_on_real_data(world, firing, name, pack):
    """Every panel, annotation and variable query runs through /api/v1/query
    without error, and returns series whenever each series selector in it
    matches something (so a query that should join, divide or aggregate real
    series and comes back empty fails). On the overview, where every selector
    has data, every query must return series."""
    empty, checked = [], 0
    for where, q in instant_queries(name, pack):
        try:
            result = query(world, q)
        except urllib.error.HTTPError as err:
            pytest.fail(f"{name} {where}: Prometheus refused\n{q}\n{err.read().decode()}")
        sels = selectors(q)
        assert sels, f"{name} {where}: no selector found in {q}"
        if all(query(world, f"group({s})") for s in sels):
            checked += 1
            if not result:
                empty.append(f"{where}: {q}")
        else:
            assert pack != "e2e" or "check=" in q or 'pack="host"' in q, f"{where}: no data for {q}"
    assert not empty, "queries over existing series that returned nothing:\n" + "\n".join(empty)
    if name == "overview.json":
        assert checked == len(instant_queries(name, pack)), "an overview query had no data to read"
    elif pack == "e2e":
        assert checked >= 5


def test_failing_first_table_agrees_with_the_agent(world, firing):
    """The overview's table shows one row per check that has run, on either
    agent, with the state, reason, severity, kind, title and guide link that
    the agent's /api/v1/checks gives for it."""
    [table] = [p for p in load("overview.json")["panels"] if p["title"] == "Checks, failing first"]
    rows = query(world, substitute(table["targets"][0]["expr"], None))
    by_check = {(r["metric"]["instance"], r["metric"]["pack"], r["metric"]["check"]): r for r in rows}
    assert len(by_check) == len(rows)
    expected = {}
    for agent in (world.main, world.starved):
        for cid, c in agent.checks().items():
            if c["state"] != "pending":
                expected[(agent.instance, c["pack"], c["name"])] = c
    assert set(by_check) == set(expected)
    for k, c in expected.items():
        m = by_check[k]["metric"]
        assert by_check[k]["value"][1] == ("1" if c["state"] == "passing" else "0"), (k, c["state"])
        assert m["reason"] == ("ok" if c["state"] == "passing" else c["reason"]), k
        # Prometheus drops empty labels: a check with no doc and no pack guide has no `doc`.
        assert (m["severity"], m["kind"], m["title"], m.get("doc", "")) == \
            (c["severity"], c["kind"], c["title"], c["doc"]), k


def test_a_failed_reload_fires_and_the_last_good_config_runs_on(world, firing):
    """A broken pack file: POST /-/reload answers 500 with the error at its
    file:line:column, healthprobe_config_last_reload_successful drops to 0 and
    HealthprobeConfigReloadFailed fires for that agent only, while the checks
    keep running on the last good config; fixing the file and reloading
    brings the gauge back to 1."""
    main = world.main
    broken = world.pack_text.replace("defaults: { interval: 1s,", "defaults: { interval: 1,")
    line = next(i for i, s in enumerate(broken.splitlines(), 1) if s.startswith("defaults:"))
    runs_before = main.checks()["e2e/site_up"]["runs_success"]
    world.pack_file.write_text(broken)
    status, body = http("POST", f"{main.base}/-/reload")
    assert status == 500 and "Reload rejected, the running configuration is kept" in body, body
    assert f"e2e.yaml:{line}:" in body and "defaults.interval" in body, body

    def reload_failed():
        return [a for a in alerts(world)
                if a["labels"]["alertname"] == "HealthprobeConfigReloadFailed" and a["state"] == "firing"]
    [a] = wait_for("HealthprobeConfigReloadFailed to fire", reload_failed, 20, world.logs)
    assert a["labels"]["instance"] == main.instance and a["labels"]["severity"] == "warning"
    assert main.instance in a["annotations"]["summary"]
    assert main.checks()["e2e/site_up"]["runs_success"] > runs_before, "the last good config stopped running"

    world.pack_file.write_text(world.pack_text)
    status, body = http("POST", f"{main.base}/-/reload")
    assert status == 200 and body.startswith("Reloaded"), body
    _, text = http("GET", f"{main.base}/metrics")
    assert re.search(r"(?m)^healthprobe_config_last_reload_successful 1$", text)


def test_a_killed_agent_fires_agent_down(world, firing):
    """SIGKILL the main agent: up drops to 0 and HealthprobeAgentDown fires
    for its instance, not for the agent that still runs; the overview's
    'Agents up' counts one."""
    world.main.proc.send_signal(signal.SIGKILL)
    world.main.proc.wait(timeout=10)

    def down():
        return [a for a in alerts(world) if a["labels"]["alertname"] == "HealthprobeAgentDown"
                and a["state"] == "firing"]
    [a] = wait_for("HealthprobeAgentDown to fire", down, 20, world.logs)
    assert a["labels"]["instance"] == world.main.instance and a["labels"]["severity"] == "critical"
    [up] = [p for p in load("overview.json")["panels"] if p["title"] == "Agents up"]
    [r] = query(world, substitute(up["targets"][0]["expr"], None))
    assert r["value"][1] == "1"
