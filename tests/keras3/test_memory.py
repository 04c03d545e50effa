"""No extra per-parameter memory: our optimizer variables are Keras's slots plus scalars.

Counts the bytes of `optimizer.variables` after a step with every extra on
(multipliers, both decay conventions, cosine restarts, the fast path of the
backend) against Keras's own optimizer on the same variables (DESIGN.md section 6,
issue 4).
"""
import keras
import numpy as np
import pytest
from cases import case_id, rows
from helpers import small_model

import keras_adamw

# Our t_cur, eta_t, lr_t (and nothing else) on top of the built-in's variables.
EXTRA_SCALARS = 3
BUILTIN = rows("adamw", "adamw_amsgrad", "nadamw", "sgdw", "sgdw_momentum")
EXTRAS = {"lr_multipliers": {"dense_1": 0.5}, "weight_decays": {"dense_1/kernel": (1e-4, 1e-3)},
          "weight_decay": 1e-2, "use_cosine_annealing": True, "total_iterations": 4,
          "init_verbose": False}


def variable_bytes(optimizer):
    return sum(int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize for v in optimizer.variables)


@pytest.mark.parametrize("case", BUILTIN, ids=case_id)
def test_optimizer_variables_are_the_builtin_slots_plus_three_scalars(case):
    model = small_model(keras)
    variables = model.trainable_variables
    grads = [keras.ops.ones(v.shape) for v in variables]
    ours = getattr(keras_adamw, case.class_name)(**case.kwargs, **EXTRAS)
    theirs = getattr(keras.optimizers, case.builtin)(**case.kwargs)
    for optimizer in (ours, theirs):
        for _ in range(2):
            optimizer.apply(grads, variables)
    params = sum(int(np.prod(v.shape)) for v in variables)
    extra = variable_bytes(ours) - variable_bytes(theirs)
    assert 0 < extra <= EXTRA_SCALARS * 8, (extra, params)
    assert len(ours.variables) == len(theirs.variables) + EXTRA_SCALARS
