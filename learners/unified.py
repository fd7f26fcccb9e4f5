"""Unified tuning of resources and application parameters (CoTuner-style), and its independent baseline.

After Bu, Rao and Xu, "Coordinated self-configuration of virtual machines and appliances using a
model-free learning approach" (CoTuner, IEEE TPDS 24(4), 2013) and Xu, Rao and Bu, "URL: a unified
reinforcement learning approach for autonomic cloud management" (JPDC 72(2), 2012): one agent owns
*both* the resource knobs (replicas, GPUs per replica) and the application knobs (the engine's batch
size, which in vLLM is ``max_num_seqs``: the most requests a replica runs concurrently), because their
effects interact (a replica with a small batch queues requests while its GPUs idle; a larger batch
is free throughput until TBT or the KV cache binds, and what binds depends on the TP degree).

How one agent searches:

- **Simplex moves.** A Nelder-Mead simplex (:mod:`learners.simplex`) over the knob vector, each knob
  normalised to [0, 1] by its grid index and snapped back to the grid; a point is scored by the
  SLO objective's reward averaged over ``eval_intervals`` clean control intervals (the interval right
  after a change, with its cold starts and rolling restarts, is not a clean one).
- **Noise and drift.** Every ``reevaluate_every`` new points the incumbent (the best vertex) is
  measured again and its value replaced by its recent mean, so one lucky interval cannot anchor the
  search. When the smoothed request rate moves by more than ``load_shift`` from where the simplex
  started, the simplex restarts around the current configuration and forgets its measurements.
- **Bottleneck-biased exploration.** The metrics say what binds (:func:`diagnose`): requests
  queue while every batch slot is taken and the KV cache has room -> raise the batch size first (free);
  the KV cache is full or the GPUs are busy without full slots -> add GPUs (replicas, then TP);
  utilisation low with the SLO met for a while -> lower the knob whose step saves the most. These
  directed moves fire only when the configuration the agent believes best is the one failing (a probe
  that misses is just a bad score for the simplex), and each one restarts the simplex around the new
  point with its first edges pointing the way the bottleneck suggests.

``independent`` is the baseline the unified agent has to beat: the *same* algorithm run as two
agents, one over the resource knobs (those that cost GPUs) and one over the application knobs, both
scored by the same reward, neither aware of the other's knobs. In ``simultaneous`` mode (the default,
and how an autoscaler and an engine tuner deployed side by side behave) both act every interval; in
``alternating`` mode they take turns of ``turn_intervals`` intervals (coordinate descent).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

import numpy as np

from learners.base import register
from learners.objective import Objective
from learners.simplex import INIT, REFLECT, Simplex
from learners.space import Config, ConfigSpace
from learners.state_checks import finite_number, grid_value, mapping, number_or_nan, sequence, whole_number
from learners.types import Action, Convergence, Observation, Verdict

Key = tuple[float, ...]
MAX_SCORE = 1e12
"""Largest magnitude of a measured score (a negated reward) a restored tuner accepts."""


@dataclass(frozen=True)
class UnifiedSettings:
    initial_step: float = 0.25
    """Initial simplex edge in normalised knob units (at least one grid step per knob)."""
    eval_intervals: int = 2
    """Clean control intervals averaged into one score. Two halves the noise of a bursty minute."""
    reevaluate_every: int = 4
    """Re-measure the incumbent after this many new points (noisy objective)."""
    load_shift: float = 0.3
    """Relative change of the smoothed request rate that restarts the simplex (the optimum moved)."""
    load_smoothing: float = 0.3
    """Weight of the newest interval in the exponentially smoothed request rate."""
    hold_intervals: int = 15
    """Intervals the collapsed simplex holds its incumbent before exploring again around it."""
    bottleneck: bool = True
    """Directed moves from the metrics' bottleneck; False leaves only the simplex (an ablation)."""
    bottleneck_steps: int = 1
    """Grid steps of one directed move."""
    severe_misses: float = 5.0
    """Shortfall, in miss budgets, from which a miss is severe (5: attainment 94% against a 99% SLO):
    directed raises then take two steps and do not wait for the previous change to settle, because a
    backlog that builds for minutes costs more than overshooting by a step."""
    calm_intervals: int = 3
    """Consecutive over-provisioned intervals before a directed shrink."""
    util_high: float = 0.85
    """GPU busy fraction above which replicas count as compute-bound."""
    util_low: float = 0.45
    """GPU busy fraction below which, with the SLO met and no queue, the service is over-provisioned."""
    kv_high: float = 0.9
    """KV-cache occupancy above which admissions are memory-bound."""
    slots_full: float = 0.75
    """Running requests per replica (concurrency per replica less the queue's share) over the batch size
    above which the batch slots count as taken. Below 1 because the concurrency is an interval mean and
    the queue the length at its end: a growing queue makes the estimate low."""
    mode: str = "simultaneous"
    """Only for ``independent``: 'simultaneous' or 'alternating' (turns of ``turn_intervals``)."""
    turn_intervals: int = 6
    seed: int = 0
    """Unused by the deterministic search; kept so every learner takes a seed."""

    def __post_init__(self) -> None:
        if self.eval_intervals < 1 or self.reevaluate_every < 1 or self.hold_intervals < 1:
            raise ValueError("eval_intervals, reevaluate_every and hold_intervals must be at least 1")
        if not 0.0 < self.initial_step <= 1.0:
            raise ValueError(f"initial_step must be in (0, 1], got {self.initial_step}")
        if self.mode not in ("simultaneous", "alternating"):
            raise ValueError(f"mode must be 'simultaneous' or 'alternating', got {self.mode!r}")
        if self.turn_intervals < 1:
            raise ValueError("turn_intervals must be at least 1")


# ----------------------------------------------------------------------------------- bottlenecks


class Bottleneck(StrEnum):
    SLOTS = "batch-slots"
    """Requests queue while every batch slot is taken and the KV cache has room: admission-bound."""
    KV = "kv-cache"
    """The KV cache is (nearly) full: admissions wait for memory."""
    COMPUTE = "gpu-compute"
    """GPUs busy, slots not all taken, requests queue or the SLO is missed: need more GPUs."""
    OVER = "over-provisioned"
    """SLO met, nothing queued, GPUs mostly idle."""
    NONE = "none"


RAISE_ORDER: dict[Bottleneck, tuple[str, ...]] = {
    Bottleneck.SLOTS: ("max_batch_size", "replicas", "gpus_per_replica"),
    Bottleneck.KV: ("replicas", "gpus_per_replica"),
    Bottleneck.COMPUTE: ("replicas", "gpus_per_replica"),
}
"""Which knob to raise first for each bottleneck: the free application knob before GPUs when slots
bind; replicas (a finer step) before TP degree when GPUs bind. Knobs the agent does not own are skipped."""


def diagnose(obs: Observation, objective: Objective, settings: UnifiedSettings) -> Bottleneck:
    """What binds in the interval ``obs`` summarises.

    The simulator's and DCGM's GPU utilisation is a busy fraction: a replica decoding a batch of 4 is
    "100% busy" while its GPUs could run 16 times the batch. So slot occupancy, not utilisation, is
    the sign of an admission bottleneck, and it is checked before compute.
    """
    missed = objective.shortfall(obs) > 0.0
    queue = obs.metric("queue_length", 0.0)
    util = obs.metric("gpu_utilization", math.nan)
    kv = obs.metric("kv_cache_usage", math.nan)
    per_replica = obs.metric("concurrency_per_replica", math.nan)
    batch = obs.config.get("max_batch_size")
    replicas = max(float(obs.config.get("replicas", 1.0)), 1.0)
    if missed or queue > 0:
        if math.isfinite(kv) and kv >= settings.kv_high:
            return Bottleneck.KV
        # concurrency per replica counts the queue too: what runs is roughly that minus the queue's
        # share, and only running requests take batch slots (a backlog makes every slot look taken)
        running = per_replica - queue / replicas if math.isfinite(per_replica) else math.nan
        if batch and math.isfinite(running) and running >= settings.slots_full * batch and queue > 0:
            return Bottleneck.SLOTS
        if missed or (math.isfinite(util) and util >= settings.util_high):
            return Bottleneck.COMPUTE
        return Bottleneck.NONE
    if math.isfinite(util) and util <= settings.util_low and not (math.isfinite(kv) and kv >= settings.kv_high):
        return Bottleneck.OVER
    return Bottleneck.NONE


def directed_move(bottleneck: Bottleneck, space: ConfigSpace, config: Mapping[str, float], objective: Objective,
                  owned: Sequence[str], steps: int = 1) -> tuple[str, int] | None:
    """(knob, signed steps) the bottleneck calls for among the ``owned`` knobs, or None.

    Raising: the first knob of :data:`RAISE_ORDER` that is owned and not at its upper bound.
    Shrinking (over-provisioned): the owned knob whose step down saves the most cost per hour; a knob
    that costs nothing (batch size) is never shrunk for cost.
    """
    cfg = space.clip(config)
    if bottleneck in RAISE_ORDER:
        for name in RAISE_ORDER[bottleneck]:
            if name in owned and name in space and space[name].index(cfg[name]) < len(space[name].values) - 1:
                return name, steps
        return None
    if bottleneck is Bottleneck.OVER:
        base = objective.cost_per_hour(cfg)
        best: tuple[float, str] | None = None
        for name in owned:
            down = space.move(cfg, {name: -steps})
            saving = base - objective.cost_per_hour(down)
            if down[name] != cfg[name] and saving > 1e-12 and (best is None or saving > best[0]):
                best = (saving, name)
        return None if best is None else (best[1], -steps)
    return None


def resource_knobs(space: ConfigSpace, objective: Objective) -> tuple[str, ...]:
    """Knobs whose value changes what the workload costs (one step up from the default costs more)."""
    base = space.default()
    out = []
    for name in space.names:
        up = space.move(base, {name: +1})
        down = space.move(base, {name: -1})
        if objective.cost_per_hour(up) != objective.cost_per_hour(base) or \
                objective.cost_per_hour(down) != objective.cost_per_hour(base):
            out.append(name)
    return tuple(out)


# ----------------------------------------------------------------------------------- one agent


class SimplexTuner:
    """One agent: Nelder-Mead over the ``owned`` knobs, steered by the bottleneck, scored per interval."""

    name = "unified"
    uses_guard_rails = True

    def __init__(self, space: ConfigSpace, objective: Objective, settings: UnifiedSettings | None = None,
                 owned: Sequence[str] | None = None) -> None:
        self.space = space
        self.objective = objective
        self.s = settings or UnifiedSettings()
        wanted = tuple(owned) if owned is not None else space.names
        unknown = sorted(set(wanted) - set(space.names))
        if unknown or not wanted:
            raise ValueError(f"tuner knobs {list(wanted)} must be a non-empty subset of {list(space.names)}")
        self.owned = tuple(n for n in space.names if n in wanted)
        self.costly = set(resource_knobs(space, objective)) & set(self.owned)
        self.simplex: Simplex | None = None
        self.cache: dict[Key, list[float]] = {}
        self.pending: Key | None = None
        self.pending_kind = "point"  # "point" (simplex asked), "reeval" (incumbent again), "hold" (collapsed)
        self.need = 0
        self.points = 0
        self.held = 0
        self.epoch = 0
        self.load_ewma = math.nan
        self.load_ref = math.nan
        self.calm = 0
        self.changed_last = False
        self.last_settle: tuple[Key, float] | None = None
        self.samples = 0
        self.decisions: deque[Key] = deque(maxlen=20)
        self.last_bottleneck = Bottleneck.NONE

    # --- encoding --------------------------------------------------------------------------------
    def key(self, config: Mapping[str, float]) -> Key:
        cfg = self.space.clip(config)
        return tuple(float(cfg[n]) for n in self.owned)

    def encode(self, key: Key) -> np.ndarray:
        out = []
        for name, v in zip(self.owned, key, strict=True):
            knob = self.space[name]
            n = len(knob.values) - 1
            out.append(knob.index(v) / n if n else 0.0)
        return np.asarray(out, dtype=float)

    def decode(self, x: Sequence[float]) -> Key:
        out = []
        for name, u in zip(self.owned, x, strict=True):
            vals = self.space[name].values
            out.append(float(vals[round(float(np.clip(u, 0.0, 1.0)) * (len(vals) - 1))]))
        return tuple(out)

    def _steps(self) -> list[float]:
        """Per-knob initial edge: the setting, but never less than one grid step."""
        out = []
        for name in self.owned:
            n = len(self.space[name].values) - 1
            out.append(min(1.0, max(self.s.initial_step, 1.0 / n)) if n else self.s.initial_step)
        return out

    # --- the search ------------------------------------------------------------------------------
    def restart(self, center: Key, raised: str | None = None, over: bool = False) -> None:
        """A fresh simplex around ``center``, its first edges pointing the way the bottleneck suggests:
        costly knobs probe downwards only when the service is over-provisioned (a cut of a busy
        service builds a backlog that spoils the next intervals' scores too), upwards otherwise; free
        knobs (batch size) probe upwards; a knob just raised for a bottleneck probes further up."""
        dirs = [-1 if (n in self.costly and over and n != raised) else 1 for n in self.owned]
        self.simplex = Simplex(self.encode(center), self._steps(), dirs)
        if not over:
            self._cost_neutral_edges(center)
        self.cache = {}
        self.epoch += 1
        self.points = 0
        self.held = 0
        self.load_ref = self.load_ewma
        self.pending = None
        self._next_pending()

    def _cost_neutral_edges(self, center: Key) -> None:
        """An initial edge that lowers a costly knob other than replicas (GPUs per replica: its grid is
        coarse, so one step halves the GPUs) also raises replicas to hold the cost: the probe asks
        "same GPUs, other shape", not "half the GPUs", which on a busy service builds a backlog that
        spoils the next points' scores too."""
        sx = self.simplex
        if sx is None or "replicas" not in self.owned:
            return
        base = dict(zip(self.owned, center, strict=True))
        full = self.space.clip({**self.space.default(), **base})
        cost = self.objective.cost_per_hour(full)
        r = self.owned.index("replicas")
        for i, name in enumerate(self.owned):
            vertex = dict(zip(self.owned, self.decode(sx.vertices[i + 1]), strict=True))
            if name == "replicas" or name not in self.costly or vertex[name] >= base[name]:
                continue
            knob = self.space["replicas"]
            cheaper = self.space.clip({**full, **vertex})
            best = min(knob.values, key=lambda v: (abs(self.objective.cost_per_hour({**cheaper, "replicas": v})
                                                       - cost), -v))
            sx.vertices[i + 1][r] = self.encode(tuple(best if n == "replicas" else vertex[n]
                                                      for n in self.owned))[r]

    def _score(self, key: Key) -> float:
        vals = self.cache.get(key, [])
        recent = vals[-2 * self.s.eval_intervals:]
        return float(np.mean(recent)) if recent else math.nan

    def _next_pending(self) -> None:
        """Ask the simplex for its next point; answer from the epoch's measurements when the point
        (snapped to the grid) was already measured. A simplex that keeps asking for measured points
        has collapsed onto the grid: hold its incumbent."""
        sx = self.simplex
        assert sx is not None
        if sx.phase == REFLECT and self.points >= self.s.reevaluate_every:
            best_key = self.decode(sx.vertices[0])
            self.points = 0
            self.pending, self.pending_kind = best_key, "reeval"
            self.need = len(self.cache.get(best_key, [])) + self.s.eval_intervals
            return
        for _ in range(8 * (len(self.owned) + 1)):
            k = self.decode(sx.ask())
            if len(self.cache.get(k, [])) >= self.s.eval_intervals:
                sx.tell(self._score(k))
                continue
            self.pending, self.pending_kind = k, "point"
            self.need = self.s.eval_intervals
            return
        best, _ = sx.best
        self.pending, self.pending_kind = self.decode(best), "hold"
        self.need = 0

    def _measured(self, key: Key, value: float) -> None:
        self.cache.setdefault(key, []).append(value)
        self.samples += 1
        if self.simplex is None or key != self.pending:
            return
        if self.pending_kind == "hold":
            self.held += 1
            if self.held >= self.s.hold_intervals:
                self.restart(key, over=self.last_bottleneck is Bottleneck.OVER)
            return
        if len(self.cache[key]) < self.need:
            return
        sx = self.simplex
        if self.pending_kind == "reeval":
            same = [i for i, v in enumerate(sx.vertices) if self.decode(v) == key]
            if same and sx.phase == REFLECT:
                sx.revalue(same, self._score(key))
        else:
            sx.tell(self._score(key))
            self.points += 1
        self.pending = None
        self._next_pending()

    # --- the Learner interface -------------------------------------------------------------------
    def learn(self, prev: Observation, action: Action, reward: float, obs: Observation) -> None:
        before, after = self.key(prev.config), self.key(action.target)
        if action.reason.startswith("rollback") and self.last_settle is not None and self.last_settle[0] == before:
            # The guard rails undid our last change because its first interval was much worse. That
            # interval is all we will learn about the point, so it is the point's score; when the
            # step limit had stopped us short of the point, the point we were heading for gets it too
            # (proposing it again would only be rolled back again).
            bad_key, bad = self.last_settle
            self.cache[bad_key] = [bad] * max(self.s.eval_intervals, len(self.cache.get(bad_key, [])))
            if self.pending is not None and self.pending_kind != "hold":
                self.cache[self.pending] = [bad] * self.s.eval_intervals
                self.need = 0
                self._measured(self.pending, bad)
        self.changed_last = before != after
        if self.changed_last:  # a transition interval (cold starts, rolling restarts): not a clean score
            self.last_settle = (after, -reward)
            return
        self.last_settle = None
        self._measured(after, -reward)

    def _note_load(self, obs: Observation) -> bool:
        """Update the smoothed load; True when it left the band the current simplex started in."""
        rate = obs.metric("request_rate_per_second", math.nan)
        if not math.isfinite(rate):
            return False
        a = self.s.load_smoothing
        self.load_ewma = rate if not math.isfinite(self.load_ewma) else a * rate + (1 - a) * self.load_ewma
        ref = self.load_ref
        return math.isfinite(ref) and abs(self.load_ewma - ref) > self.s.load_shift * max(ref, 1e-9)

    def propose(self, obs: Observation) -> tuple[Config, str]:
        """This agent's target for its own knobs (merged into the current configuration) and why."""
        current = self.space.clip(obs.config)
        here = self.key(current)
        load_moved = self._note_load(obs)
        diag = diagnose(obs, self.objective, self.s)
        self.last_bottleneck = diag
        over = diag is Bottleneck.OVER
        if self.simplex is None:
            self.restart(here, over=over)
            why = "start: simplex around the current configuration"
        elif load_moved:
            self.restart(here, over=over)
            why = f"load moved to {self.load_ewma:.2f} req/s: simplex restarted here"
        else:
            why = ""
        move = self._directed(diag, obs, current, here)
        if move is not None:
            return move
        assert self.pending is not None
        target = {**current, **dict(zip(self.owned, self.pending, strict=True))}
        kind = {"point": f"simplex {self.simplex.phase if self.simplex else INIT} point",
                "reeval": "re-measure the incumbent", "hold": "hold the incumbent"}[self.pending_kind]
        return target, why or f"{kind} (bottleneck: {diag})"

    def _directed(self, diag: Bottleneck, obs: Observation, current: Config, here: Key) -> tuple[Config, str] | None:
        misses = self.objective.shortfall(obs) / self.objective.miss_budget
        severe = misses >= self.s.severe_misses and diag in RAISE_ORDER
        if not self.s.bottleneck or self.simplex is None or (self.changed_last and not severe):
            return None
        best, _ = self.simplex.best
        incumbent = here == self.decode(best) or self.pending_kind in ("hold", "reeval")
        if diag is Bottleneck.OVER:
            self.calm += 1
        else:
            self.calm = 0
        if not incumbent:
            return None  # a probe that misses is only a bad score
        if (diag in RAISE_ORDER and misses > 0.0) or (diag is Bottleneck.OVER and self.calm >= self.s.calm_intervals):
            steps = max(2, self.s.bottleneck_steps) if severe else self.s.bottleneck_steps
            move = directed_move(diag, self.space, current, self.objective, self.owned, steps)
            if move is None:
                return None
            name, steps = move
            target = self.space.move(current, {name: steps})
            self.calm = 0
            self.restart(self.key(target), raised=name if steps > 0 else None, over=steps < 0)
            verb = "raise" if steps > 0 else "lower"
            return target, f"bottleneck {diag}: {verb} {name} to {target[name]:g}; simplex restarted there"
        return None

    def decide(self, obs: Observation) -> Action:
        target, why = self.propose(obs)
        self.decisions.append(self.key(target))
        att = obs.metric("slo_attainment")
        return Action(target, f"{why} (SLO attainment {att:.3f})")

    def convergence(self) -> Convergence:
        hist = list(self.decisions)
        stability = hist.count(hist[-1]) / len(hist) if hist else math.nan
        sx = self.simplex
        if sx is None or sx.phase == INIT:
            return Convergence(Verdict.EXPLORING, policy_stability=stability, samples=self.samples)
        vals = [v for v in sx.values if v is not None]
        spread = (max(vals) - min(vals)) / (abs(min(vals)) + 1.0) if vals else math.nan
        if self.pending_kind == "hold" and stability >= 0.9:
            verdict = Verdict.CONVERGED
        else:
            verdict = Verdict.CONVERGING
        return Convergence(verdict, residual=spread, policy_stability=stability, samples=self.samples)

    # --- checkpoints -----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "learner": self.name, "settings": asdict(self.s), "knobs": list(self.owned),
            "simplex": None if self.simplex is None else self.simplex.state_dict(),
            "cache": [[list(k), list(v)] for k, v in self.cache.items()],
            "pending": None if self.pending is None else list(self.pending), "pending_kind": self.pending_kind,
            "need": self.need, "points": self.points, "held": self.held, "epoch": self.epoch,
            "load_ewma": self.load_ewma, "load_ref": self.load_ref, "calm": self.calm,
            "samples": self.samples, "decisions": [list(k) for k in self.decisions],
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._apply(self.checked_state(state))

    def checked_state(self, state: Mapping[str, Any], name: str = "") -> dict[str, Any]:
        """The attributes a checkpoint restores, checked (a checkpoint is tenant input): every key a point on
        this tuner's grid, every measurement and counter a finite number in range, the simplex consistent,
        and a pending point wherever the search expects one. Raises ValueError naming the field."""
        what = f"{name} tuner" if name else "tuner"
        state = mapping(state, what)
        knobs = state.get("knobs", [])
        if not isinstance(knobs, list | tuple) or list(knobs) != list(self.owned):
            raise ValueError(f"checkpoint was made for knobs {str(knobs)[:80]}, this tuner has {list(self.owned)}")
        sx = state.get("simplex")
        simplex = None if sx is None else Simplex.from_state(sx, len(self.owned))
        cache: dict[Key, list[float]] = {}
        for n, row in enumerate(sequence(state.get("cache", []), f"{what} cache")):
            k, v = sequence(row, f"{what} cache entry {n}", 2)
            cache[self._checked_key(k, f"{what} cache entry {n} point")] = [
                finite_number(x, f"{what} cache entry {n} value", -MAX_SCORE, MAX_SCORE)
                for x in sequence(v, f"{what} cache entry {n} values")]
        pend = state.get("pending")
        pending = None if pend is None else self._checked_key(pend, f"{what} pending point")
        if simplex is not None and pending is None:
            raise ValueError(f"{what} in the checkpoint has a simplex but no pending point")
        pending_kind = state.get("pending_kind", "point")
        if pending_kind not in ("point", "reeval", "hold"):
            raise ValueError(f"{what} pending kind in the checkpoint is {str(pending_kind)[:40]!r}, "
                             "not 'point', 'reeval' or 'hold'")
        out: dict[str, Any] = {"simplex": simplex, "cache": cache, "pending": pending, "pending_kind": pending_kind}
        for field in ("need", "points", "held", "epoch", "calm", "samples"):
            out[field] = whole_number(state.get(field, 0), f"{what} {field}")
        for field in ("load_ewma", "load_ref"):
            out[field] = number_or_nan(state.get(field, math.nan), f"{what} {field}", 0.0, 1e12)
        decisions = sequence(state.get("decisions", []), f"{what} decisions")
        out["decisions"] = deque((self._checked_key(k, f"{what} decision {n}") for n, k in enumerate(decisions)),
                                 maxlen=20)
        return out

    def _checked_key(self, raw: Any, name: str) -> Key:
        values = sequence(raw, name, len(self.owned))
        return tuple(grid_value(v, self.space[n], f"{name} {n}") for n, v in zip(self.owned, values, strict=True))

    def _apply(self, checked: Mapping[str, Any]) -> None:
        for field, value in checked.items():
            setattr(self, field, value)
        # a restored agent has not seen the interval before its first decision: nothing is settling
        self.changed_last = False
        self.last_settle = None


# ----------------------------------------------------------------------------------- the baseline


class Independent:
    """Two :class:`SimplexTuner` agents, resources and application, sharing a reward and nothing else."""

    name = "independent"
    uses_guard_rails = True

    def __init__(self, space: ConfigSpace, objective: Objective, settings: UnifiedSettings | None = None) -> None:
        self.space = space
        self.s = settings or UnifiedSettings()
        res = resource_knobs(space, objective)
        app = tuple(n for n in space.names if n not in res)
        if not res or not app:
            raise ValueError(f"independent tuning needs both resource and application knobs; "
                             f"this space has resource knobs {list(res)} and application knobs {list(app)}")
        self.tuners = {"resources": SimplexTuner(space, objective, self.s, res),
                       "application": SimplexTuner(space, objective, self.s, app)}
        self.intervals = 0

    def _active(self) -> list[str]:
        if self.s.mode == "simultaneous":
            return list(self.tuners)
        turn = (self.intervals // self.s.turn_intervals) % len(self.tuners)
        return [list(self.tuners)[turn]]

    def decide(self, obs: Observation) -> Action:
        target = self.space.clip(obs.config)
        reasons = []
        for name in self._active():
            tuner = self.tuners[name]
            proposal, why = tuner.propose(obs)
            tuner.decisions.append(tuner.key(proposal))
            target.update({k: proposal[k] for k in tuner.owned})
            reasons.append(f"{name}: {why}")
        self.intervals += 1
        return Action(target, "; ".join(reasons) + f" (SLO attainment {obs.metric('slo_attainment'):.3f})")

    def learn(self, prev: Observation, action: Action, reward: float, obs: Observation) -> None:
        active = self._active() if self.s.mode == "simultaneous" else \
            [list(self.tuners)[((self.intervals - 1) // self.s.turn_intervals) % len(self.tuners)]]
        for name in active:
            self.tuners[name].learn(prev, action, reward, obs)

    def convergence(self) -> Convergence:
        """The less advanced of the two agents' verdicts (converged only when both are)."""
        rank = [Verdict.DIVERGING, Verdict.EXPLORING, Verdict.CONVERGING, Verdict.CONVERGED]
        parts = [t.convergence() for t in self.tuners.values()]
        worst = min(parts, key=lambda c: rank.index(c.verdict) if c.verdict in rank else 0)
        return Convergence(worst.verdict, residual=max(c.residual for c in parts),
                           policy_stability=min(c.policy_stability for c in parts),
                           samples=sum(c.samples for c in parts))

    def state_dict(self) -> dict[str, Any]:
        return {"learner": self.name, "settings": asdict(self.s), "knobs": list(self.space.names),
                "intervals": self.intervals, "tuners": {n: t.state_dict() for n, t in self.tuners.items()}}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Both agents' states, each checked before either is set (a checkpoint is tenant input)."""
        knobs = state.get("knobs", [])
        if not isinstance(knobs, list | tuple) or list(knobs) != list(self.space.names):
            raise ValueError(f"checkpoint was made for knobs {str(knobs)[:80]}, "
                             f"this workload has {list(self.space.names)}")
        tuners = mapping(state.get("tuners"), "independent tuners")
        missing = sorted(set(self.tuners) - set(tuners))
        if missing:
            raise ValueError(f"independent tuners in the checkpoint lack {missing}")
        checked = {n: t.checked_state(tuners[n], n) for n, t in self.tuners.items()}
        intervals = whole_number(state.get("intervals", 0), "independent intervals")
        for n, t in self.tuners.items():
            t._apply(checked[n])
        self.intervals = intervals


@register("unified", UnifiedSettings,
          "CoTuner-style joint tuning of resources and batch size: bottleneck-steered Nelder-Mead simplex",
          kinds=("inference",))
def _make_unified(space: ConfigSpace, objective: Objective, settings: UnifiedSettings) -> SimplexTuner:
    return SimplexTuner(space, objective, settings)


@register("independent", UnifiedSettings,
          "baseline for unified: the same simplex tuner run separately on resource and application knobs",
          kinds=("inference",))
def _make_independent(space: ConfigSpace, objective: Objective, settings: UnifiedSettings) -> Independent:
    return Independent(space, objective, settings)
