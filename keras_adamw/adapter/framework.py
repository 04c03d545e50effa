"""`Framework`: what the shared adapter code needs to know about one flavour's Keras."""
import dataclasses
from collections.abc import Callable
from typing import Any


@dataclasses.dataclass(frozen=True)
class Flavour:
    """How messages name a flavour and its models, and tell the fix for the other's.

    Attributes:
        name: this flavour, e.g. `"Keras 3"`.
        model_name: its model class, e.g. `"keras.Model"`.
        foreign_modules: module prefixes of the other flavour's model classes.
        foreign_name: the other flavour.
        fix: the sentence that says how to use one flavour for both.
    """

    name: str
    model_name: str
    foreign_modules: tuple
    foreign_name: str
    fix: str


@dataclasses.dataclass(frozen=True)
class Framework:
    """One flavour's Keras, as the shared adapter code uses it.

    The classes come from `keras`, laid out alike in both flavours; the other
    attributes are where the flavours differ.

    Attributes:
        keras: the flavour's Keras module (`keras` 3; `tf_keras` or `keras` 2.x).
        flavour: its names in messages.
        zero_strength: `() -> zero` to store in a regularizer's `l1`/`l2`.
        current_lr: `optimizer -> learning rate of the next update`.
        xp: namespace with `cast`, `maximum`, `zeros`, `where` for schedules.
        deserialize: turns a serialized schedule back into one.
    """

    keras: Any
    flavour: Flavour
    zero_strength: Callable[[], Any]
    current_lr: Callable[[Any], Any]
    xp: Any
    deserialize: Callable[[Any], Any]

    @property
    def model_class(self):
        """The flavour's `Model`."""
        return self.keras.Model

    @property
    def regularizer_classes(self):
        """The regularizers whose `l1`/`l2` become decays: `(L1, L2, L1L2)`."""
        regularizers = self.keras.regularizers
        return regularizers.L1, regularizers.L2, regularizers.L1L2

    @property
    def serialize(self):
        """`serialize_keras_object`, for a schedule that `WarmUp` wraps."""
        return self.keras.utils.serialize_keras_object
