"""WarmUp, LearningRateMonitor, plotting and the config round trip of the new arguments."""
import keras
import numpy as np
import pytest
from cases import case_id, rows
from helpers import (
    WARMUP_BAD_ARGUMENTS,
    WARMUP_VALUES,
    as_float64,
    check_epoch_frequency,
    check_new_arguments_survive_get_config,
    check_warmup,
    fit_and_check_monitor_logs,
    fit_data,
    small_model,
)

import keras_adamw
from keras_adamw.callbacks import LearningRateMonitor, plot_learning_rates
from keras_adamw.schedules import WarmUp


def bound_schedule(iterations):
    return 0.05 + 0.0 * iterations


keras.saving.register_keras_serializable(package="keras_adamw_tests")(bound_schedule)


@pytest.mark.parametrize("target, expected", WARMUP_VALUES)
def test_warmup_values_and_shifted_decay(target, expected):
    check_warmup(WarmUp, keras, target, expected)


@pytest.mark.parametrize("kwargs, error, argument", WARMUP_BAD_ARGUMENTS)
def test_warmup_bad_arguments(kwargs, error, argument):
    with pytest.raises(error, match=f"Argument `{argument}`"):
        WarmUp(**kwargs)


def test_monitor_logs_reach_history_and_csv_logger(tmp_path):
    model = small_model(keras)
    optimizer = keras_adamw.AdamW(learning_rate=WarmUp(1e-2, 2), use_cosine_annealing=True,
                                  total_iterations=3, init_verbose=False)
    model.compile(optimizer, loss="mse")
    monitor = LearningRateMonitor(per_layer=True)
    history = fit_and_check_monitor_logs(model, monitor, keras.callbacks.CSVLogger,
                                         tmp_path / "log.csv")
    np.testing.assert_allclose(history.history["lr_t"][-1], as_float64(optimizer.lr_t))


def test_monitor_epoch_frequency_and_bad_frequency():
    check_epoch_frequency(keras, keras_adamw, LearningRateMonitor)


def test_plot_learning_rates_saves_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    history = {"iterations": [1, 2, 3], "lr_t": [0.1, 0.2, 0.3], "eta_t": [1.0, 0.5, 0.0]}
    figure = plot_learning_rates(history, path=tmp_path / "lr.png")
    assert len(figure.axes) == 2
    assert (tmp_path / "lr.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="keys"):
        plot_learning_rates(history, keys=("lr",))


@pytest.mark.parametrize("case", rows("adamw", "nadamw", "sgdw"), ids=case_id)
def test_new_arguments_survive_get_config(case):
    check_new_arguments_survive_get_config(getattr(keras_adamw, case.class_name), WarmUp,
                                           lambda optimizer: optimizer._learning_rate)


def test_keras_save_load_keeps_rules_bounds_and_schedule(tmp_path):
    model = small_model(keras)
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
