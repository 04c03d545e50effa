"""Keras 3 callbacks of keras-adamw."""
import keras  # type: ignore[import-untyped]

from keras_adamw.keras3.framework import FRAMEWORK
from keras_adamw.monitoring import MonitorMixin


class LearningRateMonitor(MonitorMixin, keras.callbacks.Callback):
    """`MonitorMixin` as a Keras 3 `Callback` (every backend)."""

    _framework = FRAMEWORK
