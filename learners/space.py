"""Knobs and configuration spaces.

A knob is either an integer range walked in fixed steps (replicas, batch size, CPU millicores) or
an ordered set of measured choices (GPUs per replica: only tensor-parallel degrees that were
profiled). VCONF-style learners move each knob one step up or down; rule-based baselines jump to a
target. Both go through :meth:`ConfigSpace.clip`, so nothing outside the bounds is ever proposed.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import product
from typing import overload

Config = dict[str, float]
"""A concrete setting of every knob, by knob name. Values are numbers in the knob's unit."""


def grid_size(lower: float, upper: float, step: float) -> int:
    """Values in ``lower..upper`` in steps of ``step``; the last never exceeds ``upper``, but a quotient
    a rounding error short of a whole number (``(2 - 1) / 1e-9``) keeps its end value."""
    q = (upper - lower) / step
    whole = round(q)
    return (whole if abs(q - whole) <= 1e-9 * max(1.0, q) else math.floor(q)) + 1


class Grid(Sequence[float]):
    """``lower, lower + step, ...`` (``n`` values), computed on demand: a range knob's values.

    Arithmetic, not a list, so that a knob over ``0..1e12`` costs the same memory and time per move
    as one over ``1..8`` (a list of 1e8 values took 4 GB and 42 s per move). Compares equal to any
    sequence with the same values, so code written against the old tuple keeps working.
    """

    __slots__ = ("lower", "n", "step")

    def __init__(self, lower: float, step: float, n: int) -> None:
        self.lower, self.step, self.n = float(lower), float(step), int(n)

    def __len__(self) -> int:
        return self.n

    @overload
    def __getitem__(self, i: int) -> float: ...
    @overload
    def __getitem__(self, i: slice) -> tuple[float, ...]: ...

    def __getitem__(self, i: int | slice) -> float | tuple[float, ...]:
        if isinstance(i, slice):
            return tuple(self.lower + j * self.step for j in range(self.n)[i])
        j = int(i) + self.n if i < 0 else int(i)
        if not 0 <= j < self.n:
            raise IndexError(f"grid index {i} out of range (0..{self.n - 1})")
        return self.lower + j * self.step

    def __iter__(self) -> Iterator[float]:
        return (self.lower + j * self.step for j in range(self.n))

    def __reversed__(self) -> Iterator[float]:
        return (self.lower + j * self.step for j in reversed(range(self.n)))

    def _position(self, value: float) -> int | None:
        if not isinstance(value, int | float) or not math.isfinite(value):
            return None
        j = round((value - self.lower) / self.step)
        return j if 0 <= j < self.n and self.lower + j * self.step == value else None

    def __contains__(self, value: object) -> bool:
        return self._position(value) is not None  # type: ignore[arg-type]

    def index(self, value: float, start: int = 0, stop: int | None = None) -> int:
        j = self._position(value)
        if j is None or j < start or (stop is not None and j >= stop):
            raise ValueError(f"{value!r} is not on the grid")
        return j

    def count(self, value: float) -> int:
        return int(value in self)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Grid):
            return (self.lower, self.step, self.n) == (other.lower, other.step, other.n)
        if isinstance(other, Sequence) and not isinstance(other, str):
            return len(other) == self.n and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self.lower, self.step, self.n))

    def __repr__(self) -> str:
        if self.n <= 6:
            return repr(tuple(self))
        return f"Grid({self[0]:g}, {self[1]:g}, ..., {self[-1]:g}; {self.n} values)"


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
    def values(self) -> Sequence[float]:
        """Every admissible value, ascending (a range knob's are computed, never listed)."""
        if self.choices is not None:
            return self.choices
        return Grid(self.lower, self.step, self.size)

    @property
    def size(self) -> int:
        """How many values the knob has: arithmetic, however wide the range."""
        if self.choices is not None:
            return len(self.choices)
        return grid_size(self.lower, self.upper, self.step)

    def clip(self, value: float) -> float:
        """The admissible value nearest to ``value`` (ties go down: cheaper)."""
        if self.choices is not None:
            return min(self.choices, key=lambda c: (abs(c - value), c))
        return self.lower + self.index(value) * self.step

    def index(self, value: float) -> int:
        """Position of (the clipped) ``value`` among :attr:`values`."""
        if self.choices is not None:
            return self.choices.index(self.clip(value))
        v = min(max(value, self.lower), self.upper)
        return min(max(round((v - self.lower) / self.step), 0), self.size - 1)

    def move(self, value: float, steps: int) -> float:
        """``steps`` positions up (positive) or down (negative), stopping at the bounds."""
        i = min(max(self.index(value) + steps, 0), self.size - 1)
        return self.choices[i] if self.choices is not None else self.lower + i * self.step

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
            n *= k.size
        return n

    def enumerate(self) -> Iterator[Config]:
        """Every configuration (use only on small spaces: see :meth:`size`)."""
        for combo in product(*(k.values for k in self.knobs)):
            yield dict(zip(self.names, combo, strict=True))

    def normalise(self, config: Mapping[str, float]) -> list[float]:
        """Each knob mapped to [0, 1] by its index, the encoding neural learners consume."""
        out = []
        for k in self.knobs:
            n = k.size - 1
            out.append(k.index(config[k.name]) / n if n else 0.0)
        return out

    def step_moves(self) -> Sequence[dict[str, int]]:
        """VCONF's action set: one knob up or down by one step, or keep everything."""
        moves: list[dict[str, int]] = [{}]
        for k in self.knobs:
            moves.append({k.name: +1})
            moves.append({k.name: -1})
        return moves
