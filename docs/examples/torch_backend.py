"""keras-adamw on the PyTorch backend: `model.fit`, and a plain torch training loop.

On torch, keras-adamw's `AdamW` applies all variables of a step with torch's
fused multi-tensor AdamW kernel (grouped once, at build, by dtype, multiplier
and decay), so it is far faster than Keras's own per-variable torch Adam. A
Keras model is also a `torch.nn.Module`: the second part trains it with a torch
loop (`loss.backward()`, then `optimizer.apply` on the `.grad`s).

    python docs/examples/torch_backend.py          # sets KERAS_BACKEND=torch itself
    python docs/examples/torch_backend.py --quick
"""
import argparse
import os

os.environ["KERAS_BACKEND"] = "torch"  # before keras is imported

import keras
import numpy as np
import torch

from keras_adamw import AdamW
from keras_adamw.utils import K_eval


def make_model():
    return keras.Sequential([keras.Input((20,)),
                             keras.layers.Dense(64, activation="relu", name="hidden"),
                             keras.layers.Dense(1, name="head")])


def data(n, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 20)).astype("float32")
    return x, (np.sin(x[:, :3]).sum(1, keepdims=True)).astype("float32")


def optimizer_for(steps):
    return AdamW(learning_rate=3e-3, weight_decay=0.01, exclude_from_weight_decay=["bias"],
                 lr_multipliers={"hidden": 0.5}, use_cosine_annealing=True,
                 total_iterations=steps, init_verbose=False)


def fit_example(x, y, epochs):
    model = make_model()
    optimizer = optimizer_for(epochs * len(x) // 32)
    model.compile(optimizer, loss="mse")
    history = model.fit(x, y, batch_size=32, epochs=epochs, verbose=0)
    print(f"fit: loss {history.history['loss'][0]:.3f} -> {history.history['loss'][-1]:.3f}")


def torch_loop(x, y, steps):
    model = make_model()
    optimizer = optimizer_for(steps)
    variables = model.trainable_variables
    x, y = torch.from_numpy(x), torch.from_numpy(y)
    losses = []
    for step in range(steps):
        i = (step * 32) % (len(x) - 32)
        model.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x[i:i + 32]), y[i:i + 32])
        loss.backward()
        with torch.no_grad():
            optimizer.apply([v.value.grad for v in variables], variables)
        losses.append(loss.item())
    print(f"torch loop: loss {losses[0]:.3f} -> {losses[-1]:.3f}; the last update of the "
          f"cosine cycle had lr_t {float(K_eval(optimizer.lr_t)):.1e} (eta_min = 0)")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    keras.utils.set_random_seed(0)
    x, y = data(256 if args.quick else 4096)
    fit_example(x, y, epochs=1 if args.quick else 5)
    torch_loop(x, y, steps=10 if args.quick else 300)


if __name__ == "__main__":
    main()
