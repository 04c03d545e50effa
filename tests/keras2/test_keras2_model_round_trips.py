"""tf_keras (or keras 2.x): per-variable settings survive save/load on every model type.

The Keras 2 twin of tests/keras3/test_model_round_trips.py. `Sequential`,
Functional, nested and subclassed models, each with `model=` decays,
`lr_multipliers`, `weight_decay` with `exclude_from_weight_decay`, and layer-wise
decay from the model:

- `.h5` (which restores the optimizer's state): the loaded model, continued
  mid-cycle, gives the weights and optimizer variables of the model that never
  stopped, with the same rule for every variable;
- SavedModel: tf_keras restores no `OptimizerV2` state from it (nor for its own
  Adam), so the optimizer rebuilt from its config must give every variable of the
  loaded model the same rule. A subclassed model saves to SavedModel only.
"""
import numpy as np
import pytest
import tensorflow as tf
from round_trip_models import assert_every_setting_applies, builders, train

import keras_adamw
from keras_adamw.keras2 import SGDW, AdamW, NadamW
from keras_adamw.keras2.framework import keras2 as tf_keras  # tf_keras, or keras 2.x

CUSTOM = {"AdamW": AdamW, "NadamW": NadamW, "SGDW": SGDW}
OPTIMIZERS = {"AdamW": (AdamW, {}), "NadamW": (NadamW, {}), "SGDW": (SGDW, {"momentum": 0.9})}


class Subclassed(tf_keras.Model):
    """Two regularized Dense layers as attributes; config holds the penalties the
    layers have now (so zeroed penalties stay zero on load)."""

    def __init__(self, l2=1e-3, l1=1e-3, **kwargs):
        super().__init__(**kwargs)
        self.dense_1 = tf_keras.layers.Dense(5, activation="tanh", name="dense_1",
                                             kernel_regularizer=tf_keras.regularizers.l2(l2))
        self.dense_2 = tf_keras.layers.Dense(2, name="dense_2",
                                             kernel_regularizer=tf_keras.regularizers.l1(l1))

    def call(self, inputs):
        return self.dense_2(self.dense_1(inputs))

    def get_config(self):
        return {"l2": float(self.dense_1.kernel_regularizer.l2),
                "l1": float(self.dense_2.kernel_regularizer.l1)}


def subclassed():
    model = Subclassed()
    model(np.zeros((1, 4), "float32"))
    return model


MODELS = {**builders(tf_keras), "subclassed": subclassed}


def compiled(kind, name):
    tf_keras.utils.set_random_seed(5)
    model = MODELS[kind]()
    cls, options = OPTIMIZERS[name]
    optimizer = cls(learning_rate=0.01, model=model, total_iterations=5,
                    use_cosine_annealing=True, lr_multipliers={"dense_1": 0.5},
                    weight_decay=0.05, exclude_from_weight_decay=["bias"],
                    init_verbose=False, **options)
    optimizer.apply_layerwise_lr_decay(keras_adamw.layerwise_lr_decay_from_model(model, 0.8))
    model.compile(optimizer, loss="mse")
    return model


def rules_by_layer(model):
    """`{layer/weight: rule}` (the last two name segments, without `:0`)."""
    return {"/".join(v.name.split(":")[0].split("/")[-2:]): model.optimizer._variable_rule(v)
            for v in model.trainable_variables}


def test_the_settings_reach_every_kind_of_setting():
    model = compiled("sequential", "AdamW")
    train(model, [0])
    assert_every_setting_applies(rules_by_layer(model))


@pytest.mark.parametrize("name", OPTIMIZERS)
@pytest.mark.parametrize("kind", ["sequential", "functional", "nested"])
def test_h5_mid_cycle_continues_as_the_run_that_never_stopped(kind, name, tmp_path):
    model = compiled(kind, name)
    train(model, [0, 1, 2])
    before = rules_by_layer(model)
    model.save(tmp_path / "model.h5")
    loaded = tf_keras.models.load_model(tmp_path / "model.h5", custom_objects=CUSTOM)
    train(model, [3, 4, 5])
    train(loaded, [3, 4, 5])
    assert rules_by_layer(loaded) == before
    for ours, theirs in zip(loaded.optimizer.get_weights(), model.optimizer.get_weights()):
        np.testing.assert_array_equal(ours, theirs)
    for ours, theirs in zip(loaded.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("kind", MODELS)
def test_savedmodel_gives_every_variable_its_rule(kind, tmp_path):
    model = compiled(kind, "AdamW")
    train(model, [0])
    before = rules_by_layer(model)
    model.save(tmp_path / "saved", save_format="tf", save_traces=False)
    loaded = tf_keras.models.load_model(
        tmp_path / "saved", custom_objects={**CUSTOM, "Subclassed": Subclassed})
    train(loaded, [1])
    assert rules_by_layer(loaded) == before
    assert np.all(np.isfinite(tf.concat([tf.reshape(w, [-1]) for w in loaded.weights], 0)))
