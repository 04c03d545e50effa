"""keras-adamw's tf_keras (Keras 2 API) flavour: a keras-adamw 1.x script, unchanged.

For code on `tf.keras` with Keras 2 semantics (TF >= 2.16 with `tf_keras` and
`TF_USE_LEGACY_KERAS=1`): `TF_KERAS=1` makes `import keras_adamw` give the
tf_keras optimizers (`keras_adamw.keras2` always does). The script reads the
decays from the model's regularizers (`model=model`), saves to `.h5` mid-cycle
and resumes from the file on exactly the trajectory of an uninterrupted run.

    python docs/examples/keras2_flavour.py          # sets the two variables itself
    python docs/examples/keras2_flavour.py --quick
"""
import argparse
import os
import tempfile

os.environ["TF_USE_LEGACY_KERAS"] = "1"  # tf.keras is tf_keras (Keras 2)
os.environ["TF_KERAS"] = "1"  # keras_adamw follows tf.keras

import numpy as np
import tensorflow as tf
from tensorflow.keras.layers import Dense, Input
from tensorflow.keras.models import Model, load_model
from tensorflow.keras.regularizers import l2

import keras_adamw
from keras_adamw import AdamW
from keras_adamw.utils import K_eval


def make_model():
    ipt = Input(shape=(16,))
    x = Dense(32, activation="relu", name="dense_1", kernel_regularizer=l2(1e-4))(ipt)
    return Model(ipt, Dense(1, name="dense_2", kernel_regularizer=l2(1e-4))(x))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    assert keras_adamw.FLAVOUR == "keras2", "TF_USE_LEGACY_KERAS=1 needs tf_keras installed"
    steps, cycle = (6, 4) if args.quick else (60, 20)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(steps, 32, 16)).astype("float32")
    y = rng.normal(size=(steps, 32, 1)).astype("float32")

    tf.keras.utils.set_random_seed(0)
    model = make_model()
    optimizer = AdamW(lr=1e-3, model=model, lr_multipliers={"dense_1": 0.5},
                      use_cosine_annealing=True, total_iterations=cycle, init_verbose=False)
    model.compile(optimizer, loss="mse")
    print("decays read from the regularizers:", optimizer.weight_decays)

    half = steps // 2
    for step in range(half):
        model.train_on_batch(x[step], y[step])
    path = os.path.join(tempfile.mkdtemp(), "model.h5")
    model.save(path)
    resumed = load_model(path, custom_objects={"AdamW": AdamW})
    for step in range(half, steps):
        model.train_on_batch(x[step], y[step])
        resumed.train_on_batch(x[step], y[step])
    same = all(np.array_equal(a, b) for a, b in zip(model.get_weights(), resumed.get_weights()))
    print(f"after {steps} updates: t_cur {int(K_eval(optimizer.t_cur))}, eta_t "
          f"{float(K_eval(optimizer.eta_t)):.3f}; resumed from .h5 at update {half}: "
          f"{'identical' if same else 'DIFFERENT'} weights")
    if not same:
        raise SystemExit("the resumed run left the uninterrupted trajectory")


if __name__ == "__main__":
    main()
