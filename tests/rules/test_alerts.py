"""dashboards/alerts.yaml against its unit tests (tests/rules/alerts_test.yaml).

promtool only runs the cases that exist; this makes sure they exist: every
alert has a case where it fires and a case where it stays silent, and every
rule carries what a person paged at night needs.
"""

from __future__ import annotations

from pathlib import Path

import yaml

TOP = Path(__file__).resolve().parents[2]
RULES = yaml.safe_load((TOP / "dashboards/alerts.yaml").read_text())
TESTS = yaml.safe_load((Path(__file__).parent / "alerts_test.yaml").read_text())


def alerts():
    for g in RULES["groups"]:
        for r in g["rules"]:
            if "alert" in r:
                yield r


def test_every_alert_is_tested_firing_and_silent():
    firing, silent = set(), set()
    for case in TESTS["tests"]:
        for t in case.get("alert_rule_test", []):
            (firing if t.get("exp_alerts") else silent).add(t["alertname"])
    names = {r["alert"] for r in alerts()}
    assert names, "no alerts found"
    assert not names - firing, f"never tested firing: {sorted(names - firing)}"
    assert not names - silent, f"never tested silent: {sorted(names - silent)}"
    assert not (firing | silent) - names, f"tests name unknown alerts: {sorted((firing | silent) - names)}"


def test_rules_file_is_what_the_tests_load():
    assert TESTS["rule_files"] == ["../../dashboards/alerts.yaml"]


def test_alerts_carry_severity_summary_and_a_link():
    for r in alerts():
        sev = r.get("labels", {}).get("severity")
        joined_sev = "group_left (severity" in r["expr"]
        assert sev in ("critical", "warning", "info") or joined_sev, f"{r['alert']}: no severity"
        assert not (sev and joined_sev), f"{r['alert']}: severity both static and joined"
        ann = r["annotations"]
        assert ann.get("summary") and ann.get("description"), r["alert"]
        if "group_left" in r["expr"]:
            assert ann.get("runbook_url") == "{{ $labels.doc }}", f"{r['alert']}: no guide link"


def test_failing_for_depends_on_severity():
    fors = {}
    for r in alerts():
        if 'healthprobe_check_info{severity="' in r["expr"]:
            sev = r["expr"].split('healthprobe_check_info{severity="')[1].split('"')[0]
            fors[sev] = r["for"]
            assert "query" in r["annotations"]["reason"], "the reason comes from healthprobe_check_failure"
    assert fors == {"critical": "2m", "warning": "15m", "info": "1h"}
