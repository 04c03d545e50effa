"""Per-variable settings survive save/load and rebuilds, on every model type (issue 13).

`keras.models.load_model` and `from_config` rebuild a model whose variable paths
can lose the scopes of the original (`sequential/dense_1/kernel` becomes
`dense_1/kernel`, a nested model's `inner/inner_dense/kernel` becomes
`inner_dense/kernel`). For `Sequential`, Functional, subclassed and nested models,
each with `model=` decays, `lr_multipliers`, `weight_decay` with
`exclude_from_weight_decay`, and layer-wise decay from the model:

- the optimizer that `load_model` brings back gives every variable the rule it had
  (multiplier, decays), and continuing the loaded model mid-cycle gives the weights
  and every optimizer variable of the model that never stopped;
- `from_config` of the optimizer, built on the model rebuilt from its config, gives
  the same rules.
"""
import keras
import numpy as np
import pytest
from helpers import numpy_values
from round_trip_models import assert_every_setting_applies, builders, train

import keras_adamw
from keras_adamw.utils import K_eval


@keras.saving.register_keras_serializable(package="keras_adamw_tests")
class Subclassed(keras.Model):
    """Two regularized Dense layers as attributes of a subclassed model. Its config
    holds the penalties as the layers have them now, so the penalties that `model=`
    zeroed stay zero when `load_model` rebuilds it (a model that re-creates
    `l2(1e-3)` in `__init__` would apply the loss penalty again: docs/pages/matching.md)."""

    def __init__(self, l2=1e-3, l1=1e-3, **kwargs):
        super().__init__(**kwargs)
        self.dense_1 = keras.layers.Dense(5, activation="tanh", name="dense_1",
                                          kernel_regularizer=keras.regularizers.l2(l2))
        self.dense_2 = keras.layers.Dense(2, name="dense_2",
                                          kernel_regularizer=keras.regularizers.l1(l1))

    def call(self, inputs):
        return self.dense_2(self.dense_1(inputs))

    def get_config(self):
        return {**super().get_config(), "l2": self.dense_1.kernel_regularizer.l2,
                "l1": self.dense_2.kernel_regularizer.l1}


def subclassed():
    model = Subclassed()
    model(np.zeros((1, 4), "float32"))
    return model


MODELS = {**builders(keras), "subclassed": subclassed}
OPTIMIZERS = {"AdamW": (keras_adamw.AdamW, {}), "NadamW": (keras_adamw.NadamW, {}),
              "SGDW": (keras_adamw.SGDW, {"momentum": 0.9})}


def compiled(kind, name, seed=5):
    """A model with every per-variable setting, keyed as the model names its
    variables now (paths with the model's scopes)."""
    keras.utils.set_random_seed(seed)
    model = MODELS[kind]()
    cls, options = OPTIMIZERS[name]
    dense_1 = next(v.path for v in model.trainable_variables if "dense_1/kernel" in v.path)
    optimizer = cls(
        learning_rate=0.01, model=model, total_iterations=5, use_cosine_annealing=True,
        lr_multipliers={dense_1.rsplit("/", 1)[0]: 0.5}, weight_decay=0.05,
        exclude_from_weight_decay=["bias"], init_verbose=False, **options)
    optimizer.apply_layerwise_lr_decay(keras_adamw.layerwise_lr_decay_from_model(model, 0.8))
    model.compile(optimizer, loss="mse")
    return model


def rules_by_layer(model):
    """`{layer/weight: rule}`: the last two path segments name a variable in both
    the original and the rebuilt model."""
    optimizer = model.optimizer
    return {"/".join(v.path.split("/")[-2:]): optimizer._variable_rule(v)
            for v in model.trainable_variables}


def test_the_settings_reach_every_kind_of_setting():
    """The case below is not vacuous: multipliers, both decays and exclusions differ."""
    model = compiled("sequential", "AdamW")
    train(model, [0])
    assert_every_setting_applies(rules_by_layer(model))


@pytest.mark.parametrize("name", OPTIMIZERS)
@pytest.mark.parametrize("kind", MODELS)
def test_load_model_mid_cycle_continues_as_the_run_that_never_stopped(kind, name, tmp_path):
    model = compiled(kind, name)
    train(model, [0, 1, 2])  # mid-cycle: 3 of 5 updates
    before = rules_by_layer(model)
    model.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras")
    train(model, [3, 4, 5])
    train(loaded, [3, 4, 5])
    assert rules_by_layer(loaded) == before
    for ours, theirs in zip(loaded.optimizer.variables, model.optimizer.variables):
        np.testing.assert_array_equal(K_eval(ours), K_eval(theirs), err_msg=ours.path)
    for ours, theirs in zip(numpy_values(loaded.weights), numpy_values(model.weights)):
        np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("kind", MODELS)
def test_from_config_on_a_rebuilt_model_applies_the_same_rules(kind):
    model = compiled(kind, "AdamW")
    train(model, [0])
    config = keras.optimizers.serialize(model.optimizer)
    rebuilt = model.__class__.from_config(model.get_config())
    rebuilt(np.zeros((1, 4), "float32"))
    rebuilt.compile(keras.optimizers.deserialize(config), loss="mse")
    train(rebuilt, [0])
    assert rules_by_layer(rebuilt) == rules_by_layer(model)
