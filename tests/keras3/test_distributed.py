"""Distributed training on the engines of each backend, Keras 3.

- TensorFlow: `tf.distribute.MirroredStrategy` over 2 logical CPUs (`model.fit`)
  and `tf.distribute.MultiWorkerMirroredStrategy` with 2 worker processes on
  127.0.0.1 (a custom loop `strategy.run` + `optimizer.apply`: Keras 3's
  `Model.fit` fails under this strategy before any optimizer step, with Keras's
  own optimizers too, keras-team/keras#20585).
- JAX: `keras.distribution.DataParallel` over 2 host devices
  (`XLA_FLAGS=--xla_force_host_platform_device_count=2`).
- torch: Keras has no distribution API for the torch backend.

Each run trains 10 updates of global batch 8 with lr multipliers, both decays and
cosine restarts, in a subprocess (devices are fixed before the framework
starts), and must give: the single-device trajectory (rtol 1e-5), the float64
oracle's trajectory with numpy gradients (rtol 1e-5), `t_cur` advanced once per
update, and a `.keras` checkpoint written under the strategy that restores every
variable here.
"""
import os

import keras
import numpy as np
import pytest
from cases import CASES
from helpers import (
    MLP_EXTRAS_ORACLE,
    as_float64,
    assert_close,
    mlp_oracle_run,
    run_script,
    run_workers,
    subprocess_environment,
)
from keras3_helpers import BACKEND, float32_terms

import keras_adamw  # noqa: F401  (registers the optimizers for `load_model`)

HERE = os.path.dirname(os.path.abspath(__file__))
STEPS, GLOBAL_BATCH, CYCLE = 10, 8, MLP_EXTRAS_ORACLE["total_iterations"]
TIMEOUT = 240

PRELUDE = f"""
import json, os, sys
import numpy as np
import keras
from helpers import fit_data, small_model, t_cur_trace
import keras_adamw
from keras_adamw.utils import K_eval

STEPS, GLOBAL_BATCH = {STEPS}, {GLOBAL_BATCH}
x, y = fit_data(STEPS * GLOBAL_BATCH)


def make_optimizer(name):
    cls = getattr(keras_adamw, name)
    return cls(learning_rate=0.01, lr_multipliers={{"dense_1": 0.5}},
               weight_decays={{"dense_2/kernel": (0, 0.1)}}, weight_decay=0.05,
               exclude_from_weight_decay=["bias"], use_cosine_annealing=True,
               total_iterations={CYCLE}, init_verbose=False)


def values(variables):
    return [np.asarray(K_eval(v), np.float64).tolist() for v in variables]


def report(model, optimizer, trace, initial):
    return {{"initial": initial, "weights": values(model.trainable_variables),
            "optimizer": values(optimizer.variables), "t_cur_trace": trace}}


def fit(model, optimizer):
    initial = values(model.trainable_variables)
    trace = t_cur_trace(keras.callbacks.Callback)
    model.fit(x, y, batch_size=GLOBAL_BATCH, epochs=1, shuffle=False, verbose=0,
              callbacks=[trace])
    return report(model, optimizer, trace.trace, initial)
"""

MIRRORED = PRELUDE + """
from helpers import mirrored_strategy_on_two_cpus

result = {}
for name in ("AdamW", "NadamW"):
    strategy = mirrored_strategy_on_two_cpus()
    with strategy.scope():
        model, optimizer = small_model(keras), make_optimizer(name)
        model.compile(optimizer, loss="mse")
    run = fit(model, optimizer)
    run["replicas"] = strategy.num_replicas_in_sync
    path = os.path.join(sys.argv[1], name + ".keras")
    model.save(path)
    run["checkpoint"] = path
    result[name] = run
    if name == "NadamW":  # the oracle and the checkpoint suffice (time)
        continue
    single, single_optimizer = small_model(keras), make_optimizer(name)
    single.compile(single_optimizer, loss="mse")
    run["single"] = fit(single, single_optimizer)
    with strategy.scope():  # restored under the strategy, trained on side by side
        restored = keras.models.load_model(path)
    for m in (model, restored):
        m.fit(x[:24], y[:24], batch_size=GLOBAL_BATCH, shuffle=False, verbose=0)
    run["continued"] = values(model.trainable_variables + model.optimizer.variables)
    run["restored_continued"] = values(restored.trainable_variables
                                       + restored.optimizer.variables)
print("RESULT" + json.dumps(result))
"""

MULTI_WORKER = PRELUDE + """
import tensorflow as tf

strategy = tf.distribute.MultiWorkerMirroredStrategy()
with strategy.scope():
    model, optimizer = small_model(keras), make_optimizer("AdamW")
    optimizer.build(model.trainable_variables)
initial = values(model.trainable_variables)
options = tf.data.Options()
options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(GLOBAL_BATCH).with_options(options)


@tf.function
def train_step(batch):
    def replica_step(inputs, targets):
        with tf.GradientTape() as tape:
            errors = keras.ops.mean(keras.ops.square(model(inputs) - targets), axis=-1)
            loss = tf.nn.compute_average_loss(errors, global_batch_size=GLOBAL_BATCH)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply(grads, model.trainable_variables)
        return tf.shape(inputs)[0]

    return strategy.run(replica_step, args=batch)


trace, local_batches = [], []
for batch in strategy.experimental_distribute_dataset(dataset):
    local = train_step(batch)
    local_batches.append(int(strategy.experimental_local_results(local)[0]))
    trace.append(int(K_eval(optimizer.t_cur)))
run = report(model, optimizer, trace, initial)
run.update(replicas=strategy.num_replicas_in_sync, local_batches=local_batches)
run["checkpoint"] = os.path.join(sys.argv[1], "worker%d.keras" % strategy.cluster_resolver.task_id)
model.compile(optimizer, loss="mse")  # .keras saves the optimizer of a compiled model
model.save(run["checkpoint"])
print("RESULT" + json.dumps(run))
"""

DATA_PARALLEL = PRELUDE + """
import jax

devices = jax.devices()
result = {}
for name in ("AdamW", "NadamW"):
    keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
    model, optimizer = small_model(keras), make_optimizer(name)
    model.compile(optimizer, loss="mse")
    run = fit(model, optimizer)
    run["replicas"] = len(devices)
    run["sharded_over"] = {
        "kernel": len(model.trainable_variables[0].value.sharding.device_set),
        "t_cur": len(optimizer.t_cur.value.sharding.device_set)}
    run["checkpoint"] = os.path.join(sys.argv[1], name + ".keras")
    model.save(run["checkpoint"])
    keras.distribution.set_distribution(None)
    result[name] = run
    if name == "AdamW":
        single, single_optimizer = small_model(keras), make_optimizer(name)
        single.compile(single_optimizer, loss="mse")
        run["single"] = fit(single, single_optimizer)
print("RESULT" + json.dumps(result))
"""


def check_run(name, run, single=True):
    """Oracle, single-device run, t_cur once per update, checkpoint restore."""
    case = CASES[name.lower()]
    params, oracle, trace = mlp_oracle_run(case, run["initial"], STEPS, GLOBAL_BATCH, (4, 2),
                                           float32_terms(case))
    assert run["replicas"] == 2
    assert run["t_cur_trace"] == trace == [(i + 1) % CYCLE for i in range(STEPS)]
    for actual, expected in zip(run["weights"], params):
        assert_close(actual, expected, what=f"{name} vs oracle")
    if single:
        for actual, expected in zip(run["weights"], run["single"]["weights"]):
            assert_close(actual, expected, what=f"{name} vs single device")
    iterations, _, t_cur, eta_t, lr_t = run["optimizer"][:5]
    assert (iterations, t_cur) == (STEPS, oracle.t_cur)
    assert_close(eta_t, oracle.eta_t, what="eta_t")
    assert_close(lr_t, oracle.lr_t, what="lr_t")
    restored = keras.models.load_model(run["checkpoint"])
    assert type(restored.optimizer).__name__ == name
    for variable, saved in zip(restored.optimizer.variables, run["optimizer"]):
        np.testing.assert_array_equal(as_float64(variable), saved, err_msg=variable.path)
    for variable, saved in zip(restored.trainable_variables, run["weights"]):
        np.testing.assert_array_equal(as_float64(variable), saved)


tensorflow_only = pytest.mark.skipif(
    BACKEND != "tensorflow", reason=f"tf.distribute is TensorFlow's; on {BACKEND}, "
    "see the JAX DataParallel test (torch: Keras has no distribution API)")


@tensorflow_only
def test_mirrored_strategy_two_cpus(tmp_path):
    result = run_script(MIRRORED, tmp_path, timeout=TIMEOUT,
                        env=subprocess_environment(HERE, KERAS_BACKEND="tensorflow"))
    assert sorted(result) == ["AdamW", "NadamW"]
    for name, run in result.items():
        check_run(name, run, single="single" in run)
    adamw = result["AdamW"]
    for ours, theirs in zip(adamw["restored_continued"], adamw["continued"]):
        np.testing.assert_array_equal(ours, theirs, err_msg="restored under the strategy")


@tensorflow_only
def test_multi_worker_mirrored_strategy_two_workers(tmp_path):
    runs = run_workers(MULTI_WORKER, tmp_path, TIMEOUT, KERAS_BACKEND="tensorflow")
    for run in runs:
        assert run["local_batches"] == [GLOBAL_BATCH // 2] * STEPS  # the batch is split
        check_run("AdamW", run, single=False)
    assert runs[0]["weights"] == runs[1]["weights"]


@pytest.mark.skipif(BACKEND != "jax", reason=f"keras.distribution.DataParallel runs on "
                    f"JAX here; on {BACKEND}, see the tf.distribute tests (torch: Keras "
                    f"has no distribution API)")
def test_jax_data_parallel_two_host_devices(tmp_path):
    result = run_script(DATA_PARALLEL, tmp_path, timeout=TIMEOUT,
                        env=subprocess_environment(HERE, KERAS_BACKEND="jax",
                        XLA_FLAGS="--xla_force_host_platform_device_count=2"))
    assert sorted(result) == ["AdamW", "NadamW"]
    for name, run in result.items():
        assert run["sharded_over"] == {"kernel": 2, "t_cur": 2}  # replicated on both
        check_run(name, run, single="single" in run)
