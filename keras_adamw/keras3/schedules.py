"""Learning-rate schedules of keras-adamw for Keras 3 (every backend)."""
import keras
from keras import ops

from keras_adamw.core import config, schedule

register = keras.saving.register_keras_serializable(package="keras_adamw")


def check_schedule(value):
    """A `LearningRateSchedule`, a callable of the step, or a float >= 0."""
    if callable(value):
        return value
    return config.check_number("schedule", value, low=0)


@register
class WarmUp(keras.optimizers.schedules.LearningRateSchedule):
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

    def __init__(self, schedule, warmup_steps, initial=0.0, name="WarmUp"):
        self.schedule = check_schedule(schedule)
        self.warmup_steps = config.check_count("warmup_steps", warmup_steps)
        self.initial = config.check_number("initial", initial, low=0)
        self.name = name

    def _target(self, step):
        if callable(self.schedule):
            return ops.cast(self.schedule(step), "float32")
        return ops.cast(self.schedule, "float32")

    def __call__(self, step):
        step = ops.cast(step, "float32")
        after = self._target(ops.maximum(step - self.warmup_steps, 0.0))
        peak = self._target(ops.zeros((), "float32")) if self.warmup_steps else after
        return schedule.warmup_lr(step, self.warmup_steps, self.initial, peak, after, ops)

    def get_config(self):
        target = self.schedule
        if callable(target):
            target = keras.saving.serialize_keras_object(target)
        return {"schedule": target, "warmup_steps": self.warmup_steps,
                "initial": self.initial, "name": self.name}

    @classmethod
    def from_config(cls, config_):
        config_ = dict(config_)
        if isinstance(config_["schedule"], dict):
            config_["schedule"] = keras.saving.deserialize_keras_object(config_["schedule"])
        return cls(**config_)
