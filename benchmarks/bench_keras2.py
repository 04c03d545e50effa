"""One optimizer step of keras2 AdamW/NadamW/SGDW (all extras on) vs tf_keras legacy
Adam/Nadam/SGD on the same variables, in one process, interleaved (issues 3, 4).

    TF_USE_LEGACY_KERAS=1 python benchmarks/bench_keras2.py --out keras2.json
"""
import argparse
import os
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness
import numpy as np
import tensorflow as tf
import tf_keras

from keras_adamw.keras2 import SGDW, AdamW, NadamW

CONFIGS = {"8 tensors / 10M params": (8, 10_000_000),
           "400 tensors / 2M params": (400, 2_000_000)}
# Read var, slots, grad; write var, slots (float32).
BYTES_PER_PARAM = {"adam": 28, "nadam": 28, "sgd": 20}
KINDS = ("adam", "nadam", "sgd")


def make_variables(count, total, seed=0):
    rng = np.random.default_rng(seed)
    rows = total // count // 100
    return [tf.Variable(rng.normal(size=(rows, 100)).astype("float32"),
                        name=f"layer_{i}/kernel") for i in range(count)]


def all_extras(count, total_iterations=1000):
    """Multipliers on half the layers, both decay conventions (paper L2 on all,
    Keras `weight_decay` on all but the last layer), cosine annealing."""
    return {"lr_multipliers": {f"layer_{i}/": 0.5 for i in range(0, count, 2)},
            "weight_decays": {f"layer_{i}/kernel": (0.0, 1e-4) for i in range(count)},
            "weight_decay": 1e-2, "exclude_from_weight_decay": [f"layer_{count - 1}/"],
            "use_cosine_annealing": True, "total_iterations": total_iterations,
            "init_verbose": False}


def optimizers(kind, count):
    """Ours with every extra on, and tf_keras's legacy counterpart."""
    legacy = tf_keras.optimizers.legacy
    if kind == "adam":
        return AdamW(learning_rate=1e-4, **all_extras(count)), legacy.Adam(learning_rate=1e-4)
    if kind == "nadam":
        return NadamW(learning_rate=1e-4, **all_extras(count)), legacy.Nadam(learning_rate=1e-4)
    return (SGDW(learning_rate=1e-4, momentum=0.9, **all_extras(count)),
            legacy.SGD(learning_rate=1e-4, momentum=0.9))


def step_function(optimizer, variables, grads):
    @tf.function
    def step():
        optimizer.apply_gradients(zip(grads, variables))
        return optimizer.iterations.read_value()

    return step


def bench(kind, count, total, rounds):
    """Ours and legacy on the same variables (each with its own slots)."""
    variables = make_variables(count, total)
    rng = np.random.default_rng(1)
    grads = [tf.constant(rng.normal(size=v.shape).astype("float32") * 1e-3)
             for v in variables]
    ours, theirs = optimizers(kind, count)
    functions = {"keras_adamw": step_function(ours, variables, grads),
                 "legacy": step_function(theirs, variables, grads)}
    return harness.compare(functions, "legacy", rounds=rounds, sync=lambda r: r.numpy())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="JSON output path")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--kinds", default=",".join(KINDS),
                        help="comma-separated subset of " + ",".join(KINDS))
    args = parser.parse_args()
    bandwidth = harness.stream_bandwidth()
    results = {"bandwidth_GBps": bandwidth / 1e9, "threads": tf.config.threading
               .get_intra_op_parallelism_threads(), "results": {}}
    for kind in args.kinds.split(","):
        for label, (count, total) in CONFIGS.items():
            result = bench(kind, count, total, args.rounds)
            for name in ("keras_adamw", "legacy"):
                result[f"{name}_over_floor"] = harness.floor_ratio(
                    result[name]["median_s"], total, BYTES_PER_PARAM[kind], bandwidth)
            results["results"][f"{kind} | {label}"] = result
            ours = result["keras_adamw"]
            print(f"{kind:5s} | {label:24s} ours/legacy = {ours['ratio']:.3f} "
                  f"(IQR {ours['ratio_iqr'][0]:.3f}-{ours['ratio_iqr'][1]:.3f}); "
                  f"ours {result['keras_adamw_over_floor']:.2f}x floor, legacy "
                  f"{result['legacy']['median_s'] * 1e3:.2f} ms = "
                  f"{result['legacy_over_floor']:.2f}x floor", flush=True)
    if args.out:
        harness.write_json(args.out, results)


if __name__ == "__main__":
    main()
