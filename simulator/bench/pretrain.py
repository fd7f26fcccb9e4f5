"""``autocm bench pretrain``: one checkpoint per suite scenario, trained on its TRAINING side only.

For each scenario of :data:`simulator.bench.scenarios.TRAINING` it writes the training scenarios
(first halves of the trace and shapes, training seeds 1..K: the files ``autocm bench split`` writes)
and runs one learner through them in order, one episode per file, keeping what it learned between
files; the result is ``DIR/<learner>-<scenario>.ckpt``, the name ``autocm bench inference
--pretrained DIR`` looks for. The checkpoint's provenance names every training file, its SHA-256 and
the SHA-256 of the source rows and shape seconds its traces used, so a reader (and a test) can check
that no evaluation data went in.

``--choose KEY=V1,V2,...`` (repeatable: a grid) picks learner settings per scenario on the training side
only: for each combination, train on seeds 1..K and run ``--validate`` more training seeds (K+1, ...),
each from the checkpoint after seed K, as ``autocm bench inference --pretrained`` runs every evaluation
seed (learning online within the episode, nothing carried to the next); of the combinations whose
validation episodes all meet the scenario's SLO, the one with the fewest validation GPU-hours is kept
(if none does, the one meeting on the most seeds), and its checkpoint is the one after seed K.
(Until session 12 the validation episodes were chained, each starting where the previous one ended: a
protocol no evaluation run follows, and one under which a seed could miss that met alone.)

``--choose-deployed KEY=V1,V2,...`` is a grid of settings used from the checkpoint on only (validation
and evaluation), each validated from every trained checkpoint: for rules in a learner that learn nothing
(slo-rl's fast guard), so training them in would change the checkpoint for no reason of their own.

``cluster`` has no training side (its services' knob grids differ from every training scenario's, so
no checkpoint trained elsewhere would load there): it gets no checkpoint and no pretrained row.
"""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simulator.bench.scenarios import TRAINING, BenchScenario
from simulator.bench.split import TRAIN, TRAIN_SEED0


def checkpoint_name(policy: str, scenario: str) -> str:
    """The file ``--pretrained DIR`` looks for: ``<policy>-<scenario>.ckpt``."""
    return f"{policy}-{scenario}.ckpt"


def sources_digest(sources: frozenset[str]) -> str:
    return hashlib.sha256("\n".join(sorted(sources)).encode()).hexdigest()


@dataclass(frozen=True)
class Trained:
    scenario: str
    path: Path
    files: tuple[Path, ...]
    sources: frozenset[str]
    """Every source row / shape second the training traces used (the split's provenance hashes)."""
    episodes: tuple[dict[str, Any], ...]
    validation: tuple[dict[str, Any], ...] = ()
    """Episodes on training seeds K+1.. after the checkpoint was taken (not in it)."""


@dataclass(frozen=True)
class Tried:
    """One combination of :func:`choose` (or of scripts/choose_deployed.py): its settings, its training result
    (None where nothing was trained), and how its validation went."""

    settings: dict[str, Any]
    result: Trained | None
    met: int
    """Validation episodes that met the SLO."""
    worst: float
    """The lowest validation attainment."""
    gpu_hours: float
    """Mean validation GPU-hours."""
    episodes: int
    """Validation episodes run."""

    @property
    def meets_all(self) -> bool:
        return self.met == self.episodes


def keep(tried: Sequence[Tried]) -> tuple[Tried, int]:
    """The suite's rule, and how many combinations met on every validation seed: of those, the fewest
    validation GPU-hours; if none did, the one meeting on the most seeds (then the highest worst-seed
    attainment, then the fewest GPU-hours)."""
    passing = [t for t in tried if t.meets_all]
    if passing:
        return min(passing, key=lambda t: t.gpu_hours), len(passing)
    return max(tried, key=lambda t: (t.met, t.worst, -t.gpu_hours)), 0


def pretrain_one(b: BenchScenario, out: Path, learner_name: str, seeds: int, quick: bool = False,
                 settings: Mapping[str, Any] | None = None,
                 say: Callable[[str], None] = lambda _m: None, validate: int = 0) -> Trained:
    """Train ``learner_name`` on ``b``'s training scenarios (seeds 1..``seeds``), one episode each; then,
    with ``validate``, run that many further training seeds, each from the checkpoint (their results in
    ``Trained.validation``)."""
    from simulator.pretrain import make_learner, run_episode
    from simulator.scenario import load

    train_seeds = range(TRAIN_SEED0, TRAIN_SEED0 + seeds)
    written = [b.write(out / "train", TRAIN, seed, quick) for seed in train_seeds]
    learner = space = None
    sources: frozenset[str] = frozenset()
    episodes = []
    target = out / checkpoint_name(learner_name, b.name)
    for (path, used), seed in zip(written, train_seeds, strict=True):
        scen = load(path)
        if learner is None:
            learner, space, _ = make_learner(scen, learner_name, settings, seed)
        t0 = time.perf_counter()
        summary = run_episode(scen, learner, learner_name, seed)
        episodes.append(_episode(b, path, scen, used, seed, summary, time.perf_counter() - t0, say))
        sources |= used
    _save(learner, space, learner_name, b, settings, quick, episodes, sources, target)
    trained = Trained(b.name, target, tuple(p for p, _ in written), sources, tuple(episodes))
    if not validate:
        return trained
    return dataclasses.replace(trained, validation=validate_from(b, out, learner_name, target, seeds, validate,
                                                                 quick, settings, say))


def validate_from(b: BenchScenario, out: Path, learner_name: str, checkpoint: Path, seeds: int, validate: int,
                  quick: bool = False, settings: Mapping[str, Any] | None = None,
                  say: Callable[[str], None] = lambda _m: None) -> tuple[dict[str, Any], ...]:
    """``validate`` episodes on training seeds ``seeds``+1, ..., each from ``checkpoint`` with ``settings``
    (as ``autocm bench inference --pretrained`` runs every evaluation seed: learning online within the
    episode, nothing carried to the next)."""
    from simulator.pretrain import make_learner, run_episode
    from simulator.scenario import load

    episodes = []
    for seed in range(TRAIN_SEED0 + seeds, TRAIN_SEED0 + seeds + validate):
        path, used = b.write(out / "train", TRAIN, seed, quick)
        scen = load(path)
        learner, space, _ = make_learner(scen, learner_name, settings, seed)
        learner.load_state_dict(_restore(checkpoint, learner_name, space))
        t0 = time.perf_counter()
        summary = run_episode(scen, learner, learner_name, seed)
        episodes.append(_episode(b, path, scen, used, seed, summary, time.perf_counter() - t0, say))
    return tuple(episodes)


def _episode(b: BenchScenario, path: Path, scen: Any, used: frozenset[str], seed: int, summary: Mapping[str, Any],
             wall_s: float, say: Callable[[str], None]) -> dict[str, Any]:
    ep = {"file": path.name, "file_sha256": scen.digest, "seed": seed, "sources_sha256": sources_digest(used),
          "slo_attainment": summary["slo_attainment"], "gpu_hours": summary["gpu_hours"], "wall_s": wall_s}
    say(f"{b.name}: {path.name} attainment {ep['slo_attainment']:.4f}, {ep['gpu_hours']:.1f} GPU-h, {wall_s:.0f} s")
    return ep


def _restore(target: Path, learner_name: str, space: Any) -> Mapping[str, Any]:
    """The learner state in the checkpoint file, read back as ``--pretrained`` reads it."""
    from controller.checkpoint import decode

    return decode(target.read_bytes(), learner_name, space).state


def _save(learner: Any, space: Any, learner_name: str, b: BenchScenario, settings: Mapping[str, Any] | None,
          quick: bool, episodes: list[dict[str, Any]], sources: frozenset[str], target: Path) -> None:
    from controller.checkpoint import encode
    from simulator.pretrain import Pretrained, save

    state = dict(learner.state_dict())
    state["provenance"] = {"bench_scenario": b.name, "side": TRAIN, "learner": learner_name,
                           "settings": dict(settings or {}), "quick": quick, "episodes": list(episodes),
                           "sources_sha256": sources_digest(sources)}
    save(Pretrained(learner_name, encode(learner_name, space, state, samples=len(episodes))), target)


def choose(b: BenchScenario, out: Path, learner_name: str, seeds: int, grid: Sequence[tuple[str, Sequence[Any]]],
           validate: int, quick: bool = False, settings: Mapping[str, Any] | None = None,
           say: Callable[[str], None] = lambda _m: None,
           deployed: Sequence[tuple[str, Sequence[Any]]] = (),
           report: Callable[[str], None] | None = None) -> Trained:
    """Every combination of the ``grid``'s values (``[(setting, values), ...]``) is trained on seeds
    1..``seeds`` and validated on ``validate`` further TRAINING seeds; kept: the one with the fewest
    validation GPU-hours among those whose validation episodes all meet ``b``'s SLO, else the one that
    meets on the most seeds (then the highest worst-seed attainment, then the fewest GPU-hours). Its
    checkpoint is copied to ``out``.

    ``deployed``: a second grid of settings that apply only from the checkpoint on (validation, and so
    evaluation), not while training: every combination of it is validated from each trained checkpoint,
    and the kept checkpoint records both (its provenance's ``settings``; ``deployed`` names the second
    grid's). For rules inside a learner that learn nothing themselves (slo-rl's fast guard): training
    with one on changes what the models see, and so which checkpoint comes out, for no reason of its own.

    Until session 13 the rule was "the first value, in the order given, that meets", on one setting: with
    values ordered from the cheapest to the most cautious that was the cheapest, but it could not weigh
    two settings against each other.

    ``say`` hears every episode; ``report`` (default: ``say``) each combination's validation summary and
    the choice, so a quiet run still says what it kept and why."""
    import itertools

    from simulator.scenario import load

    keys, dkeys = [k for k, _ in grid], [k for k, _ in deployed]
    overlap = set(keys) & set(dkeys)
    if overlap:
        raise ValueError(f"{sorted(overlap)}: chosen both while training and at deployment")
    tell = report or say
    tried: list[Tried] = []
    for combo in itertools.product(*(values for _, values in grid)):
        chosen = dict(zip(keys, combo, strict=True))
        tag = ",".join(f"{k}={v}" for k, v in chosen.items())
        folder = out / "candidates" / f"{b.name}-{tag}"
        trained = pretrain_one(b, folder, learner_name, seeds, quick, {**(settings or {}), **chosen}, say,
                               0 if deployed else validate)
        aim = float(load(trained.files[0]).inference[0]["slo"]["attainment"])
        for dcombo in itertools.product(*(values for _, values in deployed)):
            extra = dict(zip(dkeys, dcombo, strict=True))
            result, label = trained, tag
            if deployed:
                label = tag + "; deployed " + ",".join(f"{k}={v}" for k, v in extra.items())
                full = {**(settings or {}), **chosen, **extra}
                validation = validate_from(b, folder, learner_name, trained.path, seeds, validate, quick, full, say)
                path = folder / "deployed" / ",".join(f"{k}={v}" for k, v in extra.items()) / trained.path.name
                redeclare(trained.path, path, learner_name, load(trained.files[0]), full, extra)
                result = dataclasses.replace(trained, path=path, validation=validation)
            att = [e["slo_attainment"] for e in result.validation]
            met = sum(a >= aim for a in att)
            gpu_h = sum(e["gpu_hours"] for e in result.validation) / max(len(result.validation), 1)
            tried.append(Tried({**chosen, **extra}, result, met, min(att), gpu_h, len(att)))
            tell(f"{b.name}: {label}: validation (training seeds {[e['seed'] for e in result.validation]}) "
                 f"attainment {[round(a, 4) for a in att]}, {gpu_h:.1f} GPU-h mean: "
                 f"{'meets' if met == len(att) else f'misses on {len(att) - met}'} {aim}")
    best, passing = keep(tried)
    if passing:
        tell(f"{b.name}: kept {best.settings}: the fewest validation GPU-hours ({best.gpu_hours:.1f}) of the "
             f"{passing} of {len(tried)} that met the SLO on every validation seed")
    else:
        tell(f"{b.name}: no combination met the SLO on every validation seed; kept {best.settings}, which met on "
             f"{best.met} of {best.episodes} (worst {best.worst:.4f})")
    result = best.result
    assert result is not None  # every combination here was trained
    target = out / result.path.name
    shutil.copyfile(result.path, target)
    return Trained(result.scenario, target, result.files, result.sources, result.episodes, result.validation)


def redeclare(source: Path, target: Path, learner_name: str, scenario: Any, settings: Mapping[str, Any],
               deployed: Mapping[str, Any]) -> None:
    """Copy the checkpoint ``source`` to ``target`` with its provenance's ``settings`` set to ``settings``
    (what ``--pretrained`` runs it with) and ``deployed`` naming those not used while training."""
    from controller.checkpoint import decode, encode
    from simulator.pretrain import Pretrained, make_learner, save

    _learner, space, _ = make_learner(scenario, learner_name, settings, TRAIN_SEED0)
    ck = decode(source.read_bytes(), learner_name, space)
    state = dict(ck.state)
    state["provenance"] = {**state.get("provenance", {}), "settings": dict(settings), "deployed": dict(deployed)}
    save(Pretrained(learner_name, encode(learner_name, space, state, samples=ck.samples)), target)


def pretrain_suite(out: Path, learner_name: str = "slo-rl", seeds: int = 3, names: Sequence[str] | None = None,
                   quick: bool = False, settings: Mapping[str, Any] | None = None,
                   say: Callable[[str], None] = lambda _m: None,
                   chooser: tuple[Sequence[tuple[str, Sequence[Any]]], int] | None = None,
                   deployed: Sequence[tuple[str, Sequence[Any]]] = (),
                   report: Callable[[str], None] | None = None) -> list[Trained]:
    """``chooser``: (grid of settings and values, validation seeds) for :func:`choose`, per scenario;
    ``deployed``: :func:`choose`'s grid of settings used from the checkpoint on only; ``report``: see
    :func:`choose`."""
    known = {b.name: b for b in TRAINING}
    chosen = list(names) if names else list(known)
    unknown = [n for n in chosen if n not in known]
    if unknown:
        raise ValueError(f"--scenarios: {unknown} have no training side; these do: {list(known)}")
    if chooser is None:
        return [pretrain_one(known[n], out, learner_name, seeds, quick, settings, say) for n in chosen]
    grid, validate = chooser
    return [choose(known[n], out, learner_name, seeds, grid, validate, quick, settings, say, deployed, report)
            for n in chosen]
