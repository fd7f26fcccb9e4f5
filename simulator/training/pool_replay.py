"""A GPU pool of training jobs driven round by round by any registered training scheduler.

This is the loop the operator runs over a real pool (observe every job, ask the scheduler for all
allocations at once, restart the jobs whose allocation changed), with the jobs' progress taken from the
Pollux profiles instead of real pods. It sees the jobs only through :class:`JobObservation` (the step
times each job ran, its gradient statistics, its restarts), exactly what the operator reads from the
``autocm_train_*`` metrics, so a scheduler evaluated here is the same object the operator would run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from learners.training_scheduler import JobObservation, StepSample, TrainingScheduler, check_allocations
from simulator.training.job import BatchConfig, JobSpec, TrainingJob, batch_config
from simulator.training.profiles import ApplicationProfile, ProfileCoverageError


@dataclass(frozen=True)
class PoolResult:
    completion_s: dict[str, float]
    """Job -> seconds from arrival to completion."""
    max_gpus_used: int
    restarts: int
    rounds: int

    @property
    def mean_jct_s(self) -> float:
        return sum(self.completion_s.values()) / max(len(self.completion_s), 1)


def _observe(job: TrainingJob, samples: dict[tuple[int, int, int], StepSample], alloc: tuple[tuple[str, int], ...],
             now: float) -> JobObservation:
    p = job.profile
    limits = p.batch_limits
    grad = (None, None)
    if job.config is not None:
        batch = min(max(job.config.batch_size, p.init_batch_size), p.max_batch_size)
        grad = p.grad_stats(batch, min(job.epoch, p.max_epochs - 1))
    return JobObservation(job.name, limits, alloc, tuple(samples.values()), grad[0], grad[1],
                          restarts=max(job.num_restarts, 0), age_s=now - job.spec.arrival_s,
                          attained_gpu_s=job.attained_service_gpu_s)


def covered_config(profile: ApplicationProfile, placement: tuple[int, ...], config: BatchConfig) -> BatchConfig:
    """``config`` on ``placement`` as the profiles can run it: the micro-batch kept inside what was measured for
    this placement (the profiles cannot say how fast an unmeasured micro-batch runs): the largest measured one
    not above the asked one, else the application's default."""
    try:
        profile.step_time(placement, config.atomic_bsz)
        return config
    except ProfileCoverageError:
        pass
    measured = profile.measured_local_batches(placement)
    fits = [b for b in measured if b <= config.atomic_bsz] or list(measured[:1])
    batch = fits[-1] * sum(placement) * (config.accum_steps + 1) if fits else None
    return batch_config(profile, sum(placement), batch)


def fit_batch(job: TrainingJob) -> None:
    """Keep the job's micro-batch inside what the profile measured for its placement (:func:`covered_config`)."""
    if job.config is None:
        return
    covered = covered_config(job.profile, job.placement, job.config)
    if covered is not job.config:
        job.config = covered
        job.batch_size_target = covered.batch_size


def run_pool(scheduler: TrainingScheduler, specs: Sequence[JobSpec], profiles: Mapping[str, ApplicationProfile],
             nodes: Mapping[str, int], round_s: float = 60.0, restart_delay_s: float = 30.0,
             horizon_s: float = 7 * 86400.0) -> PoolResult:
    """Run until every job finished (or ``horizon_s``); a round: observe, allocate all, restart changed, advance."""
    jobs = {s.name: TrainingJob(s, profiles[s.application], restart_delay_s) for s in specs}
    allocs: dict[str, tuple[tuple[str, int], ...]] = {n: () for n in jobs}
    samples: dict[str, dict[tuple[int, int, int], StepSample]] = {n: {} for n in jobs}
    now, rounds, peak, done = 0.0, 0, 0, {}
    while len(done) < len(jobs) and now < horizon_s:
        active = [j for j in jobs.values() if j.spec.arrival_s <= now and not j.done]
        if active:
            obs = [_observe(j, samples[j.name], allocs[j.name], now) for j in active]
            answer = scheduler.allocate(obs, nodes, now)
            check_allocations(answer, nodes)
            peak = max(peak, sum(a.gpus for a in answer.values()))
            for j in active:
                new = answer[j.name]
                if tuple(sorted(new.placement)) != tuple(sorted(allocs[j.name])):
                    allocs[j.name] = tuple(sorted(new.placement))
                    j.reallocate(tuple(c for _, c in allocs[j.name]), new.batch_size)
                    fit_batch(j)
                if j.config is not None:
                    st = j.step_time()
                    key = (len(j.placement), j.gpus, j.config.atomic_bsz)
                    samples[j.name].setdefault(key, StepSample(*key, st.step_s, st.compute_s))
                j.advance(now, round_s)
                if j.done:
                    done[j.name] = (j.completion_s or now + round_s) - j.spec.arrival_s
                    allocs[j.name] = ()
        now += round_s
        rounds += 1
    restarts = sum(max(j.num_restarts, 0) for j in jobs.values())
    return PoolResult(done, peak, restarts, rounds)
