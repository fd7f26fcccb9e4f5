"""Scenario files: YAML, validated against a JSON schema, with errors that name file, field and expectation.

A scenario says what runs (inference services, a training workload, the cluster), for how long, what
the SLO is, which policies to compare and which baseline targets to sweep. Data references are either
bundled names (``azure-code``, ``bursty``, ``pollux-1.0/workload-3``) or paths relative to the
scenario file, so users can bring their own latency table and request log.
"""

from __future__ import annotations

import copy
import hashlib
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from simulator.datasets import DATA_DIR, sha256_of

SCENARIO_DIR = Path(__file__).resolve().parent / "scenarios"

# --- Limits: what one scenario may ask of one run, so that whatever passes ``--check`` finishes in bounded time
# and memory. Each is far above every bundled scenario (the largest: 8 h of training, 2 h of inference at
# 8 requests/s, 24 nodes) and each error message says which limit was hit.
MAX_FILE_BYTES = 1 << 20
"""A scenario is a page of YAML; a megabyte is a mistake (or an attack), not a scenario."""
MAX_YAML_NODES = 100_000
"""Values a scenario may hold once YAML aliases are expanded (a billion-laughs file holds 10^9)."""
MAX_SEED = 2**32 - 1
"""numpy's legacy seeding and most tools take 32-bit seeds."""
MAX_DURATION_S = 7 * 86_400.0
"""One simulated run covers at most a week."""
MIN_CONTROL_INTERVAL_S = 1.0
"""The operator steps a learner at most once a second (its metrics are scraped far less often)."""
MAX_CONTROL_STEPS = 100_000
"""Control steps per run (duration / control interval): a week at 6 s."""
MAX_DRAIN_GRACE_S = 86_400.0
"""After the last arrival a run drains for at most this long (``drain_grace_s``, simulator/workloads.py): a day,
far above the 600 s default and any request's service time, while bounding the run it extends."""
MAX_REQUESTS = 5_000_000
"""Requests one service's trace may imply (rate x rate_scale x duration): each is simulated one by one."""
MAX_NODES = 10_000
MAX_GPUS_PER_NODE = 64
MAX_CLUSTER_GPUS = 100_000
MAX_KNOB_VALUES = 10_000
"""Values a knob range (min..max by step) may hold; learners enumerate them."""
MAX_NODE_FAILURES = 100_000
"""Node failures a run may imply (nodes x duration / MTBF); each is a simulated event with a repair."""
TRAINING_ROUND_S = 60.0
"""The training schedulers' fixed round (the Pollux artifact's ``--interval``, simulator/training/cluster_sim.py)."""
TRAINING_SCHEDULER_NAMES = ("tiresias", "goodput-waterfill", "pollux", "goodput-las", "shared-goodput", "pollux-pool",
                            "pollux-pool-advised", "shared-goodput-pool", "shared-goodput-pool-advised")
"""Policies a training-only scenario may name (simulator/workloads.py ``TRAINING_SCHEDULERS``)."""
RENAMED_TRAINING_SCHEDULERS = {"rl-arbiter": "goodput-waterfill"}
"""Old names refused with the new one (simulator/workloads.py ``RENAMED_SCHEDULERS``)."""
AZURE_CODE_MEAN_RATE_PER_S = 2.57
"""Mean request rate of the bundled Azure code trace (8,819 requests in about 57 minutes)."""

_range = {
    "type": "object",
    "additionalProperties": False,
    "required": ["min", "max"],
    "properties": {
        "min": {"type": "integer", "minimum": 0},
        "max": {"type": "integer", "minimum": 0},
        "step": {"type": "integer", "exclusiveMinimum": 0},
    },
}
_choices = {"type": "array", "minItems": 1, "items": {"type": "integer", "exclusiveMinimum": 0}}

_policy = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "label": {"type": "string", "minLength": 1},
        "settings": {"type": "object"},
        "sweep": {
            "type": "object",
            "description": "setting -> values; the cheapest value meeting the SLO is reported",
            "additionalProperties": {"type": "array", "minItems": 1},
        },
        "checkpoint": {"type": "string"},
        "share": {
            "type": "boolean",
            "description": "services of one class (namespace, model, hardware, learner, knobs) share experience",
        },
        "share_every_s": {"type": "number", "exclusiveMinimum": 0},
        "share_max_age_s": {"type": "number", "exclusiveMinimum": 0},
        "share_fraction": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
        "profiled": {
            "type": "boolean",
            "description": "give a planner that takes a latency profile (forecast's prefill_seconds) each "
                           "service's own, from the latency table it is simulated with",
        },
    },
}

SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "autocm scenario",
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "description", "cluster", "policies"],
    "properties": {
        "name": {"type": "string", "pattern": "^[a-z0-9][a-z0-9.-]*$"},
        "description": {"type": "string", "minLength": 1},
        "seed": {"type": "integer", "minimum": 0, "maximum": MAX_SEED},
        "duration_s": {"type": "number", "exclusiveMinimum": 0},
        "control_interval_s": {"type": "number", "exclusiveMinimum": 0},
        "drain_grace_s": {"type": "number", "minimum": 0, "maximum": MAX_DRAIN_GRACE_S},
        "cluster": {
            "type": "object",
            "additionalProperties": False,
            "required": ["nodes", "gpus_per_node"],
            "properties": {
                "nodes": {"type": "integer", "minimum": 1, "maximum": MAX_NODES},
                "gpus_per_node": {"type": "integer", "minimum": 1, "maximum": MAX_GPUS_PER_NODE},
                "gpu_type": {"type": "string"},
                "node_choice": {"enum": ["pack", "most-free"]},
            },
        },
        "inference": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["name", "trace", "slo", "knobs"],
                "properties": {
                    "name": {"type": "string", "pattern": "^[a-z0-9][a-z0-9-]*$"},
                    "namespace": {"type": "string"},
                    "model": {"type": "string"},
                    "hardware": {"type": "string"},
                    "latency_table": {"type": "string",
                                      "description": "'bundled' or a CSV path with splitwise's columns"},
                    "trace": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["kind"],
                        "properties": {
                            "kind": {"enum": ["azure-code", "load-shape", "request-log"]},
                            "shape": {"type": "string"},
                            "path": {"type": "string"},
                            "mean_rate_per_s": {"type": "number", "exclusiveMinimum": 0},
                            "mean_rate_range": {
                                "type": "array", "minItems": 2, "maxItems": 2,
                                "items": {"type": "number", "exclusiveMinimum": 0},
                                "description": "load-shape only, instead of mean_rate_per_s: [low, high] "
                                               "requests/s; each seed draws its mean log-uniformly from it "
                                               "(a training ground over load levels)"},
                            "duration_s": {"type": "number", "exclusiveMinimum": 0},
                            "rate_scale": {"type": "number", "exclusiveMinimum": 0},
                            "sizes": {"enum": ["all", "first-half", "second-half"],
                                      "description": "load-shape request sizes: drawn from all of the "
                                                     "Azure code trace, or only its first/second half "
                                                     "(keeps training and evaluation requests disjoint)"},
                        },
                    },
                    "slo": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["attainment"],
                        "minProperties": 2,
                        "properties": {
                            "ttft_seconds": {"type": "number", "exclusiveMinimum": 0},
                            "tbt_seconds": {"type": "number", "exclusiveMinimum": 0},
                            "e2e_seconds": {"type": "number", "exclusiveMinimum": 0},
                            "attainment": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
                        },
                    },
                    "knobs": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["replicas"],
                        "properties": {
                            "replicas": _range,
                            "gpus_per_replica": _choices,
                            "max_batch_size": _range,
                        },
                    },
                    "initial": {"type": "object", "additionalProperties": {"type": "number"}},
                    "cold_start_s": {"type": "number", "minimum": 0},
                },
            },
        },
        "training": {
            "type": "object",
            "additionalProperties": False,
            "required": ["workload"],
            "properties": {
                "workload": {"type": "string",
                             "description": "pollux-<load>, pollux-<load>/workload-<n> or a CSV path"},
                "scheduler": {"enum": [*TRAINING_SCHEDULER_NAMES, *RENAMED_TRAINING_SCHEDULERS],
                              "description": "the cluster scheduler when an inference learner is the policy"},
                "namespace": {"type": "string"},
            },
        },
        "failures": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "enabled": {"type": "boolean"},
                "node_mtbf_hours": {"type": "number", "exclusiveMinimum": 0},
                "repair_s": {"type": "number", "minimum": 0},
            },
        },
        "interference": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "enabled": {"type": "boolean"},
                "slowdown_per_neighbour": {"type": "number", "minimum": 0, "maximum": 1},
            },
        },
        "policies": {"type": "array", "minItems": 1, "items": _policy},
    },
    "anyOf": [{"required": ["inference"]}, {"required": ["training"]}],
}


class ScenarioError(ValueError):
    """A scenario that cannot run; the message names the file, the field and what was expected."""


@dataclass(frozen=True)
class Scenario:
    name: str
    path: Path
    raw: dict[str, Any]
    digest: str
    data_files: tuple[Path, ...] = field(default=())

    @property
    def seed(self) -> int:
        return int(self.raw.get("seed", 0))

    @property
    def control_interval_s(self) -> float:
        return float(self.raw.get("control_interval_s", 60.0))

    @property
    def inference(self) -> list[dict[str, Any]]:
        return list(self.raw.get("inference", []))

    @property
    def training(self) -> dict[str, Any] | None:
        return self.raw.get("training")

    @property
    def policies(self) -> list[dict[str, Any]]:
        return list(self.raw["policies"])

    def resolve(self, ref: str) -> Path:
        """A path written in the scenario, relative to the scenario file."""
        p = Path(ref).expanduser()
        return p if p.is_absolute() else (self.path.parent / p).resolve()


def bundled() -> dict[str, Path]:
    """Bundled scenarios by name."""
    return {p.stem: p for p in sorted(SCENARIO_DIR.glob("*.yaml"))}


def find(name_or_path: str) -> Path:
    """A scenario by bundled name or by path."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.exists():
        if not p.exists():
            raise ScenarioError(f"{p}: no such scenario file")
        return p
    known = bundled()
    if name_or_path in known:
        return known[name_or_path]
    raise ScenarioError(
        f"{name_or_path!r} is neither a scenario file nor a bundled scenario; bundled: {', '.join(known)}"
    )


def _where(err: jsonschema.ValidationError) -> str:
    parts = [str(p) if isinstance(p, str) else f"[{p}]" for p in err.absolute_path]
    text = ".".join(parts).replace(".[", "[")
    return text or "(top level)"


def _explain(err: jsonschema.ValidationError) -> str:
    if err.validator == "additionalProperties":
        extra = sorted(set(err.instance) - set(err.schema.get("properties", {})))
        allowed = ", ".join(sorted(err.schema.get("properties", {})))
        return f"unknown field(s) {', '.join(extra)}; expected one of: {allowed}"
    if err.validator == "required":
        return err.message.replace("is a required property", "is required")
    if err.validator == "minProperties" and list(err.absolute_path)[-1:] == ["slo"]:
        return "give an attainment and at least one target: ttft_seconds, tbt_seconds or e2e_seconds"
    if err.validator == "anyOf" and not err.absolute_path:
        return "a scenario needs an 'inference' list or a 'training' section (or both)"
    return err.message


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader, stricter where a silent answer would be wrong:

    - a key given twice in one mapping is an error naming the key and both lines (PyYAML keeps the last);
    - ``1e9`` and ``1e-6`` are numbers, as in YAML 1.2 (PyYAML's YAML 1.1 reads them as strings);
    - :func:`_parse_yaml` refuses documents whose aliases expand past :data:`MAX_YAML_NODES` values before
      building them, so a billion-laughs file fails in microseconds and no message ever expands it.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.get(key)
                except TypeError:  # an unhashable key: the base class reports it
                    break
                if first is not None:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key!r} (first given on line {first + 1}); give each key once",
                        key_node.start_mark)
                seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


_BoundedLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"))


def _expanded_size(node: yaml.Node, memo: dict[int, int]) -> int:
    """Values ``node`` stands for once every alias is expanded (memoised per node: aliases share nodes)."""
    known = memo.get(id(node))
    if known is not None:
        return known
    memo[id(node)] = MAX_YAML_NODES + 1  # a node inside itself (a recursive alias) expands forever
    if isinstance(node, yaml.SequenceNode):
        size = 1 + sum(_expanded_size(child, memo) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        size = 1 + sum(_expanded_size(k, memo) + _expanded_size(v, memo) for k, v in node.value)
    else:
        size = 1
    memo[id(node)] = min(size, MAX_YAML_NODES + 1)
    return memo[id(node)]


def _parse_yaml(text: str, path: Path) -> Any:
    """YAML -> Python, bounded in size, in expansion and in nesting, with errors naming line and column."""
    if len(text.encode()) > MAX_FILE_BYTES:
        raise ScenarioError(f"{path}: {len(text.encode())} bytes; a scenario file may be at most "
                            f"{MAX_FILE_BYTES} bytes")
    loader = _BoundedLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if _expanded_size(node, {}) > MAX_YAML_NODES:
            raise ScenarioError(f"{path}: its aliases (*name) expand to more than {MAX_YAML_NODES} values; "
                                "a scenario needs a few hundred (is this a YAML alias bomb?)")
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ScenarioError(f"{path}:{where}: not valid YAML: {problem}") from None
    except RecursionError:
        raise ScenarioError(f"{path}: nested too deeply to be a scenario") from None
    finally:
        loader.dispose()


def _check_finite(value: Any, path: Path, where: str = "") -> None:
    """NaN and infinity are valid YAML (``.nan``, ``.inf``) and pass every ``minimum`` of a JSON schema
    (comparisons with NaN are false), so they are refused here, anywhere in the file."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ScenarioError(f"{path}: {where or '(top level)'}: expected a finite number, got {value}")
    if isinstance(value, dict):
        for k, v in value.items():
            _check_finite(v, path, f"{where}.{k}" if where else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_finite(v, path, f"{where}[{i}]")


def implied_duration_s(raw: dict[str, Any]) -> float:
    """Simulated seconds a run covers, as far as the file says (request logs add their own span later)."""
    if "duration_s" in raw:
        return float(raw["duration_s"])
    longest = 0.0
    for svc in raw.get("inference", []):
        t = svc["trace"]
        if "duration_s" in t:
            longest = max(longest, float(t["duration_s"]))
        elif t["kind"] == "load-shape":
            longest = max(longest, 3600.0)
        elif t["kind"] == "azure-code":
            longest = max(longest, 3437.0 / float(t.get("rate_scale", 1.0)))
    return longest or 8 * 3600.0


def _check_magnitudes(raw: dict[str, Any], path: Path) -> None:
    """The time and memory a scenario implies, against the limits at the top of this module."""
    def too_big(where: str, value: float, limit: float, unit: str, advice: str) -> ScenarioError:
        return ScenarioError(f"{path}: {where}: {value:g}{unit} is above the limit of {limit:g}{unit}; {advice}")

    for where, value in [("duration_s", raw.get("duration_s"))] + [
            (f"inference[{i}].trace.duration_s", svc["trace"].get("duration_s"))
            for i, svc in enumerate(raw.get("inference", []))]:
        if value is not None and float(value) > MAX_DURATION_S:
            raise too_big(where, float(value), MAX_DURATION_S, " s", "split the study into runs of at most a week")
    interval = float(raw.get("control_interval_s", 60.0))
    if interval < MIN_CONTROL_INTERVAL_S:
        raise ScenarioError(f"{path}: control_interval_s: {interval:g} s is below the minimum of "
                            f"{MIN_CONTROL_INTERVAL_S:g} s between two control steps")
    duration = implied_duration_s(raw)
    if raw.get("inference") and duration / interval > MAX_CONTROL_STEPS:
        raise ScenarioError(f"{path}: control_interval_s: {interval:g} s over {duration:g} s is "
                            f"{duration / interval:.3g} control steps, above the limit of {MAX_CONTROL_STEPS}; "
                            "use a longer interval or a shorter duration")
    cluster = raw["cluster"]
    gpus = int(cluster["nodes"]) * int(cluster["gpus_per_node"])
    if gpus > MAX_CLUSTER_GPUS:
        raise ScenarioError(f"{path}: cluster: {cluster['nodes']} nodes x {cluster['gpus_per_node']} GPUs is "
                            f"{gpus} GPUs, above the limit of {MAX_CLUSTER_GPUS}")
    for i, svc in enumerate(raw.get("inference", [])):
        t = svc["trace"]
        if t["kind"] != "request-log":  # a request log's own size is checked when it is read
            top = max(t["mean_rate_range"]) if "mean_rate_range" in t else t.get("mean_rate_per_s",
                                                                                   AZURE_CODE_MEAN_RATE_PER_S)
            rate = float(top) * float(t.get("rate_scale", 1.0))
            span = float(t.get("duration_s", 3600.0 if t["kind"] == "load-shape" else 3437.0 / float(
                t.get("rate_scale", 1.0))))
            if rate * span > MAX_REQUESTS:
                raise ScenarioError(f"{path}: inference[{i}].trace: {rate:g} requests/s over {span:g} s is "
                                    f"{rate * span:.3g} requests, above the limit of {MAX_REQUESTS} per service")
        for knob, spec in svc["knobs"].items():
            if isinstance(spec, dict):
                values = (float(spec["max"]) - float(spec["min"])) / float(spec.get("step", 1)) + 1
                if values > MAX_KNOB_VALUES:
                    raise ScenarioError(f"{path}: inference[{i}].knobs.{knob}: min {spec['min']} to max "
                                        f"{spec['max']} by step {spec.get('step', 1)} is {values:.3g} values, "
                                        f"above the limit of {MAX_KNOB_VALUES}")
        if svc["knobs"]["replicas"]["max"] > gpus:
            raise ScenarioError(f"{path}: inference[{i}].knobs.replicas.max: {svc['knobs']['replicas']['max']} "
                                f"replicas cannot fit the cluster's {gpus} GPUs (each needs at least one)")
        if float(svc.get("cold_start_s", 0.0)) > MAX_DURATION_S:
            raise too_big(f"inference[{i}].cold_start_s", float(svc["cold_start_s"]), MAX_DURATION_S, " s",
                          "a replica must be able to start within a run")
    fail = raw.get("failures", {})
    if fail.get("enabled"):
        mtbf_h = float(fail.get("node_mtbf_hours", 1000.0))
        expected = int(cluster["nodes"]) * duration / (3600.0 * mtbf_h)
        if expected > MAX_NODE_FAILURES:
            raise ScenarioError(f"{path}: failures.node_mtbf_hours: {mtbf_h:g} h on {cluster['nodes']} nodes "
                                f"over {duration:g} s is {expected:.3g} node failures, above the limit of "
                                f"{MAX_NODE_FAILURES}")


def _short(message: str, limit: int = 300) -> str:
    """jsonschema quotes the offending value whole; a one-line error must stay one short line."""
    message = " ".join(message.split())
    return message if len(message) <= limit else message[: limit - 20] + " ... (value shortened)"


def _check_semantics(raw: dict[str, Any], path: Path) -> None:
    """Rules a JSON schema cannot say: ranges ordered, initial values inside knobs, data present."""
    gpus = int(raw["cluster"]["nodes"]) * int(raw["cluster"]["gpus_per_node"])
    for i, svc in enumerate(raw.get("inference", [])):
        for knob, spec in svc["knobs"].items():
            if isinstance(spec, dict) and spec["min"] > spec["max"]:
                raise ScenarioError(
                    f"{path}: inference[{i}].knobs.{knob}: min {spec['min']} is above max {spec['max']}"
                )
        for knob, value in svc.get("initial", {}).items():
            if knob not in svc["knobs"]:
                raise ScenarioError(
                    f"{path}: inference[{i}].initial.{knob}: not a knob of this service; "
                    f"knobs are {', '.join(svc['knobs'])}"
                )
            spec = svc["knobs"][knob]
            if isinstance(spec, dict) and not spec["min"] <= value <= spec["max"]:
                raise ScenarioError(f"{path}: inference[{i}].initial.{knob}: {value:g} is outside the knob's "
                                    f"range {spec['min']}..{spec['max']}")
            if isinstance(spec, dict) and (value - spec["min"]) % spec.get("step", 1):
                raise ScenarioError(f"{path}: inference[{i}].initial.{knob}: {value:g} is not on the knob's grid "
                                    f"{spec['min']}, {spec['min'] + spec.get('step', 1)}, ... {spec['max']}")
            if isinstance(spec, list) and value not in spec:
                raise ScenarioError(f"{path}: inference[{i}].initial.{knob}: {value:g} is not one of the knob's "
                                    f"choices {spec}")
        init = svc.get("initial", {})
        tp = init.get("gpus_per_replica", max(svc["knobs"].get("gpus_per_replica", [0])))
        if tp and init.get("replicas", svc["knobs"]["replicas"]["min"]) * tp > gpus:
            replicas = init.get("replicas", svc["knobs"]["replicas"]["min"])
            raise ScenarioError(f"{path}: inference[{i}].initial: {replicas:g} replicas x {tp:g} GPUs needs "
                                f"{replicas * tp:g} GPUs, and the cluster has {gpus}; the service would silently "
                                "start smaller than configured")
        trace = svc["trace"]
        if trace["kind"] == "request-log" and "path" not in trace:
            raise ScenarioError(f"{path}: inference[{i}].trace.path: required for kind request-log")
        if "mean_rate_range" in trace:
            low, high = (float(v) for v in trace["mean_rate_range"])
            if trace["kind"] != "load-shape":
                raise ScenarioError(f"{path}: inference[{i}].trace.mean_rate_range: only for kind load-shape "
                                    f"(a {trace['kind']} trace has its own rates; scale it with rate_scale)")
            if "mean_rate_per_s" in trace:
                raise ScenarioError(f"{path}: inference[{i}].trace: give mean_rate_per_s or mean_rate_range, "
                                    "not both")
            if low > high:
                raise ScenarioError(f"{path}: inference[{i}].trace.mean_rate_range: [{low:g}, {high:g}] is "
                                    "[low, high] with low above high")
        if trace["kind"] == "load-shape" and "shape" not in trace:
            raise ScenarioError(f"{path}: inference[{i}].trace.shape: required for kind load-shape "
                                "(bursty, noisy or a file path)")
    names = [p.get("label", p["name"]) for p in raw["policies"]]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ScenarioError(f"{path}: policies: duplicate label(s) {dup}; give each a distinct 'label'")
    if not raw.get("inference"):  # training only: a cluster scheduler runs, nothing else would
        for i, p in enumerate(raw["policies"]):
            if p["name"] in RENAMED_TRAINING_SCHEDULERS:
                raise ScenarioError(f"{path}: policies[{i}].name: the training scheduler {p['name']!r} was renamed "
                                    f"{RENAMED_TRAINING_SCHEDULERS[p['name']]!r} (it is a greedy heuristic; nothing "
                                    "in it learns); use the new name")
            if p["name"] not in TRAINING_SCHEDULER_NAMES:
                raise ScenarioError(
                    f"{path}: policies[{i}].name: {p['name']!r} sizes inference services, and this scenario has "
                    f"only training jobs; name a training scheduler ({', '.join(TRAINING_SCHEDULER_NAMES)})")
        interval = raw.get("control_interval_s")
        if interval is not None and float(interval) != TRAINING_ROUND_S:
            raise ScenarioError(
                f"{path}: control_interval_s: {interval:g} s would be ignored: the training schedulers decide "
                f"every {TRAINING_ROUND_S:g} s (the Pollux artifact's round); remove it or set it to "
                f"{TRAINING_ROUND_S:g}")


def data_files_of(raw: dict[str, Any], path: Path) -> list[Path]:
    """Every data file the scenario reads (for the report's hash and for existence checks)."""
    files: list[Path] = []

    def local(ref: str, where: str) -> Path:
        p = Path(ref).expanduser()
        p = p if p.is_absolute() else (path.parent / p).resolve()
        if not p.exists():
            raise ScenarioError(f"{path}: {where}: file {p} does not exist")
        if not p.is_file():
            raise ScenarioError(f"{path}: {where}: {p} is a folder, expected a file")
        return p

    for i, svc in enumerate(raw.get("inference", [])):
        table = svc.get("latency_table", "bundled")
        files.append(DATA_DIR / "splitwise" / "perf_model.csv" if table == "bundled"
                     else local(table, f"inference[{i}].latency_table"))
        trace = svc["trace"]
        if trace["kind"] == "request-log":
            files.append(local(trace["path"], f"inference[{i}].trace.path"))
        else:
            files.append(DATA_DIR / "azure-llm-2023" / "AzureLLMInferenceTrace_code.csv")
        if trace["kind"] == "load-shape":
            shape = trace["shape"]
            if shape in ("bursty", "noisy"):
                files.append(DATA_DIR / "load-shapes" / f"{shape}.txt")
            else:
                files.append(local(shape, f"inference[{i}].trace.shape"))
    training = raw.get("training")
    if training:
        files.extend(training_workload_paths(training["workload"], path))
    for i, policy in enumerate(raw["policies"]):  # a missing checkpoint is reported when the policy is checked
        ckpt = policy.get("checkpoint")
        if ckpt is not None and (path.parent / Path(ckpt).expanduser()).is_dir():
            raise ScenarioError(f"{path}: policies[{i}].checkpoint: {ckpt} is a folder, expected a checkpoint "
                                "file (made by autocm train)")
    return files


def training_workload_paths(ref: str, scenario_path: Path) -> list[Path]:
    """``pollux-1.0`` -> the 8 bundled job streams at that load; ``pollux-1.0/workload-3`` -> one of
    them; anything else is a path to a user's CSV (``name,time,application,num_replicas,batch_size``)."""
    if ref.startswith("pollux-"):
        load, _, wl = ref.removeprefix("pollux-").partition("/")
        folder = DATA_DIR / "pollux" / f"workloads-{load}"
        paths = sorted(folder.glob("workload-*.csv"), key=lambda p: int(p.stem.split("-")[1])) if not wl \
            else [folder / f"{wl}.csv"]
        if not paths or not all(p.exists() for p in paths):
            raise ScenarioError(f"{scenario_path}: training.workload: no bundled workload {ref!r} "
                                "(expected pollux-<0.5|1.0|1.5> or pollux-<load>/workload-<1..8>)")
        return paths
    p = Path(ref).expanduser()
    p = p if p.is_absolute() else (scenario_path.parent / p).resolve()
    if not p.exists():
        raise ScenarioError(f"{scenario_path}: training.workload: file {p} does not exist")
    if not p.is_file():
        raise ScenarioError(f"{scenario_path}: training.workload: {p} is a folder, expected a CSV file "
                            "(name,time,application,num_replicas,batch_size)")
    return [p]


def load(name_or_path: str | Path) -> Scenario:
    """Read, validate and fingerprint a scenario. Raises :class:`ScenarioError` with one clear message."""
    path = find(str(name_or_path))
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ScenarioError(f"{path}: not a text (UTF-8) file: byte {exc.start} is {exc.object[exc.start]:#04x}; "
                            "expected a YAML scenario") from None
    raw = _parse_yaml(text, path)
    if not isinstance(raw, dict):
        raise ScenarioError(f"{path}: expected a mapping of scenario fields at the top level")
    _check_finite(raw, path)
    validator = jsonschema.Draft202012Validator(SCHEMA)
    errors = sorted(validator.iter_errors(raw), key=lambda e: (len(list(e.absolute_path)), e.path))
    if errors:
        err = jsonschema.exceptions.best_match(errors)
        raise ScenarioError(f"{path}: {_where(err)}: {_short(_explain(err))}")
    _check_magnitudes(raw, path)
    _check_semantics(raw, path)
    files = data_files_of(raw, path)
    h = hashlib.sha256(text.encode())
    h.update(sha256_of(files).encode())
    return Scenario(raw["name"], path, copy.deepcopy(raw), h.hexdigest(), tuple(files))
