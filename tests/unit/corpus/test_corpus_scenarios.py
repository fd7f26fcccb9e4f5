"""Bad scenario files given to ``autocm sim --check``: silent wrong answers, hangs and masked crashes.

Each row edits a small valid scenario (or replaces it) and says how the check must end. The cases named
in the hardening issue come first: NaN and infinite durations, duplicate keys, a start larger than the
cluster, inference learners on a training-only scenario, an ignored control interval, magnitudes that
would run for days or exhaust memory, and a YAML alias bomb.
"""

from __future__ import annotations

import time

import pytest
from corpus_kit import error, ok, run_cli

INFERENCE = """\
name: tiny
description: a tiny inference scenario
seed: 0
duration_s: 300
control_interval_s: 30
cluster: {nodes: 2, gpus_per_node: 8}
inference:
  - name: svc
    trace: {kind: azure-code}
    slo: {ttft_seconds: 2.0, attainment: 0.99}
    knobs: {replicas: {min: 1, max: 4}}
policies: [{name: static}]
"""

TRAINING = """\
name: tiny-train
description: a tiny training scenario
cluster: {nodes: 2, gpus_per_node: 4}
training: {workload: jobs.csv}
policies: [{name: tiresias}]
"""
JOBS = "name,time,application,num_replicas,batch_size\ncifar10-0,0,cifar10,2,128\nncf-1,30,ncf,1,\n"

BOMB = "\n".join(["a: &a [x, x, x, x, x, x, x, x, x, x]"]
                 + [f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
                    f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
                    f"*{chr(97 + i)}, *{chr(97 + i)}]" for i in range(8)])
"""Billion laughs: 10 x 10^8 strings once expanded."""


def edit(old: str, new: str, base: str = INFERENCE) -> str:
    assert old in base, old
    return base.replace(old, new, 1)


SVC2 = """  - name: other
    trace: {kind: azure-code}
    slo: {ttft_seconds: 2.0, attainment: 0.99}
    knobs: {replicas: {min: 1, max: 4}}
policies:"""

CASES = [
    # --- silent wrong results: NaN and infinities pass every "minimum" of a JSON schema
    ("duration-nan", edit("duration_s: 300", "duration_s: .nan"), error("duration_s", "finite")),
    ("duration-inf", edit("duration_s: 300", "duration_s: .inf"), error("duration_s", "finite")),
    ("duration-minus-inf", edit("duration_s: 300", "duration_s: -.inf"), error("duration_s", "finite")),
    ("interval-nan", edit("control_interval_s: 30", "control_interval_s: .nan"),
     error("control_interval_s", "finite")),
    ("interval-inf", edit("control_interval_s: 30", "control_interval_s: .inf"),
     error("control_interval_s", "finite")),
    ("attainment-nan", edit("attainment: 0.99", "attainment: .NaN"), error("inference[0].slo.attainment", "finite")),
    ("ttft-nan", edit("ttft_seconds: 2.0", "ttft_seconds: .nan"), error("inference[0].slo.ttft_seconds", "finite")),
    ("ttft-inf", edit("ttft_seconds: 2.0", "ttft_seconds: .inf"), error("inference[0].slo.ttft_seconds", "finite")),
    ("knob-max-inf", edit("max: 4}", "max: .inf}"), error("knobs.replicas.max", "finite")),
    ("initial-nan", edit("policies:", "    initial: {replicas: .nan}\npolicies:"),
     error("initial.replicas", "finite")),
    ("rate-scale-inf", edit("{kind: azure-code}", "{kind: azure-code, rate_scale: .inf}"),
     error("trace.rate_scale", "finite")),
    ("mtbf-nan", edit("policies:", "failures: {enabled: true, node_mtbf_hours: .nan}\npolicies:"),
     error("failures.node_mtbf_hours", "finite")),
    ("cold-start-nan", edit("policies:", "    cold_start_s: .nan\npolicies:"), error("cold_start_s", "finite")),
    # --- duplicate keys: PyYAML keeps the last one silently
    ("duplicate-top-key", edit("seed: 0", "seed: 0\nseed: 1"), error("duplicate key 'seed'", "line 3")),
    ("duplicate-block-key", edit("cluster: {nodes: 2, gpus_per_node: 8}",
                                 "cluster:\n  nodes: 2\n  gpus_per_node: 8\n  nodes: 3"),
     error("duplicate key 'nodes'", "line")),
    ("duplicate-flow-key", edit("{min: 1, max: 4}", "{min: 1, max: 4, min: 2}"), error("duplicate key 'min'")),
    ("duplicate-policy-key", edit("[{name: static}]", "[{name: static, name: hpa}]"), error("duplicate key 'name'")),
    ("duplicate-service-key", edit("    trace: {kind: azure-code}",
                                   "    trace: {kind: azure-code}\n    trace: {kind: azure-code}"),
     error("duplicate key 'trace'")),
    ("anchors-and-merge-are-fine", edit("slo: {ttft_seconds: 2.0, attainment: 0.99}",
                                        "slo: &slo {ttft_seconds: 2.0, attainment: 0.99}").replace(
        "policies:", "  - {name: other, trace: {kind: azure-code}, slo: {<<: *slo, attainment: 0.9},\n"
                     "     knobs: {replicas: {min: 1, max: 4}}}\npolicies:"),
     ok("ok (")),
    # --- a start larger than the cluster: the run silently started fewer replicas
    ("initial-above-cluster", edit("knobs: {replicas: {min: 1, max: 4}}",
                                   "knobs: {replicas: {min: 1, max: 4}, gpus_per_replica: [8]}\n"
                                   "    initial: {replicas: 3}"),
     error("inference[0].initial", "24 GPUs", "16")),
    ("default-start-above-cluster", edit("{min: 1, max: 4}", "{min: 3, max: 4}"),
     error("inference[0].initial", "cluster has 16")),
    ("two-services-start-above-cluster", edit("policies:", SVC2).replace("nodes: 2", "nodes: 1"),
     error("inference[1].initial", "cluster has 8")),
    ("initial-outside-knob", edit("policies:", "    initial: {replicas: 9}\npolicies:"),
     error("inference[0].initial.replicas", "outside")),
    ("initial-off-grid", edit("knobs: {replicas: {min: 1, max: 4}}",
                              "knobs: {replicas: {min: 1, max: 4}, max_batch_size: {min: 16, max: 64, step: 16}}\n"
                              "    initial: {max_batch_size: 20}"),
     error("initial.max_batch_size", "grid")),
    ("initial-not-a-choice", edit("knobs: {replicas: {min: 1, max: 4}}",
                                  "knobs: {replicas: {min: 1, max: 4}, gpus_per_replica: [4, 8]}\n"
                                  "    initial: {gpus_per_replica: 2}"),
     error("initial.gpus_per_replica", "choices")),
    ("initial-not-a-knob", edit("policies:", "    initial: {workers: 2}\npolicies:"),
     error("initial.workers", "not a knob")),
    ("start-exactly-fills-cluster", edit("policies:", "    initial: {replicas: 2}\npolicies:"), ok("ok (")),
    # --- a training-only scenario runs a cluster scheduler; an inference learner's name was a wrong label
    ("training-only-with-vconf", edit("[{name: tiresias}]", "[{name: vconf}]", TRAINING),
     error("policies[0].name", "'vconf'", "tiresias")),
    ("training-only-with-hpa", edit("[{name: tiresias}]", "[{name: tiresias}, {name: hpa}]", TRAINING),
     error("policies[1].name", "'hpa'")),
    ("training-only-with-oracle", edit("[{name: tiresias}]", "[{name: oracle}]", TRAINING),
     error("policies[0].name", "'oracle'")),
    ("training-only-interval-ignored", edit("cluster:", "control_interval_s: 30\ncluster:", TRAINING),
     error("control_interval_s", "60")),
    ("training-only-interval-60", edit("cluster:", "control_interval_s: 60\ncluster:", TRAINING), ok("ok (")),
    # learner settings are checked like a custom resource's: a negative layer width used to crash torch
    ("learner-setting-negative", INFERENCE.replace("policies: [{name: static}]",
                                                   "policies: [{name: vconf, settings: {hidden: -1}}]"),
     error("policy vconf", "settings.hidden", "between 1 and")),
    ("learner-setting-wrong-type", INFERENCE.replace("policies: [{name: static}]",
                                                     "policies: [{name: hpa, settings: {target: fast}}]"),
     error("policy hpa", "settings.target", "expected a finite number")),
    ("training-only", TRAINING, ok("ok (1 policies")),
    ("training-goodput-waterfill", edit("[{name: tiresias}]", "[{name: goodput-waterfill}]", TRAINING), ok("ok (")),
    ("training-pollux", edit("[{name: tiresias}]", "[{name: pollux}]", TRAINING), ok("ok (")),
    ("training-old-name", edit("[{name: tiresias}]", "[{name: rl-arbiter}]", TRAINING),
     error("policies[0].name", "renamed 'goodput-waterfill'")),
    ("mixed-with-a-job-wider-than-the-cluster", edit("policies:", "training: {workload: pollux-1.0/workload-1}\n"
                                                                  "policies:"), ok("ok (")),
    ("mixed-with-interval", edit("policies:", "training: {workload: jobs.csv}\npolicies:")
     .replace("nodes: 2", "nodes: 3"), ok("ok (")),
    # --- hangs: magnitudes that would run for days or exhaust memory
    ("duration-1e12", edit("duration_s: 300", "duration_s: 1e12"), error("duration_s", "limit of 604800")),
    ("duration-1.0e+12", edit("duration_s: 300", "duration_s: 1.0e+12"), error("duration_s", "limit")),
    ("duration-a-week-and-a-second", edit("duration_s: 300", "duration_s: 604801"), error("duration_s", "limit")),
    ("interval-1e-6", edit("control_interval_s: 30", "control_interval_s: 1e-6"),
     error("control_interval_s", "minimum of 1 s")),
    ("interval-too-many-steps", edit("duration_s: 300", "duration_s: 600000").replace(
        "control_interval_s: 30", "control_interval_s: 2"), error("control_interval_s", "control steps")),
    ("trace-duration-1e9", edit("{kind: azure-code}", "{kind: azure-code, duration_s: 1e9}"),
     error("inference[0].trace.duration_s", "limit")),
    ("nodes-1e9", edit("nodes: 2", "nodes: 1e9"), error("cluster.nodes", "maximum")),
    ("nodes-1000000000", edit("nodes: 2", "nodes: 1000000000"), error("cluster.nodes", "maximum")),
    ("gpus-per-node-1e6", edit("gpus_per_node: 8", "gpus_per_node: 1000000"),
     error("cluster.gpus_per_node", "maximum")),
    ("cluster-too-many-gpus", edit("nodes: 2, gpus_per_node: 8", "nodes: 10000, gpus_per_node: 64"),
     error("cluster", "640000 GPUs")),
    ("load-shape-rate-1e9", edit("{kind: azure-code}", "{kind: load-shape, shape: bursty, mean_rate_per_s: 1e9}"),
     error("inference[0].trace", "requests")),
    ("azure-rate-scale-1e6", edit("{kind: azure-code}", "{kind: azure-code, rate_scale: 1e6, duration_s: 3600}"),
     error("inference[0].trace", "requests")),
    ("replicas-max-1e9", edit("max: 4}", "max: 1000000000}"), error("knobs.replicas", "values")),
    ("replicas-max-above-gpus", edit("max: 4}", "max: 100}"), error("knobs.replicas.max", "16 GPUs")),
    ("batch-grid-1e7", edit("{replicas: {min: 1, max: 4}}",
                            "{replicas: {min: 1, max: 4}, max_batch_size: {min: 1, max: 10000000}}"),
     error("knobs.max_batch_size", "values")),
    ("batch-step-1e-9", edit("{replicas: {min: 1, max: 4}}",
                             "{replicas: {min: 1, max: 4}, max_batch_size: {min: 1, max: 64, step: 1e-9}}"),
     error("max_batch_size.step", "integer")),
    ("mtbf-1e-9", edit("policies:", "failures: {enabled: true, node_mtbf_hours: 1e-9}\npolicies:"),
     error("failures.node_mtbf_hours", "node failures")),
    ("cold-start-1e9", edit("policies:", "    cold_start_s: 1e9\npolicies:"), error("cold_start_s", "limit")),
    ("alias-bomb", BOMB, error("alias", "100000")),
    ("alias-bomb-in-a-field", edit("policies:", "    model: *i\npolicies:", BOMB + "\n" + INFERENCE),
     error("alias")),
    ("recursive-alias", edit("policies:", "x: &loop [*loop]\npolicies:"), error("alias")),
    ("deep-nesting", "name: " + "[" * 5000 + "]" * 5000 + "\n", error("nested too deeply")),
    ("huge-file", INFERENCE + "# " + "x" * (1 << 21) + "\n", error("bytes", "at most")),
    # --- types, ranges and shapes
    ("empty-file", "", error("expected a mapping")),
    ("top-level-list", "- name: tiny\n", error("expected a mapping")),
    ("top-level-string", "just words\n", error("expected a mapping")),
    ("binary-garbage", b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe", error("UTF-8")),
    ("tab-indentation", edit("  - name: svc", "\t- name: svc"), error("not valid YAML", "line")),
    ("unclosed-bracket", edit("[{name: static}]", "[{name: static}"), error("not valid YAML")),
    ("seed-2^32", edit("seed: 0", "seed: 4294967296"), error("seed", "maximum")),
    ("seed-negative", edit("seed: 0", "seed: -1"), error("seed", "minimum")),
    ("seed-fraction", edit("seed: 0", "seed: 1.5"), error("seed", "integer")),
    ("seed-string", edit("seed: 0", "seed: zero"), error("seed", "integer")),
    ("name-uppercase", edit("name: tiny", "name: Tiny"), error("name", "does not match")),
    ("description-empty", edit("description: a tiny inference scenario", "description: ''"),
     error("description")),
    ("duration-zero", edit("duration_s: 300", "duration_s: 0"), error("duration_s")),
    ("duration-string", edit("duration_s: 300", "duration_s: 5 minutes"), error("duration_s", "number")),
    ("duration-bool", edit("duration_s: 300", "duration_s: yes"), error("duration_s", "number")),
    ("nodes-zero", edit("nodes: 2", "nodes: 0"), error("cluster.nodes", "minimum")),
    ("nodes-fraction", edit("nodes: 2", "nodes: 2.5"), error("cluster.nodes", "integer")),
    ("cluster-missing", edit("cluster: {nodes: 2, gpus_per_node: 8}\n", ""), error("cluster", "required")),
    ("no-workload", INFERENCE.split("inference:")[0] + "policies: [{name: static}]\n",
     error("inference", "training")),
    ("unknown-top-field", edit("seed: 0", "sead: 0"), error("unknown field(s) sead")),
    ("unknown-learner", edit("[{name: static}]", "[{name: nope}]"), error("policy nope", "unknown learner")),
    ("learner-setting-unknown", edit("[{name: static}]", "[{name: hpa, settings: {no_such_setting: 1}}]"),
     error("policy hpa", "no_such_setting")),
    ("policies-empty", edit("[{name: static}]", "[]"), error("policies")),
    ("policy-without-name", edit("[{name: static}]", "[{label: x}]"), error("name", "required")),
    ("duplicate-labels", edit("[{name: static}]", "[{name: static}, {name: static}]"), error("duplicate label")),
    ("sweep-empty", edit("[{name: static}]", "[{name: hpa, sweep: {target: []}}]"), error("sweep")),
    ("kind-missing", edit("{kind: azure-code}", "{path: x.csv}"), error("trace", "kind")),
    ("kind-unknown", edit("kind: azure-code", "kind: azure"), error("trace.kind")),
    ("request-log-no-path", edit("kind: azure-code", "kind: request-log"), error("trace.path", "required")),
    ("load-shape-no-shape", edit("kind: azure-code", "kind: load-shape"), error("trace.shape", "required")),
    ("load-shape-missing-file", edit("kind: azure-code", "kind: load-shape, shape: nope.txt"),
     error("trace.shape", "does not exist")),
    ("latency-table-missing", edit("    trace:", "    latency_table: nope.csv\n    trace:"),
     error("latency_table", "does not exist")),
    ("slo-attainment-only", edit("{ttft_seconds: 2.0, attainment: 0.99}", "{attainment: 0.99}"),
     error("inference[0].slo", "at least one target")),
    ("slo-attainment-zero", edit("attainment: 0.99", "attainment: 0"), error("slo.attainment")),
    ("slo-attainment-above-one", edit("attainment: 0.99", "attainment: 99"), error("slo.attainment", "maximum")),
    ("knob-min-above-max", edit("{min: 1, max: 4}", "{min: 5, max: 4}"), error("knobs.replicas", "above max")),
    ("knob-replicas-missing", edit("{replicas: {min: 1, max: 4}}", "{max_batch_size: {min: 1, max: 4}}"),
     error("knobs", "replicas")),
    ("knob-fractional-replicas", edit("{min: 1, max: 4}", "{min: 1, max: 4, step: 0.5}"),
     error("replicas.step", "integer")),
    ("knob-step-zero", edit("{min: 1, max: 4}", "{min: 1, max: 4, step: 0}"), error("replicas.step")),
    ("gpus-per-replica-empty", edit("{replicas: {min: 1, max: 4}}",
                                    "{replicas: {min: 1, max: 4}, gpus_per_replica: []}"),
     error("gpus_per_replica")),
    ("gpus-per-replica-fraction", edit("{replicas: {min: 1, max: 4}}",
                                       "{replicas: {min: 1, max: 4}, gpus_per_replica: [2.5]}"),
     error("gpus_per_replica[0]", "integer")),
    ("gpus-per-replica-unmeasured", edit("{replicas: {min: 1, max: 4}}",
                                         "{replicas: {min: 1, max: 4}, gpus_per_replica: [3]}"),
     error("gpus_per_replica", "not measured")),
    ("slowdown-above-one", edit("policies:", "interference: {enabled: true, slowdown_per_neighbour: 2}\npolicies:"),
     error("interference.slowdown_per_neighbour", "maximum")),
    ("training-workload-unknown-bundle", edit("{workload: jobs.csv}", "{workload: pollux-2.0}", TRAINING),
     error("training.workload", "no bundled workload")),
    ("training-scheduler-unknown", edit("{workload: jobs.csv}", "{workload: jobs.csv, scheduler: fifo}", TRAINING),
     error("training.scheduler", "tiresias")),
    # --- boundaries that must pass
    ("good", INFERENCE, ok("ok (1 policies")),
    ("yaml-1.2-floats", edit("duration_s: 300", "duration_s: 3e2"), ok("ok (")),
    ("interval-at-minimum", edit("control_interval_s: 30", "control_interval_s: 1"), ok("ok (")),
    ("duration-a-week", edit("duration_s: 300", "duration_s: 604800").replace(
        "control_interval_s: 30", "control_interval_s: 60"), ok("ok (")),
    ("scale-to-zero", edit("{min: 1, max: 4}", "{min: 0, max: 4}"), ok("ok (")),
]


@pytest.mark.parametrize("text, expect", [pytest.param(t, e, id=i) for i, t, e in CASES])
def test_scenario_corpus(tmp_path, judge, text, expect):
    started = time.monotonic()
    result = run_cli(tmp_path, {"s.yaml": text, "jobs.csv": JOBS}, ["sim", "{d}/s.yaml", "--check"])
    judge(result, expect)
    assert time.monotonic() - started < 30, "a check must be quick, whatever the file says"
