"""tf_keras (Keras 2 API) callbacks of keras-adamw."""
from keras_adamw.keras2.framework import FRAMEWORK, keras2
from keras_adamw.monitoring import MonitorMixin


class LearningRateMonitor(MonitorMixin, keras2.callbacks.Callback):
    """tf_keras twin of `keras_adamw.keras3.callbacks.LearningRateMonitor`."""

    _framework = FRAMEWORK
