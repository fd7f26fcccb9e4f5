"""``autocm bench pretrain``: one checkpoint per suite scenario, trained on its TRAINING side only.

For each scenario of :data:`simulator.bench.scenarios.TRAINING` it writes the training scenarios
(first halves of the trace and shapes, training seeds 1..K: the files ``autocm bench split`` writes)
and runs one learner through them in order, one episode per file, keeping what it learned between
files; the result is ``DIR/<learner>-<scenario>.ckpt``, the name ``autocm bench inference
--pretrained DIR`` looks for. The checkpoint's provenance names every training file, its SHA-256 and
the SHA-256 of the source rows and shape seconds its traces used, so a reader (and a test) can check
that no evaluation data went in.

``cluster`` has no training side (its services' knob grids differ from every training scenario's, so
no checkpoint trained elsewhere would load there): it gets no checkpoint and no pretrained row.
"""

from __future__ import annotations

import hashlib
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


def pretrain_one(b: BenchScenario, out: Path, learner_name: str, seeds: int, quick: bool = False,
                 settings: Mapping[str, Any] | None = None,
                 say: Callable[[str], None] = lambda _m: None) -> Trained:
    """Train ``learner_name`` on ``b``'s training scenarios (seeds 1..``seeds``), one episode each."""
    from controller.checkpoint import encode
    from simulator.pretrain import Pretrained, make_learner, run_episode, save
    from simulator.scenario import load

    written = [b.write(out / "train", TRAIN, seed, quick) for seed in range(TRAIN_SEED0, TRAIN_SEED0 + seeds)]
    learner = space = None
    sources: frozenset[str] = frozenset()
    episodes = []
    for (path, used), seed in zip(written, range(TRAIN_SEED0, TRAIN_SEED0 + seeds), strict=True):
        scen = load(path)
        if learner is None:
            learner, space, _ = make_learner(scen, learner_name, settings, seed)
        t0 = time.perf_counter()
        s = run_episode(scen, learner, learner_name, seed)
        ep = {"file": path.name, "file_sha256": scen.digest, "seed": seed, "sources_sha256": sources_digest(used),
              "slo_attainment": s["slo_attainment"], "gpu_hours": s["gpu_hours"], "wall_s": time.perf_counter() - t0}
        episodes.append(ep)
        sources |= used
        say(f"{b.name}: {path.name} attainment {ep['slo_attainment']:.4f}, {ep['gpu_hours']:.1f} GPU-h, "
            f"{ep['wall_s']:.0f} s")
    state = dict(learner.state_dict())
    state["provenance"] = {"bench_scenario": b.name, "side": TRAIN, "learner": learner_name,
                           "settings": dict(settings or {}), "quick": quick, "episodes": episodes,
                           "sources_sha256": sources_digest(sources)}
    target = out / checkpoint_name(learner_name, b.name)
    save(Pretrained(learner_name, encode(learner_name, space, state, samples=len(episodes))), target)
    return Trained(b.name, target, tuple(p for p, _ in written), sources, tuple(episodes))


def pretrain_suite(out: Path, learner_name: str = "slo-rl", seeds: int = 3, names: Sequence[str] | None = None,
                   quick: bool = False, settings: Mapping[str, Any] | None = None,
                   say: Callable[[str], None] = lambda _m: None) -> list[Trained]:
    known = {b.name: b for b in TRAINING}
    chosen = list(names) if names else list(known)
    unknown = [n for n in chosen if n not in known]
    if unknown:
        raise ValueError(f"--scenarios: {unknown} have no training side; these do: {list(known)}")
    return [pretrain_one(known[n], out, learner_name, seeds, quick, settings, say) for n in chosen]
