"""The same training in eager, tf.function, XLA and TF1 graph mode gives the
same weights and state; the schedule advances once per applied update."""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from helpers import assert_close
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
    import json, os, sys
    sys.path.insert(0, {here!r})
    import tensorflow as tf
    tf.compat.v1.disable_eager_execution()
    from keras2_helpers import small_adamw, train_small_model
    weights, state = train_small_model(small_adamw, mode="graph")
    print("RESULT" + json.dumps({{"weights": [w.tolist() for w in weights], "state": state}}))
""")


def test_tf1_graph_mode(function_run):
    """`disable_eager_execution` is global, so graph mode runs in a subprocess."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    out = subprocess.run([sys.executable, "-c", GRAPH_SCRIPT.format(here=HERE)],
                         capture_output=True, text=True, env=env, timeout=300,
                         check=False)
    lines = [x for x in out.stdout.splitlines() if x.startswith("RESULT")]
    assert lines, out.stderr[-3000:]
    result = json.loads(lines[-1][len("RESULT"):])
    for a, b in zip(result["weights"], function_run[0]):
        assert_close(np.array(a), b)
    assert result["state"]["iterations"] == 8
    assert result["state"]["t_cur"] == function_run[1]["t_cur"]
    assert_close(result["state"]["eta_t"], function_run[1]["eta_t"])
