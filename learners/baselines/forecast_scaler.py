"""A forecast-aware proactive scaler after SageServe (Jaiswal et al., SIGMETRICS 2026): not a learner.

SageServe scales LLM serving instances ahead of demand: it forecasts the next intervals' token demand
from history (ARIMA there; Holt-Winters here, see learners/forecast.py), turns it into instances through
a per-configuration capacity measured offline (its splitwise-based profiles), starts them early enough to
absorb the cold start, and keeps a reactive, memory-utilisation-based correction for what the forecast
misses. This module is that policy for one service, stepped once per control interval:

1. **demand**: the interval's prompt tokens per second (``prompt_tokens_per_second``, the rate of
   ``vllm:prompt_tokens_total``) goes into the forecaster; nothing else ever does, and only in time order;
2. **capacity**: prompt tokens per second one replica of each TP degree prefills, interpolated at the
   observed mean prompt length in ``prefill_seconds`` (rows of the latency table the service was profiled
   with: prompt tokens -> prefill seconds at batch 1), times ``utilization`` (the planned busy fraction,
   the headroom that absorbs bursts inside an interval, decode steps and queueing; swept by scenarios).
   Without a table, capacity is estimated online from the DCGM busy fraction (tokens per busy second);
3. **lead time**: the forecast covers the next ``ceil(cold_start_s / interval) + 1`` intervals and the
   scaler provisions for the largest upper forecast (point + ``z`` spreads) among them;
4. **reactive correction**: when the KV cache is fuller than ``kv_high`` or more than ``queue_high``
   requests per replica wait, at least ``1 + reactive_step`` times the current replicas; scale-down only
   after the need has stayed lower for ``scale_down_hold_intervals`` intervals.

It picks the TP degree with the most prefill tokens per GPU-second once (a TP change restarts every
replica) and never touches the batch size. It is tuned at its best by sweeping ``utilization``.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from learners.base import RuleBased, register
from learners.forecast import HoltWinters, HoltWintersSettings
from learners.objective import Objective
from learners.space import ConfigSpace
from learners.types import Action, Observation


@dataclass(frozen=True)
class ForecastSettings:
    prefill_seconds: Mapping[str, Sequence[Sequence[float]]] = field(default_factory=dict)
    """Per TP degree (``"4"``, ``"8"``): rows ``[prompt_tokens, seconds]`` of one prompt's prefill at batch
    1, from the service's latency table. Empty: capacity is estimated online from GPU busy time."""

    choose_tp: bool = True
    """Move to the TP degree with the most prefill tokens per GPU-second (one rolling restart at the start);
    False keeps the workload's TP degree."""

    utilization: float = 0.5
    """Planned fraction of a replica's prefill capacity (0..1]: lower is safer and dearer. Swept."""

    interval_s: float = 60.0
    """How often the scaler decides and the forecaster gets a value (SageServe plans per interval)."""

    cold_start_s: float = 60.0
    """Seconds from asking for a replica to its serving; sets the forecast lead."""

    z: float = 1.0
    """Spreads of recent one-step forecast error added to the forecast (1: about the 84th percentile)."""

    kv_high: float = 0.9
    """KV-cache usage above which the reactive correction adds replicas (vLLM starts preempting near 1)."""

    queue_high: float = 4.0
    """Waiting requests per ready replica above which the reactive correction adds replicas."""

    reactive_step: float = 0.25
    """The reactive correction asks for at least (1 + this) x the current replicas."""

    scale_down_hold_intervals: int = 5
    """Intervals the need must stay below the current count before scaling down (no churn)."""

    alpha: float = HoltWintersSettings.alpha
    beta: float = HoltWintersSettings.beta
    gamma: float = HoltWintersSettings.gamma
    phi: float = HoltWintersSettings.phi
    season_length: int = HoltWintersSettings.season_length
    """Holt-Winters constants (learners/forecast.py documents each)."""

    def __post_init__(self) -> None:
        if not 0.0 < self.utilization <= 1.0:
            raise ValueError(f"forecast utilization must be in (0, 1], got {self.utilization}")
        if self.interval_s <= 0 or self.cold_start_s < 0 or self.z < 0:
            raise ValueError("forecast interval_s must be positive, cold_start_s and z not negative")
        if not 0 < self.kv_high <= 1 or self.queue_high < 0 or self.reactive_step < 0:
            raise ValueError("forecast kv_high must be in (0, 1], queue_high and reactive_step not negative")
        if self.scale_down_hold_intervals < 0:
            raise ValueError("forecast scale_down_hold_intervals must not be negative")
        for tp, rows in self.prefill_seconds.items():
            pts = [(float(p), float(t)) for p, t in rows]
            if not pts or any(p <= 0 or t <= 0 for p, t in pts):
                raise ValueError(f"forecast prefill_seconds[{tp!r}] needs rows of positive [prompt_tokens, seconds]")

    def holt_winters(self) -> HoltWintersSettings:
        return HoltWintersSettings(self.alpha, self.beta, self.gamma, self.phi, self.season_length)


def prefill_capacity(rows: Sequence[Sequence[float]], prompt_tokens: float) -> float:
    """Prompt tokens per second of one replica prefilling prompts of ``prompt_tokens``: the length over its
    prefill time, interpolated log-log between the table's rows (clamped at the ends)."""
    pts = sorted((float(p), float(t)) for p, t in rows)
    xs = [math.log(p) for p, _ in pts]
    x = math.log(max(prompt_tokens, 1.0))
    i = bisect.bisect_left(xs, x)
    if i <= 0:
        seconds = pts[0][1] * prompt_tokens / pts[0][0]  # per-token time of the shortest row
    elif i >= len(pts):
        seconds = pts[-1][1] * prompt_tokens / pts[-1][0]
    else:
        t0, t1 = pts[i - 1][1], pts[i][1]
        w = (x - xs[i - 1]) / (xs[i] - xs[i - 1])
        seconds = math.exp(math.log(t0) + w * (math.log(t1) - math.log(t0)))
    return prompt_tokens / seconds


class ForecastScaler(RuleBased):
    """Proactive replicas from a demand forecast, with a reactive KV/queue correction."""

    name = "forecast"

    def __init__(self, space: ConfigSpace, settings: ForecastSettings) -> None:
        if "replicas" not in space:
            raise ValueError("the forecast baseline needs a 'replicas' knob in the configuration space")
        self.s = settings
        self.space = space
        self.knob = space["replicas"]
        self.period_s: float = settings.interval_s
        self.forecaster = HoltWinters(settings.holt_winters())
        self.tables = {float(k): v for k, v in settings.prefill_seconds.items()}
        self.tp = self._pick_tp()
        self.below: deque[int] = deque(maxlen=max(settings.scale_down_hold_intervals, 1))
        self.mean_prompt = math.nan
        self.online_capacity = math.nan  # prompt tokens per busy second per replica, when no table
        self.last_forecast: list[float] = []

    def _pick_tp(self) -> float | None:
        """The allowed TP degree with the most prefill tokens per GPU-second at 2,048-token prompts (the
        mean of the bundled code trace; the ranking is the same at every length in the bundled table)."""
        if "gpus_per_replica" not in self.space or not self.s.choose_tp:
            return None
        choices = self.space["gpus_per_replica"].values
        known = [tp for tp in choices if tp in self.tables]
        if not known:
            return None
        return max(known, key=lambda tp: prefill_capacity(self.tables[tp], 2048.0) / tp)

    def _capacity(self, tp: float | None) -> float:
        if tp is not None and tp in self.tables and math.isfinite(self.mean_prompt):
            return prefill_capacity(self.tables[tp], self.mean_prompt)
        return self.online_capacity

    def _observe(self, obs: Observation, ready: int) -> float | None:
        """Feed the interval's demand to the forecaster; returns it (None when not exported)."""
        tokens = obs.metrics.get("prompt_tokens_per_second")
        rate = obs.metrics.get("request_rate_per_second")
        if tokens is None or not math.isfinite(tokens):
            return None
        if rate is not None and rate > 0 and tokens > 0:
            mean = tokens / rate
            self.mean_prompt = mean if not math.isfinite(self.mean_prompt) else 0.8 * self.mean_prompt + 0.2 * mean
        util = obs.metrics.get("gpu_utilization")
        if util is not None and math.isfinite(util) and util > 0.2 and ready > 0:
            estimate = tokens / (util * ready)
            self.online_capacity = estimate if not math.isfinite(self.online_capacity) else \
                0.8 * self.online_capacity + 0.2 * estimate
        self.forecaster.observe(float(obs.time_s), float(tokens))
        return float(tokens)

    def decide(self, obs: Observation) -> Action:
        current = round(obs.config.get("replicas", self.knob.initial()))
        ready = sum(1 for p in obs.replicas if p.ready) if obs.replicas else current
        tp = self.tp if self.tp is not None else obs.config.get("gpus_per_replica")
        demand = self._observe(obs, ready)
        target: dict[str, float] = dict(obs.config)
        if self.tp is not None:
            target["gpus_per_replica"] = float(self.tp)
        capacity = self._capacity(tp)
        if demand is None or not math.isfinite(capacity) or capacity <= 0:
            target["replicas"] = float(current)
            return Action(target, "No prompt-token rate or capacity estimate yet: keeping "
                                  f"{current} replicas.")
        steps = math.ceil(self.s.cold_start_s / self.s.interval_s) + 1
        self.last_forecast = self.forecaster.upper(steps, self.s.z)
        planned = max(self.last_forecast)
        need = math.ceil(planned / (capacity * self.s.utilization))
        words = [f"Prompt demand {demand:.0f} tokens/s; the next {steps} intervals' upper forecast peaks at "
                 f"{planned:.0f}; one replica prefills {capacity:.0f} tokens/s, planned at "
                 f"{self.s.utilization:.0%}: {need} replicas."]
        kv, queue = obs.metric("kv_cache_usage", 0.0), obs.metric("queue_length", 0.0)
        if kv > self.s.kv_high or queue > self.s.queue_high * max(ready, 1):
            floor = math.ceil(current * (1 + self.s.reactive_step))
            if floor > need:
                words.append(f"Reactive correction (KV {kv:.0%}, {queue:.0f} waiting): at least {floor}.")
                need = floor
        self.below.append(need)
        desired = need
        if need < current:
            held = len(self.below) >= self.s.scale_down_hold_intervals and all(n < current for n in self.below)
            if self.s.scale_down_hold_intervals > 0 and not held:
                desired = current
                words.append(f"Holding {current} until the need stays lower for "
                             f"{self.s.scale_down_hold_intervals} intervals.")
            else:
                desired = max(self.below)  # the largest recent need, so a held scale-down is not undercut
        lo, hi = math.ceil(self.knob.lower), math.floor(self.knob.upper)
        desired = min(max(desired, lo), hi)
        words.append(f"Keeping {current} replicas." if desired == current
                     else f"Scaling from {current} to {desired} replicas.")
        target["replicas"] = float(desired)
        return Action(target, " ".join(words))

    def state_dict(self) -> dict[str, Any]:
        return {}


@register("forecast", ForecastSettings, "proactive scaler after SageServe: Holt-Winters token-demand forecast, "
          "latency-table capacity, cold-start lead, reactive KV/queue correction", kinds=("inference",))
def _make(space: ConfigSpace, objective: Objective, settings: ForecastSettings) -> ForecastScaler:
    return ForecastScaler(space, settings)
