"""keras2 AdamW with amsgrad in `jit_compile` steps (TensorFlow has no XLA kernel
for `ResourceApplyAdamWithAmsgrad`; tf_keras's own legacy Adam fails there).

Every amsgrad variable takes the compiled pass, so `apply_gradients` inside
`tf.function(jit_compile=True)` follows the float64 oracle on variables and
slots after 30 updates (with and without decays, dense and `IndexedSlices`
gradients), and `fit(jit_compile=True)` trains.
"""
import numpy as np
import pytest
from cases import CASES
from helpers import assert_matches_oracle
from keras2_helpers import train_against_oracle

from keras_adamw import keras2
from keras_adamw.keras2 import AdamW
from keras_adamw.keras2.framework import (
    keras2 as tf_keras,  # tf_keras, or keras 2.x on TF < 2.16
)

STEPS = 30
DECAYS = {"weight_decay": 0.1, "exclude_from_weight_decay": ["bias"],
          "weight_decays": {"dense/kernel": (1e-3, 2e-2)}, "total_iterations": 30}
DECAYS_ORACLE = {"weight_decay": 0.1, "decay_mask": [True, False, True],
                 "l1_l2": [(1e-3, 2e-2), (0.0, 0.0), (0.0, 0.0)], "total_iterations": 30}
SETTINGS = {"plain": ({}, {}, False), "decays": (DECAYS, DECAYS_ORACLE, False),
            "decays-sparse": (DECAYS, DECAYS_ORACLE, True)}


@pytest.mark.parametrize("setting", SETTINGS)
def test_jit_step_matches_oracle(setting):
    options, oracle_options, sparse = SETTINGS[setting]
    case = CASES["adamw_amsgrad"]
    optimizer = case.make(keras2, **options)
    variables, oracle, params = train_against_oracle(
        optimizer, case, STEPS, sparse, jit_compile=True, **oracle_options)
    assert_matches_oracle(optimizer, variables, oracle, params, case, what=setting)


def test_fit_with_jit_compile_trains():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(32, 3)), rng.normal(size=(32, 2))
    model = tf_keras.Sequential([tf_keras.layers.Dense(2, input_shape=(3,))])
    model.compile(AdamW(learning_rate=0.05, amsgrad=True, init_verbose=False), loss="mse",
                  jit_compile=True)
    history = model.fit(x, y, batch_size=8, epochs=3, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert tf_keras.backend.get_value(model.optimizer.iterations) == 12
