"""Imports every learner module so that each registers itself.

Add a line here when you add a learner module; keeping the list explicit (no plugin scanning)
makes the registry's contents obvious and import-order independent.
"""

import importlib

_MODULES = (
    "learners.baselines.static",
    "learners.baselines.hpa",
    "learners.baselines.kpa",
    "learners.baselines.vpa",
    "learners.baselines.keda",
    "learners.baselines.aibrix",
    "learners.baselines.forecast_scaler",
    "learners.vconf",
    "learners.lqr",
    "learners.bayesopt_sizing",
    "learners.unified",
    "learners.slo_rl",
)

for _name in _MODULES:
    try:
        importlib.import_module(_name)
    except ModuleNotFoundError as exc:  # a module listed before it is written
        if exc.name != _name:
            raise
