"""Learning-rate schedules of keras-adamw for Keras 3 (every backend)."""
import keras  # type: ignore[import-untyped]

from keras_adamw.core.schedule import WarmUpBase
from keras_adamw.keras3.framework import FRAMEWORK

register = keras.saving.register_keras_serializable(package="keras_adamw")


@register
class WarmUp(WarmUpBase, keras.optimizers.schedules.LearningRateSchedule):
    """`WarmUpBase` as a Keras 3 `LearningRateSchedule` (every backend)."""

    _framework = FRAMEWORK
