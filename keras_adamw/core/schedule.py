"""SGDR cosine warm restarts (Loshchilov & Hutter, arXiv:1608.03983, eq. 5).

Pure functions of the counter `t_cur`: the adapters keep `t_cur` and `eta_t` as
optimizer variables and call these once per applied update.
"""
import math
import numbers
from typing import Any

from keras_adamw.core import checks


class HostMath:
    """The `xp` of the functions here for Python numbers: a schedule advanced on
    the host where the step's scalars are there already (torch's eager path)."""

    cos = staticmethod(math.cos)

    @staticmethod
    def where(condition, x, y):
        return x if condition else y

    @staticmethod
    def equal(x, y):
        return x == y

    @staticmethod
    def cast(x, dtype):
        """`x` as a float (the only cast the schedule asks for)."""
        return float(x)


def cosine_eta(t_cur, total_iterations, eta_min, eta_max, xp=math):
    """Cosine annealing multiplier for the update at position `t_cur` of a cycle.

    ```
    eta_t = eta_min + (eta_max - eta_min) * (1 + cos(pi * t_cur / (T - 1))) / 2
    ```

    A cycle of `T = total_iterations` updates uses `t_cur = 0, 1, ..., T - 1`,
    so it starts at `eta_max` and ends exactly at `eta_min`.

    Args:
        t_cur: position in the cycle (number or float tensor).
        total_iterations: `T`, updates per cycle; must be > 1.
        eta_min: value at the end of a cycle.
        eta_max: value at the start of a cycle.
        xp: namespace providing `cos` (`math`, `numpy`, `keras.ops`, `tf`).

    Returns:
        `eta_t`, of the type `xp.cos` returns.
    """
    phase = t_cur * (math.pi / (total_iterations - 1))
    return eta_min + (eta_max - eta_min) * 0.5 * (1.0 + xp.cos(phase))


def next_t_cur(t_cur, total_iterations, autorestart, xp):
    """Advances the restart counter after one applied update.

    ```
    t_cur = 0 if (autorestart and t_cur == T - 1) else t_cur + 1
    ```

    Args:
        t_cur: counter before the update (integer tensor or number).
        total_iterations: `T`, updates per cycle.
        autorestart: python bool, fixed at construction.
        xp: namespace providing `where` and `equal` (elementwise also for TF1
            graph tensors, whose `==` compares identity).

    Returns:
        The counter after the update.
    """
    if not autorestart:
        return t_cur + 1
    return xp.where(xp.equal(t_cur, total_iterations - 1), t_cur * 0, t_cur + 1)


def warmup_lr(step, warmup_steps, initial, peak, after, xp):
    """Linear warmup into a schedule (BERT / Hugging Face `get_*_with_warmup`).

    ```
    lr(step) = initial + (peak - initial) step / warmup_steps   for step < warmup_steps
    lr(step) = schedule(step - warmup_steps)                      after
    ```
    with `peak = schedule(0)`: the wrapped schedule starts when the warmup
    ends, so its decay is shifted by `warmup_steps`.

    Args:
        step: the iteration count (float tensor or number).
        warmup_steps: python int, length of the warmup; 0 means none.
        initial: learning rate at step 0.
        peak: `schedule(0)`.
        after: `schedule(max(step - warmup_steps, 0))`.
        xp: namespace providing `where`.
    """
    if not warmup_steps:
        return after
    warm = initial + (peak - initial) * (step / warmup_steps)
    return xp.where(step < warmup_steps, warm, after)


class WarmUpBase:
    """The flavour-neutral body of `schedules.WarmUp` (both flavours).

    A flavour's `WarmUp` puts this before its `LearningRateSchedule` and sets
    `_framework` (a `keras_adamw.adapter.framework.Framework`: its `xp`, a
    namespace with `cast`, `maximum`, `zeros`, `where`, `keras.ops` or `tf`; its
    Keras `serialize` and `deserialize`).
    """

    _framework: Any = None  # the flavour's `adapter.framework.Framework`

    def __init__(self, schedule, warmup_steps, initial=0.0, name="WarmUp"):
        """Linear warmup into any schedule or constant (BERT / Hugging Face style).

        ```
        lr(step) = initial + (peak - initial) step / warmup_steps   for step < warmup_steps
        lr(step) = schedule(step - warmup_steps)                      after
        ```
        with `peak = schedule(0)`: the wrapped schedule's decay is shifted by the
        warmup, so it runs its full course after it.

        Args:
            schedule: a `LearningRateSchedule` of the same flavour (Keras 3, or
                tf_keras for `keras_adamw.keras2`), a callable of the step, or a float.
            warmup_steps: updates of the warmup, integer >= 0.
            initial: learning rate at step 0, float >= 0.
            name: name of the schedule.
        """
        super().__init__()
        if not callable(schedule):
            schedule = checks.check_number("schedule", schedule, low=0)
        self.schedule = schedule
        self.warmup_steps = checks.check_count("warmup_steps", warmup_steps)
        self.initial = checks.check_number("initial", initial, low=0)
        self.name = name

    def _target(self, step):
        value = self.schedule(step) if callable(self.schedule) else self.schedule
        return self._framework.xp.cast(value, "float32")

    def __call__(self, step):
        xp = self._framework.xp
        step = xp.cast(step, "float32")
        after = self._target(xp.maximum(step - self.warmup_steps, 0.0))
        peak = self._target(xp.zeros((), "float32")) if self.warmup_steps else after
        return warmup_lr(step, self.warmup_steps, self.initial, peak, after, xp)

    def get_config(self):
        target = self.schedule
        if callable(target):
            target = self._framework.serialize(target)
        return {"schedule": target, "warmup_steps": self.warmup_steps,
                "initial": self.initial, "name": self.name}

    @classmethod
    def from_config(cls, config_):
        config_ = dict(config_)
        if isinstance(config_["schedule"], dict):
            config_["schedule"] = cls._framework.deserialize(config_["schedule"])
        return cls(**config_)


def peak_learning_rate(learning_rate):
    """The largest value of a learning rate, the default `lr_peak`.

    The float itself; a Keras decay schedule's `warmup_target` or else its
    `initial_learning_rate`; `WarmUp`'s wrapped schedule's peak. None when it
    cannot be read (a callable, a custom schedule).
    """
    if isinstance(learning_rate, numbers.Real) and not isinstance(learning_rate, bool):
        return float(learning_rate)
    if isinstance(learning_rate, WarmUpBase):
        return peak_learning_rate(learning_rate.schedule)
    for attribute in ("warmup_target", "initial_learning_rate"):
        value = getattr(learning_rate, attribute, None)
        if isinstance(value, numbers.Real):
            return float(value)
    return None
