"""Scenario files: YAML, validated against a JSON schema, with errors that name file, field and expectation.

A scenario says what runs (inference services, a training workload, the cluster), for how long, what
the SLO is, which policies to compare and which baseline targets to sweep. Data references are either
bundled names (``azure-code``, ``bursty``, ``pollux-1.0/workload-3``) or paths relative to the
scenario file, so users can bring their own latency table and request log.
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from simulator.datasets import DATA_DIR, sha256_of

SCENARIO_DIR = Path(__file__).resolve().parent / "scenarios"

_range = {
    "type": "object",
    "additionalProperties": False,
    "required": ["min", "max"],
    "properties": {
        "min": {"type": "number", "minimum": 0},
        "max": {"type": "number", "minimum": 0},
        "step": {"type": "number", "exclusiveMinimum": 0},
    },
}
_choices = {"type": "array", "minItems": 1, "items": {"type": "number", "exclusiveMinimum": 0}}

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
        "seed": {"type": "integer", "minimum": 0},
        "duration_s": {"type": "number", "exclusiveMinimum": 0},
        "control_interval_s": {"type": "number", "exclusiveMinimum": 0},
        "cluster": {
            "type": "object",
            "additionalProperties": False,
            "required": ["nodes", "gpus_per_node"],
            "properties": {
                "nodes": {"type": "integer", "minimum": 1},
                "gpus_per_node": {"type": "integer", "minimum": 1},
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
                            "duration_s": {"type": "number", "exclusiveMinimum": 0},
                            "rate_scale": {"type": "number", "exclusiveMinimum": 0},
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
                "scheduler": {"type": "string"},
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
    if err.validator == "anyOf" and not err.absolute_path:
        return "a scenario needs an 'inference' list or a 'training' section (or both)"
    return err.message


def _check_semantics(raw: dict[str, Any], path: Path) -> None:
    """Rules a JSON schema cannot say: ranges ordered, initial values inside knobs, data present."""
    for i, svc in enumerate(raw.get("inference", [])):
        for knob, spec in svc["knobs"].items():
            if isinstance(spec, dict) and spec["min"] > spec["max"]:
                raise ScenarioError(
                    f"{path}: inference[{i}].knobs.{knob}: min {spec['min']} is above max {spec['max']}"
                )
        for knob in svc.get("initial", {}):
            if knob not in svc["knobs"]:
                raise ScenarioError(
                    f"{path}: inference[{i}].initial.{knob}: not a knob of this service; "
                    f"knobs are {', '.join(svc['knobs'])}"
                )
        trace = svc["trace"]
        if trace["kind"] == "request-log" and "path" not in trace:
            raise ScenarioError(f"{path}: inference[{i}].trace.path: required for kind request-log")
        if trace["kind"] == "load-shape" and "shape" not in trace:
            raise ScenarioError(f"{path}: inference[{i}].trace.shape: required for kind load-shape "
                                "(bursty, noisy or a file path)")
    names = [p.get("label", p["name"]) for p in raw["policies"]]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ScenarioError(f"{path}: policies: duplicate label(s) {dup}; give each a distinct 'label'")


def data_files_of(raw: dict[str, Any], path: Path) -> list[Path]:
    """Every data file the scenario reads (for the report's hash and for existence checks)."""
    files: list[Path] = []

    def local(ref: str, where: str) -> Path:
        p = Path(ref).expanduser()
        p = p if p.is_absolute() else (path.parent / p).resolve()
        if not p.exists():
            raise ScenarioError(f"{path}: {where}: file {p} does not exist")
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
    return [p]


def load(name_or_path: str | Path) -> Scenario:
    """Read, validate and fingerprint a scenario. Raises :class:`ScenarioError` with one clear message."""
    path = find(str(name_or_path))
    try:
        text = path.read_text()
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ScenarioError(f"{path}:{where}: not valid YAML: {problem}") from None
    if not isinstance(raw, dict):
        raise ScenarioError(f"{path}: expected a mapping of scenario fields at the top level")
    validator = jsonschema.Draft202012Validator(SCHEMA)
    errors = sorted(validator.iter_errors(raw), key=lambda e: (len(list(e.absolute_path)), e.path))
    if errors:
        err = jsonschema.exceptions.best_match(errors)
        raise ScenarioError(f"{path}: {_where(err)}: {_explain(err)}")
    _check_semantics(raw, path)
    files = data_files_of(raw, path)
    h = hashlib.sha256(text.encode())
    h.update(sha256_of(files).encode())
    return Scenario(raw["name"], path, copy.deepcopy(raw), h.hexdigest(), tuple(files))
