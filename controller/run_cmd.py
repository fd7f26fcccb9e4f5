"""``autocm run`` (the operator) and ``autocm push-checkpoint`` (upload a trained learner).

Registered in controller/cli.py; importable alone (``python -m controller.run_cmd run ...``) so the
end-to-end tests can start, SIGKILL and restart the real operator process.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import re
import socket
import sys
import urllib.parse
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

DEFAULT_METRICS_PORT = 8080
"""The port kube-rbac-proxy / ServiceMonitor examples use for a controller's metrics."""


def spread_priority(priority: int, spread: int, hostname: str) -> int:
    """``priority`` plus a stable number in [0, spread) from ``hostname`` (in a pod: the pod's name).

    kopf pauses every peer when live peers share the highest priority, so the replicas of one
    Deployment (same flags) would all stand still; a per-pod offset lets exactly one act.
    """
    return priority + (zlib.crc32(hostname.encode()) % spread if spread > 1 else 0)


EXIT_USAGE = 2
"""Bad input (a flag, a kubeconfig, a checkpoint file), as click and ``autocm sim`` use it."""

EXIT_ENVIRONMENT = 1
"""The cluster is not there or refuses us: an unreachable or unauthenticated apiserver, no CRD."""

PROBE_TIMEOUT_S = 5.0
"""One GET /version at start-up: an apiserver answers in milliseconds; kopf would retry forever."""

_DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


class CommandError(click.ClickException):
    """One clear line (``error: ...``) and a non-zero exit, never a traceback."""

    def __init__(self, message: str, exit_code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.exit_code = exit_code

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


def friendly(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Expected failures are CommandErrors already; anything else is a bug, said so in one line."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (click.ClickException, click.exceptions.Exit, click.Abort, SystemExit, KeyboardInterrupt):
            raise
        except Exception as exc:
            if kwargs.get("verbose") or kwargs.get("debug"):
                raise
            raise CommandError(f"internal error: {type(exc).__name__}: {exc} (re-run with --verbose/--debug for "
                               "the traceback, and please report it)", exit_code=1) from exc

    return wrapper


def _name(kind: str, pattern: re.Pattern[str], limit: int) -> Callable[[click.Context, click.Parameter, Any], Any]:
    """A click callback refusing anything but a Kubernetes name (they are pasted into API paths)."""

    def check(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        values = value if isinstance(value, tuple) else (value,)
        for v in values:
            if v is not None and (len(v) > limit or not pattern.fullmatch(v)):
                raise click.BadParameter(f"{v!r} is not a {kind} (lower-case letters, digits and '-'"
                                         f"{', ' + repr('.') if pattern is _DNS1123_SUBDOMAIN else ''}; at most "
                                         f"{limit} characters)")
        return value

    return check


def _url(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return value
    parsed = urllib.parse.urlsplit(value)
    if parsed.scheme not in ("http", "https") or not parsed.netloc or any(c.isspace() for c in value):
        raise click.BadParameter(f"{value!r}: expected an http:// or https:// URL, e.g. http://prometheus:9090")
    return value


def _finite(ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    if value is not None and not math.isfinite(value):
        raise click.BadParameter(f"{value!r} is not a finite number of seconds")
    return value


def _api_client(kubeconfig: str | None):
    """In-cluster config when running in a pod, else the kubeconfig (flag, $KUBECONFIG, ~/.kube/config).

    Every way a kubeconfig can be missing or malformed is one :class:`CommandError` naming the file.
    """
    import yaml
    from kubernetes import config
    from kubernetes.config.config_exception import ConfigException

    where = f"--kubeconfig {kubeconfig}" if kubeconfig else "kubeconfig (~/.kube/config)"
    try:
        if kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
            where = "in-cluster config"
            config.load_incluster_config()
            from kubernetes.client import ApiClient

            return ApiClient()
        if kubeconfig is not None and not Path(kubeconfig).is_file():
            raise CommandError(f"{where}: no such file")
        return config.new_client_from_config(config_file=kubeconfig)
    except CommandError:
        raise
    except ConfigException as exc:
        raise CommandError(f"{where}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise CommandError(f"{where}: not YAML ({' '.join(str(exc).split())})") from exc
    except (TypeError, AttributeError, KeyError, ValueError, IndexError) as exc:
        raise CommandError(f"{where}: not a kubeconfig (expected apiVersion: v1, kind: Config with clusters, "
                           f"contexts, users and current-context; {type(exc).__name__}: {exc})") from exc
    except OSError as exc:
        raise CommandError(f"{where}: {exc.strerror or exc}") from exc


def probe_apiserver(api_client: Any, timeout_s: float = PROBE_TIMEOUT_S, crd: bool = True) -> str:
    """The server's version, after one short GET; a :class:`CommandError` when it cannot serve us.

    Without this ``autocm run`` handed an unreachable or unauthenticated apiserver to kopf, which
    retries forever and logs tracebacks; a start-up that cannot work should say why and stop.
    """
    import urllib3
    from kubernetes.client import ApiException

    from controller.kube import Kube, KubeSettings
    from controller.policy import GROUP, VERSION

    host = api_client.configuration.host
    kube = Kube(api_client, KubeSettings(request_timeout_s=timeout_s, retries=0))

    def get(path: str) -> Any:
        try:
            return kube.get(path)
        except ApiException as exc:
            if exc.status in (401, 403):
                raise CommandError(f"the apiserver at {host} refused our credentials on GET {path} "
                                   f"({exc.status} {exc.reason}); check the kubeconfig's user",
                                   EXIT_ENVIRONMENT) from exc
            if exc.status == 404 and path != "/version":
                raise
            raise CommandError(f"the apiserver at {host} answered GET {path} with {exc.status} {exc.reason}",
                               EXIT_ENVIRONMENT) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise CommandError(f"cannot reach the apiserver at {host} (waited at most {timeout_s:g}s): "
                               f"{' '.join(str(reason).split())[:300]}", EXIT_ENVIRONMENT) from exc

    info = get("/version")
    if not isinstance(info, dict) or "gitVersion" not in info:
        raise CommandError(f"{host} is not a Kubernetes apiserver (GET /version answered {str(info)[:80]!r})",
                           EXIT_ENVIRONMENT)
    if crd:
        try:
            get(f"/apis/{GROUP}/{VERSION}")
        except ApiException as exc:
            raise CommandError(f"the SizingPolicy CRD ({GROUP}/{VERSION}) is not installed on {host}: "
                               "kubectl apply -f controller/crd/sizingpolicy.yaml, or install the Helm chart",
                               EXIT_ENVIRONMENT) from exc
    return str(info["gitVersion"])


@click.command("run")
@click.option("--kubeconfig", type=click.Path(dir_okay=False), default=None, envvar="KUBECONFIG",
              help="Kubeconfig file (default: in-cluster, then $KUBECONFIG, then ~/.kube/config).")
@click.option("--namespace", "-n", "namespaces", multiple=True,
              callback=_name("namespace name", _DNS1123_LABEL, 63),
              help="Watch only this namespace (repeatable). Default: all namespaces.")
@click.option("--all-namespaces", "-A", is_flag=True, help="Watch every namespace (the default).")
@click.option("--prometheus", "prometheus_url", required=True, envvar="AUTOCM_PROMETHEUS_URL", callback=_url,
              help="Prometheus base URL, e.g. http://prometheus-operated.monitoring:9090.")
@click.option("--interval", type=click.FloatRange(min=1, max=86400), default=None, callback=_finite,
              help="Override every policy's spec.intervalSeconds (seconds), e.g. for fast tests.")
@click.option("--standalone/--peering", default=True, show_default=True,
              help="--peering coordinates replicas through kopf peering objects (one acts, others wait).")
@click.option("--peering-name", default="autocm", show_default=True,
              callback=_name("peering object name", _DNS1123_SUBDOMAIN, 253), help="Name of the kopf peering object.")
@click.option("--priority", type=int, default=0, show_default=True,
              help="Peering priority; the highest-priority live replica acts.")
@click.option("--priority-spread", type=click.IntRange(min=0), default=0, show_default=True,
              help="Add a number in [0, N) derived from the host (pod) name to --priority, so that "
                   "replicas started with the same flags get distinct priorities (equal ones all pause).")
@click.option("--peering-lifetime", type=click.IntRange(min=1), default=60, show_default=True,
              help="Seconds without a keep-alive after which a peer counts as dead.")
@click.option("--metrics-port", type=click.IntRange(0, 65535), default=DEFAULT_METRICS_PORT, show_default=True,
              help="Port of the operator's own /metrics (0 disables).")
@click.option("--pause", is_flag=True, help="Observe and write status, change no workload.")
@click.option("--checkpoint-every", type=click.FloatRange(min=1, max=86400), default=60.0, show_default=True,
              callback=_finite,
              help="Seconds between learner checkpoints (also saved after every applied change).")
@click.option("--status-refresh", type=click.FloatRange(min=0, max=86400), default=60.0, show_default=True,
              callback=_finite,
              help="A status that only has fresher numbers is rewritten at most this often; conditions, "
                   "configurations and changes are written at once. 0: every step.")
@click.option("--cross-namespace-classes", is_flag=True,
              help="Let spec.learner.shareWith name a class of another namespace (namespace/name); off: "
                   "a policy shares experience only with policies of its own namespace.")
@click.option("--share-every", type=click.FloatRange(min=1, max=86400), default=300.0, show_default=True,
              callback=_finite,
              help="Seconds between a workload class member's exchanges (spec.learner.shareWith): it publishes "
                   "what its learner saw since the last one and absorbs its peers' newer batches.")
@click.option("--share-max-age", type=click.FloatRange(min=1, max=86400), default=900.0, show_default=True,
              callback=_finite,
              help="Peers' batches older than this many seconds are dropped, not absorbed (bounded staleness); "
                   "keep it above --share-every, or every batch is stale by the time a peer looks.")
@click.option("--verbose", "-v", is_flag=True)
@friendly
def run(kubeconfig: str | None, namespaces: tuple[str, ...], all_namespaces: bool, prometheus_url: str,
        interval: float | None, standalone: bool, peering_name: str, priority: int, priority_spread: int,
        peering_lifetime: int, metrics_port: int, pause: bool, checkpoint_every: float, status_refresh: float,
        cross_namespace_classes: bool, share_every: float, share_max_age: float, verbose: bool) -> None:
    """Run the operator: manage every SizingPolicy (install controller/crd/sizingpolicy.yaml first)."""
    import kopf

    from controller import operator
    from controller.kube import Kube
    from controller.telemetry import Telemetry

    if share_max_age <= share_every:
        raise click.BadParameter(f"{share_max_age:g} s is not above --share-every ({share_every:g} s): every "
                                 "peer batch would be stale before it is read", param_hint="--share-max-age")
    if kubeconfig:
        os.environ["KUBECONFIG"] = kubeconfig  # kopf's own login reads it
    api_client = _api_client(kubeconfig)
    telemetry = Telemetry()
    if metrics_port:
        try:
            telemetry.serve(metrics_port)
        except OSError as exc:
            raise CommandError(f"--metrics-port {metrics_port}: cannot listen ({exc.strerror or exc}); "
                               "choose another port, or 0 to disable /metrics") from exc
    version = probe_apiserver(api_client)
    logging.getLogger("autocm").info("apiserver %s (%s) reachable", api_client.configuration.host, version)
    settings = operator.OperatorSettings(prometheus_url=prometheus_url, paused=pause,
                                         checkpoint_every_s=checkpoint_every, interval_override_s=interval,
                                         peering_lifetime_s=peering_lifetime, status_refresh_s=status_refresh,
                                         cross_namespace_classes=cross_namespace_classes,
                                         share_every_s=share_every, share_max_age_s=share_max_age)
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
@click.option("--policy", "policy_name", required=True, callback=_name("SizingPolicy name", _DNS1123_SUBDOMAIN, 253),
              help="SizingPolicy whose knobs the checkpoint must match.")
@click.option("--namespace", "-n", default="default", show_default=True,
              callback=_name("namespace name", _DNS1123_LABEL, 63))
@click.option("--kubeconfig", type=click.Path(dir_okay=False), default=None, envvar="KUBECONFIG")
@click.option("--configmap", default=None, callback=_name("ConfigMap name", _DNS1123_SUBDOMAIN, 253),
              help="Target ConfigMap (default: the policy's spec.learner.checkpoint, else its own).")
@click.option("--debug", is_flag=True, hidden=True)
@friendly
def push_checkpoint(file: Path, policy_name: str, namespace: str, kubeconfig: str | None,
                    configmap: str | None, debug: bool) -> None:
    """Upload a learner checkpoint FILE (from ``autocm train``), checked against the policy's knobs."""
    from kubernetes.client import ApiException

    from controller import checkpoint as ckpt
    from controller.kube import Kube
    from controller.policy import GROUP, PLURAL, VERSION, PolicyError, check_learner_settings, parse

    # The file first: a wrong file is the user's to fix before any cluster is involved.
    size = file.stat().st_size
    if size * 4 // 3 > ckpt.MAX_BYTES:
        raise CommandError(f"{file}: {size} bytes is too large for a ConfigMap (at most {ckpt.MAX_BYTES * 3 // 4} "
                           "bytes before base64)")
    try:
        blob = file.read_bytes()
        ckpt.decode(blob)
    except ckpt.CheckpointError as exc:
        raise CommandError(f"{file}: {exc}") from exc
    except OSError as exc:
        raise CommandError(f"{file}: {exc.strerror or exc}") from exc
    api_client = _api_client(kubeconfig)
    probe_apiserver(api_client)
    kube = Kube(api_client)
    try:
        body = kube.get(f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}/{policy_name}")
        policy = parse(body.get("spec", {}), namespace, policy_name)
    except ApiException as exc:
        raise CommandError(f"SizingPolicy {namespace}/{policy_name}: {exc.status} {exc.reason}",
                           EXIT_ENVIRONMENT) from exc
    except PolicyError as exc:
        raise CommandError(f"SizingPolicy {namespace}/{policy_name} is invalid: {exc}") from exc
    try:
        got = ckpt.decode(blob, policy.learner, policy.space)
    except ckpt.CheckpointError as exc:
        raise CommandError(f"{file}: {exc}") from exc
    # The operator runs a checkpoint with the settings it was chosen with (spec.learner.settings win): say
    # which, and refuse ones it would not use before they reach the cluster.
    try:
        recorded = check_learner_settings(policy.learner, got.recorded_settings, f"{file}: provenance.settings")
    except PolicyError as exc:
        raise CommandError(f"{exc}; the operator would not use them (retrain, or write the checkpoint's "
                           "provenance.settings anew)") from exc
    name = configmap or (policy.checkpoint.split("/", 1)[1] if policy.checkpoint
                         else ckpt.configmap_name(policy_name))
    cm = ckpt.configmap_body(name, namespace, blob, policy.learner, policy.space)
    try:
        kube.apply(f"/api/v1/namespaces/{namespace}/configmaps/{name}", cm)
    except ApiException as exc:
        raise CommandError(f"configmap/{name} in {namespace}: {exc.status} {exc.reason}", EXIT_ENVIRONMENT) from exc
    click.echo(f"pushed {file} ({len(blob)} bytes, learner {got.learner}, saved {got.saved_at}) "
               f"to configmap/{name} in {namespace}")
    if recorded:
        spec_wins = sorted(k for k in recorded if k in policy.learner_settings)
        click.echo(f"it runs with the settings it was chosen with: {json.dumps(recorded, sort_keys=True)}"
                   + (f"; spec.learner.settings override {', '.join(spec_wins)}" if spec_wins else ""))


@click.group()
def _main() -> None:
    """Entry point for ``python -m controller.run_cmd`` (tests); users run ``autocm run``."""


_main.add_command(run)
_main.add_command(push_checkpoint)

if __name__ == "__main__":
    sys.exit(_main())
