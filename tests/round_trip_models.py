"""The models of the save/load round-trip tests, for either Keras (`keras` 3 or the
Keras 2 package): two regularized Dense layers, L2 on `dense_1`'s kernel and L1 on
`dense_2`'s, as `Sequential`, Functional and nested (a `Sequential` inside a
Functional model); the data and the training loop of those tests."""
import numpy as np
import pytest

BATCH = 4


def dense_layers(keras):
    return [keras.layers.Dense(5, activation="tanh", name="dense_1",
                               kernel_regularizer=keras.regularizers.l2(1e-3)),
            keras.layers.Dense(2, name="dense_2",
                               kernel_regularizer=keras.regularizers.l1(1e-3))]


def builders(keras):
    """`{kind: () -> model}` for `sequential`, `functional` and `nested`."""
    def sequential():
        return keras.Sequential([keras.Input((4,)), *dense_layers(keras)])

    def functional():
        inputs = keras.Input((4,))
        first, second = dense_layers(keras)
        return keras.Model(inputs, second(first(inputs)))

    def nested():
        inner = keras.Sequential([keras.Input((4,)), dense_layers(keras)[0]], name="inner")
        inputs = keras.Input((4,))
        return keras.Model(inputs, dense_layers(keras)[1](inner(inputs)), name="outer")

    return {"sequential": sequential, "functional": functional, "nested": nested}


def data():
    rng = np.random.default_rng(1)
    return (rng.normal(size=(6 * BATCH, 4)).astype("float32"),
            rng.normal(size=(6 * BATCH, 2)).astype("float32"))


def train(model, batches):
    """`train_on_batch` on the given batch numbers of `data()`."""
    x, y = data()
    for b in batches:
        model.train_on_batch(x[BATCH * b:BATCH * (b + 1)], y[BATCH * b:BATCH * (b + 1)])


def assert_every_setting_applies(rules):
    """The rules `{layer/weight: rule}` of the tests' optimizer (`lr_multipliers`
    {"dense_1": 0.5}, layer-wise decay 0.8, `model=` decays, `weight_decay` without
    biases) differ where the settings say: the round trips compare something."""
    assert rules["dense_1/kernel"].multiplier == pytest.approx(0.5 * 0.8)
    assert rules["dense_2/kernel"].multiplier == 1.0
    assert rules["dense_1/kernel"].l2 > 0 and rules["dense_2/kernel"].l1 > 0
    assert rules["dense_1/bias"].decay_lambda == 0 and rules["dense_2/kernel"].decay_lambda > 0
