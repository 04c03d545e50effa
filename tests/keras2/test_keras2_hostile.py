"""keras2 (tf_keras) optimizers on hostile and odd input (issue 6, item 5).

What each case does (the same as tf_keras's own optimizers unless said):

- NaN/Inf gradients are applied, not skipped: the entries they touch become NaN
  (Adam, Nadam) or -/+inf (SGD; NaN once decayed), exactly where tf_keras's legacy
  `Adam`/`Nadam`/`SGD` (no decay) and its `AdamW`/`SGD(weight_decay=...)` (decay)
  put them, with the same finite values elsewhere and non-finite slots in the same
  places; `iterations` and `t_cur` advance.
- A None gradient skips that variable (no update, no decay, slots untouched);
  `t_cur` advances once. All None: tf_keras's ValueError, state untouched.
- A frozen layer (`trainable=False`, also after training and recompiling) is
  neither updated nor decayed; a `weight_decays` key naming it matches nothing.
- A variable first seen after the first step: tf_keras creates its slots then,
  and so do we, resolving its multiplier and decay at that moment (unlike Keras 3,
  which refuses it); it trains as the oracle with None gradients before.
- An integer, boolean or complex variable: TypeError naming it and its dtype
  before any slot or state variable exists (tf_keras's Adam fails inside `Sqrt`).
- No variables: a no-op (`apply_gradients([])`, a model without weights).
- A second slot creation (`_create_all_weights`, which `apply_gradients` runs
  every step): slots, `t_cur` and `eta_t` unchanged.
"""
import numpy as np
import pytest
import tensorflow as tf
from cases import CASES, EACH_OPTIMIZER, case_id, rows
from helpers import FLOAT32_ALL, oracle_for

from keras_adamw import keras2
from keras_adamw.keras2 import SGDW, AdamW, NadamW
from keras_adamw.keras2.framework import (
    keras2 as tf_keras,  # tf_keras, or keras 2.x on TF < 2.16
)

WD = 0.1
get = tf_keras.backend.get_value


def state(optimizer):
    return (int(get(optimizer.iterations)), int(get(optimizer.t_cur)),
            float(get(optimizer.eta_t)))


def apply(optimizer, grads, variables):
    optimizer.apply_gradients([(None if g is None else tf.constant(g, v.dtype), v)
                               for g, v in zip(grads, variables)])


# ---- NaN / Inf gradients ------------------------------------------------------------

NON_FINITE_PAIRS = {  # ours, tf_keras's own, slot names to compare (legacy only)
    "adamw": (lambda: AdamW(), lambda: tf_keras.optimizers.legacy.Adam(), ("m", "v")),
    "nadamw": (lambda: NadamW(), lambda: tf_keras.optimizers.legacy.Nadam(), ("m", "v")),
    "sgdw_momentum": (lambda: SGDW(momentum=0.9),
                      lambda: tf_keras.optimizers.legacy.SGD(momentum=0.9), ("momentum",)),
    "adamw_decay": (lambda: AdamW(weight_decay=WD),
                    lambda: tf_keras.optimizers.AdamW(weight_decay=WD), ()),
    "sgdw_momentum_decay": (lambda: SGDW(momentum=0.9, weight_decay=WD),
                            lambda: tf_keras.optimizers.SGD(momentum=0.9, weight_decay=WD),
                            ()),
}
NON_FINITE_STEP = np.array([np.nan, np.inf, -np.inf, 0.5, -0.25, 1.0])


@pytest.mark.parametrize("name", sorted(NON_FINITE_PAIRS))
def test_non_finite_gradients_give_tf_keras_pattern(name):
    make_ours, make_theirs, slot_names = NON_FINITE_PAIRS[name]
    rng = np.random.default_rng(0)
    init = rng.normal(size=6).astype("float32")
    steps = [rng.normal(size=6), NON_FINITE_STEP, rng.normal(size=6), rng.normal(size=6)]
    histories = []
    for optimizer in (make_ours(), make_theirs()):
        variable = tf.Variable(init, name="theta")
        history = []
        for gradient in steps:
            apply(optimizer, [gradient], [variable])
            history.append((variable.numpy().copy(), [
                optimizer.get_slot(variable, n).numpy().copy() for n in slot_names]))
        histories.append(history)
    for step, ((theta, slots), (expected, expected_slots)) in enumerate(zip(*histories)):
        for test in (np.isnan, np.isposinf, np.isneginf):
            np.testing.assert_array_equal(test(theta), test(expected), f"step {step}")
        finite = np.isfinite(expected)
        np.testing.assert_allclose(theta[finite], expected[finite], rtol=1e-5)
        for slot, expected_slot in zip(slots, expected_slots):
            np.testing.assert_array_equal(np.isfinite(slot), np.isfinite(expected_slot))
    assert not np.isfinite(histories[0][1][0][:3]).any()
    assert np.isfinite(histories[0][-1][0][3:]).all()


@pytest.mark.parametrize("cls", [AdamW, SGDW])
def test_non_finite_step_advances_t_cur(cls):
    optimizer = cls(use_cosine_annealing=True, total_iterations=4)
    variable = tf.Variable(np.ones(6, "float32"))
    for gradient in (np.ones(6), NON_FINITE_STEP, np.ones(6)):
        apply(optimizer, [gradient], [variable])
    assert state(optimizer)[:2] == (3, 3)


# ---- None gradients -----------------------------------------------------------------

COMMON = {"learning_rate": 0.05, "use_cosine_annealing": True, "total_iterations": 4}


@pytest.mark.parametrize("case", rows(*EACH_OPTIMIZER), ids=case_id)
def test_none_gradient_skips_the_variable_and_advances_once(case):
    optimizer = case.make(keras2, weight_decay=WD, **COMMON)
    oracle = oracle_for(case, [(3,), (2,)], float32=FLOAT32_ALL, weight_decay=WD, **COMMON)
    rng = np.random.default_rng(0)
    variables = [tf.Variable(rng.normal(size=3).astype("float32"), name="a"),
                 tf.Variable(rng.normal(size=2).astype("float32"), name="b")]
    b_init = variables[1].numpy().copy()
    params = [v.numpy().astype(np.float64) for v in variables]
    for step in range(6):
        grads = [rng.normal(size=3), None if step < 3 else rng.normal(size=2)]
        apply(optimizer, grads, variables)
        if step < 3:
            np.testing.assert_array_equal(variables[1].numpy(), b_init)
        params = oracle.step(params, grads)
        for variable, expected in zip(variables, params):
            np.testing.assert_allclose(variable.numpy(), expected, rtol=1e-5, atol=1e-7)
        assert state(optimizer)[:2] == (step + 1, oracle.t_cur)
        np.testing.assert_allclose(state(optimizer)[2], oracle.eta_t, rtol=1e-6)


def test_all_none_gradients_raise_and_leave_state_untouched():
    optimizer = AdamW(use_cosine_annealing=True, total_iterations=4, weight_decay=WD)
    variable = tf.Variable(np.ones(2, "float32"), name="a")
    apply(optimizer, [[1.0, 2.0]], [variable])
    before = state(optimizer), variable.numpy().tolist()
    with pytest.raises(ValueError, match="No gradients provided for any variable"):
        apply(optimizer, [None], [variable])
    assert (state(optimizer), variable.numpy().tolist()) == before


# ---- frozen layers ------------------------------------------------------------------


def model_and_data():
    tf_keras.utils.set_random_seed(0)
    model = tf_keras.Sequential([tf_keras.layers.Dense(4, name="d1", input_shape=(3,)),
                                 tf_keras.layers.Dense(2, name="d2")])
    rng = np.random.default_rng(0)
    return model, rng.normal(size=(16, 3)), rng.normal(size=(16, 2))


def test_frozen_layer_is_neither_updated_nor_decayed():
    model, x, y = model_and_data()
    model.get_layer("d1").trainable = False
    frozen = [w.copy() for w in model.get_layer("d1").get_weights()]
    optimizer = AdamW(weight_decay=WD, total_iterations=8, init_verbose=False,
                      weight_decays={"d1/kernel": (0.0, 0.5)})
    model.compile(optimizer, loss="mse")
    with pytest.warns(UserWarning, match="'d1/kernel' matches no variable"):
        model.fit(x, y, batch_size=4, epochs=2, verbose=0)
    for before, after in zip(frozen, model.get_layer("d1").get_weights()):
        np.testing.assert_array_equal(after, before)
    assert state(optimizer)[:2] == (8, 8)

    # Freeze the other layer after training: recompiled, it is left alone too.
    model.get_layer("d1").trainable = True
    model.get_layer("d2").trainable = False
    frozen = [w.copy() for w in model.get_layer("d2").get_weights()]
    model.compile(optimizer, loss="mse")
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    for before, after in zip(frozen, model.get_layer("d2").get_weights()):
        np.testing.assert_array_equal(after, before)
    assert state(optimizer)[:2] == (12, 12)


# ---- variables first seen late, or that cannot be updated ------------------------------


def test_variable_first_seen_after_the_first_step_gets_its_settings():
    options = {"learning_rate": 0.05, "total_iterations": 10, "use_cosine_annealing": True}
    optimizer = AdamW(**options, lr_multipliers={"late": 2.0}, init_verbose=False,
                      weight_decays={"late/kernel": (0.0, 0.3)})
    oracle = oracle_for(CASES["adamw"], [(3,), (2,)], float32=FLOAT32_ALL, **options,
                        multipliers=[1.0, 2.0], l1_l2=[(0.0, 0.0), (0.0, 0.3)])
    rng = np.random.default_rng(0)
    early = tf.Variable(rng.normal(size=3).astype("float32"), name="early/kernel")
    late = tf.Variable(rng.normal(size=2).astype("float32"), name="late/kernel")
    params = [v.numpy().astype(np.float64) for v in (early, late)]
    for step in range(5):
        grads = [rng.normal(size=3), None if step < 2 else rng.normal(size=2)]
        if step == 0:
            with pytest.warns(UserWarning) as caught:
                apply(optimizer, grads[:1], [early])
            messages = " ".join(str(w.message) for w in caught)
            for key in ("'late'", "'late/kernel'"):  # reported, then used once seen
                assert f"key {key} matches no variable" in messages
        else:
            apply(optimizer, *zip(*[(g, v) for g, v in zip(grads, (early, late))
                                    if g is not None]))
        params = oracle.step(params, grads)
    for variable, expected in zip((early, late), params):
        np.testing.assert_allclose(variable.numpy(), expected, rtol=1e-5, atol=1e-7)
    assert state(optimizer)[:2] == (5, 5)


@pytest.mark.parametrize("dtype", ["int32", "bool", "complex64"])
@pytest.mark.parametrize("cls", [AdamW, NadamW, SGDW])
def test_non_float_variable_refused_by_name(cls, dtype):
    optimizer = cls(weight_decay=WD)
    kernel = tf.Variable(np.ones(2, "float32"), name="kernel")
    counter = tf.Variable(np.zeros(2, dtype), name="step_count")
    message = (f"Argument `var_list` must contain floating-point variables only .*"
               f"Received: var_list\\[1\\]='step_count' of dtype {dtype}")
    with pytest.raises(TypeError, match=message):
        apply(optimizer, [[1.0, 1.0], np.ones(2, dtype)], [kernel, counter])
    assert optimizer.weights == []  # no slot, no state variable
    apply(optimizer, [[1.0, 1.0]], [kernel])  # still usable
    assert state(optimizer)[:2] == (1, 1)


# ---- nothing to update, a second slot creation ---------------------------------------


def test_no_variables_is_a_noop():
    optimizer = AdamW(use_cosine_annealing=True, total_iterations=4)
    optimizer.apply_gradients([])
    assert state(optimizer) == (0, 0, 1.0)
    model = tf_keras.Sequential([tf_keras.layers.Lambda(lambda x: 2.0 * x,
                                                        input_shape=(3,))])
    model.compile(optimizer, loss="mse")
    x = np.ones((8, 3))
    model.fit(x, 2.0 * x, batch_size=4, epochs=1, verbose=0)
    assert state(optimizer) == (0, 0, 1.0)


def test_second_slot_creation_changes_nothing():
    optimizer = AdamW(use_cosine_annealing=True, total_iterations=3, weight_decay=WD,
                      learning_rate=0.1)
    variables = [tf.Variable(np.full(3, 0.5, "float32"), name="a"),
                 tf.Variable(np.full(2, -0.5, "float32"), name="b")]
    rng = np.random.default_rng(0)
    for _ in range(2):
        apply(optimizer, [rng.normal(size=v.shape) for v in variables], variables)
    before = [w.copy() for w in optimizer.get_weights()]
    optimizer._create_all_weights(variables)
    optimizer._create_all_weights(variables[:1])
    after = optimizer.get_weights()
    assert len(after) == len(before)
    for old, new in zip(before, after):
        np.testing.assert_array_equal(new, old)
