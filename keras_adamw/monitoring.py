"""Flavour-neutral part of `LearningRateMonitor` and the plotting helper.

The callbacks of both flavours (`keras_adamw.keras3.callbacks`,
`keras_adamw.keras2.callbacks`) are this mixin on their framework's `Callback`,
with their `Framework` (`keras_adamw.adapter.framework`) as `_framework`: they
differ only in how they read the current learning rate.
"""
from typing import Any

import numpy as np

from keras_adamw.utils import K_eval

UPDATE_FREQS = ("batch", "epoch")
STATE_KEYS = ("lr", "lr_t", "eta_t", "t_cur")


class MonitorMixin:
    """Writes `lr`, `lr_t`, `eta_t`, `t_cur` (and per-layer effective rates) into logs.

    Subclasses put it before their framework's `Callback` and set `_framework`
    (a `keras_adamw.adapter.framework.Framework`).
    """

    _framework: Any = None  # the flavour's `adapter.framework.Framework`

    def __init__(self, per_layer=False, update_freq="batch"):
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
        super().__init__()
        self._init_monitor(per_layer, update_freq)

    def _init_monitor(self, per_layer, update_freq):
        if update_freq not in UPDATE_FREQS:
            raise ValueError(f"Argument `update_freq` must be one of {UPDATE_FREQS}. "
                             f"Received: update_freq={update_freq!r}")
        self.per_layer = bool(per_layer)
        self.update_freq = update_freq
        self.history = {"iterations": [], **{key: [] for key in STATE_KEYS}}

    def on_train_batch_end(self, batch, logs=None):
        if self.update_freq == "batch":
            self._log(logs, record=True)

    def on_epoch_end(self, epoch, logs=None):
        self._log(logs, record=self.update_freq == "epoch")

    def _log(self, logs, record):
        values = self.read()
        iterations = values.pop("iterations")
        if record:
            self.history["iterations"].append(iterations)
            for key in STATE_KEYS:
                self.history[key].append(values[key])
        if logs is not None:
            logs.update(values)

    def read(self):
        """The optimizer's state now: `{"lr", "lr_t", "eta_t", "t_cur", ...}`.

        `lr` is the learning rate of the next update (`learning_rate` at the
        current `iterations`); `lr_t` the scalar learning rate of the last update
        (eta, lr and Adam's bias correction); with `per_layer`, also
        `eff_lr_mean/<layer>` and `eff_lr_max/<layer>` of
        `optimizer.effective_learning_rate` over the layer's trainable variables.
        The returned dict also holds `iterations`, which is not written to logs.
        """
        sync = getattr(self.model, "jax_state_sync", None)
        if sync is not None:
            sync()  # JAX: the trainer holds the state until synced
        optimizer = self.model.optimizer
        values = {"lr": float(K_eval(self._framework.current_lr(optimizer))),
                  "lr_t": float(K_eval(optimizer.lr_t)),
                  "eta_t": float(K_eval(optimizer.eta_t)),
                  "t_cur": int(K_eval(optimizer.t_cur))}
        if self.per_layer:
            values.update(self._per_layer(optimizer))
        values["iterations"] = int(K_eval(optimizer.iterations))
        return values

    def _per_layer(self, optimizer):
        values = {}
        for layer in self.model.layers:
            rates = []
            for variable in layer.trainable_variables:
                try:
                    rate = optimizer.effective_learning_rate(variable)
                except KeyError:  # a variable this optimizer does not update
                    continue
                rates.append(np.ravel(K_eval(rate)))
            if rates:
                rates = np.concatenate(rates)
                values[f"eff_lr_mean/{layer.name}"] = float(np.mean(rates))
                values[f"eff_lr_max/{layer.name}"] = float(np.max(rates))
        return values


def plot_learning_rates(source, keys=("lr_t", "eta_t"), path=None, ax=None):
    """Draws `lr_t` and `eta_t` (or other `keys`) against iterations.

    Uses matplotlib's object API with the Agg canvas (headless; `pip install
    ".[plot]"`), so it changes no global matplotlib state.

    Args:
        source: a `LearningRateMonitor`, its `history` dict, or a Keras
            `History.history` dict (x: its `iterations` list when present, else
            1, 2, ...).
        keys: the series to draw, one subplot each.
        path: where to save the figure (PNG by extension), or None.
        ax: a matplotlib `Axes` to draw all series into instead.

    Returns:
        The matplotlib `Figure`.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    history = getattr(source, "history", source)
    missing = [key for key in keys if key not in history]
    if missing:
        raise ValueError(f"Argument `keys` must name recorded series; {missing} are not "
                         f"in the history. Received: keys={tuple(keys)}; recorded: "
                         f"{sorted(history)}")
    length = len(history[keys[0]]) if keys else 0
    x = history.get("iterations") or list(range(1, length + 1))
    if ax is not None:
        figure, axes = ax.figure, [ax] * len(keys)
    else:
        figure = Figure(figsize=(7, 2.2 * max(1, len(keys))))
        FigureCanvasAgg(figure)
        axes = [figure.add_subplot(len(keys), 1, i + 1) for i in range(len(keys))]
    for axis, key in zip(axes, keys):
        axis.plot(x, history[key], label=key)
        axis.set_ylabel(key)
        axis.legend(loc="upper right")
    if axes:
        axes[-1].set_xlabel("iterations")
    if path is not None:
        figure.savefig(path)
    return figure
