"""Weight decays read from a Keras 3 model's L1/L2/L1L2 regularizers.

Read first, then (with `zero_penalties=True`) zeroed, so L2 is not applied
twice; keras-adamw 1.38 zeroed before reading and returned `{}`.
"""
import warnings

import keras  # type: ignore[import-untyped]

from keras_adamw.core.checks import shortest_decimal

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
    """Refuses anything but a Keras 3 model, naming the flavour and the fix."""
    if isinstance(model, keras.Model):
        return
    module = type(model).__module__
    if module.startswith(("tf_keras", "keras.src.engine", "tensorflow.python.keras")):
        raise TypeError(
            f"Argument `{argument}` is a Keras 2 (tf_keras) model ({type(model).__name__}), "
            f"but this optimizer is the Keras 3 flavour. Use `from keras_adamw.keras2 import "
            f"AdamW` (or TF_KERAS=1 with TF_USE_LEGACY_KERAS=1), or build the model with "
            f"`keras` 3.")
    raise TypeError(f"Argument `{argument}` must be a keras.Model. Received: "
                    f"{argument}={model!r} of type {type(model).__name__}")


def l1_l2_of(regularizer):
    """`(l1, l2)` of an L1, L2 or L1L2 regularizer; None for any other kind."""
    if not isinstance(regularizer, (keras.regularizers.L1, keras.regularizers.L2,
                                    keras.regularizers.L1L2)):
        return None
    return (shortest_decimal(getattr(regularizer, "l1", 0.0)),
            shortest_decimal(getattr(regularizer, "l2", 0.0)))


def zero(regularizer):
    for attribute in ("l1", "l2"):
        if hasattr(regularizer, attribute):
            setattr(regularizer, attribute, 0.0)


def regularized_variables(model):
    """`(layer, variable, regularizer)` for every regularized weight, nested too.

    `_flatten_layers` reaches nested models, `Bidirectional`/`TimeDistributed`
    wrappers and RNN cells.
    """
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
    """`{variable path: (l1, l2)}` from the model's L1/L2/L1L2 regularizers.

    Args:
        model: a built Keras 3 model.
        zero_penalties: also zero the regularizers (the decay replaces them).

    Returns:
        Dict in layer order, keys as `variable.path`.
    """
    check_model(model)
    decays = {}
    for layer, variable, regularizer in regularized_variables(model):
        pair = l1_l2_of(regularizer)
        if pair is None:
            warnings.warn(
                f"Layer {layer.name!r} has a {type(regularizer).__name__} on "
                f"{variable.path!r}, which is not L1/L2/L1L2: it is left as a loss "
                f"penalty and gets no decoupled decay. Pass weight_decays="
                f"{{{variable.path!r}: (l1, l2)}} to decay it.", UserWarning, stacklevel=3)
            continue
        decays[variable.path] = pair
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
