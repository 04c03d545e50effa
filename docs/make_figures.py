"""Draws the figures of the documentation site into docs/pages/figures/.

    python docs/make_figures.py                  # full run, a few minutes on 2 CPU cores
    python docs/make_figures.py --quick --out DIR  # seconds: what tests/test_docs.py runs

Figures (PNG, each under 150 KB):

- `restarts_eta_lr.png`: `eta_t` and `lr_t` of AdamW over 3 cosine cycles, with the
  multiplier that Keras's `CosineDecayRestarts` (and torch's
  `CosineAnnealingWarmRestarts`) gives for the same cycle length;
- `electra_layerwise.png`: ELECTRA's layer-wise learning rates, decay 0.9, 8 layers
  (`keras_adamw.layerwise_lr_decay`);
- `digits_adamw_vs_l2.png`: validation loss and accuracy on scikit-learn's digits for
  Adam, Adam with an L2 penalty in the loss and AdamW (decoupled `weight_decay`),
  same learning rate, each coefficient the best of a small grid;
- `decay_couplings.png`: the decay per update of each `decay_coupling` over a cosine
  learning rate that a plateau divides by 10.

Every number comes from the optimizers themselves (Keras 3 flavour, any backend). Needs
matplotlib and scikit-learn (`pip install ".[docs]"`).
"""
import argparse
import logging
from pathlib import Path

import keras
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

import keras_adamw
from keras_adamw import AdamW
from keras_adamw.utils import K_eval

DEFAULT_OUT = Path(__file__).resolve().parent / "pages" / "figures"
FIGURES = ("restarts_eta_lr.png", "electra_layerwise.png", "digits_adamw_vs_l2.png",
           "decay_couplings.png")
LOG = logging.getLogger("make_figures")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help=f"output folder (default: {DEFAULT_OUT})")
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes, one seed: checks that the script runs")
    return parser.parse_args(argv)


def new_figure(width, height):
    """A matplotlib figure on the Agg canvas: headless, no global pyplot state."""
    figure = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


# --- warm restarts -----------------------------------------------------------------

def record_schedule(total_iterations, cycles, learning_rate=1e-3):
    """`eta` used by, and `lr_t` of, each update of AdamW with cosine annealing."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    optimizer = AdamW(learning_rate=learning_rate, use_cosine_annealing=True,
                      total_iterations=total_iterations, init_verbose=False)
    model.compile(optimizer, loss="mse")
    x, y = np.ones((4, 2)), np.ones((4, 1))
    eta, lr_t = [], []
    for _ in range(cycles * total_iterations):
        eta.append(float(K_eval(optimizer.eta_t)))  # the value this update uses
        model.train_on_batch(x, y)
        lr_t.append(float(K_eval(optimizer.lr_t)))
    return np.array(eta), np.array(lr_t)


def keras_restarts(total_iterations, updates):
    """Keras `CosineDecayRestarts(1.0, first_decay_steps=T, t_mul=1, m_mul=1)`."""
    schedule = keras.optimizers.schedules.CosineDecayRestarts(
        1.0, total_iterations, t_mul=1.0, m_mul=1.0, alpha=0.0)
    return np.array([float(K_eval(schedule(step))) for step in range(updates)])


def plot_restarts(path, total_iterations, cycles):
    eta, lr_t = record_schedule(total_iterations, cycles)
    updates = np.arange(1, len(eta) + 1)
    figure = new_figure(7, 4.6)
    top, bottom = figure.subplots(2, 1, sharex=True)
    top.plot(updates, eta, "o-", markersize=3, label=f"keras-adamw eta_t, total_iterations={total_iterations}")
    top.plot(updates, keras_restarts(total_iterations, len(eta)), "s--", markersize=3,
             alpha=0.7, label=f"Keras CosineDecayRestarts / torch, period {total_iterations}")
    top.set_ylabel("multiplier used")
    top.set_title(f"{cycles} cycles of {total_iterations} updates: ours ends each cycle at "
                  "eta_min, theirs one step short", fontsize=9)
    top.set_ylim(-0.05, 1.4)  # room for the legend above the curves
    top.legend(loc="upper right", fontsize=7)
    bottom.plot(updates, lr_t, "o-", markersize=3, color="C2",
                label="AdamW lr_t = eta * lr * sqrt(1-b2^t)/(1-b1^t), lr=1e-3")
    bottom.set_ylabel("lr_t")
    bottom.set_xlabel("update")
    bottom.legend(loc="upper right", fontsize=7)
    figure.savefig(path)


# --- ELECTRA layer-wise rates ------------------------------------------------------

def plot_electra(path, decay=0.9, n_layers=8):
    rates = keras_adamw.layerwise_lr_decay(decay, n_layers)
    labels = ["embeddings"] + [f"layer_{i}" for i in range(n_layers)] + ["head"]
    keys = ["/embeddings/"] + [f"encoder/layer_{i}/" for i in range(n_layers)] + [
        "task_specific/"]
    multipliers = [1.0 - rates[key] for key in keys]
    figure = new_figure(7, 3.2)
    axis = figure.subplots()
    bars = axis.bar(labels, multipliers, color="C0")
    axis.bar_label(bars, labels=[f"{m:.3f}" for m in multipliers], fontsize=7)
    axis.set_ylim(0, 1.12)
    axis.set_ylabel("learning rate / lr")
    axis.set_title(f"ELECTRA layer-wise LR decay {decay}, {n_layers} layers: "
                   f"lr * {decay}^(n_layers + 2 - depth)", fontsize=9)
    axis.tick_params(axis="x", labelsize=7, rotation=30)
    figure.savefig(path)


# --- decay couplings ---------------------------------------------------------------

# Each lambda gives a decay of 1e-4 per update at the peak learning rate 1e-3.
COUPLING_LAMBDAS = {"lr": 0.1, "none": 1e-4, "lr_ratio": 1e-4, "corrected": 0.1}


def plateau_cosine(update, updates, peak=1e-3, drop_at=0.6):
    """A cosine learning rate, divided by 10 from `drop_at` of the run (a plateau)."""
    lr = peak * (1 + np.cos(np.pi * update / updates)) / 2
    return lr / 10 if update >= drop_at * updates else lr


def record_decay(coupling, updates):
    """The relative decay of each update, `1 - theta_new / theta`, read off AdamW with
    a zero gradient (only the decay moves theta); float64, to resolve 1e-10."""
    variable = keras.Variable(np.ones(1, "float64"))
    optimizer = AdamW(learning_rate=1e-3, weight_decay=COUPLING_LAMBDAS[coupling],
                      decay_coupling=coupling, init_verbose=False)
    decays = []
    for update in range(updates):
        optimizer.learning_rate = plateau_cosine(update, updates)
        before = float(K_eval(variable)[0])
        optimizer.apply([keras.ops.zeros(1, "float64")], [variable])
        decays.append(1.0 - float(K_eval(variable)[0]) / before)
    return decays


def plot_couplings(path, updates):
    figure = new_figure(7, 3.4)
    axis = figure.subplots()
    steps = np.arange(updates)
    axis.plot(steps, [plateau_cosine(u, updates) / 1e-3 * 1e-4 for u in steps], color="0.7",
              linestyle=":", label="lr / lr_peak x 1e-4 (for reference)")
    for coupling, lam in COUPLING_LAMBDAS.items():
        wide = {"linewidth": 4, "alpha": 0.4} if coupling == "lr" else {}
        axis.plot(steps, record_decay(coupling, updates), **wide,
                  label=f'decay_coupling="{coupling}", weight_decay={lam:g}')
    axis.set_yscale("log")
    axis.set_xlabel("update")
    axis.set_ylabel("decay per update (relative)")
    axis.set_title("AdamW, lr: cosine from 1e-3, divided by 10 at 60% (a plateau); "
                   '"lr" and "lr_ratio" coincide here', fontsize=9)
    axis.legend(fontsize=7, loc="lower left")
    figure.savefig(path)


# --- AdamW vs Adam + L2 on digits --------------------------------------------------

def digits_data(quick):
    """Digits scaled to [0, 1]: 30% for training (so regularisation matters), the rest
    for validation; a few hundred samples with --quick."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x = x.astype("float32") / 16.0
    if quick:
        x, y = x[:300], y[:300]
    return train_test_split(x, y, train_size=0.3, random_state=0, stratify=y)


def mlp(seed, l2):
    keras.utils.set_random_seed(seed)
    layers = [keras.Input((64,))]
    for name, units in (("hidden_1", 256), ("hidden_2", 256), ("logits", 10)):
        regularizer = keras.regularizers.l2(l2) if l2 else None
        layers.append(keras.layers.Dense(units, activation=None if name == "logits" else "relu",
                                         kernel_regularizer=regularizer, name=name))
    return keras.Sequential(layers)


class ValidationCurve(keras.callbacks.Callback):
    """Validation cross-entropy (without the L2 penalty) and accuracy per epoch."""

    def __init__(self, x, y):
        super().__init__()
        self.x, self.y = x, y
        self.loss, self.accuracy = [], []
        self._cross_entropy = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    def on_epoch_end(self, epoch, logs=None):
        logits = self.model.predict(self.x, verbose=0)
        self.loss.append(float(K_eval(self._cross_entropy(self.y, logits))))
        self.accuracy.append(float(np.mean(np.argmax(logits, axis=1) == self.y)))


def train_digits(kind, coefficient, seed, data, epochs, learning_rate=1e-3):
    """Validation curves of `kind` in {"adam", "adam+l2", "adamw"} at `coefficient`."""
    x_train, x_val, y_train, y_val = data
    if kind == "adam+l2":
        model, optimizer = mlp(seed, coefficient), keras.optimizers.Adam(learning_rate)
    elif kind == "adamw":
        model = mlp(seed, 0.0)
        optimizer = AdamW(learning_rate, weight_decay=coefficient, init_verbose=False)
    else:
        model, optimizer = mlp(seed, 0.0), keras.optimizers.Adam(learning_rate)
    model.compile(optimizer, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    curve = ValidationCurve(x_val, y_val)
    model.fit(x_train, y_train, batch_size=32, epochs=epochs, verbose=0, callbacks=[curve])
    return np.array(curve.loss), np.array(curve.accuracy)


def mean_curves(kind, coefficient, seeds, data, epochs):
    runs = [train_digits(kind, coefficient, seed, data, epochs) for seed in seeds]
    return tuple(np.mean([run[i] for run in runs], axis=0) for i in range(2))


def best_of_grid(kind, grid, seeds, data, epochs):
    """`(coefficient, curves)` with the lowest final validation loss (mean over seeds)."""
    results = {c: mean_curves(kind, c, seeds, data, epochs) for c in grid}
    for coefficient, (loss, accuracy) in results.items():
        LOG.info("%s %g: final val loss %.4f, accuracy %.4f", kind, coefficient, loss[-1],
                 accuracy[-1])
    best = min(results, key=lambda c: results[c][0][-1])
    return best, results[best]


def plot_digits(path, quick):
    data = digits_data(quick)
    seeds, epochs = ((0,), 2) if quick else ((0, 1, 2), 60)
    grids = {"adam+l2": (1e-3,), "adamw": (1.0,)} if quick else {
        "adam+l2": (1e-4, 1e-3, 1e-2), "adamw": (0.1, 1.0, 4.0)}
    curves = {"Adam": mean_curves("adam", 0.0, seeds, data, epochs)}
    best_l2, curves_l2 = best_of_grid("adam+l2", grids["adam+l2"], seeds, data, epochs)
    best_wd, curves_wd = best_of_grid("adamw", grids["adamw"], seeds, data, epochs)
    curves[f"Adam + L2 in the loss, l2={best_l2:g}"] = curves_l2
    curves[f"AdamW, weight_decay={best_wd:g} (decoupled)"] = curves_wd
    figure = new_figure(7, 3.2)
    loss_axis, accuracy_axis = figure.subplots(1, 2)
    epochs_axis = np.arange(1, epochs + 1)
    for label, (loss, accuracy) in curves.items():
        loss_axis.plot(epochs_axis, loss, label=label)
        accuracy_axis.plot(epochs_axis, accuracy, label=label)
        LOG.info("%s: final val loss %.4f, accuracy %.4f", label, loss[-1], accuracy[-1])
    lowest = min(loss.min() for loss, _ in curves.values())
    highest = max(accuracy.max() for _, accuracy in curves.values())
    loss_axis.set(xlabel="epoch", ylabel="validation cross-entropy",
                  ylim=(0.9 * lowest, 2.5 * lowest))  # zoom on where the curves differ
    accuracy_axis.set(xlabel="epoch", ylabel="validation accuracy",
                      ylim=(highest - 0.05, highest + 0.01))
    loss_axis.legend(fontsize=7)
    figure.suptitle(f"digits, MLP 256-256, lr 1e-3, batch 32, mean of {len(seeds)} seed(s); "
                    "coefficients: best of a 3-value grid", fontsize=9)
    figure.savefig(path)


def main(argv=None):
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args.out.mkdir(parents=True, exist_ok=True)
    plot_restarts(args.out / FIGURES[0], total_iterations=4 if args.quick else 20, cycles=3)
    plot_electra(args.out / FIGURES[1])
    plot_digits(args.out / FIGURES[2], args.quick)
    plot_couplings(args.out / FIGURES[3], updates=10 if args.quick else 100)
    for name in FIGURES:
        LOG.info("wrote %s (%d bytes)", args.out / name, (args.out / name).stat().st_size)


if __name__ == "__main__":
    main()
