"""Weight decays read from a model's L1/L2/L1L2 regularizers, for either flavour.

Read first, then (with `zero_penalties=True`) zeroed, so L2 is not applied
twice; keras-adamw 1.38 zeroed before reading and returned `{}`. A flavour's
`regularizers` module publishes the methods of one `Regularizers` made from its
`Framework`.
"""
import warnings

from keras_adamw.core import matching
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


def regularized_variables(model):
    """`(layer, variable, regularizer)` for every regularized weight, nested too.

    `_flatten_layers` (both flavours have it) reaches nested models,
    `Bidirectional`/`TimeDistributed` wrappers and RNN cells.
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


class Regularizers:
    """The regularizer functions of one flavour, on its `Framework`.

    The flavour modules publish the bound methods, so a warning's `stacklevel`
    counts no wrapper frame.

    Args:
        framework: the flavour's `keras_adamw.adapter.framework.Framework`.
    """

    def __init__(self, framework):
        self.framework = framework

    def check_model(self, model, argument="model"):
        """Refuses anything but a model of this flavour, naming the flavour and the fix."""
        if isinstance(model, self.framework.model_class):
            return
        flavour = self.framework.flavour
        if type(model).__module__.startswith(flavour.foreign_modules):
            raise TypeError(
                f"Argument `{argument}` is a {flavour.foreign_name} model "
                f"({type(model).__name__}), but this optimizer is the {flavour.name} "
                f"flavour. {flavour.fix}")
        raise TypeError(f"Argument `{argument}` must be a {flavour.model_name}. Received: "
                        f"{argument}={model!r} of type {type(model).__name__}")

    def l1_l2_of(self, regularizer):
        """`(l1, l2)` of an L1, L2 or L1L2 regularizer; None for any other kind."""
        if not isinstance(regularizer, self.framework.regularizer_classes):
            return None
        return (shortest_decimal(getattr(regularizer, "l1", 0.0)),
                shortest_decimal(getattr(regularizer, "l2", 0.0)))

    def zero(self, regularizer):
        """Sets `l1`/`l2` to zero of the flavour's type (tf_keras: a numpy float)."""
        for attribute in ("l1", "l2"):
            if hasattr(regularizer, attribute):
                setattr(regularizer, attribute, self.framework.zero_strength())

    def get_weight_decays(self, model, zero_penalties=False):
        """`{variable name: (l1, l2)}` from the model's L1/L2/L1L2 regularizers.

        Args:
            model: a built model of the flavour (Keras 3, or tf_keras for
                `keras_adamw.keras2`).
            zero_penalties: also zero the regularizers (the decay replaces them).

        Returns:
            Dict in layer order. Keys: `variable.path` for Keras 3; for tf_keras
            the variable name without `:0` (`"dense_1/kernel"`).
        """
        self.check_model(model)
        decays = {}
        for layer, variable, regularizer in regularized_variables(model):
            name = matching.variable_path(variable)
            pair = self.l1_l2_of(regularizer)
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
            self.zero_model_penalties(model)
        return decays

    def zero_model_penalties(self, model):
        """Zeroes every L1/L2/L1L2 regularizer of the model (the decay replaces them)."""
        for _, _, regularizer in regularized_variables(model):
            if self.l1_l2_of(regularizer) is not None:
                self.zero(regularizer)
