import pytest

from learners import ConfigSpace, Knob, Objective, Observation


def space() -> ConfigSpace:
    return ConfigSpace.of(
        Knob("replicas", 1, 8, 1),
        Knob("gpus_per_replica", choices=(8, 2, 4), restarts=True),
        Knob("max_batch_size", 8, 64, 8, restarts=True),
    )


def test_values_and_clip():
    s = space()
    assert s["gpus_per_replica"].values == (2.0, 4.0, 8.0)
    assert s["max_batch_size"].values[:3] == (8, 16, 24)
    assert s.clip({"replicas": 99, "gpus_per_replica": 5, "max_batch_size": 3}) == {
        "replicas": 8, "gpus_per_replica": 4.0, "max_batch_size": 8}
    # ties go to the cheaper value
    assert s["gpus_per_replica"].clip(3) == 2.0
    assert s.size() == 8 * 3 * 8


def test_move_stops_at_bounds():
    s = space()
    c = {"replicas": 1, "gpus_per_replica": 8, "max_batch_size": 64}
    assert s.move(c, {"replicas": -1, "gpus_per_replica": +1, "max_batch_size": +2}) == c
    assert s.move(c, {"replicas": 3, "gpus_per_replica": -1})["gpus_per_replica"] == 4.0
    assert len(s.step_moves()) == 1 + 2 * 3


@pytest.mark.parametrize("kwargs, message", [
    ({"name": "r", "lower": 5, "upper": 1}, "below lower"),
    ({"name": "r", "lower": 1, "upper": 5, "step": 0}, "step must be positive"),
    ({"name": "r", "choices": ()}, "must not be empty"),
    ({"name": "r", "lower": 1, "upper": 5, "default": 9}, "outside"),
])
def test_invalid_knobs(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Knob(**kwargs)


def test_duplicate_knobs_rejected():
    with pytest.raises(ValueError, match="duplicate"):
        ConfigSpace.of(Knob("a", 0, 1), Knob("a", 0, 2))


def test_objective_prices_gpus_and_penalises_misses():
    obj = Objective(target=0.5, attainment=0.99, violation_penalty=50)
    cfg = {"replicas": 3, "gpus_per_replica": 4}
    assert obj.cost_per_hour(cfg) == 12
    ok = Observation(0, cfg, {"slo_attainment": 0.995}, interval_s=60)
    bad = Observation(0, cfg, {"slo_attainment": 0.89}, interval_s=60)
    assert obj.meets(ok) and not obj.meets(bad)
    assert obj.reward(ok) == pytest.approx(-12.0)  # 12 GPUs for one minute = 12 GPU-minutes
    assert obj.reward(bad) == pytest.approx(-12.0 - 50 * 10)  # 10 miss budgets short
    assert obj.reward(ok, restarted=True) == pytest.approx(-12.0 - obj.restart_penalty)
    # without an attainment metric the SLO metric itself is judged
    assert obj.meets(Observation(0, cfg, {"ttft_p99_seconds": 0.4}))
    assert not obj.meets(Observation(0, cfg, {"ttft_p99_seconds": 0.6}))
