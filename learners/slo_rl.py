"""``slo-rl``: a model-based, SLO-constrained Bayesian autoscaler for LLM inference.

The policy each interval picks the *cheapest* configuration (replicas, GPUs per replica, batch size)
whose predicted probability of a tail-latency miss, at an upper quantile of the demand forecast for
the next cold-start window, stays under a risk bound. Three learned models and one dual variable:

- **demand** (:mod:`learners.demand_forecast`): a Bayesian AR forecast of the request rate with its
  uncertainty, planned for ``horizon = 1 + cold start / interval`` intervals ahead, because a replica
  added now serves only after its cold start (the cold start itself is read off replica ages);
- **capacity** (:mod:`learners.slo_capacity`): P(tail above the SLO target | load per ready GPU, TP
  degree, batch size, burst ratio), a Bayesian logistic model updated from every interval, so unseen
  loads or TP degrees read as uncertain and are avoided until evidence says they are safe;
- **violation alarm** (:class:`learners.predict.ViolationForecaster`): P(a violation in the next 3
  intervals) from trends in TTFT, queue, utilisation, KV usage and readiness; an alarm plans extra
  headroom and blocks scale-down (a predicted violation is a reason to act early);
- **the SLO as a constraint** (primal-dual): the risk bound is ``risk * exp(-price)`` and the demand
  quantile rises with the price, where the price (the dual variable of the attainment constraint)
  climbs while interval attainment runs below an aim just above the target and falls back to zero
  while it runs above. The SLO is not traded against GPUs: a miss makes the policy stricter until
  attainment recovers.

Each interval: a scale-up happens at once when the plan asks for it and drains a queue (queued requests
are load of the next interval); replicas are removed only down to the most the plan asked for over
``down_window`` intervals, when none is cold-starting and the last scale-up is ``up_hold`` intervals old;
TP degree or batch size (a restart of every pod) change only when another template saves ``switch_gain``
of the GPUs for ``switch_hold`` intervals in a row. Which template looks cheaper is judged by Thompson
sampling (one draw of the capacity weights per interval), so a template the learner knows little about
is tried when it is plausibly better, and is then sized by the cautious posterior predictive until
evidence arrives.

An optional second timescale under the interval, the fast guard (``fast_period_s``; a rule, it learns
nothing), looks at the last seconds between two intervals and adds replicas at once when a backlog would
wait too long (see ``SloRlSettings.fast_period_s``).

Decisions are one vectorised posterior-predictive evaluation over every configuration (microseconds);
all learning happens in ``learn`` (one small Newton solve per batch of intervals), off ``decide``.
The learner reads only the Observation; it never sees the trace or the simulator's state.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from learners.base import register
from learners.demand_forecast import DemandForecaster, ForecastSettings
from learners.objective import Objective
from learners.predict import ViolationForecaster
from learners.slo_capacity import CapacityModel, CapacitySettings
from learners.space import Config, ConfigSpace
from learners.state_checks import finite_number, gaussian, number_or_nan
from learners.types import Action, Convergence, Observation, Verdict

LOAD_REF = math.log(0.25)
"""Log load per GPU the features are centred on (requests/s per GPU of a 70B model is O(0.1-1))."""


@dataclass(frozen=True)
class SloRlSettings:
    risk: float = 0.2
    """Allowed predicted P(tail above target) for the planned interval at zero price (with the
    capacity model's soft label, 0.2 plans for a tail of about 0.7x the target)."""
    risk_max: float = 0.9
    """The risk bound never exceeds this, however low the price. With ``dual_min`` at 0 the price never goes
    below 0, so only ``risk`` itself could pass it; ``risk`` above it is refused rather than clamped (until
    2026-12-06 the default was 0.4 and a ``risk`` of 0.6 silently ran as 0.4). On knob-batch, chosen on 20
    validation seeds, risk 0.6 held the SLO for 32.5 GPU-h against 35.0 at 0.4 (docs/evaluation.md)."""
    dual_step: float = 0.1
    """Price increase per interval and per miss budget of attainment below the aim (an interval at
    0.9 against a 0.99 SLO adds about 0.95), at most ``10 * dual_step`` per interval: one disastrous
    interval must not freeze the policy at its most expensive for an hour."""
    dual_step_down: float = 0.2
    """Price decrease per interval and per miss budget of attainment above the aim (0.1 for an
    interval that meets the SLO with every request, against a 0.99 SLO)."""
    dual_aim: float = 0.5
    """The dual aims at the SLO plus this share of the miss budget (0.995 for a 0.99 SLO), so that
    attainment averaged over a run lands above the target, not on it."""
    dual_window: int = 1
    """Intervals of (request-weighted) attainment the dual step compares with the aim (1: each
    interval alone). A window makes a miss keep the price up until the window is clean again."""
    dual_min: float = 0.0
    """Floor of the price. Below 0 the policy would relax its margin while the SLO holds comfortably;
    on the diurnal training day that cost misses (attainment 0.975-0.990 on two seeds), so off."""
    dual_max: float = 20.0
    forecast_z: float = 1.0
    """Demand quantile planned for at zero price (one-sided normal z in log space: about the 84th)."""
    forecast_z_per_price: float = 0.25
    """Extra z per unit of price (capped at 8 units): misses make the plan more pessimistic."""
    down_window: int = 5
    """Scale-down stabilisation: replicas are removed only down to the largest count the plan asked
    for over the last few intervals, at most this many (as HPA's 300 s window at 60 s intervals), so
    one quiet minute between bursts does not release the capacity the next burst needs. The window
    used scales with how unpredictable demand has been (the forecaster's one-step error): the full
    window when the log rate's error is ``noisy_sd`` or more, 2 intervals when demand is smooth."""
    noisy_sd: float = 0.5
    down_risk: float = 1.0
    """Scale-down hysteresis in risk: the size the scale-down window remembers is planned at the risk bound
    times this (1: the same bound as scale-up, as before). Below 1, a smaller size must look safer than a
    scale-up needs before replicas are removed, so a posterior grown optimistic while the SLO held does not
    step down at the peak (the operator e2e test's 3 -> 2 at ~7 requests/s at price 0)."""
    down_evidence: float = 0.0
    """Scale-down trust region (0: off). Above 0, a scale-down to ``n`` replicas of a template must plan at
    most this many times the highest load per GPU at which the template has met the SLO with ``n`` or fewer
    ready replicas (:meth:`SloRl.evidenced`); with no such evidence yet, the posterior alone decides, so the
    learner still explores smaller sizes. Why: the capacity model is logistic in load *per GPU*, so evidence
    from 3 replicas at 0.3 requests/s per GPU reads as room for 2 replicas at 0.4, but per-replica capacity
    at a tail target grows with the number of replicas (queueing: fewer servers multiplex worse); in the
    operator e2e test slo-rl stepped 3 -> 2 x TP 8 at ~6.5 requests/s on the ramp down, where 2 had met the
    SLO only up to ~5.5 on the ramp up, and the queue that built cost it 1.06-1.31x HPA's replica-minutes.
    Evidence at fewer replicas carries over to more (more servers multiplex better), never the reverse. The
    evidence is each workload's own: it is kept in checkpoints and merged in parallel training, but does not
    cross between the workloads of a sharing class (only capacity rows do, :mod:`learners.sharing`)."""
    up_hold: int = 3
    """Intervals after a scale-up during which nothing is removed (its replicas are still warming)."""
    switch_gain: float = 0.15
    """A TP-degree or batch-size change (restarts every pod) must save at least this share of GPUs."""
    switch_hold: int = 3
    """Intervals in a row another template must be the cheaper plan before switching to it. The count is
    per TP degree: draws that favour the same degree at alternating batch sizes keep counting (the
    switch goes to the last draw's batch size)."""
    switch_mean: bool = False
    """A template switch also needs the posterior predictive (not only the draw) to plan the new template at
    no more GPUs than the current one. Why: the draw is Thompson sampling, exploration that pays while
    training and costs when deployed. On diurnal evaluation day 1 a draw switched from 3 x TP 4 to 3 x TP 8
    where the predictive planned 24 GPUs against 12, and it ran 24 for 43 intervals (about 8.6 GPU-h of the
    day's 64.8). A deployment-only setting: ``scripts/choose_deployed.py`` decides it on the training days.
    False (as before): the draw alone decides."""
    switch_after: int = 10
    """Intervals the learner runs before its first template switch: a switch is a bet that another
    template is cheaper, and before it has seen the current one under load, a posterior draw is
    mostly the prior (from scratch on the code trace's hour it switched at interval 2, to a batch size
    it knew nothing about, and lost the SLO in the next burst on 2 of 3 draws)."""
    alarm: float = 0.6
    """Violation-forecaster probability that raises an alarm."""
    alarm_margin: float = 0.25
    """Extra planned load while an alarm is up."""
    burst_prior: float = 1.0
    """Prior mean of the weight on the log burst ratio (peak 10 s rate over the interval's mean): a
    burstier interval has a higher tail at the same mean load (queueing theory says so before data)."""
    batch_prior: float = -1.0
    """Prior mean of the weight on the batch-size position (0 at the largest batch, -1 at the smallest):
    a smaller batch limit admits fewer requests per replica, so more queue, so a higher tail (+1 logit
    at the smallest). Without it, trying every batch size costs a restart and an hour of GPUs each."""
    batch_levels: bool = False
    """Give each batch size its own weight in the capacity model (one column per batch size but the largest,
    like the TP degrees), with the ``batch_prior`` line as its prior mean, instead of one weight on the batch
    position. Why: the position's single weight makes the tail monotone in batch size, and knob-batch's is
    not (a small batch queues, the largest breaks the TBT target), so the learner could only ever prefer the
    smallest or the largest batch; slo-rl ran TP 4 at batch 16 where the hindsight schedule runs batch 32."""
    update_every: int = 1
    """Intervals per posterior update of the capacity model (batched learning)."""
    cold_start_s: float = 60.0
    """Initial guess of the cold start; the learner raises it to the oldest unready replica it sees."""
    capacity_forgetting: float = 0.9995
    """Per-interval forgetting factor of the capacity posterior (see :mod:`learners.slo_capacity`):
    it holds about ``1 / (1 - f)`` intervals of evidence, so it re-adapts when the service changes
    (a slower model version, another prompt mix). 1.0 is the old never-forgetting posterior."""
    capacity_sharpness: float = 4.0
    """``k`` of the capacity model's soft label ``sigmoid(k log(tail / target))`` (see
    :class:`learners.slo_capacity.CapacitySettings`). A larger ``k`` is closer to a met/missed label: fewer
    comfortable intervals read as partly near capacity, so the fitted weight on load is steeper. A training
    setting: the posterior a checkpoint holds was fitted with its own ``k``."""
    tail_floor: bool = False
    """Label each interval by the tail's excess over its template's floor: ``sigmoid(k log((tail - f) /
    (target - f)))`` with ``f`` the template's lowest tail seen (see ``floor_*``), instead of
    ``sigmoid(k log(tail / target))``. The tail at no load (the prefill of the longest prompts) does not
    shrink with GPUs; with a tight target it alone sat at the risk bound (2 s TTFT, TP 8: p99 1.37 s at
    any size, label 0.18 against a bound of 0.2), so the model read every interval as near-capacity and
    held the whole pool. The margin then applies to the part of the tail that capacity controls."""
    floor_intervals: int = 10
    """Intervals with enough requests a template must have run before its floor is used."""
    floor_min_requests: float = 20.0
    """An interval's tail counts toward the floor, and as evidence for ``down_evidence``, only with at least
    this many requests (a p99 of a few requests is one short prompt's latency, not the template's floor)."""
    worst_tail_label: bool = False
    """Label each interval by the worst of the SLO's latency targets (``Objective.targets``: the TTFT tail
    against its target and the TBT tail against its own, each over its template's floor), not the headline
    target alone. Why: with a 10 s TTFT and a 65 ms TBT target (knob-batch), the TBT tail binds at large
    batch sizes while the TTFT tail sits far under its target, so the headline label read every such
    interval as idle and only a failed interval (label 0.75) told the model it was near capacity; it kept
    batch 16 where the hindsight schedule runs batch 32. With one target this changes nothing. Measured on
    knob-batch (20 validation seeds, 2026-12-06): no gain. At risk 0.2-0.7 it cost -1.5% to +14% more GPUs
    (worse at 5 of 6 risks); it picked batch 64 where the headline label picks 16, at the same replica count,
    because the tail that misses there is TBT under bursts, which both labels see as failed intervals."""
    hopeless_intervals: int = 3
    """Intervals with enough requests whose tails all stayed over the target before a template counts as
    hopeless (:meth:`SloRl.hopeless`)."""
    floor_cap: float = 0.75
    """The floor used is at most this share of the target, so a template seen only under load (its
    lowest tail already includes queueing) keeps a margin, and ``target - f`` stays positive."""
    demand_level: bool = True
    """Mix a stationary level model into the demand forecast (:mod:`learners.demand_forecast`); False
    plans with the AR model alone, as before the level model existed."""
    demand_level_log_odds: float = -3.0
    """Prior log odds of the level model against the AR model (see ``ForecastSettings.level_log_odds``)."""
    demand_seasonal: bool = True
    """Mix a seasonal-naive model with a period found online into the demand forecast
    (:mod:`learners.seasonal`): bursts on a clock are planned for before they come."""
    demand_noise_clip: float = 0.0
    """Robust demand noise (``ForecastSettings.noise_clip``): one-step errors beyond this many standard
    deviations count as this many (0: off). A step in demand then reads as a new level, not as noise."""
    saturation_guard: bool = False
    """Size a scale-up under saturation from measured throughput, not only from the capacity model: when a
    queue stands, the requests served per ready replica in the interval are what a replica delivers now,
    and the backlog still grows until new replicas are ready (one cold start). The guard asks for enough
    replicas to serve the current arrival rate and drain the backlog expected at readiness within one
    interval, when that backlog would wait longer than ``saturation_wait`` of the target. Why: after an
    unannounced x3.7 step (training step family, seed 14) the first scale-up, sized by the capacity
    model from a queue of 46, gave 8 x TP4 that served barely more than the arrivals, and the backlog
    took three more intervals to drain."""
    saturation_wait: float = 0.5
    """Share of the latency target the backlog at readiness may wait before the guard acts."""
    placed_cold_start: bool = False
    """Learn the cold start from pods that boot only: where the source says which pods have their GPUs
    (``ReplicaSample.placed``, the simulator), a pod waiting for placement teaches nothing and a placed one
    its time since placement (``boot_s``). False (as before): every unready pod younger than three assumed
    cold starts teaches its age, so pods queued for GPUs in a full pool read as slow boots. Off by default
    because the overestimate works as headroom: on the step scenario's training side every episode learned
    180 s where pods boot in 60 s, and with the true 60 s no combination of the grid met the SLO on all 20
    validation seeds (docs/evaluation.md, session 20)."""
    rollout_guard: bool = False
    """Learn no capacity from an interval while a template switch is still rolling out: until no replica
    created before the switch is left (``ReplicaSample.age_s``), not only in the interval of the switch
    itself. Why: on the diurnal training day the one switch to TP 4 of the bundled checkpoint's training was
    followed by an interval at 0.942 attainment (old replicas going, new ones booting) at 0.058 requests/s per
    GPU, a load TP 8 meets with a wide margin; labelled as TP 4's, that one miss gave TP 4 a logit offset of
    +1.9 (sd 0.76), so the posterior asks 2-2.5x TP 8's GPUs of TP 4 (which the simulator serves about as
    well per GPU) and never tries it again. False (as before): only the switch's own interval is skipped."""
    pool_term: bool = False
    """Add a capacity feature for the size of the pool: the smallest TP degree over the GPUs held (1 for one
    replica of the smallest template, 1/16 at 16 of them), with the prior mean ``pool_prior``. Why: what a
    GPU serves at the SLO grows with the replicas that share the load (queueing's pooling), and the load per
    GPU alone cannot say so. The simulator's llama2-70b on A100s at a 5 s TTFT (capacity.slo_capacity) serves
    0.28 requests/s per GPU with one TP 4 replica, 0.39 with two, 0.44 with four, 0.49 with sixteen; TP 8
    0.31, 0.35, 0.38, 0.39. Without the term the model fits one capacity per GPU per template, and the data
    it sees at small sizes (TP 4 at one or two replicas off-peak) makes TP 4 look worse than TP 8 at every
    size. Log capacity per GPU is close to linear in 1/GPUs for both (within 7%), so one weight serves all
    templates. False (as before): the checkpoints trained without it keep their shape."""
    pool_prior: float = 0.0
    """Prior mean of the ``pool_term`` weight (0: the data decide; queueing says positive, a small pool
    misses more at the same load per GPU)."""
    saturation_trigger_sd: float = 0.0
    """What triggers the saturation guard: the standing queue plus the arrivals in excess of completions
    beyond this many Poisson standard deviations of the interval's mean rate, extrapolated over a cold start
    (0: every excess, as before; ``inf``: the standing queue alone). The guard still sizes from the whole
    excess once triggered. Why: an LLM request finishes many seconds after it arrives, so in any interval of
    noisy arrivals fewer finish than arrive; a queue of 1 and 0.33 req/s of such lag, extrapolated over a
    180 s cold start, read as a minute's backlog, and the guard, taking the requests served as what a
    replica can serve, asked for 6 replicas where 4 held the SLO (step, evaluation seed 101, intervals
    81-90). A real step's excess is many standard deviations (x3 at 1.2 req/s: about 10)."""
    fast_period_s: float = 0.0
    """Seconds between looks of the fast guard (0: none), a second timescale under the control interval
    (:meth:`controller.loop.ControlLoop.fast_step`). The guard is a rule, not learned: when the queue seen
    between two intervals would take more than ``fast_wait`` of the latency target to serve at the rate
    replicas served it in that window, it adds at once the replicas that serve the arrivals and drain the
    queue within one interval, and at least ``fast_step`` more than run now. Why: an unannounced step
    (training step family, seed 14; evaluation seed 104) queues for up to a whole interval before the
    slow path sees it, and a cold start more before the new replicas serve; looking every 15 s starts
    those cold starts up to 45 s sooner. It only adds replicas, counts as a scale-up for the slow path's
    hold and scale-down window, and learns nothing (the slow path learns from the whole interval)."""
    fast_wait: float = 0.5
    """Share of the latency target the queue may wait at the window's service rate before the fast guard acts."""
    fast_step: float = 0.5
    """Least relative increase of the replicas when the fast guard acts (0.5: at least half as many again)."""
    learn: bool = True
    """False freezes every model at its prior (or checkpoint): the same policy without learning."""
    converge_error: float = 0.12
    """Mean absolute prequential error of the capacity model under which, with the price low, the
    learner reports itself converged."""
    seed: int = 0

    def __post_init__(self) -> None:
        if not (isinstance(self.risk_max, (int, float)) and 0 < self.risk_max < 1):
            raise ValueError(f"risk_max must be a probability in (0, 1), got {self.risk_max!r}")
        if not (isinstance(self.risk, (int, float)) and 0 < self.risk <= self.risk_max):
            raise ValueError(f"risk must be a probability in (0, risk_max = {self.risk_max:g}], got {self.risk!r}"
                             + ("; raise risk_max too" if isinstance(self.risk, (int, float))
                                and self.risk_max < self.risk < 1 else ""))
        # The fast guard's settings reach the operator from a tenant's custom resource: refuse what is not a
        # period or a share (the operator also floors the period at 5 s; this says why a value is wrong).
        if not (isinstance(self.fast_period_s, (int, float)) and math.isfinite(self.fast_period_s)
                and self.fast_period_s >= 0):
            raise ValueError(f"fast_period_s must be 0 (no fast guard) or seconds, got {self.fast_period_s!r}")
        if not (isinstance(self.fast_wait, (int, float)) and 0 < self.fast_wait < math.inf):
            raise ValueError(f"fast_wait must be a positive share of the latency target, got {self.fast_wait!r}")
        if not (isinstance(self.down_risk, (int, float)) and 0 < self.down_risk <= 1):
            raise ValueError(f"down_risk must be a share of the risk bound in (0, 1], got {self.down_risk!r}")
        if not (isinstance(self.down_evidence, (int, float)) and (self.down_evidence == 0 or
                                                                   1 <= self.down_evidence < math.inf)):
            raise ValueError(f"down_evidence must be 0 (off) or a factor >= 1 on the load per GPU met before, "
                             f"got {self.down_evidence!r}")
        if not (isinstance(self.fast_step, (int, float)) and 0 <= self.fast_step < math.inf):
            raise ValueError(f"fast_step must be a relative increase >= 0, got {self.fast_step!r}")
        if not (isinstance(self.capacity_sharpness, (int, float)) and 0 < self.capacity_sharpness < math.inf):
            raise ValueError(f"capacity_sharpness must be a positive number, got {self.capacity_sharpness!r}")
        if not (isinstance(self.demand_noise_clip, (int, float)) and 0 <= self.demand_noise_clip < math.inf):
            raise ValueError(f"demand_noise_clip must be 0 (off) or a number of standard deviations, "
                             f"got {self.demand_noise_clip!r}")
        if not (isinstance(self.saturation_trigger_sd, (int, float)) and self.saturation_trigger_sd >= 0):
            raise ValueError(f"saturation_trigger_sd must be 0 (as before), a number of standard deviations or "
                             f"inf (the standing queue alone), got {self.saturation_trigger_sd!r}")


class SloRl:
    """SLO-constrained model-based Bayesian autoscaler (see the module docstring)."""

    name = "slo-rl"
    uses_guard_rails = False
    """It keeps its own rails (hysteresis, hold after scale-up, restart gating, bounds)."""
    reads_replica_readiness = True
    """Every observation should carry one :class:`ReplicaSample` per replica (ready or booting, and how
    long): it counts only ready replicas as serving, holds scale-downs while some boot and learns its cold
    start from them. The simulator always gives them; the operator gives them to learners that say so."""

    def __init__(self, space: ConfigSpace, objective: Objective, settings: SloRlSettings | None = None) -> None:
        self.space, self.objective = space, objective
        self.s = settings or SloRlSettings()
        if "replicas" not in space.names:
            raise ValueError("slo-rl sizes replicas: the space needs a 'replicas' knob")
        self.tp_name = "gpus_per_replica" if "gpus_per_replica" in space.names else None
        self.batch_name = "max_batch_size" if "max_batch_size" in space.names else None
        self.tps = space[self.tp_name].values if self.tp_name else (1.0,)
        self.batches = space[self.batch_name].values if self.batch_name else (0.0,)
        self.replica_values = np.asarray(space["replicas"].values, float)
        self.arms = [(tp, b) for tp in self.tps for b in self.batches]
        batch_cols = (len(self.batches) - 1 if self.s.batch_levels else 1) if len(self.batches) > 1 else 0
        self.dim = 1 + (len(self.tps) - 1) + batch_cols + 1 + int(self.s.pool_term)
        self.capacity = CapacityModel(self.dim, CapacitySettings(
            sharpness=self.s.capacity_sharpness, forgetting=self.s.capacity_forgetting))
        self.capacity.mean[-1] = self.s.burst_prior
        if self.s.pool_term:  # the pool column sits before the burst's
            self.capacity.mean[-2] = self.s.pool_prior
        if len(self.batches) > 1 and self.s.batch_levels:  # the position line's prior, one weight per batch size
            positions = np.arange(len(self.batches) - 1) / (len(self.batches) - 1) - 1.0
            end = -1 - int(self.s.pool_term)
            self.capacity.mean[end - batch_cols:end] = self.s.batch_prior * positions
        elif len(self.batches) > 1:
            self.capacity.mean[-2 - int(self.s.pool_term)] = self.s.batch_prior
        self.demand = DemandForecaster(ForecastSettings(level=self.s.demand_level,
                                                        level_log_odds=self.s.demand_level_log_odds,
                                                        seasonal=self.s.demand_seasonal,
                                                        noise_clip=self.s.demand_noise_clip))
        self.alarm_model = ViolationForecaster(objective)
        self.price = 0.0
        self.recent: deque[tuple[float, float]] = deque(maxlen=max(1, self.s.dual_window))
        self.cold_start_s = self.s.cold_start_s
        self.log_burst = 0.0
        self.floors: dict[tuple[float, float], tuple[float, int]] = {}
        """template -> (lowest tail seen, intervals counted) for :meth:`label`."""
        self.also_floors: dict[str, dict[tuple[float, float], tuple[float, int]]] = {}
        """The same per further SLO target (``Objective.also``), for ``worst_tail_label``."""
        self.met: dict[tuple[float, float], dict[float, float]] = {}
        """template -> ready replicas -> the highest load per GPU of an interval that met the SLO at that
        size (steady: the same ready count at both ends, enough requests); ``down_evidence`` reads it."""
        self.p_alarm = 0.0
        self.switched_s: float | None = None
        """When the last template switch took effect, while replicas from before it may still serve
        (``rollout_guard``); None once they are gone."""
        self.pending: list[tuple[np.ndarray, float]] = []
        self.errors: deque[float] = deque(maxlen=20)
        self.intervals = 0
        self.last_up = -10**9
        self.wanted: deque[float] = deque(maxlen=max(1, self.s.down_window))
        self.better: tuple[tuple[float, float] | None, int] = (None, 0)
        self._grid = self._candidate_grid()
        self.rng = np.random.default_rng(self.s.seed)
        self.training: dict[str, Any] | None = None
        """The convergence record of the training run this state came from (``autocm train``)."""
        self._experience: dict[str, list] | None = None
        self._interval_s = 0.0
        """The control interval of the last slow decision: the fast guard drains a queue within one."""
        self._served_per_replica = 0.0
        """Requests per second a ready replica completed in the last interval (the fast guard's yardstick)."""

    # --- features --------------------------------------------------------------------------------
    def features(self, load: np.ndarray, gpus: np.ndarray, tp: np.ndarray, batch: np.ndarray,
                 log_burst: float) -> np.ndarray:
        """Rows of the capacity model's features (see :mod:`learners.slo_capacity`)."""
        load, gpus = np.broadcast_arrays(np.asarray(load, float), np.asarray(gpus, float))
        cols = [np.log((load + 1e-3) / np.maximum(gpus, 1e-9)) - LOAD_REF]
        for t in self.tps[:-1]:
            cols.append((np.asarray(tp) == t).astype(float) * np.ones_like(load))
        if len(self.batches) > 1 and self.s.batch_levels:
            for b in self.batches[:-1]:
                cols.append((np.asarray(batch, float) == b).astype(float) * np.ones_like(load))
        elif len(self.batches) > 1:
            idx = np.searchsorted(np.asarray(self.batches), np.asarray(batch, float))
            cols.append(idx / (len(self.batches) - 1) - 1.0 + 0 * load)
        if self.s.pool_term:
            cols.append(self.tps[0] / np.maximum(gpus, self.tps[0]))
        cols.append(np.full_like(load, log_burst))
        return np.stack(cols, axis=-1)

    def _candidate_grid(self) -> dict[str, np.ndarray]:
        n = self.replica_values
        tp = np.repeat([a[0] for a in self.arms], len(n))
        b = np.repeat([a[1] for a in self.arms], len(n))
        reps = np.tile(n, len(self.arms))
        return {"tp": tp, "batch": b, "replicas": reps, "gpus": reps * tp}

    # --- reading an observation ------------------------------------------------------------------
    def _ready(self, obs: Observation) -> float:
        if obs.replicas:
            return float(sum(1 for r in obs.replicas if r.ready))
        return float(obs.config.get("replicas", 1.0))

    def _stuck_after_s(self) -> float:
        """An unready replica older than this is not cold-starting: it cannot be placed (cluster full)."""
        return 3.0 * self.s.cold_start_s

    def _booting(self, obs: Observation) -> tuple[float, float]:
        """(replicas cold-starting, replicas stuck unready) in ``obs``."""
        if not obs.replicas:
            return 0.0, 0.0
        late = self._stuck_after_s()
        booting = sum(1 for r in obs.replicas if not r.ready and r.age_s <= late)
        stuck = sum(1 for r in obs.replicas if not r.ready and r.age_s > late)
        return float(booting), float(stuck)

    def _rate(self, obs: Observation) -> float:
        v = obs.metric("request_rate_per_second", 0.0)
        return v if math.isfinite(v) else 0.0

    def _burst(self, obs: Observation) -> float:
        rate, peak = self._rate(obs), obs.metric("request_rate_peak_per_second")
        if not math.isfinite(peak) or rate <= 0:
            return 0.0
        return math.log(max(peak / rate, 1.0))

    def _template(self, cfg: Mapping[str, float]) -> tuple[float, float]:
        return (cfg.get(self.tp_name, self.tps[0]) if self.tp_name else self.tps[0],
                cfg.get(self.batch_name, self.batches[0]) if self.batch_name else self.batches[0])

    # --- the decision ----------------------------------------------------------------------------
    def drain_s(self, interval_s: float) -> float:
        """Seconds within which the plan drains a standing queue: one control interval, or the latency
        target when that is longer. A queued request that is served within the target meets the SLO, so
        draining faster buys nothing. Why: in the operator's e2e test (2 s intervals, a 5 s TTFT target)
        "within one interval" read the emulator's standing queue of a few requests as several requests/s
        more demand, and slo-rl went 3 -> 10 replicas on the plateau where HPA held 3-4. At the
        simulator's 60 s intervals (every target is 2-10 s) this is one interval, as before."""
        target = self.objective.target if (self.objective.metric.endswith("_seconds")
                                           and not self.objective.higher_is_better) else 0.0
        return max(interval_s, target, 1e-9)

    def plan_load(self, obs: Observation) -> float:
        """Requests/s to provision for: the demand quantile over the cold-start horizon, plus the
        queue drained within :meth:`drain_s`, plus a margin while the violation alarm is up."""
        if not self.demand.history:
            self.demand.history.append(math.log(self._rate(obs) + 0.01))
        horizon = 1 + math.ceil(self.cold_start_s / max(obs.interval_s, 1e-9))
        z = max(0.0, self.s.forecast_z + self.s.forecast_z_per_price * min(self.price, 8.0))
        load = self.demand.quantile(horizon, z)
        queue = obs.metric("queue_length", 0.0)
        load += (queue if math.isfinite(queue) else 0.0) / self.drain_s(obs.interval_s)
        if self.p_alarm >= self.s.alarm:
            load *= 1.0 + self.s.alarm_margin
        return load

    def risk_bound(self) -> float:
        return min(self.s.risk_max, self.s.risk * math.exp(-self.price))

    def cheapest(self, load: float, weights: np.ndarray | None = None,
                 bound: float | None = None) -> dict[tuple[float, float], float]:
        """Per template (TP degree, batch), the fewest replicas whose predicted miss probability at
        ``load`` is within the risk bound (or ``bound``); ``inf`` for a template where none is. ``weights``:
        judge with these capacity weights (a posterior draw) instead of the posterior predictive."""
        g = self._grid
        X = self.features(np.full(g["gpus"].shape, load), g["gpus"], g["tp"], g["batch"], self.log_burst)
        if weights is None:
            p = self.capacity.predict(X)
        else:
            p = 1.0 / (1.0 + np.exp(-(weights[0] + X @ weights[1:])))
        ok = (p <= (self.risk_bound() if bound is None else bound)).reshape(len(self.arms), len(self.replica_values))
        out = {}
        for i, arm in enumerate(self.arms):
            hit = np.flatnonzero(ok[i])
            out[arm] = float(self.replica_values[hit[0]]) if hit.size and not self.hopeless(arm) else math.inf
        return out

    def hopeless(self, template: tuple[float, float]) -> bool:
        """The template's lowest tail over ``hopeless_intervals`` intervals is over the target: its tail at no
        load misses the SLO (TP 2 under a 2 s TTFT: 2.7 s with any number of replicas), which the
        capacity model, smooth in load per GPU, cannot say, and more replicas cannot fix."""
        if not self.s.tail_floor or self.objective.higher_is_better:
            return False
        return any(n >= self.s.hopeless_intervals and low > target
                   for _, floors, target in self._floor_tables()
                   for low, n in [floors.get(template, (math.inf, 0))])

    def _floor_tables(self) -> list[tuple[str, dict[tuple[float, float], tuple[float, int]], float]]:
        """(metric, floors, target) per latency target the labels read: the headline one, and with
        ``worst_tail_label`` every further one."""
        tables = [(self.objective.metric, self.floors, self.objective.target)]
        if self.s.worst_tail_label:
            tables += [(m, self.also_floors.setdefault(m, {}), t)
                       for m, t in self.objective.targets().items() if m != self.objective.metric]
        return tables

    def decide(self, obs: Observation) -> Action:
        self.intervals += 1
        self._interval_s = obs.interval_s
        ready, completed = self._ready(obs), obs.events.get("completed", math.nan)
        if ready > 0 and math.isfinite(completed):
            self._served_per_replica = completed / max(obs.interval_s, 1e-9) / ready
        current = self.space.clip(obs.config)
        arm = self._template(current)
        cur_n = current["replicas"]
        pending, stuck = self._booting(obs)
        if not self.wanted:  # start as if the plan had asked for what runs now: no release before evidence
            self.wanted.extend([cur_n] * (self.wanted.maxlen or 1))
        load = self.plan_load(obs)
        need = self.cheapest(load)
        # slow path: another template only when a posterior draw finds it clearly cheaper, several
        # intervals in a row, with nothing warming up and the SLO comfortable
        draw = self.rng.multivariate_normal(self.capacity.mean, self.capacity._cov) if self.s.learn else None
        sampled = self.cheapest(load, draw) if draw is not None else need
        best = min(sampled, key=lambda a: (sampled[a] * a[0], a != arm))
        if best != arm and math.isfinite(need[best]) and \
                sampled[best] * best[0] <= (1 - self.s.switch_gain) * sampled[arm] * arm[0] and \
                (not self.s.switch_mean or need[best] * best[0] <= need[arm] * arm[0]):
            count = self.better[1] + 1 if self.better[0] is not None and self.better[0][0] == best[0] else 1
            self.better = (best, count)
        else:
            self.better = (None, 0)
        if self.hopeless(arm) and pending == 0:
            return self._rescue(arm, need, load)
        if self.better[1] >= self.s.switch_hold and pending == 0 and self.price < 1.0 and self.p_alarm < self.s.alarm \
                and self.intervals > self.s.switch_after:
            self.better = (None, 0)
            # a switch changes the template, not the capacity: it keeps the GPUs the scale-down window
            # still holds (re-expressed in the new template's replicas); savings come through the window
            held_gpus = max(self.wanted) * arm[0]
            n_new = min(float(self.replica_values[-1]), max(need[best], math.ceil(held_gpus / best[0])))
            self.wanted.clear()
            self.wanted.extend([n_new] * (self.wanted.maxlen or 1))
            target = self._config(best, n_new)
            return Action(target, f"switch to {best[0]:g} GPUs x batch {best[1]:g} at {n_new:g} replicas "
                                  f"(plan: {need[best] * best[0]:g} GPUs instead of {need[arm] * arm[0]:g} "
                                  f"for {load:.2f} req/s; {self._why()})")
        n = need[arm] if math.isfinite(need[arm]) else float(self.replica_values[-1])
        if self.s.saturation_guard:
            n = max(n, self._saturated_need(obs))
        if stuck:  # the cluster is full: asking for more than it places only queues pods
            n = min(n, max(self._ready(obs) + pending, float(self.replica_values[0])))
        kept = n
        if self.s.down_risk < 1.0:  # hysteresis: what the scale-down window keeps is planned more cautiously
            down = self.cheapest(load, bound=self.risk_bound() * self.s.down_risk)[arm]
            kept = max(n, down if math.isfinite(down) else float(self.replica_values[-1]))
        self.wanted.append(kept)
        if n > cur_n:
            self.last_up = self.intervals
            return Action(self._config(arm, n), f"scale up to {n:g} replicas for {load:.2f} req/s ({self._why()})")
        floor = max(list(self.wanted)[-self._window():])
        if floor < cur_n and self.s.down_evidence:
            trusted = self.evidenced(arm, floor, cur_n, load)
            if trusted >= cur_n:
                return Action(dict(current), f"hold {cur_n:g} replicas ({floor:g} would do for {load:.2f} req/s, "
                                             f"past the load per GPU met with that few; {self._why()})")
            floor = trusted
        if floor < cur_n:
            if pending == 0 and self.p_alarm < self.s.alarm and self.intervals - self.last_up >= self.s.up_hold:
                return Action(self._config(arm, floor),
                              f"scale down to {floor:g} replicas, the most the last {len(self.wanted)} "
                              f"plans asked for ({load:.2f} req/s now; {self._why()})")
            return Action(dict(current), f"hold {cur_n:g} replicas ({n:g} would do for {load:.2f} req/s; "
                                         f"replicas warming or alarm up; {self._why()})")
        return Action(dict(current), f"keep {cur_n:g} replicas for {load:.2f} req/s ({self._why()})")

    def evidenced(self, arm: tuple[float, float], floor: float, current: float, load: float) -> float:
        """The fewest replicas in [``floor``, ``current``] a scale-down may go to under ``down_evidence``:
        the first size whose planned load per GPU is within the factor of the most met with as many
        replicas or fewer; a size with no such evidence is the posterior's to judge (trusted)."""
        met = self.met.get(arm, {})
        for n in self.replica_values[(self.replica_values >= floor) & (self.replica_values < current)]:
            seen = [v for m, v in met.items() if m <= n]
            if not seen or load / (n * arm[0]) <= self.s.down_evidence * max(seen):
                return float(n)
        return float(current)

    @property
    def fast_period_s(self) -> float:
        """The fast guard's period (0: none); :func:`controller.loop.fast_period_s` reads it."""
        return self.s.fast_period_s

    def react(self, obs: Observation) -> Action | None:
        """The fast guard (see ``fast_period_s``): more replicas now when a backlog stands, else None.
        ``obs`` covers the seconds since the previous look (a source's ``peek``)."""
        if self.s.fast_period_s <= 0 or self.objective.higher_is_better:
            return None
        cur = float(self.space.clip(obs.config)["replicas"])
        queue = obs.metric("queue_length", 0.0)
        served = obs.events.get("completed", math.nan) / max(obs.interval_s, 1e-9)
        ready = self._ready(obs)
        pending, stuck = self._booting(obs)
        if stuck or not (math.isfinite(queue) and queue > 0 and math.isfinite(served) and ready > 0):
            return None
        # A 15 s window holds a few completions of long requests (one is 0.07 req/s): alone it reads a busy
        # replica as nearly idle and asks for the whole grid. The last interval's rate per ready replica
        # is the steadier measure; the larger of the two is what a replica delivers now.
        per_replica = max(served / ready, self._served_per_replica)
        if per_replica <= 0 or queue / (per_replica * ready) <= self.s.fast_wait * self.objective.target:
            return None
        drain_s = self._interval_s or max(obs.interval_s, 1e-9)
        n = math.ceil((self._rate(obs) + queue / drain_s) / per_replica)
        if not pending:  # with replicas already booting, the step would compound every 15 s until they serve
            n = max(n, math.ceil(cur * (1 + self.s.fast_step)))
        arm = self._template(obs.config)
        target = self._config(arm, min(float(n), float(self.replica_values[-1])))
        if target["replicas"] <= cur:
            return None
        self.wanted.append(target["replicas"])
        self.last_up = self.intervals
        return Action(target, f"fast guard: {queue:.0f} queued, {served:.2f} req/s served by {ready:g} ready "
                              f"replicas in the last {obs.interval_s:.0f} s: {target['replicas']:g} replicas")

    def _saturated_need(self, obs: Observation) -> float:
        """Replicas that serve the arrivals and drain the backlog expected when new replicas are ready,
        from what a ready replica served this interval (see ``saturation_guard``); 0 when no queue stands,
        nothing was served, or the backlog would wait less than ``saturation_wait`` of the target."""
        queue = obs.metric("queue_length", 0.0)
        served = obs.events.get("completed", math.nan) / max(obs.interval_s, 1e-9)
        ready = self._ready(obs)
        if not (math.isfinite(queue) and queue > 0 and math.isfinite(served) and served > 0 and ready > 0) \
                or self.objective.higher_is_better:
            return 0.0
        arriving = self._rate(obs)  # the interval's mean: a 10 s peak of Poisson arrivals exceeds any throughput
        backlog = queue + max(arriving - served, 0.0) * self.cold_start_s
        noise = self.s.saturation_trigger_sd * math.sqrt(arriving / max(obs.interval_s, 1e-9))
        trigger = queue + (max(arriving - served - noise, 0.0) * self.cold_start_s if math.isfinite(noise) else 0.0)
        if trigger / served < self.s.saturation_wait * self.objective.target:
            return 0.0
        per_replica = served / ready
        return float(math.ceil((arriving + backlog / max(obs.interval_s, 1e-9)) / per_replica))

    def _rescue(self, arm: tuple[float, float], need: dict[tuple[float, float], float], load: float) -> Action:
        """Leave a hopeless template at once, whatever the price (the price only rises there, and a high
        price makes every template's plan infinite, which would block the ordinary switch for good): to
        the template the plan finds cheapest, else, when no size meets the bound anywhere, to the largest
        TP degree not known hopeless (the shortest prefill), keeping the GPUs held now."""
        options = [a for a in self.arms if a != arm and not self.hopeless(a)]
        if not options:
            n = float(self.replica_values[-1])
            return Action(self._config(arm, n), f"every template's tail misses the target at no load; "
                                                f"holding {n:g} replicas ({self._why()})")
        best = min(options, key=lambda a: (need[a] * a[0], -a[0], -a[1]))
        held_gpus = max(self.wanted) * arm[0]
        n_new = math.ceil(held_gpus / best[0])
        if math.isfinite(need[best]):
            n_new = max(need[best], n_new)
        n_new = min(float(self.replica_values[-1]), float(n_new))
        self.better = (None, 0)
        self.wanted.clear()
        self.wanted.extend([n_new] * (self.wanted.maxlen or 1))
        low = self.floors[arm][0]
        return Action(self._config(best, n_new), f"switch to {best[0]:g} GPUs x batch {best[1]:g} at {n_new:g} "
                                                 f"replicas: at {arm[0]:g} GPUs x batch {arm[1]:g} the tail never fell "
                                                 f"under the target ({low:.2f} at best) for {load:.2f} req/s "
                                                 f"({self._why()})")

    def _config(self, arm: tuple[float, float], replicas: float) -> Config:
        cfg = {"replicas": replicas}
        if self.tp_name:
            cfg[self.tp_name] = arm[0]
        if self.batch_name:
            cfg[self.batch_name] = arm[1]
        return self.space.clip(cfg)

    def _window(self) -> int:
        sd = math.sqrt(max(self.demand.noise, 0.0))
        return int(min(self.s.down_window, max(2, round(self.s.down_window * sd / self.s.noisy_sd))))

    def _why(self) -> str:
        return f"risk bound {self.risk_bound():.3f}, price {self.price:.2f}, alarm {self.p_alarm:.2f}"

    # --- learning (off the decision path) ----------------------------------------------------------
    def learn(self, prev: Observation, action: Action, reward: float, obs: Observation) -> None:
        att = obs.metric("slo_attainment")
        if math.isfinite(att) and self.s.dual_window > 1:  # the window's attainment, request-weighted
            judged = obs.events.get("completed", 0.0) + obs.events.get("rejected", 0.0)
            self.recent.append((att, max(judged, 1e-9)))
            att = sum(a * j for a, j in self.recent) / sum(j for _, j in self.recent)
        if math.isfinite(att):  # the dual step: the constraint holds itself, learning or not
            budget = self.objective.miss_budget
            gap = (self.objective.attainment + self.s.dual_aim * budget - att) / budget
            step = self.s.dual_step * min(gap, 10.0) if gap > 0 else self.s.dual_step_down * gap
            self.price = min(self.s.dual_max, max(self.s.dual_min, self.price + step))
        for r in obs.replicas:  # a replica still booting after the assumed cold start: it is longer
            if r.ready or (self.s.placed_cold_start and r.placed is False):
                continue  # with placed_cold_start, a pod waiting for GPUs is not booting
            age = r.boot_s if self.s.placed_cold_start and math.isfinite(r.boot_s) else r.age_s
            if math.isfinite(age) and age <= self._stuck_after_s():
                self.cold_start_s = max(self.cold_start_s, age)
        if not self.s.learn:
            return
        self.demand.observe(self._rate(obs))
        if self._experience is not None:
            self._experience["rates"].append(self._rate(obs))
        self.p_alarm = self.alarm_model.observe(obs)
        burst = self._burst(obs)
        self.log_burst = max(burst, 0.9 * self.log_burst + 0.1 * burst)  # rises at once, decays slowly
        before, during = self._template(prev.config), self._template(action.target)
        if before != during:
            self.switched_s = float(prev.time_s)
            return  # a rolling restart mixes templates: this interval says nothing about either
        if self.s.rollout_guard and self.rolling_out(prev, obs):
            return  # nor does any later one while replicas of the old template still serve
        tp = during[0]
        gpus = 0.5 * (self._ready(prev) + self._ready(obs)) * tp
        if gpus <= 0:
            return
        queue = prev.metric("queue_length", 0.0)
        load = self._rate(obs) + (queue if math.isfinite(queue) else 0.0) / self.drain_s(obs.interval_s)
        y = 0.0
        enough = self._rate(obs) * obs.interval_s >= self.s.floor_min_requests
        for metric, floors, target in self._floor_tables():
            tail = obs.metric(metric)
            if metric != self.objective.metric and not math.isfinite(tail):
                continue  # a further target's metric not reported this interval: no evidence, not a miss
            if self.s.tail_floor and math.isfinite(tail) and enough:
                low, n = floors.get(during, (math.inf, 0))
                floors[during] = (min(low, tail), n + 1)
            y = max(y, self.label(tail, during, floors, target))
        if not self.objective.meets(obs):
            y = max(y, 0.75)
        if y < 0.5 and enough and self._ready(prev) == self._ready(obs):  # steady: ``gpus`` is n x TP exactly
            sizes = self.met.setdefault(during, {})
            n = self._ready(obs)
            sizes[n] = max(sizes.get(n, 0.0), load / gpus)
        x = self.features(np.array([load]), np.array([gpus]), np.array([tp]), np.array([during[1]]), burst)[0]
        self.errors.append(abs(float(self.capacity.predict(x[None, :])[0]) - y))  # prequential
        self.pending.append((x, y))
        if self._experience is not None:
            self._experience["capacity_x"].append(x.tolist())
            self._experience["capacity_y"].append(float(y))
        if len(self.pending) >= self.s.update_every:
            X = np.stack([p[0] for p in self.pending])
            self.capacity.update(X, np.array([p[1] for p in self.pending]))
            self.pending = []

    def rolling_out(self, prev: Observation, obs: Observation) -> bool:
        """A replica created before the last template switch is in ``prev`` or ``obs`` (its age exceeds the
        time since the switch by more than a second), so the interval mixed templates; clears the switch once
        none is left."""
        if self.switched_s is None:
            return False
        old = any(r.age_s > o.time_s - self.switched_s + 1.0
                  for o in (prev, obs) for r in o.replicas if math.isfinite(r.age_s))
        if not old:
            self.switched_s = None
        return old

    def label(self, tail: float, template: tuple[float, float],
              floors: Mapping[tuple[float, float], tuple[float, int]] | None = None,
              target: float | None = None) -> float:
        """The capacity model's soft label of one interval's tail at ``template`` (see ``tail_floor``);
        ``floors``/``target``: another SLO target's (default: the headline one)."""
        target = self.objective.target if target is None else target
        low, n = (self.floors if floors is None else floors).get(template, (math.inf, 0))
        if not self.s.tail_floor or self.objective.higher_is_better or n < self.s.floor_intervals \
                or not math.isfinite(tail) or tail > target:
            return self.capacity.label(tail, target)
        f = min(low, self.s.floor_cap * target)
        return self.capacity.label(max(tail - f, 0.0), target - f)

    def convergence(self) -> Convergence:
        """The live verdict from the prequential error of the capacity model; with a training record
        (a checkpoint from ``autocm train``) its verdict and held-out residual are reported until 10
        live intervals give a residual of its own; from then on the live evidence decides."""
        n = self.capacity.samples
        recorded = Verdict(self.training["verdict"]) if self.training and "verdict" in self.training else None
        if len(self.errors) < 10:
            if recorded is not None:
                return Convergence(recorded, residual=float(self.training.get("residual", math.nan)), samples=n)
            return Convergence(Verdict.EXPLORING, samples=n)
        err = float(np.mean(self.errors))
        live_ok = err < self.s.converge_error and self.price < 1.0
        verdict = Verdict.CONVERGED if live_ok else Verdict.CONVERGING
        return Convergence(verdict, residual=err, policy_stability=math.nan, samples=n)

    # --- experience for parallel training (the coordinator merges it; no I/O here) -----------------
    def record_experience(self) -> None:
        """Keep, from now on, what ``learn`` feeds the models, so a coordinator can merge it into a
        shared learner with :meth:`absorb` (asynchronous parallel training, ``autocm train --workers``)."""
        self._experience = {"rates": [], "capacity_x": [], "capacity_y": [], "alarm_x": [], "alarm_y": []}
        model = self.alarm_model.model
        update = type(model).update.__get__(model)
        exp = self._experience

        def recording_update(X: np.ndarray, y: np.ndarray) -> Any:
            exp["alarm_x"].extend(np.atleast_2d(np.asarray(X, float)).tolist())
            exp["alarm_y"].extend(np.asarray(y, float).ravel().tolist())
            return update(X, y)

        model.update = recording_update  # type: ignore[method-assign]

    def take_experience(self) -> dict[str, Any]:
        """The experience recorded since :meth:`record_experience` or the last call (plain lists)."""
        if self._experience is None:
            raise RuntimeError("record_experience() was not called")
        out = {k: list(v) for k, v in self._experience.items()}
        out["cold_start_s"], out["log_burst"] = self.cold_start_s, self.log_burst
        out["met_load_per_gpu"] = self._met_rows()  # a running maximum: merging it twice changes nothing
        for v in self._experience.values():
            v.clear()
        return out

    def absorb(self, batches: list[Mapping[str, Any]], *, demand: bool = True) -> None:
        """Merge workers' experience into this (shared) learner as one update: the capacity and alarm
        posteriors take one Laplace step over every row of every batch with the current posterior as
        the prior (what ``update_every`` batching does for one worker; the forgetting is per interval,
        so the merge forgets as much as those intervals would one at a time), and the demand forecaster
        replays each episode's rates in order from an empty lag window (its forgetting is sequential).
        ``demand=False`` (peers of a workload class, :mod:`learners.sharing`): only the capacity and alarm
        rows and the cold start are taken; this workload's own demand forecast and burst state stay."""
        cx = [row for b in batches for row in b["capacity_x"]]
        if cx:
            self.capacity.update(np.asarray(cx, float), np.asarray([y for b in batches for y in b["capacity_y"]]),
                                 elapsed=None if demand else 0)
        ax = [row for b in batches for row in b["alarm_x"]]
        if ax:
            model = self.alarm_model.model
            type(model).update(model, np.asarray(ax, float), np.asarray([y for b in batches for y in b["alarm_y"]]))
        for b in batches:
            self._merge_met(b.get("met_load_per_gpu", []))
            if not demand:
                self.cold_start_s = max(self.cold_start_s, float(b.get("cold_start_s", self.cold_start_s)))
                continue
            self.demand.history.clear()
            for r in b["rates"]:
                self.demand.observe(r)
            self.cold_start_s = max(self.cold_start_s, float(b.get("cold_start_s", self.cold_start_s)))
            self.log_burst = float(b.get("log_burst", self.log_burst))

    # --- checkpoints ---------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"learner": self.name, "settings": asdict(self.s), "knobs": list(self.space.names),
                "capacity": self.capacity.state_dict(), "demand": self.demand.state_dict(),
                "alarm": {"mean": self.alarm_model.model.mean.tolist(),
                          "precision": self.alarm_model.model.precision.tolist()},
                "cold_start_s": self.cold_start_s, "log_burst": self.log_burst,
                "tail_floors": [[list(t), low, n] for t, (low, n) in self.floors.items()],
                "also_floors": {m: [[list(t), low, n] for t, (low, n) in f.items()]
                                for m, f in self.also_floors.items()},
                "met_load_per_gpu": self._met_rows(),
                **({"training": self.training} if self.training else {})}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if list(state.get("knobs", [])) != list(self.space.names):
            raise ValueError(f"checkpoint was trained for knobs {state.get('knobs')}, "
                             f"this workload has {list(self.space.names)}")
        self.capacity.load_state_dict(state["capacity"])
        self.demand.load_state_dict(state["demand"])
        alarm = state.get("alarm")
        if alarm:
            model = self.alarm_model.model
            model.mean, model.precision = gaussian(alarm["mean"], alarm["precision"], "violation alarm",
                                                   np.asarray(model.mean).size)
        self.cold_start_s = finite_number(state.get("cold_start_s", self.cold_start_s), "cold start", 0.0, 1e6)
        self.log_burst = finite_number(state.get("log_burst", 0.0), "burst feature", -100.0, 100.0)
        self.floors = _floors(state.get("tail_floors", []))
        self.also_floors = {str(m): _floors(rows) for m, rows in dict(state.get("also_floors", {})).items()}
        self.met = {}
        self._merge_met(state.get("met_load_per_gpu", []))  # absent in checkpoints from before 2026-12-07
        self.training = _training_record(state.get("training"))

    def _met_rows(self) -> list[list[Any]]:
        return [[list(t), n, v] for t, sizes in self.met.items() for n, v in sizes.items()]

    def _merge_met(self, rows: Any) -> None:
        """Merge ``[[tp, batch], replicas, load per GPU]`` rows by maximum. A checkpoint is tenant input: a
        malformed row is refused (the operator then reports the checkpoint as not used), and a row for a
        template or size this space does not have, or a value that is not a positive number, changes nothing
        (a NaN would otherwise hold every scale-down for good)."""
        arms, sizes_ok = set(self.arms), set(self.replica_values.tolist())
        try:
            parsed = [((float(t[0]), float(t[1])), float(n), float(v)) for t, n, v in rows]
        except (TypeError, ValueError, IndexError) as exc:
            raise ValueError(f"met_load_per_gpu: expected [[tp, batch], replicas, load per GPU] rows ({exc})") from None
        for arm, n, v in parsed:
            if arm in arms and n in sizes_ok and math.isfinite(v) and v > 0:
                sizes = self.met.setdefault(arm, {})
                sizes[n] = max(sizes.get(n, 0.0), v)


def _training_record(raw: Any) -> dict[str, Any] | None:
    """A checkpoint's convergence record (``autocm train --workers``), checked where :meth:`SloRl.convergence`
    reads it. A checkpoint is tenant input: a record that is not a mapping, names no known verdict, or carries a
    residual that is not a number would otherwise fail every control step after the restore, so it refuses the
    checkpoint instead (the operator then reports it as not used)."""
    if not raw:
        return None
    if not isinstance(raw, Mapping):
        raise ValueError(f"the checkpoint's training record is not a mapping: {type(raw).__name__}")
    record = dict(raw)
    verdict = record.get("verdict", str(Verdict.EXPLORING))
    if not isinstance(verdict, str) or verdict not in {str(v) for v in Verdict}:
        raise ValueError(f"the checkpoint's training record names no known verdict: {str(verdict)[:40]!r} "
                         f"(one of {', '.join(str(v) for v in Verdict)})")
    number_or_nan(record.get("residual", math.nan), "the training record's residual", -math.inf, math.inf)
    return record


def _floors(rows: Any) -> dict[tuple[float, float], tuple[float, int]]:
    return {(float(t[0]), float(t[1])): (float(low), int(n)) for t, low, n in rows}


@register("slo-rl", SloRlSettings,
          "SLO-constrained model-based Bayesian autoscaler: demand forecast, capacity posterior, primal-dual",
          kinds=("inference",))
def _make(space: ConfigSpace, objective: Objective, settings: SloRlSettings) -> SloRl:
    return SloRl(space, objective, settings)
