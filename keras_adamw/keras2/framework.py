"""The Keras 2 that this TensorFlow provides, for the Keras 2 flavour.

`tf.keras` is Keras 2 in two forms: the `keras` 2.x package on TensorFlow
2.12-2.15 (what `tf.keras` is there), and the `tf_keras` package on TensorFlow
>= 2.16 with `TF_USE_LEGACY_KERAS=1` (TensorFlow's own `tf.keras` is Keras 3
there). One adapter serves both: `keras2` is whichever this TensorFlow uses,
`optimizer_v2` its legacy `OptimizerV2` module, the base of our optimizers;
`FRAMEWORK` describes it for the flavour-neutral adapter (`keras_adamw.adapter`).
"""
import importlib

import numpy as np
import tensorflow as tf  # type: ignore[import-untyped]

from keras_adamw.adapter.framework import Flavour, Framework


def _version(text):
    """(major, minor) of a version string such as `2.15.1`."""
    major, minor = str(text).split(".")[:2]
    return int(major), int(minor)


def _keras2_package():
    """The `keras` 2.x package on TensorFlow < 2.16, else `tf_keras`."""
    if _version(tf.__version__) < (2, 16):
        keras = importlib.import_module("keras")
        if _version(keras.__version__) < (3, 0):
            return keras
    return importlib.import_module("tf_keras")


def _optimizer_v2(package):
    """The legacy `OptimizerV2` module (under `src/` since Keras 2.13)."""
    try:
        return importlib.import_module(f"{package.__name__}.src.optimizers.legacy.optimizer_v2")
    except ModuleNotFoundError:
        return importlib.import_module(f"{package.__name__}.optimizers.legacy.optimizer_v2")


keras2 = _keras2_package()
optimizer_v2 = _optimizer_v2(keras2)


def _zero_strength():
    """tf_keras keeps `l1`/`l2` as numpy float arrays of `floatx` (read when zeroed)."""
    return np.zeros((), keras2.backend.floatx())


FLAVOUR = Flavour(
    name="Keras 2 (tf_keras)", model_name="tf_keras.Model",
    foreign_modules=("keras",), foreign_name="Keras 3",
    fix=("Use `from keras_adamw.keras3 import AdamW` (or `import keras_adamw` without "
         "TF_KERAS=1), or build the model with `tf_keras` (TF_USE_LEGACY_KERAS=1)."))

FRAMEWORK = Framework(
    keras=keras2, flavour=FLAVOUR, zero_strength=_zero_strength,
    current_lr=lambda optimizer: optimizer._decayed_lr("float32"),
    xp=tf, deserialize=keras2.optimizers.schedules.deserialize)
