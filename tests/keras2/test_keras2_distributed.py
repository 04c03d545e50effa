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
import json
import os
import socket
import subprocess
import sys

import numpy as np
from helpers import assert_close, f32
from reference import ReferenceOptimizer

from keras_adamw.keras2 import AdamW, NadamW
from keras_adamw.keras2.framework import keras2 as tf_keras

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
STEPS, GLOBAL_BATCH, CYCLE = 10, 8, 4
TIMEOUT = 240
CLASSES = {"AdamW": AdamW, "NadamW": NadamW}

PRELUDE = f"""
import json, os, sys
import numpy as np
import tensorflow as tf
import keras_adamw.keras2
from keras_adamw.keras2.framework import keras2 as tf_keras

STEPS, GLOBAL_BATCH = {STEPS}, {GLOBAL_BATCH}
rng = np.random.default_rng(0)
x = rng.normal(size=(STEPS * GLOBAL_BATCH, 3)).astype("float32")
y = rng.normal(size=(STEPS * GLOBAL_BATCH, 1)).astype("float32")
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


class TCurTrace(tf_keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.trace = []

    def on_train_batch_end(self, batch, logs=None):
        self.trace.append(int(get(self.model.optimizer.t_cur)))


def train(model, inputs, path, **fit_options):
    initial = [w.tolist() for w in model.get_weights()]
    trace = TCurTrace()
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
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
result = {}
for name in ("AdamW", "NadamW"):
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
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


def environment(**extra):
    """The subprocess environment, explicit: the repository, the test helpers."""
    path = os.pathsep.join([ROOT, HERE, os.path.dirname(HERE)])
    return {**os.environ, "PYTHONPATH": path, "TF_CPP_MIN_LOG_LEVEL": "3",
            "TF_KERAS": "1", **extra}


def parse(stdout, stderr):
    lines = [line for line in stdout.splitlines() if line.startswith("RESULT")]
    assert lines, stderr[-4000:]
    return json.loads(lines[-1][len("RESULT"):])


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def mlp_gradients(params, x, y):
    """Gradients of `mean((tanh(x w1 + b1) w2 + b2 - y)^2)`, float64 numpy."""
    w1, b1, w2, b2 = params
    hidden = np.tanh(x @ w1 + b1)
    residual = 2.0 * (hidden @ w2 + b2 - y) / y.size
    d_hidden = (residual @ w2.T) * (1.0 - hidden ** 2)
    return [x.T @ d_hidden, d_hidden.sum(0), hidden.T @ residual, residual.sum(0)]


def oracle_run(name, initial):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(STEPS * GLOBAL_BATCH, 3)).astype("float32").astype(np.float64)
    y = rng.normal(size=(STEPS * GLOBAL_BATCH, 1)).astype("float32").astype(np.float64)
    params = [np.array(p, np.float64) for p in initial]
    # d1/kernel, d1/bias, d2/kernel, d2/bias; float32 hyperparameters as TF holds them
    oracle = ReferenceOptimizer(
        name.lower(), [p.shape for p in params], learning_rate=f32(0.01),
        beta_1=f32(0.9), beta_2=f32(0.999), epsilon=1e-7,
        multipliers=[0.5, 0.5, 1.0, 1.0], l1_l2=[(0, 0), (0, 0), (0, 0.1), (0, 0)],
        weight_decay=0.05, decay_mask=[True, False, True, False],
        total_iterations=CYCLE, use_cosine_annealing=True)
    trace = []
    for step in range(STEPS):
        batch = slice(step * GLOBAL_BATCH, (step + 1) * GLOBAL_BATCH)
        params = oracle.step(params, mlp_gradients(params, x[batch], y[batch]))
        trace.append(oracle.t_cur)
    return params, oracle, trace


def check_run(name, run):
    """The oracle, t_cur once per update, and the `.h5` restoring every variable."""
    params, oracle, trace = oracle_run(name, run["initial"])
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
    out = subprocess.run([sys.executable, "-c", MIRRORED, str(tmp_path)], cwd=ROOT,
                         capture_output=True, text=True, env=environment(),
                         timeout=TIMEOUT, check=False)
    result = parse(out.stdout, out.stderr)
    assert sorted(result) == ["AdamW", "NadamW"]
    for name, run in result.items():
        check_run(name, run)


def test_multi_worker_mirrored_strategy_two_workers(tmp_path):
    ports = free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    workers = []
    try:
        for index in range(2):
            config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
            workers.append(subprocess.Popen(
                [sys.executable, "-c", MULTI_WORKER, str(tmp_path)], cwd=ROOT,
                env=environment(TF_CONFIG=config), stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, text=True))
        runs = [parse(*worker.communicate(timeout=TIMEOUT)) for worker in workers]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
            worker.wait()
    for run in runs:
        check_run("AdamW", run)
    assert runs[0]["weights"] == runs[1]["weights"]
