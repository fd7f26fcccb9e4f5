"""A SizingPolicy custom resource, parsed into the control loop's vocabulary.

The apiserver already rejects most nonsense at admission (the CRD's OpenAPI schema and CEL rules in
``controller/crd/sizingpolicy.yaml``). This module checks the rest, the things only Python knows
(a learner's settings dataclass, that a query override names a known metric), and turns the spec
into a :class:`~learners.space.ConfigSpace`, an :class:`~learners.objective.Objective`, guard
settings and intervals. Every error names the field, like the scenario loader's errors do, so the
operator can put it verbatim into the ``Ready`` condition.

Run ``python -m controller.policy --sync-crd`` after registering a learner: it rewrites the learner
enum in the CRD from :func:`learners.base.registered`.
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from controller.guards import GuardSettings
from controller.loop import Mode
from controller.promql_template import TemplateError, check_template
from learners.base import parse_settings, registered
from learners.objective import Objective
from learners.sharing import CLASS_LABEL
from learners.space import ConfigSpace, Knob, grid_size
from learners.types import METRICS

GROUP = "autocm.io"
VERSION = "v1alpha1"
PLURAL = "sizingpolicies"
KIND = "SizingPolicy"
CRD_PATH = Path(__file__).parent / "crd" / "sizingpolicy.yaml"


class PolicyError(ValueError):
    """A spec the operator cannot run; the message starts with the offending field's path."""


@dataclass(frozen=True)
class KnobInfo:
    """How one CRD knob maps onto the control loop and onto the workload.

    ``restarts``: changing it restarts pods (pod template change), which the objective charges.
    ``env``: the environment variable that carries it into the container (the application-knob
    contract documented in docs/operator.md), or None for resources the kubelet enforces.
    """

    crd_name: str
    inference_name: str
    training_name: str
    restarts: bool
    env: str | None = None


KNOBS: dict[str, KnobInfo] = {
    info.crd_name: info
    for info in (
        KnobInfo("replicas", "replicas", "replicas", restarts=False),
        KnobInfo("gpusPerReplica", "gpus_per_replica", "gpus_per_replica", restarts=True),
        # The simulator calls vLLM's max_num_seqs "max_batch_size" and a training job's global
        # batch "batch_size" (simulator/scenario.py); the names match so checkpoints transfer.
        KnobInfo("batchSize", "max_batch_size", "batch_size", restarts=True, env="AUTOCM_BATCH_SIZE"),
        KnobInfo("maxConcurrency", "max_concurrency", "max_concurrency", restarts=True,
                 env="AUTOCM_MAX_CONCURRENCY"),
        # CPU and memory change in place through pods/resize where the server supports it.
        KnobInfo("cpu", "cpu_millicores", "cpu_millicores", restarts=False),
        KnobInfo("memory", "memory_mib", "memory_mib", restarts=False),
    )
}

HIGHER_IS_BETTER = frozenset({
    "request_rate_per_second", "request_rate_peak_per_second", "slo_attainment", "gpu_utilization",
    "throughput_samples_per_second", "goodput_samples_per_second",
})
"""Objective metrics where bigger meets the SLO; every latency, queue or usage metric is lower-better."""


@dataclass(frozen=True)
class PolicyDefaults:
    """Defaults for fields a user leaves out; each says where its value comes from."""

    interval_s: float = 60.0
    """One minute, the HPA's and VPA's usual decision cadence, and the simulator's control interval."""

    window_floor_s: float = 60.0
    """PromQL rate() needs at least two samples in its window; Prometheus' own advice is a window of
    at least four scrape intervals, and one minute covers the 15 s default scrape interval."""

    stale_intervals: float = 3.0
    """Metrics older than three control intervals are stale (GuardSettings.stale_after_s uses the same
    multiple of the default 60 s interval)."""

    pending_timeout_s: float = 120.0
    """A scale-up whose pods are still Pending after two minutes will not schedule (kube-scheduler
    retries unschedulable pods at most every 60 s: podMaxUnschedulableQDuration's backoff)."""

    learner: str = "vconf"


DEFAULTS = PolicyDefaults()


TARGET_API_VERSIONS = {"Deployment": "apps/v1", "StatefulSet": "apps/v1", "Job": "batch/v1",
                       "PyTorchJob": "kubeflow.org/v1"}
"""The workload kinds a SizingPolicy can target, and the apiVersion each defaults to."""


@dataclass(frozen=True)
class TargetRef:
    kind: str
    name: str
    namespace: str
    api_version: str
    container: str | None = None

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.kind}/{self.name}"


@dataclass(frozen=True)
class Policy:
    """Everything the operator needs to run one SizingPolicy."""

    namespace: str
    name: str
    target: TargetRef
    workload: str
    mode: Mode
    paused: bool
    space: ConfigSpace
    objective: Objective
    learner: str
    learner_settings: Mapping[str, Any]
    checkpoint: str | None
    interval_s: float
    window_s: float
    stale_after_s: float
    queries: Mapping[str, str]
    guards: GuardSettings
    pending_timeout_s: float
    crd_knobs: Mapping[str, str] = field(default_factory=dict)
    """Loop knob name -> CRD knob name, for status messages in the user's words."""
    share_with: str | None = None
    """spec.learner.shareWith: the workload class this policy's learner shares experience in (checked
    for form here; the operator scopes it to the namespace, :func:`learners.sharing.class_key`)."""

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class Limits:
    """Bounds on what one (valid, admitted) SizingPolicy may cost the operator; the CRD states the same.

    Each is far above any real use and far below what would exhaust the operator's memory (the
    chart's 1 GiB limit) or stall its shared loops.
    """

    knob_values: int = 1_000_000
    """Values of one range knob: memory in MiB up to ~1 TiB at a 1 MiB step. Spaces are arithmetic
    (learners/space.py), but some learners scan a knob's values once per restart."""

    knob_magnitude: float = 1e9
    """Largest knob bound, default or choice (a billion replicas, millicores or MiB)."""

    interval_s: float = 86_400.0
    """A control step at least once a day: a policy that never wakes is indistinguishable from a hung one."""

    window_s: float = 86_400.0
    """A day of samples per series is the most one rate() or histogram window may ask Prometheus for."""

    seconds: float = 7 * 86_400.0
    """Staleness, cooldown and pending timeouts: a week."""

    steps_per_interval: int = 1_000

    setting_int: int = 1_000_000
    """Any integer learner setting (counts, buffer sizes); heavier ones are capped in SETTING_LIMITS."""


LIMITS = Limits()

SETTING_LIMITS: dict[str, int] = {
    "hidden": 4096,          # vconf: two hidden x hidden layers, 16.8 M weights (64 MB) per network at most
    "model_batches": 10_000,  # vconf: training batches per retrain, run inside one control step
    "imagined_per_load": 10_000,
    "loads_per_retrain": 1_000,
    "max_trials": 1_000,      # bayesopt: the GP solve grows with the cube of the trials
    "max_candidates": 100_000,  # bayesopt: every candidate configuration is held in memory
}
"""Integer learner settings that size a network, a buffer or the work of one step, by setting name."""

SETTINGS_ZERO_OK = frozenset({"seed", "hold_intervals", "explore_intervals", "initial_points", "settle_intervals",
                              "restarts", "plan_peak_intervals", "bottleneck_steps", "calm_intervals"})
"""Integer settings for which 0 means something (no hold, no exploration, seed 0); every other integer
setting is a count, size or period and must be at least 1 (``retrain_every: 0`` divided by zero in the
step, ``hidden: 0`` is a network without a layer)."""


def _number(path: str, value: Any, lo: float | None = None, hi: float | None = None,
            lo_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise PolicyError(f"{path}: expected a finite number, got {value!r}")
    v = float(value)
    if lo is not None and (v <= lo if lo_open else v < lo):
        bound = ("positive" if lo == 0 else f"greater than {lo:g}") if lo_open else f"at least {lo:g}"
        raise PolicyError(f"{path}: must be {bound}, got {v:g}")
    if hi is not None and v > hi:
        raise PolicyError(f"{path}: must be at most {hi:g}, got {v:g}")
    return v


def _integer(path: str, value: Any, lo: int, hi: int) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise PolicyError(f"{path}: expected an integer, got {value!r}")
    if not lo <= value <= hi:
        raise PolicyError(f"{path}: must be between {lo} and {hi}, got {value}")
    return value


def _bool(path: str, value: Any) -> bool:
    if not isinstance(value, bool):  # "no", "false", 0 are not booleans: "no" used to mean paused
        raise PolicyError(f"{path}: expected true or false, got {value!r}")
    return value


def _mapping(path: str, value: Any, what: str = "an object") -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise PolicyError(f"{path}: expected {what}, got {value!r}")
    return value


def _knob(path: str, crd_name: str, raw: Any, workload: str) -> Knob:
    info = KNOBS.get(crd_name)
    if info is None:
        raise PolicyError(f"{path}: unknown knob {crd_name!r}; known knobs: {sorted(KNOBS)}")
    if not isinstance(raw, Mapping):
        raise PolicyError(f"{path}: expected {{min, max, step}} or {{choices: [...]}}, got {raw!r}")
    unknown = sorted(set(raw) - {"min", "max", "step", "choices", "default"})
    if unknown:
        raise PolicyError(f"{path}: unknown field(s) {unknown}; a knob has min, max, step, choices, default")
    big = LIMITS.knob_magnitude
    name = info.inference_name if workload == "inference" else info.training_name
    default = _number(f"{path}.default", raw["default"], 0, big) if "default" in raw else None
    if "choices" in raw:
        extra = sorted({"min", "max", "step"} & set(raw))
        if extra:
            raise PolicyError(f"{path}: a knob is either a range or a list of choices, not both "
                              f"(remove {extra} or choices)")
        choices = raw["choices"]
        if not isinstance(choices, list) or not choices:
            raise PolicyError(f"{path}.choices: expected a non-empty list of numbers")
        if len(choices) > 64:
            raise PolicyError(f"{path}.choices: at most 64 choices, got {len(choices)}")
        values = tuple(_number(f"{path}.choices[{i}]", c, 0, big) for i, c in enumerate(choices))
        if default is not None and default not in values:
            raise PolicyError(f"{path}.default: {default:g} is not one of the choices {list(values)}")
        return Knob(name, choices=values, restarts=info.restarts, default=default)
    if "min" not in raw or "max" not in raw:
        raise PolicyError(f"{path}: a range knob needs both min and max")
    lo, hi = _number(f"{path}.min", raw["min"], 0, big), _number(f"{path}.max", raw["max"], 0, big)
    if lo > hi:
        raise PolicyError(f"{path}: min ({lo:g}) must not be greater than max ({hi:g})")
    step = _number(f"{path}.step", raw.get("step", 1), 0, big, lo_open=True)
    count = grid_size(lo, hi, step)
    if count > LIMITS.knob_values:
        raise PolicyError(f"{path}: {count:,} values from min {lo:g} to max {hi:g} in steps of {step:g}, more than "
                          f"{LIMITS.knob_values:,}; raise step or narrow the range")
    if default is not None and not lo <= default <= hi:
        raise PolicyError(f"{path}.default: {default:g} outside [{lo:g}, {hi:g}]")
    return Knob(name, lo, hi, step, restarts=info.restarts, default=default)


def _objective(raw: Mapping[str, Any]) -> Objective:
    metric = raw.get("metric")
    if not isinstance(metric, str) or metric not in METRICS:
        raise PolicyError(f"spec.objective.metric: unknown metric {metric!r}; known: {sorted(METRICS)}")
    kwargs: dict[str, Any] = {
        "metric": metric,
        "target": _number("spec.objective.target", raw.get("target"), 0, lo_open=True),
        "higher_is_better": _bool("spec.objective.higherIsBetter",
                                  raw.get("higherIsBetter", metric in HIGHER_IS_BETTER)),
    }
    if "attainment" in raw:
        kwargs["attainment"] = _number("spec.objective.attainment", raw["attainment"], 0, 1, lo_open=True)
    for crd, py in (("violationPenalty", "violation_penalty"), ("restartPenalty", "restart_penalty")):
        if crd in raw:
            kwargs[py] = _number(f"spec.objective.{crd}", raw[crd], 0)
    if "costs" in raw:
        costs = raw["costs"]
        if not isinstance(costs, Mapping):
            raise PolicyError("spec.objective.costs: expected a map of knob -> cost per unit-hour")
        kwargs["unit_costs"] = {_cost_key(k): _number(f"spec.objective.costs.{k}", v, 0)
                                for k, v in costs.items()}
    try:
        return Objective(**kwargs)
    except (TypeError, ValueError) as exc:
        raise PolicyError(f"spec.objective: {exc}") from exc


def _settings(path: str, spec: Any, raw: Any) -> dict[str, Any]:
    """A learner's settings checked against its dataclass' annotations (types, finite, bounded).

    Learners are plain dataclasses that trust their callers; an operator must not: ``hidden: -1``
    crashed learner creation inside the control step, ``hidden: 1e9`` would allocate gigabytes.
    """
    import dataclasses
    import typing

    raw = _mapping(path, raw, "a map of the learner's settings")
    hints = typing.get_type_hints(spec.settings)
    fields = {f.name for f in dataclasses.fields(spec.settings)}
    unknown = sorted(set(raw) - fields)
    if unknown:
        raise PolicyError(f"{path}: learner {spec.name!r} has no setting(s) {unknown}; known settings: "
                          f"{sorted(fields)}")
    out: dict[str, Any] = {}
    for key, value in raw.items():
        hint = hints.get(key)
        origin = typing.get_origin(hint) or hint
        where = f"{path}.{key}"
        if hint is bool:
            out[key] = _bool(where, value)
        elif hint is int:
            out[key] = _integer(where, value, 0 if key in SETTINGS_ZERO_OK else 1,
                                SETTING_LIMITS.get(key, LIMITS.setting_int))
        elif hint is float:
            out[key] = _number(where, value)
        elif hint is str:
            if not isinstance(value, str):
                raise PolicyError(f"{where}: expected a string, got {value!r}")
            out[key] = value
        elif origin in (tuple, list):
            if not isinstance(value, list):
                raise PolicyError(f"{where}: expected a list, got {value!r}")
            out[key] = value
        elif isinstance(origin, type) and issubclass(origin, Mapping):
            if not isinstance(value, Mapping):
                raise PolicyError(f"{where}: expected a map, got {value!r}")
            args = typing.get_args(hint)
            if len(args) == 2 and args[1] is float:
                out[key] = {k: _number(f"{where}.{k}", v) for k, v in value.items()}
            else:  # structured values (e.g. the forecast scaler's latency rows): the learner checks their shape
                out[key] = dict(value)
        else:
            out[key] = value
    try:
        parse_settings(spec, out)
    except (TypeError, ValueError) as exc:
        raise PolicyError(f"{path}: {exc}") from exc
    return out


def check_learner_settings(learner: str, raw: Any, path: str = "settings") -> dict[str, Any]:
    """The operator's settings check for callers outside a custom resource (``autocm sim`` scenarios):
    one clear error naming the setting instead of a learner that crashes while it is built."""
    known = registered()
    if learner not in known:
        raise PolicyError(f"{path}: unknown learner {learner!r}")
    return _settings(path, known[learner], raw if raw is not None else {})


def _scaled(objective: Objective, raw: Mapping[str, Any], space: ConfigSpace, interval_s: float) -> Objective:
    """Unless the user set it, a violation penalty that outweighs the costliest configuration
    (Objective.scaled_to: meeting the SLO must always beat saving resources)."""
    if "violationPenalty" in raw:
        return objective
    costliest = objective.cost_per_hour({k.name: k.upper for k in space.knobs})
    return objective.scaled_to(costliest, interval_s)


def _cost_key(crd_name: str) -> str:
    if crd_name == "gpus":
        return "gpus"
    info = KNOBS.get(crd_name)
    return info.inference_name if info else crd_name


DNS1123_SUBDOMAIN = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
"""An object name (k8s.io/apimachinery IsDNS1123Subdomain): no '/', no '..', at most 253 characters."""

DNS1123_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
"""A container name (IsDNS1123Label), at most 63 characters."""


def _target(ref: Any, namespace: str) -> TargetRef:
    """spec.targetRef, refused unless its name can only ever mean an object of the policy's namespace."""
    if not isinstance(ref, Mapping):
        raise PolicyError(f"spec.targetRef: expected an object {{kind, name}}, got {ref!r}")
    kind = ref.get("kind")
    if not isinstance(kind, str) or kind not in TARGET_API_VERSIONS:
        raise PolicyError(f"spec.targetRef.kind: must be Deployment, StatefulSet, Job or PyTorchJob, "
                          f"got {kind!r}")
    name = ref.get("name")
    if name is None or name == "":
        raise PolicyError("spec.targetRef.name: required")
    if not isinstance(name, str) or len(name) > 253 or not re.fullmatch(DNS1123_SUBDOMAIN, name):
        raise PolicyError(f"spec.targetRef.name: expected the name of a {kind} in this namespace (a DNS-1123 "
                          f"name: lower-case letters, digits, '-' and '.', at most 253 characters), got {name!r}")
    api_version = ref.get("apiVersion") or TARGET_API_VERSIONS[kind]
    if api_version != TARGET_API_VERSIONS[kind]:
        raise PolicyError(f"spec.targetRef.apiVersion: a {kind} is {TARGET_API_VERSIONS[kind]}, got {api_version!r}")
    container = ref.get("container")
    if container is not None and (not isinstance(container, str) or len(container) > 63
                                  or not re.fullmatch(DNS1123_LABEL, container)):
        raise PolicyError(f"spec.targetRef.container: expected a container name (DNS-1123 label), got {container!r}")
    if not isinstance(namespace, str) or not re.fullmatch(DNS1123_LABEL, namespace):
        raise PolicyError(f"metadata.namespace: not a namespace name: {namespace!r}")
    return TargetRef(kind, name, namespace, api_version, container)


def parse(spec: Mapping[str, Any], namespace: str, name: str) -> Policy:
    """Validate ``spec`` (the custom resource's ``.spec``) and build the loop's pieces.

    Raises :class:`PolicyError` with a field path; never returns a half-valid policy.
    """
    if not isinstance(spec, Mapping):
        raise PolicyError("spec: expected an object")
    if "trainingPool" in spec:  # a pool policy: controller.training_pool.parse_pool_policy reads it
        raise PolicyError("spec.trainingPool: a training pool policy has no targetRef; it is parsed by "
                          "controller.training_pool.parse_pool_policy")
    target = _target(spec.get("targetRef"), namespace)
    kind = target.kind

    workload = spec.get("workload", "training" if kind in ("Job", "PyTorchJob") else "inference")
    if workload not in ("inference", "training"):
        raise PolicyError(f"spec.workload: must be inference or training, got {workload!r}")
    try:
        mode = Mode(spec.get("mode", "recommend"))
    except (TypeError, ValueError) as exc:
        raise PolicyError(f"spec.mode: must be recommend or apply, got {spec.get('mode')!r}") from exc
    paused = _bool("spec.paused", spec.get("paused", False))

    raw_knobs = spec.get("knobs") or {}
    if not isinstance(raw_knobs, Mapping) or not raw_knobs:
        raise PolicyError("spec.knobs: must name at least one knob "
                          f"({', '.join(KNOBS)})")
    # The knob order is the registry's (the simulator's: replicas, GPUs, batch), not the spec's: the
    # apiserver stores a custom object's maps with sorted keys, so a policy read from the cluster lists
    # batchSize first, and a checkpoint from the simulator (its knob grid in scenario order) was refused
    # as "trained for other knobs" although they were the same knobs.
    rank = {name: i for i, name in enumerate(KNOBS)}
    ordered = sorted(raw_knobs, key=lambda k: rank.get(k, len(rank)))
    knobs = [_knob(f"spec.knobs.{k}", k, raw_knobs[k], workload) for k in ordered]
    space = ConfigSpace(tuple(knobs))
    crd_knobs = {}
    for k in ordered:
        info = KNOBS[k]
        crd_knobs[info.inference_name if workload == "inference" else info.training_name] = k

    raw_objective = _mapping("spec.objective", spec.get("objective"), "an object {metric, target}")
    objective = _objective(raw_objective)

    learner_raw = _mapping("spec.learner", spec.get("learner"), "an object {name, settings, checkpoint}")
    learner = learner_raw.get("name", DEFAULTS.learner)
    known = registered()
    if not isinstance(learner, str) or learner not in known:
        raise PolicyError(f"spec.learner.name: unknown learner {learner!r}; known learners: {sorted(known)}")
    if workload not in known[learner].kinds:
        raise PolicyError(f"spec.learner.name: learner {learner!r} does not size {workload} workloads")
    settings = _settings("spec.learner.settings", known[learner], learner_raw.get("settings"))
    checkpoint = learner_raw.get("checkpoint")
    if checkpoint is not None and (not isinstance(checkpoint, str) or len(checkpoint) > 263 or not re.fullmatch(
            r"configmap/[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*", checkpoint)):
        raise PolicyError(f"spec.learner.checkpoint: expected configmap/<name>, got {checkpoint!r}")
    share_with = learner_raw.get("shareWith")
    if share_with is not None:
        share_with = _share_with(share_with, learner)

    interval = _number("spec.intervalSeconds", spec.get("intervalSeconds", DEFAULTS.interval_s), 1,
                       LIMITS.interval_s)
    metrics = _mapping("spec.metrics", spec.get("metrics"), "an object {windowSeconds, staleAfterSeconds, queries}")
    window = _number("spec.metrics.windowSeconds", metrics.get("windowSeconds", DEFAULTS.window_floor_s), 1,
                     LIMITS.window_s)
    stale = _number("spec.metrics.staleAfterSeconds",
                    metrics.get("staleAfterSeconds", DEFAULTS.stale_intervals * interval), 1,
                    max(LIMITS.seconds, DEFAULTS.stale_intervals * interval))
    queries = dict(_mapping("spec.metrics.queries", metrics.get("queries"), "a map of metric -> PromQL template"))
    for metric, template in queries.items():
        if metric not in METRICS:
            raise PolicyError(f"spec.metrics.queries.{metric}: unknown metric; known: {sorted(METRICS)}")
        try:
            check_template(template)
        except TemplateError as exc:
            raise PolicyError(f"spec.metrics.queries.{metric}: {exc}") from exc

    g = _mapping("spec.guards", spec.get("guards"),
                 "an object {maxStepsPerInterval, cooldownSeconds, rollbackDrop, pendingTimeoutSeconds}")
    base = GuardSettings()
    guards = GuardSettings(
        max_steps_per_interval=_integer("spec.guards.maxStepsPerInterval",
                                        g.get("maxStepsPerInterval", base.max_steps_per_interval),
                                        1, LIMITS.steps_per_interval),
        # Cooldown defaults to one control interval (GuardSettings' own rationale, scaled).
        cooldown_s=_number("spec.guards.cooldownSeconds", g.get("cooldownSeconds", interval), 0,
                           max(LIMITS.seconds, interval)),
        rollback_drop=_number("spec.guards.rollbackDrop", g.get("rollbackDrop", base.rollback_drop), 0),
        stale_after_s=stale,
        required_metrics=(objective.metric,),
    )
    objective = _scaled(objective, raw_objective, space, interval)
    pending = _number("spec.guards.pendingTimeoutSeconds",
                      g.get("pendingTimeoutSeconds", DEFAULTS.pending_timeout_s), 1, LIMITS.seconds)
    return Policy(namespace, name, target, workload, mode, paused, space,
                  objective, learner, settings, checkpoint, interval, window, stale, queries, guards,
                  pending, crd_knobs, share_with)


def _share_with(raw: Any, learner: str) -> str:
    """spec.learner.shareWith, hostile input: a DNS-1123 class name, or ``namespace/name``, for a learner
    that can share (whether another namespace is allowed is the operator's setting, checked there)."""
    if not isinstance(raw, str) or len(raw) > 127:
        raise PolicyError(f"spec.learner.shareWith: expected a class name, got {raw!r}")
    parts = raw.split("/")
    if len(parts) > 2 or not all(CLASS_LABEL.fullmatch(p) for p in parts):
        raise PolicyError(f"spec.learner.shareWith: {raw!r} is not a DNS-1123 class name (or namespace/name)")
    if learner not in SHARING_LEARNERS:
        raise PolicyError(f"spec.learner.shareWith: learner {learner!r} cannot share experience; "
                          f"learners that can: {sorted(SHARING_LEARNERS & set(registered()))}")
    return raw


SHARING_LEARNERS = frozenset({"slo-rl"})
"""Learners with the experience interface (record_experience, take_experience, absorb)."""


# --- keeping the CRD's learner enum in step with the registry -------------------------------------

_ENUM_LINE = re.compile(r"^(\s*enum: )\[[^\]]*\](\s*# generated from learners\.base\.registered\(\))$",
                        re.MULTILINE)


def _crd_enum(line: re.Pattern[str], what: str, text: str | None) -> list[str]:
    """The names on one generated ``enum: [...]`` line of the CRD file."""
    text = CRD_PATH.read_text() if text is None else text
    m = line.search(text)
    if m is None:
        raise RuntimeError(f"{CRD_PATH}: generated {what} enum line not found")
    inner = m.group(0)[m.group(0).index("[") + 1: m.group(0).index("]")]
    return [s.strip() for s in inner.split(",") if s.strip()]


def crd_learner_enum(text: str | None = None) -> list[str]:
    """The learner names the CRD file admits."""
    return _crd_enum(_ENUM_LINE, "learner", text)


_POOL_ENUM_LINE = re.compile(
    r"^(\s*enum: )\[[^\]]*\](\s*# generated from learners\.training_scheduler\.names\(\))$", re.MULTILINE)


def crd_scheduler_enum(text: str | None = None) -> list[str]:
    """The training scheduler names the CRD's spec.trainingPool.scheduler admits."""
    return _crd_enum(_POOL_ENUM_LINE, "training scheduler", text)


def sync_crd(path: Path = CRD_PATH) -> bool:
    """Rewrite the CRD's learner and training-scheduler enums from the registries; True when the file changed."""
    from learners import training_scheduler

    text = path.read_text()
    names = ", ".join(registered())
    new = _ENUM_LINE.sub(lambda m: f"{m.group(1)}[{names}]{m.group(2)}", text)
    pools = ", ".join(training_scheduler.names())
    new = _POOL_ENUM_LINE.sub(lambda m: f"{m.group(1)}[{pools}]{m.group(2)}", new)
    if new != text:
        path.write_text(new)
    return new != text


def load_crd() -> dict[str, Any]:
    import yaml

    return yaml.safe_load(CRD_PATH.read_text())


if __name__ == "__main__":  # python -m controller.policy --sync-crd
    if sys.argv[1:] == ["--sync-crd"]:
        print("updated" if sync_crd() else "already in step", CRD_PATH)
    else:
        print("usage: python -m controller.policy --sync-crd", file=sys.stderr)
        sys.exit(2)
