"""One loader for the tests of scripts/: scripts/ is not an installed package (CI runs from a clean clone without
PYTHONPATH), so a test loads a script by path. The module is registered in sys.modules so that its dataclasses
resolve their own module. Importable as ``from script_loader import load_script``: pytest puts this directory on
sys.path for the conftest beside it."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]


def load_script(name: str) -> ModuleType:
    """scripts/<name>.py as a module named ``autocm_scripts_<name>``."""
    path = ROOT / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"autocm_scripts_{name}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
