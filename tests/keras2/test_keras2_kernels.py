"""The XLA-compiled kernels: one trace serves every variable and optimizer, the
size threshold picks the path, and `tf.distribute.MirroredStrategy` (two logical
CPUs) gives the single-device numbers with the schedule advanced once per step."""
import os
import textwrap

import numpy as np
import pytest
import tensorflow as tf
from cases import case_id, on_path
from helpers import assert_close, run_script, subprocess_environment

from keras_adamw import keras2
from keras_adamw.keras2 import SGDW, AdamW, NadamW
from keras_adamw.kernels import tf_compiled

HERE = os.path.dirname(os.path.abspath(__file__))
SHAPE = (6, 4)
EXTRAS = {"weight_decays": {"a/kernel": (1e-3, 1e-2)}, "weight_decay": 0.05,
          "lr_multipliers": {"b/": 0.5}, "total_iterations": 10,
          "use_cosine_annealing": True}
COMPILED = on_path("tf_compiled")


def _train(case, xla_min_size, steps=6):
    """Two same-shape variables; slots are created while `step` is first traced."""
    rng = np.random.default_rng(7)
    variables = [tf.Variable(rng.normal(size=SHAPE).astype("float32"), name=name)
                 for name in ("a/kernel", "b/kernel")]
    optimizer = case.make(keras2, learning_rate=0.05, **EXTRAS)
    optimizer.xla_min_size = xla_min_size

    @tf.function
    def step(grads):
        optimizer.apply_gradients(zip(grads, variables))

    for _ in range(steps):
        step([tf.constant(rng.normal(size=SHAPE).astype("float32")) for _ in variables])
    slots = [optimizer.get_slot(v, s).numpy() for v in variables
             for s in optimizer.get_slot_names()]
    return [v.numpy() for v in variables] + slots


@pytest.mark.parametrize("case", COMPILED, ids=case_id)
def test_kernels_equal_tensorflow_ops(case):
    """Same-shape variables of several optimizers share one trace (handles, not
    captured variables), each updating its own variable and slots."""
    compiled = [_train(case, 0) for _ in range(2)]
    reference = _train(case, None)
    for run in compiled:
        for a, b in zip(run, reference):
            assert_close(a, b, rtol=1e-6)


def test_size_threshold():
    optimizer = SGDW(momentum=0.9)
    small = tf.Variable(tf.zeros([SGDW.xla_min_size - 1]))
    large = tf.Variable(tf.zeros([SGDW.xla_min_size]))
    compiled = lambda opt, var: opt._var_capabilities(var).compiled == "always"
    assert not compiled(optimizer, small) and compiled(optimizer, large)
    assert compiled(AdamW(), small) and compiled(NadamW(), small)
    optimizer.xla_min_size = None
    assert not compiled(optimizer, large)


def test_kernels_trace_once_per_dtype():
    before = tf_compiled.adam_family.experimental_get_tracing_count()
    for shape in [(3,), (4, 5), (2, 3, 4)]:
        variable = tf.Variable(tf.ones(shape), name="t/kernel")
        AdamW(weight_decay=0.1, init_verbose=False).apply_gradients(
            [(tf.ones(shape), variable)])
    assert tf_compiled.adam_family.experimental_get_tracing_count() - before <= 2


MIRRORED_SCRIPT = textwrap.dedent("""
    import json
    import tensorflow as tf
    from helpers import mirrored_strategy_on_two_cpus
    from keras2_helpers import small_adamw, train_small_model
    from keras_adamw.keras2 import SGDW

    def small_sgdw(model):
        optimizer = SGDW(learning_rate=0.05, momentum=0.9, model=model,
                         lr_multipliers={"d1": 0.5}, use_cosine_annealing=True,
                         total_iterations=5, init_verbose=False)
        optimizer.xla_min_size = 0
        return optimizer

    result = {}
    for name, factory in [("adamw", small_adamw), ("sgdw", small_sgdw)]:
        strategy = mirrored_strategy_on_two_cpus()
        with strategy.scope():
            weights, state = train_small_model(factory, mode="function")
        single, single_state = train_small_model(factory, mode="function")
        result[name] = {"replicas": strategy.num_replicas_in_sync,
                         "weights": [w.tolist() for w in weights], "state": state,
                         "single": [w.tolist() for w in single],
                         "single_state": single_state}
    print("RESULT" + json.dumps(result))
""")


def test_mirrored_strategy_two_cpus():
    """Logical devices must be set before TF starts, so this runs in a subprocess."""
    result = run_script(MIRRORED_SCRIPT, env=subprocess_environment(HERE))
    for name, run in result.items():
        assert run["replicas"] == 2
        for a, b in zip(run["weights"], run["single"]):
            assert_close(np.array(a), np.array(b), what=name)
        assert run["state"]["iterations"] == run["single_state"]["iterations"] == 8
        assert run["state"]["t_cur"] == run["single_state"]["t_cur"] == 8 % 5
        assert_close(run["state"]["eta_t"], run["single_state"]["eta_t"])
        assert_close(run["state"]["lr_t"], run["single_state"]["lr_t"])

