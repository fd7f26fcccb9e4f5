"""The security tests reuse the operator's in-memory Kubernetes API (tests/unit/operator/operator_fakes.py)."""

from __future__ import annotations

import sys
from pathlib import Path

OPERATOR_TESTS = Path(__file__).resolve().parents[1] / "operator"
if str(OPERATOR_TESTS) not in sys.path:
    sys.path.insert(0, str(OPERATOR_TESTS))
