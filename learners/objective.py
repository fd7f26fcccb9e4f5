"""The SLO-based objective every autocm learner optimises.

reward = performance against the SLO - cost of what is held - penalties.

This is the VCONF reward shape (Rao et al., ICAC 2009: SLA satisfaction minus a resource
term) extended with the restart charge DESIGN.md asks for, because changing GPUs per replica or the
batch size restarts pods and costs real service.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from learners.space import Config
from learners.types import Observation


@dataclass(frozen=True)
class Objective:
    """An SLO and the price of resources.

    ``metric``/``target``: the SLO, for example ``ttft_p99_seconds <= 0.5``.
    ``attainment``: the fraction of requests that must meet it (0.99: 99% of requests).
    ``unit_costs``: cost per hour of one unit of each knob, in GPU-hour equivalents; a knob's
    cost is the product of its value and the values of the knobs named in ``multiply`` (replicas x
    GPUs per replica).
    ``violation_penalty``: reward lost per *miss budget* of shortfall (with a 99% attainment SLO, the
    budget is 1% of requests: attaining 97% costs three penalties). Set it above the cost of the
    most expensive configuration per interval, so that meeting the SLO always beats saving resources
    (:meth:`scaled_to` does that).
    ``restart_penalty``: reward lost each time a change restarts pods.
    ``also``: further latency targets of the same SLO, metric -> target (a request meets the SLO only under
    every target; the simulator's attainment counts it that way). ``metric``/``target`` stay the headline
    tail that rules and most learners read; a learner that labels capacity may read the worst of them,
    because a TBT target can bind while the TTFT tail is far below its own (batch-size tuning).
    """

    metric: str = "ttft_p99_seconds"
    target: float = 0.5
    attainment: float = 0.99
    higher_is_better: bool = False
    unit_costs: Mapping[str, float] = field(default_factory=lambda: {"gpus": 1.0})
    violation_penalty: float = 50.0
    restart_penalty: float = 0.5
    also: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 0.0 < self.attainment <= 1.0:
            raise ValueError(f"attainment must be in (0, 1], got {self.attainment}")
        if self.target <= 0 or not math.isfinite(self.target):
            raise ValueError(f"SLO target must be a positive number, got {self.target}")
        for name, value in self.also.items():
            if not isinstance(value, (int, float)) or not 0 < value < math.inf:
                raise ValueError(f"SLO target {name} must be a positive number, got {value!r}")

    def targets(self) -> dict[str, float]:
        """Every latency target of the SLO, the headline one first."""
        return {self.metric: self.target, **{k: v for k, v in self.also.items() if k != self.metric}}

    @property
    def miss_budget(self) -> float:
        """The fraction of requests allowed to miss the SLO (at least 1%, so that 100% SLOs stay finite)."""
        return max(1.0 - self.attainment, 0.01)

    def scaled_to(self, max_cost_per_hour: float, interval_s: float, margin: float = 2.0) -> Objective:
        """A copy whose violation penalty is ``margin`` times the costliest configuration's interval cost."""
        from dataclasses import replace

        penalty = margin * max_cost_per_hour * interval_s / 60.0
        return replace(self, violation_penalty=max(self.violation_penalty, penalty))

    def cost_per_hour(self, config: Mapping[str, float]) -> float:
        """Resource cost of holding ``config`` for one hour (GPU-hour equivalents)."""
        replicas = config.get("replicas", 1.0)
        total = 0.0
        for name, price in self.unit_costs.items():
            if name == "gpus":
                total += price * replicas * config.get("gpus_per_replica", config.get("gpus", 1.0))
            elif name in config:
                per = config[name] * (replicas if name != "replicas" else 1.0)
                total += price * per
        return total

    def meets(self, obs: Observation) -> bool:
        """Did the workload meet its SLO over the interval that ``obs`` summarises?"""
        att = obs.metric("slo_attainment")
        if math.isfinite(att):
            return att >= self.attainment
        value = obs.metric(self.metric)
        if not math.isfinite(value):
            return False
        return value >= self.target if self.higher_is_better else value <= self.target

    def shortfall(self, obs: Observation) -> float:
        """How far the interval fell short of the SLO, 0 when met, in attainment units (0..1)."""
        att = obs.metric("slo_attainment")
        if math.isfinite(att):
            return max(0.0, self.attainment - att)
        value = obs.metric(self.metric)
        if not math.isfinite(value):
            return 1.0
        ratio = self.target / value if not self.higher_is_better else value / self.target
        return max(0.0, 1.0 - ratio) if value > 0 else 0.0

    def reward(self, obs: Observation, restarted: bool = False, config: Config | None = None) -> float:
        """Per-interval reward: larger is better, bounded, comparable across intervals."""
        cfg = config if config is not None else obs.config
        hours = obs.interval_s / 3600.0
        r = -self.cost_per_hour(cfg) * hours * 60.0  # cost per interval, in GPU-minutes
        r -= self.violation_penalty * min(self.shortfall(obs) / self.miss_budget, 20.0)
        if restarted:
            r -= self.restart_penalty
        return r
