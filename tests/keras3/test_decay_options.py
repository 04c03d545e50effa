"""Weight decay as fine-tuners set it: a schedule, and its coupling to the learning rate.

Each setting below runs `STEPS` updates of ours and the float64 oracle
(tests/reference.py, written from docs/pages/decay.md) for AdamW, NadamW and SGDW
(with and without momentum), on each kernel path of this backend: the native
kernels and `native_kernels=False`; on TensorFlow also in a `tf.function` and under
XLA. A variable of 2^16 elements takes JAX's custom calls. Variables and slots are
compared (rtol 1e-5).

- `weight_decay` a `LearningRateSchedule` rising from 0.04 to 0.4 (DINO-style);
- `decay_coupling`: `"none"` (TF Addons), `"lr"` on the paper `weight_decays`,
  `"lr_ratio"` (fully decoupled) over a decaying learning rate, `"corrected"` (AdamC)
  with an explicit `lr_peak`; `"lr_ratio"` with the learning rate divided by 10
  mid-run, as `ReduceLROnPlateau` does;
- `decay_to="init"` (L2-SP: the decays pull toward the weights at build) for every
  variable, and by pattern (`{"kernel": "init"}`); saved mid-run, loaded and
  continued, it equals the run that never stopped (the anchors are optimizer
  variables);
- the schedule and the coupling survive `get_config`; bad values name the argument.
"""
import keras
import numpy as np
import pytest
from cases import CASES
from helpers import (
    as_float64,
    assert_matches_oracle,
    make_step,
    make_variables,
    oracle_for,
)
from keras3_helpers import BACKEND, float32_terms

import keras_adamw

STEPS = 12
ROWS = ("adamw", "nadamw", "sgdw", "sgdw_momentum")
SHAPES = {"big": (256, 256), "kernel": (3, 4), "bias": (4,)}
MULTIPLIERS = {"kernel": 2.0, "bias": 2.0}
ORACLE_MULTIPLIERS = [1.0, 2.0, 2.0]
PAPER = {"kernel": (1e-3, 2e-2)}
ORACLE_PAPER = [(0.0, 0.0), (1e-3, 2e-2), (0.0, 0.0)]


def rising_decay():
    return keras.optimizers.schedules.PolynomialDecay(0.04, 10, end_learning_rate=0.4)


def oracle_rising_decay(iterations):
    return (0.04 - 0.4) * (1.0 - min(iterations, 10) / 10) + 0.4


def decaying_lr():
    return keras.optimizers.schedules.ExponentialDecay(0.01, decay_steps=5, decay_rate=0.5)


def oracle_decaying_lr(iterations):
    return 0.01 * 0.5 ** (iterations / 5)


# {name: (our arguments, the oracle's)}; every setting has multipliers.
SETTINGS = {
    "schedule": ({"weight_decay": rising_decay()},
                 {"weight_decay": 0.0, "weight_decay_fn": oracle_rising_decay}),
    "none": ({"weight_decay": 0.05, "decay_coupling": "none"},
             {"weight_decay": 0.05, "decay_coupling": "none"}),
    "lr_paper": ({"weight_decays": PAPER, "total_iterations_wd": 20, "decay_coupling": "lr"},
                 {"l1_l2": ORACLE_PAPER, "total_iterations_wd": 20, "decay_coupling": "lr"}),
    "lr_ratio": ({"learning_rate": "decaying", "weight_decay": 0.05, "weight_decays": PAPER,
                  "total_iterations_wd": 20, "decay_coupling": "lr_ratio"},
                 {"learning_rate_fn": oracle_decaying_lr, "weight_decay": 0.05,
                  "l1_l2": ORACLE_PAPER, "total_iterations_wd": 20,
                  "decay_coupling": "lr_ratio", "lr_peak": 0.01}),
    "corrected": ({"weight_decay": 0.5, "decay_coupling": "corrected", "lr_peak": 0.02},
                  {"weight_decay": 0.5, "decay_coupling": "corrected", "lr_peak": 0.02}),
}
# decay_to="init": the anchors are the initial values (`run` fills them in).
SETTINGS["to_init"] = ({"weight_decay": 0.1, "weight_decays": PAPER, "total_iterations_wd": 20,
                        "decay_to": "init"},
                       {"weight_decay": 0.1, "l1_l2": ORACLE_PAPER, "total_iterations_wd": 20,
                        "anchors": "all"})
SETTINGS["to_init_kernel"] = ({"weight_decay": 0.1, "decay_to": {"kernel": "init"}},
                              {"weight_decay": 0.1, "anchors": "kernel"})
MODES = {"tensorflow": ("eager", "function", "jit")}.get(BACKEND, ("eager",))


def build(row, setting, native_kernels, initial):
    ours, theirs = SETTINGS[setting]
    if "anchors" in theirs:
        theirs = dict(theirs, anchors=[value if theirs["anchors"] in ("all", name) else None
                                       for name, value in zip(SHAPES, initial)])
    case = CASES[row]
    ours = dict(ours, lr_multipliers=MULTIPLIERS, init_verbose=False)
    if ours.get("learning_rate") == "decaying":
        ours["learning_rate"] = decaying_lr()
    theirs = dict(theirs, multipliers=ORACLE_MULTIPLIERS)
    optimizer = case.make(keras_adamw, **ours)
    optimizer.native_kernels = native_kernels
    oracle = oracle_for(case, SHAPES.values(), float32=float32_terms(case), **theirs)
    return case, optimizer, oracle


def run(row, setting, native_kernels, mode="eager", lower_lr_at=None):
    variables = make_variables(keras.Variable, SHAPES)
    params = [as_float64(v) for v in variables]
    case, optimizer, oracle = build(row, setting, native_kernels, params)
    step = make_step(optimizer, variables, mode)
    rng = np.random.default_rng(1)
    for index in range(STEPS):
        if index == lower_lr_at:  # ReduceLROnPlateau: learning_rate /= 10
            optimizer.learning_rate = float(as_float64(optimizer.learning_rate)) / 10
            oracle.learning_rate /= 10
        grads = [rng.normal(size=shape) for shape in SHAPES.values()]
        step([keras.ops.convert_to_tensor(g, "float32") for g in grads])
        params = oracle.step(params, grads)
    assert_matches_oracle(optimizer, variables, oracle, params, case,
                          what=f"{row} {setting} {mode}")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("native_kernels", [True, False], ids=["native", "no-native"])
@pytest.mark.parametrize("setting", sorted(SETTINGS))
@pytest.mark.parametrize("row", ROWS)
def test_decay_setting_matches_oracle(row, setting, native_kernels, mode):
    run(row, setting, native_kernels, mode)


@pytest.mark.parametrize("row", ROWS)
def test_lr_ratio_follows_a_learning_rate_lowered_mid_run(row):
    """`decay_coupling="lr_ratio"` with a float learning rate: `lr_peak` is it, and
    the decay falls with it when a callback divides it by 10."""
    SETTINGS["lr_ratio_plateau"] = (
        {"learning_rate": 0.01, "weight_decay": 0.05, "decay_coupling": "lr_ratio"},
        {"learning_rate": 0.01, "weight_decay": 0.05, "decay_coupling": "lr_ratio",
         "lr_peak": 0.01})
    try:
        run(row, "lr_ratio_plateau", True, lower_lr_at=6)
    finally:
        del SETTINGS["lr_ratio_plateau"]


def test_schedule_and_coupling_survive_get_config():
    optimizer = keras_adamw.AdamW(learning_rate=decaying_lr(), weight_decay=rising_decay(),
                                  decay_coupling="lr_ratio", init_verbose=False)
    restored = keras_adamw.AdamW.from_config(optimizer.get_config())
    assert restored._settings.decay_coupling == "lr_ratio"
    assert restored._settings.lr_peak == 0.01
    for step in (0, 5, 10, 20):
        assert float(restored._settings.weight_decay(step)) == pytest.approx(
            oracle_rising_decay(step))


def test_a_scheduled_decay_saves_with_the_model(tmp_path):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="dense")])
    model.compile(keras_adamw.SGDW(learning_rate=0.1, weight_decay=rising_decay(),
                                   init_verbose=False), loss="mse")
    model.fit(np.ones((4, 3)), np.ones((4, 2)), verbose=0)
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    assert float(loaded.optimizer._settings.weight_decay(10)) == pytest.approx(0.4)


@pytest.mark.parametrize("arguments, error, match", [
    ({"decay_coupling": "linear"}, ValueError, "decay_coupling"),
    ({"decay_coupling": "lr_ratio", "weight_decay": 0.1, "learning_rate": lambda: 0.1},
     ValueError, "lr_peak"),
    ({"decay_coupling": "corrected", "lr_peak": 0.0}, ValueError, "lr_peak"),
    ({"weight_decay": "0.1"}, TypeError, "weight_decay"),
    ({"weight_decay": -0.1}, ValueError, "weight_decay"),
])
def test_bad_decay_arguments_name_the_argument(arguments, error, match):
    with pytest.raises(error, match=match):
        keras_adamw.AdamW(**arguments)


def anchored_model():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, name="dense_1"),
                              keras.layers.Dense(2, name="dense_2")])
    model.compile(keras_adamw.AdamW(learning_rate=0.05, weight_decay=0.5, decay_to="init",
                                    exclude_from_weight_decay=["bias"], init_verbose=False),
                  loss="mse")
    return model


def test_decay_to_init_resumes_exactly(tmp_path):
    x = np.random.default_rng(0).normal(size=(16, 3)).astype("float32")
    y = np.random.default_rng(1).normal(size=(16, 2)).astype("float32")
    uninterrupted = anchored_model()
    uninterrupted.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
    interrupted = anchored_model()
    initial = [as_float64(v) for v in interrupted.trainable_variables]
    interrupted.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    interrupted.save(tmp_path / "model.keras")
    resumed = keras.saving.load_model(tmp_path / "model.keras")
    anchors = [a for a in resumed.optimizer._anchors if a is not None]
    assert len(anchors) == 2  # the kernels; the excluded biases keep no anchor
    np.testing.assert_array_equal(as_float64(anchors[0]), initial[0])
    resumed.fit(x, y, batch_size=4, epochs=2, initial_epoch=1, shuffle=False, verbose=0)
    for ours, theirs in zip(resumed.weights + resumed.optimizer.variables,
                            uninterrupted.weights + uninterrupted.optimizer.variables):
        np.testing.assert_array_equal(as_float64(ours), as_float64(theirs))


def test_decay_to_pattern_that_matches_nothing_warns():
    optimizer = keras_adamw.AdamW(weight_decay=0.1, decay_to={"kernal": "init"},
                                  init_verbose=False)
    with pytest.warns(UserWarning, match="kernal"):
        optimizer.build(make_variables(keras.Variable, SHAPES))


@pytest.mark.parametrize("decay_to, error", [("one", ValueError), (1, TypeError),
                                             ({"kernel": "two"}, ValueError)])
def test_bad_decay_to_names_the_argument(decay_to, error):
    with pytest.raises(error, match="decay_to"):
        keras_adamw.AdamW(weight_decay=0.1, decay_to=decay_to)
