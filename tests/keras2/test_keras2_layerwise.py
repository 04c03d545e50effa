"""keras2: decay exclusion on names, layer-wise LR decay, WarmUp and the monitor.

Same checks as tests/keras3/test_layerwise.py, against the float64 oracle.
"""
import numpy as np
import pytest
import reference
from helpers import assert_close, f32

from keras_adamw.keras2 import SGDW, AdamW, NadamW
from keras_adamw.keras2.framework import (
    keras2 as tf_keras,  # tf_keras, or keras 2.x on TF < 2.16
)

STEPS = 10
CLASSES = {"adamw": AdamW, "nadamw": NadamW, "sgdw": SGDW}


def model_of(first="dense_1", second="dense_2"):
    tf_keras.utils.set_random_seed(0)
    return tf_keras.Sequential([
        tf_keras.layers.Dense(3, name=first, input_shape=(4,)),
        tf_keras.layers.Dense(2, name=second)])


def run_against_oracle(optimizer, model, kind, **oracle_extra):
    variables = model.trainable_variables
    params = [v.numpy().astype(np.float64) for v in variables]
    kwargs = {"learning_rate": 0.01, **oracle_extra}
    if kind == "sgdw":
        kwargs["momentum"] = f32(optimizer.momentum)
    else:
        kwargs["epsilon"] = optimizer.epsilon
    oracle = reference.ReferenceOptimizer(kind, [p.shape for p in params], **kwargs)
    rng = np.random.default_rng(0)
    for _ in range(STEPS):
        dense = [rng.normal(size=p.shape) for p in params]
        optimizer.apply_gradients(zip([g.astype("float32") for g in dense], variables))
        params = oracle.step(params, dense)
    for variable, expected in zip(variables, params):
        assert_close(variable.numpy(), expected, what=variable.name)
    return oracle


@pytest.mark.parametrize("kind", ["adamw", "sgdw"])
@pytest.mark.parametrize("pattern, mask", [("bias", [True, False, True, False]),
                                           ("dense_1", [False, False, True, True])])
def test_exclude_from_weight_decay_matches_oracle(pattern, mask, kind):
    model = model_of()
    assert [v.name for v in model.trainable_variables] == [
        "dense_1/kernel:0", "dense_1/bias:0", "dense_2/kernel:0", "dense_2/bias:0"]
    kwargs = {"momentum": 0.9} if kind == "sgdw" else {}
    optimizer = CLASSES[kind](learning_rate=0.01, weight_decay=0.5,
                              exclude_from_weight_decay=[pattern], init_verbose=False,
                              **kwargs)
    run_against_oracle(optimizer, model, kind, weight_decay=0.5, decay_mask=mask)


@pytest.mark.parametrize("kind", sorted(CLASSES))
def test_layerwise_lr_decay_matches_oracle(kind):
    """adam-lr-decay's README example: 'hidden_dense' decay 0.1, 'output' 0.0."""
    model = model_of("hidden_dense", "output")
    kwargs = {"momentum": 0.9} if kind == "sgdw" else {}
    optimizer = CLASSES[kind](learning_rate=0.01, init_verbose=False, **kwargs)
    optimizer.apply_layerwise_lr_decay(var_name_dicts={"hidden_dense": 0.1, "output": 0.0})
    run_against_oracle(optimizer, model, kind, multipliers=[0.9, 0.9, 1.0, 1.0])
    restored = CLASSES[kind].from_config(optimizer.get_config())
    assert restored.layerwise_lr_decay == {"hidden_dense": 0.1, "output": 0.0}


def test_layerwise_lr_decay_argument_composes_with_multipliers():
    model = model_of()
    optimizer = AdamW(learning_rate=0.01, lr_multipliers={"dense_2": 2.0},
                      layerwise_lr_decay={"dense": 0.5}, init_verbose=False)
    run_against_oracle(optimizer, model, "adamw", multipliers=[0.5, 0.5, 1.0, 1.0])

