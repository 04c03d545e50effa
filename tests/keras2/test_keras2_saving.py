"""Config round trip, .h5 / SavedModel / .keras with custom_objects, and
tf.train.Checkpoint restoring slots, iterations, t_cur and eta_t exactly."""
import numpy as np
import pytest
import tensorflow as tf
from cases import case_id, rows
from helpers import fit_data

from keras_adamw import keras2
from keras_adamw.keras2.framework import (
    keras2 as tf_keras,  # tf_keras, or keras 2.x on TF < 2.16
)

OPTIONS = {"learning_rate": 0.01, "lr_multipliers": {"d1": 0.5},
           "weight_decays": {"d1/kernel": (0.0, 1e-2)}, "use_cosine_annealing": True,
           "total_iterations": 4, "weight_decay": 0.02, "exclude_from_weight_decay": ["bias"]}
SAVED = rows("adamw_amsgrad", "nadamw", "sgdw_nesterov")


def _model(optimizer):
    model = tf_keras.Sequential([tf_keras.layers.Dense(3, name="d1", input_shape=(2,)),
                                 tf_keras.layers.Dense(1, name="d2")])
    model.compile(optimizer=optimizer, loss="mse")
    return model


def _data():
    return fit_data(24, features=2, outputs=1)


def _state(optimizer):
    return [np.asarray(w) for w in optimizer.get_weights()]


@pytest.mark.parametrize("case", SAVED, ids=case_id)
def test_config_round_trip(case):
    cls, name = getattr(keras2, case.class_name), case.class_name
    optimizer = case.make(keras2, **OPTIONS)
    config = optimizer.get_config()
    again = cls.from_config(config)
    assert again.get_config() == config
    assert config["lr_multipliers"] == {"d1": 0.5} and config["t_cur"] == 0
    restored = tf_keras.optimizers.deserialize(tf_keras.optimizers.serialize(optimizer),
                                               custom_objects={name: cls},
                                               use_legacy_optimizer=True)
    assert type(restored) is cls and restored.get_config() == config


@pytest.mark.parametrize("fmt", ["h5", "tf", "keras"])
@pytest.mark.parametrize("case", SAVED, ids=case_id)
def test_save_load_continues_training(case, fmt, tmp_path):
    cls, name = getattr(keras2, case.class_name), case.class_name
    x, y = _data()
    model = _model(case.make(keras2, **OPTIONS))
    model.fit(x, y, batch_size=8, epochs=2, verbose=0)  # 6 updates: t_cur restarted
    path = str(tmp_path / ("m.h5" if fmt == "h5" else "m.keras" if fmt == "keras" else "m"))
    model.save(path, save_format=None if fmt != "tf" else "tf")
    loaded = tf_keras.models.load_model(path, custom_objects={name: cls})
    assert type(loaded.optimizer) is cls
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    if fmt != "h5":
        # tf_keras restores no legacy-optimizer state from SavedModel or .keras
        # (its own legacy Adam neither): h5 and tf.train.Checkpoint do.
        loaded.fit(x, y, batch_size=8, epochs=1, verbose=0)
        return
    get = tf_keras.backend.get_value
    for attribute in ("iterations", "t_cur", "eta_t"):
        assert get(getattr(loaded.optimizer, attribute)) == get(
            getattr(model.optimizer, attribute)), attribute
    for a, b in zip(_state(loaded.optimizer), _state(model.optimizer)):
        np.testing.assert_array_equal(a, b)
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, shuffle=False)
    loaded.fit(x, y, batch_size=8, epochs=1, verbose=0, shuffle=False)
    for a, b in zip(loaded.get_weights(), model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("case", SAVED, ids=case_id)
def test_checkpoint_restores_state_exactly(case, tmp_path):
    x, y = _data()
    model = _model(case.make(keras2, **OPTIONS))
    model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    tf_keras.backend.set_value(model.optimizer.t_cur, -1)  # manual restart is state too
    path = tf.train.Checkpoint(model=model, optimizer=model.optimizer).save(
        str(tmp_path / "ckpt"))

    fresh = _model(case.make(keras2, **OPTIONS))
    fresh.set_weights([w * 0 for w in fresh.get_weights()])
    tf.train.Checkpoint(model=fresh, optimizer=fresh.optimizer).restore(path)
    get = tf_keras.backend.get_value  # reading them creates and restores them
    assert get(fresh.optimizer.t_cur) == -1
    assert get(fresh.optimizer.iterations) == get(model.optimizer.iterations) == 6
    assert get(fresh.optimizer.eta_t) == get(model.optimizer.eta_t)
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, shuffle=False)
    fresh.fit(x, y, batch_size=8, epochs=1, verbose=0, shuffle=False)
    for slot in model.optimizer.get_slot_names():
        for a, b in zip(model.trainable_variables, fresh.trainable_variables):
            np.testing.assert_array_equal(model.optimizer.get_slot(a, slot).numpy(),
                                          fresh.optimizer.get_slot(b, slot).numpy())
    for a, b in zip(fresh.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert get(fresh.optimizer.t_cur) == get(model.optimizer.t_cur) == 2
