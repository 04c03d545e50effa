"""tf_keras distributed training against the float64 oracle (the single-device
comparison under `MirroredStrategy` is test_keras2_kernels.py's).

- `tf.distribute.MirroredStrategy` over 2 logical CPUs, `model.fit`;
- `tf.distribute.MultiWorkerMirroredStrategy` with 2 worker processes on
  127.0.0.1 (`TF_CONFIG`, free ports), `model.fit` on a `tf.data` global batch.

Each trains 10 updates of global batch 8 with lr multipliers, both decays and
cosine restarts in subprocesses (devices and clusters are fixed before
TensorFlow starts), and must give the oracle's trajectory with numpy gradients
(rtol 1e-5), `t_cur` advanced once per update (not per replica or worker), and
an `.h5` written under the strategy that restores every variable here.
"""
import numpy as np
from cases import CASES
from helpers import (
    FLOAT32_ALL,
    MLP_EXTRAS_ORACLE,
    assert_close,
    mlp_oracle_run,
    run_script,
    run_workers,
    subprocess_environment,
)

from keras_adamw.keras2 import AdamW, NadamW
from keras_adamw.keras2.framework import keras2 as tf_keras

STEPS, GLOBAL_BATCH, CYCLE = 10, 8, MLP_EXTRAS_ORACLE["total_iterations"]
TIMEOUT = 240
CLASSES = {"AdamW": AdamW, "NadamW": NadamW}

PRELUDE = f"""
import json, os, sys
import numpy as np
import tensorflow as tf
import keras_adamw.keras2
from keras_adamw.keras2.framework import keras2 as tf_keras
from helpers import fit_data, t_cur_trace

STEPS, GLOBAL_BATCH = {STEPS}, {GLOBAL_BATCH}
x, y = fit_data(STEPS * GLOBAL_BATCH, features=3, outputs=1)
get = tf_keras.backend.get_value


def compiled_model(name):
    tf_keras.utils.set_random_seed(0)
    model = tf_keras.Sequential([
        tf_keras.layers.Dense(4, activation="tanh", name="d1", input_shape=(3,)),
        tf_keras.layers.Dense(1, name="d2")])
    optimizer = getattr(keras_adamw.keras2, name)(
        learning_rate=0.01, lr_multipliers={{"d1": 0.5}},
        weight_decays={{"d2/kernel": (0, 0.1)}}, weight_decay=0.05,
        exclude_from_weight_decay=["bias"], use_cosine_annealing=True,
        total_iterations={CYCLE}, init_verbose=False)
    model.compile(optimizer, loss="mse")
    return model


def train(model, inputs, path, **fit_options):
    initial = [w.tolist() for w in model.get_weights()]
    trace = t_cur_trace(tf_keras.callbacks.Callback)
    model.fit(inputs, epochs=1, verbose=0, callbacks=[trace], **fit_options)
    model.save(path)
    optimizer = model.optimizer
    return {{"initial": initial, "weights": [w.tolist() for w in model.get_weights()],
            "optimizer": [np.asarray(w).tolist() for w in optimizer.get_weights()],
            "t_cur_trace": trace.trace, "checkpoint": path,
            "state": [float(get(v)) for v in (optimizer.iterations, optimizer.t_cur,
                                              optimizer.eta_t, optimizer.lr_t)]}}
"""

MIRRORED = PRELUDE + """
from helpers import mirrored_strategy_on_two_cpus

result = {}
for name in ("AdamW", "NadamW"):
    strategy = mirrored_strategy_on_two_cpus()
    with strategy.scope():
        model = compiled_model(name)
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(GLOBAL_BATCH)
    run = train(model, dataset, os.path.join(sys.argv[1], name + ".h5"))
    run["replicas"] = strategy.num_replicas_in_sync
    result[name] = run
print("RESULT" + json.dumps(result))
"""

MULTI_WORKER = PRELUDE + """
strategy = tf.distribute.MultiWorkerMirroredStrategy()
with strategy.scope():
    model = compiled_model("AdamW")
options = tf.data.Options()
options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(GLOBAL_BATCH).with_options(options)
task = strategy.cluster_resolver.task_id
run = train(model, dataset, os.path.join(sys.argv[1], "worker%d.h5" % task))
run["replicas"] = strategy.num_replicas_in_sync
print("RESULT" + json.dumps(run))
"""


def check_run(name, run):
    """The oracle, t_cur once per update, and the `.h5` restoring every variable."""
    case = CASES[name.lower()]
    params, oracle, trace = mlp_oracle_run(case, run["initial"], STEPS, GLOBAL_BATCH, (3, 1),
                                           FLOAT32_ALL)
    assert run["replicas"] == 2
    assert run["t_cur_trace"] == trace == [(i + 1) % CYCLE for i in range(STEPS)]
    for actual, expected in zip(run["weights"], params):
        assert_close(np.array(actual), expected, what=f"{name} vs oracle")
    iterations, t_cur, eta_t, lr_t = run["state"]
    assert (iterations, t_cur) == (STEPS, oracle.t_cur)
    assert_close(eta_t, oracle.eta_t, what="eta_t")
    assert_close(lr_t, oracle.lr_t, what="lr_t")
    restored = tf_keras.models.load_model(run["checkpoint"], custom_objects=CLASSES)
    assert type(restored.optimizer) is CLASSES[name]
    for ours, saved in zip(restored.get_weights(), run["weights"]):
        np.testing.assert_array_equal(ours, saved)
    saved_state = run["optimizer"]
    assert len(restored.optimizer.get_weights()) == len(saved_state)
    for ours, saved in zip(restored.optimizer.get_weights(), saved_state):
        np.testing.assert_array_equal(ours, saved)


def test_mirrored_strategy_two_cpus_follows_the_oracle(tmp_path):
    result = run_script(MIRRORED, tmp_path, timeout=TIMEOUT,
                        env=subprocess_environment(TF_KERAS="1"))
    assert sorted(result) == ["AdamW", "NadamW"]
    for name, run in result.items():
        check_run(name, run)


def test_multi_worker_mirrored_strategy_two_workers(tmp_path):
    runs = run_workers(MULTI_WORKER, tmp_path, TIMEOUT, TF_KERAS="1")
    for run in runs:
        check_run("AdamW", run)
    assert runs[0]["weights"] == runs[1]["weights"]
