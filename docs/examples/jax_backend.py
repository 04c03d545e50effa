"""keras-adamw on the JAX backend: `model.fit`, and a jitted custom training loop.

JAX is functional: Keras's optimizers run statelessly inside `jax.jit`
(`optimizer.stateless_apply`), and keras-adamw's `t_cur`, `eta_t` and `lr_t` are
ordinary optimizer variables, so they travel through the jitted step with the
slots and advance exactly once per update. The loop below trains an MLP with
SGDW + warm restarts, and checks that the restart happened where it should.

    python docs/examples/jax_backend.py            # sets KERAS_BACKEND=jax itself
    python docs/examples/jax_backend.py --quick
"""
import argparse
import os

os.environ["KERAS_BACKEND"] = "jax"  # before keras is imported

import jax
import keras
import numpy as np

from keras_adamw import SGDW
from keras_adamw.utils import K_eval


def make_model():
    return keras.Sequential([keras.Input((20,)), keras.layers.Dense(64, activation="relu"),
                             keras.layers.Dense(1)])


def data(n, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 20)).astype("float32")
    return x, (x[:, :5].sum(1, keepdims=True) ** 2 / 5).astype("float32")


def fit_example(x, y, epochs, batch_size):
    """`model.fit`: one cosine cycle per epoch, restarting automatically."""
    model = make_model()
    steps = len(x) // batch_size
    optimizer = SGDW(learning_rate=0.005, momentum=0.9, weight_decay=1e-4,
                     use_cosine_annealing=True, total_iterations=steps, init_verbose=False)
    model.compile(optimizer, loss="mse")
    history = model.fit(x, y, batch_size=batch_size, epochs=epochs, verbose=0)
    print(f"fit: loss {history.history['loss'][0]:.3f} -> {history.history['loss'][-1]:.3f}, "
          f"t_cur {int(K_eval(optimizer.t_cur))} after {epochs} cycles")


def custom_loop(x, y, steps, cycle):
    """`jax.jit` of forward, gradient and `optimizer.stateless_apply`."""
    model = make_model()
    optimizer = SGDW(learning_rate=0.005, momentum=0.9, use_cosine_annealing=True,
                     total_iterations=cycle, init_verbose=False)
    optimizer.build(model.trainable_variables)

    def loss_fn(trainable, non_trainable, xb, yb):
        pred, non_trainable = model.stateless_call(trainable, non_trainable, xb)
        return keras.losses.mean_squared_error(yb, pred).mean(), non_trainable

    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)

    @jax.jit
    def train_step(state, xb, yb):
        trainable, non_trainable, opt_vars = state
        (loss, non_trainable), grads = grad_fn(trainable, non_trainable, xb, yb)
        trainable, opt_vars = optimizer.stateless_apply(opt_vars, grads, trainable)
        return loss, (trainable, non_trainable, opt_vars)

    state = ([v.value for v in model.trainable_variables],
             [v.value for v in model.non_trainable_variables],
             [v.value for v in optimizer.variables])
    losses = []
    for step in range(steps):
        i = (step * 32) % (len(x) - 32)
        loss, state = train_step(state, x[i:i + 32], y[i:i + 32])
        losses.append(float(loss))
    for variable, value in zip(optimizer.variables, state[2]):
        variable.assign(value)  # write the functional state back
    assert int(K_eval(optimizer.t_cur)) == steps % cycle, "one t_cur advance per update"
    print(f"custom loop: loss {losses[0]:.3f} -> {losses[-1]:.3f}, t_cur "
          f"{int(K_eval(optimizer.t_cur))} = {steps} updates mod cycle {cycle}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    keras.utils.set_random_seed(0)
    x, y = data(256 if args.quick else 4096)
    fit_example(x, y, epochs=2 if args.quick else 5, batch_size=32)
    custom_loop(x, y, steps=10 if args.quick else 300, cycle=4 if args.quick else 100)


if __name__ == "__main__":
    main()
