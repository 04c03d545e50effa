"""The XLA-compiled kernels: one trace serves every variable and optimizer, the
size threshold picks the path, and `tf.distribute.MirroredStrategy` (two logical
CPUs) gives the single-device numbers with the schedule advanced once per step."""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf
from helpers import assert_close

from keras_adamw.keras2 import SGDW, AdamW, NadamW
from keras_adamw.kernels import tf_compiled as kernels

HERE = os.path.dirname(os.path.abspath(__file__))
SHAPE = (6, 4)
EXTRAS = {"weight_decays": {"a/kernel": (1e-3, 1e-2)}, "weight_decay": 0.05,
          "lr_multipliers": {"b/": 0.5}, "total_iterations": 10,
          "use_cosine_annealing": True, "init_verbose": False}
OPTIMIZERS = [(AdamW, {}), (AdamW, {"amsgrad": True}), (NadamW, {}),
              (SGDW, {"momentum": 0.9}), (SGDW, {"momentum": 0.9, "nesterov": True}),
              (SGDW, {})]


def _train(cls, options, xla_min_size, steps=6):
    """Two same-shape variables; slots are created while `step` is first traced."""
    rng = np.random.default_rng(7)
    variables = [tf.Variable(rng.normal(size=SHAPE).astype("float32"), name=name)
                 for name in ("a/kernel", "b/kernel")]
    optimizer = cls(learning_rate=0.05, **options, **EXTRAS)
    optimizer.xla_min_size = xla_min_size

    @tf.function
    def step(grads):
        optimizer.apply_gradients(zip(grads, variables))

    for _ in range(steps):
        step([tf.constant(rng.normal(size=SHAPE).astype("float32")) for _ in variables])
    slots = [optimizer.get_slot(v, s).numpy() for v in variables
             for s in optimizer.get_slot_names()]
    return [v.numpy() for v in variables] + slots


@pytest.mark.parametrize("cls,options", OPTIMIZERS,
                         ids=[f"{c.__name__}-{'-'.join(o) or 'plain'}" for c, o in OPTIMIZERS])
def test_kernels_equal_tensorflow_ops(cls, options):
    """Same-shape variables of several optimizers share one trace (handles, not
    captured variables), each updating its own variable and slots."""
    compiled = [_train(cls, options, 0) for _ in range(2)]
    reference = _train(cls, options, None)
    for run in compiled:
        for a, b in zip(run, reference):
            assert_close(a, b, rtol=1e-6)


def test_size_threshold():
    optimizer = SGDW(momentum=0.9)
    small = tf.Variable(tf.zeros([SGDW.xla_min_size - 1]))
    large = tf.Variable(tf.zeros([SGDW.xla_min_size]))
    assert not optimizer._compiled(small) and optimizer._compiled(large)
    assert AdamW()._compiled(small) and NadamW()._compiled(small)
    optimizer.xla_min_size = None
    assert not optimizer._compiled(large)


def test_kernels_trace_once_per_dtype():
    before = kernels.adamw.experimental_get_tracing_count()
    for shape in [(3,), (4, 5), (2, 3, 4)]:
        variable = tf.Variable(tf.ones(shape), name="t/kernel")
        AdamW(weight_decay=0.1, init_verbose=False).apply_gradients(
            [(tf.ones(shape), variable)])
    assert kernels.adamw.experimental_get_tracing_count() - before <= 2


MIRRORED_SCRIPT = textwrap.dedent("""
    import json, os, sys
    sys.path.insert(0, {here!r})
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from keras2_helpers import small_adamw, train_small_model
    from keras_adamw.keras2 import SGDW

    def small_sgdw(model):
        optimizer = SGDW(learning_rate=0.05, momentum=0.9, model=model,
                         lr_multipliers={{"d1": 0.5}}, use_cosine_annealing=True,
                         total_iterations=5, init_verbose=False)
        optimizer.xla_min_size = 0
        return optimizer

    result = {{}}
    for name, factory in [("adamw", small_adamw), ("sgdw", small_sgdw)]:
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        with strategy.scope():
            weights, state = train_small_model(factory, mode="function")
        single, single_state = train_small_model(factory, mode="function")
        result[name] = {{"replicas": strategy.num_replicas_in_sync,
                         "weights": [w.tolist() for w in weights], "state": state,
                         "single": [w.tolist() for w in single],
                         "single_state": single_state}}
    print("RESULT" + json.dumps(result))
""")


def test_mirrored_strategy_two_cpus():
    """Logical devices must be set before TF starts, so this runs in a subprocess."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    out = subprocess.run([sys.executable, "-c", MIRRORED_SCRIPT.format(here=HERE)],
                         capture_output=True, text=True, env=env, timeout=300,
                         check=False)
    lines = [x for x in out.stdout.splitlines() if x.startswith("RESULT")]
    assert lines, out.stderr[-3000:]
    for name, run in json.loads(lines[-1][len("RESULT"):]).items():
        assert run["replicas"] == 2
        for a, b in zip(run["weights"], run["single"]):
            assert_close(np.array(a), np.array(b), what=name)
        assert run["state"]["iterations"] == run["single_state"]["iterations"] == 8
        assert run["state"]["t_cur"] == run["single_state"]["t_cur"] == 8 % 5
        assert_close(run["state"]["eta_t"], run["single_state"]["eta_t"])
        assert_close(run["state"]["lr_t"], run["single_state"]["lr_t"])

