"""VCONF-style model-based reinforcement learning for auto-configuration.

After Rao, Bu, Xu, Wang and Yin, "VCONF: a reinforcement learning approach to virtual machines
auto-configuration" (ICAC 2009), adapted to GPU workloads:

- **actions**: increase, decrease or keep each knob by one step (``ConfigSpace.step_moves``);
- **reward**: the SLO-based :class:`~learners.Objective` (performance against the SLO minus the
  cost of what is held, minus penalties for violations and restarts), computed by the control loop;
- **Q-function**: a small neural network (``learners.mlp``, numpy) from (configuration, load) to one
  value per action;
- **model-based initialisation**: a second network learns the workload's *performance model*
  (configuration and load -> SLO attainment) from observed samples. Before acting, and periodically
  online, the learner generates simulated transitions from that model and trains Q on them in batch
  (VCONF initialises its policy from a model learned offline, then refines online);
- **exploration**: epsilon-greedy, decaying per decision, re-opened when the workload changes
  (the load moves outside what the learner has seen recently).

The learner sees only what the control loop gives it (Observations), so the same object runs in
``autocm sim`` and in the operator, and ``state_dict`` round-trips it through a checkpoint.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from learners.base import register
from learners.features import Encoder
from learners.mlp import MLP, Adam, bce_with_logits, sigmoid, smooth_l1_on
from learners.objective import Objective
from learners.space import Config, ConfigSpace
from learners.state_checks import finite_number, mapping, sequence
from learners.types import Action, Convergence, Observation, Verdict


@dataclass(frozen=True)
class VconfSettings:
    gamma: float = 0.8
    """Discount per control interval. VCONF used 0.8; a few intervals of look-ahead covers cold starts."""
    hidden: int = 64
    """Width of the two hidden layers of both networks (VCONF used one small hidden layer)."""
    lr: float = 3e-3
    epsilon_start: float = 0.3
    epsilon_min: float = 0.02
    epsilon_decay: float = 0.97
    """Per-decision multiplicative decay of exploration."""
    reopen_epsilon: float = 0.15
    """Exploration re-opened to this when the load leaves the recently seen range."""
    load_shift: float = 0.5
    """Relative change of request rate against its recent mean that counts as a workload change."""
    model_batches: int = 300
    """Gradient steps of batch training on model-generated experience per (re)training."""
    retrain_every: int = 10
    """Retrain model and Q from experience every this many observed transitions."""
    imagined_per_load: int = 32
    """Simulated transitions generated per remembered load level per retraining."""
    loads_per_retrain: int = 8
    """Remembered load levels sampled per retraining (bounds its cost: 8 x 32 x actions transitions)."""
    memory: int = 4000
    """Real transitions kept for model fitting (oldest dropped)."""
    target_sync: int = 50
    """Gradient steps between target-network refreshes (stabilises bootstrapped targets)."""
    plan_peak_intervals: int = 1
    """Greedy decisions plan for the highest load of the last this many intervals (1: the current
    load only). Bursty services (the Azure code trace) need capacity for the next burst, not for the
    last interval's mean; the model still learns from the load each interval actually had."""
    seed: int = 0
    converge_residual: float = 0.05
    """TD residual (relative to the reward scale) under which, with a stable policy, Q is converged."""

    def __post_init__(self) -> None:
        if not (isinstance(self.hidden, int) and self.hidden >= 1):
            raise ValueError(f"hidden must be a whole number of at least 1 (the layer width), got {self.hidden}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a positive, finite learning rate, got {self.lr}")


class Vconf:
    """Model-based RL over per-knob step actions with a neural Q-function."""

    name = "vconf"
    uses_guard_rails = True

    def __init__(self, space: ConfigSpace, objective: Objective, settings: VconfSettings | None = None) -> None:
        self.space = space
        self.objective = objective
        self.s = settings or VconfSettings()
        self.rng = np.random.default_rng(self.s.seed)
        self.moves = list(space.step_moves())
        self.enc = Encoder(space)
        init = np.random.default_rng([self.s.seed, 1])  # weights apart from the exploration stream
        h = self.s.hidden
        self.q = MLP([self.enc.width, h, h, len(self.moves)], init)
        self.q_target = MLP(self.q.sizes, init)
        self.q_target.copy_from(self.q)
        self.model = MLP([self.enc.width, h, h, 1], init)  # (config, load) -> predicted shortfall
        self.q_opt = Adam(self.q, lr=self.s.lr)
        self.m_opt = Adam(self.model, lr=self.s.lr)
        self.epsilon = self.s.epsilon_start
        # (normalised configuration, RAW load, shortfall): the load is scaled only when the model is fitted,
        # because the load scale grows with the largest load seen; samples stored pre-scaled would alias
        # an old, small load with a new, larger one after the scale grows (the load-step defect).
        self.samples: deque[tuple[np.ndarray, np.ndarray, float]] = deque(maxlen=self.s.memory)
        self.loads: deque[dict[str, float]] = deque(maxlen=64)
        self.residuals: deque[float] = deque(maxlen=20)
        self.greedy_history: deque[int] = deque(maxlen=20)
        self.steps = 0
        self.transitions = 0
        self.trained = False

    # --- the performance model ---------------------------------------------------------------
    def predicted_shortfall(self, configs: list[Config], load: Mapping[str, float]) -> np.ndarray:
        return sigmoid(self.model(self.enc.encode_many(configs, load)))[:, 0]

    def _fit_model(self) -> None:
        """Fit the performance model to observed samples plus one prior anchor per remembered load:
        the largest configuration meets the SLO (every autocm scenario and policy must have a feasible
        SLO at its upper bounds). The anchor stops the network from extrapolating "everything fails"
        to configurations it has not tried yet, which would freeze exploration at the cheap end."""
        if len(self.samples) < 4:
            return
        top = {k.name: k.upper for k in self.space.knobs}
        anchors = np.stack([self.enc.encode(top, load) for load in self.loads]) if self.loads \
            else np.zeros((0, self.enc.width), dtype=np.float32)
        cfgs = np.stack([c for c, _, _ in self.samples])
        loads = self.enc.scale_loads(np.stack([ld for _, ld, _ in self.samples]))
        xs = np.concatenate([np.concatenate([cfgs, loads], axis=1), anchors]).astype(np.float32)
        ys = np.array([y for _, _, y in self.samples] + [0.0] * len(anchors), dtype=np.float32)
        for _ in range(self.s.model_batches):
            idx = self.rng.integers(0, len(xs), size=min(64, len(xs)))
            _, grads = self.model.gradients(xs[idx], bce_with_logits(ys[idx]))
            self.m_opt.step(grads)

    def _imagined_reward(
        self, configs: list[Config], load: Mapping[str, float], restarts: list[bool], interval_s: float
    ) -> np.ndarray:
        short = self.predicted_shortfall(configs, load)
        out = np.empty(len(configs), dtype=np.float32)
        for i, cfg in enumerate(configs):
            attainment = self.objective.attainment - self.objective.miss_budget * float(short[i])
            obs = Observation(0.0, cfg, {"slo_attainment": attainment}, interval_s=interval_s)
            out[i] = self.objective.reward(obs, restarted=restarts[i])
        return out

    def _train_q_on_model(self, interval_s: float) -> None:
        """Fitted Q iteration on transitions imagined from the performance model."""
        if not self.loads:
            return
        remembered = list(self.loads)
        if len(remembered) > self.s.loads_per_retrain:
            keep = self.rng.choice(len(remembered), size=self.s.loads_per_retrain - 1, replace=False)
            remembered = [remembered[i] for i in sorted(keep)] + [remembered[-1]]  # always the latest
        states, nexts, rewards = [], [], []
        for load in remembered:
            for _ in range(self.s.imagined_per_load):
                cfg = {k.name: k.values[self.rng.integers(len(k.values))] for k in self.space.knobs}
                for move in self.moves:
                    nxt = self.space.move(cfg, move)
                    states.append(self.enc.encode(cfg, load))
                    nexts.append((nxt, load, any(self.space[n].restarts for n in move) and nxt != cfg))
        configs = [n for n, _, _ in nexts]
        # rewards grouped by load for the model call
        rewards = np.empty(len(configs), dtype=np.float32)
        per = self.s.imagined_per_load * len(self.moves)
        for li, load in enumerate(remembered):
            sl = slice(li * per, (li + 1) * per)
            rewards[sl] = self._imagined_reward(configs[sl], load, [r for _, _, r in nexts[sl]], interval_s)
        x = np.stack(states)
        x_next = np.stack([self.enc.encode(c, ld) for c, ld, _ in nexts])
        r = rewards
        action_idx = np.arange(len(configs)) % len(self.moves)
        scale = float(np.abs(r).mean()) + 1.0
        for step in range(self.s.model_batches):
            idx = self.rng.integers(0, len(x), size=min(256, len(x)))
            target = r[idx] / scale + self.s.gamma * self.q_target(x_next[idx]).max(axis=1)
            _, grads = self.q.gradients(x[idx], smooth_l1_on(action_idx[idx], target))
            self.q_opt.step(grads)
            if step % self.s.target_sync == 0:
                self.q_target.copy_from(self.q)
        self.q_target.copy_from(self.q)
        self.reward_scale = scale
        self.trained = True

    # --- the Learner interface -----------------------------------------------------------------
    def decide(self, obs: Observation) -> Action:
        load = self.enc.load_of(obs)
        self._note_load(load)
        current = self.space.clip(obs.config)
        if not self.trained and self.samples:
            self._fit_model()
            self._train_q_on_model(obs.interval_s)
        greedy = self._greedy(current, self._planning_load(load), obs.interval_s)
        self.greedy_history.append(greedy)
        self.steps += 1
        if self.rng.random() < self.epsilon:
            choice = int(self.rng.integers(len(self.moves)))
            why = f"exploring (epsilon {self.epsilon:.2f})"
        else:
            choice = greedy
            why = "greedy"
        self.epsilon = max(self.s.epsilon_min, self.epsilon * self.s.epsilon_decay)
        move = self.moves[choice]
        target = self.space.move(current, move)
        if not move:
            text = "keep the configuration"
        else:
            ((knob, d),) = move.items()
            text = f"{'increase' if d > 0 else 'decrease'} {knob} to {target[knob]:g}"
        att = obs.metric("slo_attainment")
        return Action(
            target, f"{text} ({why}; SLO attainment {att:.3f}, load {load.get('request_rate_per_second', 0):.2f} req/s)"
        )

    def _greedy(self, current: Config, load: Mapping[str, float], interval_s: float) -> int:
        """One-step look-ahead through the learned model: r(next) + gamma * max Q(next).

        Before the model is trained this is just argmax Q; afterwards the model's immediate reward
        sharpens the choice between neighbouring configurations that Q alone values almost alike.
        """
        if not self.trained:
            return int(np.argmax(self.q(self.enc.encode(current, load))))
        nexts = [self.space.move(current, m) for m in self.moves]
        restarts = [
            any(self.space[n].restarts for n in m) and nxt != current for m, nxt in zip(self.moves, nexts, strict=False)
        ]
        r = self._imagined_reward(nexts, load, restarts, interval_s) / self.reward_scale
        v = self.q(self.enc.encode_many(nexts, load)).max(axis=1)
        return int(np.argmax(r + self.s.gamma * v))

    def _planning_load(self, load: dict[str, float]) -> dict[str, float]:
        """The load a decision plans for: per metric, the peak over the last ``plan_peak_intervals``."""
        recent = list(self.loads)[-max(1, self.s.plan_peak_intervals):] or [load]
        return {m: max(ld.get(m, 0.0) for ld in recent) for m in load}

    def _note_load(self, load: dict[str, float]) -> None:
        rate = load.get("request_rate_per_second", 0.0)
        if self.loads:
            recent = np.mean([ld.get("request_rate_per_second", 0.0) for ld in list(self.loads)[-10:]])
            if recent > 0 and abs(rate - recent) / recent > self.s.load_shift:  # the workload changed
                self.epsilon = max(self.epsilon, self.s.reopen_epsilon)
        self.enc.observe_scale(load)
        self.loads.append(load)

    def learn(self, prev: Observation, action: Action, reward: float, obs: Observation) -> None:
        load = self.enc.load_of(prev)
        # the performance model learns how far the executed configuration fell short at that load,
        # in units of the SLO's miss budget (0: met; 1: missed by a whole budget or more)
        shortfall = self.objective.shortfall(obs) / self.objective.miss_budget
        self.samples.append((self.enc.encode_config(action.target), self.enc.raw_load(load), min(1.0, shortfall)))
        self.transitions += 1
        # online TD update on the real transition
        cur = self.space.clip(prev.config)
        move = {
            n: self.space[n].index(action.target[n]) - self.space[n].index(cur[n])
            for n in self.space.names
            if action.target.get(n) != cur.get(n)
        }
        move = {n: int(np.sign(d)) for n, d in move.items()}
        a = self.moves.index(move) if move in self.moves else 0
        scale = getattr(self, "reward_scale", abs(reward) + 1.0)
        x = self.enc.encode(cur, load)
        x_next = self.enc.encode(obs.config, self.enc.load_of(obs))
        target = reward / scale + self.s.gamma * float(self.q_target(x_next).max())
        self.residuals.append(abs(float(self.q(x)[a]) - target))
        _, grads = self.q.gradients(x, smooth_l1_on(np.array([a]), np.array([target])))
        self.q_opt.step(grads)
        if self.transitions % self.s.retrain_every == 0:
            self._fit_model()
            self._train_q_on_model(obs.interval_s)

    def convergence(self) -> Convergence:
        if len(self.residuals) < 5:
            return Convergence(Verdict.EXPLORING, samples=self.transitions)
        res = float(np.mean(self.residuals))
        hist = list(self.greedy_history)
        stability = hist.count(hist[-1]) / len(hist) if hist else math.nan
        if res < self.s.converge_residual and stability >= 0.9 and self.epsilon <= self.s.epsilon_min * 1.5:
            verdict = Verdict.CONVERGED
        elif (
            len(self.residuals) >= 10
            and np.mean(list(self.residuals)[-5:]) > 4 * np.mean(list(self.residuals)[:5]) + 1.0
        ):
            verdict = Verdict.DIVERGING
        elif self.epsilon > 2 * self.s.epsilon_min:
            verdict = Verdict.EXPLORING
        else:
            verdict = Verdict.CONVERGING
        return Convergence(verdict, residual=res, policy_stability=stability, samples=self.transitions)

    def state_dict(self) -> dict[str, Any]:
        return {
            "learner": self.name,
            "settings": asdict(self.s),
            "knobs": list(self.space.names),
            "epsilon": self.epsilon,
            "scale": self.enc.state_dict(),
            "trained": self.trained,
            "reward_scale": getattr(self, "reward_scale", 1.0),
            "loads": list(self.loads),
            "nets": {"q": self.q.state_dict(), "model": self.model.state_dict()},
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Networks, exploration rate, load scale and remembered loads. A checkpoint is tenant input: all of it
        is checked before any of it is set (a network with a NaN, a load that is not a number, a reward scale of
        0 would otherwise fail or poison every later step)."""
        knobs = state.get("knobs", [])
        if not isinstance(knobs, list | tuple) or list(knobs) != list(self.space.names):
            raise ValueError(
                f"checkpoint was trained for knobs {str(knobs)[:80]}, this workload has {list(self.space.names)}"
            )
        nets = state.get("nets")
        if not isinstance(nets, Mapping):
            raise ValueError(
                "checkpoint has no numpy networks: it was written by autocm before its Q-network moved from torch "
                "to numpy; train it again with `autocm train`"
            )
        q = self.q.checked_params(nets.get("q"), "vconf Q-network")
        model = self.model.checked_params(nets.get("model"), "vconf performance model")
        epsilon = finite_number(state.get("epsilon", self.epsilon), "vconf epsilon", 0.0,
                                max(1.0, self.s.epsilon_start, self.s.reopen_epsilon))
        scale = {str(m): finite_number(v, f"vconf load scale {m}", 0.0, 1e12)
                 for m, v in mapping(state.get("scale", {}), "vconf load scale").items()}
        loads = [{str(m): finite_number(v, f"vconf remembered load {n} {m}", -1e12, 1e12)
                  for m, v in mapping(ld, f"vconf remembered load {n}").items()}
                 for n, ld in enumerate(sequence(state.get("loads", []), "vconf remembered loads"))]
        reward_scale = finite_number(state.get("reward_scale", 1.0), "vconf reward scale", 1.0, 1e12)
        trained = state.get("trained", True)
        if not isinstance(trained, bool | np.bool_):
            raise ValueError(f"vconf trained flag in the checkpoint is not a boolean: {str(trained)[:40]!r}")
        self.q.params = q
        self.q_target.copy_from(self.q)
        self.model.params = model
        self.epsilon = epsilon
        self.enc.scale = scale
        self.loads = deque(loads, maxlen=64)
        self.reward_scale = reward_scale
        self.trained = bool(trained)


@register("vconf", VconfSettings, "VCONF-style model-based RL: per-knob steps, neural Q, model-initialised")
def _make(space: ConfigSpace, objective: Objective, settings: VconfSettings) -> Vconf:
    return Vconf(space, objective, settings)
