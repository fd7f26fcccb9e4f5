"""Learner state in a ConfigMap: a restarted or failed-over operator continues learning where it stopped.

Format (version 1): a JSON document, zlib-compressed, in the ConfigMap's ``binaryData`` under
``checkpoint.json.z``, with readable ``data`` beside it (learner, knobs, time, size). The document
carries the learner's name and the knob grid it was trained on; :func:`decode` refuses a checkpoint
whose learner or knobs differ from the policy's, because learners encode states by knob index and a
different grid would silently mean something else.

ConfigMaps hold at most 1 MiB (etcd's request limit, Kubernetes' documented ConfigMap limit); an
encoded checkpoint above :data:`MAX_BYTES` is refused with its size rather than failing in the
apiserver.

The same bytes are what ``autocm train`` should write to a file and ``autocm push-checkpoint FILE
--policy NAME`` uploads: use :func:`encode` / :func:`write_file`.
"""

from __future__ import annotations

import base64
import json
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from learners.space import ConfigSpace

FORMAT = "autocm-checkpoint"
VERSION = 1
KEY = "checkpoint.json.z"
MAX_BYTES = 1_000_000
"""Below the 1 MiB (1,048,576 bytes) ConfigMap limit, leaving room for metadata and the readable data."""


MAX_DECOMPRESSED_BYTES = 32 * 2**20
"""32 MiB of JSON at most from one checkpoint. An encoded checkpoint is at most 1 MB, and learner
state (base64 arrays, numbers) compresses 1.3-4x; zlib can expand ~1000x, so a 713 KB ConfigMap
decompressed to 1.4 GB against the chart's 1 GiB memory limit. Decompression stops past this size."""


class CheckpointError(ValueError):
    """A checkpoint that cannot be used for this policy; the message says why."""


def knob_grid(space: ConfigSpace) -> list[dict[str, Any]]:
    out = []
    for k in space.knobs:
        if k.choices is not None:
            out.append({"name": k.name, "choices": list(k.choices)})
        else:
            out.append({"name": k.name, "lower": k.lower, "upper": k.upper, "step": k.step})
    return out


# --- a JSON encoding of state dicts (numpy arrays, bytes, tuples, non-string keys) ---------------------


def _to_json(value: Any) -> Any:
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value):
            return {k: _to_json(v) for k, v in value.items()}
        return {"__items__": [[_to_json(k), _to_json(v)] for k, v in value.items()]}
    if isinstance(value, list | tuple):
        return [_to_json(v) for v in value]
    if isinstance(value, bytes | bytearray):
        return {"__bytes__": base64.b64encode(bytes(value)).decode()}
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    mod = type(value).__module__
    if mod.startswith("numpy"):
        if getattr(value, "ndim", 0) == 0:
            return value.item()
        return {"__ndarray__": _array(value)}
    if isinstance(value, Mapping):
        return _to_json(dict(value))
    raise CheckpointError(f"cannot checkpoint a value of type {type(value).__name__}")


def _array(a: Any) -> dict[str, Any]:
    return {"dtype": str(a.dtype), "shape": list(a.shape),
            "data": base64.b64encode(a.tobytes(order="C")).decode()}


def _from_json(value: Any) -> Any:
    if isinstance(value, list):
        return [_from_json(v) for v in value]
    if not isinstance(value, dict):
        return value
    if "__bytes__" in value:
        return base64.b64decode(value["__bytes__"])
    if "__items__" in value:
        return {_hashable(_from_json(k)): _from_json(v) for k, v in value["__items__"]}
    if "__ndarray__" in value or "__tensor__" in value:
        import numpy as np

        spec = value.get("__ndarray__") or value["__tensor__"]
        # "__tensor__": written by versions whose learners held torch tensors; read back as arrays
        return np.frombuffer(base64.b64decode(spec["data"]), dtype=spec["dtype"]).reshape(spec["shape"]).copy()
    return {k: _from_json(v) for k, v in value.items()}


def _hashable(v: Any) -> Any:
    return tuple(_hashable(x) for x in v) if isinstance(v, list) else v


# --- encode / decode --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    learner: str
    knobs: list[dict[str, Any]]
    state: dict[str, Any]
    saved_at: str
    samples: int = 0
    loop: dict[str, Any] | None = None
    """The control loop's guard state (last change, cooldown), so a restart repeats no action."""

    @property
    def recorded_settings(self) -> Any:
        """The learner settings the checkpoint was trained and chosen with: its provenance's ``settings``
        as stored, ``{}`` when it records none. Unchecked (a file is tenant input): a caller that runs
        them checks them as it checks ``spec.learner.settings`` (``check_learner_settings``)."""
        prov = self.state.get("provenance")
        raw = prov.get("settings") if isinstance(prov, Mapping) else None
        return raw if raw else {}


def encode(learner: str, space: ConfigSpace, state: Mapping[str, Any], samples: int = 0,
           loop: Mapping[str, Any] | None = None) -> bytes:
    """The compressed document; raises :class:`CheckpointError` when it would not fit a ConfigMap."""
    doc = {"format": FORMAT, "version": VERSION, "learner": learner, "knobs": knob_grid(space),
           "savedAt": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), "samples": samples,
           "state": _to_json(dict(state)), "loop": _to_json(dict(loop)) if loop else None}
    blob = zlib.compress(json.dumps(doc, separators=(",", ":")).encode(), level=9)
    # binaryData is base64 in the API object: 4/3 of the raw size counts against the limit.
    encoded = 4 * ((len(blob) + 2) // 3)
    if encoded > MAX_BYTES:
        raise CheckpointError(f"learner state is {encoded} bytes encoded, above the {MAX_BYTES}-byte "
                              "ConfigMap budget; shrink the learner (replay buffer, network size)")
    return blob


def decode(blob: bytes, learner: str | None = None, space: ConfigSpace | None = None) -> Checkpoint:
    """Parse and check a checkpoint against the policy's learner and knob grid."""
    if not blob:
        raise CheckpointError("not an autocm checkpoint (it is empty)")
    try:
        doc = json.loads(inflate(blob))
    except CheckpointError:
        raise
    except (zlib.error, ValueError) as exc:
        raise CheckpointError(f"not an autocm checkpoint ({exc})") from exc
    if not isinstance(doc, dict):
        raise CheckpointError(f"not an autocm checkpoint (a JSON {type(doc).__name__}, expected an object)")
    if doc.get("format") != FORMAT:
        raise CheckpointError(f"not an autocm checkpoint (format {doc.get('format')!r})")
    if doc.get("version") != VERSION:
        raise CheckpointError(f"checkpoint format version {doc.get('version')} is not supported "
                              f"(this operator reads version {VERSION})")
    if learner is not None and doc.get("learner") != learner:
        raise CheckpointError(f"checkpoint is for learner {doc.get('learner')!r}, "
                              f"the policy uses {learner!r}")
    if space is not None:
        mine = knob_grid(space)
        if doc.get("knobs") != mine:
            raise CheckpointError(f"checkpoint was trained for knobs {doc.get('knobs')}, the policy's "
                                  f"knobs are {mine}")
    try:
        state, loop = _from_json(doc["state"]), _from_json(doc.get("loop"))
        if not isinstance(state, dict) or not (loop is None or isinstance(loop, dict)):
            raise TypeError("state and loop must be objects")
        return Checkpoint(str(doc["learner"]), doc["knobs"], state, str(doc.get("savedAt", "")),
                          int(doc.get("samples", 0)), loop)
    except (KeyError, TypeError, ValueError, AttributeError, RecursionError) as exc:
        raise CheckpointError(f"damaged autocm checkpoint ({type(exc).__name__}: {exc})") from exc


def inflate(blob: bytes, limit: int = MAX_DECOMPRESSED_BYTES) -> bytes:
    """zlib-decompress ``blob``, refusing (not allocating) more than ``limit`` bytes of output."""
    d = zlib.decompressobj()
    out = d.decompress(blob, limit + 1)
    if len(out) > limit or d.unconsumed_tail:
        raise CheckpointError(f"decompresses to more than {limit:,} bytes; refused (a checkpoint this large "
                              "cannot come from autocm)")
    out += d.flush()
    if len(out) > limit:
        raise CheckpointError(f"decompresses to more than {limit:,} bytes; refused")
    if not d.eof:
        raise CheckpointError("not an autocm checkpoint (truncated: the compressed stream does not end)")
    return out


def write_file(path: Path, learner: str, space: ConfigSpace, state: Mapping[str, Any]) -> int:
    blob = encode(learner, space, state)
    path.write_bytes(blob)
    return len(blob)


# --- the ConfigMap ----------------------------------------------------------------------------------


def configmap_name(policy_name: str) -> str:
    """The operator's own checkpoint of a policy (the pretrained one is named in spec.learner.checkpoint)."""
    return f"autocm-checkpoint-{policy_name}"[:253]


def configmap_body(name: str, namespace: str, blob: bytes, learner: str, space: ConfigSpace,
                   owner: Mapping[str, Any] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": namespace,
                            "labels": {"app.kubernetes.io/managed-by": "autocm"}}
    if owner is not None:  # deleting the policy deletes its checkpoint
        meta["ownerReferences"] = [{"apiVersion": owner["apiVersion"], "kind": owner["kind"],
                                    "name": owner["metadata"]["name"], "uid": owner["metadata"]["uid"]}]
    return {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": meta,
        "data": {"learner": learner, "knobs": ",".join(space.names), "format-version": str(VERSION),
                 "saved-at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), "bytes": str(len(blob))},
        "binaryData": {KEY: base64.b64encode(blob).decode()},
    }


def blob_of(configmap: Mapping[str, Any]) -> bytes:
    raw = (configmap.get("binaryData") or {}).get(KEY)
    if raw is None:
        raise CheckpointError(f"ConfigMap {configmap.get('metadata', {}).get('name')} has no {KEY}")
    try:
        return base64.b64decode(raw, validate=True)
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"ConfigMap {configmap.get('metadata', {}).get('name')}: {KEY} is not base64") \
            from exc
