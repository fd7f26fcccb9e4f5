"""Pure sizing algorithms and the vocabulary every side of autocm shares.

Nothing in this package performs I/O or imports kubernetes or simpy (checked by import-linter):
the same learner object runs in the simulator and in the operator.
"""

from learners.base import Learner, LearnerSpec, create, register, registered
from learners.objective import Objective
from learners.space import Config, ConfigSpace, Knob
from learners.types import Action, Convergence, Observation, ReplicaSample, Verdict

__all__ = [
    "Action",
    "Config",
    "ConfigSpace",
    "Convergence",
    "Knob",
    "Learner",
    "LearnerSpec",
    "Objective",
    "Observation",
    "ReplicaSample",
    "Verdict",
    "create",
    "register",
    "registered",
]
