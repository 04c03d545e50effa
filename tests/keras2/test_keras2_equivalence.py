"""keras2 optimizers with every extra off equal tf_keras's legacy optimizers, and
the keras2 flavour equals the Keras 3 flavour (TensorFlow backend)."""
import numpy as np
import pytest
from cases import CASES, case_id, rows
from helpers import assert_close
from keras2_helpers import needs_keras3, train

from keras_adamw import keras2
from keras_adamw.keras2.framework import (
    keras2 as tf_keras,  # tf_keras, or keras 2.x on TF < 2.16
)

legacy = tf_keras.optimizers.legacy
# legacy Nadam's schedule_decay is 0.004, as the nadamw row's.
PAIRED = rows("adamw", "adamw_amsgrad", "nadamw", "sgdw", "sgdw_momentum", "sgdw_nesterov")


def pair(case):
    """Ours and tf_keras's legacy optimizer of the row, default learning rates."""
    return (getattr(keras2, case.class_name)(**case.kwargs),
            getattr(legacy, case.builtin)(**case.kwargs))


@pytest.mark.parametrize("case", PAIRED, ids=case_id)
def test_extras_off_equal_legacy(case):
    """Default learning rates. AdamW/SGDW run the same fused kernels, so agree to
    the bit; NadamW differs by core's exact `1 - beta_2^t` (legacy Nadam loses
    digits to float32 cancellation there), about 1e-7 after 100 steps."""
    opt, ref = pair(case)
    ours, theirs = train(opt, 100), train(ref, 100)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-6)
        for slot in ref.get_slot_names():
            np.testing.assert_allclose(opt.get_slot(a, slot).numpy(),
                                       ref.get_slot(b, slot).numpy(), rtol=1e-6, atol=1e-6)


# ---- cross-flavour -------------------------------------------------------------------

ALL_EXTRAS = {"lr_multipliers": {"d1": 0.5, "d2/bias": 2.0},
              "weight_decays": {"d1/kernel": (1e-3, 1e-2)}, "total_iterations": 7,
              "use_cosine_annealing": True}
# (row, extras), the rows' learning rates
FLAVOUR_CASES = [
    ("adamw", ALL_EXTRAS),
    ("adamw_amsgrad", {"weight_decay": 0.05, "exclude_from_weight_decay": ["bias"]}),
    ("nadamw", ALL_EXTRAS),
    ("sgdw_nesterov", ALL_EXTRAS),
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


@pytest.mark.parametrize("row,options", FLAVOUR_CASES,
                         ids=[f"{n}-{i}" for i, (n, _) in enumerate(FLAVOUR_CASES)])
@needs_keras3
def test_same_trajectory_as_keras3_flavour(row, options):
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "tensorflow":
        pytest.skip("cross-flavour check needs the Keras 3 TensorFlow backend")
    from keras_adamw import keras3

    rng = np.random.default_rng(3)
    weights = [rng.normal(size=s).astype("float32") * 0.5 for s in [(3, 4), (4,), (4, 1), (1,)]]
    x = rng.normal(size=(12, 8, 3)).astype("float32")
    y = rng.normal(size=(12, 8, 1)).astype("float32")
    ours = _train(tf_keras.layers, tf_keras.Sequential, CASES[row].make(keras2, **options),
                  weights, x, y, 12)
    theirs = _train(keras.layers, keras.Sequential, CASES[row].make(keras3, **options),
                    weights, x, y, 12)
    for a, b in zip(ours, theirs):
        assert_close(a, b)
