"""The same training in eager, tf.function, XLA and TF1 graph mode gives the
same weights and state; the schedule advances once per applied update."""
import os
import textwrap

import numpy as np
import pytest
from helpers import assert_close, run_script, subprocess_environment
from keras2_helpers import small_adamw, train_small_model

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture(scope="module")
def function_run():
    return train_small_model(small_adamw, mode="function")


def test_once_per_step(function_run):
    _, state = function_run
    assert state["iterations"] == 8
    assert state["t_cur"] == 8 % 5  # autorestart after 5 updates, not per variable
    expected_eta = 0.5 * (1 + np.cos(np.pi * 3 / 4))
    assert_close(state["eta_t"], expected_eta)


@pytest.mark.parametrize("mode", ["eager", "jit"])
def test_modes_agree(mode, function_run):
    weights, state = train_small_model(small_adamw, mode=mode)
    for a, b in zip(weights, function_run[0]):
        assert_close(a, b)
    assert state["t_cur"] == function_run[1]["t_cur"]
    assert_close(state["eta_t"], function_run[1]["eta_t"])
    assert_close(state["lr_t"], function_run[1]["lr_t"])


GRAPH_SCRIPT = textwrap.dedent("""
    import json
    import tensorflow as tf
    tf.compat.v1.disable_eager_execution()
    from keras2_helpers import small_adamw, train_small_model
    weights, state = train_small_model(small_adamw, mode="graph")
    print("RESULT" + json.dumps({"weights": [w.tolist() for w in weights], "state": state}))
""")


def test_tf1_graph_mode(function_run):
    """`disable_eager_execution` is global, so graph mode runs in a subprocess."""
    result = run_script(GRAPH_SCRIPT, env=subprocess_environment(HERE))
    for a, b in zip(result["weights"], function_run[0]):
        assert_close(np.array(a), b)
    assert result["state"]["iterations"] == 8
    assert result["state"]["t_cur"] == function_run[1]["t_cur"]
    assert_close(result["state"]["eta_t"], function_run[1]["eta_t"])
