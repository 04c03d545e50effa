"""WarmUp, LearningRateMonitor, plotting and the config round trip of the new arguments."""
import csv

import keras
import numpy as np
import pytest
from helpers import small_model

import keras_adamw
from keras_adamw.callbacks import LearningRateMonitor, plot_learning_rates
from keras_adamw.schedules import WarmUp
from keras_adamw.utils import K_eval


def bound_schedule(iterations):
    return 0.05 + 0.0 * iterations


keras.saving.register_keras_serializable(package="keras_adamw_tests")(bound_schedule)


def fit_data(n=16):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, 4)).astype("float32"), rng.normal(size=(n, 2)).astype("float32")


@pytest.mark.parametrize("target, expected", [
    (1e-2, [0.0, 2.5e-3, 5e-3, 7.5e-3, 1e-2, 1e-2]),
    ("exponential", [0.0, 2.5e-3, 5e-3, 7.5e-3, 1e-2, 5e-3]),
])
def test_warmup_values_and_shifted_decay(target, expected):
    if target == "exponential":
        target = keras.optimizers.schedules.ExponentialDecay(1e-2, 1, 0.5)
    schedule = WarmUp(target, warmup_steps=4)
    values = [float(K_eval(schedule(step))) for step in range(6)]
    np.testing.assert_allclose(values, expected, rtol=1e-6)
    assert float(K_eval(WarmUp(target, 4, initial=1e-3)(2))) == pytest.approx(5.5e-3)
    assert float(K_eval(WarmUp(target, 0)(0))) == pytest.approx(1e-2)


@pytest.mark.parametrize("kwargs, error, argument", [
    ({"schedule": -1.0, "warmup_steps": 2}, ValueError, "schedule"),
    ({"schedule": 0.1, "warmup_steps": 1.5}, TypeError, "warmup_steps"),
    ({"schedule": 0.1, "warmup_steps": 2, "initial": -1}, ValueError, "initial"),
])
def test_warmup_bad_arguments(kwargs, error, argument):
    with pytest.raises(error, match=f"Argument `{argument}`"):
        WarmUp(**kwargs)


def test_monitor_logs_reach_history_and_csv_logger(tmp_path):
    model = small_model()
    optimizer = keras_adamw.AdamW(learning_rate=WarmUp(1e-2, 2), use_cosine_annealing=True,
                                  total_iterations=3, init_verbose=False)
    model.compile(optimizer, loss="mse")
    monitor = LearningRateMonitor(per_layer=True)
    path = tmp_path / "log.csv"
    x, y = fit_data()
    history = model.fit(x, y, batch_size=4, epochs=2, verbose=0,
                        callbacks=[monitor, keras.callbacks.CSVLogger(str(path))])
    keys = {"lr", "lr_t", "eta_t", "t_cur", "eff_lr_mean/dense_1", "eff_lr_max/dense_1",
            "eff_lr_mean/dense_2", "eff_lr_max/dense_2"}
    assert keys <= set(history.history)
    assert history.history["t_cur"] == [1, 2]  # 4 then 8 updates, cycle of 3
    np.testing.assert_allclose(history.history["lr"], [1e-2, 1e-2], rtol=1e-6)
    np.testing.assert_allclose(history.history["eta_t"], [0.5, 0.0], atol=1e-6)
    assert monitor.history["iterations"] == list(range(1, 9))
    np.testing.assert_allclose(monitor.history["eta_t"], [0.5, 0, 1] * 2 + [0.5, 0],
                               atol=1e-6)
    np.testing.assert_allclose(history.history["lr_t"][-1], K_eval(optimizer.lr_t))
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2 and keys <= set(rows[0])
    assert float(rows[1]["lr_t"]) == pytest.approx(history.history["lr_t"][1])
    assert float(rows[0]["eff_lr_max/dense_1"]) >= float(rows[0]["eff_lr_mean/dense_1"]) > 0


def test_monitor_epoch_frequency_and_bad_frequency():
    model = small_model()
    model.compile(keras_adamw.SGDW(learning_rate=0.01, init_verbose=False), loss="mse")
    monitor = LearningRateMonitor(update_freq="epoch")
    x, y = fit_data()
    model.fit(x, y, batch_size=4, epochs=2, verbose=0, callbacks=[monitor])
    assert monitor.history["iterations"] == [4, 8]
    with pytest.raises(ValueError, match="update_freq"):
        LearningRateMonitor(update_freq="step")


def test_plot_learning_rates_saves_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    history = {"iterations": [1, 2, 3], "lr_t": [0.1, 0.2, 0.3], "eta_t": [1.0, 0.5, 0.0]}
    figure = plot_learning_rates(history, path=tmp_path / "lr.png")
    assert len(figure.axes) == 2
    assert (tmp_path / "lr.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="keys"):
        plot_learning_rates(history, keys=("lr",))


NEW_ARGUMENTS = {
    "layerwise_lr_decay": {"dense_1": 0.25, r"^dense_2/bias$": 1.0},
    "effective_lr_bounds": (1e-4, 0.05),
}


@pytest.mark.parametrize("cls", [keras_adamw.AdamW, keras_adamw.NadamW, keras_adamw.SGDW])
def test_new_arguments_survive_get_config(cls):
    optimizer = cls(init_verbose=False, learning_rate=WarmUp(1e-3, 10, initial=1e-5),
                    **NEW_ARGUMENTS)
    optimizer.apply_layerwise_lr_decay(var_dict={"dense_2/kernel": 0.5})
    config = optimizer.get_config()
    restored = cls.from_config(config)
    assert restored.layerwise_lr_decay == {**NEW_ARGUMENTS["layerwise_lr_decay"],
                                           r"^dense_2/kernel$": 0.5}
    assert restored.effective_lr_bounds == NEW_ARGUMENTS["effective_lr_bounds"]
    assert restored.get_config() == config
    assert isinstance(restored._learning_rate, WarmUp)


def test_keras_save_load_keeps_rules_bounds_and_schedule(tmp_path):
    model = small_model()
    optimizer = keras_adamw.AdamW(learning_rate=WarmUp(1e-2, 3), init_verbose=False,
                                  effective_lr_bounds=(1e-3, bound_schedule),
                                  layerwise_lr_decay={"dense_1": 0.5})
    model.compile(optimizer, loss="mse")
    x, y = fit_data()
    model.train_on_batch(x, y)
    model.save(tmp_path / "m.keras")
    restored = keras.models.load_model(tmp_path / "m.keras")
    ours = restored.optimizer
    assert ours.layerwise_lr_decay == {"dense_1": 0.5}
    assert ours.effective_lr_bounds[0] == 1e-3 and ours.effective_lr_bounds[1] is bound_schedule
    assert isinstance(ours._learning_rate, WarmUp) and ours._learning_rate.warmup_steps == 3
    for _ in range(3):
        model.train_on_batch(x, y)
        restored.train_on_batch(x, y)
    assert [r.multiplier for r in ours._rules] == [0.5, 0.5, 1.0, 1.0]
    for a, b in zip(model.get_weights(), restored.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
