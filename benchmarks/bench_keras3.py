"""One optimizer step of keras_adamw vs Keras's built-in, Keras 3, every backend and mode.

Each backend runs in its own process (Keras picks the backend at import); this
script re-launches itself per backend unless `--backend` is given. Ours and the
built-in optimizer update the *same* variables with the same gradients, timed in
interleaved rounds after warm-up (`harness.compare`), and the step is also put
against the memory-traffic floor (28 bytes per float32 parameter for Adam).

Usage:
    python benchmarks/bench_keras3.py --out results.json            # all backends
    python benchmarks/bench_keras3.py --backend torch --workloads 400x2M
    python benchmarks/bench_keras3.py --backend jax --workloads fit
    python benchmarks/bench_keras3.py --backend torch --bounds   # + ours with bounds on
"""
import argparse
import json
import math
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
# name -> the shapes of the variables (1-D vectors; 2-D Dense kernels; 4-D conv
# kernels with their biases, as a CNN has them).
WORKLOADS = {
    "8x10M": [(1_250_000,)] * 8,
    "8x50M": [(6_250_000,)] * 8,
    "400x2M": [(5_000,)] * 400,
    "8x1250x1000": [(1250, 1000)] * 8,
    "mlp": [(1024, 2048), (2048,), (2048, 2048), (2048,), (2048, 10), (10,)],
    "cnn": [(3, 3, 3, 64), (64,), (3, 3, 64, 128), (128,), (3, 3, 128, 256), (256,),
            (3, 3, 256, 256), (256,), (3, 3, 256, 512), (512,), (4608, 10), (10,)],
}
# Bytes moved per parameter and step: read p, g, m, v; write p, m, v (Adam); SGD
# with momentum reads p, g, vel and writes p, vel.
BYTES_PER_PARAM = {"adamw": 28, "nadamw": 28, "sgdw": 20}
PAIRS = {"adamw": ("AdamW", "AdamW"), "nadamw": ("NadamW", "Nadam"), "sgdw": ("SGDW", "SGD")}


def all_extras(name, n_tensors):
    """keras-adamw arguments with every extra on (multipliers, cosine, both decays)."""
    extras = {"total_iterations": 1000, "use_cosine_annealing": True, "init_verbose": False,
                  "lr_multipliers": {"w0": 0.5, "w1": 2.0}, "weight_decay": 1e-2,
                  "weight_decays": {f"w{i}": (0.0, 1e-3) for i in range(0, n_tensors, 2)}}
    if name == "sgdw":
        extras["momentum"] = 0.9
    return extras


def builtin_kwargs(name):
    return {"momentum": 0.9} if name == "sgdw" else ({"weight_decay": 1e-2}
                                                     if name == "adamw" else {})


def make_problem(shapes, seed=0):
    import keras
    import numpy as np

    rng = np.random.default_rng(seed)
    variables = [keras.Variable(rng.standard_normal(shape, dtype=np.float32), name=f"w{i}")
                 for i, shape in enumerate(shapes)]
    grads = [keras.ops.convert_to_tensor(rng.standard_normal(shape, dtype=np.float32))
             for shape in shapes]
    return variables, grads


def step_functions(backend, mode, optimizers, variables, grads):
    """`{label: zero-argument step}` for this backend/mode, one per optimizer."""
    if backend == "tensorflow":
        import tensorflow as tf

        def make(opt):
            return tf.function(lambda: opt.apply(grads, variables),
                               jit_compile=(mode == "xla"))
        return {label: make(opt) for label, opt in optimizers.items()}, lambda r: None
    if backend == "jax":
        import jax

        shared = {"vars": [v.value for v in variables]}  # both update the same values

        def make(opt):
            opt.build(variables)
            state = {"opt": [v.value for v in opt.variables]}
            # Outputs in the order of the donated arguments (optimizer state,
            # then variables), as Keras's JAX trainer orders its state: JAX
            # gives a donated buffer to the first output of its shape, and
            # crossed pairs cost a copy of every buffer (4x the step on 8x50M).
            apply = jax.jit(lambda o, g, t: opt.stateless_apply(o, g, t)[::-1],
                            donate_argnums=(0, 2))

            def step():
                state["opt"], shared["vars"] = apply(state["opt"], grads, shared["vars"])
                return shared["vars"][0]
            return step
        return ({label: make(opt) for label, opt in optimizers.items()},
                lambda r: r.block_until_ready())
    return ({label: (lambda opt=opt: opt.apply(grads, variables))
             for label, opt in optimizers.items()}, lambda r: None)


def run_backend(backend, workloads, names, rounds, bounds=False):
    os.environ["KERAS_BACKEND"] = backend
    sys.path.insert(0, HERE)
    import harness
    import keras

    import keras_adamw

    modes = {"tensorflow": ["tf.function", "xla"], "jax": ["jit"], "torch": ["eager"]}[backend]
    bandwidth = harness.stream_bandwidth()
    rows = []
    for workload in workloads:
        shapes = WORKLOADS[workload]
        n_tensors = len(shapes)
        params = sum(math.prod(shape) for shape in shapes)
        for mode in modes:
            for name in names:
                ours_name, keras_name = PAIRS[name]
                variables, grads = make_problem(shapes)
                optimizers = {
                    "ours": getattr(keras_adamw, ours_name)(**all_extras(name, n_tensors)),
                    "keras": getattr(keras.optimizers, keras_name)(**builtin_kwargs(name)),
                }
                if bounds:  # the AdaBound-style clipping on (inactive bounds): its cost
                    optimizers["bounded"] = getattr(keras_adamw, ours_name)(
                        effective_lr_bounds=(0.0, 1e3), **all_extras(name, n_tensors))
                functions, sync = step_functions(backend, mode, optimizers, variables, grads)
                result = harness.compare(functions, "keras", rounds=rounds, sync=sync)
                row = {"backend": backend, "mode": mode, "workload": workload,
                       "optimizer": name,
                       "ours_over_builtin": result["ours"]["ratio"],
                       "ours_over_floor": harness.floor_ratio(
                           result["ours"]["median_s"], params, BYTES_PER_PARAM[name],
                           bandwidth),
                       "builtin_over_floor": harness.floor_ratio(
                           result["keras"]["median_s"], params, BYTES_PER_PARAM[name],
                           bandwidth),
                       "ours_ms": 1e3 * result["ours"]["median_s"],
                       "builtin_ms": 1e3 * result["keras"]["median_s"]}
                if bounds:
                    row["bounded_over_builtin"] = result["bounded"]["ratio"]
                rows.append(row)
                print(format_row(row), flush=True)
                del variables, grads, optimizers, functions
    return rows


def transformer(seed=0, vocab=2000, length=64, width=128, heads=4):
    """A small Transformer encoder classifier (embedding, attention, MLP, layer norms)."""
    import keras

    keras.utils.set_random_seed(seed)
    layers = keras.layers
    tokens = keras.Input((length,), dtype="int32")
    x = layers.Embedding(vocab, width)(tokens)
    for _ in range(2):
        attended = layers.MultiHeadAttention(heads, width // heads)(x, x)
        x = layers.LayerNormalization()(x + attended)
        hidden = layers.Dense(4 * width, activation="gelu")(x)
        x = layers.LayerNormalization()(x + layers.Dense(width)(hidden))
    outputs = layers.Dense(2)(layers.GlobalAveragePooling1D()(x))
    return keras.Model(tokens, outputs)


def mlp(seed=0):
    """An MLP with large Dense layers (1024-2048-2048-10)."""
    import keras

    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((1024,)), keras.layers.Dense(2048, activation="relu"),
                             keras.layers.Dense(2048, activation="relu"),
                             keras.layers.Dense(10)])


def cnn(seed=0):
    """A small CNN on 32x32 RGB images (conv-conv-pool twice, then Dense)."""
    import keras

    keras.utils.set_random_seed(seed)
    layers = keras.layers
    return keras.Sequential([
        keras.Input((32, 32, 3)),
        layers.Conv2D(32, 3, padding="same", activation="relu"),
        layers.Conv2D(32, 3, padding="same", activation="relu"), layers.MaxPooling2D(),
        layers.Conv2D(64, 3, padding="same", activation="relu"),
        layers.Conv2D(64, 3, padding="same", activation="relu"), layers.MaxPooling2D(),
        layers.Flatten(), layers.Dense(256, activation="relu"), layers.Dense(10)])


MODELS = {"transformer": transformer, "mlp": mlp, "cnn": cnn}


def fit_data(model_name, rng):
    """A batch of 32 for `model_name`'s `train_on_batch`."""
    if model_name == "mlp":
        return (rng.standard_normal((32, 1024)).astype("float32"),
                rng.integers(0, 10, (32,)))
    if model_name == "cnn":
        return (rng.standard_normal((32, 32, 32, 3)).astype("float32"),
                rng.integers(0, 10, (32,)))
    return rng.integers(0, 2000, (32, 64)).astype("int32"), rng.integers(0, 2, (32,))


def run_fit(backend, rounds, model_name="transformer"):
    """Whole `train_on_batch` steps of a model, ours vs built-in AdamW."""
    os.environ["KERAS_BACKEND"] = backend
    sys.path.insert(0, HERE)
    import harness
    import keras
    import numpy as np

    import keras_adamw

    x, y = fit_data(model_name, np.random.default_rng(0))
    optimizers = {
        "ours": keras_adamw.AdamW(learning_rate=1e-4, weight_decay=1e-2,
                                  exclude_from_weight_decay=["bias", "layer_normalization"],
                                  total_iterations=1000, use_cosine_annealing=True,
                                  init_verbose=False),
        "keras": keras.optimizers.AdamW(learning_rate=1e-4, weight_decay=1e-2),
    }
    functions = {}
    for label, optimizer in optimizers.items():
        model = MODELS[model_name]()
        model.compile(optimizer, loss=keras.losses.SparseCategoricalCrossentropy(
            from_logits=True))
        functions[label] = lambda model=model: model.train_on_batch(x, y)
    result = harness.compare(functions, "keras", rounds=rounds)
    row = {"backend": backend, "mode": "fit", "workload": model_name, "optimizer": "adamw",
           "ours_over_builtin": result["ours"]["ratio"],
           "ours_ms": 1e3 * result["ours"]["median_s"],
           "builtin_ms": 1e3 * result["keras"]["median_s"]}
    print(f"{backend:10s} fit         {model_name:11s} adamw ours/builtin "
          f"{row['ours_over_builtin']:6.3f}  ({row['ours_ms']:.1f} ms vs "
          f"{row['builtin_ms']:.1f} ms)", flush=True)
    return [row]


def format_row(row):
    return (f"{row['backend']:10s} {row['mode']:11s} {row['workload']:7s} "
            f"{row['optimizer']:7s} ours/builtin {row['ours_over_builtin']:6.3f}  "
            f"ours/floor {row['ours_over_floor']:6.2f}  builtin/floor "
            f"{row['builtin_over_floor']:6.2f}  ({row['ours_ms']:.1f} ms vs "
            f"{row['builtin_ms']:.1f} ms)"
            + (f"  bounds on/builtin {row['bounded_over_builtin']:6.3f}"
               if "bounded_over_builtin" in row else ""))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["tensorflow", "jax", "torch"])
    parser.add_argument("--backends", default="tensorflow,jax,torch")
    parser.add_argument("--workloads", default="8x10M,8x50M,400x2M,8x1250x1000,mlp,cnn,"
                        "fit,fit_mlp,fit_cnn",
                        help="comma-separated: " + ", ".join(WORKLOADS) + ", fit (a "
                             "Transformer train_on_batch step), fit_mlp, fit_cnn (an "
                             "MLP's, a CNN's)")
    parser.add_argument("--optimizers", default="adamw,nadamw,sgdw")
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--out", help="JSON file for the rows")
    parser.add_argument("--bounds", action="store_true",
                        help="also time ours with effective_lr_bounds on")
    args = parser.parse_args()
    workloads, names = args.workloads.split(","), args.optimizers.split(",")
    if args.backend:
        fits = {"fit": "transformer", "fit_mlp": "mlp", "fit_cnn": "cnn"}
        rows = run_backend(args.backend, [w for w in workloads if w not in fits], names,
                           args.rounds, args.bounds)
        for workload in workloads:
            if workload in fits:
                rows += run_fit(args.backend, args.rounds, fits[workload])
    else:
        rows = []
        for backend in args.backends.split(","):
            with tempfile.NamedTemporaryFile(suffix=".json") as part:
                subprocess.check_call([sys.executable, __file__, "--backend", backend,
                                       "--workloads", args.workloads, "--optimizers",
                                       args.optimizers, "--rounds", str(args.rounds),
                                       "--out", part.name] + ["--bounds"] * args.bounds)
                with open(part.name) as f:
                    rows += json.load(f)["rows"]
    if args.out:
        sys.path.insert(0, HERE)
        import harness

        harness.write_json(args.out, {"rows": rows})


if __name__ == "__main__":
    main()
