"""Checks a restored learner state must pass before a learner acts on it.

A checkpoint is tenant input: the operator restores what a tenant pushed (``autocm push-checkpoint`` or a ConfigMap
named in the custom resource). A Gaussian posterior whose precision is not positive definite, or holds an infinity
or a NaN, restores without complaint and then fails in the middle of a later control step (an SVD that does not
converge, a NaN cast to an integer), every step, for good. These checks refuse such a state at restore instead, so
the operator reports the checkpoint as not used and the learner runs on from what it had. They bound magnitudes
far beyond anything a learner here reaches (weights on log scales, precisions of at most millions of samples), so a
real checkpoint never trips them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from learners.space import Knob

MAX_WEIGHT = 1e6
"""Largest magnitude of a posterior mean's entry (the models' weights are on log or logit scales)."""
MAX_PRECISION = 1e15
"""Largest magnitude of a precision matrix entry (precision grows with samples, about n / noise variance)."""


def finite_array(value: Any, name: str, shape: tuple[int, ...] | None = None, bound: float = MAX_WEIGHT) -> np.ndarray:
    """``value`` as a float array of ``shape`` (if given) whose entries are finite and at most ``bound`` in size."""
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name} in the checkpoint is not an array of numbers") from e
    if shape is not None and arr.shape != shape:
        raise ValueError(f"{name} in the checkpoint has shape {arr.shape}, {shape} here")
    if not np.all(np.isfinite(arr)) or (arr.size and float(np.max(np.abs(arr))) > bound):
        raise ValueError(f"{name} in the checkpoint holds a non-finite value or one larger than {bound:g}")
    return arr


def gaussian(mean: Any, precision: Any, name: str, size: int) -> tuple[np.ndarray, np.ndarray]:
    """A Gaussian posterior's mean (``size``,) and precision (``size``, ``size``): finite, bounded, and the
    precision symmetric positive definite (its Cholesky factor exists)."""
    m = finite_array(mean, f"{name} mean", (size,))
    p = finite_array(precision, f"{name} precision", (size, size), MAX_PRECISION)
    if not np.allclose(p, p.T, rtol=1e-6, atol=1e-9):
        raise ValueError(f"{name} precision in the checkpoint is not symmetric")
    try:
        np.linalg.cholesky(p)
    except np.linalg.LinAlgError as e:
        raise ValueError(f"{name} precision in the checkpoint is not positive definite") from e
    return m, p


def finite_number(value: Any, name: str, low: float = -MAX_WEIGHT, high: float = MAX_WEIGHT) -> float:
    """``value`` as a finite float within [``low``, ``high``] (booleans are not numbers here)."""
    if isinstance(value, np.generic):  # a numpy scalar (an in-process state; JSON never holds one)
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} in the checkpoint is not a number: {str(value)[:40]!r}")
    x = float(value)
    if not (low <= x <= high):  # NaN fails both comparisons
        raise ValueError(f"{name} in the checkpoint is {x!r}, outside [{low:g}, {high:g}]")
    return x


MAX_COUNT = 2**53
"""Largest count a restored learner accepts: every integer up to it is exact as a JSON number, and a counter
restored below it cannot outgrow it (it counts control intervals), so a learner never refuses its own state."""


def whole_number(value: Any, name: str, low: int = 0, high: int = MAX_COUNT) -> int:
    """``value`` as an integer within [``low``, ``high``] (a count: a float with a fraction is refused)."""
    x = finite_number(value, name, low, high)
    if x != int(x):
        raise ValueError(f"{name} in the checkpoint is {x!r}, not a whole number")
    return int(x)


def number_or_nan(value: Any, name: str, low: float = -MAX_WEIGHT, high: float = MAX_WEIGHT) -> float:
    """Like :func:`finite_number`, but NaN (a learner's "not measured yet") is kept."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return math.nan
    return finite_number(value, name, low, high)


def sequence(value: Any, name: str, length: int | None = None) -> list[Any]:
    """``value`` as a list (a JSON array: a list or a tuple, or a 1-d array), of ``length`` items if given."""
    if isinstance(value, np.ndarray) and value.ndim == 1:
        value = value.tolist()
    if not isinstance(value, list | tuple):
        raise ValueError(f"{name} in the checkpoint is not a list: {str(value)[:40]!r}")
    if length is not None and len(value) != length:
        raise ValueError(f"{name} in the checkpoint has {len(value)} items, {length} here")
    return list(value)


def mapping(value: Any, name: str) -> Mapping[str, Any]:
    """``value`` if it is a mapping (a JSON object)."""
    if not isinstance(value, Mapping):
        raise ValueError(f"{name} in the checkpoint is not a mapping: {str(value)[:40]!r}")
    return value


def grid_value(value: Any, knob: Knob, name: str) -> float:
    """``value`` as one of ``knob``'s own values (a learner indexes and proposes with it)."""
    if isinstance(value, np.generic):
        value = value.item()
    ok = not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)
    if not ok or knob.clip(float(value)) != float(value):  # on the grid: what ConfigSpace.contains asks, O(1)
        raise ValueError(f"{name} in the checkpoint is {str(value)[:40]!r}, not a value of knob {knob.name!r} here")
    return float(value)
