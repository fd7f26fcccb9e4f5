"""The ``autocm`` command.

This module is the composition root: it wires the simulator, the learners and the operator together
and imports each lazily inside its subcommand, so ``autocm --help`` is instant and the operator image
never imports SimPy unless asked to simulate.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

EXIT_USAGE = 2


def friendly_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn expected failures into one clear line and exit status 2; never show a traceback by accident."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from simulator.scenario import ScenarioError

        debug = bool(kwargs.get("debug"))
        try:
            return fn(*args, **kwargs)
        except (ScenarioError, ValueError, FileNotFoundError) as exc:
            if debug:
                raise
            click.echo(f"error: {exc}", err=True)
            sys.exit(EXIT_USAGE)
        except KeyboardInterrupt:
            click.echo("interrupted; partial results were not written", err=True)
            sys.exit(130)
        except Exception as exc:  # an autocm bug: say so plainly, keep the trace one flag away
            if debug:
                raise
            click.echo(f"internal error: {type(exc).__name__}: {exc}\n"
                       "re-run with --debug for the traceback, and please report it", err=True)
            sys.exit(1)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="autocm")
def main() -> None:
    """autocm sizes GPU training jobs and inference services with learned policies.

    \b
    Start with the simulator:
      autocm sim --list                          bundled scenarios
      autocm sim inference-azure-code            compare policies on the Azure LLM code trace
      autocm sim my.yaml --check                 validate a scenario without running it
      autocm sim training-pollux-1.0 --seeds 3   three seeds, means with 95% confidence intervals
    """


@main.command()
@click.argument("scenario", required=False)
@click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Report folder (default: reports/<scenario>).")
@click.option("--policies", default=None, metavar="A,B,...",
              help="Run only these policies (labels from the scenario, comma-separated).")
@click.option("--seed", type=int, default=None, help="First seed (default: the scenario's seed).")
@click.option("--seeds", type=click.IntRange(min=1), default=1, show_default=True,
              help="Number of seeds; with more than one, tables show means and 95% confidence intervals.")
@click.option("--list", "list_", is_flag=True, help="List the bundled scenarios and exit.")
@click.option("--check", is_flag=True, help="Validate the scenario and its data without running it.")
@click.option("--no-sweep", is_flag=True, help="Run baselines at their configured target only, no sweep.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.option("--debug", is_flag=True, hidden=True)
@friendly_errors
def sim(scenario: str | None, out: Path | None, policies: str | None, seed: int | None, seeds: int,
        list_: bool, check: bool, no_sweep: bool, quiet: bool, debug: bool) -> None:
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
    chosen = [p.strip() for p in policies.split(",")] if policies else None
    if chosen:
        labels = [p.get("label", p["name"]) for p in loaded.policies]
        unknown = [p for p in chosen if p not in labels]
        if unknown:
            raise sc.ScenarioError(f"{loaded.path}: policies: no policy labelled {unknown}; "
                                   f"this scenario has {labels}")
    from simulator.runner import check_scenario, run_scenario

    check_scenario(loaded)
    if check:
        click.echo(f"{loaded.path}: ok ({len(loaded.policies)} policies, sha256 {loaded.digest[:12]})")
        return
    first_seed = loaded.seed if seed is None else seed
    seed_list = list(range(first_seed, first_seed + seeds))
    out = out or Path("reports") / loaded.name
    report = run_scenario(loaded, out, seeds=seed_list, only=chosen, sweep=not no_sweep,
                          progress=not quiet)
    click.echo(report.table_text)
    click.echo(f"\nreport: {out}/summary.md")


def _parse_sets(values: tuple[str, ...]) -> dict[str, Any]:
    import yaml

    out: dict[str, Any] = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint="--set")
        out[key.strip()] = yaml.safe_load(raw)
    return out


@main.command()
@click.argument("scenario")
@click.option("--learner", "learner_name", default="vconf", show_default=True, help="Registered learner to train.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="A learner setting (repeatable).")
@click.option("--episodes", type=click.IntRange(min=1), default=3, show_default=True,
              help="Runs of the scenario, each with the next seed; the learner keeps learning across them.")
@click.option("--seed", type=int, default=None, help="First seed (default: the scenario's seed).")
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Checkpoint file to write (push it with autocm push-checkpoint, or name it in a scenario).")
@click.option("--workers", type=click.IntRange(min=1), default=None,
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
    first = loaded.seed if seed is None else seed
    bar = _Progress(duration_of(loaded) * episodes, not quiet)
    try:
        result = pretrain(loaded, learner_name, _parse_sets(sets), episodes, first, tick=bar.advance)
    finally:
        bar.close()
    size = save(result, out)
    click.echo("episode  seed  SLO attain.  GPU-hours  changes  verdict")
    for i, e in enumerate(result.episodes, 1):
        click.echo(f"{i:7d}  {e.seed:4d}  {e.slo_attainment:11.4f}  {e.gpu_hours:9.2f}  {e.changes:7d}  {e.verdict}")
    click.echo(f"checkpoint: {out} ({size} bytes, learner {learner_name}, scenario {loaded.name})")


def _train_parallel(scenario: str, learner_name: str, sets: tuple[str, ...], episodes: int, seed: int | None,
                    out: Path, workers: int, staleness: int, until_converged: bool, check_every: int, patience: int,
                    eval_seeds: int, ray_address: str | None, quiet: bool) -> None:
    """``autocm train --workers N``: simulator/parallel_pretrain.py, then the checks and the verdict."""
    from controller.backends import RayUnavailableError
    from simulator import scenario as sc
    from simulator.parallel_pretrain import ParallelSettings, pretrain_parallel
    from simulator.pretrain import save

    loaded = sc.load(scenario)
    first = loaded.seed if seed is None else seed
    settings = ParallelSettings(workers=workers, staleness=staleness, max_episodes=episodes,
                                until_converged=until_converged, check_every=check_every, patience=patience,
                                eval_seeds=tuple(first + 100_000 + i for i in range(eval_seeds)),
                                backend="ray" if ray_address else "process", ray_address=ray_address)
    say = (lambda msg: None) if quiet else (lambda msg: click.echo(msg, err=True))
    try:
        result, record = pretrain_parallel(loaded, learner_name, _parse_sets(sets), first, settings, say)
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


def _register_operator_commands() -> None:
    """``autocm run`` and ``autocm push-checkpoint`` live with the operator (controller/run_cmd.py)."""
    from controller.run_cmd import push_checkpoint, run

    main.add_command(run)
    main.add_command(push_checkpoint)


_register_operator_commands()


def _register_learning_commands() -> None:
    """``autocm learn-parallel`` (controller/parallel_cmd.py): parallel learners on threads or Ray."""
    from controller.parallel_cmd import learn_parallel

    main.add_command(learn_parallel)


_register_learning_commands()


if __name__ == "__main__":  # python -m controller.cli, as the worktree docs run it
    main()
