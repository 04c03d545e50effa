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
from cases import CASES, EACH_OPTIMIZER, case_id, rows
from helpers import (
    assert_every_setting_applies,
    built,
    model_builders,
    subclassed_model_class,
)
from helpers import train_batches as train

import keras_adamw
from keras_adamw import keras2
from keras_adamw.keras2 import SGDW, AdamW, NadamW
from keras_adamw.keras2.framework import keras2 as tf_keras  # tf_keras, or keras 2.x

CUSTOM = {"AdamW": AdamW, "NadamW": NadamW, "SGDW": SGDW}
Subclassed = subclassed_model_class(tf_keras)
MODELS = {**model_builders(tf_keras), "subclassed": lambda: built(Subclassed())}
OPTIMIZERS = rows(*EACH_OPTIMIZER)


def compiled(kind, case):
    tf_keras.utils.set_random_seed(5)
    model = MODELS[kind]()
    optimizer = case.make(keras2, learning_rate=0.01, model=model, total_iterations=5,
                          use_cosine_annealing=True, lr_multipliers={"dense_1": 0.5},
                          weight_decay=0.05, exclude_from_weight_decay=["bias"])
    optimizer.apply_layerwise_lr_decay(keras_adamw.layerwise_lr_decay_from_model(model, 0.8))
    model.compile(optimizer, loss="mse")
    return model


def rules_by_layer(model):
    """`{layer/weight: rule}` (the last two name segments, without `:0`)."""
    return {"/".join(v.name.split(":")[0].split("/")[-2:]): model.optimizer._variable_rule(v)
            for v in model.trainable_variables}


@pytest.mark.parametrize("case", OPTIMIZERS, ids=case_id)
@pytest.mark.parametrize("kind", ["sequential", "functional", "nested"])
def test_h5_mid_cycle_continues_as_the_run_that_never_stopped(kind, case, tmp_path):
    model = compiled(kind, case)
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
    model = compiled(kind, CASES["adamw"])
    train(model, [0])
    before = rules_by_layer(model)
    model.save(tmp_path / "saved", save_format="tf", save_traces=False)
    loaded = tf_keras.models.load_model(
        tmp_path / "saved", custom_objects={**CUSTOM, "Subclassed": Subclassed})
    train(loaded, [1])
    assert rules_by_layer(loaded) == before
    assert np.all(np.isfinite(tf.concat([tf.reshape(w, [-1]) for w in loaded.weights], 0)))


def test_the_settings_reach_every_kind_of_setting():
    model = compiled("sequential", CASES["adamw"])
    train(model, [0])
    assert_every_setting_applies(rules_by_layer(model))
