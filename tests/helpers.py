"""Helpers of the tests of both flavours: comparison, the oracle, data, models, steps.

Nothing here imports a framework at module level: functions that build models
take the Keras module (`keras` 3, or the Keras 2 package) as an argument, and
TensorFlow or torch are imported where a function needs them. The optimizer rows
are in `cases.py`.
"""
import collections
import contextlib
import dataclasses
import json
import math
import os
import re
import socket
import subprocess
import sys

import numpy as np
import pytest
from cases import INDEPENDENT
from reference import ReferenceOptimizer, cosine_eta

TESTS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TESTS)

# The hyperparameters TensorFlow holds as float32 (the Keras 2 flavour's
# `_set_hyper`), and the betas TensorFlow's fused Adam kernels take as float32.
FLOAT32_ALL = ("learning_rate", "beta_1", "beta_2", "epsilon", "momentum")
FLOAT32_BETAS = ("beta_1", "beta_2")

# Slot names: the oracle's, the Keras 3 optimizers' list attributes, Keras 2's slots.
KERAS3_SLOTS = {"m": "_momentums", "v": "_velocities", "vhat": "_velocity_hats",
                "velocity": "momentums"}
KERAS2_SLOTS = {"m": "m", "v": "v", "vhat": "vhat", "velocity": "momentum"}

# The variables of the kernel-path tests, their settings, and the oracle's terms.
KERNEL_SHAPES = {"a_kernel": (6, 5), "a_bias": (5,), "b_kernel": (5, 3), "table": (8, 3)}
KERNEL_EXTRAS = {"lr_multipliers": {"b_": 2.0}, "weight_decays": {"a_kernel": (1e-3, 2e-2)},
                 "weight_decay": 0.05, "exclude_from_weight_decay": ["bias"],
                 "use_cosine_annealing": True, "total_iterations": 12}
KERNEL_EXTRAS_ORACLE = {"multipliers": [1.0, 1.0, 2.0, 1.0],
                        "l1_l2": [(1e-3, 2e-2), (0.0, 0.0), (0.0, 0.0), (0.0, 0.0)],
                        "weight_decay": 0.05, "decay_mask": [True, False, True, True],
                        "use_cosine_annealing": True, "total_iterations": 12}
SPARSE_INDICES = np.array([1, 3, 1, 6, 3, 1])  # duplicates; rows 0, 2, 4, 5, 7 absent


# ---- numbers --------------------------------------------------------------------------


def f32(x):
    """A hyperparameter as a float32 optimizer holds it, for the float64 oracle."""
    return float(np.float32(x))


def as_float64(value):
    """A float64 numpy copy of a variable, tensor, array or number of any framework."""
    if hasattr(value, "value") and hasattr(value, "path"):  # a Keras 3 variable
        value = value.value
    if hasattr(value, "detach"):  # a torch tensor (bfloat16 too)
        value = value.detach().cpu().double().numpy()
    elif hasattr(value, "numpy"):  # a TensorFlow variable or tensor
        value = value.numpy()
    return np.array(value, np.float64)


def assert_close(actual, expected, rtol=1e-5, floor=1e-6, what=""):
    """`rtol` elementwise, with an absolute floor of `floor` times the tensor's scale.

    float32 rounding of an O(1) variable over many steps is absolute, so an
    element that crosses zero cannot meet a pure relative tolerance.

    Args:
        actual: ours (a variable, tensor, array or number of any framework).
        expected: the reference's.
        rtol: the relative tolerance.
        floor: the absolute tolerance, as a fraction of `max |expected|`.
        what: the failure message's name of the values.
    """
    expected = np.asarray(expected, np.float64)
    atol = floor * float(np.max(np.abs(expected), initial=0.0))
    np.testing.assert_allclose(as_float64(actual), expected, rtol=rtol, atol=atol,
                               err_msg=what)


def max_relative_deviation(ours, theirs):
    """`max |ours - theirs| / max |theirs|`."""
    return float(np.max(np.abs(ours - theirs)) / np.max(np.abs(theirs)))


# ---- the oracle -------------------------------------------------------------------------


def oracle_for(case, shapes, learning_rate=None, float32=(), **extra):
    """The float64 oracle of a `cases.Case` row.

    Args:
        case: the row.
        shapes: the variables' shapes.
        learning_rate: the learning rate, else the row's (none with
            `learning_rate_fn` in `extra`).
        float32: names of hyperparameters to round to float32 first, as the
            optimizer holds them (`FLOAT32_ALL`, `FLOAT32_BETAS`).
        **extra: more oracle arguments (the extras' terms), over the row's.

    Returns:
        A `reference.ReferenceOptimizer`.
    """
    arguments = dict(case.oracle)
    if "learning_rate_fn" not in extra:
        arguments["learning_rate"] = case.learning_rate if learning_rate is None \
            else learning_rate
    arguments.update(extra)
    for name in float32:
        if arguments.get(name) is not None:
            arguments[name] = f32(arguments[name])
    return ReferenceOptimizer(case.optimizer, [tuple(s) for s in shapes], **arguments)


def check_against_oracle(optimizer, case, variables, steps, float32=(), learning_rate=None,
                         **oracle_extra):
    """`steps` random updates of ours and the oracle: variables and slots agree.

    Args:
        optimizer: ours, of row `case`, for `variables`.
        case: the `cases.Case` row.
        variables: the variables.
        steps: how many updates.
        float32: the oracle's float32 hyperparameters (`oracle_for`).
        learning_rate: the oracle's learning rate, else the row's.
        **oracle_extra: the oracle's terms of the optimizer's extra settings.

    Returns:
        The oracle.
    """
    oracle = oracle_for(case, [v.shape for v in variables], learning_rate, float32,
                        **oracle_extra)
    params = train_with_oracle(optimizer, variables, oracle, steps)
    for variable, expected in zip(variables, params):
        assert_close(variable, expected, what=variable.name)
    # Second moments do not cross zero: an absolute floor of 1e-9 at their scale.
    assert_slots_match(optimizer, variables, oracle, case, floors={"v": 1e-7, "vhat": 1e-7})
    return oracle


def random_gradients(rng, shapes):
    """float64 normal gradients of these shapes."""
    return [rng.normal(size=tuple(shape)) for shape in shapes]


def apply_gradients(optimizer, grads, variables):
    """One update through `apply_gradients`, which both flavours have."""
    optimizer.apply_gradients(zip(grads, variables))


def train_with_oracle(optimizer, variables, oracle, steps, seed=0):
    """`steps` updates with the same random gradients (float32 to ours) in both.

    Args:
        optimizer: ours.
        variables: its variables.
        oracle: the oracle, from `variables`' values.
        steps: how many updates.
        seed: the gradients' seed.

    Returns:
        The oracle's values after the updates.
    """
    params = [as_float64(v) for v in variables]
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        dense = random_gradients(rng, [p.shape for p in params])
        apply_gradients(optimizer, [g.astype("float32") for g in dense], variables)
        params = oracle.step(params, dense)
    return params


def slot_variables(optimizer, variables, name):
    """Our slot `name` (the oracle's name) of each variable, in either flavour."""
    if hasattr(optimizer, "get_slot"):
        return [optimizer.get_slot(v, KERAS2_SLOTS[name]) for v in variables]
    slots = getattr(optimizer, KERAS3_SLOTS[name])
    return [slots[optimizer._get_variable_index(v)] for v in variables]


def u_product(optimizer):
    """NadamW's momentum-schedule product, in either flavour."""
    if hasattr(optimizer, "_u_product"):
        return optimizer._u_product
    return optimizer._state_variables()["momentum_cache"]


def assert_slots_match(optimizer, variables, oracle, case, what="", floors=None):
    """Every slot of the row (`case.slots`) equals the oracle's (`assert_close`;
    `floors`: `{slot: floor}` where not the default)."""
    if hasattr(optimizer, "get_slot_names"):  # `anchor`: decay_to="init", any row
        assert sorted(set(optimizer.get_slot_names()) - {"anchor"}) == sorted(
            KERAS2_SLOTS[name] for name in case.slots), what
    for name in case.slots:
        for i, slot in enumerate(slot_variables(optimizer, variables, name)):
            assert_close(slot, getattr(oracle, name)[i], floor=(floors or {}).get(name, 1e-6),
                         what=f"{what} {name} of variable {i}")


def assert_state_matches(optimizer, oracle, case):
    """iterations, t_cur, eta_t, lr_t (and NadamW's u_product) equal the oracle's."""
    assert int(as_float64(optimizer.iterations)) == oracle.iterations
    assert int(as_float64(optimizer.t_cur)) == oracle.t_cur
    assert_close(optimizer.eta_t, oracle.eta_t, what="eta_t")
    assert_close(optimizer.lr_t, oracle.lr_t, what="lr_t")
    if case.optimizer == "nadamw":
        assert_close(u_product(optimizer), oracle.u_product, what="u_product")


def assert_matches_oracle(optimizer, variables, oracle, params, case, what=""):
    """Variables, slots and state of ours equal the oracle's (`params`: its values)."""
    for i, (variable, expected) in enumerate(zip(variables, params)):
        assert_close(variable, expected, what=f"{what} variable {i}")
    assert_slots_match(optimizer, variables, oracle, case, what)
    assert_state_matches(optimizer, oracle, case)


# ---- variables, data and models ---------------------------------------------------------


def make_variables(variable, shapes, dtype="float32", seed=0):
    """Normal values of `shapes` (`{name: shape}`) as `variable(value, dtype, name)`."""
    rng = np.random.default_rng(seed)
    return [variable(rng.normal(size=shape).astype(dtype), dtype=dtype, name=name)
            for name, shape in shapes.items()]


def make_gradients(shapes, steps, seed=1, sparse_columns=2):
    """Per step, float32 normal gradients of `shapes`, and values of `SPARSE_INDICES` rows.

    Returns:
        `(dense, sparse)`: `dense[step]` a list per variable, `sparse[step]` an
        array of `(len(SPARSE_INDICES), sparse_columns)`.
    """
    rng = np.random.default_rng(seed)
    dense = [[rng.normal(size=s).astype("float32") for s in shapes] for _ in range(steps)]
    sparse = [rng.normal(size=(len(SPARSE_INDICES), sparse_columns)).astype("float32")
              for _ in range(steps)]
    return dense, sparse


def indexed_slices(values, shape, dtype="float32"):
    """A `tf.IndexedSlices` of `values` at `SPARSE_INDICES` (repeated rows) of `shape`."""
    import tensorflow as tf

    return tf.IndexedSlices(tf.constant(values, dtype), tf.constant(SPARSE_INDICES),
                            tf.constant(shape, tf.int64))


def make_step(optimizer, variables, mode="eager"):
    """`step(grads)`: one `apply_gradients`, eager, in a `tf.function` or `jit_compile`.

    Args:
        optimizer: the optimizer.
        variables: the variables the gradients are for.
        mode: "eager", "function" or "jit".
    """
    def step(grads):
        apply_gradients(optimizer, grads, variables)

    if mode == "eager":
        return step
    import tensorflow as tf

    return tf.function(step, jit_compile=mode == "jit")


def fit_data(n=16, seed=0, features=4, outputs=2):
    """float32 normal `(x, y)` of `n` samples."""
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, features)).astype("float32"),
            rng.normal(size=(n, outputs)).astype("float32"))


def small_model(keras, seed=0, with_embedding=False):
    """Two named Dense layers (`dense_1`, tanh, then `dense_2`), optionally an Embedding.

    Args:
        keras: `keras` 3 or the Keras 2 package.
        seed: the initial weights' seed.
        with_embedding: int32 inputs of 5 through an `embedding` of 12 x 4.
    """
    keras.utils.set_random_seed(seed)
    if with_embedding:
        inputs = keras.Input((5,), dtype="int32")
        x = keras.layers.Embedding(12, 4, name="embedding")(inputs)
        x = keras.layers.Flatten()(x)
    else:
        inputs = keras.Input((4,))
        x = inputs
    x = keras.layers.Dense(6, activation="tanh", name="dense_1")(x)
    outputs = keras.layers.Dense(2, name="dense_2")(x)
    return keras.Model(inputs, outputs)


def dense_layers(keras):
    """`dense_1` (tanh, L2 1e-3 on the kernel) and `dense_2` (L1 1e-3): regularized."""
    return [keras.layers.Dense(5, activation="tanh", name="dense_1",
                               kernel_regularizer=keras.regularizers.l2(1e-3)),
            keras.layers.Dense(2, name="dense_2",
                               kernel_regularizer=keras.regularizers.l1(1e-3))]


def model_builders(keras):
    """`{kind: () -> model}` of the round trips: `sequential`, `functional`, `nested`."""
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


def layerwise_models(keras):
    """`{kind: (model, {layer name: multiplier})}`: what `layerwise_lr_decay_from_model`
    must give every trainable variable of each layer at `decay=0.5`, written from the
    depth rules of docs/pages/layerwise.md.

    - `nested`: a Functional model over a nested Sequential backbone, no blocks: one
      depth per layer, through the backbone;
    - `encoder`: a Functional encoder whose blocks are several layers each
      (`encoder_{i}_ffn`, `encoder_{i}_norm`): embeddings, block 0, block 1, head;
    - `stack_layer`: a custom layer holding `layer_0 ... layer_2` inside a
      Functional model: opened up, one depth per block;
    - `subclassed`: a subclassed model with a list of `block_{i}` and a head.
    """
    keras.utils.set_random_seed(0)
    dense = keras.layers.Dense

    def nested():
        backbone = keras.Sequential([keras.Input((4,)), dense(3, name="bottom"),
                                     dense(3, name="middle")], name="backbone")
        inputs = keras.Input((4,))
        return keras.Model(inputs, dense(1, name="top")(backbone(inputs)))

    def encoder():
        tokens = keras.Input((3,), dtype="int32")
        x = keras.layers.Embedding(10, 4, name="embeddings")(tokens)
        x = keras.layers.LayerNormalization(name="embeddings_norm")(x)
        for i in range(2):
            x = keras.layers.LayerNormalization(name=f"encoder_{i}_norm")(
                x + dense(4, name=f"encoder_{i}_ffn")(x))
        return keras.Model(tokens, dense(2, name="head")(keras.layers.Flatten()(x)))

    class Stack(keras.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.blocks = [dense(4, name=f"layer_{i}") for i in range(3)]

        def call(self, x):
            for block in self.blocks:
                x = block(x)
            return x

    def stack_layer():
        inputs = keras.Input((4,))
        x = Stack(name="stack")(dense(4, name="stem")(inputs))
        return keras.Model(inputs, dense(1, name="head")(x))

    class Subclassed(keras.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.embed = dense(4, name="embed")
            self.blocks = [dense(4, name=f"block_{i}") for i in range(2)]
            self.head = dense(1, name="head")

        def call(self, x):
            x = self.embed(x)
            for block in self.blocks:
                x = block(x)
            return self.head(x)

    def subclassed():
        model = Subclassed()
        model(np.zeros((1, 4), "float32"))
        return model

    return {
        "nested": (nested(), {"bottom": 0.25, "middle": 0.5, "top": 1.0}),
        "encoder": (encoder(), {"embeddings": 0.125, "embeddings_norm": 0.125,
                                "encoder_0_ffn": 0.25, "encoder_0_norm": 0.25,
                                "encoder_1_ffn": 0.5, "encoder_1_norm": 0.5, "head": 1.0}),
        "stack_layer": (stack_layer(), {"stem": 0.0625, "layer_0": 0.125, "layer_1": 0.25,
                                        "layer_2": 0.5, "head": 1.0}),
        "subclassed": (subclassed(), {"embed": 0.125, "block_0": 0.25, "block_1": 0.5,
                                      "head": 1.0}),
    }


def check_layerwise_depths(model, expected, rates, variable_path):
    """Every trainable variable of each expected layer has its multiplier in `rates`
    (`{exact-path regex: decay_rate}`), and `rates` has no other key."""
    layers = {layer.name: layer for layer in model._flatten_layers(include_self=False)}
    keys = set()
    for name, multiplier in expected.items():
        assert layers[name].trainable_variables, name
        for variable in layers[name].trainable_variables:
            key = f"^{re.escape(variable_path(variable))}$"
            assert round(1.0 - rates[key], 12) == multiplier, (name, key)
            keys.add(key)
    assert keys == set(rates)


def subclassed_model_class(keras, base_config=False):
    """A subclassed model of the two regularized Dense layers as attributes.

    Its config holds the penalties the layers have now, so the penalties that
    `model=` zeroed stay zero when `load_model` rebuilds it (a model that
    re-creates `l2(1e-3)` in `__init__` would apply the loss penalty again:
    docs/pages/matching.md).

    Args:
        keras: `keras` 3 or the Keras 2 package.
        base_config: whether the config holds `keras.Model`'s too (Keras 3).
    """
    class Subclassed(keras.Model):
        def __init__(self, l2=1e-3, l1=1e-3, **kwargs):
            super().__init__(**kwargs)
            self.dense_1 = keras.layers.Dense(5, activation="tanh", name="dense_1",
                                              kernel_regularizer=keras.regularizers.l2(l2))
            self.dense_2 = keras.layers.Dense(2, name="dense_2",
                                              kernel_regularizer=keras.regularizers.l1(l1))

        def call(self, inputs):
            return self.dense_2(self.dense_1(inputs))

        def get_config(self):
            base = super().get_config() if base_config else {}
            return {**base, "l2": float(self.dense_1.kernel_regularizer.l2),
                    "l1": float(self.dense_2.kernel_regularizer.l1)}

    return Subclassed


def built(model):
    """The model, called once on a batch of zeros of 4 features."""
    model(np.zeros((1, 4), "float32"))
    return model


ROUND_TRIP_BATCH = 4


def round_trip_data():
    """The round trips' 6 batches of `ROUND_TRIP_BATCH`."""
    return fit_data(6 * ROUND_TRIP_BATCH, seed=1)


def train_batches(model, batches, data=round_trip_data, batch_size=ROUND_TRIP_BATCH):
    """`train_on_batch` on the given batch numbers of `data()`."""
    x, y = data()
    for b in batches:
        model.train_on_batch(x[batch_size * b:batch_size * (b + 1)],
                             y[batch_size * b:batch_size * (b + 1)])


def assert_every_setting_applies(rules):
    """The rules `{layer/weight: rule}` of the round trips' optimizer (`lr_multipliers`
    {"dense_1": 0.5}, layer-wise decay 0.8, `model=` decays, `weight_decay` without
    biases) differ where the settings say: the round trips compare something."""
    assert rules["dense_1/kernel"].multiplier == pytest.approx(0.5 * 0.8)
    assert rules["dense_2/kernel"].multiplier == 1.0
    assert rules["dense_1/kernel"].l2 > 0 and rules["dense_2/kernel"].l1 > 0
    assert rules["dense_1/bias"].decay_lambda == 0 and rules["dense_2/kernel"].decay_lambda > 0


def crash_at(callback, epoch, batch):
    """A callback (subclass of `callback`) raising before `batch` of `epoch`: preemption."""
    class CrashAt(callback):
        def __init__(self):
            super().__init__()
            self.epoch = None

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_train_batch_begin(self, batch_now, logs=None):
            if (self.epoch, batch_now) == (epoch, batch):
                raise RuntimeError("simulated preemption")

    return CrashAt()


LOW_PRECISION_EPSILON = {"float16": 2.0 ** -10, "bfloat16": 2.0 ** -7}


def train_low_precision(case, module, variable, tensor, dtype, steps=8, float32=(),
                        configure=None):
    """`steps` updates of two variables of `dtype` (both decays, cosine restarts
    every 4) with gradients of magnitude 0.1 to 1, and of the oracle with the
    gradients as rounded to `dtype`.

    Args:
        case: the `cases.Case` row.
        module: where the optimizer classes are.
        variable: `(value, dtype, name) -> variable` of the flavour.
        tensor: `(value, dtype) -> tensor` of the flavour.
        dtype: "float16" or "bfloat16".
        steps: how many updates.
        float32: the oracle's float32 hyperparameters (`oracle_for`).
        configure: optional `optimizer -> None` before the first update.

    Returns:
        `(optimizer, oracle, variables, params)`, `params` the oracle's values.
    """
    shapes = [(6, 4), (4,)]
    rng = np.random.default_rng(0)
    variables = [variable(rng.normal(size=s), dtype=dtype, name=f"v{i}")
                 for i, s in enumerate(shapes)]
    params = [as_float64(v) for v in variables]
    decays = {"weight_decay": 0.1, "total_iterations": 4, "use_cosine_annealing": True}
    optimizer = case.make(module, learning_rate=0.05, weight_decays={"v0": (0, 0.02)},
                          **decays)
    if configure is not None:
        configure(optimizer)
    oracle = oracle_for(case, shapes, learning_rate=0.05, float32=float32,
                        l1_l2=[(0, 0.02), (0, 0)], **decays)
    for _ in range(steps):
        grads = [tensor(rng.choice([-1, 1], size=s) * rng.uniform(0.1, 1, size=s), dtype)
                 for s in shapes]
        apply_gradients(optimizer, grads, variables)
        params = oracle.step(params, [as_float64(g) for g in grads])
    return optimizer, oracle, variables, params


def assert_low_precision_close(variables, params, dtype):
    """Finite, and within 4 eps of `dtype` of the largest value of the oracle's."""
    for variable, expected in zip(variables, params):
        actual = as_float64(variable)
        assert np.all(np.isfinite(actual))
        # Measured: at most 2.3 eps of the largest value on every backend.
        np.testing.assert_allclose(actual, expected, rtol=0, atol=4 * LOW_PRECISION_EPSILON[
            dtype] * np.max(np.abs(expected)))


@contextlib.contextmanager
def policy_scope(set_policy, name):
    """`set_policy(name)` (a dtype policy) in the block, `float32` after it."""
    set_policy(name)
    try:
        yield
    finally:
        set_policy("float32")


def t_cur_trace(callback):
    """A callback (subclass of `callback`) listing the optimizer's t_cur after each
    batch in `.trace`."""
    class TCurTrace(callback):
        def __init__(self):
            super().__init__()
            self.trace = []

        def on_train_batch_end(self, batch, logs=None):
            self.trace.append(int(as_float64(self.model.optimizer.t_cur)))

    return TCurTrace()


# ---- monitoring -------------------------------------------------------------------------

WARMUP_VALUES = [(1e-2, [0.0, 2.5e-3, 5e-3, 7.5e-3, 1e-2, 1e-2]),
                 ("exponential", [0.0, 2.5e-3, 5e-3, 7.5e-3, 1e-2, 5e-3])]
WARMUP_BAD_ARGUMENTS = [({"schedule": -1.0, "warmup_steps": 2}, ValueError, "schedule"),
                        ({"schedule": 0.1, "warmup_steps": 1.5}, TypeError, "warmup_steps"),
                        ({"schedule": 0.1, "warmup_steps": 2, "initial": -1}, ValueError,
                         "initial")]
MONITOR_KEYS = {"lr", "lr_t", "eta_t", "t_cur", "eff_lr_mean/dense_1", "eff_lr_max/dense_1",
                "eff_lr_mean/dense_2", "eff_lr_max/dense_2"}


def check_warmup(warmup, keras, target, expected):
    """`WarmUp(target, 4)` gives `expected` (`target` "exponential": halving per step)."""
    if target == "exponential":
        target = keras.optimizers.schedules.ExponentialDecay(1e-2, 1, 0.5)
    values = [float(as_float64(warmup(target, warmup_steps=4)(step))) for step in range(6)]
    np.testing.assert_allclose(values, expected, rtol=1e-6)
    assert float(as_float64(warmup(target, 4, initial=1e-3)(2))) == pytest.approx(5.5e-3)
    assert float(as_float64(warmup(target, 0)(0))) == pytest.approx(1e-2)


def fit_and_check_monitor_logs(model, monitor, csv_logger, path):
    """Two epochs of 4 updates of a model compiled with AdamW(WarmUp(1e-2, 2), cosine
    cycle of 3), logged by `monitor` and `csv_logger(path)`: the logs.

    Returns:
        The `fit` history.
    """
    import csv

    x, y = fit_data()
    history = model.fit(x, y, batch_size=4, epochs=2, verbose=0,
                        callbacks=[monitor, csv_logger(str(path))])
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert MONITOR_KEYS <= set(history.history)
    assert history.history["t_cur"] == [1, 2]  # 4 then 8 updates, cycle of 3
    np.testing.assert_allclose(history.history["lr"], [1e-2, 1e-2], rtol=1e-6)
    np.testing.assert_allclose(history.history["eta_t"], [0.5, 0.0], atol=1e-6)
    assert monitor.history["iterations"] == list(range(1, 9))
    np.testing.assert_allclose(monitor.history["eta_t"], [0.5, 0, 1] * 2 + [0.5, 0],
                               atol=1e-6)
    assert len(rows) == 2 and MONITOR_KEYS <= set(rows[0])
    assert float(rows[1]["lr_t"]) == pytest.approx(history.history["lr_t"][1])
    for row in rows:
        assert float(row["eff_lr_max/dense_1"]) >= float(row["eff_lr_mean/dense_1"]) > 0
    return history


def check_epoch_frequency(keras, module, monitor_class):
    """`monitor_class(update_freq="epoch")` logs once per epoch; "step" is refused.

    Args:
        keras: `keras` 3 or the Keras 2 package.
        module: where the optimizer classes are.
        monitor_class: the flavour's `LearningRateMonitor`.
    """
    model = small_model(keras)
    model.compile(module.SGDW(learning_rate=0.01, init_verbose=False), loss="mse")
    monitor = monitor_class(update_freq="epoch")
    x, y = fit_data()
    model.fit(x, y, batch_size=4, epochs=2, verbose=0, callbacks=[monitor])
    assert monitor.history["iterations"] == [4, 8]
    with pytest.raises(ValueError, match="update_freq"):
        monitor_class(update_freq="step")


NEW_ARGUMENTS = {
    "layerwise_lr_decay": {"dense_1": 0.25, r"^dense_2/bias$": 1.0},
    "effective_lr_bounds": (1e-4, 0.05),
}


def check_new_arguments_survive_get_config(cls, warmup, learning_rate_of):
    """`layerwise_lr_decay`, `effective_lr_bounds` and a `WarmUp` learning rate of
    `cls` come back from its config.

    Args:
        cls: the optimizer class.
        warmup: the flavour's `WarmUp`.
        learning_rate_of: `optimizer -> its learning rate object`.
    """
    optimizer = cls(init_verbose=False, learning_rate=warmup(1e-3, 10, initial=1e-5),
                    **NEW_ARGUMENTS)
    optimizer.apply_layerwise_lr_decay(var_dict={"dense_2/kernel": 0.5})
    config = optimizer.get_config()
    restored = cls.from_config(config)
    assert restored.layerwise_lr_decay == {**NEW_ARGUMENTS["layerwise_lr_decay"],
                                           r"^dense_2/kernel$": 0.5}
    assert restored.effective_lr_bounds == NEW_ARGUMENTS["effective_lr_bounds"]
    assert restored.get_config() == config
    assert isinstance(learning_rate_of(restored), warmup)


# ---- subprocesses -----------------------------------------------------------------------


def subprocess_environment(*paths, **extra):
    """The environment of a test's subprocess: the repository, the tests and `paths`
    on PYTHONPATH, TensorFlow quiet, and `extra`."""
    path = os.pathsep.join([ROOT, TESTS, *paths])
    return {**os.environ, "PYTHONPATH": path, "TF_CPP_MIN_LOG_LEVEL": "3", **extra}


def parse_result(stdout, stderr):
    """The JSON after the last `RESULT` line of a subprocess's output."""
    lines = [line for line in stdout.splitlines() if line.startswith("RESULT")]
    assert lines, stderr[-4000:]
    return json.loads(lines[-1][len("RESULT"):])


def run_script(script, *args, env=None, timeout=300):
    """`python -c script args...` in the repository; its `RESULT`."""
    out = subprocess.run([sys.executable, "-c", script, *map(str, args)], cwd=ROOT,
                         capture_output=True, text=True, timeout=timeout, check=False,
                         env=subprocess_environment() if env is None else env)
    return parse_result(out.stdout, out.stderr)


def free_ports(count):
    """`count` free local TCP ports."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def mirrored_strategy_on_two_cpus():
    """`tf.distribute.MirroredStrategy` over two logical CPUs (set up first: in a
    subprocess, before TensorFlow starts)."""
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    if not tf.config.get_logical_device_configuration(cpu):  # once per process
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    return tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])


def run_workers(script, workdir, timeout, **env):
    """Two `MultiWorkerMirroredStrategy` workers of `script` on local ports; their results."""
    ports = free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    workers = []
    try:
        for index in range(2):
            config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
            workers.append(subprocess.Popen(
                [sys.executable, "-c", script, str(workdir)], cwd=ROOT,
                env=subprocess_environment(TF_CONFIG=config, **env), stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, text=True))
        return [parse_result(*worker.communicate(timeout=timeout)) for worker in workers]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
            worker.wait()


def mlp_gradients(params, x, y):
    """Gradients of `mean((tanh(x w1 + b1) w2 + b2 - y)^2)`, float64 numpy."""
    w1, b1, w2, b2 = params
    hidden = np.tanh(x @ w1 + b1)
    residual = 2.0 * (hidden @ w2 + b2 - y) / y.size
    d_hidden = (residual @ w2.T) * (1.0 - hidden ** 2)
    return [x.T @ d_hidden, d_hidden.sum(0), hidden.T @ residual, residual.sum(0)]


# The distributed tests' settings in the oracle's terms: dense_1/kernel, dense_1/bias,
# dense_2/kernel, dense_2/bias (lr_multipliers {"dense_1": 0.5}, (0, 0.1) on
# dense_2/kernel, weight_decay 0.05 without biases, cosine cycle of 4).
MLP_EXTRAS_ORACLE = {"multipliers": [0.5, 0.5, 1.0, 1.0],
                     "l1_l2": [(0, 0), (0, 0), (0, 0.1), (0, 0)], "weight_decay": 0.05,
                     "decay_mask": [True, False, True, False], "total_iterations": 4,
                     "use_cosine_annealing": True}


def mlp_oracle_run(case, initial, steps, batch, shape, float32=()):
    """The oracle of row `case` with `MLP_EXTRAS_ORACLE`, trained as the distributed
    tests' two-layer model on `fit_data`.

    Args:
        case: the `cases.Case` row.
        initial: the model's initial weights.
        steps: how many updates.
        batch: the global batch size.
        shape: `(features, outputs)` of the data.
        float32: the oracle's float32 hyperparameters (`oracle_for`).

    Returns:
        The oracle's parameters, the oracle, and its `t_cur` after each update.
    """
    features, outputs = shape
    oracle = oracle_for(case, [np.shape(p) for p in initial], float32=float32,
                        **MLP_EXTRAS_ORACLE)
    x, y = (a.astype(np.float64) for a in fit_data(steps * batch, 0, features, outputs))
    params = [np.array(p, np.float64) for p in initial]
    trace = []
    for step in range(steps):
        rows = slice(step * batch, (step + 1) * batch)
        params = oracle.step(params, mlp_gradients(params, x[rows], y[rows]))
        trace.append(oracle.t_cur)
    return params, oracle, trace


# ---- independent references (torch.optim, float64) --------------------------------------

@dataclasses.dataclass(frozen=True)
class Problem:
    """Noisy quadratic `0.5 |theta - target|^2`, gradients `theta - target + noise_k`."""

    init: tuple
    target: tuple
    noise: tuple  # per step, per variable

    def gradients(self, step, values):
        """The gradients of update `step` at `values`."""
        return [v - t + n for v, t, n in zip(values, self.target, self.noise[step])]


def make_problem(seed=0, steps=INDEPENDENT["steps"]):
    """A `Problem` of a (3, 4) `kernel` and a (4,) `bias`."""
    rng = np.random.default_rng(seed)
    shapes = ((3, 4), (4,))
    return Problem(tuple(rng.normal(size=s) for s in shapes),
                   tuple(rng.normal(size=s) for s in shapes),
                   tuple(tuple(0.3 * rng.normal(size=s) for s in shapes)
                         for _ in range(steps)))


def flat(values):
    """One float64 vector of all the values."""
    return np.concatenate([np.ravel(as_float64(v)) for v in values])


@contextlib.contextmanager
def torch_float64():
    """Float64 scalar state too (NAdam's `mu_product` follows the default dtype)."""
    import torch

    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def run_torch(make_optimizer, problem, before_step=None, scale_gradients=None):
    """Trajectory (steps x elements) of a `torch.optim` optimizer (float64) on `problem`.

    Args:
        make_optimizer: `[kernel, bias] -> torch.optim.Optimizer`.
        problem: the `Problem`.
        before_step: optional `(optimizer, step) -> None`, e.g. sets lr or eps.
        scale_gradients: optional `step -> factor` multiplying the gradients.
    """
    import torch

    with torch_float64():
        params = [torch.tensor(x, requires_grad=True) for x in problem.init]
        optimizer = make_optimizer(params)
        trajectory = []
        for step in range(len(problem.noise)):
            grads = problem.gradients(step, [p.detach().numpy() for p in params])
            factor = 1.0 if scale_gradients is None else scale_gradients(step)
            for p, g in zip(params, grads):
                p.grad = torch.tensor(g * factor)
            if before_step is not None:
                before_step(optimizer, step)
            optimizer.step()
            trajectory.append(flat(p.detach() for p in params))
    return np.stack(trajectory)


def run_ours(optimizer, problem, variable, step=None):
    """Trajectory of our optimizer on `problem`, each step's gradients from its values.

    Args:
        optimizer: ours.
        problem: the `Problem`.
        variable: `(value, name) -> variable` of the flavour and dtype.
        step: `(grads, variables) -> None` applying float64 numpy gradients;
            by default `apply_gradients`.
    """
    variables = [variable(x, name) for x, name in zip(problem.init, ("kernel", "bias"))]
    trajectory = []
    for k in range(len(problem.noise)):
        grads = problem.gradients(k, [as_float64(v) for v in variables])
        if step is None:
            apply_gradients(optimizer, grads, variables)
        else:
            step(grads, variables)
        trajectory.append(flat(variables))
    return np.stack(trajectory)


def eta(step):
    """The cosine multiplier of independent update `step` (0-based), restarting."""
    cycle, eta_min = INDEPENDENT["cycle"], INDEPENDENT["eta_min"]
    return cosine_eta(step % cycle, cycle, eta_min, 1.0)


def torch_references(beta_1=0.9, beta_2=0.999, momentum=0.9):
    """`{name: problem -> trajectory}`: the torch references of `cases.INDEPENDENT`
    with these betas and momentum (as our optimizer holds them).

    The conventions (docstring of tests/keras3/test_independent_references.py):
    torch's epsilon is `eps / sqrt(1 - b2^t)`, set before every step; cosine
    annealing is torch's lr `lr eta_t`; the paper decay `(0, l2)` of `kernel` is
    torch's `weight_decay = l2 sqrt(1/T) / lr` on its group; Keras momentum under
    a changing lr is torch `SGD(lr=1)` fed `eta_t lr g`.
    """
    import torch

    lr, eps, wd = INDEPENDENT["learning_rate"], INDEPENDENT["epsilon"], INDEPENDENT["weight_decay"]
    adam = {"betas": (beta_1, beta_2), "eps": eps, "foreach": False}

    def keras_epsilon(optimizer, step):
        for group in optimizer.param_groups:
            group["eps"] = eps / math.sqrt(1.0 - beta_2 ** (step + 1))

    def annealed_lr(optimizer, step):
        for group in optimizer.param_groups:
            group["lr"] = lr * eta(step)

    def annealed_keras_epsilon(optimizer, step):
        keras_epsilon(optimizer, step)
        annealed_lr(optimizer, step)

    def adamw(problem, amsgrad=False, hook=keras_epsilon):
        return run_torch(lambda p: torch.optim.AdamW(
            p, lr=lr, weight_decay=wd, amsgrad=amsgrad, **adam), problem, hook)

    def adamw_paper_decay(problem):
        kernel_decay = INDEPENDENT["l2"] * math.sqrt(1.0 / len(problem.noise)) / lr
        return run_torch(lambda p: torch.optim.AdamW(
            [{"params": [p[0]], "weight_decay": kernel_decay},
             {"params": [p[1]], "weight_decay": 0.0}], lr=lr, **adam),
            problem, keras_epsilon)

    def nadam(problem, hook=None):
        return run_torch(lambda p: torch.optim.NAdam(
            p, lr=lr, weight_decay=wd, momentum_decay=4e-3, decoupled_weight_decay=True,
            **adam), problem, hook)

    def sgd(problem, momentum_=momentum, nesterov=False, weight_decay=0.0, hook=None):
        return run_torch(lambda p: torch.optim.SGD(
            p, lr=5 * lr, momentum=momentum_, nesterov=nesterov, weight_decay=weight_decay,
            foreach=False), problem, hook)

    def sgd_keras_momentum(problem, nesterov=False):
        return run_torch(lambda p: torch.optim.SGD(
            p, lr=1.0, momentum=momentum, nesterov=nesterov, foreach=False), problem,
            scale_gradients=lambda step: 5 * lr * eta(step))

    def sgd_annealed_lr(optimizer, step):
        optimizer.param_groups[0].update(lr=5 * lr * eta(step))

    return {
        "torch.AdamW": adamw,
        "torch.AdamW(amsgrad)": lambda p: adamw(p, amsgrad=True),
        "torch.AdamW(lr*eta_t)": lambda p: adamw(p, hook=annealed_keras_epsilon),
        "torch.AdamW(l2*sqrt(1/T)/lr)": adamw_paper_decay,
        "torch.AdamW(constant eps)": lambda p: adamw(p, hook=None),
        "torch.NAdam": nadam,
        "torch.NAdam(lr*eta_t)": lambda p: nadam(p, hook=annealed_lr),
        "torch.SGD": sgd,
        "torch.SGD(nesterov)": lambda p: sgd(p, nesterov=True),
        "torch.SGD(weight_decay)": lambda p: sgd(p, momentum_=0.0, weight_decay=wd),
        "torch.SGD(lr*eta_t)": lambda p: sgd(p, hook=sgd_annealed_lr),
        "torch.SGD(lr=1, eta_t*lr*g)": sgd_keras_momentum,
        "torch.SGD(lr=1, eta_t*lr*g, nesterov)": lambda p: sgd_keras_momentum(
            p, nesterov=True),
    }


# ---- effective learning rate --------------------------------------------------------------

EFFECTIVE_LR_STEPS = 8
EFFECTIVE_LR_MULTIPLIERS = [1.0, 1.0, 0.5, 0.5]  # lr_multipliers={"dense_2": 0.5}


def check_effective_lr(case, bounds, module, variables, float32=()):
    """The row's optimizer with `effective_lr_bounds=bounds`, a multiplier and a Keras
    decay: variables, slots and per-element effective learning rates equal the oracle's.

    Args:
        case: the `cases.Case` row.
        bounds: `effective_lr_bounds`.
        module: where the optimizer classes are.
        variables: `small_model`'s trainable variables.
        float32: the oracle's float32 hyperparameters (`oracle_for`).
    """
    optimizer = case.make(module, effective_lr_bounds=bounds, lr_multipliers={"dense_2": 0.5},
                          weight_decay=0.1)
    oracle = oracle_for(case, [v.shape for v in variables], float32=float32,
                        multipliers=EFFECTIVE_LR_MULTIPLIERS, weight_decay=0.1,
                        effective_lr_bounds=bounds)
    params = train_with_oracle(optimizer, variables, oracle, EFFECTIVE_LR_STEPS)
    for i, (variable, expected) in enumerate(zip(variables, params)):
        assert_close(variable, expected, what=variable.name)
        rate = as_float64(optimizer.effective_learning_rate(variable))
        assert rate.shape == tuple(variable.shape)
        assert_close(rate, oracle.effective_learning_rate(i, EFFECTIVE_LR_MULTIPLIERS[i]),
                     rtol=2e-5, floor=0.0, what=f"effective lr of {variable.name}")
    assert_slots_match(optimizer, variables, oracle, case)


def assert_bounds_active(optimizer, variables):
    """Unbounded rates of `check_effective_lr`'s setup cross both bounds of
    `cases.BOUNDS` (so clipping is tested)."""
    from cases import BOUNDS, upper_bound

    rng = np.random.default_rng(0)
    for _ in range(EFFECTIVE_LR_STEPS):
        apply_gradients(optimizer, [rng.normal(size=v.shape).astype("float32")
                                    for v in variables], variables)
    rates = np.concatenate([np.ravel(as_float64(optimizer.effective_learning_rate(v)))
                            for v in variables])
    lower, upper = BOUNDS["both"]
    assert rates.min() < lower and rates.max() > upper
    assert rates.max() > upper_bound(EFFECTIVE_LR_STEPS - 1)


# ---- which kernel path each update takes -------------------------------------

def _recording(calls, function, name):
    def wrapper(update, *args):
        calls[name].append((update.kind, tuple(update.grad.shape)))
        return function(update, *args)
    return wrapper


def spy_tf_paths(monkeypatch):
    """`{path: [(kind, gradient shape), ...]}` of every TensorFlow kernel update
    from now on (both flavours; tf_keras's own fused ops are not kernels)."""
    from keras_adamw.kernels import tf_paths

    calls = collections.defaultdict(list)
    for name, function in list(tf_paths.KERNELS.items()):
        monkeypatch.setitem(tf_paths.KERNELS, name, _recording(calls, function, name))
    return calls


def spy_jax_calls(monkeypatch):
    """`[(kind, gradient shape), ...]` of every update the JAX custom calls take."""
    from keras_adamw.kernels import jax_calls

    calls = collections.defaultdict(list)
    original = jax_calls.apply
    monkeypatch.setattr(jax_calls, "apply", lambda optimizer, update: _recording(
        calls, lambda u: original(optimizer, u), "jax_call")(update))
    return calls["jax_call"]


def assert_missing_compiler_warns(monkeypatch, tmp_path, library, framework):
    """Without a compiler, building `library` (a cached `library()` of
    `keras_adamw.kernels`) warns once, naming the fix, and leaves nothing behind."""
    from keras_adamw.kernels import build as native_build

    monkeypatch.setenv(native_build.CACHE_DIR, str(tmp_path))
    monkeypatch.setenv("CXX", "/nonexistent/c++")
    with pytest.warns(RuntimeWarning, match=rf"native {framework} kernels are not "
                                            rf"available.*Install a C\+\+ compiler"):
        assert library.__wrapped__() is None  # the cached library stays
    assert list(tmp_path.iterdir()) == []
