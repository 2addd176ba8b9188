"""Renders and lints the chart with Helm's own engine (helm-python-sdk bundles Helm's Go SDK).

Usage: render.py CHART_DIR VALUES_JSON NAMESPACE
Prints {"manifests": {path: yaml}, "crds": [yaml...], "lint": {...}} as JSON.
"""
import json
import sys

import helm_python as helm

chart_dir, values_json, namespace = sys.argv[1], sys.argv[2], sys.argv[3]
values = json.loads(values_json)
chart = helm.Chart.load(chart_dir)
manifests = chart.render(values, name="bbo", namespace=namespace, is_install=True)
crds = [c.get("data", "") for c in chart.crds]
report = helm.lint(chart_dir, values, strict=True, namespace=namespace)
print(json.dumps({"manifests": manifests, "crds": crds, "lint": report}))
