"""keras2: decay exclusion on names, layer-wise LR decay, WarmUp and the monitor.

Same checks as tests/keras3/test_layerwise.py, against the float64 oracle.
"""
import pytest
from cases import CASES
from helpers import (
    FLOAT32_ALL,
    check_against_oracle,
    check_layerwise_depths,
    layerwise_models,
)

from keras_adamw import keras2, layerwise_lr_decay_from_model
from keras_adamw.core import matching
from keras_adamw.keras2.framework import (
    keras2 as tf_keras,  # tf_keras, or keras 2.x on TF < 2.16
)

STEPS = 10
# The rows of an optimizer name (SGDW with momentum).
ROWS = {"adamw": "adamw", "nadamw": "nadamw", "sgdw": "sgdw_momentum"}


def model_of(first="dense_1", second="dense_2"):
    tf_keras.utils.set_random_seed(0)
    return tf_keras.Sequential([
        tf_keras.layers.Dense(3, name=first, input_shape=(4,)),
        tf_keras.layers.Dense(2, name=second)])


def make(row, **kwargs):
    """The row's optimizer at learning rate 0.01."""
    return CASES[row].make(keras2, learning_rate=0.01, **kwargs)


def run_against_oracle(optimizer, model, row, **oracle_extra):
    """STEPS updates in both; asserts variables and slots agree (rtol 1e-5)."""
    return check_against_oracle(optimizer, CASES[row], model.trainable_variables, STEPS,
                                FLOAT32_ALL, learning_rate=0.01, **oracle_extra)


@pytest.mark.parametrize("kind", ["adamw", "sgdw"])
@pytest.mark.parametrize("pattern, mask", [("bias", [True, False, True, False]),
                                           ("dense_1", [False, False, True, True])])
def test_exclude_from_weight_decay_matches_oracle(pattern, mask, kind):
    model = model_of()
    assert [v.name for v in model.trainable_variables] == [
        "dense_1/kernel:0", "dense_1/bias:0", "dense_2/kernel:0", "dense_2/bias:0"]
    optimizer = make(ROWS[kind], weight_decay=0.5, exclude_from_weight_decay=[pattern])
    run_against_oracle(optimizer, model, ROWS[kind], weight_decay=0.5, decay_mask=mask)


@pytest.mark.parametrize("row", sorted(ROWS.values()))
def test_layerwise_lr_decay_matches_oracle(row):
    """adam-lr-decay's README example: 'hidden_dense' decay 0.1, 'output' 0.0."""
    model = model_of("hidden_dense", "output")
    optimizer = make(row)
    optimizer.apply_layerwise_lr_decay(var_name_dicts={"hidden_dense": 0.1, "output": 0.0})
    run_against_oracle(optimizer, model, row, multipliers=[0.9, 0.9, 1.0, 1.0])
    restored = type(optimizer).from_config(optimizer.get_config())
    assert restored.layerwise_lr_decay == {"hidden_dense": 0.1, "output": 0.0}


def test_layerwise_lr_decay_argument_composes_with_multipliers():
    model = model_of()
    optimizer = make("adamw", lr_multipliers={"dense_2": 2.0},
                     layerwise_lr_decay={"dense": 0.5})
    run_against_oracle(optimizer, model, "adamw", multipliers=[0.5, 0.5, 1.0, 1.0])



@pytest.mark.parametrize("kind", ["nested", "encoder", "stack_layer", "subclassed"])
def test_depth_through_model_structure(kind):
    """As in Keras 3: nested models, multi-layer blocks, a layer holding blocks, a
    subclassed model, on tf_keras models."""
    model, expected = layerwise_models(tf_keras)[kind]
    rates = layerwise_lr_decay_from_model(model, 0.5)
    check_layerwise_depths(model, expected, rates, matching.variable_path)
