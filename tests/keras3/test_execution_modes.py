"""Every execution mode of `model.fit` follows the oracle: variables, slots, state.

TensorFlow: `jit_compile` False, True and "auto", eager (`run_eagerly`), several
steps per execution; JAX: jit, eager, several steps per execution; torch:
eager and `jit_compile=True` (`torch.compile`: the Keras ops path, since the
fused multi-tensor kernels cannot be traced there). The
model is the two-layer MLP of the distributed tests, the oracle
`helpers.mlp_oracle_run` with the same settings.
"""
import keras
import numpy as np
import pytest
from cases import CASES
from helpers import (
    MLP_EXTRAS_ORACLE,
    assert_close,
    assert_slots_match,
    assert_state_matches,
    fit_data,
    mlp_oracle_run,
    small_model,
)
from keras3_helpers import BACKEND, float32_terms

import keras_adamw

STEPS, BATCH, CYCLE = 6, 4, MLP_EXTRAS_ORACLE["total_iterations"]
# name -> compile arguments
MODES = {
    "tensorflow": {"function": {"jit_compile": False}, "xla": {"jit_compile": True},
                   "auto": {"jit_compile": "auto"}, "eager": {"run_eagerly": True},
                   "steps_per_execution": {"jit_compile": True, "steps_per_execution": 3}},
    "jax": {"jit": {}, "eager": {"run_eagerly": True},
            "steps_per_execution": {"steps_per_execution": 3}},
    # (Keras's torch trainer runs one step per execution.)
    "torch": {"eager": {}, "torch.compile": {"jit_compile": True}},
}[BACKEND]


def make_optimizer(name, case):
    return getattr(keras_adamw, name)(
        learning_rate=case.learning_rate, lr_multipliers={"dense_1": 0.5},
        weight_decays={"dense_2/kernel": (0, 0.1)}, weight_decay=0.05,
        exclude_from_weight_decay=["bias"], use_cosine_annealing=True,
        total_iterations=CYCLE, init_verbose=False)


@pytest.mark.parametrize("name", ["AdamW", "NadamW", "SGDW"])
@pytest.mark.parametrize("mode", sorted(MODES))
def test_fit_follows_the_oracle(mode, name):
    case = CASES["sgdw" if name == "SGDW" else name.lower()]
    model, optimizer = small_model(keras), make_optimizer(name, case)
    initial = [np.asarray(keras.ops.convert_to_numpy(v), np.float64)
               for v in model.trainable_variables]
    model.compile(optimizer, loss="mse", **MODES[mode])
    x, y = fit_data(STEPS * BATCH)
    model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
    params, oracle, _ = mlp_oracle_run(case, initial, STEPS, BATCH, (4, 2),
                                       float32_terms(case))
    for variable, expected in zip(model.trainable_variables, params):
        assert_close(variable, expected, what=f"{name} {mode} {variable.path}")
    assert_slots_match(optimizer, model.trainable_variables, oracle, case, f"{name} {mode}")
    assert_state_matches(optimizer, oracle, case)
