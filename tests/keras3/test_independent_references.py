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

import jax
import keras
import numpy as np
import optax
import pytest
from cases import CASES, INDEPENDENT, REFERENCES, independent_arguments
from helpers import (
    as_float64,
    assert_close,
    flat,
    make_problem,
    max_relative_deviation,
    run_ours,
    torch_references,
)
from keras3_helpers import BACKEND
from reference import cosine_eta

import keras_adamw

RTOL = {"float32": 1e-5, "float64": 1e-6}
LR, EPS, WD = (INDEPENDENT[k] for k in ("learning_rate", "epsilon", "weight_decay"))
T, ETA_MIN = INDEPENDENT["cycle"], INDEPENDENT["eta_min"]
BETA_2 = 0.999


@contextlib.contextmanager
def variable_dtype_scope(dtype):
    """float64 on JAX needs `jax_enable_x64`, scoped so other tests keep the default."""
    if BACKEND == "jax" and dtype == "float64":
        with jax.enable_x64(True):
            yield
    else:
        yield


def run_keras3(optimizer, problem, dtype):
    """Trajectory (steps x elements) of our optimizer on `problem`."""
    def step(grads, variables):
        optimizer.apply([keras.ops.convert_to_tensor(g, dtype) for g in grads], variables)

    with variable_dtype_scope(dtype):
        return run_ours(optimizer, problem,
                        lambda value, name: keras.Variable(value, dtype=dtype, name=name), step)


def run_optax(transform, problem):
    """Trajectory of an optax transformation (float64) on `problem`."""
    with jax.enable_x64(True):
        params = [jax.numpy.asarray(x) for x in problem.init]
        state = transform.init(params)
        update = jax.jit(transform.update)
        trajectory = []
        for step in range(len(problem.noise)):
            grads = problem.gradients(step, [np.asarray(p) for p in params])
            updates, state = update([jax.numpy.asarray(g) for g in grads], state, params)
            params = optax.apply_updates(params, updates)
            trajectory.append(flat(params))
    return np.stack(trajectory)


def optax_cosine_restarts(peak, cycles):
    """optax's cosine schedule (T-1 decay steps: ends at eta_min), restarted every T."""
    cycle = optax.cosine_decay_schedule(peak, decay_steps=T - 1, alpha=ETA_MIN)
    return optax.join_schedules([cycle] * cycles, [T * (k + 1) for k in range(cycles - 1)])


def optax_adamw(problem, annealed=False):
    learning_rate = optax_cosine_restarts(LR, 3) if annealed else LR
    transform = optax.inject_hyperparams(optax.adamw)(
        learning_rate=learning_rate, b1=0.9, b2=BETA_2,
        eps=lambda count: EPS / jax.numpy.sqrt(1.0 - BETA_2 ** (count + 1)),
        weight_decay=WD)
    return run_optax(transform, problem)


REFERENCE_RUNS = {**torch_references(), "optax.adamw": optax_adamw,
                  "optax.adamw(cosine restarts)": lambda p: optax_adamw(p, annealed=True)}
CHECKED = {reference.name: reference for reference in REFERENCES}


def make_ours(name):
    reference = CHECKED[name]
    return CASES[reference.case].make(keras_adamw, **independent_arguments(reference))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", list(CHECKED))
def test_trajectory_matches_independent_reference(name, dtype):
    """Every step: `rtol` elementwise, absolute floor `rtol/10` of the values' scale."""
    problem = make_problem()
    ours = run_keras3(make_ours(name), problem, dtype)
    theirs = REFERENCE_RUNS[CHECKED[name].reference](problem)
    assert max_relative_deviation(theirs, flat(problem.init)) > 0.1  # it trained
    assert_close(ours, theirs, rtol=RTOL[dtype], floor=0.1 * RTOL[dtype])


def test_constant_torch_epsilon_is_not_the_keras_one():
    """The eps conversion is needed: torch AdamW with a constant eps drifts away."""
    problem = make_problem()
    ours = run_keras3(make_ours("adamw~torch.AdamW"), problem, "float64")
    naive = REFERENCE_RUNS["torch.AdamW(constant eps)"](problem)
    assert max_relative_deviation(ours, naive) > 100 * RTOL["float32"]


def test_torch_momentum_differs_under_a_changing_lr():
    """torch SGD with lr_t = eta_t lr scales the whole buffer: not the Keras convention."""
    problem = make_problem()
    ours = run_keras3(make_ours("sgdw_momentum~torch.SGD(lr=1, eta_t*lr*g)"), problem,
                      "float64")
    naive = REFERENCE_RUNS["torch.SGD(lr*eta_t)"](problem)
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
            assert int(as_float64(optimizer.t_cur)) == step % cycle
            np.testing.assert_allclose(as_float64(optimizer.eta_t), expected, rtol=1e-6)
            before = float(as_float64(variable)[0])
            optimizer.apply([gradient], [variable])
            np.testing.assert_allclose(before - float(as_float64(variable)[0]), expected,
                                       rtol=1e-6)
            np.testing.assert_allclose(as_float64(optimizer.lr_t), expected, rtol=1e-6)
    assert int(as_float64(optimizer.t_cur)) == 0  # restarted after the third cycle
