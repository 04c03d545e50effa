"""The Keras that the keras-adamw 1.x tests run on, picked as keras-adamw picks it.

keras-adamw 1.x's `tests/backend.py` chose `keras` or `tensorflow.keras` with
TF_KERAS. Here the same test module runs on:

- Keras 3 (`keras`), backend from KERAS_BACKEND (tensorflow, jax, torch): default;
- Keras 2 (`tf.keras` = tf_keras): TF_USE_LEGACY_KERAS=1 TF_KERAS=1
  KERAS_BACKEND=tensorflow, the flavour `keras_adamw.FLAVOUR` then reports.

It exports what 1.x's helper exported (layers, `Model`, `load_model`,
regularizers, `maxnorm`, the framework's own `Adam`/`Nadam`/`SGD`, `K`), plus
the few accessors whose Keras 2 and Keras 3 spellings differ.
"""
import os

import numpy as np

import keras_adamw
from keras_adamw.utils import K_eval

KERAS2 = keras_adamw.FLAVOUR == "keras2"
TF_KERAS = os.environ.get("TF_KERAS", "0") not in ("", "0")

if KERAS2:
    import tensorflow as tf  # type: ignore[import-untyped]

    keras = tf.keras  # tf_keras under TF_USE_LEGACY_KERAS=1
    BACKEND = "tensorflow"
    # keras-adamw 1.x subclassed OptimizerV2, and its controls were the
    # OptimizerV2 Adam/Nadam/SGD (they take `lr=` and `decay=`); tf_keras ships
    # those as `optimizers.legacy` (`optimizers.Adam` is the newer class).
    Adam = keras.optimizers.legacy.Adam
    Nadam = keras.optimizers.legacy.Nadam
    SGD = keras.optimizers.legacy.SGD
    # tf_keras saves a whole model to .h5, SavedModel and .keras.
    SAVE_FORMATS = ("h5", "tf", "keras")
else:
    import keras  # type: ignore[import-untyped]

    BACKEND = keras.backend.backend()
    Adam = keras.optimizers.Adam
    Nadam = keras.optimizers.Nadam
    SGD = keras.optimizers.SGD
    # 1.x saved whole models to .h5. Keras 3's format is .keras: its .h5 is a
    # deprecated legacy path (in Keras 3.15 a compiled model saved there fails
    # to load: "Could not deserialize 'keras.metrics.mse'"). `.weights.h5`
    # holds the model's and the optimizer's variables.
    SAVE_FORMATS = ("keras", "weights.h5")

K = keras.backend
Input = keras.layers.Input
Dense = keras.layers.Dense
GRU = keras.layers.GRU
Bidirectional = keras.layers.Bidirectional
Embedding = keras.layers.Embedding
Model = keras.models.Model
load_model = keras.models.load_model
l1 = keras.regularizers.l1
l2 = keras.regularizers.l2
l1_l2 = keras.regularizers.l1_l2
maxnorm = keras.constraints.MaxNorm


def optimizer_weights(optimizer):
    """1.x's `optimizer.weights`: Keras 3 calls them `optimizer.variables`."""
    return list(optimizer.weights if KERAS2 else optimizer.variables)


def batch_get_value(variables):
    """1.x's `K.batch_get_value` (Keras 3 has none): numpy values, any backend."""
    return [np.asarray(K_eval(v)) for v in variables]


def set_value(variable, value):
    """1.x's `K.set_value`: Keras 3 has none; `assign` works in both flavours."""
    variable.assign(value)


def model_path(directory, fmt):
    """Where `_test_save_load` writes one format."""
    return os.path.join(directory, "model" if fmt == "tf" else "model." + fmt)
