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
import numpy as np
import pytest
import tensorflow as tf
from cases import CASES, REFERENCES, independent_arguments
from helpers import assert_close, f32, flat, make_problem, run_ours, torch_references

from keras_adamw import keras2
from keras_adamw.keras2.framework import (
    keras2 as tf_keras,  # tf_keras, or keras 2.x on TF < 2.16
)

# (rtol, absolute floor as a fraction of the trajectory's scale).
TOLERANCE = {"float32": (1e-5, 1e-6), "float64": (1e-6, 1e-7)}
# Betas and momentum as the optimizers hold them (float32).
TORCH = torch_references(beta_1=f32(0.9), beta_2=f32(0.999), momentum=f32(0.9))


def run_keras2(optimizer, problem, dtype):
    """Trajectory of our optimizer; `apply_gradients` in a `tf.function` (traced once)."""
    @tf.function
    def apply(grads, variables):
        optimizer.apply_gradients(zip(grads, variables))

    def step(grads, variables):
        apply([tf.constant(g, dtype) for g in grads], variables)

    return run_ours(optimizer, problem,
                    lambda value, name: tf.Variable(value.astype(dtype), name=name), step)


# A decayed AdamW/NadamW variable takes the XLA-compiled kernel by default;
# `xla_min_size=None` forces the TensorFlow ops (fused `ResourceApplyAdam`).
CHECKED = [reference for reference in REFERENCES if reference.keras2]
RUNS = [(reference, "default") for reference in CHECKED] + [
    (reference, "tf_ops") for reference in CHECKED
    if CASES[reference.case].optimizer != "sgdw"]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("reference, path", RUNS,
                         ids=[f"{reference.name}-{path}" for reference, path in RUNS])
def test_trajectory_matches_torch(reference, path, dtype):
    problem = make_problem()
    optimizer = CASES[reference.case].make(keras2, **independent_arguments(reference))
    if path == "tf_ops":
        optimizer.xla_min_size = None
    ours = run_keras2(optimizer, problem, dtype)
    theirs = TORCH[reference.reference](problem)
    scale = float(np.max(np.abs(theirs)))
    assert np.max(np.abs(theirs - flat(problem.init))) > 0.1 * scale  # it trained
    rtol, floor = TOLERANCE[dtype]
    assert_close(ours, theirs, rtol=rtol, floor=floor)
    assert int(tf_keras.backend.get_value(optimizer.iterations)) == len(problem.noise)
