"""Keras 3 AdamW, NadamW and SGDW against independent implementations (issue 6, item 4).

The references are `torch.optim` (float64, single-tensor path) and `optax` (float64
under `jax.enable_x64`); they are importable in every backend process, so each test
runs on tensorflow, jax and torch. Each side trains the same noisy quadratic for 100
steps, computing its gradients from its *own* values, and the whole trajectories
are compared: rtol 1e-5 with float32 variables, 1e-6 with float64 ones (the
library computes its per-step scalars, lr, eta and bias corrections, in float32:
about 1e-7 relative each, so float64 variables cannot agree to 1e-12).

How the conventions map (every mapping below is exact algebra, not a tolerance):

- Epsilon, AdamW. Keras adds eps to `sqrt(v)` and folds the bias correction into
  the step, `lr sqrt(1-b2^t)/(1-b1^t) m / (sqrt(v) + eps)`; torch `AdamW` and
  `optax.adamw` add it after the correction, `lr/(1-b1^t) m / (sqrt(v)/sqrt(1-b2^t)
  + eps')`. They are equal when `eps' = eps / sqrt(1 - b2^t)`, which depends on t:
  the torch reference gets its param groups' `eps` set before every step, the
  optax one an `eps` schedule through `optax.inject_hyperparams`. A constant
  `eps' = eps` drifts far outside the tolerance (checked below).
- Weight decay. Keras/torch/optax `weight_decay=lambda` is the same decoupled term
  `theta -= lr lambda theta` (from theta before the update) in all three. With
  cosine annealing ours applies `eta_t lr` to both the step and that decay, which is
  torch/optax with the learning rate `lr eta_t` at step t (reference.cosine_eta).
- Paper convention. `weight_decays={path: (0, l2)}` with `total_iterations=T` and
  no annealing decays `theta -= l2 sqrt(1/T) theta` per step, independent of lr:
  torch `AdamW(weight_decay=l2 sqrt(1/T) / lr)` on that variable's param group, at
  constant lr.
- NadamW is torch `NAdam(momentum_decay=4e-3, decoupled_weight_decay=True)` with
  nothing converted: the same momentum schedule `u_t = b1 (1 - 0.5 0.96^(0.004
  t))` (torch's `mu_t`, our `schedule_decay`), the same `m_bar` (torch's two
  `addcdiv_` terms), epsilon added to `sqrt(v / (1 - b2^t))` in both, and torch's
  decoupled decay `theta *= 1 - lr lambda` is our `weight_decay=lambda`.
- SGD momentum. Keras `vel = mu vel - lr g; theta += vel`, torch `buf = mu buf + g;
  theta -= lr buf`: at constant lr `vel = -lr buf` and the trajectories are equal
  (nesterov too). Under a changing lr (cosine `eta_t`) Keras puts each step's lr
  inside the velocity, torch multiplies the whole buffer by the current lr, so
  they differ (checked below); the exact torch equivalent is `SGD(lr=1)` fed with
  the scaled gradients `eta_t lr g`. torch's SGD `weight_decay` is the coupled L2
  `g += lambda theta`, equal to our decoupled decay only without momentum.

The `eta_t` sequence over 3 cycles is checked against the closed form and against
optax's own cosine schedule joined at the restarts.
"""
import contextlib
import dataclasses
import math
from collections.abc import Callable

import jax
import keras
import numpy as np
import optax
import pytest
import torch
from helpers import BACKEND
from reference import cosine_eta

import keras_adamw
from keras_adamw.utils import K_eval

STEPS = 100
LR, EPS, WD = 0.01, 1e-3, 0.1
BETA_1, BETA_2 = 0.9, 0.999
T, ETA_MIN = 40, 0.1  # cosine cycle: 100 steps = 2.5 cycles, two restarts
L2 = 0.05  # paper-convention decay of `kernel`
RTOL = {"float32": 1e-5, "float64": 1e-6}
NAMES = ("kernel", "bias")


@dataclasses.dataclass(frozen=True)
class Problem:
    """Noisy quadratic `0.5 |theta - target|^2`, gradients `theta - target + noise_k`."""

    init: tuple
    target: tuple
    noise: tuple  # per step, per variable

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
    """The cosine multiplier of update `step` (0-based), restarting every T updates."""
    return cosine_eta(step % T, T, ETA_MIN, 1.0)


def flat(values):
    return np.concatenate([np.ravel(np.asarray(v, np.float64)) for v in values])


@contextlib.contextmanager
def variable_dtype_scope(dtype):
    """float64 on JAX needs `jax_enable_x64`, scoped so other tests keep the default."""
    if BACKEND == "jax" and dtype == "float64":
        with jax.enable_x64(True):
            yield
    else:
        yield


def run_ours(optimizer, problem, dtype):
    """Trajectory (steps x elements) of our optimizer on `problem`."""
    with variable_dtype_scope(dtype):
        variables = [keras.Variable(x, dtype=dtype, name=n)
                     for x, n in zip(problem.init, NAMES)]
        trajectory = []
        for step in range(STEPS):
            values = [np.asarray(K_eval(v), np.float64) for v in variables]
            grads = [keras.ops.convert_to_tensor(g, dtype)
                     for g in problem.gradients(step, values)]
            optimizer.apply(grads, variables)
            trajectory.append(flat(K_eval(v) for v in variables))
    return np.stack(trajectory)


@contextlib.contextmanager
def torch_float64():
    """Float64 scalar state too (NAdam's `mu_product` follows the default dtype)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def run_torch(make_optimizer, problem, before_step=None, scale_gradients=None):
    """Trajectory of a `torch.optim` optimizer (float64) on `problem`.

    Args:
        make_optimizer: `[kernel, bias] -> torch.optim.Optimizer`.
        problem: the `Problem`.
        before_step: optional `(optimizer, step) -> None`, e.g. sets lr or eps.
        scale_gradients: optional `step -> factor` multiplying the gradients.
    """
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


def run_optax(transform, problem):
    """Trajectory of an optax transformation (float64) on `problem`."""
    with jax.enable_x64(True):
        params = [jax.numpy.asarray(x) for x in problem.init]
        state = transform.init(params)
        update = jax.jit(transform.update)
        trajectory = []
        for step in range(STEPS):
            grads = problem.gradients(step, [np.asarray(p) for p in params])
            updates, state = update([jax.numpy.asarray(g) for g in grads], state, params)
            params = optax.apply_updates(params, updates)
            trajectory.append(flat(params))
    return np.stack(trajectory)


def assert_trajectories_close(ours, theirs, dtype):
    """Every step: `rtol` elementwise, absolute floor `rtol/10` of the values' scale."""
    rtol = RTOL[dtype]
    scale = float(np.max(np.abs(theirs)))
    np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=0.1 * rtol * scale)


def max_relative_deviation(ours, theirs):
    return float(np.max(np.abs(ours - theirs)) / np.max(np.abs(theirs)))


# ---- torch references ---------------------------------------------------------------


def keras_epsilon(optimizer, step):
    """torch adds eps after the bias correction: `eps' = eps / sqrt(1 - b2^t)`."""
    for group in optimizer.param_groups:
        group["eps"] = EPS / math.sqrt(1.0 - BETA_2 ** (step + 1))


def annealed_lr(optimizer, step):
    for group in optimizer.param_groups:
        group["lr"] = LR * eta(step)


def both(*hooks):
    def run(optimizer, step):
        for hook in hooks:
            hook(optimizer, step)
    return run


def torch_adamw(problem, amsgrad=False, annealed=False):
    hook = both(keras_epsilon, annealed_lr) if annealed else keras_epsilon
    return run_torch(lambda p: torch.optim.AdamW(
        p, lr=LR, betas=(BETA_1, BETA_2), eps=EPS, weight_decay=WD, amsgrad=amsgrad,
        foreach=False), problem, hook)


def torch_adamw_paper_decay(problem):
    """`(0, l2)` on `kernel` only: torch weight_decay `l2 sqrt(1/T) / lr` on its group."""
    kernel_decay = L2 * math.sqrt(1.0 / STEPS) / LR
    return run_torch(lambda p: torch.optim.AdamW(
        [{"params": [p[0]], "weight_decay": kernel_decay},
         {"params": [p[1]], "weight_decay": 0.0}],
        lr=LR, betas=(BETA_1, BETA_2), eps=EPS, foreach=False), problem, keras_epsilon)


def torch_nadam(problem, annealed=False):
    return run_torch(lambda p: torch.optim.NAdam(
        p, lr=LR, betas=(BETA_1, BETA_2), eps=EPS, weight_decay=WD, momentum_decay=4e-3,
        decoupled_weight_decay=True, foreach=False), problem,
        annealed_lr if annealed else None)


def torch_sgd(problem, momentum=0.9, nesterov=False, weight_decay=0.0):
    return run_torch(lambda p: torch.optim.SGD(
        p, lr=5 * LR, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay,
        foreach=False), problem)


def torch_sgd_keras_momentum(problem, nesterov=False):
    """Keras momentum under a changing lr: torch `SGD(lr=1)` fed `eta_t lr g`."""
    return run_torch(lambda p: torch.optim.SGD(
        p, lr=1.0, momentum=0.9, nesterov=nesterov, foreach=False), problem,
        scale_gradients=lambda step: 5 * LR * eta(step))


# ---- optax references ---------------------------------------------------------------


def optax_cosine_restarts(peak, cycles):
    """optax's cosine schedule (T-1 decay steps: ends at eta_min), restarted every T."""
    cycle = optax.cosine_decay_schedule(peak, decay_steps=T - 1, alpha=ETA_MIN)
    return optax.join_schedules([cycle] * cycles, [T * (k + 1) for k in range(cycles - 1)])


def optax_adamw(problem, annealed=False):
    learning_rate = optax_cosine_restarts(LR, 3) if annealed else LR
    transform = optax.inject_hyperparams(optax.adamw)(
        learning_rate=learning_rate, b1=BETA_1, b2=BETA_2,
        eps=lambda count: EPS / jax.numpy.sqrt(1.0 - BETA_2 ** (count + 1)),
        weight_decay=WD)
    return run_optax(transform, problem)


# ---- the case table -----------------------------------------------------------------

COSINE = {"use_cosine_annealing": True, "total_iterations": T, "eta_min": ETA_MIN}


@dataclasses.dataclass(frozen=True)
class Case:
    """Our optimizer's arguments and the independent reference that must match it."""

    cls: type
    arguments: dict
    reference: Callable


CASES = {
    "adamw~torch.AdamW": Case(keras_adamw.AdamW, {"weight_decay": WD}, torch_adamw),
    "adamw_amsgrad~torch.AdamW(amsgrad)": Case(
        keras_adamw.AdamW, {"weight_decay": WD, "amsgrad": True},
        lambda p: torch_adamw(p, amsgrad=True)),
    "adamw_cosine~torch.AdamW(lr*eta_t)": Case(
        keras_adamw.AdamW, {"weight_decay": WD, **COSINE},
        lambda p: torch_adamw(p, annealed=True)),
    "adamw_paper_decay~torch.AdamW(l2*sqrt(1/T)/lr)": Case(
        keras_adamw.AdamW, {"weight_decays": {"kernel": (0, L2)}, "total_iterations": STEPS},
        torch_adamw_paper_decay),
    "adamw~optax.adamw": Case(keras_adamw.AdamW, {"weight_decay": WD}, optax_adamw),
    "adamw_cosine~optax.adamw(cosine restarts)": Case(
        keras_adamw.AdamW, {"weight_decay": WD, **COSINE},
        lambda p: optax_adamw(p, annealed=True)),
    "nadamw~torch.NAdam": Case(keras_adamw.NadamW, {"weight_decay": WD}, torch_nadam),
    "nadamw_cosine~torch.NAdam(lr*eta_t)": Case(
        keras_adamw.NadamW, {"weight_decay": WD, **COSINE},
        lambda p: torch_nadam(p, annealed=True)),
    "sgdw_momentum~torch.SGD": Case(
        keras_adamw.SGDW, {"learning_rate": 5 * LR, "momentum": 0.9}, torch_sgd),
    "sgdw_nesterov~torch.SGD(nesterov)": Case(
        keras_adamw.SGDW, {"learning_rate": 5 * LR, "momentum": 0.9, "nesterov": True},
        lambda p: torch_sgd(p, nesterov=True)),
    "sgdw_decay_no_momentum~torch.SGD(weight_decay)": Case(
        keras_adamw.SGDW, {"learning_rate": 5 * LR, "weight_decay": WD},
        lambda p: torch_sgd(p, momentum=0.0, weight_decay=WD)),
    "sgdw_momentum_cosine~torch.SGD(lr=1, eta_t*lr*g)": Case(
        keras_adamw.SGDW, {"learning_rate": 5 * LR, "momentum": 0.9, **COSINE},
        torch_sgd_keras_momentum),
    "sgdw_nesterov_cosine~torch.SGD(lr=1, eta_t*lr*g)": Case(
        keras_adamw.SGDW, {"learning_rate": 5 * LR, "momentum": 0.9, "nesterov": True,
                           **COSINE}, lambda p: torch_sgd_keras_momentum(p, nesterov=True)),
}


def make_ours(case):
    arguments = {"learning_rate": LR, **case.arguments, "init_verbose": False}
    if case.cls is not keras_adamw.SGDW:
        arguments.update(beta_1=BETA_1, beta_2=BETA_2, epsilon=EPS)
    return case.cls(**arguments)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", list(CASES))
def test_trajectory_matches_independent_reference(name, dtype):
    case = CASES[name]
    problem = make_problem()
    ours = run_ours(make_ours(case), problem, dtype)
    theirs = case.reference(problem)
    assert max_relative_deviation(theirs, flat(problem.init)) > 0.1  # it trained
    assert_trajectories_close(ours, theirs, dtype)


def test_constant_torch_epsilon_is_not_the_keras_one():
    """The eps conversion is needed: torch AdamW with a constant eps drifts away."""
    problem = make_problem()
    ours = run_ours(make_ours(CASES["adamw~torch.AdamW"]), problem, "float64")
    naive = run_torch(lambda p: torch.optim.AdamW(
        p, lr=LR, betas=(BETA_1, BETA_2), eps=EPS, weight_decay=WD, foreach=False), problem)
    assert max_relative_deviation(ours, naive) > 100 * RTOL["float32"]


def test_torch_momentum_differs_under_a_changing_lr():
    """torch SGD with lr_t = eta_t lr scales the whole buffer: not the Keras convention."""
    problem = make_problem()
    case = CASES["sgdw_momentum_cosine~torch.SGD(lr=1, eta_t*lr*g)"]
    ours = run_ours(make_ours(case), problem, "float64")
    naive = run_torch(lambda p: torch.optim.SGD(p, lr=5 * LR, momentum=0.9, foreach=False),
                      problem, lambda optimizer, step: optimizer.param_groups[0].update(
                          lr=5 * LR * eta(step)))
    assert max_relative_deviation(ours, naive) > 100 * RTOL["float32"]


def test_eta_t_follows_the_closed_form_over_three_cycles():
    """eta_t before update k is f(k mod T): the closed form and optax's schedule.

    SGDW with lr 1, no momentum and a unit gradient moves the variable by exactly
    `-eta` per update, so the applied multiplier is checked too, not only `eta_t`.
    """
    cycle, eta_min, eta_max = 7, 0.2, 1.5
    optimizer = keras_adamw.SGDW(learning_rate=1.0, use_cosine_annealing=True,
                                 total_iterations=cycle, eta_min=eta_min, eta_max=eta_max)
    schedule = optax.join_schedules(
        [optax.cosine_decay_schedule(eta_max, cycle - 1, alpha=eta_min / eta_max)] * 3,
        [cycle, 2 * cycle])
    with variable_dtype_scope("float64"):
        variable = keras.Variable(np.zeros(1), dtype="float64", name="theta")
        gradient = keras.ops.ones((1,), "float64")
        for step in range(3 * cycle):
            expected = cosine_eta(step % cycle, cycle, eta_min, eta_max)
            with jax.enable_x64(True):
                np.testing.assert_allclose(float(schedule(step)), expected, rtol=1e-12)
            assert int(K_eval(optimizer.t_cur)) == step % cycle
            np.testing.assert_allclose(K_eval(optimizer.eta_t), expected, rtol=1e-6)
            before = float(K_eval(variable)[0])
            optimizer.apply([gradient], [variable])
            np.testing.assert_allclose(before - float(K_eval(variable)[0]), expected,
                                       rtol=1e-6)
            np.testing.assert_allclose(K_eval(optimizer.lr_t), expected, rtol=1e-6)
    assert int(K_eval(optimizer.t_cur)) == 0  # restarted after the third cycle
