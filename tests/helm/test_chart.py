"""The Helm chart in helm/healthprobe, rendered with Helm's own Go SDK.

helm-python-sdk binds libhelm (Helm v4), so rendering, linting and schema
validation here are Helm's own, with no helm binary and no cluster. Every
rendered object is validated against the Kubernetes OpenAPI schemas shipped by
kubernetes-validate, for the oldest Kubernetes the chart supports and the
newest the package ships; the Prometheus Operator CRDs (ServiceMonitor,
PrometheusRule), which it has no schema for, are checked field by field here.
"""

from __future__ import annotations

import copy
import filecmp
import json
import re
import shutil
from pathlib import Path

import helm_python as helm
import kubernetes_validate
import pytest
import yaml

TOP = Path(__file__).resolve().parents[2]
CHART = TOP / "helm" / "healthprobe"
RELEASE, NAMESPACE = "hp", "monitoring"
FULLNAME = "hp-healthprobe"
KUBE_VERSIONS = ("1.25", kubernetes_validate.latest_version())
CRD_KINDS = {"ServiceMonitor", "PrometheusRule"}
SELECTOR = {
    "app.kubernetes.io/name": "healthprobe",
    "app.kubernetes.io/instance": RELEASE,
    "app.kubernetes.io/component": "agent",
}
SECRET_SENTINEL = "hunter2-do-not-render"

# ------------------------------------------------------------ combinations

COMBOS = {
    "defaults": {},
    "daemonset-hostpaths": {
        "kind": "DaemonSet",
        "config": {
            "packs": {
                "host": {},
                "invoiceninja": {"vars": {"root": "/var/www/invoiceninja", "url": "https://invoices.example.com"}},
                "openhands": {},
            }
        },
        "hostPaths": [
            {"name": "app", "hostPath": "/var/www/invoiceninja", "type": "Directory"},
            {"name": "nginx-logs", "hostPath": "/var/log/nginx", "mountPath": "/host/log/nginx", "readOnly": True},
            {"name": "spool", "hostPath": "/var/spool/healthprobe", "readOnly": False, "type": "DirectoryOrCreate"},
        ],
        "dockerSocket": {"enabled": True, "gid": 998},
        "tolerations": [{"operator": "Exists"}],
    },
    "monitoring": {
        "serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}, "interval": "15s"},
        "prometheusRule": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
        "dashboards": {"enabled": True, "namespace": "grafana"},
    },
    "user-checks": {
        "config": {"packs": {"host": {}, "mastodon": {"vars": {"url": "https://social.example.com"}}}},
        "checks": {
            "shop": {
                "pack": "shop",
                "title": "Shop",
                "defaults": {"interval": "30s", "timeout": "5s"},
                "checks": [
                    {
                        "name": "home",
                        "title": "The home page answers",
                        "kind": "http",
                        "severity": "critical",
                        "http": {"url": "https://shop.example.com/", "expect": {"status": [200]}},
                    }
                ],
            },
            "legacy": "# kept verbatim, comments included\npack: legacy\nchecks:\n  - name: port\n    kind: tcp\n    tcp: { address: 127.0.0.1:25 }\n",
        },
    },
    "existing-secret": {
        "existingSecret": "hp-credentials",
        "secretEnv": [{"name": "SMTP_PASSWORD", "secretName": "smtp", "key": "password"}],
        "secretMounts": [{"secretName": "mysql-client-cert", "mountPath": "/etc/healthprobe/mysql"}],
        "env": [
            {"name": "TZ", "value": "Europe/Paris"},
            {"name": "API_TOKEN", "valueFrom": {"secretKeyRef": {"name": "api", "key": "token"}}},
        ],
        "config": {
            "packs": {
                "invoiceninja": {
                    "vars": {"url": "https://invoices.example.com", "db_password": "${DB_PASSWORD}", "db_user": "ninja"}
                }
            }
        },
    },
    # webConfig: TLS from a cert-manager style Secret projected next to the
    # web-config file, scraped with the CA from a ConfigMap.
    "web-tls": {
        "webConfig": {"enabled": True, "secretName": "hp-web", "certSecretName": "hp-tls", "tls": True},
        "serviceMonitor": {
            "enabled": True,
            "labels": {"release": "kube-prometheus-stack"},
            "tlsConfig": {"ca": {"configMap": {"name": "hp-ca", "key": "ca.crt"}}},
        },
    },
    "web-tls-basic-auth": {
        "kind": "DaemonSet",
        "webConfig": {"enabled": True, "secretName": "hp-web", "file": "web.yml", "tls": True, "basicAuth": True},
        "serviceMonitor": {
            "enabled": True,
            "tlsConfig": {"ca": {"secret": {"name": "hp-web", "key": "ca.crt"}}, "serverName": "healthprobe.example.internal"},
            "basicAuth": {"secretName": "hp-scrape", "usernameKey": "user", "passwordKey": "pass"},
        },
    },
    "web-client-cert": {
        "webConfig": {"enabled": True, "secretName": "hp-web", "tls": True, "requireClientCert": True},
        "serviceMonitor": {
            "enabled": True,
            "tlsConfig": {
                "ca": {"secret": {"name": "hp-web", "key": "ca.crt"}},
                "cert": {"secret": {"name": "prometheus-client", "key": "tls.crt"}},
                "keySecret": {"name": "prometheus-client", "key": "tls.key"},
            },
        },
    },
    "web-basic-auth": {
        "webConfig": {"enabled": True, "secretName": "hp-web", "basicAuth": True},
        "serviceMonitor": {"enabled": True, "basicAuth": {"secretName": "hp-scrape"}},
    },
}


@pytest.fixture(scope="module")
def chart():
    with helm.Chart.load(CHART) as c:
        yield c


def render(chart, values) -> dict[str, list[dict]]:
    """Render and parse: {template path: [objects]} (NOTES.txt kept as text)."""
    out = chart.render(copy.deepcopy(values), name=RELEASE, namespace=NAMESPACE)
    docs = {}
    for path, text in out.items():
        if path.endswith("NOTES.txt"):
            docs[path] = text
            continue
        docs[path] = [d for d in yaml.safe_load_all(text) if d]
    return docs


def objects(rendered) -> list[dict]:
    return [o for path, docs in rendered.items() if not path.endswith("NOTES.txt") for o in docs]


def one(rendered, kind, name=FULLNAME) -> dict:
    found = [o for o in objects(rendered) if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def workload(rendered) -> dict:
    found = [o for o in objects(rendered) if o["kind"] in ("Deployment", "DaemonSet")]
    assert len(found) == 1
    return found[0]


def container(rendered) -> dict:
    cs = workload(rendered)["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in cs] == ["healthprobe"]
    return cs[0]


def web(values) -> dict:
    """The webConfig of a values set, merged with the chart's defaults."""
    w = {"enabled": False, "tls": False, "requireClientCert": False, "basicAuth": False}
    return {**w, **values.get("webConfig", {})}


def expected_probe_action(values, path) -> dict:
    """What the chart must make of the default httpGet probe on `path`."""
    w = web(values)
    if w["enabled"] and w["tls"] and w["requireClientCert"]:
        return {"tcpSocket": {"port": "http"}}
    if w["enabled"] and w["tls"]:
        return {"httpGet": {"path": path, "port": "http", "scheme": "HTTPS"}}
    return {"httpGet": {"path": path, "port": "http"}}


# ------------------------------------------------------------------- tests


def test_chart_metadata(chart):
    md = chart.metadata
    assert md["apiVersion"] == "v2" and md["name"] == "healthprobe"
    assert chart.schema is not None, "values.schema.json is not loaded"


@pytest.mark.parametrize("combo", sorted(COMBOS))
def test_lint_clean(combo):
    report = helm.lint(CHART, copy.deepcopy(COMBOS[combo]), strict=True, namespace=NAMESPACE)
    bad = [m for m in report["messages"] if m["severity"] >= 2]
    assert not report["errors"] and not bad, report


@pytest.mark.parametrize("combo", sorted(COMBOS))
def test_schema_accepts(chart, combo):
    chart.validate_schema(copy.deepcopy(COMBOS[combo]))


@pytest.mark.parametrize("combo", sorted(COMBOS))
def test_every_manifest_is_valid_kubernetes(chart, combo):
    objs = objects(render(chart, COMBOS[combo]))
    assert objs
    for o in objs:
        if o["kind"] in CRD_KINDS:
            continue
        for v in KUBE_VERSIONS:
            try:
                kubernetes_validate.validate(o, v, strict=True)
            except kubernetes_validate.ValidationError as e:
                pytest.fail(f"{o['kind']}/{o['metadata']['name']} invalid for Kubernetes {v}: {e.message}")


@pytest.mark.parametrize("combo", sorted(COMBOS))
def test_labels_and_selectors(chart, combo):
    r = render(chart, COMBOS[combo])
    for o in objects(r):
        labels = o["metadata"].get("labels", {})
        for k in ("app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/version",
                  "app.kubernetes.io/managed-by", "helm.sh/chart"):
            assert labels.get(k), f"{o['kind']}/{o['metadata']['name']} lacks label {k}"
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        ns = o["metadata"].get("namespace")
        assert ns in (NAMESPACE, COMBOS[combo].get("dashboards", {}).get("namespace")), o["metadata"]
    w = workload(r)
    assert w["spec"]["selector"]["matchLabels"] == SELECTOR
    tpl_labels = w["spec"]["template"]["metadata"]["labels"]
    assert SELECTOR.items() <= tpl_labels.items()
    svc = one(r, "Service")
    assert svc["spec"]["selector"] == SELECTOR
    assert svc["spec"]["ports"] == [{"name": "http", "port": 9464, "targetPort": "http", "protocol": "TCP"}]


@pytest.mark.parametrize("combo", sorted(COMBOS))
def test_secure_by_default(chart, combo):
    r = render(chart, COMBOS[combo])
    pod = workload(r)["spec"]["template"]["spec"]
    psc = pod["securityContext"]
    assert psc["runAsNonRoot"] is True and psc["runAsUser"] == 65532 and psc["runAsGroup"] == 65532
    assert psc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    assert not pod.get("hostNetwork") and not pod.get("hostPID") and not pod.get("hostIPC")
    c = container(r)
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["privileged"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["runAsNonRoot"] is True and sc["runAsUser"] == 65532
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    res = c["resources"]
    assert res["requests"]["cpu"] and res["requests"]["memory"] and res["limits"]["memory"] and res["limits"]["cpu"]
    # a read-only root needs a writable /tmp
    assert {"name": "tmp", "mountPath": "/tmp"} in c["volumeMounts"]
    assert {"name": "tmp", "emptyDir": {"sizeLimit": "16Mi"}} in pod["volumes"]


@pytest.mark.parametrize("combo", sorted(COMBOS))
def test_probes_ports_and_args(chart, combo):
    r = render(chart, COMBOS[combo])
    c = container(r)
    for probe, path in (("livenessProbe", "/-/healthy"), ("readinessProbe", "/-/ready")):
        action = expected_probe_action(COMBOS[combo], path)
        assert {k: v for k, v in c[probe].items() if k in ("httpGet", "tcpSocket", "exec", "grpc")} == action
    assert c["ports"] == [{"name": "http", "containerPort": 9464, "protocol": "TCP"}]
    assert c["image"] == "ghcr.io/healthprobe/healthprobe:" + helm.Chart.load(CHART).metadata["appVersion"]
    assert c["args"][:5] == ["run", "--config", "/etc/healthprobe/healthprobe.yaml", "--listen", "0.0.0.0:9464"]
    mount = next(m for m in c["volumeMounts"] if m["name"] == "config")
    assert mount == {"name": "config", "mountPath": "/etc/healthprobe/healthprobe.yaml", "subPath": "healthprobe.yaml", "readOnly": True}


@pytest.mark.parametrize("combo", sorted(COMBOS))
def test_agent_config(chart, combo):
    values = COMBOS[combo]
    r = render(chart, values)
    cm = one(r, "ConfigMap")
    cfg = yaml.safe_load(cm["data"]["healthprobe.yaml"])
    assert cfg["listen"] == "0.0.0.0:9464"
    # Helm merges maps: the default host pack stays unless set to null
    assert cfg["packs"] == {"host": {}, **values.get("config", {}).get("packs", {})}
    assert cfg["concurrency"] == 64
    assert set(cfg) <= {"listen", "packs", "checks_dirs", "concurrency"}, "the agent refuses unknown keys"
    assert ("checks_dirs" in cfg) == bool(values.get("checks"))


def test_deployment_by_default(chart):
    r = render(chart, {})
    w = workload(r)
    assert w["kind"] == "Deployment" and w["spec"]["replicas"] == 1
    pod = w["spec"]["template"]["spec"]
    assert not any("hostPath" in v for v in pod["volumes"])
    kinds = sorted(o["kind"] for o in objects(r))
    assert kinds == ["ConfigMap", "Deployment", "Service", "ServiceAccount"]
    notes = r["healthprobe/templates/NOTES.txt"]
    assert "port-forward svc/hp-healthprobe 9464:9464" in notes
    assert "serviceMonitor.enabled=true" in notes and "existingSecret" in notes


def test_daemonset_with_host_paths(chart):
    r = render(chart, COMBOS["daemonset-hostpaths"])
    w = workload(r)
    assert w["kind"] == "DaemonSet" and "replicas" not in w["spec"]
    pod = w["spec"]["template"]["spec"]
    vols = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["name"]: m for m in container(r)["volumeMounts"]}
    assert vols["host-app"]["hostPath"] == {"path": "/var/www/invoiceninja", "type": "Directory"}
    assert mounts["host-app"] == {"name": "host-app", "mountPath": "/var/www/invoiceninja", "readOnly": True}
    assert mounts["host-nginx-logs"] == {"name": "host-nginx-logs", "mountPath": "/host/log/nginx", "readOnly": True}
    assert mounts["host-spool"]["readOnly"] is False, "readOnly: false must be honoured"
    assert vols["docker-socket"]["hostPath"] == {"path": "/var/run/docker.sock", "type": "Socket"}
    assert mounts["docker-socket"] == {"name": "docker-socket", "mountPath": "/var/run/docker.sock", "readOnly": True}
    assert pod["securityContext"]["supplementalGroups"] == [998]
    env = {e["name"]: e for e in container(r)["env"]}
    assert env["NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    assert pod["tolerations"] == [{"operator": "Exists"}]
    assert "exec ds/hp-healthprobe" in r["healthprobe/templates/NOTES.txt"]


def test_monitoring_objects(chart):
    values = COMBOS["monitoring"]
    r = render(chart, values)
    svc = one(r, "Service")
    sm = one(r, "ServiceMonitor")
    assert sm["apiVersion"] == "monitoring.coreos.com/v1"
    assert sm["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    assert sm["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    [ep] = sm["spec"]["endpoints"]
    assert ep["port"] in [p["name"] for p in svc["spec"]["ports"]]
    assert ep["path"] == "/metrics" and ep["interval"] == "15s" and ep["scrapeTimeout"] == "10s"
    for d in ("interval", "scrapeTimeout"):
        assert re.fullmatch(r"([0-9]+(ms|s|m|h))+", ep[d])
    assert {"action": "replace", "targetLabel": "job", "replacement": "healthprobe"} in ep["relabelings"]
    for rl in ep["relabelings"]:
        assert set(rl) <= {"action", "sourceLabels", "targetLabel", "replacement", "regex", "separator", "modulus"}

    pr = one(r, "PrometheusRule")
    assert pr["apiVersion"] == "monitoring.coreos.com/v1"
    assert pr["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert set(pr["spec"]) == {"groups"}
    source = yaml.safe_load((TOP / "dashboards" / "alerts.yaml").read_text())
    assert pr["spec"]["groups"] == source["groups"], "the PrometheusRule must carry dashboards/alerts.yaml unchanged"
    for g in pr["spec"]["groups"]:
        assert set(g) <= {"name", "interval", "rules", "limit", "partial_response_strategy"} and g["rules"]
        for rule in g["rules"]:
            assert ("alert" in rule) != ("record" in rule) and isinstance(rule["expr"], str)
            assert set(rule) <= {"alert", "record", "expr", "for", "labels", "annotations", "keep_firing_for"}
            assert all(isinstance(v, str) for v in rule.get("labels", {}).values())
            assert all(isinstance(v, str) for v in rule.get("annotations", {}).values())

    dash = [o for o in objects(r) if o["kind"] == "ConfigMap" and "grafana_dashboard" in o["metadata"]["labels"]]
    assert len(dash) == 4
    sources = {p.stem: json.loads(p.read_text()) for p in (TOP / "dashboards").glob("*.json")}
    seen = set()
    for cm in dash:
        md = cm["metadata"]
        assert md["labels"]["grafana_dashboard"] == "1"
        assert md["annotations"] == {"grafana_folder": "healthprobe"}
        assert md["namespace"] == "grafana" and len(md["name"]) <= 63
        [(key, text)] = cm["data"].items()
        stem = key.removeprefix("healthprobe-").removesuffix(".json")
        assert json.loads(text) == sources[stem], f"{key} differs from dashboards/{stem}.json"
        seen.add(stem)
    assert seen == set(sources)


def test_user_checks(chart):
    values = COMBOS["user-checks"]
    r = render(chart, values)
    cm = one(r, "ConfigMap", FULLNAME + "-checks")
    assert set(cm["data"]) == {"shop.yaml", "legacy.yaml"}
    assert yaml.safe_load(cm["data"]["shop.yaml"]) == values["checks"]["shop"]
    assert cm["data"]["legacy.yaml"] == values["checks"]["legacy"], "a string pack is kept verbatim"
    cfg = yaml.safe_load(one(r, "ConfigMap")["data"]["healthprobe.yaml"])
    assert cfg["checks_dirs"] == ["/etc/healthprobe/checks"]
    mounts = {m["name"]: m for m in container(r)["volumeMounts"]}
    assert mounts["checks"] == {"name": "checks", "mountPath": "/etc/healthprobe/checks", "readOnly": True}
    vols = {v["name"]: v for v in workload(r)["spec"]["template"]["spec"]["volumes"]}
    assert vols["checks"]["configMap"]["name"] == FULLNAME + "-checks"

    # a change to a user check rolls the pods (checksum annotation)
    def checksum(v):
        return workload(render(chart, v))["spec"]["template"]["metadata"]["annotations"]["checksum/config"]

    changed = copy.deepcopy(values)
    changed["checks"]["shop"]["checks"][0]["http"]["url"] = "https://shop.example.com/health"
    assert checksum(values) != checksum(changed)
    assert checksum(values) == checksum(copy.deepcopy(values))


def test_credentials_come_from_existing_secrets(chart):
    values = COMBOS["existing-secret"]
    r = render(chart, values)
    c = container(r)
    assert c["envFrom"] == [{"secretRef": {"name": "hp-credentials"}}]
    env = {e["name"]: e for e in c["env"]}
    assert env["SMTP_PASSWORD"] == {"name": "SMTP_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "smtp", "key": "password"}}}
    assert env["TZ"] == {"name": "TZ", "value": "Europe/Paris"}
    vols = {v["name"]: v for v in workload(r)["spec"]["template"]["spec"]["volumes"]}
    assert vols["secret-0"]["secret"]["secretName"] == "mysql-client-cert"
    mounts = {m["name"]: m for m in c["volumeMounts"]}
    assert mounts["secret-0"]["readOnly"] is True
    cfg = yaml.safe_load(one(r, "ConfigMap")["data"]["healthprobe.yaml"])
    assert cfg["packs"]["invoiceninja"]["vars"]["db_password"] == "${DB_PASSWORD}", "left for the agent to interpolate"


def _secretish_values(rendered) -> list[str]:
    """Every env value and pack var in the output whose name says it is a secret."""
    found = []
    for o in objects(rendered):
        text = yaml.safe_dump(o)
        found += re.findall(rf"{SECRET_SENTINEL}", text)
        if o["kind"] == "ConfigMap" and "healthprobe.yaml" in o.get("data", {}):
            cfg = yaml.safe_load(o["data"]["healthprobe.yaml"])
            for pack in cfg["packs"].values():
                for k, v in ((pack or {}).get("vars") or {}).items():
                    if re.search(r"(?i)pass|secret|token|key", k) and not re.fullmatch(r"\$\{\w+\}", str(v)):
                        found.append(f"{k}={v}")
        for w in (o,) if o["kind"] in ("Deployment", "DaemonSet") else ():
            for e in w["spec"]["template"]["spec"]["containers"][0].get("env", []):
                if re.search(r"(?i)pass|secret|token|key", e["name"]) and "value" in e:
                    found.append(f"{e['name']}={e['value']}")
    return found


@pytest.mark.parametrize("combo", sorted(COMBOS))
def test_no_secret_in_any_manifest(chart, combo):
    r = render(chart, COMBOS[combo])
    assert not [o for o in objects(r) if o["kind"] == "Secret"], "the chart must not create Secrets"
    assert _secretish_values(r) == []


def test_secret_scan_would_catch_a_leak(chart):
    """The scan above is not vacuous: a literal password in a manifest is found."""
    r = render(chart, COMBOS["existing-secret"])
    assert _secretish_values(r) == []
    container(r)["env"].append({"name": "DB_PASSWORD", "value": "plain"})
    cm = one(r, "ConfigMap")
    cm["data"]["healthprobe.yaml"] = cm["data"]["healthprobe.yaml"].replace("${DB_PASSWORD}", "plain")
    assert sorted(_secretish_values(r)) == ["DB_PASSWORD=plain", "db_password=plain"]


def test_render_enforces_the_schema(chart):
    """Helm validates values.schema.json when it renders (as install does)."""
    with pytest.raises(helm.HelmError):
        chart.render({"env": [{"name": "DB_PASSWORD", "value": SECRET_SENTINEL}]}, name=RELEASE, namespace=NAMESPACE)


# ------------------------------------------------------------- web config

WEB_DIR = "/etc/healthprobe/web"
# Fields of the Prometheus Operator's Endpoint, SafeTLSConfig and BasicAuth
# (monitoring.coreos.com/v1) the chart may write.
ENDPOINT_FIELDS = {"port", "path", "interval", "scrapeTimeout", "scheme", "tlsConfig", "basicAuth", "relabelings"}
TLS_CONFIG_FIELDS = {"ca", "cert", "keySecret", "serverName", "insecureSkipVerify"}


def endpoint(rendered) -> dict:
    [ep] = one(rendered, "ServiceMonitor")["spec"]["endpoints"]
    assert set(ep) <= ENDPOINT_FIELDS, set(ep) - ENDPOINT_FIELDS
    return ep


def test_web_config_is_off_by_default(chart):
    """Defaults: no flag, no mount, plain HTTP probes and scrape, even with
    tlsConfig / basicAuth values filled in (they only matter with webConfig)."""
    assert chart.values["webConfig"]["enabled"] is False
    values = copy.deepcopy(COMBOS["web-tls-basic-auth"]["serviceMonitor"])
    r = render(chart, {"serviceMonitor": values})
    c = container(r)
    assert "--web.config.file" not in c["args"]
    assert all(m["name"] != "web-config" for m in c["volumeMounts"])
    assert all(v["name"] != "web-config" for v in workload(r)["spec"]["template"]["spec"]["volumes"])
    assert c["livenessProbe"]["httpGet"] == {"path": "/-/healthy", "port": "http"}
    ep = endpoint(r)
    assert "scheme" not in ep and "tlsConfig" not in ep and "basicAuth" not in ep
    assert "http://127.0.0.1:9464/" in r["healthprobe/templates/NOTES.txt"]


def test_web_config_tls(chart):
    """TLS: the flag points into the read-only mount of both Secrets, the
    probes speak HTTPS on the same paths with the same timings, and
    Prometheus scrapes https, checking the Service's DNS name against the CA
    from a ConfigMap, with the chart's relabelings unchanged."""
    r = render(chart, COMBOS["web-tls"])
    c = container(r)
    assert c["args"][5:] == ["--web.config.file", f"{WEB_DIR}/web-config.yml"]
    mounts = {m["name"]: m for m in c["volumeMounts"]}
    # no subPath: kubelet's updates of the Secret (a renewed certificate) reach the agent
    assert mounts["web-config"] == {"name": "web-config", "mountPath": WEB_DIR, "readOnly": True}
    vols = {v["name"]: v for v in workload(r)["spec"]["template"]["spec"]["volumes"]}
    assert vols["web-config"] == {
        "name": "web-config",
        "projected": {"defaultMode": 0o440, "sources": [{"secret": {"name": "hp-web"}}, {"secret": {"name": "hp-tls"}}]},
    }
    defaults = chart.values
    for probe, path in (("livenessProbe", "/-/healthy"), ("readinessProbe", "/-/ready")):
        assert c[probe]["httpGet"] == {"path": path, "port": "http", "scheme": "HTTPS"}
        timings = {k: v for k, v in defaults[probe].items() if k != "httpGet"}
        assert {k: v for k, v in c[probe].items() if k != "httpGet"} == timings

    ep = endpoint(r)
    assert ep["scheme"] == "https"
    assert ep["tlsConfig"] == {
        "serverName": f"{FULLNAME}.{NAMESPACE}.svc",
        "insecureSkipVerify": False,
        "ca": {"configMap": {"name": "hp-ca", "key": "ca.crt"}},
    }
    assert "basicAuth" not in ep
    assert ep["relabelings"] == endpoint(render(chart, COMBOS["monitoring"]))["relabelings"]
    notes = r["healthprobe/templates/NOTES.txt"]
    assert "https://127.0.0.1:9464/" in notes and f"--resolve {FULLNAME}.{NAMESPACE}.svc:9464:127.0.0.1" in notes


def test_web_config_tls_and_basic_auth(chart):
    """TLS + basic auth: probes stay httpGet over HTTPS (the agent answers
    /-/healthy and /-/ready without credentials), the scrape sends the user
    and password from a Secret, the file key and serverName are the user's."""
    r = render(chart, COMBOS["web-tls-basic-auth"])
    c = container(r)
    assert c["args"][5:] == ["--web.config.file", f"{WEB_DIR}/web.yml"]
    vols = {v["name"]: v for v in workload(r)["spec"]["template"]["spec"]["volumes"]}
    assert vols["web-config"]["projected"]["sources"] == [{"secret": {"name": "hp-web"}}]
    assert c["livenessProbe"]["httpGet"] == {"path": "/-/healthy", "port": "http", "scheme": "HTTPS"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/-/ready", "port": "http", "scheme": "HTTPS"}
    ep = endpoint(r)
    assert ep["scheme"] == "https"
    assert ep["tlsConfig"] == {
        "serverName": "healthprobe.example.internal",
        "insecureSkipVerify": False,
        "ca": {"secret": {"name": "hp-web", "key": "ca.crt"}},
    }
    assert ep["basicAuth"] == {
        "username": {"name": "hp-scrape", "key": "user"},
        "password": {"name": "hp-scrape", "key": "pass"},
    }
    assert {"action": "replace", "targetLabel": "job", "replacement": "healthprobe"} in ep["relabelings"]
    assert "-u USER" in r["healthprobe/templates/NOTES.txt"]


def test_web_config_tls_with_tls_config_removed(chart):
    """`serviceMonitor.tlsConfig: null` (Helm deletes the key) still scrapes
    https, checking the Service's name against the system roots."""
    values = copy.deepcopy(COMBOS["web-tls"])
    values["serviceMonitor"]["tlsConfig"] = None
    ep = endpoint(render(chart, values))
    assert ep["scheme"] == "https"
    assert ep["tlsConfig"] == {"serverName": f"{FULLNAME}.{NAMESPACE}.svc", "insecureSkipVerify": False}


def test_web_config_basic_auth_without_tls(chart):
    """Basic auth alone: plain HTTP probes and scrape, with credentials."""
    r = render(chart, COMBOS["web-basic-auth"])
    c = container(r)
    assert c["livenessProbe"]["httpGet"] == {"path": "/-/healthy", "port": "http"}
    ep = endpoint(r)
    assert "scheme" not in ep and "tlsConfig" not in ep
    assert ep["basicAuth"] == {
        "username": {"name": "hp-scrape", "key": "username"},
        "password": {"name": "hp-scrape", "key": "password"},
    }


def test_web_config_client_certificates(chart):
    """RequireAndVerifyClientCert: kubelet cannot present a certificate, so
    the probes are tcpSocket on the same port (timings kept); Prometheus
    presents its client certificate and key."""
    r = render(chart, COMBOS["web-client-cert"])
    c = container(r)
    for probe in ("livenessProbe", "readinessProbe"):
        assert "httpGet" not in c[probe]
        assert c[probe]["tcpSocket"] == {"port": "http"}
        assert c[probe]["periodSeconds"] == chart.values[probe]["periodSeconds"]
    ep = endpoint(r)
    assert set(ep["tlsConfig"]) <= TLS_CONFIG_FIELDS
    assert ep["tlsConfig"]["cert"] == {"secret": {"name": "prometheus-client", "key": "tls.crt"}}
    assert ep["tlsConfig"]["keySecret"] == {"name": "prometheus-client", "key": "tls.key"}
    assert "--cert client.crt --key client.key" in r["healthprobe/templates/NOTES.txt"]


def test_web_config_without_secret_is_refused(chart):
    """enabled without secretName: install (which renders with the schema)
    fails naming the key."""
    bad = {"webConfig": {"enabled": True, "tls": True}}
    with pytest.raises(helm.HelmValuesError) as e:
        chart.render(copy.deepcopy(bad), name=RELEASE, namespace=NAMESPACE)
    assert "at '/webConfig/secretName': minLength: got 0, want 1" in str(e.value)


WEB_FAILS = {
    "enabled without secretName": (
        {"webConfig": {"enabled": True}},
        "webConfig.enabled is true but webConfig.secretName is empty",
    ),
    "client certificates without TLS": (
        {"webConfig": {"enabled": True, "secretName": "hp-web", "requireClientCert": True}},
        "webConfig.requireClientCert is true but webConfig.tls is false",
    ),
    "scrape without basic auth credentials": (
        {"webConfig": {"enabled": True, "secretName": "hp-web", "basicAuth": True}, "serviceMonitor": {"enabled": True}},
        "serviceMonitor.basicAuth.secretName is empty",
    ),
    "scrape without a client certificate": (
        {"webConfig": {"enabled": True, "secretName": "hp-web", "tls": True, "requireClientCert": True}, "serviceMonitor": {"enabled": True}},
        "serviceMonitor.tlsConfig.cert or keySecret is empty",
    ),
}


@pytest.fixture(scope="module")
def chart_without_schema(tmp_path_factory):
    """The chart as `helm install --skip-schema-validation` sees it."""
    copy_dir = tmp_path_factory.mktemp("chart") / "healthprobe"
    shutil.copytree(CHART, copy_dir)
    (copy_dir / "values.schema.json").unlink()
    with helm.Chart.load(copy_dir) as c:
        yield c


@pytest.mark.parametrize("case", sorted(WEB_FAILS))
def test_web_config_contradictions_fail_in_the_template(chart, chart_without_schema, case):
    """The schema refuses these, and the templates too, with a message that
    says what to set, when the schema is skipped."""
    values, message = WEB_FAILS[case]
    with pytest.raises(helm.HelmValuesError):
        chart.validate_schema(copy.deepcopy(values))
    with pytest.raises(helm.HelmRenderError) as e:
        chart_without_schema.render(copy.deepcopy(values), name=RELEASE, namespace=NAMESPACE)
    assert message in str(e.value)


BAD_VALUES = {
    "unknown kind": {"kind": "StatefulSet"},
    "kind lowercase": {"kind": "daemonset"},
    "replicaCount as string": {"replicaCount": "2"},
    "port as string": {"service": {"port": "http"}},
    "port out of range": {"service": {"port": 70000}},
    "unknown top-level key": {"replicas": 2},
    "unknown key in serviceMonitor": {"serviceMonitor": {"enabled": True, "intervall": "30s"}},
    "enabled as string": {"serviceMonitor": {"enabled": "yes"}},
    "bad scrape interval": {"serviceMonitor": {"interval": "30 seconds"}},
    "hostPath without path": {"hostPaths": [{"name": "app"}]},
    "relative hostPath": {"hostPaths": [{"name": "app", "hostPath": "var/www"}]},
    "hostPaths not a list": {"hostPaths": {"name": "app", "hostPath": "/var/www"}},
    "docker gid as name": {"dockerSocket": {"enabled": True, "gid": "docker"}},
    "image digest not sha256": {"image": {"repository": "x", "digest": "latest"}},
    "env literal password": {"env": [{"name": "DB_PASSWORD", "value": SECRET_SENTINEL}]},
    "env literal api key": {"env": [{"name": "OPENAI_API_KEY", "value": SECRET_SENTINEL}]},
    "pack var literal password": {"config": {"packs": {"invoiceninja": {"vars": {"db_password": SECRET_SENTINEL}}}}},
    "pack var password with default": {"config": {"packs": {"mastodon": {"vars": {"smtp_password": "${SMTP_PASSWORD:-" + SECRET_SENTINEL + "}"}}}}},
    "unknown key in a pack": {"config": {"packs": {"host": {"enabled": True}}}},
    "secretEnv without key": {"secretEnv": [{"name": "X", "secretName": "s"}]},
    "user check not an object": {"checks": {"shop": 42}},
    "user pack without checks": {"checks": {"shop": {"pack": "shop"}}},
    "concurrency zero": {"config": {"packs": {}, "concurrency": 0}},
    "webConfig enabled without secretName": {"webConfig": {"enabled": True, "tls": True}},
    "webConfig unknown key": {"webConfig": {"enabled": True, "secretName": "s", "caFile": "ca.crt"}},
    "webConfig tls as string": {"webConfig": {"tls": "true"}},
    "webConfig file with a slash": {"webConfig": {"secretName": "s", "file": "web/config.yml"}},
    "webConfig secretName uppercase": {"webConfig": {"secretName": "Web"}},
    "webConfig client certs without tls": {"webConfig": {"enabled": True, "secretName": "s", "requireClientCert": True}},
    "scrape basic auth without a secret": {"webConfig": {"enabled": True, "secretName": "s", "basicAuth": True}, "serviceMonitor": {"enabled": True}},
    "scrape client certs without a cert": {"webConfig": {"enabled": True, "secretName": "s", "tls": True, "requireClientCert": True}, "serviceMonitor": {"enabled": True}},
    "tlsConfig ca from secret and configMap": {"serviceMonitor": {"tlsConfig": {"ca": {"secret": {"name": "a", "key": "b"}, "configMap": {"name": "a", "key": "b"}}}}},
    "tlsConfig ca without key": {"serviceMonitor": {"tlsConfig": {"ca": {"secret": {"name": "a"}}}}},
    "tlsConfig cert without keySecret": {"serviceMonitor": {"tlsConfig": {"cert": {"secret": {"name": "a", "key": "tls.crt"}}}}},
    "tlsConfig insecureSkipVerify as string": {"serviceMonitor": {"tlsConfig": {"insecureSkipVerify": "false"}}},
    "tlsConfig serverName with a scheme": {"serviceMonitor": {"tlsConfig": {"serverName": "https://hp"}}},
    "basicAuth unknown key": {"serviceMonitor": {"basicAuth": {"secret": "s"}}},
}


@pytest.mark.parametrize("case", sorted(BAD_VALUES))
def test_schema_rejects(chart, case):
    with pytest.raises(helm.HelmValuesError):
        chart.validate_schema(copy.deepcopy(BAD_VALUES[case]))


def test_schema_keeps_plain_env_and_env_references(chart):
    chart.validate_schema({"env": [{"name": "TZ", "value": "UTC"}, {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]})
    chart.validate_schema({"config": {"packs": {"invoiceninja": {"vars": {"db_password": "${DB_PASSWORD}", "root": "/srv"}}}}})


def test_chart_copies_match_dashboards():
    """helm/healthprobe/files/ must be byte-identical to dashboards/ (run sync-files.sh)."""
    src = TOP / "dashboards"
    files = CHART / "files"
    wanted = sorted(p.name for p in src.glob("*.json"))
    assert sorted(p.name for p in (files / "dashboards").glob("*.json")) == wanted, "run helm/healthprobe/sync-files.sh"
    for name in wanted:
        assert filecmp.cmp(src / name, files / "dashboards" / name, shallow=False), f"{name} differs: run helm/healthprobe/sync-files.sh"
    assert filecmp.cmp(src / "alerts.yaml", files / "alerts.yaml", shallow=False), "alerts.yaml differs: run helm/healthprobe/sync-files.sh"


def test_values_yaml_documents_every_top_level_key(chart):
    text = (CHART / "values.yaml").read_text()
    schema = chart.schema
    for key in chart.values:
        assert key in schema["properties"], f"{key} has no schema"
    for key in schema["properties"]:
        if key == "global":
            continue
        m = re.search(rf"^{key}:", text, re.M)
        assert m, f"values.yaml lacks {key}"
        before = text[: m.start()].rstrip().splitlines()[-1]
        after = text[m.end():].lstrip("\n").splitlines()[0].strip() if text[m.end():].strip() else ""
        assert before.startswith("#") or after.startswith("#") or key in ("nameOverride", "fullnameOverride"), f"{key} is not documented"


def test_a_default_pack_can_be_switched_off(chart):
    r = render(chart, {"config": {"packs": {"host": None, "mastodon": {}}}})
    cfg = yaml.safe_load(one(r, "ConfigMap")["data"]["healthprobe.yaml"])
    assert cfg["packs"] == {"mastodon": {}}
