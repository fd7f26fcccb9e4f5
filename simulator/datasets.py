"""Where the bundled public data lives, and the hash that pins a report to the data it used."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent / "data"
"""Bundled copies of the public traces and profiles (see data/README.md for attribution)."""


def data_path(*parts: str) -> Path:
    """A file or folder inside the bundled data, e.g. ``data_path("splitwise", "perf_model.csv")``."""
    path = DATA_DIR.joinpath(*parts)
    if not path.exists():
        raise FileNotFoundError(f"bundled data {path} is missing; is the package installed completely?")
    return path


def sha256_of(paths: Iterable[Path]) -> str:
    """One digest over the contents of several files (sorted by path), to record in reports."""
    h = hashlib.sha256()
    for p in sorted(set(paths)):
        h.update(str(p.name).encode())
        with p.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()
