"""The forecast scaler in the suite gets each service's latency profile, as SageServe profiles offline: the
rows come from the table the service is simulated with, the profile counts no coverage (it is not a
simulated request), settings a run names win, and profiled it plans far below the unprofiled fallback."""

from __future__ import annotations

import pytest

from simulator.bench.scenarios import by_name
from simulator.bench.split import EVAL
from simulator.scenario import load
from simulator.workloads import PROFILE_PROMPTS, PolicyRun, _build_service, _learner, latency_profile, simulate


@pytest.fixture(scope="module")
def code_quick(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bench")
    return load(by_name(["code-trace"])[0].write(folder, EVAL, 101, quick=True)[0])


def test_the_profile_is_the_services_own_table_and_counts_no_coverage(code_quick):
    svc = _build_service(code_quick, code_quick.inference[0], code_quick.seed)
    svc.perf.prefill_time_s(3000.0, 4, 8)  # a lookup a request made before
    coverage, memo = dict(svc.perf.coverage), dict(svc.perf._prefill_memo)
    prof = latency_profile("forecast", svc)
    assert set(prof["prefill_seconds"]) == {"4", "8"}  # the knob's TP degrees
    for rows in prof["prefill_seconds"].values():
        assert [r[0] for r in rows] == list(PROFILE_PROMPTS)
        assert [r[1] for r in rows] == sorted(r[1] for r in rows) and rows[0][1] > 0
    assert dict(svc.perf.coverage) == coverage and dict(svc.perf._prefill_memo) == memo
    fresh = _build_service(code_quick, code_quick.inference[0], code_quick.seed).perf
    assert prof["prefill_seconds"]["8"][3][1] == fresh.prefill_time_s(1024.0, 1, 8)
    assert prof["cold_start_s"] == 60.0
    assert latency_profile("hpa", svc) == {}  # a rule that takes no profile gets none


def test_any_learner_with_a_prefill_seconds_setting_gets_the_profile_not_only_the_one_named_forecast(code_quick):
    """Whether a learner takes a profile is read off its settings (a ``prefill_seconds`` field), not its name."""
    from dataclasses import dataclass, field

    from learners.base import _REGISTRY, register
    from learners.baselines.forecast_scaler import ForecastScaler

    @dataclass(frozen=True)
    class _Planner:
        prefill_seconds: dict = field(default_factory=dict)

    try:
        register("test-planner", _Planner, kinds=("inference",))(lambda sp, _o, _s: ForecastScaler(sp, _s))
        svc = _build_service(code_quick, code_quick.inference[0], code_quick.seed)
        got = latency_profile("test-planner", svc)
        assert got["prefill_seconds"] == latency_profile("forecast", svc)["prefill_seconds"]
        assert "cold_start_s" not in got  # it has no such setting: it gets none
        assert latency_profile("slo-rl", svc) == {}  # plans from its own capacity model, no profile field
        assert latency_profile("no-such-learner", svc) == {}
    finally:
        _REGISTRY.pop("test-planner", None)


def test_a_profiled_forecast_plans_from_the_table_and_named_settings_win(code_quick):
    svc = _build_service(code_quick, code_quick.inference[0], code_quick.seed)
    profiled = _learner(code_quick, PolicyRun("f", "forecast", {}, profiled=True), svc)
    assert set(profiled.tables) == {4.0, 8.0}
    mine = {"8": [[128, 0.5], [8192, 9.0]]}
    own = _learner(code_quick, PolicyRun("f", "forecast", {"prefill_seconds": mine, "choose_tp": False},
                                         profiled=True), svc)
    assert set(own.tables) == {8.0}
    assert _learner(code_quick, PolicyRun("f", "forecast", {}), svc).tables == {}  # not profiled: online


def test_profiled_it_meets_the_slo_far_cheaper_than_the_online_fallback(code_quick):
    runs = {p: simulate(code_quick, PolicyRun(str(p), "forecast", {"utilization": 0.4}, profiled=p), 101)
            for p in (False, True)}
    assert runs[True].metrics["slo_attainment"] >= 0.99
    assert runs[True].metrics["gpu_hours"] < 0.75 * runs[False].metrics["gpu_hours"]


def test_a_scenario_file_can_ask_for_the_profile(code_quick, tmp_path):
    import yaml

    from simulator.runner import expand

    raw = dict(code_quick.raw)
    raw["inference"] = [{**s, "trace": {**s["trace"], "path": str(code_quick.resolve(s["trace"]["path"]))}}
                        for s in raw["inference"]]
    raw["policies"] = [{"name": "forecast", "profiled": True, "sweep": {"utilization": [0.3, 0.4]}},
                       {"name": "forecast", "label": "forecast (online)"}]
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(raw))
    runs = expand(load(path), None, sweep=True)
    assert [r.profiled for r in runs] == [True, True, False]
