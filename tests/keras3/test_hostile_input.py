"""Keras 3 optimizers on hostile and odd input (issue 6, item 5), on this backend.

What each case does, and why (the same as Keras's own optimizers unless said):

- NaN/Inf gradients are applied, not skipped (skipping an overflowing step is
  `LossScaleOptimizer`'s job): the entries they touch become NaN (Adam, Nadam:
  `inf / inf`) or -/+inf (SGD), where Keras's `AdamW`, `Nadam` and `SGD` with the
  same `weight_decay` put them, and NaN wherever Keras's are NaN; the other
  entries are unaffected. One difference: the decay of an infinite entry is
  `inf - c inf = NaN` in ours and in Keras on TensorFlow and JAX, while Keras's
  torch optimizers multiply by `1 - c` and keep the inf. The slots are non-finite
  in the same places, though one may hold inf where Keras's holds NaN (`b1 m +
  (1-b1) g` vs Keras's `m + (g - m)(1-b1)`). `iterations` and `t_cur` advance: an
  update was applied.
- A None gradient skips that variable (no update, no decay, slots untouched) with
  Keras's warning; `t_cur` advances once. All None: Keras's ValueError, state
  untouched.
- A frozen layer (`trainable=False` before compile) is neither updated nor
  decayed, and a `weight_decays` key naming it is reported as matching nothing.
  Freezing after the optimizer was built and recompiling behaves as Keras's Adam
  does: TensorFlow and torch leave the layer untouched, JAX's stateless trainer
  refuses the shorter variable list with Keras's ValueError.
- A variable the optimizer was not built with: Keras's ValueError naming it
  ("Unknown variable: <Variable path=...>"), nothing updated.
- An integer, boolean or complex variable: TypeError naming it and its dtype,
  before any state is created (Keras's Adam fails inside a TensorFlow kernel, or
  silently leaves the variable unchanged on JAX).
- No variables at all (an empty model): a harmless no-op as in Keras; no update is
  applied, so `iterations` and `t_cur` stay 0.
- A second `build`: ignored, as Keras's Adam ignores it; slots, `t_cur`, `eta_t`
  unchanged and the run continues exactly as without it.
"""
import re
import warnings

import keras
import numpy as np
import pytest
from cases import EACH_OPTIMIZER, case_id, rows
from helpers import fit_data, oracle_for, small_model
from keras3_helpers import BACKEND, float32_terms, numpy_values

import keras_adamw
from keras_adamw.utils import K_eval

WD = 0.1


def tensor(values, dtype="float32"):
    return keras.ops.convert_to_tensor(np.asarray(values, dtype), dtype)


def state(optimizer):
    """iterations, t_cur, eta_t as Python numbers."""
    return (int(K_eval(optimizer.iterations)), int(K_eval(optimizer.t_cur)),
            float(K_eval(optimizer.eta_t)))


def slot_lists(optimizer):
    if isinstance(optimizer, keras.optimizers.SGD):
        return [optimizer.momentums] if optimizer.momentum else []
    return [optimizer._momentums, optimizer._velocities]


# ---- NaN / Inf gradients ------------------------------------------------------------

# ours, Keras's own with the same arguments
NON_FINITE_PAIRS = {
    "adamw": (lambda: keras_adamw.AdamW(weight_decay=WD),
              lambda: keras.optimizers.AdamW(weight_decay=WD)),
    "nadamw": (lambda: keras_adamw.NadamW(weight_decay=WD, schedule_decay=1.0),
               lambda: keras.optimizers.Nadam(weight_decay=WD)),
    "sgdw_momentum": (lambda: keras_adamw.SGDW(momentum=0.9, weight_decay=WD),
                      lambda: keras.optimizers.SGD(momentum=0.9, weight_decay=WD)),
    "sgdw": (lambda: keras_adamw.SGDW(), lambda: keras.optimizers.SGD()),
}
NON_FINITE_STEP = np.array([np.nan, np.inf, -np.inf, 0.5, -0.25, 1.0])


@pytest.mark.parametrize("name", sorted(NON_FINITE_PAIRS))
def test_non_finite_gradients_give_keras_pattern(name):
    make_ours, make_keras = NON_FINITE_PAIRS[name]
    rng = np.random.default_rng(0)
    init = rng.normal(size=6)
    steps = [rng.normal(size=6), NON_FINITE_STEP, rng.normal(size=6), rng.normal(size=6)]
    runs = []
    for optimizer in (make_ours(), make_keras()):
        variable = keras.Variable(init, dtype="float32", name="theta")
        history = []
        for gradient in steps:
            optimizer.apply([tensor(gradient)], [variable])
            history.append((K_eval(variable).copy(),
                            [K_eval(s[0]).copy() for s in slot_lists(optimizer)]))
        runs.append((optimizer, history))
    (ours, our_history), (_, keras_history) = runs
    for step, ((theta, slots), (expected, expected_slots)) in enumerate(
            zip(our_history, keras_history)):
        finite = np.isfinite(expected)
        np.testing.assert_array_equal(np.isfinite(theta), finite, f"step {step}")
        assert np.isnan(theta[np.isnan(expected)]).all(), f"step {step}"
        np.testing.assert_allclose(theta[finite], expected[finite], rtol=1e-5)
        for slot, expected_slot in zip(slots, expected_slots):
            np.testing.assert_array_equal(np.isfinite(slot), np.isfinite(expected_slot))
    assert not np.isfinite(our_history[1][0][:3]).any()  # the hit entries
    assert np.isfinite(our_history[-1][0][3:]).all()  # the others stay finite
    assert state(ours)[:2] == (len(steps), len(steps))


# ---- None gradients -----------------------------------------------------------------

@pytest.mark.parametrize("case", rows(*EACH_OPTIMIZER), ids=case_id)
def test_none_gradient_skips_the_variable_and_advances_once(case):
    """b has no gradient for 3 steps: untouched, undecayed; then both train as the oracle."""
    schedule = {"use_cosine_annealing": True, "total_iterations": 4, "weight_decay": WD}
    optimizer = case.make(keras_adamw, learning_rate=0.05, **schedule)
    oracle = oracle_for(case, [(3,), (2,)], learning_rate=0.05, float32=float32_terms(case),
                        **schedule)
    rng = np.random.default_rng(0)
    a = keras.Variable(rng.normal(size=3), dtype="float32", name="a")
    b = keras.Variable(rng.normal(size=2), dtype="float32", name="b")
    b_init = K_eval(b).copy()
    params = numpy_values([a, b])
    for step in range(6):
        grads = [rng.normal(size=3), None if step < 3 else rng.normal(size=2)]
        if grads[1] is None:
            with pytest.warns(UserWarning, match=re.escape("Gradients do not exist for "
                                                           "variables ['b']")):
                optimizer.apply([tensor(grads[0]), None], [a, b])
            np.testing.assert_array_equal(K_eval(b), b_init)  # not even decayed
        else:
            optimizer.apply([tensor(g) for g in grads], [a, b])
        params = oracle.step(params, grads)
        np.testing.assert_allclose(numpy_values([a, b])[0], params[0], rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(numpy_values([a, b])[1], params[1], rtol=1e-5, atol=1e-7)
        assert state(optimizer)[:2] == (step + 1, oracle.t_cur), f"step {step}"
        np.testing.assert_allclose(state(optimizer)[2], oracle.eta_t, rtol=1e-6)


def test_all_none_gradients_raise_and_leave_state_untouched():
    optimizer = keras_adamw.AdamW(use_cosine_annealing=True, total_iterations=4,
                                  weight_decay=WD)
    variable = keras.Variable(np.ones(2), dtype="float32", name="a")
    optimizer.apply([tensor([1.0, 2.0])], [variable])
    before = state(optimizer), K_eval(variable).copy()
    with pytest.raises(ValueError, match="No gradients provided for any variable"):
        optimizer.apply([None], [variable])
    assert (state(optimizer), K_eval(variable).tolist()) == (before[0], before[1].tolist())


# ---- frozen layers ------------------------------------------------------------------


def test_frozen_layer_is_neither_updated_nor_decayed():
    model = small_model(keras)
    model.get_layer("dense_1").trainable = False
    frozen = numpy_values(model.get_layer("dense_1").weights)
    trained = numpy_values(model.get_layer("dense_2").weights)
    optimizer = keras_adamw.AdamW(weight_decay=WD, total_iterations=8, init_verbose=False,
                                  weight_decays={"dense_1/kernel": (0.0, 0.5)})
    model.compile(optimizer, loss="mse")
    with pytest.warns(UserWarning, match="'dense_1/kernel' matches no variable"):
        model.fit(*fit_data(16), batch_size=4, epochs=2, verbose=0)
    for before, after in zip(frozen, numpy_values(model.get_layer("dense_1").weights)):
        np.testing.assert_array_equal(after, before)
    for before, after in zip(trained, numpy_values(model.get_layer("dense_2").weights)):
        assert not np.allclose(after, before)
    assert state(optimizer)[:2] == (8, 8)


def freeze_after_build(make_optimizer):
    """Trains, freezes dense_2, recompiles, trains: (frozen before, after) or the error."""
    model = small_model(keras)
    optimizer = make_optimizer()
    model.compile(optimizer, loss="mse")
    model.fit(*fit_data(16), batch_size=4, epochs=1, verbose=0)
    model.get_layer("dense_2").trainable = False
    frozen = numpy_values(model.get_layer("dense_2").weights)
    model.compile(optimizer, loss="mse")
    try:
        model.fit(*fit_data(16, seed=1), batch_size=4, epochs=1, verbose=0)
    except ValueError as error:
        return optimizer, str(error)
    return optimizer, (frozen, numpy_values(model.get_layer("dense_2").weights))


def test_freezing_after_build_behaves_as_keras_adam():
    _, keras_outcome = freeze_after_build(keras.optimizers.Adam)
    optimizer, outcome = freeze_after_build(
        lambda: keras_adamw.AdamW(weight_decay=WD, init_verbose=False))
    if isinstance(keras_outcome, str):  # JAX: the stateless trainer refuses
        assert BACKEND == "jax"
        assert outcome == keras_outcome
        return
    frozen, after = outcome
    for before, now in zip(frozen, after):
        np.testing.assert_array_equal(now, before)
    assert state(optimizer)[:2] == (8, 8)


# ---- variables the optimizer does not know, or cannot update --------------------------


@pytest.mark.parametrize("make", [keras.optimizers.Adam, keras_adamw.AdamW,
                                  keras_adamw.SGDW], ids=["keras_adam", "adamw", "sgdw"])
def test_variable_added_after_build_is_refused_by_name(make):
    optimizer = make()
    known = keras.Variable(np.ones(2), dtype="float32", name="kernel")
    optimizer.apply([tensor([1.0, 1.0])], [known])
    late = keras.Variable(np.ones(2), dtype="float32", name="late_kernel")
    before = K_eval(known).copy()
    with pytest.raises(ValueError, match="Unknown variable: .*late_kernel.*recreate a new "
                                         "optimizer instance"):
        optimizer.apply([tensor([1.0, 1.0])] * 2, [known, late])
    np.testing.assert_array_equal(K_eval(known), before)
    np.testing.assert_array_equal(K_eval(late), np.ones(2))
    assert int(K_eval(optimizer.iterations)) == 1


@pytest.mark.parametrize("dtype", ["int32", "bool"])
@pytest.mark.parametrize("cls", [keras_adamw.AdamW, keras_adamw.NadamW, keras_adamw.SGDW])
def test_non_float_variable_refused_by_name(cls, dtype):
    optimizer = cls(weight_decay=WD)
    kernel = keras.Variable(np.ones(2), dtype="float32", name="kernel")
    # torch cannot make an integer tensor trainable; the optimizer is handed it anyway.
    counter = keras.Variable(np.zeros(2), dtype=dtype, name="step_count", trainable=False)
    message = (f"Argument `var_list` must contain floating-point variables only .*"
               f"Received: var_list\\[1\\]='step_count' of dtype {dtype}")
    with pytest.raises(TypeError, match=message):
        optimizer.apply([tensor([1.0, 1.0]), tensor([1, 1], dtype)], [kernel, counter])
    assert not optimizer.built and state(optimizer)[:2] == (0, 0)
    with pytest.raises(TypeError, match=message):
        optimizer.build([kernel, counter])
    optimizer.apply([tensor([1.0, 1.0])], [kernel])  # still usable, nothing half-built
    assert state(optimizer)[:2] == (1, 1)


# ---- empty models, second build -------------------------------------------------------


def test_empty_variable_list_is_a_harmless_noop():
    optimizer = keras_adamw.AdamW(use_cosine_annealing=True, total_iterations=4)
    optimizer.apply([], [])
    assert state(optimizer) == (0, 0, 1.0)
    optimizer.build([])
    optimizer.apply([], [])
    assert state(optimizer) == (0, 0, 1.0)


def test_model_without_trainable_variables_trains_as_a_noop():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Lambda(lambda x: 2.0 * x)])
    optimizer = keras_adamw.SGDW(use_cosine_annealing=True, total_iterations=4)
    model.compile(optimizer, loss="mse")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Keras: "The model does not have any trainable weights."
        x, _ = fit_data(16)
        model.fit(x, 2.0 * x, batch_size=4, epochs=1, verbose=0)
    assert state(optimizer) == (0, 0, 1.0)


def test_second_build_changes_nothing():
    def run(extra_builds):
        keras.utils.set_random_seed(0)
        variables = [keras.Variable(np.full(3, 0.5), dtype="float32", name="a"),
                     keras.Variable(np.full(2, -0.5), dtype="float32", name="b")]
        optimizer = keras_adamw.AdamW(use_cosine_annealing=True, total_iterations=3,
                                      weight_decay=WD, learning_rate=0.1)
        rng = np.random.default_rng(0)
        for step in range(5):
            if step == 2 and extra_builds:
                before = numpy_values(optimizer.variables)
                optimizer.build(variables)
                optimizer.build(variables[:1])
                optimizer.build(variables + [keras.Variable(np.ones(1), name="c")])
                after = numpy_values(optimizer.variables)
                assert len(after) == len(before)
                for old, new in zip(before, after):
                    np.testing.assert_array_equal(new, old)
            optimizer.apply([tensor(rng.normal(size=v.shape)) for v in variables],
                            variables)
        return numpy_values(variables) + numpy_values(optimizer.variables)

    for plain, rebuilt in zip(run(False), run(True)):
        np.testing.assert_array_equal(rebuilt, plain)
