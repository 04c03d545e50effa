"""keras2 AdamW with amsgrad in `jit_compile` steps (TensorFlow has no XLA kernel
for `ResourceApplyAdamWithAmsgrad`; tf_keras's own legacy Adam fails there).

Every amsgrad variable takes the compiled pass, so `apply_gradients` inside
`tf.function(jit_compile=True)` follows the float64 oracle on variables and
slots after 30 updates (with and without decays, dense and `IndexedSlices`
gradients), and `fit(jit_compile=True)` trains.
"""
import numpy as np
import pytest
import reference
import tensorflow as tf
from keras2_helpers import (
    SHAPES,
    SPARSE_INDICES,
    assert_close,
    f32,
    make_gradients,
    make_step,
    make_variables,
)

from keras_adamw.keras2 import AdamW
from keras_adamw.keras2.framework import (
    keras2 as tf_keras,  # tf_keras, or keras 2.x on TF < 2.16
)

STEPS = 30
DECAYS = {"weight_decay": 0.1, "exclude_from_weight_decay": ["bias"],
          "weight_decays": {"dense/kernel": (1e-3, 2e-2)}, "total_iterations": 30}
DECAYS_ORACLE = {"weight_decay": 0.1, "decay_mask": [True, False, True],
                 "l1_l2": [(1e-3, 2e-2), (0.0, 0.0), (0.0, 0.0)], "total_iterations": 30}
CASES = {"plain": ({}, {}, False), "decays": (DECAYS, DECAYS_ORACLE, False),
         "decays-sparse": (DECAYS, DECAYS_ORACLE, True)}


@pytest.mark.parametrize("case", CASES)
def test_jit_step_matches_oracle(case):
    options, oracle_options, sparse = CASES[case]
    optimizer = AdamW(learning_rate=0.01, amsgrad=True, init_verbose=False, **options)
    variables = make_variables()
    oracle = reference.ReferenceOptimizer(
        "adamw", list(SHAPES.values()), learning_rate=f32(0.01), beta_1=f32(0.9),
        beta_2=f32(0.999), epsilon=f32(1e-7), amsgrad=True, **oracle_options)
    step = make_step(optimizer, variables, sparse, jit_compile=True)
    params = [v.numpy().astype(np.float64) for v in variables]
    dense, sparse_values = make_gradients(STEPS)
    for i in range(STEPS):
        grads = [g.astype(np.float64) for g in dense[i]]
        if sparse:
            grads[2] = reference.densify(sparse_values[i], SPARSE_INDICES,
                                         SHAPES["emb/embeddings"])
        step([tf.constant(g) for g in dense[i]], tf.constant(sparse_values[i]))
        params = oracle.step(params, grads)
    for j, (var, path) in enumerate(zip(variables, SHAPES)):
        assert_close(var.numpy(), params[j], what=path)
        for slot, expected in (("m", oracle.m), ("v", oracle.v), ("vhat", oracle.vhat)):
            assert_close(optimizer.get_slot(var, slot).numpy(), expected[j],
                         what=f"{path}/{slot}")
    assert tf_keras.backend.get_value(optimizer.iterations) == STEPS


def test_fit_with_jit_compile_trains():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(32, 3)), rng.normal(size=(32, 2))
    model = tf_keras.Sequential([tf_keras.layers.Dense(2, input_shape=(3,))])
    model.compile(AdamW(learning_rate=0.05, amsgrad=True, init_verbose=False), loss="mse",
                  jit_compile=True)
    history = model.fit(x, y, batch_size=8, epochs=3, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert tf_keras.backend.get_value(model.optimizer.iterations) == 12
