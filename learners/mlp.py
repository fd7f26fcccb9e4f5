"""A small multilayer perceptron with Adam, in numpy: VCONF's Q-function and performance model.

Why not torch: the networks are tiny (a few inputs, two hidden layers of 64, one output per action)
and are evaluated one state at a time on the decision path. torch's PyPI wheel for Linux brings
about 5 GB of CUDA libraries that an operator deciding on a CPU never uses: it made the operator's
image that large and filled CI's disk. At this size numpy is also faster per call (no dispatcher),
and the arithmetic is plain enough to test against finite differences (tests/unit/learners/test_mlp.py).

The layer initialisation and the optimiser follow the usual defaults (He et al. 2015's uniform
fan-in bound of 1/sqrt(fan_in) for weights and biases, as torch.nn.Linear does; Kingma & Ba 2015's
Adam with beta = (0.9, 0.999), eps = 1e-8), so results are comparable with a torch version.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from learners.state_checks import finite_array

DTYPE = np.float32

Loss = Callable[[np.ndarray], tuple[float, np.ndarray]]
"""Outputs of a batch -> (mean loss, d loss / d outputs)."""


class MLP:
    """Fully connected layers with tanh between them and a linear output."""

    def __init__(self, sizes: Sequence[int], rng: np.random.Generator) -> None:
        if len(sizes) < 2 or any(int(n) < 1 for n in sizes):
            raise ValueError(f"layer sizes must be positive integers, got {list(sizes)}")
        self.sizes = [int(n) for n in sizes]
        self.params: list[np.ndarray] = []
        for fan_in, fan_out in zip(self.sizes[:-1], self.sizes[1:], strict=True):
            bound = 1.0 / np.sqrt(fan_in)
            self.params.append(rng.uniform(-bound, bound, size=(fan_in, fan_out)).astype(DTYPE))
            self.params.append(rng.uniform(-bound, bound, size=fan_out).astype(DTYPE))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Outputs for one input (1-d) or a batch (2-d), without keeping anything for a backward pass."""
        h = np.asarray(x, dtype=DTYPE)
        last = len(self.params) // 2 - 1
        for i in range(0, len(self.params), 2):
            h = h @ self.params[i] + self.params[i + 1]
            if i // 2 < last:
                h = np.tanh(h)
        return h

    def gradients(self, x: np.ndarray, dout_of: Loss) -> tuple[float, list[np.ndarray]]:
        """Loss and its gradient for every parameter, by backpropagation through one batch.

        ``dout_of`` turns the batch's outputs into (loss, d loss / d outputs); the losses below do.
        """
        x = np.atleast_2d(np.asarray(x, dtype=DTYPE))
        acts = [x]
        h = x
        last = len(self.params) // 2 - 1
        for i in range(0, len(self.params), 2):
            h = h @ self.params[i] + self.params[i + 1]
            if i // 2 < last:
                h = np.tanh(h)
            acts.append(h)
        loss, d = dout_of(h)
        grads: list[np.ndarray] = [np.empty(0, dtype=DTYPE)] * len(self.params)
        for layer in range(last, -1, -1):
            inp = acts[layer]
            grads[2 * layer] = inp.T @ d
            grads[2 * layer + 1] = d.sum(axis=0)
            if layer:
                d = (d @ self.params[2 * layer].T) * (1.0 - inp * inp)  # tanh' = 1 - tanh^2
        return loss, grads

    def copy_from(self, other: MLP) -> None:
        if other.sizes != self.sizes:
            raise ValueError(f"cannot copy a {other.sizes} network into a {self.sizes} one")
        self.params = [p.copy() for p in other.params]

    def state_dict(self) -> dict[str, np.ndarray]:
        return {f"p{i}": p.copy() for i, p in enumerate(self.params)}

    def load_state_dict(self, state: Mapping[str, np.ndarray]) -> None:
        self.params = self.checked_params(state)

    def checked_params(self, state: Mapping[str, np.ndarray], name: str = "network") -> list[np.ndarray]:
        """The parameters ``state`` holds, checked (a checkpoint is tenant input): one array of this network's
        shape per layer, finite and of a size no trained network reaches; a ValueError names what is wrong."""
        if not isinstance(state, Mapping):
            raise ValueError(f"{name} in the checkpoint is not a mapping of layers")
        got = []
        for i, want in enumerate(self.params):
            try:
                have = np.asarray(state.get(f"p{i}"), dtype=float)
            except (TypeError, ValueError) as e:
                raise ValueError(f"{name} layer p{i} in the checkpoint is not an array of numbers") from e
            if have.shape != want.shape:
                raise ValueError(
                    f"checkpoint {name} has a layer of shape {have.shape}, this one needs {want.shape} "
                    "(was it trained with another hidden width or other knobs?)"
                )
            got.append(finite_array(have, f"{name} layer p{i}", want.shape).astype(DTYPE))
        return got


class Adam:
    """Adam (Kingma & Ba 2015) over an MLP's parameters, updated in place."""

    def __init__(self, net: MLP, lr: float, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> None:
        self.net, self.lr, self.betas, self.eps = net, lr, betas, eps
        self.m = [np.zeros_like(p) for p in net.params]
        self.v = [np.zeros_like(p) for p in net.params]
        self.t = 0

    def step(self, grads: list[np.ndarray]) -> None:
        b1, b2 = self.betas
        self.t += 1
        c1, c2 = 1.0 - b1**self.t, 1.0 - b2**self.t
        for p, g, m, v in zip(self.net.params, grads, self.m, self.v, strict=True):
            m *= b1
            m += (1.0 - b1) * g
            v *= b2
            v += (1.0 - b2) * (g * g)
            p -= (self.lr / c1) * m / (np.sqrt(v / c2) + self.eps)


def bce_with_logits(targets: np.ndarray) -> Loss:
    """Mean binary cross-entropy of sigmoid(outputs) against targets in [0, 1], computed stably."""
    y = np.asarray(targets, dtype=DTYPE).reshape(-1, 1)

    def of(z: np.ndarray) -> tuple[float, np.ndarray]:
        loss = float(np.mean(np.maximum(z, 0.0) - z * y + np.log1p(np.exp(-np.abs(z)))))
        return loss, ((sigmoid(z) - y) / len(z)).astype(DTYPE)

    return of


def smooth_l1_on(actions: np.ndarray, targets: np.ndarray) -> Loss:
    """Mean Huber loss (beta 1) between the outputs of the chosen actions and the targets: the TD loss."""
    a = np.asarray(actions, dtype=np.intp)
    y = np.asarray(targets, dtype=DTYPE)

    def of(out: np.ndarray) -> tuple[float, np.ndarray]:
        rows = np.arange(len(out))
        diff = out[rows, a] - y
        small = np.abs(diff) < 1.0
        loss = float(np.mean(np.where(small, 0.5 * diff * diff, np.abs(diff) - 0.5)))
        d = np.zeros_like(out)
        d[rows, a] = np.clip(diff, -1.0, 1.0) / len(out)
        return loss, d

    return of


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))
