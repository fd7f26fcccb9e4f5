"""Training jobs on a GPU cluster, driven by the measured Pollux profiles (see docs/training-model.md)."""

from simulator.training.cluster_sim import (
    Decision,
    JobView,
    TrainingCluster,
    TrainingResult,
    TrainingScheduler,
    TrainingSettings,
    simulate_training,
)
from simulator.training.job import BatchConfig, JobSpec, TrainingJob, batch_config
from simulator.training.profiles import (
    ApplicationProfile,
    ProfileCoverageError,
    StepTime,
    load_application,
    load_profiles,
)
from simulator.training.workloads import load_paper_result, load_workload, workload_path

__all__ = [
    "ApplicationProfile",
    "BatchConfig",
    "Decision",
    "JobSpec",
    "JobView",
    "ProfileCoverageError",
    "StepTime",
    "TrainingCluster",
    "TrainingJob",
    "TrainingResult",
    "TrainingScheduler",
    "TrainingSettings",
    "batch_config",
    "load_application",
    "load_paper_result",
    "load_profiles",
    "load_workload",
    "simulate_training",
    "workload_path",
]
