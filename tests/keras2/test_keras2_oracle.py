"""keras2 AdamW/NadamW/SGDW against the float64 oracle: variables, slots, state.

One case table; each case runs 50 updates (dense, or with an `IndexedSlices`
gradient with repeated rows) and compares variables, slots and
`iterations`/`t_cur`/`eta_t`/`lr_t` to `reference.ReferenceOptimizer`, once with
the native single-pass ops (`keras_adamw.native`), once with the native XLA
custom calls (a `jit_compile=True` step), once with the XLA-compiled kernels
(`xla_min_size=0`) and once with TensorFlow ops only.
"""
import dataclasses

import numpy as np
import pytest
import reference
import tensorflow as tf
from keras2_helpers import (
    SHAPES,
    SPARSE_INDICES,
    assert_close,
    f32,
    make_gradients,
    make_step,
    make_variables,
)

from keras_adamw.keras2 import SGDW, AdamW, NadamW
from keras_adamw.keras2.framework import (
    keras2 as tf_keras,  # tf_keras, or keras 2.x on TF < 2.16
)
from keras_adamw.kernels import tf_native as native

STEPS = 50
CLASSES = {"adamw": AdamW, "nadamw": NadamW, "sgdw": SGDW}
PATHS = list(SHAPES)


@dataclasses.dataclass
class Case:
    name: str
    kind: str
    options: dict = dataclasses.field(default_factory=dict)  # optimizer arguments
    oracle: dict = dataclasses.field(default_factory=dict)  # the same, oracle's terms
    sparse: bool = False
    restart_at: int | None = None  # K.set_value(opt.t_cur, -1) before this step


MULTIPLIERS = {"dense": 2.0, "dense/bias": 0.25, "emb": 0.5}
MULTIPLIERS_ORACLE = [2.0, 0.25, 0.5]
PAPER = {"dense/kernel": (1e-3, 2e-2), "emb/embeddings": (0.0, 5e-2)}
PAPER_ORACLE = [(1e-3, 2e-2), (0.0, 0.0), (0.0, 5e-2)]
KERAS_DECAY = {"weight_decay": 0.1, "exclude_from_weight_decay": ["bias"]}
KERAS_DECAY_ORACLE = {"weight_decay": 0.1, "decay_mask": [True, False, True]}
COSINE = {"use_cosine_annealing": True, "total_iterations": 12}
ALL = dict(lr_multipliers=MULTIPLIERS, weight_decays=PAPER, **COSINE)
ALL_ORACLE = dict(multipliers=MULTIPLIERS_ORACLE, l1_l2=PAPER_ORACLE, **COSINE)

CASES = [
    Case("adamw", "adamw"),
    Case("adamw-amsgrad", "adamw", {"amsgrad": True}, {"amsgrad": True}),
    Case("adamw-amsgrad-sparse", "adamw", {"amsgrad": True}, {"amsgrad": True},
         sparse=True),
    Case("nadamw", "nadamw"),
    Case("nadamw-sparse", "nadamw", sparse=True),
    Case("sgdw", "sgdw"),
    Case("sgdw-momentum", "sgdw", {"momentum": 0.9}, {"momentum": f32(0.9)}),
    Case("sgdw-nesterov", "sgdw", {"momentum": 0.9, "nesterov": True},
         {"momentum": f32(0.9), "nesterov": True}),
    Case("sgdw-momentum-sparse", "sgdw", {"momentum": 0.9}, {"momentum": f32(0.9)},
         sparse=True),
    Case("adamw-multipliers", "adamw", {"lr_multipliers": MULTIPLIERS},
         {"multipliers": MULTIPLIERS_ORACLE}),
    Case("adamw-paper-decay", "adamw", {"weight_decays": PAPER, "total_iterations": 50},
         {"l1_l2": PAPER_ORACLE, "total_iterations": 50}),
    Case("adamw-keras-decay", "adamw", KERAS_DECAY, KERAS_DECAY_ORACLE),
    Case("adamw-inverse-time-decay", "adamw", {"decay": 0.01}, {"decay": 0.01}),
    Case("adamw-autorestart", "adamw", ALL, ALL_ORACLE),
    Case("adamw-all-sparse", "adamw", {**ALL, **KERAS_DECAY},
         {**ALL_ORACLE, **KERAS_DECAY_ORACLE}, sparse=True),
    Case("adamw-manual-restart", "adamw",
         {"use_cosine_annealing": True, "total_iterations": 40, "autorestart": False},
         {"use_cosine_annealing": True, "total_iterations": 40, "autorestart": False},
         restart_at=25),
    Case("nadamw-all", "nadamw", {**ALL, **KERAS_DECAY}, {**ALL_ORACLE, **KERAS_DECAY_ORACLE}),
    Case("nadamw-manual-restart", "nadamw", dict(ALL, autorestart=False),
         dict(ALL_ORACLE, autorestart=False), restart_at=20),
    Case("sgdw-momentum-all", "sgdw", dict(ALL, momentum=0.9, **KERAS_DECAY),
         dict(ALL_ORACLE, momentum=f32(0.9), **KERAS_DECAY_ORACLE)),
    Case("sgdw-nesterov-all-sparse", "sgdw", dict(ALL, momentum=0.9, nesterov=True),
         dict(ALL_ORACLE, momentum=f32(0.9), nesterov=True), sparse=True),
    Case("sgdw-plain-paper-decay", "sgdw", {"weight_decays": PAPER, "total_iterations": 30},
         {"l1_l2": PAPER_ORACLE, "total_iterations": 30}),
]


def oracle_for(case, learning_rate):
    adam = case.kind != "sgdw"
    base = {"learning_rate": f32(learning_rate)}
    if adam:
        base.update(beta_1=f32(0.9), beta_2=f32(0.999), epsilon=f32(1e-7))
    return reference.ReferenceOptimizer(case.kind, list(SHAPES.values()),
                                        **base, **case.oracle)


SLOTS = {"m": "m", "v": "v", "vhat": "vhat", "momentum": "velocity"}


def compare(optimizer, variables, oracle, params, what):
    for var, expected, path in zip(variables, params, PATHS):
        assert_close(var.numpy(), expected, what=f"{what}: {path}")
        for slot in optimizer.get_slot_names():
            i = PATHS.index(path)
            assert_close(optimizer.get_slot(var, slot).numpy(),
                         getattr(oracle, SLOTS[slot])[i], what=f"{what}: {path}/{slot}")
    get = tf_keras.backend.get_value
    assert get(optimizer.iterations) == oracle.iterations
    assert get(optimizer.t_cur) == oracle.t_cur
    assert_close(get(optimizer.eta_t), oracle.eta_t, what="eta_t")
    assert_close(get(optimizer.lr_t), oracle.lr_t, what="lr_t")
    if "momentum_cache" in optimizer._state_variables():
        assert_close(get(optimizer._state_variables()["momentum_cache"]), oracle.u_product)


# The update paths: (native_kernels, xla_min_size, jit_compile). "native" runs
# the native TensorFlow ops, "native-jit" the native XLA custom calls.
UPDATE_PATHS = {"native": (True, 0, False), "native-jit": (True, 0, True),
                "xla": (False, 0, False), "tf-ops": (False, None, False)}


@pytest.mark.parametrize("update", UPDATE_PATHS)
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_matches_oracle(case, update):
    learning_rate = 0.05 if case.kind == "sgdw" else 0.01
    optimizer = CLASSES[case.kind](learning_rate=learning_rate, init_verbose=False,
                                   **case.options)
    optimizer.native_kernels, optimizer.xla_min_size, jit_compile = UPDATE_PATHS[update]
    assert not optimizer.native_kernels or native.library() is not None, "native not built"
    variables = make_variables()
    oracle = oracle_for(case, learning_rate)
    params = [v.numpy().astype(np.float64) for v in variables]
    dense, sparse = make_gradients(STEPS)
    step = make_step(optimizer, variables, case.sparse, jit_compile)
    for i in range(STEPS):
        if case.restart_at == i:
            tf_keras.backend.set_value(optimizer.t_cur, -1)
            oracle.set_t_cur(-1)
        grads = [g.astype(np.float64) for g in dense[i]]
        if case.sparse:
            grads[2] = reference.densify(sparse[i], SPARSE_INDICES, SHAPES["emb/embeddings"])
        step([tf.constant(g) for g in dense[i]], tf.constant(sparse[i]))
        params = oracle.step(params, grads)
    compare(optimizer, variables, oracle, params, case.name)
