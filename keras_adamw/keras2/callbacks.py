"""tf_keras (Keras 2 API) callbacks of keras-adamw."""
from keras_adamw.keras2.framework import keras2
from keras_adamw.monitoring import MonitorMixin


class LearningRateMonitor(MonitorMixin, keras2.callbacks.Callback):
    """tf_keras twin of `keras_adamw.keras3.callbacks.LearningRateMonitor`.

    Writes `lr`, `lr_t`, `eta_t`, `t_cur` (and with `per_layer=True`
    `eff_lr_mean/<layer>`, `eff_lr_max/<layer>`) into the logs every batch and
    epoch; place it before a `CSVLogger` in `callbacks=`.

    Args:
        per_layer: also log the per-layer effective learning rate.
        update_freq: `"batch"` or `"epoch"`: when to read and record.
    """

    def __init__(self, per_layer=False, update_freq="batch"):
        super().__init__()
        self._init_monitor(per_layer, update_freq)

    def _current_lr(self, optimizer):
        return optimizer._decayed_lr("float32")
