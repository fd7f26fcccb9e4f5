"""The ``autocm`` command.

This module is the composition root: it wires the simulator, the learners and the operator together
and imports each lazily inside its subcommand, so ``autocm --help`` is instant and the operator image
never imports SimPy unless asked to simulate.
"""

from __future__ import annotations

import functools
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

EXIT_USAGE = 2
MAX_SEED = 2**32 - 1
"""Seeds are 32-bit (simulator/scenario.py ``MAX_SEED``)."""
MAX_SEEDS = 100
"""--seeds: each seed is a full run of every policy; a hundred already gives tight 95% intervals."""
MAX_EPISODES = 1000


def friendly_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn expected failures into one clear line and exit status 2; never show a traceback by accident."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from simulator.scenario import ScenarioError

        debug = bool(kwargs.get("debug"))
        try:
            return fn(*args, **kwargs)
        except click.exceptions.Exit:
            raise
        except click.ClickException:  # a usage error (bad flag value, missing argument): click prints it, exit 2
            raise
        except (ScenarioError, ValueError, FileNotFoundError) as exc:
            if debug:
                raise
            click.echo(f"error: {_one_line(exc)}", err=True)
            sys.exit(EXIT_USAGE)
        except OSError as exc:  # the machine said no (permissions, a full disk, a file where a folder should be)
            if debug:
                raise
            where = f"{exc.filename}: " if exc.filename else ""
            click.echo(f"error: {where}{exc.strerror or exc}", err=True)
            sys.exit(EXIT_USAGE)
        except MemoryError:
            click.echo("error: out of memory; use a smaller scenario (shorter duration, fewer requests or nodes)",
                       err=True)
            sys.exit(EXIT_USAGE)
        except KeyboardInterrupt:
            click.echo("interrupted; partial results were not written", err=True)
            sys.exit(130)
        except Exception as exc:  # an autocm bug: say so plainly, keep the trace one flag away
            if debug:
                raise
            click.echo(f"internal error: {type(exc).__name__}: {_one_line(exc)}\n"
                       "re-run with --debug for the traceback, and please report it", err=True)
            sys.exit(1)

    return wrapper


def _one_line(exc: BaseException, limit: int = 500) -> str:
    """An error as one line of bounded length: a message quoting a huge value must not flood the terminal."""
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 20] + " ... (shortened)"


def writable_folder(path: Path, flag: str) -> None:
    """Fail before a long run, not after it, if ``path`` cannot become a folder we can write in."""
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise click.BadParameter(f"{path}: {probe} is a file, so no folder can be made there", param_hint=flag)
    if probe.exists() and not os.access(probe, os.W_OK | os.X_OK):
        raise click.BadParameter(f"{path}: {probe} is not writable", param_hint=flag)


class _Commands(click.Group):
    """The ``autocm`` group; the commands in LAZY_COMMANDS are imported when used (or listed by --help)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *LAZY_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return super().get_command(ctx, cmd_name) or _lazy_command(cmd_name)


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="autocm")
def main() -> None:
    """autocm sizes GPU training jobs and inference services with learned policies.

    \b
    Start with the simulator:
      autocm sim --list                          bundled scenarios
      autocm sim inference-azure-code            compare policies on the Azure LLM code trace
      autocm sim my.yaml --check                 validate a scenario without running it
      autocm sim inference-lqr --seeds 3         three seeds, means with 95% confidence intervals
    """


def split_labels(text: str) -> list[str]:
    """``--policies``' labels: split on the commas outside parentheses, so a label such as ``slo-rl (pretrained,
    bundled)`` (scenarios bundle labels like it) is one label, not two unknown ones."""
    labels, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth = max(depth - 1, 0)  # a stray ")" does not hide the commas after it
        elif ch == "," and depth == 0:
            labels.append(text[start:i].strip())
            start = i + 1
    labels.append(text[start:].strip())
    return labels


@main.command()
@click.argument("scenario", required=False)
@click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Report folder (default: reports/<scenario>).")
@click.option("--policies", default=None, metavar="A,B,...",
              help="Run only these policies (labels from the scenario, comma-separated; a comma inside "
                   "parentheses belongs to the label, as in 'slo-rl (pretrained, bundled)').")
@click.option("--seed", type=click.IntRange(0, MAX_SEED), default=None,
              help="First seed (default: the scenario's seed).")
@click.option("--seeds", type=click.IntRange(1, MAX_SEEDS), default=1, show_default=True,
              help="Number of seeds; with more than one, tables show means and 95% confidence intervals.")
@click.option("--list", "list_", is_flag=True, help="List the bundled scenarios and exit.")
@click.option("--check", is_flag=True, help="Validate the scenario and its data without running it.")
@click.option("--no-sweep", is_flag=True, help="Run baselines at their configured target only, no sweep.")
@click.option("--metrics/--no-metrics", "metrics", default=None,
              help="Write the first seed's simulated metrics as OpenMetrics (metrics/*.om.txt, for promtool and "
                   "Grafana), streamed to disk. Default: on for inference runs up to 4 simulated hours, off "
                   "beyond (a day of a busy service is 0.1-0.4 GB per policy and 1.1-1.6x the run time), on for "
                   "training-only scenarios.")
@click.option("--hindsight/--no-hindsight", default=True, show_default=True,
              help="Add the best static configuration in hindsight (the cheapest fixed one that met the SLO, found "
                   "by simulating candidates: about 5-15 more runs) to inference reports.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.option("--debug", is_flag=True, hidden=True)
@friendly_errors
def sim(scenario: str | None, out: Path | None, policies: str | None, seed: int | None, seeds: int,
        list_: bool, check: bool, no_sweep: bool, metrics: bool | None, hindsight: bool, quiet: bool,
        debug: bool) -> None:
    """Simulate SCENARIO (a bundled name or a YAML file) under several sizing policies.

    Every policy sees exactly the same seeded workload. The table compares SLO attainment and
    cost; the report folder holds results.json, runs.csv, table.csv, PNG plots, summary.md and the
    simulated metrics as OpenMetrics text.
    """
    from simulator import scenario as sc

    if list_:
        for name, path in sc.bundled().items():
            s = sc.load(path)
            first = s.raw["description"].strip().split(". ")[0].rstrip(".") + "."
            click.echo(f"{name:28s} {first}")
        return
    if scenario is None:
        raise click.UsageError("give a SCENARIO (bundled name or YAML file), or --list")
    loaded = sc.load(scenario)
    chosen = split_labels(policies) if policies else None
    if chosen:
        labels = [p.get("label", p["name"]) for p in loaded.policies]
        unknown = [p for p in chosen if p not in labels]
        if unknown:
            raise sc.ScenarioError(f"{loaded.path}: policies: no policy labelled {unknown}; "
                                   f"this scenario has {labels}")
    from simulator.preflight import check_runnable
    from simulator.runner import check_scenario, run_scenario

    check_runnable(loaded)
    check_scenario(loaded)
    if out is not None:
        writable_folder(out, "--out")
    if check:
        click.echo(f"{loaded.path}: ok ({len(loaded.policies)} policies, sha256 {loaded.digest[:12]})")
        return
    first_seed = loaded.seed if seed is None else seed
    seed_list = list(range(first_seed, first_seed + seeds))
    out = out or Path("reports") / loaded.name
    report = run_scenario(loaded, out, seeds=seed_list, only=chosen, sweep=not no_sweep,
                          progress=not quiet, metrics=metrics, hindsight=hindsight)
    click.echo(report.table_text)
    click.echo(f"\nreport: {out}/summary.md")


def _parse_sets(values: tuple[str, ...]) -> dict[str, Any]:
    import yaml

    out: dict[str, Any] = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint="--set")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            raise click.BadParameter(f"{key.strip()}: {raw!r} is not a YAML value", param_hint="--set") from None
        if isinstance(value, float) and not math.isfinite(value):
            raise click.BadParameter(f"{key.strip()}: expected a finite number, got {raw!r}", param_hint="--set")
        out[key.strip()] = value
    return out


@main.command()
@click.argument("scenario")
@click.option("--learner", "learner_name", default="vconf", show_default=True, help="Registered learner to train.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="A learner setting (repeatable).")
@click.option("--episodes", type=click.IntRange(1, MAX_EPISODES), default=3, show_default=True,
              help="Runs of the scenario, each with the next seed; the learner keeps learning across them.")
@click.option("--seed", type=click.IntRange(0, MAX_SEED), default=None,
              help="First seed (default: the scenario's seed).")
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Checkpoint file to write (push it with autocm push-checkpoint, or name it in a scenario).")
@click.option("--workers", type=click.IntRange(1, 256), default=None,
              help="Simulator worker processes sharing one learner (slo-rl): asynchronous parallel training "
                   "with bounded staleness and held-out convergence checks; --episodes is then the budget.")
@click.option("--staleness", type=click.IntRange(min=0), default=1, show_default=True,
              help="With --workers: experience is merged only from snapshots at most this many updates old "
                   "(0: synchronous rounds).")
@click.option("--until-converged", is_flag=True,
              help="Stop when held-out checks stop improving (implies --workers 1 if not given).")
@click.option("--check-every", type=click.IntRange(min=1), default=2, show_default=True,
              help="Training episodes between held-out evaluation checks.")
@click.option("--patience", type=click.IntRange(min=1), default=3, show_default=True,
              help="Converged when this many checks in a row improved by at most the tolerances.")
@click.option("--ray", "ray_address", default=None, metavar="ADDRESS",
              help="With --workers: run the episodes as Ray tasks on the cluster at ADDRESS (auto, host:port, "
                   "ray://host:10001, or local for a new local head) instead of local processes.")
@click.option("--eval-seeds", type=click.IntRange(min=1), default=3, show_default=True,
              help="Held-out evaluation episodes per check (seeds 100000 above the first, never trained on).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.option("--debug", is_flag=True, hidden=True)
@friendly_errors
def train(scenario: str, learner_name: str, sets: tuple[str, ...], episodes: int, seed: int | None, out: Path,
          workers: int | None, staleness: int, until_converged: bool, check_every: int, patience: int,
          eval_seeds: int, ray_address: str | None, quiet: bool, debug: bool) -> None:
    """Pretrain a learner in the simulator on SCENARIO and save a checkpoint.

    \b
    Pretrain on other traces or seeds than you evaluate on, for example:
      autocm train inference-pretrain-bursty --episodes 3 --out vconf.ckpt
      autocm sim my-eval.yaml            # with a policy {name: vconf, checkpoint: vconf.ckpt}
    \b
    Train slo-rl with 4 worker processes until held-out checks converge (at most 24 episodes):
      autocm train inference-code-train --learner slo-rl --workers 4 --until-converged --episodes 24 --out s.ckpt
    """
    if workers is not None or until_converged or ray_address:
        _train_parallel(scenario, learner_name, sets, episodes, seed, out, workers or 1, staleness,
                        until_converged, check_every, patience, eval_seeds, ray_address, quiet)
        return
    from simulator import scenario as sc
    from simulator.pretrain import pretrain, save
    from simulator.runner import _Progress
    from simulator.workloads import duration_of

    loaded = sc.load(scenario)
    if not loaded.inference:
        raise sc.ScenarioError(f"{loaded.path}: autocm train needs an inference service to train on; this "
                               "scenario has only training jobs")
    writable_folder(out.parent, "--out")
    from simulator.preflight import check_runnable

    check_runnable(loaded)
    first = loaded.seed if seed is None else seed
    chosen = _parse_sets(sets)
    bar = _Progress(duration_of(loaded) * episodes, not quiet)
    try:
        result = pretrain(loaded, learner_name, chosen, episodes, first, tick=bar.advance)
    finally:
        bar.close()
    size = save(result, out)
    click.echo("episode  seed  SLO attain.  GPU-hours  changes  verdict")
    for i, e in enumerate(result.episodes, 1):
        click.echo(f"{i:7d}  {e.seed:4d}  {e.slo_attainment:11.4f}  {e.gpu_hours:9.2f}  {e.changes:7d}  {e.verdict}")
    click.echo(f"checkpoint: {out} ({size} bytes, learner {learner_name}, scenario {loaded.name})")
    _say_settings(chosen)


def _train_parallel(scenario: str, learner_name: str, sets: tuple[str, ...], episodes: int, seed: int | None,
                    out: Path, workers: int, staleness: int, until_converged: bool, check_every: int, patience: int,
                    eval_seeds: int, ray_address: str | None, quiet: bool) -> None:
    """``autocm train --workers N``: simulator/parallel_pretrain.py, then the checks and the verdict."""
    from controller.backends import RayUnavailableError
    from simulator import scenario as sc
    from simulator.parallel_pretrain import ParallelSettings, pretrain_parallel
    from simulator.pretrain import save

    loaded = sc.load(scenario)
    writable_folder(out.parent, "--out")
    from simulator.preflight import check_runnable

    check_runnable(loaded)
    first = loaded.seed if seed is None else seed
    settings = ParallelSettings(workers=workers, staleness=staleness, max_episodes=episodes,
                                until_converged=until_converged, check_every=check_every, patience=patience,
                                eval_seeds=tuple(first + 100_000 + i for i in range(eval_seeds)),
                                backend="ray" if ray_address else "process", ray_address=ray_address)
    say = (lambda msg: None) if quiet else (lambda msg: click.echo(msg, err=True))
    chosen = _parse_sets(sets)
    try:
        result, record = pretrain_parallel(loaded, learner_name, chosen, first, settings, say)
    except RayUnavailableError as exc:  # friendly_errors prints a ValueError as one line, exit status 2
        raise ValueError(f"--ray: {exc}") from None
    size = save(result, out)
    click.echo("episode  seed  SLO attain.  GPU-hours  snapshot  merged as  staleness")
    for i, m in enumerate(record.merged, 1):
        click.echo(f"{i:7d}  {m.seed:4d}  {m.slo_attainment:11.4f}  {m.gpu_hours:9.2f}  {m.snapshot:8d}  "
                   f"{m.merged_as:9d}  {m.staleness:9d}")
    click.echo("check  episodes  held-out attain.  SLO met  GPU-hours  residual")
    for i, c in enumerate(record.checks, 1):
        click.echo(f"{i:5d}  {c.episodes:8d}  {c.attainment:16.4f}  {c.slo_met:3d}/{c.seeds:<3d}  {c.gpu_hours:9.2f}  "
                   f"{c.residual:8.4f}")
    click.echo(f"verdict: {record.verdict} after {len(record.merged)} episodes on {workers} workers in "
               f"{record.wall_s:.1f} s (staleness at most {record.max_staleness} of {staleness} allowed; "
               f"{record.discarded} in-flight episodes discarded); the checkpoint holds the policy of check "
               f"{record.best_check + 1}")
    click.echo(f"checkpoint: {out} ({size} bytes, learner {learner_name}, scenario {loaded.name})")
    _say_settings(chosen)


def _say_settings(chosen: dict[str, Any]) -> None:
    """The checkpoint runs with its --set settings wherever it goes (autocm sim, bench, the operator)."""
    import json

    if chosen:
        click.echo(f"it runs with {json.dumps(chosen, sort_keys=True)} wherever it is used (autocm sim, bench, "
                   "the operator); settings written in a scenario or in spec.learner.settings win")


LAZY_COMMANDS = {
    "run": ("controller.run_cmd", "run"),
    "push-checkpoint": ("controller.run_cmd", "push_checkpoint"),
    "learn-parallel": ("controller.parallel_cmd", "learn_parallel"),
    "bench": ("controller.bench_cmd", "bench"),
}
"""Commands that live with the operator (controller/run_cmd.py) and the parallel learners
(controller/parallel_cmd.py), imported only when named or listed (``autocm sim`` never loads them)."""


def _lazy_command(name: str) -> click.Command | None:
    import importlib

    where = LAZY_COMMANDS.get(name)
    if where is None:
        return None
    return getattr(importlib.import_module(where[0]), where[1])


if __name__ == "__main__":  # python -m controller.cli, as the worktree docs run it
    main()
