"""Learning-rate schedules of keras-adamw for tf_keras (the Keras 2 API)."""
import tensorflow as tf  # type: ignore[import-untyped]

from keras_adamw.core.schedule import WarmUpBase
from keras_adamw.keras2.framework import keras2

register = keras2.utils.register_keras_serializable(package="keras_adamw")


@register
class WarmUp(WarmUpBase, keras2.optimizers.schedules.LearningRateSchedule):
    """Linear warmup into any schedule or constant: the tf_keras twin of
    `keras_adamw.keras3.schedules.WarmUp`.

    ```
    lr(step) = initial + (peak - initial) step / warmup_steps   for step < warmup_steps
    lr(step) = schedule(step - warmup_steps)                      after
    ```
    with `peak = schedule(0)`.

    Args:
        schedule: a tf_keras `LearningRateSchedule`, a callable of the step, or a float.
        warmup_steps: updates of the warmup, integer >= 0.
        initial: learning rate at step 0, float >= 0.
        name: name of the schedule.
    """

    _xp = tf
    _serialize = staticmethod(keras2.utils.serialize_keras_object)
    _deserialize = staticmethod(keras2.optimizers.schedules.deserialize)
