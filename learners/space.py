"""Knobs and configuration spaces.

A knob is either an integer range walked in fixed steps (replicas, batch size, CPU millicores) or
an ordered set of measured choices (GPUs per replica: only tensor-parallel degrees that were
profiled). VCONF-style learners move each knob one step up or down; rule-based baselines jump to a
target. Both go through :meth:`ConfigSpace.clip`, so nothing outside the bounds is ever proposed.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import product

Config = dict[str, float]
"""A concrete setting of every knob, by knob name. Values are numbers in the knob's unit."""


@dataclass(frozen=True)
class Knob:
    """One tunable dimension of a workload.

    ``choices`` (sorted) makes the knob categorical-ordered; otherwise the knob ranges over
    ``lower..upper`` in multiples of ``step`` from ``lower``. ``restarts`` says whether changing
    it restarts pods (GPUs per replica, batch size baked into the pod template), which the
    objective charges for. ``cost_per_unit_hour`` prices one unit held for an hour in GPU-hour
    equivalents, so that replicas x GPUs and CPU can be added into one cost.
    """

    name: str
    lower: float = 0.0
    upper: float = 0.0
    step: float = 1.0
    choices: tuple[float, ...] | None = None
    restarts: bool = False
    default: float | None = None

    def __post_init__(self) -> None:
        if self.choices is not None:
            if not self.choices:
                raise ValueError(f"knob {self.name!r}: choices must not be empty")
            ordered = tuple(sorted(float(c) for c in self.choices))
            object.__setattr__(self, "choices", ordered)
            object.__setattr__(self, "lower", ordered[0])
            object.__setattr__(self, "upper", ordered[-1])
        else:
            if self.upper < self.lower:
                raise ValueError(
                    f"knob {self.name!r}: upper bound {self.upper} is below lower bound {self.lower}"
                )
            if self.step <= 0:
                raise ValueError(f"knob {self.name!r}: step must be positive, got {self.step}")
        if self.default is not None and not self.lower <= self.default <= self.upper:
            raise ValueError(
                f"knob {self.name!r}: default {self.default} outside [{self.lower}, {self.upper}]"
            )

    @property
    def values(self) -> tuple[float, ...]:
        """Every admissible value, ascending."""
        if self.choices is not None:
            return self.choices
        n = round((self.upper - self.lower) / self.step)
        return tuple(self.lower + i * self.step for i in range(n + 1))

    def clip(self, value: float) -> float:
        """The admissible value nearest to ``value`` (ties go down: cheaper)."""
        if self.choices is not None:
            return min(self.choices, key=lambda c: (abs(c - value), c))
        v = min(max(value, self.lower), self.upper)
        k = round((v - self.lower) / self.step)
        return min(self.lower + k * self.step, self.upper)

    def index(self, value: float) -> int:
        """Position of (the clipped) ``value`` among :attr:`values`."""
        v = self.clip(value)
        if self.choices is not None:
            return self.choices.index(v)
        return round((v - self.lower) / self.step)

    def move(self, value: float, steps: int) -> float:
        """``steps`` positions up (positive) or down (negative), stopping at the bounds."""
        vals = self.values
        i = min(max(self.index(value) + steps, 0), len(vals) - 1)
        return vals[i]

    def initial(self) -> float:
        return self.default if self.default is not None else self.lower


@dataclass(frozen=True)
class ConfigSpace:
    """The knobs of one workload, in a fixed order (the order learners encode states in)."""

    knobs: tuple[Knob, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        names = [k.name for k in self.knobs]
        if not names:
            raise ValueError("a configuration space needs at least one knob")
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"duplicate knob names: {sorted(dup)}")

    @classmethod
    def of(cls, *knobs: Knob) -> ConfigSpace:
        return cls(tuple(knobs))

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(k.name for k in self.knobs)

    def __getitem__(self, name: str) -> Knob:
        for k in self.knobs:
            if k.name == name:
                return k
        raise KeyError(f"no knob named {name!r}; knobs are {list(self.names)}")

    def __contains__(self, name: object) -> bool:
        return name in self.names

    def default(self) -> Config:
        return {k.name: k.initial() for k in self.knobs}

    def clip(self, config: Mapping[str, float]) -> Config:
        """Every knob snapped into bounds; knobs missing from ``config`` take their default."""
        return {k.name: k.clip(config.get(k.name, k.initial())) for k in self.knobs}

    def contains(self, config: Mapping[str, float]) -> bool:
        return all(k.name in config and k.clip(config[k.name]) == config[k.name] for k in self.knobs)

    def move(self, config: Mapping[str, float], steps: Mapping[str, int]) -> Config:
        """Apply per-knob step moves (VCONF's increase/decrease/keep)."""
        base = self.clip(config)
        return {n: self[n].move(v, steps.get(n, 0)) for n, v in base.items()}

    def size(self) -> int:
        n = 1
        for k in self.knobs:
            n *= len(k.values)
        return n

    def enumerate(self) -> Iterator[Config]:
        """Every configuration (use only on small spaces: see :meth:`size`)."""
        for combo in product(*(k.values for k in self.knobs)):
            yield dict(zip(self.names, combo, strict=True))

    def normalise(self, config: Mapping[str, float]) -> list[float]:
        """Each knob mapped to [0, 1] by its index, the encoding neural learners consume."""
        out = []
        for k in self.knobs:
            n = len(k.values) - 1
            out.append(k.index(config[k.name]) / n if n else 0.0)
        return out

    def step_moves(self) -> Sequence[dict[str, int]]:
        """VCONF's action set: one knob up or down by one step, or keep everything."""
        moves: list[dict[str, int]] = [{}]
        for k in self.knobs:
            moves.append({k.name: +1})
            moves.append({k.name: -1})
        return moves
