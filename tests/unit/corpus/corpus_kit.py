"""What a corpus case expects: a clear error (with the fragments its one error line must hold) or a result."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from click.testing import CliRunner, Result

from controller.cli import main


@dataclass(frozen=True)
class Expect:
    """``kind`` is "error" or "ok"; ``fragments`` must all appear (in the error line, or in the output)."""

    kind: str
    fragments: tuple[str, ...] = ()
    exit_code: int = 2


def error(*fragments: str, code: int = 2) -> Expect:
    return Expect("error", fragments, code)


def ok(*fragments: str) -> Expect:
    return Expect("ok", fragments, 0)


def run_cli(tmp_path: Path, files: Mapping[str, str | bytes], argv: Sequence[str]) -> Result:
    """Write ``files`` under ``tmp_path`` (a name ending in / is a folder) and run ``autocm argv`` in-process;
    ``{d}`` in an argument is ``tmp_path``."""
    for name, content in files.items():
        target = tmp_path / name
        if name.endswith("/"):
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content)
    args = [a.replace("{d}", str(tmp_path)) for a in argv]
    return CliRunner().invoke(main, args)
