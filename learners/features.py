"""State encoding shared by the neural learners: configuration and load, scaled to about [0, 1].

VCONF's state is the current configuration; autocm adds the load (request rate, queue), because
the best configuration of an inference service depends on how busy it is. Load features are scaled by
reference values learned online (running maxima), so one network serves workloads of any size.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from learners.space import Config, ConfigSpace
from learners.types import Observation

LOAD_METRICS: tuple[str, ...] = ("request_rate_per_second",)
"""Load features: what the workload asks for, which the configuration does not control. (Queue
length is deliberately not one: it depends on the configuration, so it would leak the answer.)"""


@dataclass
class Encoder:
    """Maps (configuration, load) to a feature vector; remembers the load scale it has seen."""

    space: ConfigSpace
    load_metrics: tuple[str, ...] = LOAD_METRICS
    scale: dict[str, float] = field(default_factory=dict)

    @property
    def width(self) -> int:
        return len(self.space.knobs) + len(self.load_metrics)

    def load_of(self, obs: Observation) -> dict[str, float]:
        out = {}
        for m in self.load_metrics:
            v = obs.metric(m, 0.0)
            out[m] = v if math.isfinite(v) else 0.0
        return out

    def observe_scale(self, load: Mapping[str, float]) -> None:
        for m, v in load.items():
            self.scale[m] = max(self.scale.get(m, 1e-9), abs(v))

    def encode(self, config: Mapping[str, float], load: Mapping[str, float]) -> np.ndarray:
        cfg = self.space.normalise(self.space.clip(config))
        ld = [load.get(m, 0.0) / max(self.scale.get(m, 1.0), 1e-9) for m in self.load_metrics]
        return np.asarray(cfg + ld, dtype=np.float32)

    def encode_config(self, config: Mapping[str, float]) -> np.ndarray:
        """The configuration part of the features (independent of the load scale)."""
        return np.asarray(self.space.normalise(self.space.clip(config)), dtype=np.float32)

    def raw_load(self, load: Mapping[str, float]) -> np.ndarray:
        """The load part, unscaled: keep this (not the scaled features) in long-lived memories."""
        return np.asarray([load.get(m, 0.0) for m in self.load_metrics], dtype=np.float32)

    def scale_loads(self, raw: np.ndarray) -> np.ndarray:
        """Rows of :meth:`raw_load` scaled by the current reference values, as :meth:`encode` does."""
        ref = np.asarray([max(self.scale.get(m, 1.0), 1e-9) for m in self.load_metrics], dtype=np.float32)
        return (raw / ref).astype(np.float32)

    def encode_many(self, configs: list[Config], load: Mapping[str, float]) -> np.ndarray:
        return np.stack([self.encode(c, load) for c in configs]) if configs else np.zeros((0, self.width))

    def state_dict(self) -> dict[str, float]:
        return dict(self.scale)
