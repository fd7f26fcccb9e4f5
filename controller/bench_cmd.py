"""``autocm bench``: fixed evaluation suites (simulator/bench) and their training split."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click


def friendly_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """controller.cli's one-line error handling, imported on call (cli imports this module)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from controller.cli import friendly_errors as handle

        return handle(fn)(*args, **kwargs)

    return wrapper


@click.group()
def bench() -> None:
    """Fixed evaluation suites with a train/test split (see docs/evaluation.md)."""


@bench.command()
@click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Report folder: suite.json, summary.md, plots, the scenario files and traces used.")
@click.option("--quick", is_flag=True, help="A few-minute version for CI: shorter runs, 3-value sweeps.")
@click.option("--seeds", type=click.IntRange(min=1, max=99), default=3, show_default=True,
              help="Evaluation seeds 101, 102, ... (training uses 1, 2, ...).")
@click.option("--scenarios", default=None, metavar="A,B,...",
              help="Only these suite scenarios (code-trace, day-bursty, day-noisy, step, cluster, knob-tp, "
                   "knob-batch).")
@click.option("--scenario", "user", multiple=True, metavar="FILE.yaml",
              help="Add your own scenario (your trace, your latency table); its policies are replaced by the "
                   "suite's. Repeatable. With --scenarios none, only yours run.")
@click.option("--policies", default=None, metavar="A,B,...",
              help="Only these registered policies, or swept groups of one (keda-rw: KEDA on requests in "
                   "flight; keda-rate: KEDA on the request rate).")
@click.option("--no-oracle", is_flag=True, help="Skip the oracle's bound and replay.")
@click.option("--pretrained", type=click.Path(path_type=Path), default=None, metavar="DIR",
              help="Also run each policy P from DIR/<P>-<scenario>.ckpt where that file exists, as the row "
                   "'P (pretrained)' (autocm bench pretrain writes such a folder from the training side).")
@click.option("--tune-rules-on-training", "tune_on_training", type=click.IntRange(min=0, max=50), default=0,
              metavar="N", show_default=True,
              help="Also tune each rule as the learner is tuned: run its grid on N TRAINING files of each "
                   "scenario (seeds 1..N), keep the cheapest setting that met the SLO on all of them, and "
                   "report how that setting did on the evaluation seeds. 0: only the hindsight-tuned best.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.option("--debug", is_flag=True, hidden=True)
@friendly_errors
def inference(out: Path, quick: bool, seeds: int, scenarios: str | None, user: tuple[str, ...],
              policies: str | None, no_oracle: bool, pretrained: Path | None, tune_on_training: int, quiet: bool,
              debug: bool) -> None:
    """Run every registered inference policy on the held-out suite and write a report to --out.

    \b
    Examples:
      autocm bench inference --quick --out reports/bench-quick
      autocm bench inference --seeds 3 --out reports/bench
      autocm bench inference --scenarios none --scenario my.yaml --out reports/mine
      autocm bench pretrain --out ckpt/ && autocm bench inference --pretrained ckpt/ --out reports/bench
      autocm bench inference --tune-rules-on-training 6 --pretrained ckpt/ --out reports/fair
    """
    from simulator.bench.suite import SWEEPS, inference_policies, run_suite
    from simulator.bench.summary import markdown_table

    names = [s.strip() for s in scenarios.split(",")] if scenarios else None
    if names == ["none"]:
        if not user:
            raise click.UsageError("--scenarios none needs at least one --scenario FILE")
        names = []
    only = [p.strip() for p in policies.split(",")] if policies else None
    if only:
        known = list(dict.fromkeys([*inference_policies(), *SWEEPS]))
        unknown = sorted(set(only) - set(known))
        if unknown:
            raise ValueError(f"--policies: {unknown} not registered for inference; known: {known}")
    report = run_suite(out, quick=quick, seeds=seeds, names=names, user=user, only=only, progress=not quiet,
                       oracle=not no_oracle, pretrained=pretrained, tune_on_training=tune_on_training)
    for name, scn in report["scenarios"].items():
        click.echo(f"\n{name}\n{markdown_table(scn)}")
    click.echo(f"\nreport: {out}/summary.md  ({report['wall_s']:.0f} s)")


@bench.command("split")
@click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder for the training scenarios (YAML + request logs).")
@click.option("--seeds", type=click.IntRange(min=1, max=99), default=3, show_default=True,
              help="Training seeds 1..K (bootstrap resamples and Poisson draws).")
@click.option("--quick", is_flag=True, help="Short training scenarios (the --quick durations).")
@click.option("--debug", is_flag=True, hidden=True)
@friendly_errors
def split_cmd(out: Path, seeds: int, quick: bool, debug: bool) -> None:
    """Write the TRAINING side of the split: first halves of the trace and shapes, training seeds.

    \b
    Then pretrain on it, for example:
      autocm bench split --out train/
      autocm train train/code-trace-train-1.yaml --episodes 3 --out vconf.ckpt
    """
    from simulator.bench.scenarios import TRAINING
    from simulator.bench.split import TRAIN, TRAIN_SEED0

    for b in TRAINING:
        for seed in range(TRAIN_SEED0, TRAIN_SEED0 + seeds):
            path, _ = b.write(out, TRAIN, seed, quick)
            click.echo(str(path))


@bench.command("pretrain")
@click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder for the checkpoints (<learner>-<scenario>.ckpt) and, under train/, the training "
                   "scenarios they came from.")
@click.option("--learner", "learner_name", default="slo-rl", show_default=True, help="Registered learner to train.")
@click.option("--seeds", type=click.IntRange(min=1, max=99), default=3, show_default=True,
              help="Training seeds 1..K: one episode on each training scenario, in order.")
@click.option("--scenarios", default=None, metavar="A,B,...",
              help="Only these suite scenarios (those with a training side: all but cluster).")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="A learner setting (repeatable).")
@click.option("--choose", "choose_specs", multiple=True, metavar="KEY=V1,V2,...",
              help="Per scenario, try these values of a setting (repeat for a grid of several settings) and keep "
                   "the combination with the fewest GPU-hours whose --validate further TRAINING seeds all meet "
                   "the SLO (if none does: the one meeting on the most seeds). Training side only.")
@click.option("--choose-deployed", "deployed_specs", multiple=True, metavar="KEY=V1,V2,...",
              help="Like --choose, but the setting applies from the checkpoint on only (validation and evaluation), "
                   "not while training: each value is validated from every trained checkpoint. For rules inside "
                   "a learner that learn nothing, e.g. slo-rl's fast guard: --choose-deployed fast_period_s=0,15.")
@click.option("--validate", type=click.IntRange(min=1, max=50), default=20, show_default=True,
              help="With --choose: validation episodes on training seeds K+1, K+2, ..., each from the "
                   "checkpoint of seed K, as an evaluation seed runs. 20 is what held the SLO on every "
                   "evaluation seed of the hour-long suite; with 6 a step combination that met on all six "
                   "missed an evaluation seed (docs/evaluation.md, session 16). Each is one episode per "
                   "combination (an hour-long one takes about a second here).")
@click.option("--quick", is_flag=True, help="Train on the short (--quick) training scenarios.")
@click.option("--quiet", "-q", is_flag=True,
              help="No per-episode lines (each combination's validation summary and the choice still print).")
@click.option("--debug", is_flag=True, hidden=True)
@friendly_errors
def pretrain_cmd(out: Path, learner_name: str, seeds: int, scenarios: str | None, sets: tuple[str, ...],
                 choose_specs: tuple[str, ...], deployed_specs: tuple[str, ...], validate: int, quick: bool,
                 quiet: bool, debug: bool) -> None:
    """Pretrain a learner per suite scenario on the TRAINING side only, for `bench inference --pretrained`.

    \b
      autocm bench pretrain --out ckpt/ --seeds 3
      autocm bench pretrain --out ckpt/ --choose risk=0.2,0.05 --choose saturation_guard=false,true
      autocm bench pretrain --out ckpt/ --choose risk=0.2,0.1 --choose-deployed fast_period_s=0,15
      autocm bench inference --pretrained ckpt/ --out reports/bench
    """
    from controller.cli import _parse_sets
    from simulator.bench.pretrain import pretrain_suite

    names = [s.strip() for s in scenarios.split(",")] if scenarios else None
    say = (lambda _m: None) if quiet else click.echo
    grid, deployed = parse_grid("--choose", choose_specs), parse_grid("--choose-deployed", deployed_specs)
    chooser = (grid, validate) if grid or deployed else None
    for t in pretrain_suite(out, learner_name, seeds, names, quick, _parse_sets(sets), say, chooser, deployed,
                            click.echo):
        chosen = t.validation and decode_settings(t.path)
        click.echo(f"checkpoint: {t.path} (from {', '.join(p.name for p in t.files)})"
                   + (f", settings {chosen}" if chosen else ""))


def parse_grid(option: str, specs: tuple[str, ...]) -> list[tuple[str, list[Any]]]:
    """``KEY=V1,V2,...`` options -> [(key, values)], each value parsed as ``--set`` parses it (also
    scripts/choose_deployed.py's ``--choose``)."""
    from controller.cli import _parse_sets

    grid: list[tuple[str, list[Any]]] = []
    for spec in specs:
        key, _sep, raw = spec.partition("=")
        key = key.strip()
        if not key or not raw:
            raise ValueError(f"{option}: expected KEY=V1,V2,..., got {spec!r}")
        if key in dict(grid):
            raise ValueError(f"{option}: {key} given twice")
        grid.append((key, [_parse_sets((f"{key}={v}",))[key] for v in raw.split(",")]))
    return grid


def decode_settings(path: Path) -> dict[str, Any]:
    from controller.checkpoint import decode

    return dict(decode(path.read_bytes()).recorded_settings)
