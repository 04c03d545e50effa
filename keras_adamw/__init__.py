"""keras-adamw 2: AdamW, NadamW and SGDW with decoupled weight decay, warm restarts
and per-layer learning rates, for Keras 3 (TensorFlow, JAX, PyTorch) and tf_keras.

`import keras_adamw` gives the Keras 3 flavour. With `TF_KERAS=1` ("my models come
from tensorflow.keras"), it gives the flavour that `tf.keras` is in this
environment: the Keras 2 flavour when `TF_USE_LEGACY_KERAS=1` makes `tf.keras`
tf_keras, else Keras 3. `keras_adamw.keras3` and `keras_adamw.keras2` pick one
explicitly.
"""
import os

__version__ = "2.0.0"


def _tf_keras_is_keras2():
    """True when `tensorflow.keras` resolves to tf_keras (Keras 2)."""
    import tensorflow as tf  # type: ignore[import-untyped]

    return tf.keras.__name__.startswith("tf_keras") or not hasattr(tf.keras, "version") \
        or not str(tf.keras.version()).startswith("3")


def _flavour():
    if os.environ.get("TF_KERAS", "0") not in ("", "0") and _tf_keras_is_keras2():
        return "keras2"
    return "keras3"


FLAVOUR = _flavour()

if FLAVOUR == "keras2":
    from keras_adamw.keras2 import SGDW, AdamW, NadamW
else:
    from keras_adamw.keras3 import SGDW, AdamW, NadamW

from keras_adamw import callbacks, schedules, utils
from keras_adamw.core.layerwise import layerwise_lr_decay, layerwise_lr_decay_from_model
from keras_adamw.utils import K_eval, fill_dict_in_order, get_weight_decays

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
    "schedules",
    "utils",
]
