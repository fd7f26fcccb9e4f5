"""The Kubernetes side of the operator: read a workload's configuration, change it safely, post events.

Every change is a server-side apply under the field manager ``autocm`` (GitOps tools then see which
fields autocm owns), and applies are idempotent, so a retried or repeated apply never acts twice:

- replicas through the ``scale`` subresource (Deployment, StatefulSet), or ``spec.parallelism`` for
  a Job (elastic jobs);
- CPU and memory in place through ``pods/resize`` when the server has it (Kubernetes 1.33+), with
  the applied values recorded in the ``autocm.io/resources`` annotation; otherwise in the pod
  template;
- GPUs per pod and application knobs (``AUTOCM_BATCH_SIZE``, ``AUTOCM_MAX_CONCURRENCY``) in the pod
  template, which restarts pods;
- a Job's pod template cannot change, so a template change deletes the Job (its pods get SIGTERM and
  their grace period to checkpoint) and applies it again under the same name with the new template
  and the ``autocm.io/restarts`` annotation incremented: the checkpoint-aware recreation that
  docs/operator.md documents;
- a Kubeflow PyTorchJob: an elastic one's ``Worker.replicas`` in place, anything else by the same
  recreation (:mod:`controller.pytorchjob` says where its knobs live).

Safety checks live here too because they read the cluster: another autoscaler (HPA, VPA, KEDA)
already owns the workload; the GPUs, the ResourceQuota and pending pods leave no room to scale up.
"""

from __future__ import annotations

import json
import logging
import math
import re
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kubernetes.client import ApiClient, ApiException

from controller import pytorchjob
from controller.policy import KNOBS, Policy, TargetRef
from learners.space import Config

log = logging.getLogger("autocm.kube")
events_log = logging.getLogger("autocm.events")
"""Every event autocm posts is also one line here (INFO for Normal, WARNING for Warning), so ``kubectl logs``
of the operator tells what it did without ``kubectl get events``, which the apiserver keeps for an hour."""

FIELD_MANAGER = "autocm"
GPU = "nvidia.com/gpu"
RESOURCES_ANNOTATION = "autocm.io/resources"
RESTARTS_ANNOTATION = "autocm.io/restarts"
PAUSE_ANNOTATION = "autocm.io/paused"


@dataclass(frozen=True)
class KubeSettings:
    request_timeout_s: float = 10.0
    """Per API call. client-go's default is none; a control loop must not hang on one call."""

    retries: int = 3
    retry_backoff_s: float = 0.5
    """Transient errors (429, 5xx, connection resets) are retried 3 times with 0.5, 1, 2 s backoff,
    client-go's DefaultRetry-like shape; applies are idempotent, so a retry never acts twice."""

    max_retry_after_s: float = 10.0
    """A server's ``Retry-After`` (429, 503: API priority and fairness, an overloaded apiserver) is
    waited out, as client-go does, but at most this long, so that one call cannot stall a step."""

    job_delete_timeout_s: float = 120.0
    """How long a Job recreation waits for the old Job to go: covers the default 30 s termination
    grace period (the window in which a training job writes its checkpoint) plus pod cleanup."""

    default_max_surge: float = 0.25
    """A Deployment's default rollingUpdate.maxSurge (25%): new pods a template change needs at once."""


# --- low-level API access --------------------------------------------------------------------------


class Kube:
    """Raw JSON access to the apiserver through the official client's ApiClient.

    Plain dicts, not the generated models: server-side apply bodies are partial objects, and the
    generated client (33.x) has no way to send ``application/apply-patch+yaml`` from its typed methods.
    """

    def __init__(self, api_client: ApiClient, settings: KubeSettings | None = None) -> None:
        self.api_client = api_client
        self.settings = settings or KubeSettings()
        self.calls = 0

    def request(self, method: str, path: str, body: Any = None, query: Mapping[str, Any] | None = None,
                content_type: str = "application/json") -> Any:
        s = self.settings
        for attempt in range(s.retries + 1):
            self.calls += 1
            delay = s.retry_backoff_s * 2**attempt
            try:
                data = self.api_client.call_api(
                    path, method, query_params=list((query or {}).items()),
                    header_params={"Content-Type": content_type, "Accept": "application/json"},
                    body=body, auth_settings=["BearerToken"], response_type="object",
                    _return_http_data_only=True, _preload_content=True,
                    _request_timeout=s.request_timeout_s)
                return data
            except ApiException as exc:
                transient = exc.status in (429, 500, 502, 503, 504) or exc.status == 0
                if not transient or attempt == s.retries:
                    raise
                delay = max(delay, min(_retry_after_s(exc), s.max_retry_after_s))
            except (OSError, ConnectionError):
                if attempt == s.retries:
                    raise
            time.sleep(delay)
        raise AssertionError("unreachable")

    def get(self, path: str, **query: Any) -> Any:
        return self.request("GET", path, query=query)

    def apply(self, path: str, body: Mapping[str, Any], force: bool = True) -> Any:
        """Server-side apply (JSON is YAML) under the ``autocm`` field manager."""
        return self.request("PATCH", path, body=body, content_type="application/apply-patch+yaml",
                            query={"fieldManager": FIELD_MANAGER, "force": "true" if force else "false"})

    def merge_patch(self, path: str, body: Mapping[str, Any], field_manager: str | None = None) -> Any:
        """A JSON merge patch (RFC 7386): changes what ``body`` names and nothing else.

        One field alone (a count) is written this way, not by :meth:`apply`: a server-side apply by the
        ``autocm`` manager that omits fields the same manager applied before *removes* them, and a recreation
        applies the whole spec, so a later count-only apply wiped a recreated PyTorchJob's pod template (the
        real Kubeflow training operator then panicked on a template without containers)."""
        query = {"fieldManager": field_manager} if field_manager else None
        return self.request("PATCH", path, body=body, content_type="application/merge-patch+json", query=query)

    def strategic_patch(self, path: str, body: Mapping[str, Any]) -> Any:
        return self.request("PATCH", path, body=body, content_type="application/strategic-merge-patch+json",
                            query={"fieldManager": FIELD_MANAGER})

    def server_minor_version(self) -> int:
        info = self.get("/version")
        return int(re.sub(r"\D", "", str(info.get("minor", "0"))) or 0)


def _retry_after_s(exc: ApiException) -> float:
    """The seconds of an answer's ``Retry-After`` header (the apiserver sends whole seconds), else 0."""
    value = (exc.headers or {}).get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else 0.0
    except ValueError:  # an HTTP date: not what the apiserver sends; fall back to the backoff
        return 0.0


DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
"""An object name as the apiserver validates it (k8s.io/apimachinery validation.IsDNS1123Subdomain's
regex, at most 253 characters): no slash, no ``..``, nothing a URL could resolve out of its collection."""


class WorkloadSpecError(ValueError):
    """The target workload's own object cannot be read as a sizable workload (no containers, a
    PyTorchJob with neither Worker nor Master, a resource quantity or knob value that is not a number).

    Why a class of its own: the operator used to blame the learner for these ("learner 'static' failed in
    its step"), sending the user to ``spec.learner`` when the fault is in the object ``spec.targetRef``
    names. The operator reports it as ``InvalidWorkload`` and retries next interval, since the owner of
    that object (a person, or another controller) may fix it."""


class UnsafeTarget(ValueError):
    """A name or namespace that would leave the policy's own collection if pasted into an API path,
    or an object the apiserver returned that is not the one the policy targets."""


def path_segment(what: str, value: Any) -> str:
    """``value`` as one URL path segment, refused unless it is a DNS-1123 name.

    The CRD pattern and :func:`controller.policy.parse` already refuse such names; this is the last
    line, so that no request built here can address another namespace whatever a name holds. The
    segment is also percent-quoted (a no-op for a valid name).
    """
    if not isinstance(value, str) or len(value) > 253 or not DNS1123_SUBDOMAIN.fullmatch(value):
        raise UnsafeTarget(f"refusing {what} {value!r}: not a DNS-1123 name (lower-case letters, digits, "
                           "'-' and '.', at most 253 characters), so it cannot be used in an API path")
    return urllib.parse.quote(value, safe="")


_PLURALS = {"Deployment": ("/apis/apps/v1", "deployments"), "StatefulSet": ("/apis/apps/v1", "statefulsets"),
            "Job": ("/apis/batch/v1", "jobs"), pytorchjob.KIND: (f"/apis/{pytorchjob.API_VERSION}", pytorchjob.PLURAL)}


def collection_path(target: TargetRef) -> str:
    """The namespaced collection ``target``'s kind lives in, in the policy's own namespace."""
    if target.kind not in _PLURALS:
        raise UnsafeTarget(f"refusing kind {target.kind!r}: not one of {sorted(_PLURALS)}")
    group, plural = _PLURALS[target.kind]
    return f"{group}/namespaces/{path_segment('namespace', target.namespace)}/{plural}"


def workload_path(target: TargetRef) -> str:
    return f"{collection_path(target)}/{path_segment('targetRef.name', target.name)}"


def check_is_target(obj: Mapping[str, Any], target: TargetRef) -> Mapping[str, Any]:
    """``obj`` unchanged if it is ``target`` (namespace, name, kind); raises :class:`UnsafeTarget` if not.

    Checked on every object read before acting on it, so that even a request that somehow resolved
    elsewhere (a redirect, a proxy) cannot make autocm change or delete another namespace's workload.
    """
    meta = obj.get("metadata") or {}
    got = (meta.get("namespace"), meta.get("name"), obj.get("kind", target.kind))
    if got != (target.namespace, target.name, target.kind):
        raise UnsafeTarget(f"refusing to act on {got[2]} {got[0]}/{got[1]}: the policy targets "
                           f"{target.kind} {target.namespace}/{target.name}")
    return obj


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def post_event(kube: Kube, involved: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
    """A core/v1 Event on ``involved`` (apiVersion, kind, name, namespace, uid); never raises."""
    ts = now_rfc3339()
    body = {
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"generateName": "autocm-", "namespace": involved["namespace"]},
        "involvedObject": dict(involved), "type": type_, "reason": reason, "message": message[:1024],
        "source": {"component": FIELD_MANAGER}, "reportingComponent": FIELD_MANAGER,
        "reportingInstance": socket.gethostname()[:128], "firstTimestamp": ts, "lastTimestamp": ts,
        "count": 1, "action": reason,
    }
    events_log.log(logging.WARNING if type_ == "Warning" else logging.INFO, "%s %s/%s: %s: %s",
                   involved.get("kind"), involved.get("namespace"), involved.get("name"), reason,
                   one_line(message))
    try:
        kube.request("POST", f"/api/v1/namespaces/{involved['namespace']}/events", body=body)
    except (ApiException, OSError) as exc:  # an event is best effort; the change itself happened
        log.warning("could not post event %s on %s: %s", reason, involved.get("name"), exc)


_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")


def one_line(text: str, limit: int = 1024) -> str:
    """``text`` as one log line of at most ``limit`` characters: control characters (newlines included)
    written as escapes. Messages quote tenants' specs, and a tenant must not be able to forge a line of
    the operator's log (say, another namespace's decision) by putting a newline in a name or a setting."""
    flat = _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)
    return flat if len(flat) <= limit else flat[:limit - 1] + "\u2026"


_LABEL = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._/-]{0,315}[A-Za-z0-9])?")
"""A label key (with its prefix) or a non-empty value as the apiserver allows them: nothing that could end a
selector or add a clause to it."""


def pods_selector(obj: Mapping[str, Any], kind: str, name: str) -> str | None:
    """The label selector of a workload's pods: a PyTorchJob's by the training operator's job-name label, any
    other by its own ``spec.selector.matchLabels``; None when it has none, or when a key or value is not a
    label the apiserver would allow (so nothing read from an object can rewrite the query)."""
    if kind == pytorchjob.KIND:
        match: Any = {pytorchjob.JOB_NAME_LABEL: name}
    else:
        match = ((obj.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    if not match or not isinstance(match, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) and _LABEL.fullmatch(k) and (v == "" or _LABEL.fullmatch(v))
            for k, v in match.items()):
        return None
    return ",".join(f"{k}={v}" for k, v in sorted(match.items()))


JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
"""The label the Job controller puts on a Job's pods (Kubernetes 1.27+), stable across a recreation."""
HOSTNAME = "kubernetes.io/hostname"
TOGETHER_WEIGHT = 100
"""The preference's weight (the most Kubernetes allows): it outweighs the scheduler's default spreading
scores (``NodeResourcesFit``'s least-allocated, ``NodeResourcesBalancedAllocation``), not a tenant's own
required terms, which still filter nodes first."""


def keep_pods_together(body: dict[str, Any], kind: str, name: str) -> bool:
    """Ask the scheduler to put a recreated training job's pods on as few nodes as it can: a *preferred* pod
    affinity, by node, towards the job's own pods, added to every pod template of ``body`` (a Job's or a
    PyTorchJob's). Workers on one node talk over NVLink and shared memory instead of the network; the
    operator's training pool decides GPU counts, Kubernetes places the pods, and by default it spreads them.

    Preferred, not required: when no node has room for the whole job it still starts. The term selects only
    pods of this job in its own namespace (a pod affinity term without ``namespaces`` is namespace-local), so
    it can neither reach nor be steered by another tenant's pods. The tenant's own affinity is kept; a
    template whose affinity is not the shape Kubernetes expects is left alone (the apiserver judges it), and
    the term is added once however often the job is recreated. Returns whether any template was changed.
    """
    label = pytorchjob.JOB_NAME_LABEL if kind == pytorchjob.KIND else JOB_NAME_LABEL
    if not _LABEL.fullmatch(name):
        return False
    term = {"weight": TOGETHER_WEIGHT, "podAffinityTerm": {
        "labelSelector": {"matchLabels": {label: name}}, "topologyKey": HOSTNAME}}
    return _prefer(body, kind, "podAffinity", term)


PREFERRED_NODE_ANNOTATION = "autocm.io/preferred-node"
"""On a job the pool moved onto one node: that node's hostname, so the next recreation can take the preference
back out (it is copied from the job's own template, and a later move must not keep steering to the old node)."""


def prefer_node(body: dict[str, Any], kind: str, hostname: str | None) -> bool:
    """Ask the scheduler to put the recreated job's pods on the node whose ``kubernetes.io/hostname`` label is
    ``hostname``: a *preferred* node affinity (weight 100) in every pod template, beside the tenant's own. The
    pool uses it to move a job split over nodes onto one that has room for all of it; preferred, so the job
    still starts elsewhere if that room is taken meanwhile. Same rules as :func:`keep_pods_together`.

    The preference an earlier move wrote (named by ``PREFERRED_NODE_ANNOTATION`` in ``body``'s metadata) is taken
    out first, and the annotation now names ``hostname``; ``None`` only takes the old one out."""
    meta = body.get("metadata")
    annotations = meta.setdefault("annotations", {}) if isinstance(meta, dict) else None
    if not isinstance(annotations, dict):
        return False
    old = annotations.pop(PREFERRED_NODE_ANNOTATION, None)
    if isinstance(old, str):
        _prefer(body, kind, "nodeAffinity", _node_term(old), remove=True)
    if hostname is None or not _LABEL.fullmatch(hostname):
        return False
    annotations[PREFERRED_NODE_ANNOTATION] = hostname
    return _prefer(body, kind, "nodeAffinity", _node_term(hostname))


def _node_term(hostname: str) -> dict[str, Any]:
    return {"weight": TOGETHER_WEIGHT, "preference": {"matchExpressions": [
        {"key": HOSTNAME, "operator": "In", "values": [hostname]}]}}


def _prefer(body: dict[str, Any], kind: str, section: str, term: dict[str, Any], remove: bool = False) -> bool:
    """Add ``term`` to ``affinity.<section>.preferredDuringSchedulingIgnoredDuringExecution`` of every pod
    template of ``body``, once (``remove``: take every copy of it out); templates of the wrong shape are left
    alone."""
    spec = body.get("spec")
    if not isinstance(spec, dict):
        return False
    roles = spec.get("pytorchReplicaSpecs") if kind == pytorchjob.KIND else {"job": spec}
    changed = False
    for role in (roles.values() if isinstance(roles, dict) else ()):
        template = role.get("template") if isinstance(role, dict) else None
        pod = template.get("spec") if isinstance(template, dict) else None
        if not isinstance(pod, dict):
            continue
        affinity = pod.setdefault("affinity", {})
        if not isinstance(affinity, dict):
            continue
        part = affinity.setdefault(section, {})
        if not isinstance(part, dict):
            continue
        preferred = part.setdefault("preferredDuringSchedulingIgnoredDuringExecution", [])
        if not isinstance(preferred, list):
            continue
        if remove:
            kept = [t for t in preferred if t != term]
            changed |= len(kept) != len(preferred)
            preferred[:] = kept
            continue
        if term in preferred:
            continue
        preferred.append(term)
        changed = True
    return changed


def job_pods_by_node(pods: list[Mapping[str, Any]], kind_of: Mapping[str, str]) -> dict[str, dict[str, int]]:
    """GPUs per node of each named job's live pods (bound to a node, not Succeeded or Failed, not being deleted,
    asking for GPUs), from a list of one namespace's pods. ``kind_of``: job name -> kind (Job or PyTorchJob),
    whose label names a pod's job. A pod whose GPUs cannot be read is not counted."""
    out: dict[str, dict[str, int]] = {}
    for p in pods:
        meta, spec = p.get("metadata") or {}, p.get("spec") or {}
        labels = meta.get("labels") or {}
        node = spec.get("nodeName")
        if not node or meta.get("deletionTimestamp") or (p.get("status") or {}).get("phase") in ("Succeeded",
                                                                                              "Failed"):
            continue
        for job, kind in ((labels.get(JOB_NAME_LABEL), "Job"), (labels.get(pytorchjob.JOB_NAME_LABEL),
                                                                pytorchjob.KIND)):
            if isinstance(job, str) and kind_of.get(job) == kind:
                try:
                    gpus = pod_gpus(p)
                except (ValueError, TypeError, AttributeError):
                    break
                if gpus > 0:
                    per = out.setdefault(job, {})
                    per[str(node)] = per.get(str(node), 0) + math.ceil(gpus)
                break
    return out


def free_gpus_by_node(nodes: list[Mapping[str, Any]], pods: list[Mapping[str, Any]]) -> dict[str, tuple[int, str]]:
    """Per schedulable node that advertises GPUs and carries a ``kubernetes.io/hostname`` label: (GPUs free,
    that hostname), free being allocatable less what bound, live pods of every namespace ask for."""
    used: dict[str, float] = {}
    for p in pods:
        node = (p.get("spec") or {}).get("nodeName")
        if node and (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed"):
            try:
                used[node] = used.get(node, 0.0) + pod_gpus(p)
            except (ValueError, TypeError, AttributeError):
                continue
    out: dict[str, tuple[int, str]] = {}
    for n in nodes:
        meta = n.get("metadata") or {}
        hostname = (meta.get("labels") or {}).get(HOSTNAME)
        alloc = ((n.get("status") or {}).get("allocatable") or {}).get(GPU)
        if (n.get("spec") or {}).get("unschedulable") or alloc is None or not isinstance(hostname, str):
            continue
        try:
            free = math.floor(parse_quantity(alloc) - used.get(meta.get("name"), 0.0) + 1e-9)
        except ValueError:
            continue
        out[str(meta.get("name"))] = (max(0, free), hostname)
    return out


def involved_ref(obj: Mapping[str, Any]) -> dict[str, Any]:
    meta = obj.get("metadata", {})
    return {"apiVersion": obj.get("apiVersion"), "kind": obj.get("kind"), "name": meta.get("name"),
            "namespace": meta.get("namespace"), "uid": meta.get("uid")}


# --- quantities ------------------------------------------------------------------------------------

_SUFFIX = {"": 1, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18,
           "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60, "m": 1e-3}


def parse_quantity(q: Any) -> float:
    """A Kubernetes resource quantity ("500m", "2", "1Gi", "1e3") as a number in base units."""
    m = re.fullmatch(r"([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E)?", str(q).strip())
    if not m:
        raise ValueError(f"not a Kubernetes quantity: {q!r}")
    return float(m.group(1)) * _SUFFIX[m.group(2) or ""]


# --- reading a workload's configuration ------------------------------------------------------------


def pod_spec(obj: Mapping[str, Any]) -> dict[str, Any]:
    if obj.get("kind") == pytorchjob.KIND:
        return pytorchjob.pod_spec(obj)
    return obj.get("spec", {}).get("template", {}).get("spec", {})


def container_of(obj: Mapping[str, Any], name: str | None) -> dict[str, Any]:
    """The container named ``name`` (the first one for ``None``); :class:`WorkloadSpecError` when the
    object has none or its pod template is not the shape its kind promises."""
    try:
        containers = pod_spec(obj).get("containers") or []
        if not isinstance(containers, list) or not all(isinstance(c, Mapping) for c in containers):
            raise WorkloadSpecError("its pod template's containers are not a list of objects")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise WorkloadSpecError(f"{obj.get('kind')} {obj.get('metadata', {}).get('name')}: {exc}") from None
    if not containers:
        raise WorkloadSpecError(f"{obj.get('kind')} {obj.get('metadata', {}).get('name')} has no containers")
    if name is None:
        return containers[0]
    for c in containers:
        if c.get("name") == name:
            return c
    raise WorkloadSpecError(f"container {name!r} not found; containers are {[c.get('name') for c in containers]}")


def knob_names(policy: Policy) -> dict[str, str]:
    """CRD knob name -> loop knob name for this policy."""
    return {crd: loop for loop, crd in policy.crd_knobs.items()}


def read_config(obj: Mapping[str, Any], policy: Policy) -> Config:
    """The workload's current value of every knob (knobs it does not express take the knob's default);
    :class:`WorkloadSpecError` when the object holds a value that is not one (``nvidia.com/gpu: two``)."""
    container = container_of(obj, policy.target.container)
    try:
        return _read_config(obj, container, policy)
    except WorkloadSpecError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as exc:  # the caller names the object
        raise WorkloadSpecError(f"cannot read its configuration ({type(exc).__name__}: {exc})") from None


def _read_config(obj: Mapping[str, Any], container: Mapping[str, Any], policy: Policy) -> Config:
    res = container.get("resources", {})
    env = {e.get("name"): e.get("value") for e in container.get("env", []) if "value" in e}
    in_place = json.loads(obj.get("metadata", {}).get("annotations", {}).get(RESOURCES_ANNOTATION, "{}"))
    spec = obj.get("spec", {})
    out: Config = {}
    for crd, loop in knob_names(policy).items():
        value: float | None = None
        if crd == "replicas" and policy.target.kind == pytorchjob.KIND:
            value = pytorchjob.replicas(obj)
        elif crd == "replicas":
            value = spec.get("parallelism" if policy.target.kind == "Job" else "replicas", 1)
        elif crd == "gpusPerReplica":
            raw = res.get("limits", {}).get(GPU, res.get("requests", {}).get(GPU))
            value = parse_quantity(raw) if raw is not None else None
        elif crd == "cpu":
            raw = in_place.get("cpu", res.get("requests", {}).get("cpu"))
            value = parse_quantity(raw) * 1000 if raw is not None else None
        elif crd == "memory":
            raw = in_place.get("memory", res.get("requests", {}).get("memory"))
            value = parse_quantity(raw) / 2**20 if raw is not None else None
        elif KNOBS[crd].env:
            raw = env.get(KNOBS[crd].env)
            value = float(raw) if raw not in (None, "") else None
        out[loop] = float(value) if value is not None else policy.space[loop].initial()
    return out


# --- building apply bodies --------------------------------------------------------------------------


def _set_cpu_memory(config: Mapping[str, float], names: Mapping[str, str], had_limits: Mapping[str, Any],
                    requests: dict[str, str], limits: dict[str, str]) -> None:
    """CPU and memory requests from the configuration; a limit only where the container had one,
    kept equal to the request (the pod template and pods/resize both use this)."""
    for resource, fmt in (("cpu", _cpu), ("memory", _memory)):
        if resource in names:
            requests[resource] = fmt(config[names[resource]])
            if resource in had_limits:
                limits[resource] = requests[resource]


def _cpu(millicores: float) -> str:
    return f"{round(millicores)}m"


def _memory(mib: float) -> str:
    return f"{round(mib)}Mi"


def template_fields(policy: Policy, config: Config, current_container: Mapping[str, Any],
                    in_place: bool) -> dict[str, Any]:
    """The container fields autocm owns for ``config``: all of them, every time (SSA drops omitted fields)."""
    names = knob_names(policy)
    requests: dict[str, str] = {}
    limits: dict[str, str] = {}
    env: list[dict[str, str]] = []
    had_limits = current_container.get("resources", {}).get("limits", {})
    if "gpusPerReplica" in names:
        gpus = str(round(config[names["gpusPerReplica"]]))
        requests[GPU] = limits[GPU] = gpus  # extended resources: requests must equal limits
    if not in_place:
        _set_cpu_memory(config, names, had_limits, requests, limits)
    for crd, loop in names.items():
        var = KNOBS[crd].env
        if var:
            env.append({"name": var, "value": str(round(config[loop]))})
    container: dict[str, Any] = {"name": current_container["name"]}
    resources = {k: v for k, v in (("requests", requests), ("limits", limits)) if v}
    if resources:
        container["resources"] = resources
    if env:
        container["env"] = env
    return container


def needs_template(policy: Policy, config: Config, in_place: bool) -> bool:
    names = knob_names(policy)
    crds = {"gpusPerReplica"} | {c for c in KNOBS if KNOBS[c].env}
    if not in_place:
        crds |= {"cpu", "memory"}
    return any(c in names for c in crds)


# --- capacity --------------------------------------------------------------------------------------


def pod_gpus(pod: Mapping[str, Any]) -> float:
    """GPUs a pod asks for (requests, else limits), summed over its containers."""
    total = 0.0
    for c in pod.get("spec", {}).get("containers", []):
        res = c.get("resources", {})
        raw = res.get("requests", {}).get(GPU, res.get("limits", {}).get(GPU))
        total += parse_quantity(raw) if raw is not None else 0.0
    return total


def _unschedulable(pod: Mapping[str, Any]) -> str | None:
    """The scheduler's message when ``pod`` is Pending because it does not fit anywhere."""
    status = pod.get("status", {})
    if status.get("phase") != "Pending":
        return None
    for c in status.get("conditions", []):
        if c.get("type") == "PodScheduled" and c.get("status") == "False":
            return c.get("message") or c.get("reason") or "unschedulable"
    return None


def free_gpu_slots(nodes: list[Mapping[str, Any]], pods: list[Mapping[str, Any]], gpus_per_pod: float) -> int:
    """How many more pods of ``gpus_per_pod`` GPUs fit, node by node (a pod cannot span nodes)."""
    if gpus_per_pod <= 0:
        return 1 << 30
    used: dict[str, float] = {}
    for p in pods:
        node = p.get("spec", {}).get("nodeName")
        if node and p.get("status", {}).get("phase") not in ("Succeeded", "Failed"):
            used[node] = used.get(node, 0.0) + pod_gpus(p)
    slots = 0
    for n in nodes:
        if n.get("spec", {}).get("unschedulable"):
            continue
        alloc = n.get("status", {}).get("allocatable", {}).get(GPU)
        if alloc is None:
            continue
        free = parse_quantity(alloc) - used.get(n["metadata"]["name"], 0.0)
        slots += max(0, math.floor(free / gpus_per_pod + 1e-9))
    return slots


def quota_room(quotas: list[Mapping[str, Any]], extra_gpus: float, extra_pods: int) -> str | None:
    """Why the namespace's ResourceQuotas refuse ``extra_gpus`` more GPUs or ``extra_pods`` pods, or None."""
    for q in quotas:
        hard = q.get("status", {}).get("hard") or q.get("spec", {}).get("hard", {})
        used = q.get("status", {}).get("used", {})
        name = q.get("metadata", {}).get("name")
        for key, extra in ((f"requests.{GPU}", extra_gpus), (f"limits.{GPU}", extra_gpus),
                           ("pods", extra_pods), ("count/pods", extra_pods)):
            if key in hard and extra > 0:
                left = parse_quantity(hard[key]) - parse_quantity(used.get(key, "0"))
                if extra > left + 1e-9:
                    return (f"ResourceQuota {name}: {key} has room for {left:g} more, "
                            f"the change needs {extra:g}")
    return None


def describe_changes(policy: Policy, changes: Mapping[str, tuple[float, float]]) -> str:
    """``replicas 2 -> 4, batchSize 8 -> 16``: knob names in the user's (CRD) words."""
    return ", ".join(f"{policy.crd_knobs.get(k, k)} {a:g} -> {b:g}" for k, (a, b) in changes.items())


# --- the actuator -----------------------------------------------------------------------------------


@dataclass
class ScaleUp:
    at_s: float
    before: Config


class ResizeUnavailable(Exception):
    """The server does not serve ``pods/resize`` (before 1.33, or the InPlacePodVerticalScaling gate off)."""


@dataclass
class WorkloadActuator:
    """The control loop's :class:`~controller.loop.Actuator` for one policy's workload."""

    kube: Kube
    policy: Policy
    in_place_resize: bool = False
    clock: Callable[[], float] = time.time
    notes: list[str] = field(default_factory=list)
    """What the latest apply adjusted or refused, in words, for the status."""
    changes: dict[str, tuple[float, float]] = field(default_factory=dict)
    last_scale_up: ScaleUp | None = None
    rollbacks: int = 0
    """Scale-ups rolled back in a row because their pods stayed Pending."""
    hold_until_s: float = -math.inf
    """No scale-up before this time: the last one ran into a wall (pods Pending) and was rolled back."""

    @property
    def path(self) -> str:
        return workload_path(self.policy.target)

    def read(self) -> dict[str, Any]:
        return dict(check_is_target(self.kube.get(self.path), self.policy.target))

    def current(self) -> Config:
        return read_config(self.read(), self.policy)

    # capacity ---------------------------------------------------------------------------------------
    def _room(self, current: Config, target: Config) -> tuple[Config, list[str]]:
        """``target`` with GPU scale-ups cut down to what the cluster and quota can schedule."""
        names = knob_names(self.policy)
        r_k, g_k = names.get("replicas"), names.get("gpusPerReplica")
        r0 = current.get(r_k, 1.0) if r_k else 1.0
        r1 = target.get(r_k, r0) if r_k else r0
        g0 = current.get(g_k, 0.0) if g_k else self._template_gpus()
        g1 = target.get(g_k, g0) if g_k else g0
        if r1 * g1 <= r0 * g0 and r1 <= r0:
            return target, []
        if self.clock() < self.hold_until_s:
            return dict(current), [f"capacity: not scaling up for {self.hold_until_s - self.clock():.0f}s more: "
                                   f"the last scale-up's pods stayed Pending and it was rolled back"]
        ns = self.policy.target.namespace
        out = dict(target)
        notes: list[str] = []
        pods = self.kube.get("/api/v1/pods").get("items", [])
        if g1 > 0:
            waiting = [p for p in pods if pod_gpus(p) > 0 and _unschedulable(p)]
            if waiting:
                # Only this namespace's pods are named: a status is readable by the namespace's users,
                # and another tenant's pod names are not theirs to see.
                own = [p["metadata"]["name"] for p in waiting if p["metadata"].get("namespace") == ns]
                example = f"e.g. {ns}/{own[0]}" if own else "in other namespaces"
                return dict(current), [f"capacity: not scaling up, {len(waiting)} GPU pod(s) already "
                                       f"cannot schedule ({example})"]
        quotas = self.kube.get(f"/api/v1/namespaces/{ns}/resourcequotas").get("items", [])
        new_pods = (r1 if g1 != g0 else max(0.0, r1 - r0))
        why = quota_room(quotas, max(0.0, r1 * g1 - r0 * g0), int(max(0.0, r1 - r0)))
        if why:
            return dict(current), [f"capacity: {why}"]
        if g1 > 0:
            nodes = self.kube.get("/api/v1/nodes").get("items", [])
            slots = free_gpu_slots(nodes, pods, g1)
            if g1 != g0:
                surge = max(1, math.ceil(self.kube.settings.default_max_surge * r1))
                if slots < min(r1, surge):
                    return dict(current), [f"capacity: no node has {g1:g} free GPU(s) for the new pods"]
            elif slots < new_pods and r_k:
                fit = r0 + slots
                out[r_k] = max((v for v in self.policy.space[r_k].values if r0 <= v <= fit), default=r0)
                notes.append(f"capacity: only {slots} more pod(s) of {g1:g} GPU(s) fit; "
                             f"replicas {r1:g} cut to {out[r_k]:g}")
        return out, notes

    def _template_gpus(self) -> float:
        try:
            c = container_of(self.read(), self.policy.target.container)
        except ValueError:
            return 0.0
        res = c.get("resources", {})
        raw = res.get("limits", {}).get(GPU, res.get("requests", {}).get(GPU))
        return parse_quantity(raw) if raw is not None else 0.0

    # actuation --------------------------------------------------------------------------------------
    def apply(self, workload: str, config: Config, reason: str) -> None:
        obj = self.read()
        current = read_config(obj, self.policy)
        target, self.notes = self._room(current, dict(config))
        if self.policy.target.kind == pytorchjob.KIND:
            target = self._within_elastic_bounds(obj, current, target)
        self.changes = {k: (current[k], v) for k, v in target.items() if current.get(k) != v}
        if not self.changes:
            return
        self._actuate(obj, current, target)
        if any(new > old for old, new in self.changes.values()):
            self.last_scale_up = ScaleUp(self.clock(), current)
        words = describe_changes(self.policy, self.changes)
        post_event(self.kube, involved_ref(obj), "Normal", "AutocmResized", f"{words}: {reason}")

    def _actuate(self, obj: Mapping[str, Any], current: Config, target: Config) -> None:
        t = self.policy.target
        names = knob_names(self.policy)
        changed = {self.policy.crd_knobs[k] for k in self.changes}
        if t.kind == pytorchjob.KIND:
            self._actuate_pytorchjob(obj, changed, target)
            return
        container = container_of(obj, t.container)
        in_place = {"cpu", "memory"} if self.in_place_resize else set()
        template_change = bool(changed - {"replicas"} - in_place)
        if t.kind == "Job" and template_change:
            self._recreate_job(obj, target)
            return
        if "replicas" in changed:
            replicas = round(target[names["replicas"]])
            if t.kind == "Job":
                # a merge patch, not an apply: see Kube.merge_patch (a recreated Job's spec was applied whole)
                self.kube.merge_patch(self.path, {"spec": {"parallelism": replicas}}, field_manager=FIELD_MANAGER)
            else:
                self.kube.apply(self.path + "/scale", {
                    "apiVersion": "autoscaling/v1", "kind": "Scale",
                    "metadata": {"name": t.name, "namespace": t.namespace},
                    "spec": {"replicas": replicas}})
        if self.in_place_resize and changed & {"cpu", "memory"}:
            try:
                self._resize_in_place(obj, container, target)
            except ResizeUnavailable as exc:
                log.warning("%s/%s: %s; CPU and memory go through the pod template", t.namespace, t.name, exc)
                self.in_place_resize = False
                self.notes.append(f"{exc}: CPU and memory changed in the pod template instead (pods restart)")
                if t.kind == "Job":
                    self._recreate_job(obj, target)
                    return
                template_change = True
        if template_change:
            self.kube.apply(self.path, self._template_body(obj, container, target))

    def _template_body(self, obj: Mapping[str, Any], container: Mapping[str, Any],
                       target: Config) -> dict[str, Any]:
        t = self.policy.target
        body: dict[str, Any] = {
            "apiVersion": t.api_version, "kind": t.kind,
            "metadata": {"name": t.name, "namespace": t.namespace},
            "spec": {"template": {"spec": {"containers": [
                template_fields(self.policy, target, container, self.in_place_resize)]}}},
        }
        if self.in_place_resize and {"cpu", "memory"} & set(knob_names(self.policy)):
            body["metadata"]["annotations"] = {RESOURCES_ANNOTATION: self._resources_annotation(target)}
        return body

    def _resources_annotation(self, target: Config) -> str:
        names = knob_names(self.policy)
        out = {}
        if "cpu" in names:
            out["cpu"] = _cpu(target[names["cpu"]])
        if "memory" in names:
            out["memory"] = _memory(target[names["memory"]])
        return json.dumps(out, sort_keys=True)

    def _resize_in_place(self, obj: Mapping[str, Any], container: Mapping[str, Any], target: Config) -> None:
        """pods/resize on every pod (strategic merge), then record the values on the workload."""
        names = knob_names(self.policy)
        requests: dict[str, str] = {}
        limits: dict[str, str] = {}
        had_limits = container.get("resources", {}).get("limits", {})
        _set_cpu_memory(target, names, had_limits, requests, limits)
        resources = {"requests": requests, **({"limits": limits} if limits else {})}
        patch = {"spec": {"containers": [{"name": container["name"], "resources": resources}]}}
        for pod in self.pods(obj):
            meta = pod["metadata"]
            path = f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}"
            try:
                self.kube.strategic_patch(f"{path}/resize", patch)
            except ApiException as exc:
                if exc.status != 404:
                    raise
                try:
                    self.kube.get(path)
                except ApiException as gone:
                    if gone.status == 404:  # the pod went away since it was listed: nothing to resize
                        continue
                    raise
                raise ResizeUnavailable("pods/resize is not served (404)") from exc
        t = self.policy.target
        # Record what was applied, so that read_config sees it and new pods can be brought in line.
        self.kube.apply(self.path, {
            "apiVersion": t.api_version, "kind": t.kind,
            "metadata": {"name": t.name, "namespace": t.namespace,
                         "annotations": {RESOURCES_ANNOTATION: self._resources_annotation(target)}},
            **({"spec": {"template": {"spec": {"containers": [
                template_fields(self.policy, target, container, True)]}}}}
               if needs_template(self.policy, target, True) else {}),
        })

    # Kubeflow PyTorchJob ----------------------------------------------------------------------------
    def _within_elastic_bounds(self, obj: Mapping[str, Any], current: Config, target: Config) -> Config:
        """An elastic PyTorchJob's replicas kept within its elasticPolicy (a note says when cut)."""
        r_k = knob_names(self.policy).get("replicas")
        bounds = pytorchjob.elastic_bounds(obj)
        if r_k is None or bounds is None or r_k not in target:
            return target
        low, high = bounds
        wanted = target[r_k]
        fit = [v for v in self.policy.space[r_k].values if low <= v <= high]
        if low <= wanted <= high or not fit:
            return target
        cut = min(fit, key=lambda v: abs(v - wanted))
        self.notes.append(f"elasticPolicy: replicas {wanted:g} cut to {cut:g} "
                          f"(minReplicas {low}, maxReplicas {high:g})")
        return {**target, r_k: cut}

    def _actuate_pytorchjob(self, obj: Mapping[str, Any], changed: set[str], target: Config) -> None:
        """Elastic and only replicas changed: Worker.replicas in place; anything else: recreation."""
        t = self.policy.target
        names = knob_names(self.policy)
        if changed == {"replicas"} and pytorchjob.elastic_bounds(obj) is not None:
            count = round(target[names["replicas"]])
            self.kube.merge_patch(self.path, pytorchjob.replicas_patch(obj, count), field_manager=FIELD_MANAGER)
            return
        restarts = self._delete_for_recreation(obj)
        container = container_of(obj, t.container)
        mine = template_fields(self.policy, target, container, in_place=False)
        count = round(target[names["replicas"]]) if "replicas" in names else None
        meta = obj["metadata"]
        self.kube.apply(self.path, {
            "apiVersion": pytorchjob.API_VERSION, "kind": pytorchjob.KIND,
            "metadata": {"name": t.name, "namespace": t.namespace, "labels": meta.get("labels", {}),
                         "annotations": _recreation_annotations(meta, restarts)},
            "spec": pytorchjob.recreated_spec(obj, container["name"], mine, count)})

    def _delete_for_recreation(self, obj: Mapping[str, Any]) -> int:
        """Delete the workload (pods get SIGTERM and their grace period to checkpoint), wait until it is
        gone, and return the restart count the new one carries."""
        return delete_and_wait(self.kube, obj, self.policy.target, self.clock)

    def _recreate_job(self, obj: Mapping[str, Any], target: Config) -> None:
        """Delete the Job (pods get SIGTERM and their grace period to checkpoint) and apply it anew."""
        t = self.policy.target
        restarts = delete_and_wait(self.kube, obj, t, self.clock)
        container = container_of(obj, t.container)
        mine = template_fields(self.policy, target, container, in_place=False)
        names = knob_names(self.policy)
        parallelism = round(target[names["replicas"]]) if "replicas" in names else None
        self.kube.apply(self.path, recreated_job_body(obj, t, container["name"], mine, parallelism, restarts))

    # pods and pending rollback ------------------------------------------------------------------------
    def pods(self, obj: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        obj = obj if obj is not None else self.read()
        selector = pods_selector(obj, self.policy.target.kind, self.policy.target.name)
        if selector is None:
            return []
        items = self.kube.get(f"/api/v1/namespaces/{self.policy.target.namespace}/pods",
                              labelSelector=selector).get("items", [])
        # Terminating pods are on their way out: resizing them fails and their state says nothing.
        return [p for p in items if not p.get("metadata", {}).get("deletionTimestamp")]

    def stuck_scale_up(self) -> tuple[Config, str] | None:
        """After a scale-up, (config to roll back to, why) once new pods stayed Pending too long."""
        up = self.last_scale_up
        if up is None:
            return None
        if self.clock() - up.at_s < self.policy.pending_timeout_s:
            return None
        stuck = [(p, msg) for p in self.pods() if (msg := _unschedulable(p))]
        self.last_scale_up = None
        if not stuck:
            self.rollbacks = 0
            return None
        # Do not run into the same wall at the next interval: hold scale-ups off for at least as long
        # as this one waited, doubling with every rollback in a row (capped at an hour).
        self.rollbacks += 1
        hold = max(self.policy.guards.cooldown_s, self.policy.pending_timeout_s) * 2 ** (self.rollbacks - 1)
        self.hold_until_s = self.clock() + min(hold, 3600.0)
        pod, msg = stuck[0]
        return up.before, (f"{len(stuck)} pod(s) still Pending {self.policy.pending_timeout_s:.0f}s after "
                           f"the scale-up (e.g. {pod['metadata']['name']}: {msg})")


def _delete_body(obj: Mapping[str, Any], target: TargetRef) -> dict[str, Any]:
    """DeleteOptions that delete exactly the object read (and checked) before, or nothing: the uid
    precondition makes the apiserver refuse (409) if the name now means another object."""
    check_is_target(obj, target)
    uid = (obj.get("metadata") or {}).get("uid")
    return {"propagationPolicy": "Foreground", **({"preconditions": {"uid": uid}} if uid else {})}


def delete_and_wait(kube: Kube, obj: Mapping[str, Any], target: TargetRef,
                    clock: Callable[[], float] = time.time) -> int:
    """The first half of the checkpoint-aware recreation (docs/operator.md): delete exactly ``obj`` (its
    pods get SIGTERM and their grace period to checkpoint), wait until it is gone, and return the restart
    count the new object carries. Used by a policy's actuator and by the training pool."""
    path = workload_path(target)
    restarts = int(obj["metadata"].get("annotations", {}).get(RESTARTS_ANNOTATION, "0")) + 1
    kube.request("DELETE", path, body=_delete_body(obj, target))
    deadline = clock() + kube.settings.job_delete_timeout_s
    while True:
        try:
            kube.get(path)
        except ApiException as exc:
            if exc.status == 404:
                return restarts
            raise
        if clock() > deadline:
            raise TimeoutError(f"{target.kind} {target.namespace}/{target.name} still exists after "
                               f"{kube.settings.job_delete_timeout_s:.0f}s; not recreating it")
        time.sleep(0.5)


def recreated_job_body(obj: Mapping[str, Any], target: TargetRef, container: str, mine: Mapping[str, Any],
                       parallelism: int | None, restarts: int, suspend: bool | None = None) -> dict[str, Any]:
    """The second half: the Job as it was, less what its controller set, with autocm's container fields
    (``mine``, :func:`template_fields`), ``parallelism`` and ``suspend`` when given, and the restart count."""
    meta = obj["metadata"]
    spec = json.loads(json.dumps(obj["spec"]))
    for key in ("selector", "manualSelector"):
        spec.pop(key, None)
    tmeta = spec.get("template", {}).get("metadata", {})
    labels = {k: v for k, v in tmeta.get("labels", {}).items()
              if k not in ("controller-uid", "batch.kubernetes.io/controller-uid",
                           "job-name", "batch.kubernetes.io/job-name")}
    tmeta["labels"] = labels
    containers = spec["template"]["spec"]["containers"]
    spec["template"]["spec"]["containers"] = [pytorchjob.merge_container(c, mine) if c.get("name") == container
                                              else c for c in containers]
    if parallelism is not None:
        spec["parallelism"] = parallelism
    if suspend is not None:
        spec["suspend"] = suspend
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": target.name, "namespace": target.namespace, "labels": meta.get("labels", {}),
                         "annotations": _recreation_annotations(meta, restarts)},
            "spec": spec}


def _recreation_annotations(meta: Mapping[str, Any], restarts: int) -> dict[str, str]:
    """A recreated workload's annotations: its own (less kubectl's), the restart count, the old uid."""
    annotations = {k: v for k, v in meta.get("annotations", {}).items()
                   if not k.startswith("kubectl.kubernetes.io/")}
    annotations[RESTARTS_ANNOTATION] = str(restarts)
    annotations["autocm.io/recreated-from-uid"] = meta.get("uid", "")
    return annotations


# --- other autoscalers -------------------------------------------------------------------------------


@dataclass
class _Listing:
    at_s: float
    hpas: list[dict[str, Any]]
    vpas: list[dict[str, Any]]
    scaled_objects: list[dict[str, Any]]


class AutoscalerIndex:
    """HPAs, VPAs and KEDA ScaledObjects per namespace, listed at most once per ``ttl_s`` for all policies.

    Each policy checking on its own costs three list calls per policy per check: 3,000 calls a minute
    for 1,000 policies in one namespace. Shared, it is three per namespace per ``ttl_s``, and a newly
    added autoscaler is still seen within ``ttl_s``.
    """

    def __init__(self, kube: Kube, ttl_s: float, clock: Callable[[], float] = time.time) -> None:
        self.kube, self.ttl_s, self.clock = kube, ttl_s, clock
        self._lock = threading.Lock()
        self._namespace_locks: dict[str, threading.Lock] = {}
        self._listings: dict[str, _Listing] = {}

    def listing(self, namespace: str) -> _Listing:
        with self._lock:
            ns_lock = self._namespace_locks.setdefault(namespace, threading.Lock())
        with ns_lock:  # one policy lists, the others of that namespace wait for its answer
            got = self._listings.get(namespace)
            now = self.clock()
            if got is None or now - got.at_s >= self.ttl_s:
                got = _Listing(now, *_list_autoscalers(self.kube, namespace))
                self._listings[namespace] = got
            return got


def _list_autoscalers(kube: Kube, ns: str) -> tuple[list[dict[str, Any]], ...]:
    def listing(path: str) -> list[dict[str, Any]]:
        try:
            return kube.get(path).get("items", [])
        except ApiException as exc:
            if exc.status == 404:  # that autoscaler's CRD is not installed
                return []
            raise

    return (listing(f"/apis/autoscaling/v2/namespaces/{ns}/horizontalpodautoscalers"),
            listing(f"/apis/autoscaling.k8s.io/v1/namespaces/{ns}/verticalpodautoscalers"),
            listing(f"/apis/keda.sh/v1alpha1/namespaces/{ns}/scaledobjects"))


def other_scalers(kube: Kube, target: TargetRef, index: AutoscalerIndex | None = None) -> list[str]:
    """HPAs, VPAs (not in updateMode Off) and KEDA ScaledObjects that already size ``target``.

    With an ``index`` the namespace's autoscalers come from its shared listing; without, they are listed now.
    """
    if index is not None:
        got = index.listing(target.namespace)
        hpas, vpas, scaled_objects = got.hpas, got.vpas, got.scaled_objects
    else:
        hpas, vpas, scaled_objects = _list_autoscalers(kube, target.namespace)
    found: list[str] = []
    for hpa in hpas:
        ref = hpa.get("spec", {}).get("scaleTargetRef", {})
        if ref.get("kind") == target.kind and ref.get("name") == target.name:
            found.append(f"HorizontalPodAutoscaler {hpa['metadata']['name']}")
    for vpa in vpas:
        ref = vpa.get("spec", {}).get("targetRef", {})
        mode = vpa.get("spec", {}).get("updatePolicy", {}).get("updateMode", "Auto")
        if ref.get("kind") == target.kind and ref.get("name") == target.name and mode != "Off":
            found.append(f"VerticalPodAutoscaler {vpa['metadata']['name']} (updateMode {mode})")
    for so in scaled_objects:
        ref = so.get("spec", {}).get("scaleTargetRef", {})
        if ref.get("kind", "Deployment") == target.kind and ref.get("name") == target.name:
            found.append(f"KEDA ScaledObject {so['metadata']['name']}")
    return found
