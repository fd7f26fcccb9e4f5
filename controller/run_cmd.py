"""``autocm run`` (the operator) and ``autocm push-checkpoint`` (upload a trained learner).

Registered in controller/cli.py; importable alone (``python -m controller.run_cmd run ...``) so the
end-to-end tests can start, SIGKILL and restart the real operator process.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import zlib
from pathlib import Path

import click

DEFAULT_METRICS_PORT = 8080
"""The port kube-rbac-proxy / ServiceMonitor examples use for a controller's metrics."""


def spread_priority(priority: int, spread: int, hostname: str) -> int:
    """``priority`` plus a stable number in [0, spread) from ``hostname`` (in a pod: the pod's name).

    kopf pauses every peer when live peers share the highest priority, so the replicas of one
    Deployment (same flags) would all stand still; a per-pod offset lets exactly one act.
    """
    return priority + (zlib.crc32(hostname.encode()) % spread if spread > 1 else 0)


def _api_client(kubeconfig: str | None):
    """In-cluster config when running in a pod, else the kubeconfig (flag, $KUBECONFIG, ~/.kube/config)."""
    from kubernetes import config

    if kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
        config.load_incluster_config()
        from kubernetes.client import ApiClient

        return ApiClient()
    return config.new_client_from_config(config_file=kubeconfig)


@click.command("run")
@click.option("--kubeconfig", type=click.Path(dir_okay=False), default=None, envvar="KUBECONFIG",
              help="Kubeconfig file (default: in-cluster, then $KUBECONFIG, then ~/.kube/config).")
@click.option("--namespace", "-n", "namespaces", multiple=True,
              help="Watch only this namespace (repeatable). Default: all namespaces.")
@click.option("--all-namespaces", "-A", is_flag=True, help="Watch every namespace (the default).")
@click.option("--prometheus", "prometheus_url", required=True, envvar="AUTOCM_PROMETHEUS_URL",
              help="Prometheus base URL, e.g. http://prometheus-operated.monitoring:9090.")
@click.option("--interval", type=click.FloatRange(min=1), default=None,
              help="Override every policy's spec.intervalSeconds (seconds), e.g. for fast tests.")
@click.option("--standalone/--peering", default=True, show_default=True,
              help="--peering coordinates replicas through kopf peering objects (one acts, others wait).")
@click.option("--peering-name", default="autocm", show_default=True, help="Name of the kopf peering object.")
@click.option("--priority", type=int, default=0, show_default=True,
              help="Peering priority; the highest-priority live replica acts.")
@click.option("--priority-spread", type=click.IntRange(min=0), default=0, show_default=True,
              help="Add a number in [0, N) derived from the host (pod) name to --priority, so that "
                   "replicas started with the same flags get distinct priorities (equal ones all pause).")
@click.option("--peering-lifetime", type=click.IntRange(min=1), default=60, show_default=True,
              help="Seconds without a keep-alive after which a peer counts as dead.")
@click.option("--metrics-port", type=int, default=DEFAULT_METRICS_PORT, show_default=True,
              help="Port of the operator's own /metrics (0 disables).")
@click.option("--pause", is_flag=True, help="Observe and write status, change no workload.")
@click.option("--checkpoint-every", type=click.FloatRange(min=1), default=60.0, show_default=True,
              help="Seconds between learner checkpoints (also saved after every applied change).")
@click.option("--status-refresh", type=click.FloatRange(min=0), default=60.0, show_default=True,
              help="A status that only has fresher numbers is rewritten at most this often; conditions, "
                   "configurations and changes are written at once. 0: every step.")
@click.option("--verbose", "-v", is_flag=True)
def run(kubeconfig: str | None, namespaces: tuple[str, ...], all_namespaces: bool, prometheus_url: str,
        interval: float | None, standalone: bool, peering_name: str, priority: int, priority_spread: int,
        peering_lifetime: int, metrics_port: int, pause: bool, checkpoint_every: float, status_refresh: float,
        verbose: bool) -> None:
    """Run the operator: manage every SizingPolicy (install controller/crd/sizingpolicy.yaml first)."""
    import kopf

    from controller import operator
    from controller.kube import Kube
    from controller.telemetry import Telemetry

    if kubeconfig:
        os.environ["KUBECONFIG"] = kubeconfig  # kopf's own login reads it
    api_client = _api_client(kubeconfig)
    telemetry = Telemetry()
    if metrics_port:
        telemetry.serve(metrics_port)
    settings = operator.OperatorSettings(prometheus_url=prometheus_url, paused=pause,
                                         checkpoint_every_s=checkpoint_every, interval_override_s=interval,
                                         peering_lifetime_s=peering_lifetime, status_refresh_s=status_refresh)
    operator.configure(lambda: operator.Engine(Kube(api_client), settings, telemetry))
    # kopf logs every handler call at INFO; our decisions are in status, events and /metrics.
    kopf.configure(verbose=verbose, quiet=not verbose)
    logging.getLogger("autocm").setLevel(logging.DEBUG if verbose else logging.INFO)
    watch_all = all_namespaces or not namespaces
    priority = spread_priority(priority, priority_spread, socket.gethostname())
    kopf.run(standalone=standalone, peering_name=None if standalone else peering_name, priority=priority,
             clusterwide=watch_all, namespaces=() if watch_all else namespaces)


@click.command("push-checkpoint")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--policy", "policy_name", required=True,
              help="SizingPolicy whose knobs the checkpoint must match.")
@click.option("--namespace", "-n", default="default", show_default=True)
@click.option("--kubeconfig", type=click.Path(dir_okay=False), default=None, envvar="KUBECONFIG")
@click.option("--configmap", default=None,
              help="Target ConfigMap (default: the policy's spec.learner.checkpoint, else its own).")
def push_checkpoint(file: Path, policy_name: str, namespace: str, kubeconfig: str | None,
                    configmap: str | None) -> None:
    """Upload a learner checkpoint FILE (from ``autocm train``), checked against the policy's knobs."""
    from kubernetes.client import ApiException

    from controller import checkpoint as ckpt
    from controller.kube import Kube
    from controller.policy import GROUP, PLURAL, VERSION, PolicyError, parse

    kube = Kube(_api_client(kubeconfig))
    try:
        body = kube.get(f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}/{policy_name}")
        policy = parse(body.get("spec", {}), namespace, policy_name)
    except ApiException as exc:
        raise click.ClickException(f"SizingPolicy {namespace}/{policy_name}: {exc.status} {exc.reason}") \
            from exc
    except PolicyError as exc:
        raise click.ClickException(f"SizingPolicy {namespace}/{policy_name} is invalid: {exc}") from exc
    blob = file.read_bytes()
    try:
        got = ckpt.decode(blob, policy.learner, policy.space)
    except ckpt.CheckpointError as exc:
        raise click.ClickException(f"{file}: {exc}") from exc
    if len(blob) * 4 // 3 > ckpt.MAX_BYTES:
        raise click.ClickException(f"{file}: {len(blob)} bytes is too large for a ConfigMap")
    name = configmap or (policy.checkpoint.split("/", 1)[1] if policy.checkpoint
                         else ckpt.configmap_name(policy_name))
    cm = ckpt.configmap_body(name, namespace, blob, policy.learner, policy.space)
    kube.apply(f"/api/v1/namespaces/{namespace}/configmaps/{name}", cm)
    click.echo(f"pushed {file} ({len(blob)} bytes, learner {got.learner}, saved {got.saved_at}) "
               f"to configmap/{name} in {namespace}")


@click.group()
def _main() -> None:
    """Entry point for ``python -m controller.run_cmd`` (tests); users run ``autocm run``."""


_main.add_command(run)
_main.add_command(push_checkpoint)

if __name__ == "__main__":
    sys.exit(_main())
