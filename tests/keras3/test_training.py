"""Keras 3 integration: built-in equality, fit/jit/accumulation, save/load, Keras features."""
import keras
import numpy as np
import pytest
from cases import CASES, case_id, rows
from helpers import as_float64, fit_data, oracle_for, small_model
from keras3_helpers import BACKEND, numpy_values

import keras_adamw

# Every keras-adamw extra off; NadamW with Keras 3's Nadam schedule.
BUILTIN = rows("adamw", "adamw_amsgrad", "sgdw", "sgdw_momentum", "sgdw_nesterov",
               "nadamw_keras3_schedule")


@pytest.mark.parametrize("case", BUILTIN, ids=case_id)
def test_extras_off_equals_keras_builtin(case):
    theirs_kwargs = {k: v for k, v in case.kwargs.items() if k != "schedule_decay"}
    # Default learning rates: Keras computes 1 - 0.999^t in float32 (6e-6 relative error
    # in the step at t=1, which keras_adamw avoids); at lr=1e-3 that stays below 1e-6.
    models = [small_model(keras), small_model(keras)]
    optimizers = [getattr(keras_adamw, case.class_name)(init_verbose=False, **case.kwargs),
                  getattr(keras.optimizers, case.builtin)(**theirs_kwargs)]
    rng = np.random.default_rng(0)
    for _ in range(100):
        grads = [keras.ops.convert_to_tensor(rng.normal(size=v.shape).astype("float32"))
                 for v in models[0].trainable_variables]
        for model, optimizer in zip(models, optimizers):
            optimizer.apply(grads, model.trainable_variables)
    for ours, theirs in zip(*(numpy_values(m.trainable_variables) for m in models)):
        np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-6)


JIT_MODES = [True, False] if BACKEND == "tensorflow" else ["auto"]


@pytest.mark.parametrize("jit_compile", JIT_MODES)
def test_fit_advances_t_cur_once_per_update(jit_compile):
    model = small_model(keras)
    optimizer = keras_adamw.AdamW(learning_rate=0.01, total_iterations=4,
                                  use_cosine_annealing=True, init_verbose=False)
    model.compile(optimizer, loss="mse", jit_compile=jit_compile)
    x, y = fit_data(40)
    model.fit(x, y, batch_size=8, epochs=2, verbose=0)  # 10 updates
    assert int(as_float64(optimizer.iterations)) == 10
    assert int(as_float64(optimizer.t_cur)) == 10 % 4  # two restarts, then 2 more
    # eta_t = (1 + cos(pi * 2 / 3)) / 2
    np.testing.assert_allclose(as_float64(optimizer.eta_t), 0.25, rtol=1e-6)


def test_gradient_accumulation_advances_once_per_applied_update():
    """4 micro-steps = one update with the mean gradient, one t_cur/eta_t advance."""
    model = small_model(keras)
    variables = model.trainable_variables
    optimizer = keras_adamw.AdamW(learning_rate=0.01, total_iterations=3,
                                  use_cosine_annealing=True, weight_decay=0.1,
                                  gradient_accumulation_steps=4, init_verbose=False)
    params = numpy_values(variables)
    oracle = oracle_for(CASES["adamw"], [p.shape for p in params], total_iterations=3,
                        use_cosine_annealing=True, weight_decay=0.1)
    rng = np.random.default_rng(0)
    for update in range(5):
        micro = [[rng.normal(size=p.shape) for p in params] for _ in range(4)]
        for grads in micro:
            optimizer.apply([g.astype("float32") for g in grads], variables)
        params = oracle.step(params, [np.mean(gs, axis=0) for gs in zip(*micro)])
        assert int(as_float64(optimizer.t_cur)) == oracle.t_cur
        assert int(as_float64(optimizer.iterations)) == update + 1
    for variable, expected in zip(variables, params):
        np.testing.assert_allclose(as_float64(variable), expected, rtol=1e-5, atol=1e-6)


def test_fit_with_gradient_accumulation_counts_updates():
    model = small_model(keras)
    optimizer = keras_adamw.SGDW(learning_rate=0.01, momentum=0.9, total_iterations=10,
                                 use_cosine_annealing=True, gradient_accumulation_steps=4,
                                 init_verbose=False)
    model.compile(optimizer, loss="mse")
    x, y = fit_data(64)
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)  # 8 micro-steps = 2 updates
    assert int(as_float64(optimizer.t_cur)) == 2


def train(model, steps, seed):
    x, y = fit_data(8 * steps, seed)
    for i in range(steps):
        model.train_on_batch(x[8 * i:8 * i + 8], y[8 * i:8 * i + 8])


@pytest.mark.parametrize("cls", [keras_adamw.AdamW, keras_adamw.NadamW, keras_adamw.SGDW])
def test_save_load_mid_cycle_continues_identically(cls, tmp_path):
    def fresh():
        model = small_model(keras)
        optimizer = cls(learning_rate=0.01, total_iterations=5, use_cosine_annealing=True,
                        lr_multipliers={"dense_1": 0.5}, weight_decays={"dense_2/kernel": (0, 1e-2)},
                        weight_decay=0.01, init_verbose=False,
                        **({"momentum": 0.9} if cls is keras_adamw.SGDW else {}))
        model.compile(optimizer, loss="mse")
        return model

    uninterrupted = fresh()
    train(uninterrupted, 7, seed=1)
    train(uninterrupted, 6, seed=2)

    interrupted = fresh()
    train(interrupted, 7, seed=1)
    path = tmp_path / "m.keras"
    interrupted.save(path)
    restored = keras.models.load_model(path)  # no custom_objects
    assert type(restored.optimizer) is cls
    assert int(as_float64(restored.optimizer.t_cur)) == 2
    train(restored, 6, seed=2)

    for ours, theirs in zip(restored.optimizer.variables, uninterrupted.optimizer.variables):
        np.testing.assert_array_equal(as_float64(ours), as_float64(theirs), err_msg=ours.path)
    for ours, theirs in zip(numpy_values(restored.weights), numpy_values(uninterrupted.weights)):
        np.testing.assert_array_equal(ours, theirs)


ALL_ARGUMENTS = {
    keras_adamw.AdamW: {"learning_rate": 0.002, "beta_1": 0.8, "beta_2": 0.99, "epsilon": 1e-6,
                            "amsgrad": True},
    keras_adamw.NadamW: {"learning_rate": 0.002, "beta_1": 0.8, "schedule_decay": 0.01},
    keras_adamw.SGDW: {"learning_rate": 0.1, "momentum": 0.5, "nesterov": True},
}


@pytest.mark.parametrize("cls", sorted(ALL_ARGUMENTS, key=lambda c: c.__name__))
def test_config_round_trip(cls):
    optimizer = cls(**ALL_ARGUMENTS[cls], total_iterations=50, total_iterations_wd=200,
                    use_cosine_annealing=True, autorestart=False, eta_min=0.1, eta_max=0.9,
                    t_cur=3, lr_multipliers={"dense_1": 0.5}, weight_decays={"d/kernel": (1e-4, 0)},
                    weight_decay=0.01, exclude_from_weight_decay=["bias"], decay=1e-3,
                    init_verbose=False, clipnorm=1.0, gradient_accumulation_steps=2,
                    name="opt")
    config = optimizer.get_config()
    clone = cls.from_config(config)
    assert clone.get_config() == config
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert type(restored) is cls and restored.get_config() == config
    assert config["weight_decays"] == {"d/kernel": [1e-4, 0.0]}
    assert config["t_cur"] == 3 and config["total_iterations_wd"] == 200


CLIPPING = {
    "clipnorm": lambda grads: [g * min(1.0, 0.5 / np.linalg.norm(g)) for g in grads],
    "global_clipnorm": lambda grads: [
        g * min(1.0, 0.5 / np.sqrt(sum(np.sum(h * h) for h in grads))) for g in grads],
    "clipvalue": lambda grads: [np.clip(g, -0.5, 0.5) for g in grads],
}


@pytest.mark.parametrize("clip", sorted(CLIPPING))
def test_keras_gradient_clipping_is_applied(clip):
    model = small_model(keras)
    variables = model.trainable_variables
    optimizer = keras_adamw.AdamW(learning_rate=0.01, weight_decay=0.1, init_verbose=False,
                                  **{clip: 0.5})
    params = numpy_values(variables)
    oracle = oracle_for(CASES["adamw"], [p.shape for p in params], weight_decay=0.1)
    rng = np.random.default_rng(0)
    for _ in range(10):
        grads = [rng.normal(size=p.shape) for p in params]
        optimizer.apply([keras.ops.convert_to_tensor(g.astype("float32")) for g in grads],
                        variables)
        params = oracle.step(params, CLIPPING[clip](grads))
    for variable, expected in zip(variables, params):
        np.testing.assert_allclose(as_float64(variable), expected, rtol=1e-5, atol=1e-6)


def test_loss_scale_factor_unscales_gradients():
    results = []
    for factor in (None, 64.0):
        model = small_model(keras)
        optimizer = keras_adamw.AdamW(learning_rate=0.01, loss_scale_factor=factor,
                                      init_verbose=False)
        rng = np.random.default_rng(0)
        for _ in range(5):
            grads = [rng.normal(size=v.shape).astype("float32") * (factor or 1.0)
                     for v in model.trainable_variables]
            optimizer.apply(grads, model.trainable_variables)
        results.append(numpy_values(model.trainable_variables))
    for scaled, plain in zip(*results):
        np.testing.assert_allclose(scaled, plain, rtol=1e-6, atol=1e-7)


def test_use_ema_keeps_a_moving_average_and_finalizes():
    model = small_model(keras)
    optimizer = keras_adamw.AdamW(learning_rate=0.01, use_ema=True, ema_momentum=0.5,
                                  init_verbose=False)
    model.compile(optimizer, loss="mse")
    x, y = fit_data(40)
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)  # fit finalizes: weights <- average
    averages = numpy_values(optimizer._model_variables_moving_average)
    for average, weight in zip(averages, numpy_values(model.trainable_variables)):
        np.testing.assert_allclose(weight, average, rtol=1e-6)


@pytest.mark.parametrize("how", ["apply", "train_on_batch"])
def test_ema_under_gradient_accumulation_averages_the_applied_updates(how):
    """With `gradient_accumulation_steps=4` the average is the EMA of the 5
    applied updates' weights (momentum 0.5, the first one taken as it is); the
    micro-steps that change nothing leave it alone (Keras's moved it on each:
    1.85, 1.825, 1.8125, ... instead of staying 1.85)."""
    model = small_model(keras)
    optimizer = keras_adamw.AdamW(learning_rate=0.05, use_ema=True, ema_momentum=0.5,
                                  gradient_accumulation_steps=4, init_verbose=False)
    weights, averages = [], []
    x, y = fit_data(20 * 4)
    if how == "train_on_batch":  # compiled: JAX's stateless apply, tf.function
        model.compile(optimizer, loss="mse")
        for batch in range(20):
            model.train_on_batch(x[4 * batch:4 * batch + 4], y[4 * batch:4 * batch + 4])
            weights.append(numpy_values(model.trainable_variables))
            averages.append(numpy_values(optimizer._model_variables_moving_average))
    else:
        rng = np.random.default_rng(0)
        for _ in range(20):
            grads = [keras.ops.convert_to_tensor(rng.normal(size=v.shape), "float32")
                     for v in model.trainable_variables]
            optimizer.apply(grads, model.trainable_variables)
            weights.append(numpy_values(model.trainable_variables))
            averages.append(numpy_values(optimizer._model_variables_moving_average))
    expected = None
    for step, (weight, average) in enumerate(zip(weights, averages)):
        if step % 4 == 3:  # an applied update
            expected = weight if expected is None else [
                0.5 * e + 0.5 * w for e, w in zip(expected, weight)]
        for got, want in zip(average, weight if expected is None else expected):
            np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7, err_msg=str(step))
    assert int(keras.ops.convert_to_numpy(optimizer.iterations)) == 5  # applied updates


def test_learning_rate_callbacks_change_the_step():
    model = small_model(keras)
    optimizer = keras_adamw.SGDW(learning_rate=0.1, init_verbose=False)
    model.compile(optimizer, loss="mse")
    x, y = fit_data(16)
    scheduler = keras.callbacks.LearningRateScheduler(lambda epoch, lr: 0.1 * 0.5 ** epoch)
    plateau = keras.callbacks.ReduceLROnPlateau(monitor="loss", factor=0.1, patience=0,
                                                min_delta=1e9)
    model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[scheduler])
    np.testing.assert_allclose(as_float64(optimizer.learning_rate), 0.05, rtol=1e-6)
    np.testing.assert_allclose(as_float64(optimizer.lr_t), 0.05, rtol=1e-6)  # eta 1 * lr
    # No epoch improves by min_delta: the second epoch's end divides lr by 10.
    model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[plateau])
    np.testing.assert_allclose(as_float64(optimizer.learning_rate), 0.005, rtol=1e-5)


def test_manual_restart_and_eta_assignment():
    model = small_model(keras)
    optimizer = keras_adamw.AdamW(learning_rate=0.01, total_iterations=5,
                                  use_cosine_annealing=True, autorestart=False,
                                  init_verbose=False)
    model.compile(optimizer, loss="mse")
    train(model, 3, seed=0)
    optimizer.t_cur.assign(-1)
    train(model, 1, seed=1)
    assert int(as_float64(optimizer.t_cur)) == 0
    np.testing.assert_allclose(as_float64(optimizer.eta_t), 1.0)
    optimizer.eta_t.assign(0.0)  # freeze: the next update changes nothing
    before = numpy_values(model.trainable_variables)
    train(model, 1, seed=2)
    for ours, theirs in zip(before, numpy_values(model.trainable_variables)):
        np.testing.assert_array_equal(ours, theirs)
