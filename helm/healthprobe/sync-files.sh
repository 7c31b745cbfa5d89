#!/bin/sh
# Copy the dashboards and alert rules into the chart: Helm cannot read files
# outside the chart directory, and dashboards/ stays their one source.
# tests/helm/run fails while the copies differ; run this after changing
# dashboards/ (and commit both).
set -eu
chart=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$chart/../../dashboards" && pwd)
mkdir -p "$chart/files/dashboards"
rm -f "$chart/files/dashboards/"*.json
cp "$src"/*.json "$chart/files/dashboards/"
cp "$src/alerts.yaml" "$chart/files/alerts.yaml"
echo "synced $(ls "$chart/files/dashboards" | wc -l) dashboards and alerts.yaml into $chart/files"
