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

INIT, REFLECT, EXPAND, CONTRACT_OUT, CONTRACT_IN = "init", "reflect", "expand", "contract-out", "contract-in"


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
    def from_state(cls, state: Mapping[str, Any]) -> Simplex:
        verts = [np.asarray(v, dtype=float) for v in state["vertices"]]
        s = cls(verts[0], 0.5)
        s.vertices = verts
        s.values = [None if v is None else float(v) for v in state["values"]]
        s.phase = str(state["phase"])
        s.trial = np.asarray(state["trial"], dtype=float)
        s._fr = float(state["fr"])
        s._xr = np.asarray(state["xr"], dtype=float)
        s.iterations = int(state["iterations"])
        return s
