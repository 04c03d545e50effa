"""Exact resume in tf_keras (config, `.h5` after `fit` and `tf.train.Checkpoint`
round trips are in test_keras2_saving.py).

- `tf_keras.callbacks.BackupAndRestore` after a crash mid-epoch and mid-cycle:
  with `save_freq="epoch"` the resumed run is bit-identical to the
  uninterrupted one; with `save_freq` in batches the state restored (weights,
  slots, iterations, t_cur, eta_t, lr_t) is bit-identical to the state saved.
  (tf_keras then resumes the batch count mid-epoch but restarts numpy input at
  the epoch's first batch, with its own Adam too: the data order, not ours.)
- `.h5` written by `ModelCheckpoint` mid-epoch, mid-cycle: `load_model` and
  continue gives the uninterrupted run bit for bit.
- `tf.train.Checkpoint` across tf_keras's Adam and AdamW: restores by name, so
  AdamW -> Adam restores Adam's whole state; Adam -> AdamW restores the moments
  and iterations and leaves t_cur/eta_t/lr_t, which Adam has not, at their
  initial values: TensorFlow reports exactly these three in
  `status.assert_existing_objects_matched()`.
"""
import numpy as np
import pytest
import tensorflow as tf
from cases import CASES
from helpers import crash_at, fit_data

from keras_adamw import keras2
from keras_adamw.keras2.framework import (
    keras2 as tf_keras,  # tf_keras, or keras 2.x on TF < 2.16
)

BATCH, STEPS_PER_EPOCH, EPOCHS = 4, 6, 3
get = tf_keras.backend.get_value


def data():
    return fit_data(BATCH * STEPS_PER_EPOCH, features=3, outputs=1)


def make_optimizer(row):
    """The row's optimizer with multipliers, both decays and a 5-update cycle
    (epochs of 6 end mid-cycle)."""
    return CASES[row].make(keras2, learning_rate=0.01, total_iterations=5,
                           use_cosine_annealing=True, lr_multipliers={"d1": 0.5},
                           weight_decay=0.05, weight_decays={"d2/kernel": (0, 0.02)})


def fresh(optimizer, seed=3):
    tf_keras.utils.set_random_seed(seed)
    model = tf_keras.Sequential([
        tf_keras.layers.Dense(4, activation="tanh", name="d1", input_shape=(3,)),
        tf_keras.layers.Dense(1, name="d2")])
    model.compile(optimizer, loss="mse")
    return model


def state(model):
    """Weights, then the optimizer's weights (iterations, t_cur, eta_t, lr_t, slots)."""
    return [np.asarray(w) for w in model.get_weights() + model.optimizer.get_weights()]


def assert_same(actual, expected):
    assert len(actual) == len(expected)
    for a, b in zip(actual, expected):
        np.testing.assert_array_equal(a, b)


def fit(model, callbacks, epochs=EPOCHS):
    x, y = data()
    return model.fit(x, y, batch_size=BATCH, epochs=epochs, shuffle=False, verbose=0,
                     callbacks=callbacks)


class Snapshot(tf_keras.callbacks.Callback):
    """`state(model)` after update `after` (0: at the start of training)."""

    def __init__(self, after):
        super().__init__()
        self.after, self.taken = after, None

    def on_train_begin(self, logs=None):
        if self.after == 0:
            self.taken = state(self.model)

    def on_train_batch_end(self, batch, logs=None):
        if get(self.model.optimizer.iterations) == self.after:
            self.taken = state(self.model)


@pytest.mark.parametrize("name", ["adamw", "nadamw"])
def test_backup_and_restore_each_epoch_resumes_bit_identically(name, tmp_path):
    backup = str(tmp_path / "backup")
    with pytest.raises(RuntimeError, match="simulated preemption"):
        fit(fresh(make_optimizer(name)), [
            tf_keras.callbacks.BackupAndRestore(backup), crash_at(tf_keras.callbacks.Callback, 2, 3)])
    resumed = fresh(make_optimizer(name))
    history = fit(resumed, [tf_keras.callbacks.BackupAndRestore(backup)])
    assert len(history.history["loss"]) == 1  # epochs 0 and 1 came from the backup
    uninterrupted = fresh(make_optimizer(name))
    fit(uninterrupted, [])
    assert get(resumed.optimizer.t_cur) == EPOCHS * STEPS_PER_EPOCH % 5
    assert_same(state(resumed), state(uninterrupted))


@pytest.mark.parametrize("name", ["nadamw", "sgdw_momentum"])
def test_backup_and_restore_mid_epoch_restores_the_saved_state(name, tmp_path):
    """save_freq=4: the last backup before the crash (epoch 1, batch 3) holds 8
    updates, t_cur 3."""
    backup = str(tmp_path / "backup")
    saved = Snapshot(after=8)
    with pytest.raises(RuntimeError, match="simulated preemption"):
        fit(fresh(make_optimizer(name)), [
            saved, tf_keras.callbacks.BackupAndRestore(backup, save_freq=4), crash_at(tf_keras.callbacks.Callback, 1, 3)])
    resumed = fresh(make_optimizer(name))
    # Slots created first, so that the restore assigns them before any update.
    resumed.optimizer._create_all_weights(resumed.trainable_variables)
    restored = Snapshot(after=0)
    fit(resumed, [tf_keras.callbacks.BackupAndRestore(backup, save_freq=4), restored])
    assert get(resumed.optimizer.iterations) == EPOCHS * STEPS_PER_EPOCH
    assert restored.taken[len(resumed.get_weights()) + 1] == 8 % 5  # t_cur, mid-cycle
    assert_same(restored.taken, saved.taken)


@pytest.mark.parametrize("name", ["adamw", "sgdw_momentum"])
def test_h5_written_mid_epoch_resumes_bit_identically(name, tmp_path):
    path = str(tmp_path / "mid.h5")
    checkpoint = tf_keras.callbacks.ModelCheckpoint(path, save_freq=9)  # epoch 1, batch 2
    with pytest.raises(RuntimeError, match="simulated preemption"):
        fit(fresh(make_optimizer(name)), [checkpoint, crash_at(tf_keras.callbacks.Callback, 1, 4)])
    cls = getattr(keras2, CASES[name].class_name)
    resumed = tf_keras.models.load_model(path, custom_objects={cls.__name__: cls})
    assert get(resumed.optimizer.iterations) == 9 and get(resumed.optimizer.t_cur) == 4
    x, y = data()
    remaining = range(3, STEPS_PER_EPOCH)  # the rest of epoch 1, then epoch 2
    for b in [*remaining, *range(STEPS_PER_EPOCH)]:
        resumed.train_on_batch(x[BATCH * b:BATCH * (b + 1)], y[BATCH * b:BATCH * (b + 1)])
    uninterrupted = fresh(make_optimizer(name))
    fit(uninterrupted, [])
    assert_same(state(resumed), state(uninterrupted))


def adam_and_adamw_checkpoint(source, target, tmp_path):
    """Trains `source` 6 updates, restores its checkpoint into `target` before its
    first update; returns the two models and the restore status."""
    trained = fresh(source, seed=1)
    fit(trained, [], epochs=1)
    path = tf.train.Checkpoint(model=trained, optimizer=trained.optimizer).save(
        str(tmp_path / "ckpt"))
    restored = fresh(target, seed=2)
    restored.optimizer._create_all_weights(restored.trainable_variables)
    status = tf.train.Checkpoint(model=restored, optimizer=restored.optimizer).restore(path)
    return trained, restored, status


def slots(model):
    optimizer = model.optimizer
    return [optimizer.get_slot(v, s).numpy() for v in model.trainable_variables
            for s in ("m", "v")]


def test_tf_checkpoint_of_adamw_restores_a_builtin_adam_whole(tmp_path):
    trained, restored, status = adam_and_adamw_checkpoint(
        make_optimizer("adamw"), tf_keras.optimizers.legacy.Adam(0.01), tmp_path)
    assert get(restored.optimizer.iterations) == 6
    assert_same(slots(restored), slots(trained))
    assert_same(restored.get_weights(), trained.get_weights())
    # Unmatched: only Adam's beta_1, beta_2, decay hypers (AdamW keeps them in its
    # config), which keep their constructor values.
    with pytest.raises(AssertionError, match="3 Python objects that were not bound") as info:
        status.assert_existing_objects_matched()
    assert all(f"'{name}:0'" in str(info.value) for name in ("beta_1", "beta_2", "decay"))


def test_tf_checkpoint_of_builtin_adam_into_adamw_is_partial_and_tensorflow_says_so(
        tmp_path):
    trained, restored, status = adam_and_adamw_checkpoint(
        tf_keras.optimizers.legacy.Adam(0.01), make_optimizer("adamw"), tmp_path)
    assert get(restored.optimizer.iterations) == 6
    assert_same(slots(restored), slots(trained))
    assert get(restored.optimizer.t_cur) == 0  # Adam has no schedule: initial values
    assert get(restored.optimizer.eta_t) == 1.0
    with pytest.raises(AssertionError, match="3 Python objects that were not bound") as info:
        status.assert_existing_objects_matched()
    assert all(f"'{name}:0'" in str(info.value) for name in ("t_cur", "eta_t", "lr_t"))
