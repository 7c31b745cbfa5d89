#!/usr/bin/env bash
# Install what healthprobe's tests need on Debian 12 (run as root).
# Idempotent: does nothing when everything is already there.
#
# - Debian packages: the servers the integration tests start themselves
#   (MariaDB, PostgreSQL, dockerd, nginx, Prometheus, ...) and tools.
# - A Python venv at ${HP_VENV:-$HOME/.cache/healthprobe/venv} with aiosmtpd
#   (SMTP test server), helm-python-sdk and kubernetes-validate (Helm chart
#   tests). tests/it/support finds it the same way.
set -euo pipefail

log() { printf '[install-deps] %s\n' "$*"; }

PACKAGES=(
  mariadb-server mariadb-client
  postgresql postgresql-client
  docker.io containerd runc tar
  busybox-static
  nginx-light
  prometheus prometheus-blackbox-exporter
  wrk
  openssl ca-certificates
  systemd
  python3 python3-venv
  chromium
)
PY_PACKAGES=(aiosmtpd helm-python-sdk kubernetes-validate)
PY_IMPORTS="import aiosmtpd, helm_python, kubernetes_validate"

missing=()
for p in "${PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
  [[ "$status" == installed ]] || missing+=("$p")
done

if ((${#missing[@]})); then
  log "missing Debian packages: ${missing[*]}"
  if [[ $(id -u) -ne 0 ]]; then
    log "ERROR: run this script as root to install them"
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1
  # Do not let the packages start their system services (the tests start
  # their own servers); remove the policy afterwards if we added it.
  policy=/usr/sbin/policy-rc.d
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    trap 'rm -f "$policy"' EXIT
  fi
  log "apt-get update"
  apt-get update
  log "apt-get install -y ${missing[*]}"
  apt-get install -y "${missing[@]}"
else
  log "Debian packages: all present"
fi

VENV=${HP_VENV:-${HOME:-/root}/.cache/healthprobe/venv}
if [[ -x "$VENV/bin/python" ]] && "$VENV/bin/python" -c "$PY_IMPORTS" 2>/dev/null; then
  log "Python venv $VENV: ready"
else
  PY=/usr/bin/python3
  [[ -x $PY ]] || PY=$(command -v python3)
  if [[ ! -x "$VENV/bin/python" ]]; then
    log "creating the Python venv $VENV with $PY"
    mkdir -p "$(dirname "$VENV")"
    "$PY" -m venv "$VENV"
  fi
  log "pip install ${PY_PACKAGES[*]} into $VENV"
  "$VENV/bin/python" -m pip install --quiet "${PY_PACKAGES[@]}"
  "$VENV/bin/python" -c "$PY_IMPORTS"
  log "Python venv $VENV: ready"
fi

# cargo-fuzz for tests/fuzz/run: compiled from source, about 2 minutes.
if ! cargo fuzz --version >/dev/null 2>&1; then
  log "cargo install cargo-fuzz --locked"
  cargo install cargo-fuzz --locked
fi
