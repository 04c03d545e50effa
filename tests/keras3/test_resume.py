"""Exact resume, on the backend of this process (`.keras` round trips mid-cycle are
in test_training.py).

- `keras.callbacks.BackupAndRestore` after a crash mid-epoch and mid-restart-cycle:
  a fresh model and optimizer resume with weights, slots, iterations, t_cur,
  eta_t and lr_t bit-identical to an uninterrupted run of the same updates.
  Keras 3.15 restarts the interrupted epoch from its first batch (the saved
  "batch" is not read back), so with `save_freq` in batches the uninterrupted
  reference replays those batches too.
- `tf.train.Checkpoint` (TensorFlow backend): restored into an unbuilt optimizer,
  the run continues bit-identically.
- A state saved by Keras's own Adam is refused by AdamW with the fix (Keras would
  skip it, or assign it to the wrong variables where the counts agree); an AdamW
  state is skipped by Keras's Adam with Keras's warning; `tf.train.Checkpoint`
  raises across the two. Never a silent partial restore of Adam-family state.
"""
import keras
import numpy as np
import pytest
from cases import CASES
from helpers import as_float64, crash_at, fit_data, small_model
from helpers import train_batches as train_on
from keras3_helpers import BACKEND, numpy_values

import keras_adamw

BATCH, STEPS_PER_EPOCH, EPOCHS = 4, 6, 3
tf_only = pytest.mark.skipif(BACKEND != "tensorflow",
                             reason="tf.train.Checkpoint exists on the TensorFlow backend only")


def data():
    return fit_data(BATCH * STEPS_PER_EPOCH)


def fresh(row="adamw", seed=3):
    """A model and the row's optimizer with multipliers, both decays and a 5-update
    cycle (so that epochs of 6 updates end mid-cycle)."""
    model = small_model(keras, seed=seed)
    model.compile(CASES[row].make(keras_adamw, learning_rate=0.01, total_iterations=5,
                                  use_cosine_annealing=True, lr_multipliers={"dense_1": 0.5},
                                  weight_decay=0.05, weight_decays={"dense_2/kernel": (0, 0.02)}),
                  loss="mse")
    return model


def train_batches(model, batches):
    train_on(model, batches, data, BATCH)


def assert_same_state(model, reference):
    """Weights and every optimizer variable (iterations, t_cur, eta_t, lr_t, slots)."""
    for ours, theirs in zip(model.optimizer.variables, reference.optimizer.variables):
        np.testing.assert_array_equal(as_float64(ours), as_float64(theirs), err_msg=ours.path)
    for ours, theirs in zip(numpy_values(model.weights), numpy_values(reference.weights)):
        np.testing.assert_array_equal(ours, theirs)


def fit(model, callbacks):
    x, y = data()
    return model.fit(x, y, batch_size=BATCH, epochs=EPOCHS, shuffle=False, verbose=0,
                     callbacks=callbacks)


# save_freq, crash (epoch, batch), updates in the backup, batches of the uninterrupted
# reference: with save_freq=4 the backup holds 8 updates (epoch 1, batch 1; t_cur 3)
# and Keras replays epoch 1 from batch 0; with "epoch" it holds 12 (t_cur 2).
RESUMES = {
    "batches": (4, (1, 3), 8, [*range(6), 0, 1, *range(6), *range(6)]),
    "epoch": ("epoch", (2, 3), 12, [*range(6)] * 3),
}


@pytest.mark.parametrize("resume, name", [("batches", "adamw"), ("batches", "nadamw"),
                                          ("epoch", "sgdw_momentum")])
def test_backup_and_restore_after_a_crash_mid_epoch_and_mid_cycle(resume, name, tmp_path):
    save_freq, crash, saved_updates, batches = RESUMES[resume]
    backup = str(tmp_path / "backup")
    crashed = fresh(name)
    with pytest.raises(RuntimeError, match="simulated preemption"):
        fit(crashed, [keras.callbacks.BackupAndRestore(backup, save_freq=save_freq),
                      crash_at(keras.callbacks.Callback, *crash)])
    assert saved_updates % 5 != 0  # the backup is mid-cycle

    resumed = fresh(name)  # a new process would build these from scratch
    restored = {}

    class RecordRestored(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            optimizer = self.model.optimizer
            restored.update(iterations=int(as_float64(optimizer.iterations)),
                            t_cur=int(as_float64(optimizer.t_cur)))

    fit(resumed, [keras.callbacks.BackupAndRestore(backup, save_freq=save_freq),
                  RecordRestored()])
    assert restored == {"iterations": saved_updates, "t_cur": saved_updates % 5}

    uninterrupted = fresh(name)
    train_batches(uninterrupted, batches)
    assert int(as_float64(resumed.optimizer.iterations)) == len(batches)
    assert_same_state(resumed, uninterrupted)


@tf_only
@pytest.mark.parametrize("name", ["nadamw"])
def test_tf_checkpoint_restores_into_an_unbuilt_optimizer(name, tmp_path):
    import tensorflow as tf

    uninterrupted = fresh(name)
    train_batches(uninterrupted, range(6))
    uninterrupted.optimizer.t_cur.assign(-1)  # a manual restart is state too
    path = tf.train.Checkpoint(model=uninterrupted,
                               optimizer=uninterrupted.optimizer).save(str(tmp_path / "ckpt"))
    resumed = fresh(name, seed=4)  # other initial weights: all must come from the file
    assert not resumed.optimizer.built
    status = tf.train.Checkpoint(model=resumed, optimizer=resumed.optimizer).restore(path)
    assert int(as_float64(resumed.optimizer.t_cur)) == -1
    train_batches(uninterrupted, [0, 1, 2])
    train_batches(resumed, [0, 1, 2])  # builds the optimizer: deferred slots restored
    status.assert_consumed()
    assert int(as_float64(resumed.optimizer.t_cur)) == 2
    assert_same_state(resumed, uninterrupted)


# ---- another optimizer's checkpoint ---------------------------------------------------


def trained(optimizer, model=None):
    model = model or small_model(keras, seed=1)
    model.compile(optimizer, loss="mse")
    train_batches(model, [0, 1])
    return model


def save(model, path):
    if str(path).endswith(".keras"):
        model.save(path)
    else:
        model.save_weights(path)


def built_model(optimizer, model=None):
    model = model or small_model(keras, seed=2)
    model.compile(optimizer, loss="mse")
    model.optimizer.build(model.trainable_variables)
    return model


@pytest.mark.parametrize("suffix", [".weights.h5", ".keras"])
def test_builtin_adam_state_into_adamw_raises_with_the_fix(suffix, tmp_path):
    source = trained(keras.optimizers.Adam(0.01))
    path = tmp_path / f"adam{suffix}"
    save(source, path)
    target = built_model(keras_adamw.AdamW(0.01, init_verbose=False))
    with pytest.raises(ValueError, match=r"does not fit AdamW.*holds 10 variables, this "
                                         r"optimizer 13.*`t_cur`.*skip_mismatch=True"):
        target.load_weights(path)
    with pytest.warns(UserWarning, match="does not fit AdamW"):
        target.load_weights(path, skip_mismatch=True)  # the model weights only
    for ours, theirs in zip(numpy_values(target.weights), numpy_values(source.weights)):
        np.testing.assert_array_equal(ours, theirs)
    assert int(as_float64(target.optimizer.iterations)) == 0
    assert not any(np.any(as_float64(m)) for m in target.optimizer._momentums)


@pytest.mark.parametrize("suffix", [".keras"])
def test_adamw_state_into_builtin_adam_is_skipped_whole_with_a_warning(suffix, tmp_path):
    source = trained(keras_adamw.AdamW(0.01, total_iterations=5, use_cosine_annealing=True,
                                       init_verbose=False))
    path = tmp_path / f"adamw{suffix}"
    save(source, path)
    target = built_model(keras.optimizers.Adam(0.01))
    with pytest.warns(UserWarning, match="Skipping variable loading for optimizer.*10 "
                                         "variables whereas the saved optimizer has 13"):
        target.load_weights(path)
    assert int(as_float64(target.optimizer.iterations)) == 0  # nothing of ours leaked in
    assert not any(np.any(as_float64(m)) for m in target.optimizer._momentums)


def three_variable_model(seed):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((4,))
    hidden = keras.layers.Dense(6, use_bias=False, name="dense_1")(inputs)
    return keras.Model(inputs, keras.layers.Dense(2, name="dense_2")(hidden))


def test_state_of_another_optimizer_with_the_same_count_is_refused(tmp_path):
    """Adam with amsgrad on 3 variables has 2 + 3 * 3 = 11 variables, AdamW 2 + 3 +
    2 * 3 = 11: Keras would assign them by position (t_cur <- a moment)."""
    source = trained(keras.optimizers.Adam(0.01, amsgrad=True), three_variable_model(1))
    path = tmp_path / "amsgrad.weights.h5"
    source.save_weights(path)
    target = built_model(keras_adamw.AdamW(0.01, init_verbose=False), three_variable_model(2))
    assert len(target.optimizer.variables) == len(source.optimizer.variables)
    with pytest.raises(ValueError, match=r"variable 2 \(`AdamW/t_cur`, int(32|64) \(\)\) is saved "
                                         r"as float32 \(4, 6\)"):
        target.load_weights(path)
    assert int(as_float64(target.optimizer.t_cur)) == 0


@tf_only
@pytest.mark.parametrize("direction", ["Adam->AdamW", "AdamW->Adam"])
def test_tf_checkpoint_across_adam_and_adamw_raises(direction, tmp_path):
    import tensorflow as tf

    optimizers = {"Adam": lambda: keras.optimizers.Adam(0.01),
                  "AdamW": lambda: keras_adamw.AdamW(0.01, init_verbose=False)}
    source_name, target_name = direction.split("->")
    source = trained(optimizers[source_name]())
    path = tf.train.Checkpoint(model=source, optimizer=source.optimizer).save(
        str(tmp_path / "ckpt"))
    target = built_model(optimizers[target_name]())
    before = numpy_values(target.weights)
    # Keras tracks the optimizer's variables by position: _variables[2] is t_cur
    # (int64) in AdamW and a float moment in Adam.
    with pytest.raises(tf.errors.InvalidArgumentError, match="expected dtype"):
        tf.train.Checkpoint(model=target, optimizer=target.optimizer).restore(path)
    for ours, theirs in zip(numpy_values(target.weights), before):  # nothing restored
        np.testing.assert_array_equal(ours, theirs)
