"""Nelder-Mead simplex search as an ask/tell state machine, for objectives measured one point at a time.

A control loop cannot call ``f(x)``: it proposes a configuration, waits for intervals of service, and
only then learns what it cost. So the classic algorithm (Nelder & Mead, Computer Journal 7(4), 1965;
coefficients and the inside/outside contraction split as in Lagarias, Reeds, Wright & Wright, SIAM J.
Optim. 9(1), 1998) is written here as ``ask() -> x`` / ``tell(f)``: ``ask`` is idempotent (the
caller may hold the same point for several intervals) and ``tell`` advances the state. Points live in
the unit cube; proposals are clipped into it, which keeps the simplex inside the knob bounds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from learners.state_checks import finite_array, finite_number, mapping, number_or_nan, sequence, whole_number

INIT, REFLECT, EXPAND, CONTRACT_OUT, CONTRACT_IN = "init", "reflect", "expand", "contract-out", "contract-in"
CUBE_SLACK = 1e-9
"""How far outside [0, 1] a restored point may lie (rounding); the search itself never leaves the cube."""
MAX_VALUE = 1e12
"""Largest magnitude of a measured value a restored simplex accepts (rewards are GPU-minutes and penalties)."""


@dataclass(frozen=True)
class SimplexCoefficients:
    """The standard choice (Lagarias et al. 1998, eq. 2.1): reflect 1, expand 2, contract 1/2, shrink 1/2."""

    reflect: float = 1.0
    expand: float = 2.0
    contract: float = 0.5
    shrink: float = 0.5


class Simplex:
    """A Nelder-Mead simplex over ``[0, 1]^d`` that is told one measured value at a time.

    ``step`` is the initial edge length, one number or one per dimension (a knob with few values needs
    an edge of at least one grid step, or its vertex would snap back onto ``x0``). ``directions`` (+1 or
    -1 per dimension) says which way each initial edge points from ``x0``; an edge that would leave the
    cube points the other way. The caller uses it to bias the first moves.
    """

    def __init__(self, x0: Sequence[float], step: float | Sequence[float],
                 directions: Sequence[int] | None = None, coefficients: SimplexCoefficients | None = None) -> None:
        x = np.clip(np.asarray(x0, dtype=float), 0.0, 1.0)
        d = len(x)
        if d == 0:
            raise ValueError("a simplex needs at least one dimension")
        steps = [float(step)] * d if np.isscalar(step) else [float(v) for v in step]  # type: ignore[arg-type]
        if len(steps) != d or not all(0.0 < v <= 1.0 for v in steps):
            raise ValueError(f"simplex step(s) must be in (0, 1], one per dimension; got {step}")
        dirs = list(directions) if directions is not None else [1] * d
        if len(dirs) != d:
            raise ValueError(f"{len(dirs)} directions for a {d}-dimensional simplex")
        self.c = coefficients or SimplexCoefficients()
        verts = [x.copy()]
        for i in range(d):
            v = x.copy()
            sign = 1.0 if dirs[i] >= 0 else -1.0
            if not 0.0 <= v[i] + sign * steps[i] <= 1.0:
                sign = -sign
            v[i] = float(np.clip(v[i] + sign * steps[i], 0.0, 1.0))
            verts.append(v)
        self.vertices: list[np.ndarray] = verts
        self.values: list[float | None] = [None] * (d + 1)
        self.phase = INIT
        self.trial: np.ndarray = verts[0].copy()
        self._fr = np.nan
        self._xr: np.ndarray = verts[0].copy()
        self.iterations = 0
        self._advance()

    # --- the ask/tell interface -----------------------------------------------------------------
    def ask(self) -> np.ndarray:
        """The point whose value the simplex needs next (the same until :meth:`tell` is called)."""
        return self.trial.copy()

    def tell(self, value: float) -> None:
        """The measured value (lower is better) of the point :meth:`ask` returned."""
        f = float(value)
        if self.phase == INIT:
            self.values[self._pending_index()] = f
        elif self.phase == REFLECT:
            fb, fsw, fw = self.values[0], self.values[-2], self.values[-1]
            assert fb is not None and fsw is not None and fw is not None
            if fb <= f < fsw:
                self._replace_worst(self.trial, f)
            elif f < fb:
                self._fr, self._xr = f, self.trial.copy()
                self.phase = EXPAND
                self.trial = self._clip(self._centroid() + self.c.expand * (self._xr - self._centroid()))
                return
            elif f < fw:
                self._fr, self._xr = f, self.trial.copy()
                self.phase = CONTRACT_OUT
                self.trial = self._clip(self._centroid() + self.c.contract * (self._xr - self._centroid()))
                return
            else:
                self._fr = f
                self.phase = CONTRACT_IN
                self.trial = self._clip(self._centroid() + self.c.contract * (self.vertices[-1] - self._centroid()))
                return
        elif self.phase == EXPAND:
            if f < self._fr:
                self._replace_worst(self.trial, f)
            else:
                self._replace_worst(self._xr, self._fr)
        elif self.phase == CONTRACT_OUT:
            if f <= self._fr:
                self._replace_worst(self.trial, f)
            else:
                self._shrink()
        elif self.phase == CONTRACT_IN:
            fw = self.values[-1]
            assert fw is not None
            if f < fw:
                self._replace_worst(self.trial, f)
            else:
                self._shrink()
        self._advance()

    def revalue(self, indices: Sequence[int], value: float) -> None:
        """Replace some vertices' value with a fresher measurement (noisy objectives: re-evaluating the
        incumbent keeps a lucky early sample from anchoring the search). Only between iterations."""
        if self.phase != REFLECT:
            raise RuntimeError("revalue only between iterations (phase 'reflect')")
        for i in indices:
            self.values[i] = float(value)
        self._advance()

    # --- what the caller reads ------------------------------------------------------------------
    @property
    def best(self) -> tuple[np.ndarray, float | None]:
        known = [(v, i) for i, v in enumerate(self.values) if v is not None]
        if not known:
            return self.vertices[0].copy(), None
        _, i = min(known)
        return self.vertices[i].copy(), self.values[i]

    def diameter(self) -> float:
        """Largest distance of a vertex from the first (best, once sorted) vertex, in cube units."""
        base = self.vertices[0]
        return max(float(np.max(np.abs(v - base))) for v in self.vertices)

    # --- internals ------------------------------------------------------------------------------
    def _pending_index(self) -> int:
        return next(i for i, v in enumerate(self.values) if v is None)

    def _clip(self, x: np.ndarray) -> np.ndarray:
        return np.clip(x, 0.0, 1.0)

    def _centroid(self) -> np.ndarray:
        return np.mean(self.vertices[:-1], axis=0)

    def _replace_worst(self, x: np.ndarray, f: float) -> None:
        self.vertices[-1] = x.copy()
        self.values[-1] = f
        self.iterations += 1

    def _shrink(self) -> None:
        best = self.vertices[0]
        for i in range(1, len(self.vertices)):
            self.vertices[i] = best + self.c.shrink * (self.vertices[i] - best)
            self.values[i] = None
        self.iterations += 1

    def _advance(self) -> None:
        """After any tell: evaluate missing vertices first, else sort and propose the reflection."""
        if any(v is None for v in self.values):
            self.phase = INIT
            self.trial = self.vertices[self._pending_index()].copy()
            return
        order = sorted(range(len(self.values)), key=lambda i: float(self.values[i]))  # type: ignore[arg-type]
        self.vertices = [self.vertices[i] for i in order]
        self.values = [self.values[i] for i in order]
        self.phase = REFLECT
        c = self._centroid()
        self.trial = self._clip(c + self.c.reflect * (c - self.vertices[-1]))

    # --- checkpointing --------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"vertices": [v.tolist() for v in self.vertices], "values": list(self.values),
                "phase": self.phase, "trial": self.trial.tolist(), "fr": float(self._fr),
                "xr": self._xr.tolist(), "iterations": self.iterations}

    @classmethod
    def from_state(cls, state: Mapping[str, Any], dims: int | None = None) -> Simplex:
        """A simplex from :meth:`state_dict`'s output. A checkpoint is tenant input: the state is checked for
        what :meth:`tell` and :meth:`ask` rely on (``dims + 1`` vertices in the unit cube, a value for every
        vertex outside the initial phase, a known phase) and refused with a ValueError naming the field."""
        state = mapping(state, "simplex")
        verts = [finite_array(v, f"simplex vertex {i}", None, 1.0 + CUBE_SLACK)
                 for i, v in enumerate(sequence(state.get("vertices"), "simplex vertices"))]
        d = dims if dims is not None else (verts[0].size if verts else 0)
        if d < 1 or len(verts) != d + 1 or any(v.shape != (d,) for v in verts):
            raise ValueError(f"simplex vertices in the checkpoint are not {d + 1} points of {d} coordinates")
        if any(float(v.min()) < -CUBE_SLACK for v in verts):
            raise ValueError("simplex vertices in the checkpoint leave the unit cube")
        values = [None if v is None else finite_number(v, f"simplex value {i}", -MAX_VALUE, MAX_VALUE)
                  for i, v in enumerate(sequence(state.get("values"), "simplex values", d + 1))]
        phase = state.get("phase")
        if phase not in (INIT, REFLECT, EXPAND, CONTRACT_OUT, CONTRACT_IN):
            raise ValueError(f"simplex phase in the checkpoint is {str(phase)[:40]!r}, not a Nelder-Mead phase")
        if (phase == INIT) != any(v is None for v in values):
            raise ValueError("simplex values in the checkpoint do not fit its phase (only the initial phase "
                             "has vertices without a value)")
        trial = finite_array(state.get("trial"), "simplex trial point", (d,), 1.0 + CUBE_SLACK)
        xr = finite_array(state.get("xr"), "simplex reflected point", (d,), 1.0 + CUBE_SLACK)
        if float(trial.min()) < -CUBE_SLACK or float(xr.min()) < -CUBE_SLACK:
            raise ValueError("simplex trial or reflected point in the checkpoint leaves the unit cube")
        fr = state.get("fr")
        if phase in (EXPAND, CONTRACT_OUT, CONTRACT_IN):  # tell compares with it and may keep it as a value
            fr = finite_number(fr, "simplex reflected value", -MAX_VALUE, MAX_VALUE)
        else:
            fr = number_or_nan(fr, "simplex reflected value", -MAX_VALUE, MAX_VALUE)
        iterations = whole_number(state.get("iterations", 0), "simplex iterations")
        s = cls(verts[0], 0.5)
        s.vertices = verts
        s.values = values
        s.phase = str(phase)
        s.trial = trial
        s._fr = fr
        s._xr = xr
        s.iterations = iterations
        return s
