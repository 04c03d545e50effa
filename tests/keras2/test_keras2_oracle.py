"""keras2 AdamW/NadamW/SGDW against the float64 oracle: variables, slots, state.

The rows of tests/cases.py with extra settings; each runs 50 updates (dense, or
with an `IndexedSlices` gradient with repeated rows) and compares variables,
slots and `iterations`/`t_cur`/`eta_t`/`lr_t` to `reference.ReferenceOptimizer`,
on every TensorFlow kernel path of the row: the native single-pass ops
(`tf_native`), the native XLA custom calls (`tf_xla_call`, a `jit_compile=True`
step), the XLA-compiled kernels (`tf_compiled`, `xla_min_size=0`) and TensorFlow
ops only (`reference`).
"""
import dataclasses

import pytest
from cases import CASES
from helpers import assert_matches_oracle
from keras2_helpers import train_against_oracle

from keras_adamw import keras2
from keras_adamw.keras2.framework import keras2 as tf_keras
from keras_adamw.kernels import tf_native as native

STEPS = 50


@dataclasses.dataclass
class Run:
    """A row of tests/cases.py with extra settings."""

    name: str
    row: str
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
RISING = tf_keras.optimizers.schedules.PolynomialDecay(0.04, 10, end_learning_rate=0.4)
KERAS_DECAY_MASK = {"exclude_from_weight_decay": ["bias"]}
KERAS_DECAY_ORACLE_MASK = {"decay_mask": [True, False, True]}


def oracle_rising(iterations):
    return (0.04 - 0.4) * (1.0 - min(iterations, 10) / 10) + 0.4


MANUAL = {"use_cosine_annealing": True, "total_iterations": 40, "autorestart": False}

RUNS = [
    Run("adamw", "adamw"),
    Run("adamw-amsgrad", "adamw_amsgrad"),
    Run("adamw-amsgrad-sparse", "adamw_amsgrad", sparse=True),
    Run("nadamw", "nadamw"),
    Run("nadamw-sparse", "nadamw", sparse=True),
    Run("sgdw", "sgdw"),
    # Without momentum and decay: the scatter over the gradient's rows only.
    Run("sgdw-sparse", "sgdw", sparse=True),
    Run("sgdw-multipliers-cosine-sparse", "sgdw", dict(COSINE, lr_multipliers=MULTIPLIERS),
        dict(COSINE, multipliers=MULTIPLIERS_ORACLE), sparse=True),
    Run("sgdw-momentum", "sgdw_momentum"),
    Run("sgdw-nesterov", "sgdw_nesterov"),
    Run("sgdw-momentum-sparse", "sgdw_momentum", sparse=True),
    Run("adamw-multipliers", "adamw", {"lr_multipliers": MULTIPLIERS},
        {"multipliers": MULTIPLIERS_ORACLE}),
    Run("adamw-paper-decay", "adamw", {"weight_decays": PAPER, "total_iterations": 50},
        {"l1_l2": PAPER_ORACLE, "total_iterations": 50}),
    Run("adamw-keras-decay", "adamw", KERAS_DECAY, KERAS_DECAY_ORACLE),
    Run("adamw-inverse-time-decay", "adamw", {"decay": 0.01}, {"decay": 0.01}),
    Run("adamw-autorestart", "adamw", ALL, ALL_ORACLE),
    Run("adamw-all-sparse", "adamw", {**ALL, **KERAS_DECAY},
        {**ALL_ORACLE, **KERAS_DECAY_ORACLE}, sparse=True),
    Run("adamw-manual-restart", "adamw", MANUAL, MANUAL, restart_at=25),
    Run("nadamw-all", "nadamw", {**ALL, **KERAS_DECAY}, {**ALL_ORACLE, **KERAS_DECAY_ORACLE}),
    Run("nadamw-manual-restart", "nadamw", dict(ALL, autorestart=False),
        dict(ALL_ORACLE, autorestart=False), restart_at=20),
    Run("sgdw-momentum-all", "sgdw_momentum", dict(ALL, **KERAS_DECAY),
        dict(ALL_ORACLE, **KERAS_DECAY_ORACLE)),
    Run("sgdw-nesterov-all-sparse", "sgdw_nesterov", ALL, ALL_ORACLE, sparse=True),
    Run("sgdw-plain-paper-decay", "sgdw", {"weight_decays": PAPER, "total_iterations": 30},
        {"l1_l2": PAPER_ORACLE, "total_iterations": 30}),
    # docs/pages/decay.md: a decay schedule, and each `decay_coupling`.
    Run("adamw-decay-schedule", "adamw", {"weight_decay": RISING, **KERAS_DECAY_MASK},
        {"weight_decay": 0.0, "weight_decay_fn": oracle_rising, **KERAS_DECAY_ORACLE_MASK}),
    Run("nadamw-coupling-none", "nadamw", {**KERAS_DECAY, "decay_coupling": "none"},
        {**KERAS_DECAY_ORACLE, "decay_coupling": "none"}),
    Run("sgdw-momentum-coupling-lr-paper", "sgdw_momentum",
        {"weight_decays": PAPER, "total_iterations_wd": 30, "decay_coupling": "lr"},
        {"l1_l2": PAPER_ORACLE, "total_iterations_wd": 30, "decay_coupling": "lr"}),
    Run("adamw-coupling-lr-ratio", "adamw",
        {**KERAS_DECAY, "weight_decays": PAPER, "total_iterations_wd": 30,
         "decay_coupling": "lr_ratio", "lr_multipliers": MULTIPLIERS},
        {**KERAS_DECAY_ORACLE, "l1_l2": PAPER_ORACLE, "total_iterations_wd": 30,
         "decay_coupling": "lr_ratio", "lr_peak": CASES["adamw"].learning_rate,
         "multipliers": MULTIPLIERS_ORACLE}),
    Run("adamw-decay-to-init", "adamw", {**KERAS_DECAY, "weight_decays": PAPER,
                                         "total_iterations_wd": 30, "decay_to": "init"},
        {**KERAS_DECAY_ORACLE, "l1_l2": PAPER_ORACLE, "total_iterations_wd": 30,
         "anchored": ("dense/kernel", "emb/embeddings")}),
    Run("sgdw-momentum-decay-to-init-sparse", "sgdw_momentum",
        {"weight_decay": 0.1, "decay_to": {"emb": "init"}},
        {"weight_decay": 0.1, "anchored": ("emb/embeddings",)}, sparse=True),
    Run("nadamw-decay-to-init-kernel", "nadamw",
        {"weight_decay": 0.1, "decay_to": {"dense/kernel": "init"}},
        {"weight_decay": 0.1, "anchored": ("dense/kernel",)}),
    Run("sgdw-nesterov-coupling-corrected", "sgdw_nesterov",
        {"weight_decay": 0.5, "decay_coupling": "corrected", "lr_peak": 0.1},
        {"weight_decay": 0.5, "decay_coupling": "corrected", "lr_peak": 0.1}),
]

# The kernel paths of tests/cases.py: (native_kernels, xla_min_size, jit_compile).
UPDATE_PATHS = {"tf_native": (True, 0, False), "tf_xla_call": (True, 0, True),
                "tf_compiled": (False, 0, False), "reference": (False, None, False)}
RUNS_AND_PATHS = [(run, path) for path in UPDATE_PATHS for run in RUNS
                  if path in CASES[run.row].paths]


@pytest.mark.parametrize("run, path", RUNS_AND_PATHS,
                         ids=[f"{run.name}-{path}" for run, path in RUNS_AND_PATHS])
def test_matches_oracle(run, path):
    case = CASES[run.row]
    optimizer = case.make(keras2, **run.options)
    optimizer.native_kernels, optimizer.xla_min_size, jit_compile = UPDATE_PATHS[path]
    assert not optimizer.native_kernels or native.library() is not None, "native not built"
    variables, oracle, params = train_against_oracle(
        optimizer, case, STEPS, run.sparse, jit_compile, run.restart_at, **run.oracle)
    assert_matches_oracle(optimizer, variables, oracle, params, case, what=run.name)
