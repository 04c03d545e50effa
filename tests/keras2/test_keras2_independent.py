"""keras2 (tf_keras) AdamW, NadamW and SGDW against torch.optim (issue 6, item 4).

The same design as `tests/keras3/test_independent_references.py` (read its
docstring for the conventions): a noisy quadratic trained for 100 steps, each side
computing its gradients from its own values, whole trajectories compared, rtol
1e-5 with float32 variables and 1e-6 with float64 ones, against float64 torch
(absolute floors in `TOLERANCE`), on both update paths of AdamW/NadamW (the
XLA-compiled kernels and the TensorFlow ops).

Mappings (exact algebra):

- The tf_keras optimizers hold their hyperparameters as float32 (`_set_hyper`,
  like tf_keras's own Adam), so torch gets the float32 values of betas and momentum
  (`float(np.float32(0.999)) = 0.99900001`): that is what the update uses.
- AdamW epsilon: torch's `eps' = eps / sqrt(1 - b2^t)`, set before every step.
- `weight_decay=lambda` is torch's decoupled `theta *= 1 - lr lambda`; with cosine
  annealing torch's lr is `lr eta_t`; `weight_decays={path: (0, l2)}` is torch
  `weight_decay = l2 sqrt(1/T) / lr` at constant lr.
- NadamW is torch `NAdam(momentum_decay=4e-3, decoupled_weight_decay=True)` with
  nothing converted.
- SGD momentum: equal to torch `SGD` at constant lr (`vel = -lr buf`); under the
  cosine `eta_t`, equal to torch `SGD(lr=1)` fed `eta_t lr g`.
"""
import contextlib
import dataclasses
import math
from collections.abc import Callable

import numpy as np
import pytest
import tensorflow as tf
import torch
from helpers import f32
from reference import cosine_eta

from keras_adamw.keras2 import SGDW, AdamW, NadamW
from keras_adamw.keras2.framework import (
    keras2 as tf_keras,  # tf_keras, or keras 2.x on TF < 2.16
)

STEPS = 100
LR, EPS, WD = 0.01, 1e-3, 0.1
BETA_1, BETA_2, MOMENTUM = f32(0.9), f32(0.999), f32(0.9)
T, ETA_MIN = 40, 0.1
L2 = 0.05
# (rtol, absolute floor as a fraction of the trajectory's scale).
TOLERANCE = {"float32": (1e-5, 1e-6), "float64": (1e-6, 1e-7)}
NAMES = ("kernel", "bias")


@dataclasses.dataclass(frozen=True)
class Problem:
    """Noisy quadratic `0.5 |theta - target|^2`, gradients `theta - target + noise_k`."""

    init: tuple
    target: tuple
    noise: tuple

    def gradients(self, step, values):
        return [v - t + n for v, t, n in zip(values, self.target, self.noise[step])]


def make_problem(seed=0):
    rng = np.random.default_rng(seed)
    shapes = ((3, 4), (4,))
    return Problem(tuple(rng.normal(size=s) for s in shapes),
                   tuple(rng.normal(size=s) for s in shapes),
                   tuple(tuple(0.3 * rng.normal(size=s) for s in shapes)
                         for _ in range(STEPS)))


def eta(step):
    return cosine_eta(step % T, T, ETA_MIN, 1.0)


def flat(values):
    return np.concatenate([np.ravel(np.asarray(v, np.float64)) for v in values])


def run_ours(optimizer, problem, dtype):
    """Trajectory of our optimizer; `apply_gradients` in a `tf.function` (traced once)."""
    variables = [tf.Variable(x.astype(dtype), name=n) for x, n in zip(problem.init, NAMES)]

    @tf.function
    def apply(grads):
        optimizer.apply_gradients(zip(grads, variables))

    trajectory = []
    for step in range(STEPS):
        values = [v.numpy().astype(np.float64) for v in variables]
        apply([tf.constant(g, dtype) for g in problem.gradients(step, values)])
        trajectory.append(flat(v.numpy() for v in variables))
    return np.stack(trajectory)


@contextlib.contextmanager
def torch_float64():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def run_torch(make_optimizer, problem, before_step=None, scale_gradients=None):
    """Trajectory of a float64 `torch.optim` optimizer; hooks as in the Keras 3 test."""
    with torch_float64():
        params = [torch.tensor(x, requires_grad=True) for x in problem.init]
        optimizer = make_optimizer(params)
        trajectory = []
        for step in range(STEPS):
            grads = problem.gradients(step, [p.detach().numpy() for p in params])
            factor = 1.0 if scale_gradients is None else scale_gradients(step)
            for p, g in zip(params, grads):
                p.grad = torch.tensor(g * factor)
            if before_step is not None:
                before_step(optimizer, step)
            optimizer.step()
            trajectory.append(flat(p.detach().numpy() for p in params))
    return np.stack(trajectory)


def keras_epsilon(optimizer, step):
    for group in optimizer.param_groups:
        group["eps"] = EPS / math.sqrt(1.0 - BETA_2 ** (step + 1))


def annealed_lr(optimizer, step):
    for group in optimizer.param_groups:
        group["lr"] = LR * eta(step)


def torch_adamw(problem, annealed=False):
    def hook(optimizer, step):
        keras_epsilon(optimizer, step)
        if annealed:
            annealed_lr(optimizer, step)
    return run_torch(lambda p: torch.optim.AdamW(
        p, lr=LR, betas=(BETA_1, BETA_2), eps=EPS, weight_decay=WD, foreach=False),
        problem, hook)


def torch_adamw_paper_decay(problem):
    return run_torch(lambda p: torch.optim.AdamW(
        [{"params": [p[0]], "weight_decay": L2 * math.sqrt(1.0 / STEPS) / LR},
         {"params": [p[1]], "weight_decay": 0.0}],
        lr=LR, betas=(BETA_1, BETA_2), eps=EPS, foreach=False), problem, keras_epsilon)


def torch_nadam(problem):
    return run_torch(lambda p: torch.optim.NAdam(
        p, lr=LR, betas=(BETA_1, BETA_2), eps=EPS, weight_decay=WD, momentum_decay=4e-3,
        decoupled_weight_decay=True, foreach=False), problem)


def torch_sgd(problem, nesterov=False):
    return run_torch(lambda p: torch.optim.SGD(
        p, lr=5 * LR, momentum=MOMENTUM, nesterov=nesterov, foreach=False), problem)


def torch_sgd_keras_momentum(problem):
    return run_torch(lambda p: torch.optim.SGD(p, lr=1.0, momentum=MOMENTUM, foreach=False),
                     problem, scale_gradients=lambda step: 5 * LR * eta(step))


COSINE = {"use_cosine_annealing": True, "total_iterations": T, "eta_min": ETA_MIN}
ADAM = {"beta_1": 0.9, "beta_2": 0.999, "epsilon": EPS}


@dataclasses.dataclass(frozen=True)
class Case:
    cls: type
    arguments: dict
    reference: Callable


CASES = {
    "adamw~torch.AdamW": Case(AdamW, {**ADAM, "weight_decay": WD}, torch_adamw),
    "adamw_cosine~torch.AdamW(lr*eta_t)": Case(
        AdamW, {**ADAM, "weight_decay": WD, **COSINE}, lambda p: torch_adamw(p, True)),
    "adamw_paper_decay~torch.AdamW(l2*sqrt(1/T)/lr)": Case(
        AdamW, {**ADAM, "weight_decays": {"kernel": (0, L2)}, "total_iterations": STEPS},
        torch_adamw_paper_decay),
    "nadamw~torch.NAdam": Case(NadamW, {**ADAM, "weight_decay": WD}, torch_nadam),
    "sgdw_momentum~torch.SGD": Case(
        SGDW, {"learning_rate": 5 * LR, "momentum": 0.9}, torch_sgd),
    "sgdw_nesterov~torch.SGD(nesterov)": Case(
        SGDW, {"learning_rate": 5 * LR, "momentum": 0.9, "nesterov": True},
        lambda p: torch_sgd(p, nesterov=True)),
    "sgdw_momentum_cosine~torch.SGD(lr=1, eta_t*lr*g)": Case(
        SGDW, {"learning_rate": 5 * LR, "momentum": 0.9, **COSINE},
        torch_sgd_keras_momentum),
}


# A decayed AdamW/NadamW variable takes the XLA-compiled kernel by default;
# `xla_min_size=None` forces the TensorFlow ops (fused `ResourceApplyAdam`).
RUNS = [(name, "default") for name in CASES] + [
    (name, "tf_ops") for name, case in CASES.items() if case.cls is not SGDW]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name, path", RUNS)
def test_trajectory_matches_torch(name, path, dtype):
    case = CASES[name]
    problem = make_problem()
    optimizer = case.cls(**{"learning_rate": LR, **case.arguments, "init_verbose": False})
    if path == "tf_ops":
        optimizer.xla_min_size = None
    ours = run_ours(optimizer, problem, dtype)
    theirs = case.reference(problem)
    scale = float(np.max(np.abs(theirs)))
    assert np.max(np.abs(theirs - flat(problem.init))) > 0.1 * scale  # it trained
    rtol, floor = TOLERANCE[dtype]
    np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=floor * scale)
    assert int(tf_keras.backend.get_value(optimizer.iterations)) == STEPS
