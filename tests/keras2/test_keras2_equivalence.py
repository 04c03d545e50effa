"""keras2 optimizers with every extra off equal tf_keras's legacy optimizers, and
the keras2 flavour equals the Keras 3 flavour (TensorFlow backend)."""
import dataclasses

import numpy as np
import pytest
import tensorflow as tf
from keras2_helpers import assert_close, make_gradients, make_variables, needs_keras3

from keras_adamw import keras2
from keras_adamw.keras2.framework import (
    keras2 as tf_keras,  # tf_keras, or keras 2.x on TF < 2.16
)

legacy = tf_keras.optimizers.legacy


@dataclasses.dataclass
class Pair:
    name: str
    ours: type
    theirs: type
    options: dict = dataclasses.field(default_factory=dict)


PAIRS = [
    Pair("adam", keras2.AdamW, legacy.Adam),
    Pair("adam-amsgrad", keras2.AdamW, legacy.Adam, {"amsgrad": True}),
    Pair("nadam", keras2.NadamW, legacy.Nadam),  # legacy schedule_decay 0.004
    Pair("sgd", keras2.SGDW, legacy.SGD),
    Pair("sgd-momentum", keras2.SGDW, legacy.SGD, {"momentum": 0.9}),
    Pair("sgd-nesterov", keras2.SGDW, legacy.SGD, {"momentum": 0.9, "nesterov": True}),
]


def run(optimizer, steps, sparse=False):
    variables = make_variables()
    dense, values = make_gradients(steps)

    @tf.function
    def step(grads, emb_values):
        if sparse:
            grads = grads[:2] + [tf.IndexedSlices(emb_values, tf.constant([1, 3, 1, 6, 3, 1]),
                                                  tf.constant([8, 2]))]
        optimizer.apply_gradients(zip(grads, variables))

    for i in range(steps):
        step([tf.constant(g) for g in dense[i]], tf.constant(values[i]))
    return variables, optimizer


@pytest.mark.parametrize("pair", PAIRS, ids=[p.name for p in PAIRS])
def test_extras_off_equal_legacy(pair):
    """Default learning rates. AdamW/SGDW run the same fused kernels, so agree to
    the bit; NadamW differs by core's exact `1 - beta_2^t` (legacy Nadam loses
    digits to float32 cancellation there), about 1e-7 after 100 steps."""
    ours, opt = run(pair.ours(**pair.options), 100)
    theirs, ref = run(pair.theirs(**pair.options), 100)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-6)
        for slot in ref.get_slot_names():
            np.testing.assert_allclose(opt.get_slot(a, slot).numpy(),
                                       ref.get_slot(b, slot).numpy(), rtol=1e-6, atol=1e-6)


# ---- cross-flavour -------------------------------------------------------------------

ALL_EXTRAS = {"lr_multipliers": {"d1": 0.5, "d2/bias": 2.0},
                  "weight_decays": {"d1/kernel": (1e-3, 1e-2)}, "total_iterations": 7,
                  "use_cosine_annealing": True, "init_verbose": False}
FLAVOUR_CASES = [
    ("AdamW", dict(learning_rate=0.01, **ALL_EXTRAS)),
    ("AdamW", {"learning_rate": 0.01, "amsgrad": True, "weight_decay": 0.05,
                   "exclude_from_weight_decay": ["bias"]}),
    ("NadamW", dict(learning_rate=0.01, **ALL_EXTRAS)),
    ("SGDW", dict(learning_rate=0.05, momentum=0.9, nesterov=True, **ALL_EXTRAS)),
]


def _train(layers_module, model_class, optimizer, weights, x, y, steps):
    model = model_class([layers_module.Dense(4, activation="tanh", name="d1"),
                         layers_module.Dense(1, name="d2")])
    model.build((None, 3))
    model.set_weights(weights)
    model.compile(optimizer=optimizer, loss="mse")
    for i in range(steps):
        model.train_on_batch(x[i], y[i])
    return [np.asarray(w) for w in model.get_weights()]


@pytest.mark.parametrize("name,options", FLAVOUR_CASES,
                         ids=[f"{n}-{i}" for i, (n, _) in enumerate(FLAVOUR_CASES)])
@needs_keras3
def test_same_trajectory_as_keras3_flavour(name, options):
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "tensorflow":
        pytest.skip("cross-flavour check needs the Keras 3 TensorFlow backend")
    from keras_adamw import keras3

    rng = np.random.default_rng(3)
    weights = [rng.normal(size=s).astype("float32") * 0.5 for s in [(3, 4), (4,), (4, 1), (1,)]]
    x = rng.normal(size=(12, 8, 3)).astype("float32")
    y = rng.normal(size=(12, 8, 1)).astype("float32")
    ours = _train(tf_keras.layers, tf_keras.Sequential, getattr(keras2, name)(**options),
                  weights, x, y, 12)
    theirs = _train(keras.layers, keras.Sequential, getattr(keras3, name)(**options),
                    weights, x, y, 12)
    for a, b in zip(ours, theirs):
        assert_close(a, b)
