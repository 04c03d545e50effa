"""keras2: WarmUp, LearningRateMonitor and the save round trip of the new arguments.

The checks of tests/keras3/test_monitoring.py on the tf_keras twins; the
trajectory with WarmUp and bounds is compared with the float64 oracle.
"""
import numpy as np
import pytest
import tensorflow as tf
from cases import CASES, case_id, rows
from helpers import (
    FLOAT32_ALL,
    WARMUP_BAD_ARGUMENTS,
    WARMUP_VALUES,
    check_against_oracle,
    check_epoch_frequency,
    check_new_arguments_survive_get_config,
    check_warmup,
    fit_and_check_monitor_logs,
    fit_data,
    small_model,
)

import keras_adamw
from keras_adamw import keras2
from keras_adamw.keras2 import AdamW
from keras_adamw.keras2.callbacks import LearningRateMonitor
from keras_adamw.keras2.framework import (
    keras2 as tf_keras,  # tf_keras, or keras 2.x on TF < 2.16
)
from keras_adamw.keras2.schedules import WarmUp


@tf_keras.utils.register_keras_serializable(package="keras_adamw_tests")
def upper_bound(iterations):
    return 0.05 + 0.0 * iterations


def test_flavour_selection_gives_the_twins():
    assert keras_adamw.FLAVOUR == "keras2"
    assert keras_adamw.schedules.WarmUp is WarmUp
    assert keras_adamw.callbacks.LearningRateMonitor is LearningRateMonitor


@pytest.mark.parametrize("target, expected", WARMUP_VALUES)
def test_warmup_values_and_shifted_decay(target, expected):
    check_warmup(WarmUp, tf_keras, target, expected)


def test_warmup_learning_rate_matches_oracle():
    """AdamW driven by WarmUp(ExponentialDecay): the oracle with the same lr(t)."""
    variables = small_model(tf_keras).trainable_variables
    decayed = tf_keras.optimizers.schedules.ExponentialDecay(1e-2, 2, 0.5)
    case = CASES["adamw"]
    optimizer = case.make(keras2, learning_rate=WarmUp(decayed, 3, initial=1e-3))

    def lr_of(iterations):
        if iterations < 3:
            return 1e-3 + (1e-2 - 1e-3) * iterations / 3
        return 1e-2 * 0.5 ** ((iterations - 3) / 2)

    check_against_oracle(optimizer, case, variables, 8, FLOAT32_ALL, learning_rate_fn=lr_of)


@pytest.mark.parametrize("kwargs, error, argument", WARMUP_BAD_ARGUMENTS)
def test_warmup_bad_arguments(kwargs, error, argument):
    with pytest.raises(error, match=f"Argument `{argument}`"):
        WarmUp(**kwargs)


@pytest.mark.parametrize("run_eagerly", [False, True])
def test_monitor_logs_reach_history_and_csv_logger(tmp_path, run_eagerly):
    model = small_model(tf_keras)
    optimizer = AdamW(learning_rate=WarmUp(1e-2, 2), use_cosine_annealing=True,
                      total_iterations=3, init_verbose=False)
    model.compile(optimizer, loss="mse", run_eagerly=run_eagerly)
    monitor = LearningRateMonitor(per_layer=True)
    history = fit_and_check_monitor_logs(model, monitor, tf_keras.callbacks.CSVLogger,
                                         tmp_path / "log.csv")
    kernel = model.trainable_variables[0]
    assert history.history["eff_lr_max/dense_1"][-1] == pytest.approx(
        float(np.max(np.maximum(optimizer.effective_learning_rate(kernel),
                                optimizer.effective_learning_rate(
                                    model.trainable_variables[1]).numpy().max()))))


def test_monitor_epoch_frequency_and_bad_frequency():
    check_epoch_frequency(tf_keras, keras2, LearningRateMonitor)


@pytest.mark.parametrize("case", rows("adamw", "nadamw", "sgdw"), ids=case_id)
def test_new_arguments_survive_get_config(case):
    check_new_arguments_survive_get_config(getattr(keras2, case.class_name), WarmUp,
                                           lambda optimizer: optimizer._get_hyper("learning_rate"))


@pytest.mark.parametrize("suffix", ["h5", "keras"])
def test_save_load_keeps_rules_bounds_schedule_and_state(tmp_path, suffix):
    """h5 and .keras: WarmUp, a callable bound and layer-wise decay come back; from
    h5 also the state, and training continues on the original's trajectory."""
    model = small_model(tf_keras)
    decayed = tf_keras.optimizers.schedules.ExponentialDecay(1e-2, 2, 0.5)
    optimizer = AdamW(learning_rate=WarmUp(decayed, 3), init_verbose=False,
                      effective_lr_bounds=(1e-3, upper_bound),
                      layerwise_lr_decay={"dense_1": 0.5}, use_cosine_annealing=True,
                      total_iterations=4)
    model.compile(optimizer, loss="mse")
    x, y = fit_data()
    for _ in range(2):
        model.train_on_batch(x, y)
    path = str(tmp_path / f"m.{suffix}")
    model.save(path)
    restored = tf_keras.models.load_model(path, custom_objects={"AdamW": AdamW})
    ours = restored.optimizer
    assert ours.layerwise_lr_decay == {"dense_1": 0.5}
    assert ours.effective_lr_bounds[0] == 1e-3 and ours.effective_lr_bounds[1] is upper_bound
    learning_rate = ours._get_hyper("learning_rate")
    assert isinstance(learning_rate, WarmUp) and learning_rate.warmup_steps == 3
    assert learning_rate.schedule.get_config() == decayed.get_config()
    if suffix == "keras":
        return  # tf_keras restores no legacy-optimizer state from .keras (test_keras2_saving)
    for name in ("iterations", "t_cur", "eta_t", "lr_t"):
        assert getattr(ours, name).numpy() == getattr(optimizer, name).numpy(), name
    for _ in range(3):
        model.train_on_batch(x, y)
        restored.train_on_batch(x, y)
    assert [r.multiplier for r in ours._rules.values()] == [0.5, 0.5, 1.0, 1.0]
    for a, b in zip(model.get_weights() + optimizer.get_weights(),
                    restored.get_weights() + ours.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert tf.reduce_all(ours.t_cur == optimizer.t_cur)
