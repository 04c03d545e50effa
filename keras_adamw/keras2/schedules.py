"""Learning-rate schedules of keras-adamw for tf_keras (the Keras 2 API)."""
from keras_adamw.core.schedule import WarmUpBase
from keras_adamw.keras2.framework import FRAMEWORK, keras2

register = keras2.utils.register_keras_serializable(package="keras_adamw")


@register
class WarmUp(WarmUpBase, keras2.optimizers.schedules.LearningRateSchedule):
    """tf_keras twin of `keras_adamw.keras3.schedules.WarmUp`."""

    _framework = FRAMEWORK
