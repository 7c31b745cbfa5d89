"""The deploy examples in deploy/ and README.md's "Deploy" section.

- test_readme_shows_each_file_verbatim: README.md and deploy/ cannot drift
  apart: every file of deploy/ is in README as one code block, byte for byte,
  and every README block that names a deploy/ file is that file.
- test_systemd_unit_verifies: systemd's own parser (`systemd-analyze verify`)
  accepts the unit without a warning (unknown keys, bad values), with
  ExecStart pointed at the built agent so the command exists; and the unit
  keeps what README says about it (static user, only the two capabilities,
  no DynamicUser/PrivateTmp/ProtectSystem=strict, which break checks).
- test_agent_config_validates: the example agent config loads with
  `healthprobe validate`, its checks directory holding README's demo pack.
- test_compose_file: the compose service builds the repository's Dockerfile,
  publishes 9464 on 127.0.0.1 only, listens where it publishes, mounts the
  config it loads and every host path read-only, adds the Docker socket's
  group, drops all capabilities, and keeps the image's non-root user.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

TOP = Path(__file__).resolve().parents[2]
DEPLOY = TOP / "deploy"
README = (TOP / "README.md").read_text()
FILES = ("healthprobe.yaml", "compose.yaml", "healthprobe.service")


def agent() -> str:
    return os.environ.get("HP_BIN") or str(TOP / os.environ.get("CARGO_TARGET_DIR", "target") / "debug/healthprobe")


def blocks(text: str) -> list[str]:
    return re.findall(r"(?ms)^```[a-z]*\n(.*?)^```$", text)


def test_readme_shows_each_file_verbatim():
    assert sorted(p.name for p in DEPLOY.iterdir()) == sorted(FILES)
    shown = {}
    for b in blocks(README):
        m = re.match(r"# deploy/([\w.]+)", b)
        if m:
            assert m.group(1) not in shown, f"deploy/{m.group(1)} shown twice"
            shown[m.group(1)] = b
    for name in FILES:
        assert name in shown, f"README.md does not show deploy/{name}"
        assert shown[name] == (DEPLOY / name).read_text(), f"README.md and deploy/{name} differ"


def test_systemd_unit_verifies(tmp_path):
    if not shutil.which("systemd-analyze"):
        pytest.fail("systemd-analyze is missing (apt-get install systemd)")
    text = (DEPLOY / "healthprobe.service").read_text()
    unit = tmp_path / "healthprobe.service"
    unit.write_text(text.replace("/usr/local/bin/healthprobe", agent()))
    r = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
    assert r.returncode == 0 and not r.stderr.strip() and not r.stdout.strip(), r.stdout + r.stderr

    settings = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith("#"):
            k, v = line.split("=", 1)
            settings.setdefault(k, v)
    assert settings["User"] == "healthprobe" and "DynamicUser" not in settings
    assert settings["AmbientCapabilities"] == settings["CapabilityBoundingSet"] == "CAP_SETUID CAP_SETGID"
    assert settings["ProtectSystem"] != "strict" and "PrivateTmp" not in settings
    assert settings["ExecStart"] == "/usr/local/bin/healthprobe run --config /etc/healthprobe/healthprobe.yaml"


def test_agent_config_validates(tmp_path):
    config = yaml.safe_load((DEPLOY / "healthprobe.yaml").read_text())
    assert config["listen"] == "127.0.0.1:9464" and "host" in config["packs"]
    [checks_dir] = config["checks_dirs"]
    [demo] = [b for b in blocks(README) if b.startswith("pack: demo\n")]
    (tmp_path / "checks").mkdir()
    (tmp_path / "checks" / "demo.yaml").write_text(demo)
    copy = tmp_path / "healthprobe.yaml"
    copy.write_text((DEPLOY / "healthprobe.yaml").read_text().replace(checks_dir, str(tmp_path / "checks")))
    r = subprocess.run([agent(), "validate", "--config", str(copy)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    r = subprocess.run([agent(), "list", "--config", str(copy), "--format", "json"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert {"host", "demo"} <= set(re.findall(r'"pack":\s*"(\w+)"', r.stdout))


def test_compose_file():
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    [(name, svc)] = compose["services"].items()
    assert (DEPLOY / svc["build"] / "Dockerfile").resolve() == TOP / "Dockerfile"
    dockerfile = (TOP / "Dockerfile").read_text()
    assert "user" not in svc and re.search(r"(?m)^USER 65532", dockerfile), "the image's non-root user is kept"
    assert svc["ports"] == ["127.0.0.1:9464:9464"]
    cmd = svc["command"]
    assert cmd[0] == "run" and cmd[cmd.index("--listen") + 1] == "0.0.0.0:9464"
    config = cmd[cmd.index("--config") + 1]
    mounts = {}
    for v in svc["volumes"]:
        src, dst, mode = v.split(":")
        assert mode == "ro", f"{v} is not read-only"
        mounts[dst] = src
    assert (DEPLOY / mounts[config]).resolve() == DEPLOY / "healthprobe.yaml"
    with_checks = yaml.safe_load((DEPLOY / "healthprobe.yaml").read_text())["checks_dirs"]
    assert set(with_checks) <= set(mounts), "the config's checks_dirs are mounted"
    assert mounts["/var/run/docker.sock"] == "/var/run/docker.sock"
    assert [g.startswith("${DOCKER_GID:?") for g in svc["group_add"]] == [True]
    assert svc["read_only"] is True and svc["cap_drop"] == ["ALL"]
    assert svc["security_opt"] == ["no-new-privileges:true"]
