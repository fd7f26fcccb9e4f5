"""From a scenario and a policy to one simulated run: the glue between scenario files, the learners,
the control loop, the inference services, the training cluster and the hindsight oracle.

Every inference service is driven by the same :class:`~controller.loop.ControlLoop` the operator
runs, stepped every ``period_s`` of simulated time: a baseline's own evaluation period (HPA 15 s,
KPA 2 s, VPA 60 s) or the scenario's control interval for learners.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import simpy

from controller.loop import ControlLoop, fast_period_s
from learners import ConfigSpace, Knob, Objective
from learners.base import create, parse_settings, registered
from learners.baselines.tiresias import Tiresias
from learners.sharing import ShareBoard, ShareMember, can_share, class_key
from simulator.cluster import GpuPool
from simulator.datasets import DATA_DIR
from simulator.faults import FailureListener, FaultSettings, node_failures
from simulator.inference import SLO, InferenceService, PerfModel, ServiceSettings, Trace
from simulator.inference import traces as tr
from simulator.metrics import Recorder
from simulator.results import RunResult
from simulator.scenario import Scenario, ScenarioError, training_workload_paths

if TYPE_CHECKING:
    from simulator.training.goodput_las import LasSettings
    from simulator.training.shared_goodput import SharedSettings

ORACLE = "oracle"
HINDSIGHT = "hindsight-static"
"""The learner name of the best static configuration in hindsight's rows (:mod:`simulator.hindsight`)."""


def _tiresias(seed: int = 0):
    return Tiresias()


def _goodput_waterfill(seed: int = 0):
    """Greedy water-filling over the exact measured goodput curves (imported on use: it loads the profiles).
    Nothing in it learns; it was called ``rl-arbiter`` before."""
    from simulator.training.arbiter import GoodputWaterfillScheduler

    return GoodputWaterfillScheduler()


def _pollux(seed: int = 0):
    """Pollux (OSDI'21) re-implemented: online-fitted goodput models + genetic allocation search (randomised)."""
    from simulator.training.pollux import PolluxScheduler

    return PolluxScheduler(seed=seed)


def _goodput_las(seed: int = 0, las: LasSettings | None = None):
    """Pollux's online-fitted goodput models + least-attained-service weights in its objective (fixed weights;
    ``las`` overrides the frozen defaults, for tuning them on the training workloads and for comparisons)."""
    from simulator.training.goodput_las import GoodputLasScheduler

    return GoodputLasScheduler(las, seed=seed)


def _shared_goodput(seed: int = 0, shared: SharedSettings | None = None):
    """Pollux's search over throughput models that the jobs of each class learn together (online, from what
    they report); ``shared`` overrides the frozen defaults, for choosing them on the training workloads."""
    from simulator.training.shared_goodput import SharedGoodputScheduler

    return SharedGoodputScheduler(shared, seed=seed)


def _operator_pool(name: str):
    """The operator's own pool scheduler object (``learners.training_scheduler``), run over the simulated
    cluster through the job reporter the operator's metrics stand for (:mod:`simulator.training.operator_pool`)."""

    def make(seed: int = 0):
        from simulator.training.operator_pool import OperatorPoolScheduler

        return OperatorPoolScheduler(name, seed=seed)

    make.__doc__ = f"``{name}``: " + (_operator_pool.__doc__ or "")
    return make


OPERATOR_POOL_NAMES = ("pollux-pool", "pollux-pool-advised", "shared-goodput-pool", "shared-goodput-pool-advised")
"""Kept in step with :data:`simulator.training.operator_pool.OPERATOR_SCHEDULERS` (a test checks it)."""
TRAINING_SCHEDULERS = {"tiresias": _tiresias, "goodput-waterfill": _goodput_waterfill, "pollux": _pollux,
                       "goodput-las": _goodput_las, "shared-goodput": _shared_goodput,
                       **{n: _operator_pool(n) for n in OPERATOR_POOL_NAMES}}
"""Cluster schedulers for training workloads (not per-workload learners): factories taking the run's seed."""
SEEDED_SCHEDULERS = frozenset({"pollux", "goodput-las", "shared-goodput", *OPERATOR_POOL_NAMES})
"""Training schedulers whose decisions depend on the run's seed: Pollux's genetic allocation search draws
from ``np.random.default_rng(seed)`` (:class:`~simulator.training.pollux.PolluxScheduler`) and goodput-las
runs that same search. Tiresias and goodput-waterfill take the seed and draw nothing from it. A test checks
this set against the schedulers themselves (which of them hold a random generator)."""
RENAMED_SCHEDULERS = {"rl-arbiter": "goodput-waterfill"}
"""Old name -> new name: the old names are refused with a message naming the new one."""
PAPER_COUNTERPART = {"tiresias": "tiresias", "goodput-waterfill": "pollux", "pollux": "pollux",
                     "goodput-las": "pollux", "shared-goodput": "pollux",
                     **dict.fromkeys(OPERATOR_POOL_NAMES, "pollux")}
"""Which result of the Pollux paper's simulator a scheduler's ``avg_jct_vs_paper`` divides by: Tiresias by
the paper's Tiresias (fidelity), the elastic arbiter by the paper's Pollux (the target it competes with)."""


@dataclass(frozen=True)
class PolicyRun:
    label: str
    learner: str
    settings: dict[str, Any] = field(default_factory=dict)
    group: str = ""
    checkpoint: str | None = None
    share: bool = False
    """Services of one workload class share experience (:mod:`learners.sharing`)."""
    share_every_s: float = 300.0
    share_max_age_s: float = 600.0
    share_fraction: float = 1.0
    profiled: bool = False
    """Give a policy that plans from a latency profile (the ``forecast`` scaler's ``prefill_seconds``) each
    service's own, from the latency table that service is simulated with, as SageServe profiles every
    configuration offline; settings the run names win. Without it a scaler given no table estimates
    capacity online, which is a different (weaker) policy than the one the paper describes."""


PROFILE_PROMPTS = (128, 256, 512, 1024, 2048, 4096, 8192)
"""Prompt lengths of a latency profile (the rows the bundled scenarios write out by hand)."""


def latency_profile(learner: str, svc: _Service) -> dict[str, Any]:
    """The settings a profiled ``learner`` gets from ``svc``'s latency table ({} for one that takes none).

    A learner takes a profile when its settings have a ``prefill_seconds`` field (the ``forecast`` scaler's
    form); it then also gets the service's cold start where it has a ``cold_start_s`` setting. (Until
    session 15 this tested the name ``forecast``: a new planner with a profile would have got none.)"""
    spec = registered().get(learner)
    names = {f.name for f in dataclasses.fields(spec.settings)} if spec is not None else set()
    if "prefill_seconds" not in names:
        return {}
    tps = svc.space["gpus_per_replica"].values if "gpus_per_replica" in svc.space else ()
    out: dict[str, Any] = {"prefill_seconds": {f"{int(tp)}": svc.perf.prefill_profile(PROFILE_PROMPTS, int(tp))
                                               for tp in tps}}
    if "cold_start_s" in names:
        out["cold_start_s"] = float(svc.spec.get("cold_start_s", 60.0))
    return out


def duration_of(scenario: Scenario) -> float:
    """Simulated seconds one run covers (for inference; training runs until its jobs finish)."""
    if "duration_s" in scenario.raw:
        return float(scenario.raw["duration_s"])
    longest = 0.0
    for spec in scenario.inference:
        t = spec["trace"]
        if t["kind"] == "load-shape":
            longest = max(longest, float(t.get("duration_s", 3600.0)))
        else:
            longest = max(longest, float(_trace(scenario, spec, 0).duration_s))
    return longest or 8 * 3600.0


# ----------------------------------------------------------------------------------------- inference

def _perf(scenario: Scenario, spec: dict[str, Any]) -> PerfModel:
    table = spec.get("latency_table", "bundled")
    path = None if table == "bundled" else scenario.resolve(table)
    try:
        return PerfModel.load(spec.get("model", "llama2-70b"), spec.get("hardware", "a100-80gb"), path)
    except (ValueError, KeyError) as exc:
        raise ScenarioError(f"{scenario.path}: inference service {spec['name']}: latency table: {exc}") from None


_RECORDED: dict[tuple[Any, ...], Trace] = {}
"""Parsed recorded traces by (kind, file, its mtime and size, rate scale, duration): a report builds each
service many times (check, every policy, the hindsight search) and parsing a CSV is the slow part."""


def _recorded(kind: str, path: Path | None, scale: float, duration: Any) -> Trace:
    stat = path.stat() if path is not None else None
    key = (kind, str(path), stat and stat.st_mtime_ns, stat and stat.st_size, scale, duration)
    trace = _RECORDED.get(key)
    if trace is None:
        if len(_RECORDED) >= 8:
            _RECORDED.clear()
        trace = _RECORDED[key] = (tr.azure_code(rate_scale=scale, duration_s=duration) if path is None else
                                  tr.request_log(path, rate_scale=scale, duration_s=duration))
    return trace


def _trace(scenario: Scenario, spec: dict[str, Any], seed: int) -> Trace:
    t = spec["trace"]
    scale = float(t.get("rate_scale", 1.0))
    if t["kind"] == "azure-code":
        return _recorded("azure-code", None, scale, t.get("duration_s"))
    if t["kind"] == "request-log":
        return _recorded("request-log", scenario.resolve(t["path"]), scale, t.get("duration_s"))
    shape = t["shape"] if t["shape"] in tr.SHAPES else scenario.resolve(t["shape"])
    mean = mean_rate(t, seed)
    return tr.load_shape(shape, mean, float(t.get("duration_s", 3600.0)), seed=seed, rate_scale=scale,
                         sizes=tr.azure_code_half(t.get("sizes", "all")))


def mean_rate(trace: dict[str, Any], seed: int) -> float:
    """A load-shape trace's mean requests/s on ``seed``: ``mean_rate_per_s``, or with ``mean_rate_range``
    [low, high] a log-uniform draw from it, fixed by the seed (from a stream of its own, not the arrivals').
    Why: a policy trained at one level extrapolates at another; the
    diurnal evaluation day runs at 1.5x its training day's mean (docs/learned-autoscaler.md, session 25)."""
    if "mean_rate_range" not in trace:
        return float(trace.get("mean_rate_per_s", tr.azure_code().mean_rate_per_s))
    low, high = (float(v) for v in trace["mean_rate_range"])
    u = float(np.random.default_rng([seed, 0x1E7E1]).uniform())
    return low * (high / low) ** u


def _slo(spec: dict[str, Any]) -> SLO:
    s = spec["slo"]
    return SLO(ttft_s=s.get("ttft_seconds"), tbt_s=s.get("tbt_seconds"), e2e_s=s.get("e2e_seconds"),
               attainment=float(s["attainment"]))


def space_of(scenario: Scenario, spec: dict[str, Any], perf: PerfModel) -> ConfigSpace:
    """The service's knobs: replicas, the measured TP degrees the scenario allows, batch size."""
    knobs = spec["knobs"]
    init = spec.get("initial", {})
    r = knobs["replicas"]
    tps = tuple(float(t) for t in perf.tp_degrees)
    wanted = knobs.get("gpus_per_replica")
    if wanted is not None:
        unknown = sorted(set(map(float, wanted)) - set(tps))
        if unknown:
            raise ScenarioError(f"{scenario.path}: inference service {spec['name']}: knobs.gpus_per_replica: "
                                f"{unknown} not measured in the latency table (measured: {list(tps)})")
        tps = tuple(float(t) for t in wanted)
    measured = min(perf.max_measured_batch(int(t)) for t in tps)
    b = knobs.get("max_batch_size", {"min": measured, "max": measured})
    upper = min(float(b["max"]), float(measured))
    out = [Knob("replicas", r["min"], r["max"], r.get("step", 1), default=init.get("replicas", r["min"])),
           Knob("gpus_per_replica", choices=tps, restarts=True,
                default=init.get("gpus_per_replica", max(tps))),
           Knob("max_batch_size", min(float(b["min"]), upper), upper, b.get("step", 1), restarts=True,
                default=min(init.get("max_batch_size", upper), upper))]
    return ConfigSpace(tuple(out))


def objective_of(spec: dict[str, Any], space: ConfigSpace, interval_s: float) -> Objective:
    slo = spec["slo"]
    targets = [(f"{k.removesuffix('_seconds')}_p99_seconds", float(v))
               for k, v in slo.items() if k.endswith("_seconds")]
    (metric, target), also = targets[0], dict(targets[1:])
    base = Objective(metric=metric, target=target, attainment=float(slo["attainment"]), also=also)
    top = {k.name: k.upper for k in space.knobs}
    return base.scaled_to(base.cost_per_hour(top), interval_s)


@dataclass
class _Service:
    spec: dict[str, Any]
    perf: PerfModel
    trace: Trace
    space: ConfigSpace
    objective: Objective
    service: InferenceService | None = None
    loop: ControlLoop | None = None


def _build_service(scenario: Scenario, spec: dict[str, Any], seed: int) -> _Service:
    perf = _perf(scenario, spec)
    space = space_of(scenario, spec, perf)
    return _Service(spec, perf, _trace(scenario, spec, seed), space,
                    objective_of(spec, space, scenario.control_interval_s))


def service_settings(spec: dict[str, Any], space: ConfigSpace, learner_name: str,
                     interference_slowdown: float = 0.0) -> ServiceSettings:
    """The simulated Deployment of one scenario service, starting at the space's default configuration.
    KPA scales on concurrency, so its per-pod samples are concurrency; everyone else sees GPU busy time."""
    return ServiceSettings(name=spec["name"], namespace=spec.get("namespace", "default"),
                           model=spec.get("model", "llama2-70b"), initial=space.default(),
                           cold_start_s=float(spec.get("cold_start_s", 60.0)), slo=_slo(spec),
                           replica_metric="concurrency" if learner_name == "kpa" else "gpu_utilization",
                           interference_slowdown=interference_slowdown)


def build_services(scenario: Scenario) -> list[_Service]:
    """Every inference service of the scenario at its own seed, built once."""
    return [_build_service(scenario, spec, scenario.seed) for spec in scenario.inference]


def _checkpoint(scenario: Scenario, prun: PolicyRun, svc: _Service) -> Any:
    """The policy's checkpoint, decoded and checked against its learner and this service's knobs."""
    from controller.checkpoint import CheckpointError, decode

    path = scenario.resolve(prun.checkpoint)
    try:
        return decode(path.read_bytes(), prun.learner, svc.space)
    except FileNotFoundError:
        raise ScenarioError(f"{scenario.path}: policy {prun.label}: checkpoint {path} does not exist "
                            "(make one with autocm train)") from None
    except CheckpointError as exc:
        raise ScenarioError(f"{scenario.path}: policy {prun.label}: checkpoint {path}: {exc}") from None


def _learner(scenario: Scenario, prun: PolicyRun, svc: _Service):
    from controller.policy import check_learner_settings

    ckpt = _checkpoint(scenario, prun, svc) if prun.checkpoint else None
    # A checkpoint runs with the settings its provenance records (what it was trained and chosen with), as
    # the operator and `autocm bench inference --pretrained` run it; the scenario's own settings win.
    recorded = ckpt.recorded_settings if ckpt is not None else {}
    try:
        settings = {**latency_profile(prun.learner, svc), **prun.settings} if prun.profiled else dict(prun.settings)
        if recorded:
            settings = {**check_learner_settings(prun.learner, recorded,
                                                 f"checkpoint {prun.checkpoint}: provenance.settings"), **settings}
        check_learner_settings(prun.learner, settings, "settings")
        learner = create(prun.learner, svc.space, svc.objective, settings)
    except (TypeError, ValueError) as exc:
        raise ScenarioError(f"{scenario.path}: policy {prun.label}: {exc}") from None
    except (RuntimeError, ArithmeticError) as exc:  # a setting the type check let through broke the learner
        raise ScenarioError(f"{scenario.path}: policy {prun.label}: its settings {dict(prun.settings)} could "
                            f"not build the learner ({exc})") from None
    if ckpt is not None:
        try:
            learner.load_state_dict(ckpt.state)
        except ValueError as exc:
            raise ScenarioError(f"{scenario.path}: policy {prun.label}: checkpoint "
                                f"{scenario.resolve(prun.checkpoint)}: {exc}") from None
    return learner


def check(scenario: Scenario, prun: PolicyRun, services: Sequence[_Service] | None = None) -> None:
    """Raise ScenarioError if the policy cannot run on this scenario (``services``: prebuilt, to check
    many policies without reloading each service's latency table and trace)."""
    if prun.learner == ORACLE:
        if not scenario.inference:
            raise ScenarioError(f"{scenario.path}: policy {prun.label}: the oracle needs an inference service")
        return
    if prun.learner in RENAMED_SCHEDULERS:
        raise ScenarioError(f"{scenario.path}: policy {prun.label}: the training scheduler {prun.learner!r} was "
                            f"renamed {RENAMED_SCHEDULERS[prun.learner]!r} (it is a greedy heuristic; nothing in it "
                            "learns); use the new name")
    if prun.learner in TRAINING_SCHEDULERS:
        if not scenario.training:
            raise ScenarioError(f"{scenario.path}: policy {prun.label}: {prun.learner} schedules training jobs, "
                                "and this scenario has none")
        return
    known = registered()
    if prun.learner not in known:
        raise ScenarioError(f"{scenario.path}: policy {prun.label}: unknown learner {prun.learner!r}; known: "
                            f"{', '.join([*known, ORACLE, *TRAINING_SCHEDULERS])}")
    from controller.policy import check_learner_settings

    try:
        check_learner_settings(prun.learner, prun.settings, "settings")
        parse_settings(known[prun.learner], prun.settings)
    except (TypeError, ValueError) as exc:
        raise ScenarioError(f"{scenario.path}: policy {prun.label}: {exc}") from None
    for svc in services if services is not None else build_services(scenario):
        _learner(scenario, prun, svc)


def _share_member(board: ShareBoard, spec: dict[str, Any], svc: _Service, learner: Any,
                  prun: PolicyRun) -> ShareMember:
    """A service's membership: its class is its namespace, model/hardware, learner and knob space."""
    if not can_share(learner):
        raise ScenarioError(f"policy {prun.label}: learner {prun.learner!r} cannot share experience (share: true)")
    identity = f"{spec.get('model', '')}/{spec.get('hardware', '')}"
    key = class_key("class", str(spec.get("namespace", "default")), prun.learner, svc.space, identity)
    return ShareMember(board, key, spec["name"], learner, prun.share_every_s, prun.share_fraction)


def _drive(env: simpy.Environment, loop: ControlLoop, period: float):
    """Step ``loop`` every ``period`` simulated seconds and, when its learner has a fast timescale
    (:func:`controller.loop.fast_period_s`), fast-step it in between."""
    fast = fast_period_s(loop.learner, period)
    per = round(period / fast) if fast else 1
    k = 0
    while True:
        yield env.timeout(period / per)
        k += 1
        if k % per == 0:
            loop.step(env.now)
        else:
            loop.fast_step(env.now)


def _ticker(env: simpy.Environment, tick: Callable[[float], None], step: float):
    while True:
        yield env.timeout(step)
        tick(step)


def _pool(scenario: Scenario) -> GpuPool:
    """The scenario's GPU pool; ``cluster.node_choice: most-free`` spreads like the Pollux artifact (the
    paper-reproducing scenarios set it), the default ``pack`` fills the fullest node first like Kubernetes."""
    c = scenario.raw["cluster"]
    cls = GpuPool
    if c.get("node_choice", "pack") == "most-free":
        from simulator.training.artifact_pool import MostFreeFirstPool

        cls = MostFreeFirstPool
    return cls.uniform(int(c["nodes"]), int(c["gpus_per_node"]), c.get("gpu_type", "a100-80gb"))


def _rate_series(trace: Trace, step: float = 60.0) -> list[tuple[float, float]]:
    if not len(trace):
        return []
    edges = np.arange(0.0, float(trace.arrival_s[-1]) + step, step)
    counts, _ = np.histogram(trace.arrival_s, bins=edges)
    return [(float(t), float(c) / step) for t, c in zip(edges[:-1], counts, strict=True)]


def simulate(scenario: Scenario, prun: PolicyRun, seed: int, recorder: Recorder | None = None,
             tick: Callable[[float], None] | None = None) -> RunResult:
    """One policy on one seed. The oracle is computed, not simulated (see :func:`oracle_row`)."""
    if prun.learner == ORACLE:
        return oracle_row(scenario, prun, seed)
    env = simpy.Environment()
    pool = _pool(scenario)
    duration = duration_of(scenario)
    defaults, fail = FaultSettings(), scenario.raw.get("failures", {})
    interference = scenario.raw.get("interference", {})
    slowdown = float(interference.get("slowdown_per_neighbour", defaults.slowdown_per_neighbour)) \
        if interference.get("enabled") else 0.0
    failed_nodes: list[str] = []
    fault_streams: list[np.random.Generator] = []  # one per simulated pool, seeded in creation order

    def start_failures(run_env: simpy.Environment, run_pool: GpuPool) -> list[FailureListener] | None:
        """Fail and repair the nodes of ``run_pool``; returns the listener list to register with."""
        if not fail.get("enabled"):
            return None
        listeners: list[FailureListener] = [lambda node, lost: failed_nodes.append(node)]
        fault_streams.append(np.random.default_rng([seed, 0xFA, len(fault_streams)]))
        run_env.process(node_failures(run_env, run_pool, fault_streams[-1],
                                      3600.0 * float(fail.get("node_mtbf_hours", defaults.node_mtbf_hours)),
                                      float(fail.get("repair_s", defaults.repair_s)), listeners))
        return listeners

    listeners = start_failures(env, pool)
    inference_policy = None if prun.learner in TRAINING_SCHEDULERS else prun
    services: list[_Service] = []
    board = ShareBoard(inference_policy.share_max_age_s) if inference_policy and inference_policy.share else None
    for spec in scenario.inference:
        svc = _build_service(scenario, spec, seed)
        use = inference_policy or PolicyRun("static", "static")
        learner = _learner(scenario, use, svc)
        settings = service_settings(spec, svc.space, use.learner, slowdown)
        svc.service = InferenceService(env, pool, svc.perf, svc.trace, settings, seed, recorder)
        if listeners is not None:
            listeners.append(svc.service.node_failed)
        svc.loop = ControlLoop(spec["name"], learner, svc.objective, svc.space, svc.service, svc.service)
        if board is not None and inference_policy is not None:
            svc.loop.sharing = _share_member(board, spec, svc, learner, inference_policy)
        period = float(getattr(learner, "period_s", scenario.control_interval_s))
        env.process(_drive(env, svc.loop, period))
        services.append(svc)
    if tick is not None:
        env.process(_ticker(env, tick, scenario.control_interval_s))
    metrics: dict[str, float] = {}
    series: dict[str, list[tuple[float, float]]] = {}
    notes: list[str] = []
    meets: bool | None = None
    training = scenario.training
    grace: float | None = None  # no drain where training shares the cluster: the run ends with its duration
    if training:
        metrics, series = _run_training(scenario, prun, env, pool, recorder, seed, duration if services else None,
                                        slowdown, listeners, start_failures)
    else:
        env.run(until=duration)
        if services:
            grace = drain_grace_s(scenario)
            _drain(env, services, duration + grace)
    if services:
        c = scenario.raw["cluster"]
        sums = [svc.service.summary() for svc in services]  # type: ignore[union-attr]
        m, s, meets = _inference_metrics(services, sums, env.now, int(c["nodes"]) * int(c["gpus_per_node"]))
        metrics.update(m)
        series.update(s)
        notes.extend(_inference_notes(prun, services, sums, m, grace))
        metrics["replica_failures"] = float(sum(svc.service.replica_failures for svc in services))
    if fail.get("enabled"):
        metrics["node_failures"] = float(len(failed_nodes))
    return RunResult(prun.label, prun.learner, dict(prun.settings), seed, metrics, meets, series, notes=notes)


DRAIN_GRACE_S = 600.0
"""After the last arrival, the run goes on until every request has finished or this many simulated
seconds have passed (scenario key ``drain_grace_s``); what is still unfinished then is reported apart
(``requests_unfinished``) and counts as missing the SLO."""


def drain_grace_s(scenario: Scenario) -> float:
    """The scenario's drain grace period in seconds (checked by the scenario schema: 0 to a day)."""
    return float(scenario.raw.get("drain_grace_s", DRAIN_GRACE_S))


def _drain(env: simpy.Environment, services: Sequence[_Service], deadline: float, step_s: float = 5.0) -> None:
    """Let the requests that arrived finish (the control loops keep running), up to ``deadline``."""
    def busy() -> bool:
        return any(svc.service.queue or svc.service.in_service() for svc in services)  # type: ignore[union-attr]

    # the arrivals at exactly the end are still to be processed: one step first
    env.run(until=min(env.now + 1e-6, deadline))
    while busy() and env.now < deadline:
        env.run(until=min(env.now + step_s, deadline))


def _at_wall(config: dict[str, float], top: float, cluster_gpus: int) -> bool:
    """Whether a target asks for the maximum: the replicas knob's upper bound or every GPU of the cluster."""
    return config["replicas"] >= top or config["replicas"] * config["gpus_per_replica"] >= cluster_gpus


def _time_at_wall(service: InferenceService, top: float, cluster_gpus: int, now_s: float) -> float:
    """The fraction of the run (time-weighted, drain included) during which the service's target was at the
    maximum. What was asked at the very end says little: one final burst can push every setting of a sweep
    there, however differently they ran until then."""
    if now_s <= 0:
        return 0.0
    changes = [(0.0, service.initial_target), *((t, cfg) for t, _, cfg in service.events)]
    ends = [t for t, _ in changes[1:]] + [now_s]
    return sum(end - t for (t, cfg), end in zip(changes, ends, strict=True)
               if _at_wall(cfg, top, cluster_gpus)) / now_s


def _inference_metrics(services: Sequence[_Service], sums: Sequence[dict[str, Any]], now_s: float,
                       cluster_gpus: int) -> tuple[dict[str, float], dict[str, list], bool]:
    arrived = sum(s["requests_arrived"] for s in sums)
    met = sum(s["slo_attainment"] * s["requests_arrived"] for s in sums)
    hours = max(now_s, 1e-9) / 3600.0
    gpu_hours = sum(s["gpu_hours"] for s in sums)
    at_wall, time_at_wall = 0.0, 0.0
    for svc in services:
        top = next(k for k in svc.space.knobs if k.name == "replicas").upper
        if _at_wall(svc.service.config, top, cluster_gpus):  # type: ignore[union-attr]
            at_wall = 1.0
        time_at_wall = max(time_at_wall, _time_at_wall(svc.service, top, cluster_gpus, now_s))  # type: ignore[arg-type]
    metrics = {
        "slo_attainment": met / arrived if arrived else 1.0,
        "gpu_hours": gpu_hours,
        "gpus_held_mean": gpu_hours / hours,
        "pending_pods_mean": sum(s["pending_pod_hours"] for s in sums) / hours,
        "ended_at_max": at_wall,
        "time_at_max": time_at_wall,
        "ttft_p50_seconds": max(s["ttft_p50_s"] for s in sums),
        "ttft_p99_seconds": max(s["ttft_p99_s"] for s in sums),
        "tbt_p50_seconds": max(s["tbt_p50_s"] for s in sums),
        "tbt_p99_seconds": max(s["tbt_p99_s"] for s in sums),
        "e2e_p50_seconds": max(s["e2e_p50_s"] for s in sums),
        "e2e_p99_seconds": max(s["e2e_p99_s"] for s in sums),
        "changes": float(sum(s["config_changes"] for s in sums)),
        "requests": float(arrived),
        "requests_completed": float(sum(s["requests_completed"] for s in sums)),
        "requests_rejected": float(sum(s["requests_rejected"] for s in sums)),
        "requests_unfinished": float(sum(s["requests_in_service"] + s["requests_queued"] for s in sums)),
    }
    meets = all(s["slo_attainment"] >= svc.objective.attainment for s, svc in zip(sums, services, strict=True))
    first = sums[0]["series"]
    t = first["time_s"]
    series = {
        "gpus": list(zip(t, np.sum([s["series"]["gpus_held"] for s in sums], axis=0).tolist(), strict=True)),
        "ttft_p99_seconds": list(zip(t, first["ttft_p99_s"], strict=True)),
        "request_rate_per_second": _rate_series(services[0].trace),
    }
    return metrics, series, meets


def _ran_as(ready_hours: dict[tuple[int, int], float], hours: float) -> str:
    """Time-weighted ready replicas by (TP, batch): "7.9 x TP8 (batch 16)" or several joined by "+"."""
    parts = [f"{h / hours:.1f} x TP{tp} (batch {b})" for (tp, b), h in
             sorted(ready_hours.items(), key=lambda kv: -kv[1]) if h / hours >= 0.05]
    return " + ".join(parts) or "no ready replica"


def _inference_notes(prun: PolicyRun, services: Sequence[_Service], sums: Sequence[dict[str, Any]],
                     metrics: dict[str, float], grace_s: float | None) -> list[str]:
    """Warnings a reader of the table must see: configurations that never ran, extrapolated latencies, requests
    left unfinished (``grace_s``: the drain grace period the run had after the trace ended, None: no drain)."""
    notes = []
    for svc, summ in zip(services, sums, strict=True):
        hours = max(svc.service.env.now, 1e-9) / 3600.0  # type: ignore[union-attr]
        pending = summ["pending_pod_hours"] / hours
        if pending >= 0.5:
            want = summ["target"]
            notes.append(f"{prun.label}: {svc.spec['name']}: on average {pending:.1f} pods were Pending (no room "
                         f"in the cluster), so what it asked for (at the end: {want['replicas']:.0f} x TP"
                         f"{want['gpus_per_replica']:.0f}, batch {want['max_batch_size']:.0f}) did not all run; "
                         f"time-weighted it ran as {_ran_as(summ['ready_replica_hours_by_template'], hours)}.")
        # the same words for every policy (the kinds, not the per-run counts), so the report says it once
        kinds = [w.rsplit(":", 1)[0] for w in summ["coverage_warnings"] if not w.startswith("excluded point")]
        if kinds:
            notes.append(f"{svc.spec['name']}: some latencies lie outside the measured latency table and were "
                         f"extrapolated ({'; '.join(kinds)}); see docs/inference-model.md.")
    if metrics.get("requests_unfinished"):
        when = (f"the drain grace period (drain_grace_s: {grace_s:g} s after the trace ended) ran out"
                if grace_s is not None else "the run ended (no drain: training jobs share the cluster)")
        notes.append(f"{prun.label}: {metrics['requests_unfinished']:.0f} requests were still unfinished when "
                     f"{when}; they count as SLO misses.")
    return notes


# ----------------------------------------------------------------------------------------- training

def _paper_load(ref: str) -> float | None:
    if not ref.startswith("pollux-"):
        return None
    try:
        return float(ref.removeprefix("pollux-").split("/")[0])
    except ValueError:
        return None


def training_scheduler(scenario: Scenario, learner: str) -> str:
    """The cluster scheduler a policy's run uses for the scenario's training jobs: the policy itself when it
    is a training scheduler, else the scenario's ``training.scheduler`` (Tiresias by default)."""
    if learner in TRAINING_SCHEDULERS:
        return learner
    return str((scenario.training or {}).get("scheduler", "tiresias"))


def class_model_checks(scheduler: object) -> list[bool]:
    """Whether each class throughput model of ``scheduler`` (shared-goodput's ``estimates``) passes its
    out-of-sample convergence check (:meth:`SharedThroughput.checks`); empty for schedulers without class
    models."""
    from learners.shared_throughput import SharedThroughput

    estimates = getattr(scheduler, "estimates", None)
    return estimates.checks() if isinstance(estimates, SharedThroughput) else []


def _run_training(scenario: Scenario, prun: PolicyRun, env: simpy.Environment, pool: GpuPool,
                  recorder: Recorder | None, seed: int, until: float | None, slowdown: float = 0.0,
                  listeners: list[FailureListener] | None = None,
                  start_failures: Callable[[simpy.Environment, GpuPool], list[FailureListener] | None] | None = None,
                  ) -> tuple[dict, dict]:
    from simulator.training import TrainingSettings, simulate_training

    t = scenario.training or {}
    name = training_scheduler(scenario, prun.learner)
    if name in RENAMED_SCHEDULERS:
        raise ScenarioError(f"{scenario.path}: training.scheduler: {name!r} was renamed "
                            f"{RENAMED_SCHEDULERS[name]!r}; use the new name")
    if name not in TRAINING_SCHEDULERS:
        raise ScenarioError(f"{scenario.path}: training.scheduler: unknown scheduler {name!r}; "
                            f"known: {sorted(TRAINING_SCHEDULERS)}")
    paths = training_workload_paths(t["workload"], scenario.path)
    avgs, makespans, gpu_hours, jcts, done, unfinished, failures = [], [], 0.0, [], 0, 0, 0
    class_checks: list[bool] = []  # per (workload, class model): did its convergence check pass at the end
    for i, path in enumerate(paths):
        # the first workload shares the environment (and GPU pool) with any inference services
        run_env, run_pool = (env, pool) if i == 0 else (simpy.Environment(), _pool(scenario))
        run_listeners = listeners if i == 0 or start_failures is None else start_failures(run_env, run_pool)
        scheduler = TRAINING_SCHEDULERS[name](seed=seed)
        res = simulate_training(path, scheduler, run_pool, run_env,
                                recorder if i == 0 else None, seed, until=until,
                                settings=TrainingSettings(interference_slowdown=slowdown),
                                failure_listeners=run_listeners)
        class_checks += class_model_checks(scheduler)
        failures += res.failures
        avgs.append(res.avg_jct_s)
        makespans.append(res.makespan_s)
        gpu_hours += res.gpu_hours
        jcts.extend((float(k), v) for k, v in enumerate(res.jcts_s.values()))
        done += len(res.jcts_s)
        unfinished += len(res.unfinished)
    metrics = {"avg_jct_s": float(np.mean(avgs)), "makespan_s": float(np.mean(makespans)),
               "jobs_completed": float(done), "jobs_unfinished": float(unfinished),
               "training_gpu_hours": gpu_hours}
    if listeners is not None:
        metrics["job_failures"] = float(failures)
    if class_checks:
        metrics["class_models_converged"] = float(np.mean(class_checks))
    load = _paper_load(t["workload"])
    counterpart = PAPER_COUNTERPART.get(name, name)
    paper = DATA_DIR / "pollux" / "results" / f"{counterpart}-{load:.1f}.json" if load else None
    if paper is not None and paper.exists() and "/" not in t["workload"]:
        import json

        metrics["avg_jct_vs_paper"] = metrics["avg_jct_s"] / float(json.loads(paper.read_text())["mean"])
    return metrics, {"jct_s": jcts}


# ----------------------------------------------------------------------------------------- oracle

def oracle_row(scenario: Scenario, prun: PolicyRun, seed: int) -> RunResult:
    """The hindsight lower bound on GPU-hours for meeting every service's SLO (see docs/inference-model.md);
    an infeasible SLO gives a row that says so and no bound (simulator/inference/oracle_replay.py)."""
    from simulator.inference.oracle_replay import oracle_run

    return oracle_run(scenario, prun.label, seed)


def add_oracle_ratios(runs: Sequence[RunResult]) -> None:
    """Set ``gpu_hours_vs_oracle`` on every run that has an oracle row of the same seed."""
    oracle = {r.seed: r.metrics["gpu_hours"] for r in runs if r.learner == ORACLE}
    for r in runs:
        lb = oracle.get(r.seed)
        if lb and "gpu_hours" in r.metrics and math.isfinite(lb):
            r.metrics["gpu_hours_vs_oracle"] = r.metrics["gpu_hours"] / lb


__all__ = ["HINDSIGHT", "ORACLE", "PolicyRun", "add_oracle_ratios", "check", "duration_of", "simulate", "space_of"]
