"""Weight decays read from a tf_keras model's L1/L2/L1L2 regularizers.

tf_keras stores `l1`/`l2` as numpy float arrays; they are read first, then
(with `zero_penalties=True`) zeroed, so L2 is not applied twice.
"""
import warnings

import numpy as np

from keras_adamw.core import matching
from keras_adamw.core.checks import shortest_decimal
from keras_adamw.keras2.framework import keras2

# Layer attribute of the regularizer -> layer attribute of the variable it regularizes.
REGULARIZED_WEIGHTS = {
    "kernel_regularizer": "kernel",
    "bias_regularizer": "bias",
    "recurrent_regularizer": "recurrent_kernel",
    "embeddings_regularizer": "embeddings",
    "depthwise_regularizer": "depthwise_kernel",
    "pointwise_regularizer": "pointwise_kernel",
    "gamma_regularizer": "gamma",
    "beta_regularizer": "beta",
}


def check_model(model, argument="model"):
    """Refuses anything but a tf_keras model, naming the flavour and the fix."""
    if isinstance(model, keras2.Model):
        return
    if type(model).__module__.startswith("keras"):
        raise TypeError(
            f"Argument `{argument}` is a Keras 3 model ({type(model).__name__}), but this "
            f"optimizer is the Keras 2 (tf_keras) flavour. Use `from keras_adamw.keras3 "
            f"import AdamW` (or `import keras_adamw` without TF_KERAS=1), or build the "
            f"model with `tf_keras` (TF_USE_LEGACY_KERAS=1).")
    raise TypeError(f"Argument `{argument}` must be a tf_keras.Model. Received: "
                    f"{argument}={model!r} of type {type(model).__name__}")


def l1_l2_of(regularizer):
    """`(l1, l2)` of an L1, L2 or L1L2 regularizer; None for any other kind."""
    if not isinstance(regularizer, (keras2.regularizers.L1, keras2.regularizers.L2,
                                    keras2.regularizers.L1L2)):
        return None
    return (shortest_decimal(getattr(regularizer, "l1", 0.0)),
            shortest_decimal(getattr(regularizer, "l2", 0.0)))


def zero(regularizer):
    """Sets `l1`/`l2` to zero, keeping tf_keras's numpy float type."""
    for attribute in ("l1", "l2"):
        if hasattr(regularizer, attribute):
            setattr(regularizer, attribute, np.zeros((), keras2.backend.floatx()))


def regularized_variables(model):
    """`(layer, variable, regularizer)` for every regularized weight, nested too."""
    seen = set()
    for layer in model._flatten_layers(include_self=False, recursive=True):
        for reg_attribute, weight_attribute in REGULARIZED_WEIGHTS.items():
            regularizer = getattr(layer, reg_attribute, None)
            variable = getattr(layer, weight_attribute, None)
            if regularizer is None or variable is None or id(variable) in seen:
                continue
            seen.add(id(variable))
            yield layer, variable, regularizer


def get_weight_decays(model, zero_penalties=False):
    """`{variable name: (l1, l2)}` from the model's L1/L2/L1L2 regularizers.

    Args:
        model: a built tf_keras model.
        zero_penalties: also zero the regularizers (the decay replaces them).

    Returns:
        Dict in layer order, keys the variable names without `:0`
        (`"dense_1/kernel"`).
    """
    check_model(model)
    decays = {}
    for layer, variable, regularizer in regularized_variables(model):
        name = matching.normalize_name(variable.name)
        pair = l1_l2_of(regularizer)
        if pair is None:
            warnings.warn(
                f"Layer {layer.name!r} has a {type(regularizer).__name__} on {name!r}, "
                f"which is not L1/L2/L1L2: it is left as a loss penalty and gets no "
                f"decoupled decay. Pass weight_decays={{{name!r}: (l1, l2)}} to decay it.",
                UserWarning, stacklevel=3)
            continue
        decays[name] = pair
    # Zeroed after every read: a regularizer shared by several layers gives each
    # its decay.
    if zero_penalties:
        zero_model_penalties(model)
    return decays


def zero_model_penalties(model):
    """Zeroes every L1/L2/L1L2 regularizer of the model (the decay replaces them)."""
    for _, _, regularizer in regularized_variables(model):
        if l1_l2_of(regularizer) is not None:
            zero(regularizer)
