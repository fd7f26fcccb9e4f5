"""Writes (or checks) the dashboards' JSON: ``python -m dashboards.build [--check] [--out DIR]``.

``--configmap NAMESPACE`` instead prints the committed JSON as Kubernetes ConfigMaps labelled
``grafana_dashboard: "1"``, the label Grafana's Helm chart sidecar loads dashboards from (it needs no SDK).

The JSON is committed beside this module so that Grafana, a Helm chart ConfigMap or a user's
provisioning can import it without Python; ``--check`` (and tests/unit/test_dashboards.py) fails
when the Python and the committed JSON disagree, so they never drift.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _builders() -> dict[str, Callable[[], object]]:
    try:
        from dashboards import operator, workloads
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("grafana_foundation_sdk"):
            raise SystemExit("dashboards: grafana-foundation-sdk is not installed; install the project "
                             "(pip install -e .), which pins its Grafana 11.x build") from exc
        raise
    return {"autocm-operator.json": operator.build, "autocm-workloads.json": workloads.build}


def render_all() -> dict[str, str]:
    """File name -> JSON text, exactly as committed (sorted keys, 2-space indent, final newline)."""
    from grafana_foundation_sdk.cog.encoder import JSONEncoder

    out = {}
    for name, build in _builders().items():
        model = build().build()  # type: ignore[attr-defined]
        for i, panel in enumerate(model.panels or [], start=1):
            panel.id_val = i  # Grafana links, alerts and "view panel" address panels by a unique id
        out[name] = json.dumps(model, cls=JSONEncoder, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    return out


SIDECAR_LABEL = ("grafana_dashboard", "1")
"""The grafana Helm chart's sidecar (sidecar.dashboards.label/labelValue defaults) imports ConfigMaps with it."""


def configmaps(namespace: str, directory: Path = HERE) -> str:
    """One ConfigMap per committed dashboard, as a multi-document YAML stream."""
    import yaml

    docs = []
    for name in sorted(p.name for p in directory.glob("*.json")):
        docs.append({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name.removesuffix(".json") + "-dashboard", "namespace": namespace,
                         "labels": {SIDECAR_LABEL[0]: SIDECAR_LABEL[1], "app.kubernetes.io/part-of": "autocm"}},
            "data": {name: (directory / name).read_text()},
        })
    return yaml.safe_dump_all(docs, sort_keys=False, width=1 << 20)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dashboards.build",
        description="Generate autocm's Grafana dashboards (dashboards/*.json) from the Python in dashboards/.",
        epilog="examples:\n"
               "  python -m dashboards.build                 regenerate the committed JSON after editing a panel\n"
               "  python -m dashboards.build --check         fail if the committed JSON is stale (CI)\n"
               "  python -m dashboards.build --configmap monitoring | kubectl apply -f -\n"
               "                                             load them into a Grafana that runs the dashboard sidecar",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", type=Path, default=HERE, help="directory to write to (default: %(default)s)")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 if a committed file differs from what the code builds")
    parser.add_argument("--configmap", metavar="NAMESPACE",
                        help="print the committed dashboards as ConfigMaps for Grafana's sidecar, then exit")
    args = parser.parse_args(argv)
    if args.configmap:
        print(configmaps(args.configmap, args.out), end="")
        return 0
    stale = []
    for name, text in render_all().items():
        path = args.out / name
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
            continue
        args.out.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"wrote {path}")
    if stale:
        print(f"out of date: {', '.join(stale)}; run `python -m dashboards.build` and commit the result",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
