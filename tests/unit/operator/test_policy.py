"""SizingPolicy parsing: the CRD's schema and the parser agree, and every bad spec names its field."""

from __future__ import annotations

import copy

import jsonschema
import pytest

from controller.loop import Mode
from controller.policy import (
    CRD_PATH,
    KNOBS,
    PolicyError,
    crd_learner_enum,
    load_crd,
    parse,
    sync_crd,
)
from learners.base import registered
from learners.types import METRICS

GOOD = {
    "targetRef": {"kind": "Deployment", "name": "llama-serve"},
    "workload": "inference",
    "objective": {"metric": "ttft_p99_seconds", "target": 0.5},
    "knobs": {
        "replicas": {"min": 1, "max": 16},
        "gpusPerReplica": {"choices": [4, 1, 2]},
        "batchSize": {"min": 8, "max": 64, "step": 8},
    },
    "learner": {"name": "static"},
    "mode": "recommend",
    "intervalSeconds": 5,
}


def schema() -> dict:
    crd = load_crd()
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def with_(path: str, value, base=GOOD) -> dict:
    spec = copy.deepcopy(base)
    *parents, last = path.split(".")
    node = spec
    for p in parents:
        node = node.setdefault(p, {})
    if value is _DELETE:
        node.pop(last, None)
    else:
        node[last] = value
    return spec


_DELETE = object()


def test_good_spec_becomes_the_loops_vocabulary():
    p = parse(GOOD, "ml", "llama")
    assert p.key == "ml/llama"
    assert p.target.key == "ml/Deployment/llama-serve"
    assert p.target.api_version == "apps/v1"
    assert p.mode is Mode.RECOMMEND
    assert p.space.names == ("replicas", "gpus_per_replica", "max_batch_size")
    assert p.space["gpus_per_replica"].values == (1.0, 2.0, 4.0)
    assert p.space["max_batch_size"].values == tuple(float(v) for v in range(8, 65, 8))
    # Knobs that change the pod template restart pods; replicas do not.
    assert p.space["gpus_per_replica"].restarts and not p.space["replicas"].restarts
    assert p.objective.metric == "ttft_p99_seconds" and p.objective.target == 0.5
    assert not p.objective.higher_is_better
    assert p.interval_s == 5 and p.stale_after_s == 15  # three intervals
    assert p.guards.cooldown_s == 5 and p.guards.required_metrics == ("ttft_p99_seconds",)
    assert p.crd_knobs["max_batch_size"] == "batchSize"


def test_knob_order_is_the_registrys_not_the_specs():
    """The apiserver returns a custom object's maps with sorted keys (batchSize first); the space, and
    so the knob grid a checkpoint is matched against, must not depend on that."""
    sorted_spec = {**GOOD, "knobs": dict(sorted(GOOD["knobs"].items()))}
    assert list(sorted_spec["knobs"]) == ["batchSize", "gpusPerReplica", "replicas"]
    assert parse(sorted_spec, "ml", "llama").space.names == ("replicas", "gpus_per_replica", "max_batch_size")


def test_training_names_follow_the_simulator():
    spec = with_("targetRef", {"kind": "Job", "name": "bert"})
    spec.pop("workload")
    spec["objective"] = {"metric": "goodput_samples_per_second", "target": 100}
    p = parse(spec, "ml", "bert")
    assert p.workload == "training" and p.target.api_version == "batch/v1"
    assert "batch_size" in p.space.names
    assert p.objective.higher_is_better  # throughput: bigger meets the SLO


@pytest.mark.parametrize(
    ("path", "value", "field", "words"),
    [
        ("knobs.replicas", {"min": 5, "max": 2}, "spec.knobs.replicas",
         "min (5) must not be greater than max (2)"),
        ("knobs", {}, "spec.knobs", "at least one knob"),
        ("knobs.replicas", {"min": 1}, "spec.knobs.replicas", "needs both min and max"),
        ("knobs.replicas", {"min": 1, "max": 3, "choices": [1]}, "spec.knobs.replicas", "not both"),
        ("knobs.replicas", {"min": 1, "max": 3, "default": 9}, "spec.knobs.replicas.default", "outside"),
        ("knobs.gpusPerReplica", {"choices": [1, 2], "default": 3}, "spec.knobs.gpusPerReplica.default",
         "not one of the choices"),
        ("knobs.warpDrive", {"min": 1, "max": 2}, "spec.knobs.warpDrive", "unknown knob"),
        ("learner.name", "gradient-descent-by-hand", "spec.learner.name", "unknown learner"),
        ("learner.settings", {"no_such_setting": 1}, "spec.learner.settings", "no_such_setting"),
        ("learner.checkpoint", "secret/x", "spec.learner.checkpoint", "configmap/<name>"),
        ("objective.metric", "vibes", "spec.objective.metric", "unknown metric"),
        ("objective.target", -1, "spec.objective", "positive"),
        ("mode", "yolo", "spec.mode", "recommend or apply"),
        ("targetRef.kind", "Pod", "spec.targetRef.kind", "Deployment, StatefulSet, Job or PyTorchJob"),
        ("intervalSeconds", 0.5, "spec.intervalSeconds", "at least 1"),
        ("metrics.queries", {"vibes": "up"}, "spec.metrics.queries.vibes", "unknown metric"),
    ],
)
def test_bad_specs_name_the_field(path, value, field, words):
    with pytest.raises(PolicyError) as err:
        parse(with_(path, value), "ml", "x")
    msg = str(err.value)
    assert msg.startswith(field), msg
    assert words in msg, msg


def test_schema_accepts_the_good_spec_and_the_issue_example():
    validator = jsonschema.Draft4Validator(schema())
    validator.validate({"apiVersion": "autocm.io/v1alpha1", "kind": "SizingPolicy", "spec": GOOD})
    issue_example = {
        "targetRef": {"kind": "Deployment", "name": "llama-serve"},
        "workload": "inference",
        "objective": {"metric": "ttft_p99_seconds", "target": 0.5},
        "knobs": {"replicas": {"min": 1, "max": 16}, "gpusPerReplica": {"choices": [1, 2, 4]},
                  "batchSize": {"min": 1, "max": 64}},
        "learner": {"name": "vconf", "checkpoint": "configmap/llama-pretrained"},
        "mode": "recommend",
    }
    validator.validate({"spec": issue_example})
    parse(issue_example, "ml", "llama")


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("learner.name", "nope"),       # the enum
        ("mode", "yolo"),
        ("knobs.warpDrive", {"min": 1, "max": 2}),  # unknown knob: not a property... see below
        ("objective.metric", "vibes"),
        ("targetRef.kind", "Pod"),
        ("intervalSeconds", 0),
        ("knobs", {}),                  # minProperties
    ],
)
def test_schema_rejects_what_the_parser_rejects(path, value):
    spec = with_(path, value)
    if path == "knobs.warpDrive":
        # The apiserver prunes unknown fields instead of rejecting them; the CEL size() rule then
        # sees the pruned map. Here we check what pruning leaves: a knobs map without warpDrive.
        assert "warpDrive" not in schema()["properties"]["spec"]["properties"]["knobs"]["properties"]
        return
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft4Validator(schema()).validate({"spec": spec})


def test_every_crd_knob_is_parsed_and_every_parsed_knob_is_in_the_crd():
    props = schema()["properties"]["spec"]["properties"]["knobs"]["properties"]
    assert set(props) == set(KNOBS)
    rules = [r["message"] for r in props["replicas"]["x-kubernetes-validations"]]
    assert "min must not be greater than max" in rules
    # YAML anchors gave every knob the same schema, CEL rules included.
    assert all(props[k] == props["replicas"] for k in props)


def test_objective_metric_enum_is_the_shared_metric_vocabulary():
    enum = schema()["properties"]["spec"]["properties"]["objective"]["properties"]["metric"]["enum"]
    assert enum == list(METRICS)


def test_learner_enum_equals_the_registry():
    """Fails when a learner is registered without `python -m controller.policy --sync-crd`."""
    assert crd_learner_enum() == list(registered())
    enum = schema()["properties"]["spec"]["properties"]["learner"]["properties"]["name"]["enum"]
    assert enum == list(registered())


def test_sync_crd_rewrites_only_the_enum(tmp_path):
    copy_path = tmp_path / "crd.yaml"
    original = CRD_PATH.read_text()
    stale = original.replace(f"enum: [{', '.join(registered())}]", "enum: [static]")
    copy_path.write_text(stale)
    assert sync_crd(copy_path) is True
    assert copy_path.read_text() == original
    assert sync_crd(copy_path) is False


def test_status_schema_declares_what_the_operator_writes():
    status = schema()["properties"]["status"]["properties"]
    cond = status["conditions"]["items"]["properties"]
    assert {"type", "status", "reason", "message", "lastTransitionTime", "observedGeneration"} <= set(cond)
    for key in ("currentConfig", "recommendedConfig", "appliedConfig", "reward", "convergence",
                "lastDecision", "observedGeneration"):
        assert key in status
    crd = load_crd()
    assert crd["spec"]["versions"][0]["subresources"] == {"status": {}}
    assert crd["spec"]["scope"] == "Namespaced" and crd["spec"]["group"] == "autocm.io"
