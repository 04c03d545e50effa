"""Bad inputs, flavour errors, model= extraction and an Embedding model's sparse
gradients (equal to the densified gradients)."""
import numpy as np
import pytest
import tensorflow as tf
from keras2_helpers import needs_keras3

from keras_adamw.keras2 import SGDW, AdamW, NadamW
from keras_adamw.keras2.framework import (
    keras2 as tf_keras,  # tf_keras, or keras 2.x on TF < 2.16
)
from keras_adamw.keras2.regularizers import get_weight_decays

BAD = [
    (AdamW, {"beta_1": 1.0}, ValueError, "beta_1"),
    (AdamW, {"learning_rate": -1.0}, ValueError, "learning_rate"),
    (AdamW, {"epsilon": "x"}, TypeError, "epsilon"),
    (AdamW, {"weight_decays": {"d/kernel": 0.1}}, TypeError, "(0, l2)"),
    (AdamW, {"lr_multipliers": [1.0]}, TypeError, "lr_multipliers"),
    (AdamW, {"autorestart": True}, ValueError, "autorestart"),
    (AdamW, {"total_iteration": 10}, TypeError, "total_iterations"),
    (NadamW, {"schedule_decay": -1}, ValueError, "schedule_decay"),
    (SGDW, {"momentum": 1.5}, ValueError, "momentum"),
    (SGDW, {"nesterov": "yes"}, TypeError, "nesterov"),
    (SGDW, {"t_cur": -2}, ValueError, "t_cur"),
]


@pytest.mark.parametrize("cls,options,error,text", BAD,
                         ids=[f"{c.__name__}-{next(iter(o))}" for c, o, _, _ in BAD])
def test_bad_arguments(cls, options, error, text):
    with pytest.raises(error, match=None) as info:
        cls(**options)
    assert text in str(info.value)


@needs_keras3
def test_keras3_model_names_the_flavour():
    keras = pytest.importorskip("keras")
    model = keras.Sequential([keras.layers.Input((2,)), keras.layers.Dense(1)])
    with pytest.raises(TypeError, match="keras_adamw.keras3"):
        AdamW(model=model)


def _regularized_model():
    return tf_keras.Sequential([
        tf_keras.layers.Dense(3, input_shape=(2,), name="a",
                              kernel_regularizer=tf_keras.regularizers.L1L2(1e-3, 1e-2),
                              bias_regularizer=tf_keras.regularizers.L2(1e-4)),
        tf_keras.layers.Dense(1, name="b")])


def test_model_extraction_reads_then_zeroes():
    model = _regularized_model()
    decays = get_weight_decays(model)
    assert list(decays) == ["a/kernel", "a/bias"]
    np.testing.assert_allclose(decays["a/kernel"], (1e-3, 1e-2), rtol=1e-6)
    optimizer = AdamW(model=model, total_iterations=10, init_verbose=False)
    assert set(optimizer.weight_decays) == {"a/kernel", "a/bias"}
    assert float(model.layers[0].kernel_regularizer.l2) == 0.0
    assert get_weight_decays(model)["a/kernel"] == (0.0, 0.0)


def test_unmatched_keys_warn():
    var = tf.Variable(tf.ones((2, 2)), name="dense/kernel")
    optimizer = AdamW(lr_multipliers={"conv": 2.0}, init_verbose=False)
    with pytest.warns(UserWarning, match="conv"):
        optimizer.apply_gradients([(tf.ones((2, 2)), var)])


def test_embedding_model_sparse_equals_dense():
    """An Embedding's IndexedSlices gradient gives the densified gradient's numbers."""
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, 20, size=(6, 4, 5))
    tokens[:, :, 0] = 3  # repeated rows within a batch
    targets = rng.normal(size=(6, 4, 1)).astype("float32")

    def train(densify):
        tf_keras.utils.set_random_seed(1)
        model = tf_keras.Sequential([tf_keras.layers.Embedding(20, 3, input_length=5),
                                     tf_keras.layers.Flatten(), tf_keras.layers.Dense(1)])
        model.build((None, 5))
        optimizer = AdamW(learning_rate=0.01, weight_decay=0.1, use_cosine_annealing=True,
                          total_iterations=4, init_verbose=False)

        @tf.function
        def step(x, y):
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean((model(x) - y) ** 2)
            grads = tape.gradient(loss, model.trainable_variables)
            assert isinstance(grads[0], tf.IndexedSlices)
            if densify:
                grads = [tf.convert_to_tensor(g) for g in grads]
            optimizer.apply_gradients(zip(grads, model.trainable_variables))

        for x, y in zip(tokens, targets):
            step(x, y)
        return model.get_weights()

    for a, b in zip(train(False), train(True)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
