"""Keras 3 callbacks of keras-adamw."""
import keras  # type: ignore[import-untyped]

from keras_adamw.monitoring import MonitorMixin


class LearningRateMonitor(MonitorMixin, keras.callbacks.Callback):
    """Writes the optimizer's `lr`, `lr_t`, `eta_t` and `t_cur` into the logs.

    Every batch (`update_freq="batch"`) and at every epoch end, so `History`,
    `CSVLogger`, `TensorBoard` and the progress bar show them (place it before
    a `CSVLogger` or `TensorBoard` in `callbacks=`: callbacks see the logs in
    order). With `per_layer=True` also `eff_lr_mean/<layer>` and
    `eff_lr_max/<layer>`: mean and max of `optimizer.effective_learning_rate`
    over each layer's trainable variables. `history` keeps the per-batch (or
    per-epoch) values with their `iterations`, for `plot_learning_rates`.

    Args:
        per_layer: also log the per-layer effective learning rate.
        update_freq: `"batch"` or `"epoch"`: when to read and record.
    """

    def __init__(self, per_layer=False, update_freq="batch"):
        super().__init__()
        self._init_monitor(per_layer, update_freq)

    def _current_lr(self, optimizer):
        return optimizer.learning_rate
