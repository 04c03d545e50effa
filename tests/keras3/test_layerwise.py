"""Layer-wise LR decay and decay exclusion on paths, against the float64 oracle.

Runs on the backend of this process. Each case applies the same random
gradients to our optimizer and to `reference.ReferenceOptimizer` configured with
the per-variable multipliers and decay mask the feature must produce, and
compares variables and slots.
"""
import warnings

import keras
import pytest
from cases import CASES
from helpers import check_against_oracle, check_layerwise_depths, layerwise_models
from keras3_helpers import float32_terms

import keras_adamw
from keras_adamw.core import matching

STEPS = 10
# The rows of an optimizer name (SGDW with momentum).
ROWS = {"adamw": "adamw", "nadamw": "nadamw", "sgdw": "sgdw_momentum"}


def readme_model():
    """adam-lr-decay's README model: Dense 'hidden_dense' then Dense 'output'."""
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((4,)),
                             keras.layers.Dense(3, activation="relu", name="hidden_dense"),
                             keras.layers.Dense(2, name="output")])


def two_dense_model():
    keras.utils.set_random_seed(1)
    inputs = keras.Input((4,))
    x = keras.layers.Dense(3, name="dense_1")(inputs)
    return keras.Model(inputs, keras.layers.Dense(2, name="dense_2")(x))


def make(row, **kwargs):
    """The row's optimizer at learning rate 0.01."""
    return CASES[row].make(keras_adamw, learning_rate=0.01, **kwargs)


def run_against_oracle(optimizer, model, row, **oracle_extra):
    """STEPS updates in both; asserts variables and slots agree (rtol 1e-5)."""
    case = CASES[row]
    return check_against_oracle(optimizer, case, model.trainable_variables, STEPS,
                                float32_terms(case), learning_rate=0.01, **oracle_extra)


@pytest.mark.parametrize("row", sorted(ROWS.values()))
def test_adam_lr_decay_readme_example_matches_oracle(row):
    """{'hidden_dense': 0.1, 'output': 0.0}: multipliers 0.9 (kernel, bias) and 1.0."""
    model = readme_model()
    optimizer = make(row)
    optimizer.apply_layerwise_lr_decay(var_name_dicts={"hidden_dense": 0.1, "output": 0.0})
    optimizer.build(model.trainable_variables)
    assert [rule.multiplier for rule in optimizer._rules] == pytest.approx([0.9, 0.9, 1, 1])
    run_against_oracle(optimizer, model, row, multipliers=[0.9, 0.9, 1.0, 1.0])


def test_var_dict_and_lr_multipliers_compose_as_a_product():
    model = readme_model()
    kernel = model.get_layer("output").kernel
    optimizer = make("adamw", lr_multipliers={"hidden_dense": 2.0})
    optimizer.apply_layerwise_lr_decay({"hidden_dense": 0.25}, var_dict=[(kernel, 0.5)])
    # 2.0 * (1 - 0.25) = 1.5 for hidden_dense; 0.5 for output/kernel only
    run_against_oracle(optimizer, model, "adamw", multipliers=[1.5, 1.5, 0.5, 1.0])


def test_layerwise_decay_constructor_argument_equals_the_method():
    model = readme_model()
    optimizer = make("sgdw", layerwise_lr_decay={"hidden": 1.0})
    run_against_oracle(optimizer, model, "sgdw", multipliers=[0.0, 0.0, 1.0, 1.0])


def test_unmatched_pattern_warns_and_late_call_is_refused():
    optimizer = keras_adamw.AdamW(init_verbose=False)
    optimizer.apply_layerwise_lr_decay({"hiden_dense": 0.1})
    with pytest.warns(UserWarning, match="layerwise_lr_decay.*'hiden_dense'.*hidden_dense"):
        optimizer.build(readme_model().trainable_variables)
    with pytest.raises(ValueError, match="before the optimizer is built"):
        optimizer.apply_layerwise_lr_decay({"output": 0.1})


@pytest.mark.parametrize("rates, error", [({"x": 1.5}, ValueError), ({"x": "a"}, TypeError),
                                          ([0.1], TypeError)])
def test_bad_decay_rates_name_the_argument(rates, error):
    with pytest.raises(error, match="var_name_dicts"):
        keras_adamw.AdamW().apply_layerwise_lr_decay(rates)
    with pytest.raises(error, match="layerwise_lr_decay"):
        keras_adamw.AdamW(layerwise_lr_decay=rates)


@pytest.mark.parametrize("kind", ["nested", "encoder", "stack_layer", "subclassed"])
def test_depth_through_model_structure(kind):
    """Nested models, multi-layer blocks, a layer holding blocks, a subclassed model."""
    model, expected = layerwise_models(keras)[kind]
    rates = keras_adamw.layerwise_lr_decay_from_model(model, 0.5)
    check_layerwise_depths(model, expected, rates, matching.variable_path)


def test_model_layer_order_variant():
    model = readme_model()
    rates = keras_adamw.layerwise_lr_decay_from_model(model, 0.5)
    optimizer = make("adamw")
    optimizer.apply_layerwise_lr_decay(rates)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        optimizer.build(model.trainable_variables)
    assert [rule.multiplier for rule in optimizer._rules] == [0.5, 0.5, 1.0, 1.0]


@pytest.mark.parametrize("kind", ["adamw", "sgdw"])
@pytest.mark.parametrize("pattern, mask", [("bias", [True, False, True, False]),
                                           ("dense_1", [False, False, True, True])])
def test_exclude_from_weight_decay_on_paths_matches_oracle(pattern, mask, kind):
    """Exactly the variables whose path matches are excluded, on every backend."""
    model = two_dense_model()
    assert [v.path for v in model.trainable_variables] == [
        "dense_1/kernel", "dense_1/bias", "dense_2/kernel", "dense_2/bias"]
    optimizer = make(ROWS[kind], weight_decay=0.5, exclude_from_weight_decay=[pattern])
    run_against_oracle(optimizer, model, ROWS[kind], weight_decay=0.5, decay_mask=mask)


def test_exclude_method_with_variables_matches_oracle():
    model = two_dense_model()
    optimizer = make("adamw", weight_decay=0.5)
    optimizer.exclude_from_weight_decay(var_list=[model.get_layer("dense_2").kernel])
    run_against_oracle(optimizer, model, "adamw", weight_decay=0.5,
                       decay_mask=[True, True, False, True])
