"""summary.md and the plots of a suite run (from the suite.json data, so it can be re-rendered)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

HEADER = ("policy", "setting", "SLO mean", "SLO worst", "meets", "GPU-h", "x best rule", "x forecast",
          "x oracle replay", "x oracle bound", "wall s/run")


def _f(x: Any, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    if isinstance(x, bool):
        return "yes" if x else "NO"
    if isinstance(x, float):
        return f"{x:.{digits}f}" if abs(x) < 1000 else f"{x:,.0f}"
    return str(x)


def _with_training(scn: dict[str, Any]) -> bool:
    t = scn.get("rules_tuned_on_training")
    return bool(t and t.get("best"))


def rows(scn: dict[str, Any]) -> list[list[str]]:
    out = []
    for group, p in sorted(scn["policies"].items(), key=lambda kv: kv[1]["gpu_hours"]):
        bound = _f(p["x_oracle_bound"], 2) if p["on_oracle_grid"] else "off-grid"
        walls = p["wall_s_per_run"]
        tag = ""
        if p["hindsight_tuned"]:
            notes = ["hindsight-tuned"]
            if not p["meets_slo_every_seed"]:
                notes.append(f"none of its {len(p['swept'])} settings met the SLO on every seed: the most attaining")
            if p.get("chosen_at_grid_edge"):
                notes.append("at the grid's edge")
            tag = f" ({'; '.join(notes)})"
        out.append([group, p["setting"] + tag,
                    _f(p["attainment_mean"], 4), _f(p["attainment_worst"], 4), _f(p["meets_slo_every_seed"]),
                    _f(p["gpu_hours"], 2), _f(p["x_best_rule"], 2), _f(p["x_forecast"], 2),
                    _f(p["x_oracle_replay"], 2), bound, _f(sum(walls) / len(walls), 1)])
        if _with_training(scn):
            out[-1].insert(7, _f(p.get("x_training_tuned_rule"), 2))
    out += oracle_rows(scn)
    return out


def oracle_rows(scn: dict[str, Any]) -> list[list[str]]:
    """The oracle as two rows under the policies: its replayed schedule (the cheapest headroom that passed,
    with the attainment that replay measured) and its lower bound (no attainment: a bound is not a run,
    so its SLO cells are '-'). None when it was not run or is infeasible."""
    o = scn.get("oracle") or {}
    if not o.get("feasible"):
        return []
    width = len(HEADER) + (1 if _with_training(scn) else 0)
    passing = []
    for seed in o.get("per_seed", []):
        hit = [r for r in seed.get("replays", []) if r["schedule"] == seed.get("passing_schedule")
               and r["headroom"] == seed.get("passing_headroom") and r["meets_slo"]]
        if hit:
            passing.append(hit[0]["slo_attainment"])
    out = []
    if o.get("replay_gpu_hours") is not None and passing and len(passing) == len(o.get("per_seed", [])):
        out.append(["oracle (replayed)", "clairvoyant schedule, cheapest passing headroom per seed",
                    _f(sum(passing) / len(passing), 4), _f(min(passing), 4), "yes", _f(o["replay_gpu_hours"], 2)])
    if o.get("lower_bound_gpu_hours") is not None:
        out.append(["oracle (lower bound)", "a bound, not a run", "-", "-", "-", _f(o["lower_bound_gpu_hours"], 2)])
    return [r + ["-"] * (width - len(r)) for r in out]


def markdown_table(scn: dict[str, Any]) -> str:
    header = list(HEADER)
    if _with_training(scn):
        header.insert(7, "x rule tuned on training")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows(scn)]
    return "\n".join(lines)


def training_tuned(scn: dict[str, Any]) -> list[str]:
    """The rules tuned on the training side (``--tune-rules-on-training``), as markdown lines."""
    t = scn.get("rules_tuned_on_training")
    if not t:
        return []
    best = t["best"]
    head = ("Rules tuned on the training side, as the learner is (cheapest setting that met the SLO on every "
            "training file; none passing: the most attaining; the forecast scaler is listed too, but the best "
            "is a reactive rule, as for 'x best rule'). Best on training: "
            + (f"**{t['rules'][best]['setting']}**, which on the evaluation seeds "
               f"{'meets' if t['rules'][best]['meets_slo_every_seed'] else '**misses**'} the SLO at "
               f"{_f(t['rules'][best]['gpu_hours'], 2)} GPU-h." if best else
               "**no rule met the SLO on every training file** at any setting of its grid."))
    lines = [head, "", "| rule | chosen on training | training: meets, worst, GPU-h | evaluation: SLO mean | worst | "
                       "meets | GPU-h | hindsight pick | its training: meets, worst, GPU-h |",
             "|---|---|---|---|---|---|---|---|---|"]
    for group, r in sorted(t["rules"].items(), key=lambda kv: kv[1]["gpu_hours"]):
        tr, hs = r["training"], r.get("hindsight_on_training")
        lines.append(f"| {group} | {r['setting']} | {_f(tr['meets_slo_all_seeds'])}, "
                     f"{_f(tr['slo_attainment_worst'], 4)}, {_f(tr['gpu_hours'], 2)} | "
                     f"{_f(r['attainment_mean'], 4)} | {_f(r['attainment_worst'], 4)} | "
                     f"{_f(r['meets_slo_every_seed'])} | {_f(r['gpu_hours'], 2)} | "
                     f"{r.get('hindsight_setting') or '-'} | "
                     + (f"{_f(hs['meets_slo_all_seeds'])}, {_f(hs['slo_attainment_worst'], 4)}, "
                        f"{_f(hs['gpu_hours'], 2)} |" if hs else "- |"))
    return [*lines, *_lucky_hindsight(scn, t), ""]


def _lucky_hindsight(scn: dict[str, Any], t: dict[str, Any]) -> list[str]:
    """A sentence when the hindsight-tuned best rule (the 'x best rule' divisor) missed the SLO on the training
    files: its evaluation figure is then a setting that tuning on past traffic would have rejected."""
    group = scn.get("best_rule")
    row = t["rules"].get(group) if group else None
    hs = row.get("hindsight_on_training") if row else None
    if not hs or hs["meets_slo_all_seeds"]:
        return []
    return ["", f"The hindsight-tuned best rule, **{row['hindsight_setting']}**, **missed** the SLO on the training "
                f"files (worst {_f(hs['slo_attainment_worst'], 4)}): 'x best rule' divides by a setting that "
                "tuning on past traffic would have rejected; 'x rule tuned on training' is the deployable comparison."]


def oracle_line(scn: dict[str, Any]) -> str:
    o = scn["oracle"]
    if o["feasible"] is None:
        return "Oracle: not run."
    if not o["feasible"]:
        return ("Oracle: **infeasible** -- even the schedule with the fewest (optimistically counted) misses "
                "exceeds the SLO's budget on some seed; no policy can meet this SLO, and no bound is printed.")
    heads = ", ".join(_seed_bracket(s) for s in o["per_seed"])
    pc = o.get("premise_check") or {}
    checked = "".join(
        f" Premise check ({svc}, seed {o['per_seed'][0]['seed']}): {c['violations']} of {c['pairs_checked']} "
        f"(interval, configuration) pairs undercounted, largest total excess {c['slack_misses']} misses"
        + (f"; bound re-solved with that slack: {_f(c.get('repaired_lower_bound_gpu_hours'), 2)} GPU-h."
           if c.get("slack_misses") else ".") for svc, c in pc.items())
    basis = f" (bound: {o['lower_bound_basis']})" if o.get("lower_bound_basis") else ""
    return (f"Oracle bracket (mean over seeds): lower bound {_f(o['lower_bound_gpu_hours'], 2)} GPU-h{basis}, "
            f"cheapest passing replay {_f(o['replay_gpu_hours'], 2)} GPU-h, gap {_f(o['gap'], 3)}. "
            f"Per seed: {heads}.{checked}")


def _seed_bracket(s: dict[str, Any]) -> str:
    if s["passing_schedule"] is None:
        how = "no replay passed"
    else:
        extra = ", ".join(f"{k} +{v}" for k, v in s["passing_headroom"].items())
        how = f"replayed {s['passing_schedule']}, extra replicas: {extra}"
    return (f"seed {s['seed']}: {_f(s['lower_bound_gpu_hours'], 2)} <= optimum <= "
            f"{_f(s['replay_gpu_hours'], 2)} ({how})")


PLOT_FLOOR = 0.9
"""Attainment below which a point is drawn on the floor (its value in the legend): SLOs here are 0.99, and
one policy at 0.25 would otherwise squash every point that decides the comparison into one line."""


def _plot(out: Path, name: str, scn: dict[str, Any]) -> str | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # plots are optional; the tables are the result
        return None
    fig, ax = plt.subplots(figsize=(9, 4.6))
    ranked = sorted(scn["policies"].items(), key=lambda kv: kv[1]["gpu_hours"])
    floor = PLOT_FLOOR
    for i, (group, p) in enumerate(ranked, 1):
        y = p["attainment_mean"]
        below = y < floor  # drawn on the floor, pointing down, so the region that decides stays readable
        marker = "v" if below else ("o" if p["meets_slo_every_seed"] else "x")
        ax.scatter(p["gpu_hours"], max(y, floor), marker=marker, color=f"C{(i - 1) % 10}",
                   label=f"{i}: {group}" + (f" ({y:.3f})" if below else ""))
        ax.annotate(str(i), (p["gpu_hours"], max(y, floor)), fontsize=7, xytext=(3, 3), textcoords="offset points")
    o = scn["oracle"]
    if o.get("lower_bound_gpu_hours") is not None:
        ax.axvline(o["lower_bound_gpu_hours"], color="k", ls="--", lw=1, label="oracle bound")
    if o.get("replay_gpu_hours") is not None:
        ax.axvline(o["replay_gpu_hours"], color="g", ls=":", lw=1, label="oracle replay (passing)")
    ax.set_ylim(floor - 0.005, 1.003)
    ax.set_xlabel("GPU-hours (mean over seeds)")
    ax.set_ylabel("SLO attainment (mean over seeds)")
    ax.set_title(f"{name}: o meets the SLO on every seed, x misses on some, v below {floor}")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)  # outside: hides nothing
    fig.tight_layout()
    path = out / f"{name}.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name


def write_summary(out: Path, report: dict[str, Any]) -> Path:
    parts = ["# autocm bench inference", "",
             f"Seeds {report['seeds']}{' (quick mode: shorter runs, 3-value sweeps)' if report['quick'] else ''}; "
             f"suite wall time {report['wall_s']:.0f} s. Policies registered for inference at run time: "
             f"{', '.join(report['policies'])}.", "",
             "Reactive rules (HPA, KPA, KEDA, AIBrix) are swept over their target and shown at the cheapest "
             "setting that met the SLO on every seed: their **hindsight-tuned best**, tuned on this test itself. "
             "'x best rule' divides by the cheapest of those; 'x oracle bound' is shown only for policies that "
             "change configuration on the oracle's grid (once per control interval); rules acting every few "
             "seconds are 'off-grid', the bound's argument does not cover them. Ratios are of mean GPU-hours.", "",
             "The forecast-aware scaler (after SageServe) is given each service's latency profile, as SageServe "
             "profiles offline, and swept over its planned utilisation the same way; 'x forecast' divides by its "
             "cheapest setting that met the SLO on every seed (blank when none did). It is not a reactive rule, so "
             "'x best rule' does not count it.", ""]
    for name, scn in report["scenarios"].items():
        parts += [f"## {name}", "", scn["description"], "",
                  f"Best tuned reactive rule: {scn['best_rule_setting'] or 'none met the SLO on every seed'}.", "",
                  oracle_line(scn), "", markdown_table(scn), "", *training_tuned(scn)]
        for group, p in scn["policies"].items():
            ck = p.get("checkpoint")
            if ck:
                parts += [f"- {group}: checkpoint {ck['path']} (SHA-256 {ck['sha256']}), settings {ck['settings']}"]
        if any(p.get("checkpoint") for p in scn["policies"].values()):
            parts += [""]
        for group, why in scn.get("not_applicable", {}).items():
            parts += [f"- {group}: not applicable here ({why})"]
        if scn.get("not_applicable"):
            parts += [""]
        img = _plot(out, name, scn)
        if img:
            parts += [f"![{name}]({img})", ""]
    path = out / "summary.md"
    path.write_text("\n".join(parts))
    return path
