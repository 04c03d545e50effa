"""The Keras 2 that this TensorFlow provides, for the Keras 2 flavour.

`tf.keras` is Keras 2 in two forms: the `keras` 2.x package on TensorFlow
2.12-2.15 (what `tf.keras` is there), and the `tf_keras` package on TensorFlow
>= 2.16 with `TF_USE_LEGACY_KERAS=1` (TensorFlow's own `tf.keras` is Keras 3
there). One adapter serves both: `keras2` is whichever this TensorFlow uses,
`optimizer_v2` its legacy `OptimizerV2` module, the base of our optimizers.
"""
import importlib

import tensorflow as tf  # type: ignore[import-untyped]


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
