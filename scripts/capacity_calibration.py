"""Is slo-rl's capacity posterior calibrated? A reliability table of its predictions against what happened.

slo-rl sizes a service so that the posterior probability of an interval's tail latency running over the SLO's
target stays under a risk bound (``risk``, 0.2 by default). That bound means what it says only if the
probability is calibrated: of the intervals the model gave 0.1, about a tenth should run over. This script runs a
checkpoint (learning online, as an evaluation day runs) on seeds of a scenario and, for every interval the model
learned from, keeps the probability it predicted *before* seeing the interval (prequential) next to whether the
tail ran over the target. It prints the reliability table (prediction bins, the mean prediction, the share that
ran over) and the weight on log load per GPU that the checkpoint holds, next to the weights refitted from these
intervals with the soft label and with the met/missed label.

Written for issue 11 (session 29): the bundled day-long checkpoint, trained with the soft label's sharpness 4,
over-predicted the share of intervals over target by 2-4x where it makes its decisions, so its risk bound held
more GPUs than the bound asks for.

    PYTHONPATH=$PWD .venv/bin/python scripts/capacity_calibration.py inference-diurnal-train \\
        simulator/checkpoints/slo-rl-diurnal.ckpt --seeds 11-20

Use the training scenario's validation seeds: the evaluation split is for the final comparison only. About 1.5 s
a day-long seed here.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from controller.checkpoint import decode  # noqa: E402
from learners.predict import laplace_logistic_update  # noqa: E402
from learners.slo_capacity import CapacityModel  # noqa: E402
from scripts.choose_deployed import parse_seeds  # noqa: E402
from simulator.scenario import load  # noqa: E402
from simulator.workloads import PolicyRun, simulate  # noqa: E402

BINS = (0.0, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0 + 1e-9)


@contextmanager
def recording() -> Iterator[dict[str, list]]:
    """While open, every capacity-model update also records the rows, their soft labels and the probability the
    model predicted for them before the update. Puts the method back on exit."""
    rows: dict[str, list] = {"x": [], "y": [], "p": [], "sharpness": []}
    original = CapacityModel.update

    def update(self: CapacityModel, X: np.ndarray, y: np.ndarray, *, elapsed: int | None = None) -> None:
        X2 = np.atleast_2d(np.asarray(X, float))
        rows["p"].extend(self.predict(X2).tolist())
        rows["x"].extend(X2.tolist())
        rows["y"].extend(np.asarray(y, float).ravel().tolist())
        rows["sharpness"].extend([self.s.sharpness] * X2.shape[0])
        original(self, X, y, elapsed=elapsed)

    CapacityModel.update = update  # type: ignore[method-assign]
    try:
        yield rows
    finally:
        CapacityModel.update = original  # type: ignore[method-assign]


def reliability(p: np.ndarray, over: np.ndarray, bins: tuple[float, ...] = BINS) -> list[tuple[float, float, int,
                                                                                                float, float]]:
    """``(low, high, n, mean prediction, share over target)`` for each non-empty bin of predictions."""
    out = []
    for lo, hi in itertools.pairwise(bins):
        sel = (p >= lo) & (p < hi)
        if sel.any():
            out.append((lo, min(hi, 1.0), int(sel.sum()), float(p[sel].mean()), float(over[sel].mean())))
    return out


def refit(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Logistic weights (intercept first) fitted to ``(x, y)`` from a flat prior: what these intervals alone say.
    Columns that never vary here (a template never run) stay at 0."""
    Phi = np.hstack([np.ones((len(x), 1)), x])
    mean, _ = laplace_logistic_update(Phi, y, np.zeros(Phi.shape[1]), np.eye(Phi.shape[1]) * 1e-3, 50, 1e-9)
    return mean


def plot(table: list[tuple[float, float, int, float, float]], path: Path, title: str) -> None:
    """The reliability diagram: share over target against mean prediction per bin, on log axes (the bins that
    decide lie at 0.02-0.2), point size by the bin's intervals; a calibrated model sits on the diagonal."""
    from matplotlib.figure import Figure  # the object API: no pyplot registry for one figure

    fig = Figure(figsize=(5.5, 5.0))
    ax = fig.add_subplot()
    shown = [(mp, max(share, 1e-3), n) for _, _, n, mp, share in table]
    ax.scatter([r[0] for r in shown], [r[1] for r in shown], s=[20 + 200 * r[2] / max(r[2] for r in shown)
                                                                  for r in shown], zorder=3)
    ax.plot([1e-3, 1.0], [1e-3, 1.0], color="grey", linestyle="--", label="calibrated")
    ax.set(xscale="log", yscale="log", xlim=(5e-3, 1.0), ylim=(5e-4, 1.0), xlabel="mean predicted P(tail over target)",
           ylabel="share of intervals over target (0 drawn at 0.001)")
    ax.set_title(title, fontsize=8)
    ax.legend(loc="upper left")
    fig.savefig(path, dpi=110, bbox_inches="tight")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("scenario", help="a scenario with one inference workload (name or path)")
    ap.add_argument("checkpoint", type=Path, help="an slo-rl checkpoint (autocm train)")
    ap.add_argument("--seeds", default="11-20", help="seeds to run: 11-20 or 11,12 (default 11-20)")
    ap.add_argument("--plot", type=Path, metavar="PNG", help="also draw the reliability diagram into this PNG file")
    args = ap.parse_args(argv)
    if not args.checkpoint.is_file():
        ap.error(f"{args.checkpoint}: no such checkpoint (make one with autocm train)")
    if args.plot is not None and not args.plot.parent.is_dir():
        ap.error(f"--plot {args.plot}: no folder {args.plot.parent}")  # before the runs, not after
    try:
        scenario = load(args.scenario)
        ck = decode(args.checkpoint.read_bytes(), "slo-rl")
        seeds = parse_seeds(args.seeds)
    except ValueError as exc:  # ScenarioError, CheckpointError, a bad seed list: one line, not a traceback
        ap.error(str(exc))
    held = np.asarray(ck.state["capacity"]["mean"], float)
    print(f"checkpoint {args.checkpoint.name}: settings {dict(ck.recorded_settings)}; "
          f"weight on log load per GPU {held[1]:.2f}, intercept {held[0]:.2f}")
    with recording() as rows:
        for seed in seeds:
            r = simulate(scenario, PolicyRun("slo-rl", "slo-rl", dict(ck.recorded_settings),
                                             checkpoint=str(args.checkpoint.resolve())), seed)
            print(f"seed {seed}: attainment {r.metrics['slo_attainment']:.4f}, {r.metrics['gpu_hours']:.2f} GPU-h")
    if not rows["y"]:
        print("no interval was learned from (no slo-rl workload ran?)")
        return 1
    x, y, p = (np.asarray(rows[k], float) for k in ("x", "y", "p"))
    k = rows["sharpness"][0]
    # The soft label is sigmoid(k log(tail / target)): above 0.5 exactly when the tail ran over the target.
    over = (y > 0.5).astype(float)
    print(f"\n{len(y)} intervals learned from, {int(over.sum())} with the tail over target "
          f"(soft label sharpness {k:g})")
    print("predicted P(over)   intervals   mean predicted   share over   ratio")
    for lo, hi, n, mp, share in reliability(p, over):
        ratio = f"{mp / share:6.1f}x" if share > 0 else "     -"
        print(f"  [{lo:.2f}, {hi:.2f})    {n:9d}   {mp:14.3f}   {share:10.3f}   {ratio}")
    if args.plot is not None:
        plot(reliability(p, over), args.plot, f"{args.checkpoint.name} on {scenario.name}, seeds {args.seeds} "
                                             f"(label sharpness {k:g})")
        print(f"reliability diagram: {args.plot}")
    print(f"\nweight on log load per GPU: held {held[1]:.2f}; refitted on these intervals from a flat prior: "
          f"soft label {refit(x, y)[1]:.2f}, met/missed label {refit(x, over)[1]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
