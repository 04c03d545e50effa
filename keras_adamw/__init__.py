"""keras-adamw 2: AdamW, NadamW and SGDW with decoupled weight decay, warm restarts
and per-layer learning rates, for Keras 3 (TensorFlow, JAX, PyTorch) and tf_keras.

`import keras_adamw` gives the Keras 3 flavour. With `TF_KERAS=1` ("my models come
from tensorflow.keras"), it gives the flavour that `tf.keras` is in this
environment: the Keras 2 flavour when `TF_USE_LEGACY_KERAS=1` makes `tf.keras`
tf_keras, else Keras 3. `keras_adamw.keras3` and `keras_adamw.keras2` pick one
explicitly.
"""
import contextlib
import importlib.metadata
import os

__version__ = "2.0.0"

# Top-level module a flavour or backend needs -> the extra that installs it.
_EXTRAS = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch", "tf_keras": "legacy"}


@contextlib.contextmanager
def _naming_the_extra():
    """Turns a missing backend into an error that names the extra to install."""
    try:
        yield
    except ModuleNotFoundError as error:
        module = (error.name or "").split(".")[0]
        if module not in _EXTRAS:
            raise
        backend = os.environ.get("KERAS_BACKEND", "the backend in ~/.keras/keras.json")
        raise ModuleNotFoundError(
            f"keras-adamw needs `{module}` here (KERAS_BACKEND={backend}, "
            f"TF_KERAS={os.environ.get('TF_KERAS', '0')}), and it is not installed. "
            f"Install it with `pip install \"keras-adamw[{_EXTRAS[module]}]\"`, or pick an "
            f"installed backend with KERAS_BACKEND=tensorflow|jax|torch.",
            name=error.name) from error


def _tf_keras_is_keras2():
    """True when `tensorflow.keras` resolves to tf_keras (Keras 2)."""
    import tensorflow as tf  # type: ignore[import-untyped]

    return tf.keras.__name__.startswith("tf_keras") or not hasattr(tf.keras, "version") \
        or not str(tf.keras.version()).startswith("3")


def _flavour():
    if os.environ.get("TF_KERAS", "0") not in ("", "0") and _tf_keras_is_keras2():
        return "keras2"
    _check_keras3()
    return "keras3"


def _check_keras3():
    """The Keras 3 flavour needs Keras >= 3.3; TensorFlow 2.12-2.15 come with keras 2.x."""
    version = importlib.metadata.version("keras")
    if int(version.split(".")[0]) < 3:
        raise ImportError(
            f"keras-adamw's default flavour needs Keras 3 (>= 3.3); this environment has "
            f"keras {version} (the `tf.keras` of TensorFlow 2.12-2.15). Set TF_KERAS=1 for "
            f"the Keras 2 flavour (`keras_adamw.keras2`), or `pip install \"keras>=3.3\"` "
            f"with TensorFlow >= 2.16.")


with _naming_the_extra():
    FLAVOUR = _flavour()
    if FLAVOUR == "keras2":
        from keras_adamw.keras2 import SGDW, AdamW, NadamW
    else:
        from keras_adamw.keras3 import SGDW, AdamW, NadamW

from keras_adamw import callbacks, schedules, utils
from keras_adamw.core.layerwise import layerwise_lr_decay, layerwise_lr_decay_from_model
from keras_adamw.utils import K_eval, fill_dict_in_order, get_weight_decays, reset_seeds

__all__ = [
    "FLAVOUR",
    "SGDW",
    "AdamW",
    "K_eval",
    "NadamW",
    "__version__",
    "callbacks",
    "fill_dict_in_order",
    "get_weight_decays",
    "layerwise_lr_decay",
    "layerwise_lr_decay_from_model",
    "reset_seeds",
    "schedules",
    "utils",
]
