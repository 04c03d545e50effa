"""Monitoring callbacks of the flavour `import keras_adamw` selected, and plotting.

`LearningRateMonitor` is `keras_adamw.keras3.callbacks.LearningRateMonitor`, or
the tf_keras twin `keras_adamw.keras2.callbacks.LearningRateMonitor` when
`keras_adamw.FLAVOUR == "keras2"`. `plot_learning_rates` needs matplotlib.
"""
from keras_adamw import FLAVOUR
from keras_adamw.monitoring import plot_learning_rates

if FLAVOUR == "keras2":
    from keras_adamw.keras2.callbacks import LearningRateMonitor
else:
    from keras_adamw.keras3.callbacks import LearningRateMonitor

__all__ = ["LearningRateMonitor", "plot_learning_rates"]
