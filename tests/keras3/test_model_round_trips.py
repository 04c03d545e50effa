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
from cases import CASES, EACH_OPTIMIZER, case_id, rows
from helpers import (
    as_float64,
    assert_every_setting_applies,
    built,
    model_builders,
    subclassed_model_class,
)
from helpers import train_batches as train
from keras3_helpers import numpy_values

import keras_adamw

Subclassed = keras.saving.register_keras_serializable(package="keras_adamw_tests")(
    subclassed_model_class(keras, base_config=True))
MODELS = {**model_builders(keras), "subclassed": lambda: built(Subclassed())}
OPTIMIZERS = rows(*EACH_OPTIMIZER)


def compiled(kind, case, seed=5):
    """A model with every per-variable setting, keyed as the model names its
    variables now (paths with the model's scopes)."""
    keras.utils.set_random_seed(seed)
    model = MODELS[kind]()
    dense_1 = next(v.path for v in model.trainable_variables if "dense_1/kernel" in v.path)
    optimizer = case.make(
        keras_adamw, learning_rate=0.01, model=model, total_iterations=5,
        use_cosine_annealing=True, lr_multipliers={dense_1.rsplit("/", 1)[0]: 0.5},
        weight_decay=0.05, exclude_from_weight_decay=["bias"])
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
    model = compiled("sequential", CASES["adamw"])
    train(model, [0])
    assert_every_setting_applies(rules_by_layer(model))


@pytest.mark.parametrize("case", OPTIMIZERS, ids=case_id)
@pytest.mark.parametrize("kind", MODELS)
def test_load_model_mid_cycle_continues_as_the_run_that_never_stopped(kind, case, tmp_path):
    model = compiled(kind, case)
    train(model, [0, 1, 2])  # mid-cycle: 3 of 5 updates
    before = rules_by_layer(model)
    model.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras")
    train(model, [3, 4, 5])
    train(loaded, [3, 4, 5])
    assert rules_by_layer(loaded) == before
    for ours, theirs in zip(loaded.optimizer.variables, model.optimizer.variables):
        np.testing.assert_array_equal(as_float64(ours), as_float64(theirs), err_msg=ours.path)
    for ours, theirs in zip(numpy_values(loaded.weights), numpy_values(model.weights)):
        np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("kind", MODELS)
def test_from_config_on_a_rebuilt_model_applies_the_same_rules(kind):
    model = compiled(kind, CASES["adamw"])
    train(model, [0])
    config = keras.optimizers.serialize(model.optimizer)
    rebuilt = model.__class__.from_config(model.get_config())
    rebuilt(np.zeros((1, 4), "float32"))
    rebuilt.compile(keras.optimizers.deserialize(config), loss="mse")
    train(rebuilt, [0])
    assert rules_by_layer(rebuilt) == rules_by_layer(model)
