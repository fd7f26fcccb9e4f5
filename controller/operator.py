"""The operator: kopf watches SizingPolicies; one daemon per policy runs its control loop every interval.

Layering (top to bottom; each layer only calls the ones below it):

- kopf glue (bottom of this file): ``on.startup`` configures kopf, ``on.event`` hands every new
  version of a policy to the :class:`Engine`, and a per-object ``daemon`` wakes every
  ``spec.intervalSeconds`` (down to one second; a kopf ``timer``'s interval is fixed at decoration
  time, a daemon's sleep is not) and runs one step in a worker thread; for a learner with a fast
  timescale (controller/loop.py) it also runs a fast step every fast period in between;
- :class:`Engine`: policies by key, their :class:`PolicyRunner`, the shared Prometheus cache and the
  Kubernetes client; writes status and checkpoints;
- :class:`PolicyRunner`: one policy's :class:`~controller.loop.ControlLoop` with the cluster adapters
  (:class:`ClusterSource`, :class:`~controller.kube.WorkloadActuator`), safety checks, and the
  translation of a step into conditions and words.

The control loop itself does no I/O (controller/loop.py); everything here is about the cluster.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import json
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import kopf
from kubernetes.client import ApiException

from controller import checkpoint as ckpt
from controller import pytorchjob
from controller import training_pool as tp
from controller.kube import (
    PAUSE_ANNOTATION,
    AutoscalerIndex,
    Kube,
    UnsafeTarget,
    WorkloadActuator,
    WorkloadSpecError,
    describe_changes,
    one_line,
    other_scalers,
    post_event,
    read_config,
)
from controller.loop import ControlLoop, Mode, StepRecord, fast_period_s
from controller.policy import GROUP, LIMITS, PLURAL, VERSION, Policy, PolicyError, check_learner_settings, parse
from controller.pool_runner import PoolRunner
from controller.prometheus import PrometheusClient, PrometheusSettings, Registration, SharedMetrics
from controller.telemetry import Telemetry
from controller.workload_cache import WorkloadCache
from learners.base import Learner, create
from learners.sharing import ShareBoard, ShareError, ShareMember, class_key
from learners.space import Config
from learners.types import Observation, ReplicaSample, Verdict

log = logging.getLogger("autocm.operator")


@dataclass(frozen=True)
class OperatorSettings:
    prometheus_url: str = "http://prometheus-operated.monitoring.svc:9090"
    """The prometheus-operator's default governing Service for a Prometheus in namespace monitoring."""

    paused: bool = False
    """Operator-wide pause (``autocm run --pause``): observe and write status, change nothing."""

    conflict_check_s: float = 60.0
    """How often a namespace's HPAs/VPAs/ScaledObjects are re-listed (once for all its policies): an
    autoscaler added later is found within a minute without listing them every second per policy."""

    checkpoint_every_s: float = 60.0
    """Learner state is saved at most this often (and after every applied change), so a SIGKILLed
    operator loses at most one minute of learning; 1,000 policies then write ~17 ConfigMaps/s."""

    peering_lifetime_s: int = 60
    """kopf's default peering lifetime: a replica that has not refreshed its peering entry for this
    long is dead, and a lower-priority replica takes over."""

    interval_override_s: float | None = None
    """``autocm run --interval``: every policy's control interval, whatever its spec says."""

    resize_in_place: bool | None = None
    """Use pods/resize for CPU and memory; None: when the server is 1.33 or newer (beta, on by default)."""

    step_threads: int = 32
    """Worker threads the policies' steps run on. A step mostly waits (a shared listing or Prometheus
    refresh in progress, a status write); asyncio's default pool (cores + 4: 6 on 2 cores) let 1,000
    policies complete only ~500 steps per 10 s interval while the process used a quarter of a core."""

    cross_namespace_classes: bool = False
    """``autocm run --cross-namespace-classes`` (chart: operator.crossNamespaceClasses): let
    spec.learner.shareWith name a class of another namespace. Off, tenants never share experience."""

    share_every_s: float = 300.0
    """How often a member of a workload class publishes its experience and absorbs its peers'."""

    share_max_age_s: float = 900.0
    """Peers' batches older than this are dropped, not absorbed (bounded staleness)."""

    status_refresh_s: float = 60.0
    """A status whose only news is fresher numbers (metric values, reward, the decision's wording and
    time) is written at most this often; anything a user acts on (a condition, a recommended or
    applied configuration, a change, the SLO flipping between met and missed, a checkpoint) is
    written at once. At 1,000 policies on a 10 s interval this cuts status writes (and their watch
    echoes) about sixfold; the numbers stay live in the operator's /metrics. 60 s is the VPA
    recommender's loop, whose status is a minute old at worst. 0 writes every step."""


FAST_FLOOR_S = 5.0
"""The shortest fast period the operator runs (a learner's ``fast_period_s`` is a tenant's setting): at
most one fast step per policy, and one refresh of the fast PromQL cache for all policies, every 5 s."""

FAST_METRICS = frozenset({"queue_length", "request_rate_per_second"})
"""What the fast timescale queries (slo-rl's ``react`` reads the queue and the completions)."""


def operator_fast_period(learner: object, interval_s: float) -> float:
    """Seconds between the fast steps the operator runs for ``learner`` (0: none):
    :func:`controller.loop.fast_period_s`, but never under :data:`FAST_FLOOR_S`, and still a whole
    number of fast periods per interval; no fast step when fewer than two periods fit an interval."""
    try:
        period = fast_period_s(learner, interval_s)
        if not (period > 0 and math.isfinite(period) and math.isfinite(interval_s)):
            return 0.0
        steps = min(round(interval_s / period), math.floor(interval_s / FAST_FLOOR_S + 1e-9))
    except (TypeError, ValueError, OverflowError):  # a setting that is not a number: no fast timescale
        return 0.0
    return interval_s / steps if steps >= 2 else 0.0


RESTORE_PROBATION_STEPS = 10
"""A learner that fails in one of its first this-many control steps after restoring a checkpoint drops that
checkpoint and runs on from a fresh learner (:meth:`PolicyRunner.discard_restore`). A checkpoint is tenant input;
each learner checks what it can at restore, but a state that passes those checks and still breaks ``decide`` or
``learn`` would otherwise fail every step for good. Later failures are the learner's own, reported as such."""


MAX_REPLICA_SAMPLES = 100_000
"""More replicas than this are not listed one by one in a fast observation (the learner then counts the
configured replicas as ready): a knob may allow a billion."""


def replica_samples(obj: Mapping[str, Any], age_s: float) -> tuple[ReplicaSample, ...]:
    """A Deployment's or StatefulSet's replicas as the fast timescale sees them: ``status.readyReplicas``
    ready, the rest of ``spec.replicas`` unready and ``age_s`` old (the time since the last scale-up);
    () when that is not known (another kind, no status yet), and the learner counts them all ready.

    Without it a fast guard that adds replicas while the last ones still boot (a model server takes a
    minute or more) would see the same queue, served by the same "ready" replicas, and add again every
    fast period, as the simulator, which shows every replica's readiness, never lets it."""
    if obj.get("kind") not in ("Deployment", "StatefulSet"):
        return ()
    status, spec = obj.get("status"), obj.get("spec")
    if not isinstance(status, Mapping) or not isinstance(spec, Mapping):
        return ()
    try:
        desired = int(spec.get("replicas", 1))
        ready = int(status.get("readyReplicas") or 0)  # omitted when none is ready
    except (TypeError, ValueError):
        return ()
    if not 0 <= desired <= MAX_REPLICA_SAMPLES:
        return ()
    ready = min(max(ready, 0), desired)
    return (ReplicaSample(True, None),) * ready + (ReplicaSample(False, None, age_s),) * (desired - ready)


def _rfc3339(t: float | None = None) -> str:
    return datetime.fromtimestamp(time.time() if t is None else t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _finite(values: Mapping[str, float] | None) -> dict[str, float]:
    return {k: float(v) for k, v in (values or {}).items() if math.isfinite(v)}


# --- observing: Prometheus metrics plus the workload's configuration -----------------------------------


def _completions(metrics: Mapping[str, float], window_s: float) -> dict[str, float]:
    """``events`` of an observation over ``window_s``: the requests completed in it. The request rate is
    that of vllm:request_success_total (completions); as in the simulator, they are an event, from which
    slo-rl's saturation and fast guards read per-replica throughput (without it neither fired here)."""
    rate = metrics.get("request_rate_per_second", math.nan)
    return {"completed": rate * window_s} if math.isfinite(rate) and rate >= 0 else {}


@dataclass
class ClusterSource:
    """The loop's :class:`~controller.loop.MetricsSource`: shared PromQL results plus the live config."""

    shared: SharedMetrics
    key: str
    policy: Policy
    read_config: Callable[[], Config]
    problem: str | None = None
    fast: SharedMetrics | None = None
    """The short-window cache :meth:`peek` reads (the policy is registered there with ``fast_window_s``)."""
    fast_window_s: float = 0.0
    read_state: Callable[[float], tuple[Config, tuple[ReplicaSample, ...]]] | None = None
    """The live config and replicas (:func:`replica_samples`) at a time, for :meth:`peek`; None: the config only."""
    slow_replicas: bool = False
    """The slow observation carries the replicas' readiness too (from ``read_state``), for a learner that
    reads it (``reads_replica_readiness``): the simulator gives every observation one sample per replica,
    and slo-rl counts only ready ones as serving, holds scale-downs while some boot and learns its cold
    start from them. Until session 22 the operator gave it none on the slow path, so slo-rl counted booting
    replicas as serving (its capacity rows after a scale-up read their load per GPU too low) and never saw
    one boot. Not for the rest: HPA takes per-pod samples as per-pod metric values, which this has none of."""

    def observe(self, workload: str, now: float) -> Observation | None:
        self.problem = None
        got = self.shared.metrics_for(self.key)
        if got is None:
            self.problem = self.shared.last_error or "no answer from Prometheus"
            return None
        if got.problems:
            self.problem = "; ".join(got.problems)
        required = set(self.policy.guards.required_metrics)
        # Optional metrics that are NaN (a histogram with no requests) are dropped rather than
        # freezing the workload; required ones stay, and the loop freezes on them.
        metrics = {k: v for k, v in got.values.items() if k in required or math.isfinite(v)}
        if self.slow_replicas and self.read_state is not None:
            config, replicas = self.read_state(now)
        else:
            config, replicas = self.read_config(), ()
        return Observation(time_s=got.time_s, config=config, metrics=metrics, replicas=replicas,
                           interval_s=self.policy.interval_s, events=_completions(metrics, self.policy.interval_s))

    def peek(self, workload: str, now: float) -> Observation | None:
        """The fast timescale's view (:meth:`controller.loop.ControlLoop.fast_step`): the queue now and the
        request rate over the last ``fast_window_s``, whose completions are ``events["completed"]`` (the
        rate is that of ``vllm:request_success_total``); None without an answer from Prometheus."""
        if self.fast is None or self.fast_window_s <= 0:
            return None
        got = self.fast.metrics_for(self.key)
        if got is None:
            return None
        metrics = {k: v for k, v in got.values.items() if k in FAST_METRICS and math.isfinite(v)}
        if not metrics:
            return None
        config, replicas = self.read_state(now) if self.read_state is not None else (self.read_config(), ())
        return Observation(time_s=got.time_s, config=config, metrics=metrics, interval_s=self.fast_window_s,
                           replicas=replicas, events=_completions(metrics, self.fast_window_s))


# --- one policy ------------------------------------------------------------------------------------------


@dataclass
class Condition:
    type: str
    status: str
    reason: str
    message: str


@dataclass
class StepResult:
    outcome: str
    conditions: list[Condition]
    status: dict[str, Any]
    events: list[tuple[str, str, str]] = field(default_factory=list)  # (type, reason, message)
    record: StepRecord | None = None
    slo_met: bool | None = None
    """Whether the interval met the SLO (None: nothing observed): a flip is worth a status write."""


@dataclass
class FastResult:
    """What one fast step did (:meth:`PolicyRunner.fast_step`): events and telemetry, never a status."""

    outcome: str
    """fast_applied, fast_recommended or fast_refused (the cluster had no room)."""
    record: StepRecord
    events: list[tuple[str, str, str]] = field(default_factory=list)
    applied: dict[str, float] | None = None


@dataclass
class _InvalidatingActuator:
    """The loop's actuator: the workload's own, then its cached listing is dropped (it may have changed)."""

    actuator: WorkloadActuator
    workloads: WorkloadCache

    def apply(self, workload: str, config: Config, reason: str) -> None:
        try:
            self.actuator.apply(workload, config, reason)
        finally:
            self.workloads.invalidate(self.actuator.policy.target)


def checkpoint_configmaps(kube: Kube, policy: Policy) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """(name, ConfigMap) of every checkpoint this policy may restore that exists, in the order it tries
    them: its own, then the pretrained one ``spec.learner.checkpoint`` names. API errors other than 404
    propagate."""
    names = [ckpt.configmap_name(policy.name)]
    if policy.checkpoint:
        names.append(policy.checkpoint.split("/", 1)[1])
    for name in names:
        try:
            yield name, kube.get(f"/api/v1/namespaces/{policy.namespace}/configmaps/{name}")
        except ApiException as exc:
            if exc.status != 404:
                raise


def checkpoint_settings(kube: Kube, policy: Policy) -> tuple[dict[str, Any], str | None, str | None]:
    """(settings, configmap, problem): the learner settings recorded in the checkpoint this policy will
    restore (its own, else the pretrained one it names; the first that decodes for its learner and knobs).

    Why: ``autocm bench pretrain --choose`` picks settings on the training side and records them in the
    checkpoint's ``provenance.settings``; the simulator's evaluation runs the checkpoint with them. The
    operator ran it with the learner's defaults unless the user copied every setting into
    ``spec.learner.settings``, so the policy it ran was not the one evaluated (a checkpoint chosen with
    ``risk: 0.05`` and the fast guard ran at ``risk: 0.2`` without it). The settings are tenant input
    like the spec's and pass the same checks (:func:`controller.policy.check_learner_settings`); ones that
    fail are not used and ``problem`` says why. API errors other than 404 propagate, as in ``restore``."""
    for name, cm in checkpoint_configmaps(kube, policy):
        try:
            got = ckpt.decode(ckpt.blob_of(cm), policy.learner, policy.space)
        except Exception:  # restore() reports why this checkpoint is not used
            continue
        raw = got.recorded_settings
        if not raw:
            return {}, name, None
        try:
            return (check_learner_settings(policy.learner, raw, f"checkpoint configmap/{name} provenance.settings"),
                    name, None)
        except PolicyError as exc:
            return {}, name, f"settings of checkpoint configmap/{name} not used: {exc}"
    return {}, None, None


class PolicyRunner:
    """One SizingPolicy: its control loop, adapters, safety checks and how a step reads in words."""

    def __init__(self, policy: Policy, body: Mapping[str, Any], kube: Kube, shared: SharedMetrics,
                 settings: OperatorSettings, in_place_resize: bool, clock: Callable[[], float] = time.time,
                 autoscalers: AutoscalerIndex | None = None, workloads: WorkloadCache | None = None,
                 fast_shared: SharedMetrics | None = None):
        self.policy = policy
        self.generation = int(body.get("metadata", {}).get("generation", 0))
        self.kube = kube
        self.shared = shared
        self.settings = settings
        self.clock = clock
        self.actuator = WorkloadActuator(kube, policy, in_place_resize=in_place_resize, clock=clock)
        # The engine shares one workload cache among all policies; a runner built alone GETs its own.
        self.workloads = workloads or WorkloadCache(kube, clock=clock)
        self.source = ClusterSource(shared, policy.key, policy, self._current_config)
        self.learner: Learner = create(policy.learner, policy.space, policy.objective,
                                       policy.learner_settings)
        self.loop = ControlLoop(policy.key, self.learner, policy.objective, policy.space, self.source,
                                _InvalidatingActuator(self.actuator, self.workloads), policy.mode, policy.guards)
        self.fast_period_s = (operator_fast_period(self.learner, policy.interval_s)
                              if fast_shared is not None else 0.0)
        """Seconds between fast steps (0: none; see :func:`operator_fast_period`)."""
        self.fast_shared = fast_shared
        self.managing = True
        """False while the last slow step found nothing to manage (Ready=False): no fast steps then."""
        self.last_fast_recommended: Config | None = None
        self._scaled_up_s: float | None = None
        """When the latest scale-up was made (the age of replicas still booting, :meth:`_fast_state`)."""
        self.restored: str | None = None
        self.checkpoint_problem: str | None = None
        self.fresh_state: dict[str, Any] | None = None
        """The learner's state before a checkpoint was restored into it (kept for RESTORE_PROBATION_STEPS)."""
        self.steps_since_restore = 0
        self.adopted_settings: dict[str, Any] = {}
        """Learner settings taken from the checkpoint's provenance (:func:`checkpoint_settings`); the
        spec's own settings win over them. Saved with every checkpoint, so a restart keeps them."""
        self.last_saved_s = -math.inf
        self.steps_since_save = 0
        self.last_saved: dict[str, Any] = {}
        """The latest checkpoint's status fields, kept in every status (not only the saving step's): a
        field that came and went each minute would also cost a status write each time."""
        self.conflicts: list[str] = []
        # The engine shares one index among all policies; a runner built alone lists for itself.
        self.autoscalers = autoscalers or AutoscalerIndex(kube, settings.conflict_check_s, clock)
        self.last_recommended: Config | None = None
        objective = policy.objective
        shared.register(policy.key, Registration(
            policy.target, policy.workload, policy.window_s, policy.interval_s, policy.queries,
            slo=None if objective.higher_is_better else (objective.metric, objective.target)))
        self.workloads.register(policy.key, policy.target, policy.interval_s)
        if fast_shared is not None and self.fast_period_s > 0:
            # A second registration over the fast period, restricted to the queue and the rate: its
            # cache lives 0.9 of the shortest fast period, and the slow cache keeps its own lifetime.
            fast_shared.register(policy.key, Registration(
                policy.target, policy.workload, self.fast_period_s, self.fast_period_s,
                {m: t for m, t in policy.queries.items() if m in FAST_METRICS}, metrics=FAST_METRICS))
            self.source.fast, self.source.fast_window_s = fast_shared, self.fast_period_s
        self.source.read_state = self._live_state
        self.source.slow_replicas = bool(getattr(self.learner, "reads_replica_readiness", False))

    def _current_config(self) -> Config:
        """The workload's configuration as observed this interval (from the namespace's shared listing)."""
        return read_config(self.workloads.get(self.policy.target), self.policy)

    def _live_state(self, now: float) -> tuple[Config, tuple[ReplicaSample, ...]]:
        """The configuration and the replicas' readiness, from one read of the workload (fast steps, and the
        control steps of a learner that reads readiness)."""
        obj = self.workloads.get(self.policy.target)
        up = self.actuator.last_scale_up  # cleared once its pods are checked; the time is kept here
        if up is not None:
            self._scaled_up_s = up.at_s
        age = max(0.0, now - self._scaled_up_s) if self._scaled_up_s is not None else 0.0
        return read_config(obj, self.policy), replica_samples(obj, age)

    # checkpoints ---------------------------------------------------------------------------------------
    def restore(self) -> None:
        """The policy's own checkpoint, else the pretrained one it names; a mismatch is reported."""
        for name, cm in checkpoint_configmaps(self.kube, self.policy):
            before = self.learner.state_dict()
            try:
                got = ckpt.decode(ckpt.blob_of(cm), self.policy.learner, self.policy.space)
                self.learner.load_state_dict(got.state)
            except Exception as exc:  # a damaged checkpoint is reported and skipped, never fatal
                # load_state_dict may have set part of the learner before it raised (slo-rl loads its
                # capacity model, then refuses a hostile demand model): put back what was there, so
                # "not used" is true and a half-restored learner never decides.
                self.learner.load_state_dict(before)
                self.checkpoint_problem = f"checkpoint configmap/{name} not used: {exc}"
                continue
            if got.loop:
                self._load_loop_state(got.loop)
            self.restored = f"configmap/{name} (saved {got.saved_at})"
            self.fresh_state, self.steps_since_restore = before, 0
            return

    def stepped(self) -> None:
        """A control step completed: one fewer step of probation for a restored checkpoint."""
        self.steps_since_restore += 1
        if self.steps_since_restore >= RESTORE_PROBATION_STEPS:
            self.fresh_state = None

    def discard_restore(self, exc: BaseException) -> bool:
        """The learner failed within RESTORE_PROBATION_STEPS of restoring a checkpoint: put back the state it had
        before (a fresh learner's), report the checkpoint as not used, and say whether that was done."""
        if self.restored is None or self.fresh_state is None:
            return False
        self.learner.load_state_dict(self.fresh_state)
        self.checkpoint_problem = (f"checkpoint {self.restored} not used: the learner failed in its step "
                                   f"{self.steps_since_restore + 1} after restoring it ({type(exc).__name__}: "
                                   f"{exc}); it runs on from a fresh learner")
        self.restored, self.fresh_state = None, None
        return True

    def _loop_state(self) -> dict[str, Any]:
        g = self.loop.guards.state
        return {"last_change_s": g.last_change_s if math.isfinite(g.last_change_s) else None,
                "before_change": g.before_change, "reward_before_change": g.reward_before_change,
                "awaiting_verdict": g.awaiting_verdict}

    def _load_loop_state(self, state: Mapping[str, Any]) -> None:
        g = self.loop.guards.state
        last = state.get("last_change_s")
        g.last_change_s = float(last) if last is not None else -math.inf
        g.before_change = state.get("before_change")
        g.reward_before_change = state.get("reward_before_change")
        g.awaiting_verdict = bool(state.get("awaiting_verdict", False))

    def save(self, owner: Mapping[str, Any], now: float) -> dict[str, Any] | None:
        state = self.learner.state_dict()
        if self.adopted_settings:  # the settings the state was trained (and is run) with go along with it
            state = {**state, "provenance": {"settings": dict(self.adopted_settings)}}
        blob = ckpt.encode(self.policy.learner, self.policy.space, state,
                           samples=self.learner.convergence().samples, loop=self._loop_state())
        name = ckpt.configmap_name(self.policy.name)
        body = ckpt.configmap_body(name, self.policy.namespace, blob, self.policy.learner,
                                   self.policy.space, owner)
        self.kube.apply(f"/api/v1/namespaces/{self.policy.namespace}/configmaps/{name}", body)
        self.last_saved_s, self.steps_since_save = now, 0
        self.last_saved = {"configMap": name, "savedAt": _rfc3339(now), "bytes": len(blob)}
        return self.last_saved

    # one step ------------------------------------------------------------------------------------------
    def step(self, now: float, paused_by: str | None) -> StepResult:
        p = self.policy
        applied_mode = p.mode is Mode.APPLY and paused_by is None
        self.conflicts = other_scalers(self.kube, p.target, self.autoscalers)
        if self.conflicts:
            msg = (f"not managing {p.target.kind} {p.target.name}: already scaled by "
                   f"{', '.join(self.conflicts)}; remove it or this policy")
            return StepResult("refused", [Condition("Ready", "False", "ConflictingAutoscaler", msg),
                                          Condition("Applied", "False", "ConflictingAutoscaler", msg)],
                              {"lastDecision": {"time": _rfc3339(now), "message": msg}},
                              [("Warning", "ConflictingAutoscaler", msg)])

        events: list[tuple[str, str, str]] = []
        if applied_mode:
            stuck = self.actuator.stuck_scale_up()
            if stuck is not None:
                before, why = stuck
                try:
                    self.actuator.apply(p.key, before, f"rollback: {why}")
                finally:
                    self.workloads.invalidate(p.target)
                msg = f"rolled back {describe_changes(p, self.actuator.changes)}: {why}"
                self.loop.guards.record_change(before, now, None)
                self.loop.guards.state.awaiting_verdict = False
                return StepResult("rolled_back", [
                    Condition("Ready", "True", "Managing", f"managing {p.target.kind} {p.target.name}"),
                    Condition("Applied", "False", "RolledBack", msg)],
                    {"lastDecision": {"time": _rfc3339(now), "message": msg},
                     "appliedConfig": _finite(before), "lastChangeTime": _rfc3339(now)},
                    [("Warning", "AutocmRolledBack", msg)])

        self.loop.mode = Mode.APPLY if applied_mode else Mode.RECOMMEND
        rec = self.loop.step(now)
        self.steps_since_save += 1
        obs = rec.observation
        conv = rec.convergence
        status: dict[str, Any] = {
            "convergence": {"verdict": str(conv.verdict), "samples": conv.samples,
                            **({"residual": conv.residual} if math.isfinite(conv.residual) else {}),
                            **({"policyStability": conv.policy_stability}
                               if math.isfinite(conv.policy_stability) else {})},
        }
        if obs is not None:
            status["currentConfig"] = _finite(obs.config)
            status["metrics"] = _finite(obs.metrics)
        conditions = [Condition("Ready", "True", "Paused" if paused_by else "Managing",
                                paused_by or f"managing {p.target.kind} {p.target.name}")]
        conditions.append(self._convergence_condition(conv.verdict))

        if rec.frozen is not None:
            why = rec.frozen if self.source.problem is None else f"{rec.frozen} ({self.source.problem})"
            reason = ("PrometheusUnavailable" if obs is None else
                      "MetricsStale" if "stale" in rec.frozen else
                      "MetricsNotFinite" if "not finite" in rec.frozen else "MetricsMissing")
            conditions.append(Condition("MetricsAvailable", "False", reason, why))
            conditions.append(Condition("Applied", "False", "Frozen", f"no change while frozen: {why}"))
            status["lastDecision"] = {"time": _rfc3339(now), "message": f"frozen, nothing decided: {why}"}
            return StepResult("frozen", conditions, status, events, rec)

        conditions.append(Condition("MetricsAvailable", "True", "MetricsFresh",
                                    self.source.problem or "every required metric is present and finite"))
        assert obs is not None and rec.recommended is not None
        status["recommendedConfig"] = _finite(rec.recommended)
        if rec.reward is not None and math.isfinite(rec.reward):
            status["reward"] = rec.reward
        current = self.policy.space.clip(obs.config)
        wanted = {k: (current[k], v) for k, v in rec.recommended.items() if current.get(k) != v}
        notes = list(rec.notes) + (self.actuator.notes if applied_mode and wanted else [])
        explained = self.explain(obs, rec, wanted, notes, applied_mode, paused_by)
        status["lastDecision"] = {"time": _rfc3339(now), "message": explained}
        if wanted:  # omitted, not {}: server-side apply turns an empty map into null, which is invalid
            status["lastDecision"]["changes"] = {p.crd_knobs.get(k, k): f"{a:g} -> {b:g}"
                                                 for k, (a, b) in wanted.items()}
        if applied_mode and wanted:
            done = self.actuator.changes
            status["appliedConfig"] = _finite({**current, **{k: b for k, (_, b) in done.items()}})
            if done:
                status["lastChangeTime"] = _rfc3339(now)
                events.append(("Normal", "AutocmApplied", f"{describe_changes(p, done)}: {rec.reason}"))
                conditions.append(Condition("Applied", "True", "Applied", explained))
                outcome = "applied"
            else:
                conditions.append(Condition("Applied", "False", "CapacityLimited", "; ".join(notes)))
                outcome = "refused"
        elif applied_mode:
            status["appliedConfig"] = _finite(current)
            conditions.append(Condition("Applied", "True", "UpToDate",
                                        "the workload has the chosen configuration"))
            outcome = "unchanged"
        else:
            status["appliedConfig"] = _finite(current)
            reason = "Paused" if paused_by else "RecommendOnly"
            conditions.append(Condition("Applied", "False", reason,
                                        "paused: nothing is changed" if paused_by else
                                        "mode is recommend: the status says what apply mode would do"))
            outcome = "paused" if paused_by else ("recommended" if wanted else "unchanged")
            if wanted and rec.recommended != self.last_recommended:
                events.append(("Normal", "AutocmRecommendation", explained))
        self.last_recommended = dict(rec.recommended)
        return StepResult(outcome, conditions, status, events, rec, p.objective.meets(obs))

    def fast_step(self, now: float) -> FastResult | None:
        """One fast step between two intervals (:meth:`controller.loop.ControlLoop.fast_step`): None when
        nothing changed or would change. Not while another autoscaler holds the workload or the last
        step found nothing to manage; the caller skips paused policies. Writes no status: the next
        interval's status shows the new configuration, the events and /metrics show it at once."""
        p = self.policy
        if self.fast_period_s <= 0 or self.conflicts or not self.managing:
            return None
        self.loop.mode = p.mode
        self.actuator.changes, self.actuator.notes = {}, []
        rec = self.loop.fast_step(now)
        if rec is None or rec.observation is None or rec.recommended is None:
            return None
        current = p.space.clip(rec.observation.config)
        wanted = {k: (current[k], v) for k, v in rec.recommended.items() if current.get(k) != v}
        if not wanted:
            return None
        if p.mode is Mode.APPLY:
            done = self.actuator.changes
            if not done:
                log.info("%s: fast step wanted %s, not applied: %s", p.key, describe_changes(p, wanted),
                         "; ".join(self.actuator.notes) or "no change")
                return FastResult("fast_refused", rec)
            msg = f"{describe_changes(p, done)}: {rec.reason}"  # logged with its event
            return FastResult("fast_applied", rec, [("Normal", "AutocmFastScaleUp", msg)],
                              _finite({**current, **{k: b for k, (_, b) in done.items()}}))
        events = []
        if rec.recommended != self.last_fast_recommended:  # one event per new recommendation, not one per look
            events.append(("Normal", "AutocmFastRecommendation",
                           f"{describe_changes(p, wanted)} (recommended, not applied): {rec.reason}"))
        self.last_fast_recommended = dict(rec.recommended)
        return FastResult("fast_recommended", rec, events)

    def _convergence_condition(self, verdict: Verdict) -> Condition:
        if verdict is Verdict.NOT_LEARNING:
            return Condition("Converged", "Unknown", "NotLearning",
                             f"{self.policy.learner} is rule-based and does not learn")
        if verdict is Verdict.CONVERGED:
            return Condition("Converged", "True", "Converged", "the learner's policy has stabilised")
        return Condition("Converged", "False", verdict.name.title().replace("_", ""),
                         f"the learner reports {verdict}")

    def explain(self, obs: Observation, rec: StepRecord, wanted: Mapping[str, tuple[float, float]],
                notes: list[str], applied_mode: bool, paused_by: str | None) -> str:
        """The decision in words: which metric, its value against the SLO, which knob, and why."""
        obj = self.policy.objective
        value = obs.metric(obj.metric)
        verb = ">=" if obj.higher_is_better else "<="
        met = "met" if obj.meets(obs) else "missed"
        head = f"{obj.metric}={value:.4g} (SLO {verb} {obj.target:g}: {met})"
        if wanted:
            what = describe_changes(self.policy, wanted)
            how = ("applied" if applied_mode and self.actuator.changes else
                   "not applied" if applied_mode else
                   "paused, not applied" if paused_by else "recommended, not applied")
            body = f"{what} ({how})"
        else:
            body = "keep the current configuration"
        tail = f"; {'; '.join(notes)}" if notes else ""
        reason = rec.reason or "learner decision"
        return f"{head}; {self.policy.learner}: {reason}; {body}{tail}"


# --- all policies ------------------------------------------------------------------------------------------


class Engine:
    """Every policy this operator runs, the shared Prometheus cache, status and event writing."""

    def __init__(self, kube: Kube, settings: OperatorSettings, telemetry: Telemetry | None = None,
                 prometheus: PrometheusClient | None = None, clock: Callable[[], float] = time.time) -> None:
        self.kube = kube
        self.settings = settings
        self.telemetry = telemetry or Telemetry()
        self.clock = clock
        client = prometheus or PrometheusClient(settings.prometheus_url, PrometheusSettings())
        self.shared = SharedMetrics(client, clock=clock, on_query=self.telemetry.record_query)
        self.fast_shared = SharedMetrics(client, PrometheusSettings(min_cache_s=0.9 * FAST_FLOOR_S), clock=clock,
                                         on_query=self.telemetry.record_query)
        """The fast timescale's short-window queries (queue and rate only), for the policies that have one."""
        self.autoscalers = AutoscalerIndex(kube, settings.conflict_check_s, clock)
        self.workloads = WorkloadCache(kube, clock=clock)
        self.runners: dict[str, PolicyRunner | PoolRunner] = {}
        self.bodies: dict[str, dict[str, Any]] = {}
        self.invalid: dict[str, str] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._last_warnings: dict[tuple[str, str], frozenset[str]] = {}
        """(policy, "step" or "fast") -> the Warning messages its last call posted or kept quiet: a standing
        problem is announced once, however many there are at a time (one remembered message would repost two
        standing problems every interval, each time the other had been the last)."""
        self._written: dict[str, tuple[str, float]] = {}  # key -> (what mattered in it, when)
        self._served: dict[str, tuple[float, frozenset[str]]] = {}  # group/version -> (when, plurals)
        self._in_place = settings.resize_in_place
        self.executor = concurrent.futures.ThreadPoolExecutor(settings.step_threads, thread_name_prefix="step")
        self.board = ShareBoard(settings.share_max_age_s)
        """Experience published by the policies of each workload class (spec.learner.shareWith)."""

    def _resize_supported(self) -> bool:
        if self._in_place is None:
            try:
                self._in_place = self.kube.server_minor_version() >= 33
            except (ApiException, OSError, ValueError):
                self._in_place = False
        return self._in_place

    def _crd_missing(self, kind: str, now: float) -> str | None:
        """Why a target kind's API is not served (its CRD is not installed), or None.

        Only PyTorchJob is optional; its API group is looked up at most once per conflict_check_s for
        all policies, so a CRD installed later is found within a minute.
        """
        if kind != pytorchjob.KIND:
            return None
        got = self._served.get(pytorchjob.API_VERSION)
        if got is None or now - got[0] >= self.settings.conflict_check_s:
            try:
                listing = self.kube.get(f"/apis/{pytorchjob.API_VERSION}")
                plurals = frozenset(r.get("name", "") for r in listing.get("resources", []))
            except ApiException as exc:
                if exc.status != 404:
                    return None  # unknown: the step's own reads report the error
                plurals = frozenset()
            except OSError:
                return None
            got = self._served[pytorchjob.API_VERSION] = (now, plurals)
        if pytorchjob.PLURAL in got[1]:
            return None
        return (f"the {pytorchjob.API_VERSION} PyTorchJob CRD is not installed in this cluster "
                "(the Kubeflow training operator installs it)")

    @staticmethod
    def key_of(body: Mapping[str, Any]) -> str:
        meta = body["metadata"]
        return f"{meta['namespace']}/{meta['name']}"

    def observe_body(self, body: Mapping[str, Any]) -> None:
        """Remember the newest version of a policy; the next step rebuilds the runner if the spec changed."""
        self.bodies[self.key_of(body)] = dict(body)

    def _unregister(self, key: str) -> None:
        self.shared.unregister(key)
        self.fast_shared.unregister(key)
        self.workloads.unregister(key)

    def forget(self, key: str) -> None:
        self.board.forget(key)  # a deleted policy's experience leaves the class with it
        self.runners.pop(key, None)
        self.bodies.pop(key, None)
        self.invalid.pop(key, None)
        for channel in ("step", "fast"):
            self._last_warnings.pop((key, channel), None)
        self._written.pop(key, None)
        self._unregister(key)
        ns, name = key.split("/", 1)
        self.telemetry.forget(ns, name)
        self.telemetry.managed.set(len(self.runners))

    def interval_of(self, key: str) -> float:
        runner = self.runners.get(key)
        if runner is not None:
            return runner.policy.interval_s
        body = self.bodies.get(key, {})
        try:  # an invalid policy is re-checked at its own interval, within the bounds parse() enforces
            value = float((body.get("spec") or {}).get("intervalSeconds", 60.0))
        except (TypeError, ValueError, AttributeError):
            return 60.0
        return min(max(1.0, value), LIMITS.interval_s) if math.isfinite(value) else 60.0

    def fast_period_of(self, key: str) -> float:
        """Seconds between the policy's fast steps; 0 when it has none (see :func:`operator_fast_period`)."""
        runner = self.runners.get(key)
        return runner.fast_period_s if isinstance(runner, PolicyRunner) else 0.0

    def _runner(self, key: str, body: Mapping[str, Any]) -> PolicyRunner | PoolRunner | None:
        generation = int(body["metadata"].get("generation", 0))
        runner = self.runners.get(key)
        if runner is not None and runner.generation == generation:
            return runner
        meta = body["metadata"]
        if isinstance(body.get("spec"), Mapping) and "trainingPool" in body["spec"]:
            return self._pool_runner(key, body)
        try:
            raw = body.get("spec")
            if not isinstance(raw, Mapping):
                raise PolicyError(f"spec: expected an object, got {raw!r}")
            spec = dict(raw)
            if self.settings.interval_override_s is not None:
                spec["intervalSeconds"] = self.settings.interval_override_s
            policy = parse(spec, meta["namespace"], meta["name"])
        except PolicyError as exc:
            self.invalid[key] = str(exc)
            self.runners.pop(key, None)
            self._unregister(key)
            return None
        self._unregister(key)
        old = self.runners.get(key)
        keeps = (isinstance(old, PolicyRunner) and old.policy.space == policy.space
                 and old.policy.learner == policy.learner)
        adopted: dict[str, Any] = {}
        problem = None
        if keeps:  # a spec change that keeps the learner keeps the checkpoint's settings too
            adopted = dict(old.adopted_settings)  # type: ignore[union-attr]
        elif not isinstance(old, PolicyRunner):  # this runner will restore a checkpoint: run it as it was chosen
            adopted, _name, problem = checkpoint_settings(self.kube, policy)
        runner: PolicyRunner | None = None
        if adopted:  # the spec's own settings win over the checkpoint's
            try:
                mixed = dataclasses.replace(policy, learner_settings={**adopted, **policy.learner_settings})
                runner = PolicyRunner(mixed, body, self.kube, self.shared, self.settings, self._resize_supported(),
                                      self.clock, self.autoscalers, self.workloads, self.fast_shared)
            except Exception as exc:  # the learner refuses the mix, however it says so
                problem = (f"settings of the checkpoint not used: learner {policy.learner!r} refused them "
                           f"together with spec.learner.settings: {exc}")
                adopted = {}
                self._unregister(key)
        if runner is None:
            try:
                runner = PolicyRunner(policy, body, self.kube, self.shared, self.settings,
                                      self._resize_supported(), self.clock, self.autoscalers, self.workloads,
                                      self.fast_shared)
            except Exception as exc:  # the learner refuses this space or settings, however it says so
                self.invalid[key] = f"spec.learner: learner {policy.learner!r} refused this policy: {exc}"
                self.runners.pop(key, None)
                self._unregister(key)
                return None
        runner.adopted_settings = adopted
        if problem:
            runner.checkpoint_problem = problem
        if policy.share_with is not None:
            try:
                share_key = class_key(policy.share_with, policy.namespace, policy.learner, policy.space,
                                      cross_namespace=self.settings.cross_namespace_classes)
            except ShareError as exc:
                self.invalid[key] = f"spec.learner.shareWith: {exc}"
                self.runners.pop(key, None)
                self._unregister(key)
                return None
            runner.loop.sharing = ShareMember(self.board, share_key, key, runner.learner,  # type: ignore[arg-type]
                                              self.settings.share_every_s)
        self.invalid.pop(key, None)
        if isinstance(old, PolicyRunner):  # a spec change: keep learning if the knobs and learner are unchanged
            if old.policy.space == policy.space and old.policy.learner == policy.learner:
                runner.learner.load_state_dict(old.learner.state_dict())
                runner.loop.guards.state = old.loop.guards.state
                mine, was = runner.loop.sharing, old.loop.sharing
                if mine is not None and was is not None and mine.key == was.key:
                    mine.carry_from(was)  # absorb nothing twice
                runner.restored = old.restored
        else:
            runner.restore()
        self.runners[key] = runner
        self.telemetry.managed.set(len(self.runners))
        return runner

    def _pool_runner(self, key: str, body: Mapping[str, Any]) -> PoolRunner | None:
        """A training-pool policy's runner (controller/pool_runner.py); a new generation keeps what the
        old runner learned about the jobs when the scheduler is the same."""
        spec = dict(body["spec"])
        if self.settings.interval_override_s is not None:
            spec["intervalSeconds"] = self.settings.interval_override_s
        self._unregister(key)
        try:
            policy = tp.parse_pool_policy({**body, "spec": spec})
            assert policy is not None
            runner = PoolRunner(policy, body, self.kube, self.shared.client, self.clock)
        except PolicyError as exc:
            self.invalid[key] = str(exc)
            self.runners.pop(key, None)
            return None
        old = self.runners.get(key)
        if isinstance(old, PoolRunner) and old.policy.pool.scheduler == policy.pool.scheduler:
            runner.scheduler, runner.records, runner.placements = old.scheduler, old.records, old.placements
            runner.batch, runner.last_round_s = old.batch, old.last_round_s
        self.invalid.pop(key, None)
        self.runners[key] = runner
        self.telemetry.managed.set(len(self.runners))
        return runner

    def _pool_step(self, runner: PoolRunner, body: Mapping[str, Any], now: float) -> StepResult:
        """One round of a training pool, with the same error handling and status writing as a policy step."""
        ns, name = runner.policy.key.split("/", 1)
        try:
            got = runner.step(now, self.paused_by(body))
            result = StepResult(got.outcome, [Condition(*c) for c in got.conditions], got.status, got.events)
        except ApiException as exc:
            self.telemetry.errors.labels("kubernetes").inc()
            msg = f"Kubernetes API error {exc.status}: {exc.reason}"
            result = StepResult("error", [Condition("Applied", "False", "ApplyFailed", msg)],
                                {"lastDecision": {"time": _rfc3339(now), "message": msg}},
                                [("Warning", "ApplyFailed", msg)])
        except (TimeoutError, OSError, UnsafeTarget) as exc:
            self.telemetry.errors.labels("kubernetes").inc()
            msg = f"{type(exc).__name__}: {exc}"
            result = StepResult("error", [Condition("Applied", "False", "ApplyFailed", msg)],
                                {"lastDecision": {"time": _rfc3339(now), "message": msg}},
                                [("Warning", "ApplyFailed", msg)])
        except Exception as exc:  # the scheduler (or a bug) failed: said in the status, never a dead loop
            self.telemetry.errors.labels("learner").inc()
            log.exception("training pool round of %s failed", runner.policy.key)
            msg = f"spec.trainingPool.scheduler: {runner.policy.pool.scheduler} failed ({type(exc).__name__}: {exc})"
            result = StepResult("refused", [Condition("Ready", "False", "SchedulerFailed", msg)],
                                {"lastDecision": {"time": _rfc3339(now), "message": msg}},
                                [("Warning", "SchedulerFailed", msg)])
        self.telemetry.decisions.labels(ns, name, result.outcome).inc()
        self._write(body, result, int(body["metadata"].get("generation", 0)), now)
        return result

    def paused_by(self, body: Mapping[str, Any]) -> str | None:
        if self.settings.paused:
            return "paused: the operator runs with --pause"
        if (body.get("spec") or {}).get("paused") is True:  # parse() refuses anything but a boolean
            return "paused: spec.paused is true"
        annotations = body.get("metadata", {}).get("annotations") or {}
        if str(annotations.get(PAUSE_ANNOTATION, "")).lower() in ("true", "1", "yes"):
            return f"paused: annotation {PAUSE_ANNOTATION}={annotations[PAUSE_ANNOTATION]}"
        return None

    def step(self, key: str) -> StepResult | None:
        """One control step of one policy; writes status, events, telemetry and maybe a checkpoint."""
        lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            body = self.bodies.get(key)
            if body is None:
                return None
            t0 = time.perf_counter()
            now = self.clock()
            result = self._step(key, body, now)
            self.telemetry.loop_latency.observe(time.perf_counter() - t0)
            runner = self.runners.get(key)
            if isinstance(runner, PolicyRunner):
                runner.managing = not any(c.type == "Ready" and c.status == "False" for c in result.conditions)
            return result

    def fast_step(self, key: str) -> FastResult | None:
        """One fast step of one policy between two of its intervals (none for a policy without a fast
        period, paused, or whose spec changed since its last step). Posts an event and counts the change
        in ``autocm_operator_decisions_total`` (outcome fast_applied, fast_recommended or fast_refused);
        writes no status. Errors are contained as in :meth:`step`: counted, logged, one Warning event."""
        lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            body = self.bodies.get(key)
            runner = self.runners.get(key)
            if (body is None or not isinstance(runner, PolicyRunner) or runner.fast_period_s <= 0
                    or runner.generation != int(body["metadata"].get("generation", 0))
                    or self.paused_by(body) is not None):
                return None
            ns, name = key.split("/", 1)
            now = self.clock()
            events: list[tuple[str, str, str]] = []
            result: FastResult | None = None
            try:
                result = runner.fast_step(now)
            except ApiException as exc:
                self.telemetry.errors.labels("kubernetes").inc()
                msg = f"fast step: Kubernetes API error {exc.status}: {exc.reason}"
                log.warning("%s: %s", key, msg)
                events.append(("Warning", "ApplyFailed", msg))
            except (TimeoutError, OSError, UnsafeTarget) as exc:
                self.telemetry.errors.labels("kubernetes").inc()
                msg = f"fast step: {type(exc).__name__}: {exc}"
                log.warning("%s: %s", key, msg)
                events.append(("Warning", "ApplyFailed", msg))
            except WorkloadSpecError as exc:
                self.telemetry.errors.labels("workload").inc()
                t = runner.policy.target
                events.append(("Warning", "InvalidWorkload",
                               f"fast step: spec.targetRef: {t.kind} {t.namespace}/{t.name} cannot be sized: {exc}"))
            except Exception as exc:  # the learner's react (or a bug): never a dead loop
                self.telemetry.errors.labels("learner").inc()
                log.exception("fast step of %s failed", key)
                events.append(("Warning", "LearnerFailed",
                               f"spec.learner: learner {runner.policy.learner!r} failed in its fast step "
                               f"({type(exc).__name__}: {exc}); check spec.learner.settings"))
            if result is not None:
                events += result.events
                self.telemetry.decisions.labels(ns, name, result.outcome).inc()
                for knob, v in (result.applied or {}).items():
                    self.telemetry.applied.labels(ns, name, knob).set(v)
            self._post_events(body, events, "fast")
            return result

    def _step(self, key: str, body: Mapping[str, Any], now: float) -> StepResult:
        ns, name = key.split("/", 1)
        generation = int(body["metadata"].get("generation", 0))
        runner = self._runner(key, body)
        if runner is None:
            msg = self.invalid[key]
            result = StepResult("refused", [Condition("Ready", "False", "InvalidSpec", msg)],
                                {"lastDecision": {"time": _rfc3339(now), "message": msg}},
                                [("Warning", "InvalidSpec", msg)])
            self._write(body, result, generation, now)
            return result
        if isinstance(runner, PoolRunner):
            return self._pool_step(runner, body, now)
        missing = self._crd_missing(runner.policy.target.kind, now)
        if missing is not None:
            t = runner.policy.target
            msg = f"not managing {t.kind} {t.name}: {missing}"
            result = StepResult("refused", [Condition("Ready", "False", "CRDNotInstalled", msg)],
                                {"lastDecision": {"time": _rfc3339(now), "message": msg}},
                                [("Warning", "CRDNotInstalled", msg)])
            self._write(body, result, generation, now)
            return result
        paused = self.paused_by(body)
        try:
            result = runner.step(now, paused)
            runner.stepped()
        except ApiException as exc:
            self.telemetry.errors.labels("kubernetes").inc()
            if exc.status == 404:
                t = runner.policy.target
                msg = f"{t.kind} {t.namespace}/{t.name} not found"
                result = StepResult("refused", [Condition("Ready", "False", "WorkloadNotFound", msg)],
                                    {"lastDecision": {"time": _rfc3339(now), "message": msg}})
            else:
                msg = f"Kubernetes API error {exc.status}: {exc.reason}"
                result = StepResult("error", [Condition("Applied", "False", "ApplyFailed", msg)],
                                    {"lastDecision": {"time": _rfc3339(now), "message": msg}},
                                    [("Warning", "ApplyFailed", msg)])
        except UnsafeTarget as exc:  # parse() refuses such names; this is the adapter's last line
            self.telemetry.errors.labels("kubernetes").inc()
            msg = f"spec.targetRef: {exc}"
            result = StepResult("refused", [Condition("Ready", "False", "InvalidSpec", msg)],
                                {"lastDecision": {"time": _rfc3339(now), "message": msg}},
                                [("Warning", "InvalidSpec", msg)])
        except (TimeoutError, OSError) as exc:
            self.telemetry.errors.labels("kubernetes").inc()
            msg = f"{type(exc).__name__}: {exc}"
            result = StepResult("error", [Condition("Applied", "False", "ApplyFailed", msg)],
                                {"lastDecision": {"time": _rfc3339(now), "message": msg}},
                                [("Warning", "ApplyFailed", msg)])
        except WorkloadSpecError as exc:  # the target object is malformed: its owner fixes it, not spec.learner
            self.telemetry.errors.labels("workload").inc()
            t = runner.policy.target
            msg = f"spec.targetRef: {t.kind} {t.namespace}/{t.name} cannot be sized: {exc}"
            result = StepResult("refused", [Condition("Ready", "False", "InvalidWorkload", msg)],
                                {"lastDecision": {"time": _rfc3339(now), "message": msg}},
                                [("Warning", "InvalidWorkload", msg)])
        except Exception as exc:  # the learner (or a bug) failed in this step: said in the status, never a dead loop
            self.telemetry.errors.labels("learner").inc()
            log.exception("control step of %s failed", key)
            msg = (f"spec.learner: learner {runner.policy.learner!r} failed in its step "
                   f"({type(exc).__name__}: {exc}); "
                   + ("it dropped the checkpoint it had just restored and runs on from a fresh learner"
                      if runner.discard_restore(exc) else "check spec.learner.settings"))
            result = StepResult("refused", [Condition("Ready", "False", "LearnerFailed", msg)],
                                {"lastDecision": {"time": _rfc3339(now), "message": msg}},
                                [("Warning", "LearnerFailed", msg)])
        if runner.restored:
            result.status.setdefault("checkpoint", {})["restoredFrom"] = runner.restored
        if runner.adopted_settings:
            result.status.setdefault("checkpoint", {})["settings"] = dict(runner.adopted_settings)
        if runner.loop.sharing is not None:
            result.status["sharing"] = runner.loop.sharing.report()
        if runner.last_saved:
            result.status.setdefault("checkpoint", {}).update(runner.last_saved)
        if runner.checkpoint_problem:
            result.events.append(("Warning", "CheckpointIgnored", runner.checkpoint_problem))
            runner.checkpoint_problem = None
        rec = result.record
        if rec is not None:
            conv = rec.convergence
            self.telemetry.record_step(ns, name, result.outcome, rec.reward, conv.residual,
                                       conv.verdict is Verdict.CONVERGED, rec.recommended,
                                       result.status.get("appliedConfig"))
        else:
            self.telemetry.decisions.labels(ns, name, result.outcome).inc()
        due = (now - runner.last_saved_s >= self.settings.checkpoint_every_s
               or result.outcome in ("applied", "rolled_back"))
        if rec is not None and rec.frozen is None and due and runner.steps_since_save:
            try:
                result.status["checkpoint"] = {**result.status.get("checkpoint", {}),
                                               **runner.save(body, now)}
            except (ApiException, ckpt.CheckpointError, OSError) as exc:
                self.telemetry.errors.labels("checkpoint").inc()
                result.events.append(("Warning", "CheckpointFailed", str(exc)))
        self._write(body, result, generation, now)
        return result

    def _write(self, body: Mapping[str, Any], result: StepResult, generation: int, now: float) -> None:
        old = {c.get("type"): c for c in (body.get("status") or {}).get("conditions", [])}
        merged = dict(old)
        announced = {reason for _, reason, _ in result.events}
        for c in result.conditions:
            prev = old.get(c.type)
            changed = prev is None or prev.get("status") != c.status
            if changed and c.reason not in announced:  # an event's log line already says it
                log.log(logging.WARNING if c.status == "False" and c.type in ("Ready", "MetricsAvailable")
                        else logging.INFO, "%s: %s is %s (%s): %s", self.key_of(body), c.type, c.status,
                        c.reason, one_line(c.message))
            merged[c.type] = {"type": c.type, "status": c.status, "reason": c.reason,
                              "message": c.message[:32768], "observedGeneration": generation,
                              "lastTransitionTime": _rfc3339(now) if changed
                              else prev.get("lastTransitionTime", _rfc3339(now))}
        order = ["Ready", "MetricsAvailable", "Converged", "Applied"]
        conditions = sorted(merged.values(), key=lambda c: (order.index(c["type"])
                                                            if c["type"] in order else 99, c["type"]))
        status = {**result.status, "conditions": conditions, "observedGeneration": generation}
        meta = body["metadata"]
        key = self.key_of(body)
        news = status_news(status, result.slo_met)
        last = self._written.get(key)
        if last is None or last[0] != news or now - last[1] >= self.settings.status_refresh_s:
            path = f"/apis/{GROUP}/{VERSION}/namespaces/{meta['namespace']}/{PLURAL}/{meta['name']}/status"
            try:
                # Server-side apply: fields this step does not write (a metric that vanished, last step's
                # list of changes) are removed, which a merge patch would leave behind.
                self.kube.apply(path, {"apiVersion": f"{GROUP}/{VERSION}", "kind": "SizingPolicy",
                                       "metadata": {"name": meta["name"], "namespace": meta["namespace"]},
                                       "status": status})
            except ApiException as exc:
                self.telemetry.errors.labels("status").inc()
                log.warning("status of %s/%s not written: %s", meta["namespace"], meta["name"], exc)
            else:
                self._written[key] = (news, now)
                # Keep our view of the status so that lastTransitionTime survives between steps.
                body_status = dict(body.get("status") or {})
                body_status.update(status)
                self.bodies[key] = {**body, "status": body_status}
        # Events go out even when the status did not: a change that was made is still announced.
        self._post_events(body, result.events)

    def _post_events(self, body: Mapping[str, Any], events: list[tuple[str, str, str]],
                     channel: str = "step") -> None:
        meta = body["metadata"]
        ref = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "SizingPolicy", "name": meta["name"],
               "namespace": meta["namespace"], "uid": meta.get("uid")}
        memory = (self.key_of(body), channel)
        before = self._last_warnings.get(memory, frozenset())
        self._last_warnings[memory] = frozenset(m for t, _, m in events if t == "Warning")
        posted: set[str] = set()
        for type_, reason, message in events:
            # A standing problem (a conflicting HPA, an invalid spec) is one Warning, not one per interval.
            if type_ == "Warning":
                if message in before or message in posted:
                    continue
                posted.add(message)
            post_event(self.kube, ref, type_, reason, message)


def status_news(status: Mapping[str, Any], slo_met: bool | None) -> str:
    """What a user acts on in a status, as a comparable string: everything but its fresher numbers.

    Left out: metric values, the reward, the convergence residual and sample count, the decision's
    time and wording, condition messages and transition times (a transition is a status change,
    which is kept). Kept: which fields and metrics exist, every configuration, the changes, the
    conditions' status and reason, the convergence verdict, checkpoints and whether the SLO was met.
    """
    volatile = ("metrics", "reward", "convergence", "lastDecision", "conditions")
    news = {k: v for k, v in status.items() if k not in volatile}
    news["fields"] = sorted(status)
    news["metricNames"] = sorted(status.get("metrics", {}))
    news["verdict"] = status.get("convergence", {}).get("verdict")
    news["changes"] = status.get("lastDecision", {}).get("changes")
    news["conditions"] = [(c["type"], c["status"], c["reason"], c.get("observedGeneration"))
                          for c in status.get("conditions", [])]
    news["sloMet"] = slo_met
    return json.dumps(news, sort_keys=True, default=str)


# --- kopf glue ----------------------------------------------------------------------------------------------

_ENGINE: Engine | None = None
_ENGINE_FACTORY: Callable[[], Engine] | None = None


def configure(factory: Callable[[], Engine]) -> None:
    """Set how the engine is built when kopf starts (``autocm run`` calls this before kopf.run)."""
    global _ENGINE_FACTORY, _ENGINE
    _ENGINE_FACTORY, _ENGINE = factory, None


def engine() -> Engine:
    global _ENGINE
    if _ENGINE is None:
        if _ENGINE_FACTORY is None:
            raise RuntimeError("controller.operator.configure() was not called")
        _ENGINE = _ENGINE_FACTORY()
    return _ENGINE


@kopf.on.startup()
def _startup(settings: kopf.OperatorSettings, **_: Any) -> None:
    # Progress and diff-base in annotations under our own prefix: our status schema does not declare
    # kopf's status.kopf, and the apiserver would prune it.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=GROUP)
    # kopf needs a finalizer to stop a deleted policy's daemon cleanly; name it after us.
    settings.persistence.finalizer = f"{GROUP}/finalizer"
    settings.posting.level = logging.WARNING  # our own events carry the decisions
    settings.watching.server_timeout = 60
    settings.peering.lifetime = engine().settings.peering_lifetime_s


@kopf.on.login()
def _login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """Log kopf in with the same credentials as our own client (``--kubeconfig`` or in-cluster).

    kopf's own ``login_via_client`` reads $KUBECONFIG as the kubernetes package saw it at import
    time, so a ``--kubeconfig`` flag would be ignored; in-cluster we still defer to it, because it
    follows the service-account token's rotation.
    """
    cfg = engine().kube.api_client.configuration
    header = cfg.get_api_key_with_prefix("BearerToken") or cfg.get_api_key_with_prefix("authorization")
    if header and not cfg.cert_file:
        return kopf.login_via_client(**kwargs)
    return kopf.ConnectionInfo(server=cfg.host, ca_path=cfg.ssl_ca_cert, insecure=not cfg.verify_ssl,
                               certificate_path=cfg.cert_file, private_key_path=cfg.key_file,
                               username=cfg.username or None, password=cfg.password or None)


@kopf.on.event(GROUP, VERSION, PLURAL)
def _on_event(event: Mapping[str, Any], body: Mapping[str, Any], **_: Any) -> None:
    if event.get("type") == "DELETED":
        engine().forget(Engine.key_of(body))
    else:
        engine().observe_body(dict(body))


async def _in_worker(eng: Engine, fn: Callable[[str], object], key: str, what: str) -> None:
    try:
        await asyncio.get_running_loop().run_in_executor(eng.executor, fn, key)
    except Exception:  # one policy's bug must not stop the others; it is counted and logged
        eng.telemetry.errors.labels("learner").inc()
        log.exception("%s of %s failed", what, key)


async def policy_loop(eng: Engine, key: str, stopped: Any) -> None:
    """Steps of one policy until ``stopped`` (kopf's DaemonStopped: truthy once stopped, ``await
    stopped.wait(s)`` sleeps at most ``s``): a control step, then, for a learner with a fast period, a
    fast step every fast period in between (interval / period - 1 of them), so the next control step
    still comes one interval later; each in a worker thread. The period is bounded below
    (:data:`FAST_FLOOR_S`) whatever the policy's settings say."""
    while not stopped:
        await _in_worker(eng, eng.step, key, "control step")
        interval, fast = eng.interval_of(key), eng.fast_period_of(key)
        if fast <= 0:
            await stopped.wait(interval)
            continue
        for _ in range(round(interval / fast) - 1):
            await stopped.wait(fast)
            if stopped:
                return
            await _in_worker(eng, eng.fast_step, key, "fast step")
        await stopped.wait(fast)


@kopf.daemon(GROUP, VERSION, PLURAL, cancellation_timeout=5.0)
async def _run_policy(stopped: kopf.DaemonStopped, body: Mapping[str, Any], **_: Any) -> None:
    """One policy's control loop: a step every spec.intervalSeconds (fast steps in between for a
    learner with a fast timescale, :func:`policy_loop`), in a worker thread."""
    eng = engine()
    key = Engine.key_of(body)
    eng.bodies.setdefault(key, dict(body))
    try:
        await policy_loop(eng, key, stopped)
    finally:
        if stopped.reason is not None and stopped.reason & kopf.DaemonStoppingReason.RESOURCE_DELETED:
            eng.forget(key)

