"""Grafana dashboards as code: ``python -m dashboards.build`` writes the committed JSON beside this file.

The dashboards are generated with grafana-foundation-sdk (the Grafana 11.x build), so that panel
layout, units and PromQL live in reviewed Python rather than in hand-edited JSON; the JSON is
committed because that is what Grafana (and a Helm chart's ConfigMap) imports. docs/dashboards.md
describes every panel.
"""
