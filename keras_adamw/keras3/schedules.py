"""Learning-rate schedules of keras-adamw for Keras 3 (every backend)."""
import keras  # type: ignore[import-untyped]
from keras import ops  # type: ignore[import-untyped]

from keras_adamw.core.schedule import WarmUpBase

register = keras.saving.register_keras_serializable(package="keras_adamw")


@register
class WarmUp(WarmUpBase, keras.optimizers.schedules.LearningRateSchedule):
    """Linear warmup into any schedule or constant (BERT / Hugging Face style).

    ```
    lr(step) = initial + (peak - initial) step / warmup_steps   for step < warmup_steps
    lr(step) = schedule(step - warmup_steps)                      after
    ```
    with `peak = schedule(0)`: the wrapped schedule's decay is shifted by the
    warmup, so it runs its full course after it.

    Args:
        schedule: a `LearningRateSchedule`, a callable of the step, or a float.
        warmup_steps: updates of the warmup, integer >= 0.
        initial: learning rate at step 0, float >= 0.
        name: name of the schedule.
    """

    _xp = ops
    _serialize = staticmethod(keras.saving.serialize_keras_object)
    _deserialize = staticmethod(keras.saving.deserialize_keras_object)
