"""The keras-adamw README example, on Keras 3 (TensorFlow, JAX or PyTorch backend).

An LSTM with L1/L2 regularizers trained with `AdamW`: the decays are read from the
model's regularizers (`model=model`, which then zeroes the loss penalties), the
LSTM learns at half the rate (`lr_multipliers={'lstm_1': 0.5}`) and the step
follows cosine annealing with warm restarts every `total_iterations=24` updates.

It prints the loss of every iteration and saves a plot of `eta_t` (the cosine
multiplier) and `lr_t` (the learning rate of the update just made) per iteration.

    python example.py                                   # 3 epochs x 24 iterations
    KERAS_BACKEND=jax python example.py --out /tmp/lr.png
    python example.py --epochs 1 --iterations 3         # a quick smoke run

Only the Keras import lines differ from the keras-adamw 1.x example.
"""
import argparse

import keras
import numpy as np
from keras.layers import LSTM, Dense, Input
from keras.models import Model
from keras.regularizers import l1, l1_l2, l2

from keras_adamw import AdamW
from keras_adamw.utils import K_eval, reset_seeds


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=3, help="epochs (default 3)")
    parser.add_argument("--iterations", type=int, default=24,
                        help="iterations per epoch, also total_iterations (default 24)")
    parser.add_argument("--out", default="example_lr_t.png",
                        help="path of the PNG plot (default example_lr_t.png)")
    return parser.parse_args(argv)


def make_model():
    ipt = Input(shape=(120, 4))
    x = LSTM(60, activation='relu', name='lstm_1',
             kernel_regularizer=l1(1e-4), recurrent_regularizer=l2(2e-4))(ipt)
    out = Dense(1, activation='sigmoid', kernel_regularizer=l1_l2(1e-4, 2e-4))(x)
    return Model(ipt, out)


def train(epochs, iterations):
    """The README loop; returns `eta_t` and `lr_t` after each iteration."""
    reset_seeds(reset_graph_with_backend=keras.backend)
    model = make_model()

    lr_multipliers = {'lstm_1': 0.5}
    optimizer = AdamW(lr=1e-4, model=model, lr_multipliers=lr_multipliers,
                      use_cosine_annealing=True, total_iterations=iterations)
    model.compile(optimizer, loss='binary_crossentropy')

    eta_history, lr_history = [], []
    for epoch in range(epochs):
        for iteration in range(iterations):
            x = np.random.rand(10, 120, 4)  # dummy data
            y = np.random.randint(0, 2, (10, 1))  # dummy labels
            loss = model.train_on_batch(x, y)
            eta_history.append(float(K_eval(optimizer.eta_t)))
            lr_history.append(float(K_eval(optimizer.lr_t)))
            print(f"Iter {iteration + 1} loss: {float(loss):.3f}")
        print(f"EPOCH {epoch + 1} COMPLETED\n")
    # No manual restart needed: autorestart (default with cosine annealing) sets
    # t_cur back to 0 after every `total_iterations` updates.
    return eta_history, lr_history


def plot(eta_history, lr_history, iterations, path):
    """Saves `eta_t` and `lr_t` per iteration to `path` (headless, Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = np.arange(1, len(eta_history) + 1)
    lr_history = np.asarray(lr_history)
    fig, (ax_eta, ax_lr) = plt.subplots(2, 1, sharex=True, figsize=(8, 6))
    ax_eta.plot(steps, eta_history, linewidth=2)
    ax_eta.set_ylim(0, 1.05)
    ax_eta.set_ylabel("eta_t", weight="bold")
    ax_eta.set_title("eta_t after each iteration (the multiplier of the next update)")
    ax_lr.plot(steps, lr_history, linewidth=2, label="lr_t (dense, multiplier 1)")
    ax_lr.plot(steps, 0.5 * lr_history, "--", linewidth=1.5,
               label="0.5 lr_t (lstm_1, multiplier 0.5)")
    ax_lr.set_ylabel("lr_t", weight="bold")
    ax_lr.set_xlabel("train iteration", weight="bold")
    ax_lr.set_title("lr_t: learning rate of the update just made (with bias correction)")
    ax_lr.legend()
    fig.suptitle(f"AdamW, cosine annealing + warm restarts every {iterations} iterations "
                 f"({keras.backend.backend()} backend)", weight="bold")
    for ax in (ax_eta, ax_lr):
        for boundary in range(iterations, len(steps), iterations):
            ax.axvline(boundary + 0.5, color="gray", linewidth=0.5)
        ax.set_xlim(0.5, len(steps) + 0.5)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None):
    args = parse_args(argv)
    eta_history, lr_history = train(args.epochs, args.iterations)
    plot(eta_history, lr_history, args.iterations, args.out)
    print(f"Saved eta_t and lr_t per iteration to {args.out}")


if __name__ == "__main__":
    main()
