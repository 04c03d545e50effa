"""Keras 3 API: model= extraction, argument errors, warnings, init_verbose, utils."""
import math
import warnings

import keras
import numpy as np
import pytest
from helpers import small_model

import keras_adamw
from keras_adamw import utils
from keras_adamw.utils import K_eval

L1, L2, L1L2 = keras.regularizers.L1, keras.regularizers.L2, keras.regularizers.L1L2


def regularized_model():
    """Every kind of regularized weight, nested models and wrappers included."""
    layers = keras.layers
    inner = keras.Sequential([keras.Input((6,)), layers.Dense(
        3, name="inner_dense", kernel_regularizer=L2(3e-4))], name="inner")
    tokens = keras.Input((5,), dtype="int32")
    x = layers.Embedding(10, 6, name="embedding", embeddings_regularizer=L1(1e-5))(tokens)
    x = layers.Bidirectional(layers.LSTM(4, return_sequences=True, name="lstm",
                                         kernel_regularizer=L1(1e-4),
                                         recurrent_regularizer=L2(2e-4)), name="bidi")(x)
    x = layers.TimeDistributed(layers.Dense(6, name="td_dense",
                                            bias_regularizer=L1L2(1e-4, 2e-4)), name="td")(x)
    x = layers.BatchNormalization(name="bn", gamma_regularizer=L2(1e-3),
                                  beta_regularizer=L1(1e-3))(x)
    x = layers.Reshape((5, 6, 1))(x)
    x = layers.SeparableConv2D(2, 3, name="sep", depthwise_regularizer=L2(5e-4),
                               pointwise_regularizer=L1(5e-4))(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dense(6)(x)
    return keras.Model(tokens, inner(x))


def assert_same_decays(actual, expected):
    """Same keys, and each (l1, l2) pair equal to float32 precision (pytest 9's
    `approx` refuses a dict of tuples)."""
    assert sorted(actual) == sorted(expected)
    for key, pair in expected.items():
        np.testing.assert_allclose(actual[key], pair, rtol=1e-6, err_msg=key)


def test_get_weight_decays_reads_then_zeroes():
    model = regularized_model()
    expected = {
        "embedding/embeddings": (1e-5, 0.0),
        "bidi/forward_lstm/lstm_cell/kernel": (1e-4, 0.0),
        "bidi/forward_lstm/lstm_cell/recurrent_kernel": (0.0, 2e-4),
        "bidi/backward_lstm/lstm_cell/kernel": (1e-4, 0.0),
        "bidi/backward_lstm/lstm_cell/recurrent_kernel": (0.0, 2e-4),
        "td/td_dense/bias": (1e-4, 2e-4),
        "bn/gamma": (0.0, 1e-3), "bn/beta": (1e-3, 0.0),
        "sep/depthwise_kernel": (0.0, 5e-4), "sep/pointwise_kernel": (5e-4, 0.0),
        "inner/inner_dense/kernel": (0.0, 3e-4),
    }
    paths = {v.path for v in model.trainable_variables}
    assert set(expected) <= paths, sorted(paths)
    decays = utils.get_weight_decays(model)
    assert_same_decays(decays, expected)
    optimizer = keras_adamw.AdamW(model=model, total_iterations=10, init_verbose=False)
    assert_same_decays(optimizer.weight_decays, decays)
    model(np.zeros((1, 5), "int32"))
    assert all(float(K_eval(loss)) == 0.0 for loss in model.losses)  # zeroed after reading


def test_zero_penalties_false_keeps_the_loss_penalty():
    model = small_model(keras)
    model.get_layer("dense_1").kernel.regularizer = L2(0.1)
    model.get_layer("dense_1").kernel_regularizer = model.get_layer("dense_1").kernel.regularizer
    keras_adamw.AdamW(model=model, zero_penalties=False, total_iterations=10, init_verbose=False)
    model(np.ones((1, 4), "float32"))
    assert float(K_eval(model.losses[0])) > 0


def test_non_l1_l2_regularizer_is_reported_not_guessed():
    inputs = keras.Input((4,))
    outputs = keras.layers.Dense(4, name="ortho", kernel_regularizer=keras.regularizers.
                                 OrthogonalRegularizer(0.1))(inputs)
    model = keras.Model(inputs, outputs)
    with pytest.warns(UserWarning, match="OrthogonalRegularizer.*ortho/kernel"):
        assert utils.get_weight_decays(model) == {}


def test_tf_keras_model_is_refused_with_the_fix():
    tf_keras = pytest.importorskip("tf_keras")
    legacy_model = tf_keras.Sequential([tf_keras.layers.Dense(1, input_shape=(2,))])
    with pytest.raises(TypeError, match="keras_adamw.keras2"):
        keras_adamw.AdamW(model=legacy_model)


BAD_ARGUMENTS = [
    (keras_adamw.AdamW, {"learning_rate": -0.1}, ValueError, "learning_rate"),
    (keras_adamw.AdamW, {"learning_rate": float("nan")}, ValueError, "learning_rate"),
    (keras_adamw.AdamW, {"lr": "fast"}, TypeError, "learning_rate"),
    (keras_adamw.AdamW, {"beta_1": 1.0}, ValueError, "beta_1"),
    (keras_adamw.NadamW, {"beta_2": -0.1}, ValueError, "beta_2"),
    (keras_adamw.AdamW, {"epsilon": -1e-7}, ValueError, "epsilon"),
    (keras_adamw.AdamW, {"eta_min": 0.5, "eta_max": 0.1}, ValueError, "eta_min"),
    (keras_adamw.AdamW, {"total_iterations": -5}, ValueError, "total_iterations"),
    (keras_adamw.AdamW, {"total_iterations": 2.5}, TypeError, "total_iterations"),
    (keras_adamw.SGDW, {"total_iterations_wd": "10"}, TypeError, "total_iterations_wd"),
    (keras_adamw.AdamW, {"lr_multipliers": {"dense": "x"}}, TypeError, "lr_multipliers"),
    (keras_adamw.AdamW, {"lr_multipliers": {"dense": -1}}, ValueError, "lr_multipliers"),
    (keras_adamw.AdamW, {"lr_multipliers": [0.5]}, TypeError, "lr_multipliers"),
    (keras_adamw.AdamW, {"weight_decays": {"k": 1e-4}}, TypeError, r"weight_decays\['k'\]"),
    (keras_adamw.AdamW, {"weight_decays": {"k": (-1, 0)}}, ValueError, "weight_decays"),
    (keras_adamw.AdamW, {"weight_decay": -0.1}, ValueError, "weight_decay"),
    (keras_adamw.AdamW, {"autorestart": True}, ValueError, "autorestart"),
    (keras_adamw.AdamW, {"learnig_rate": 0.1}, TypeError, "learning_rate"),
    (keras_adamw.SGDW, {"momentum": 1.5}, ValueError, "momentum"),
    (keras_adamw.SGDW, {"momentum": "high"}, TypeError, "momentum"),
    (keras_adamw.NadamW, {"schedule_decay": -1}, ValueError, "schedule_decay"),
    (keras_adamw.AdamW, {"t_cur": -3}, ValueError, "t_cur"),
    (keras_adamw.AdamW, {"model": "not a model"}, TypeError, "model"),
    (keras_adamw.AdamW, {"exclude_from_weight_decay": [3]}, TypeError,
     "exclude_from_weight_decay"),
]


@pytest.mark.parametrize("cls, kwargs, error, argument", BAD_ARGUMENTS,
                         ids=[f"{c.__name__}-{min(k)}-{i}"
                              for i, (c, k, _, _) in enumerate(BAD_ARGUMENTS)])
def test_bad_arguments_name_the_argument_and_value(cls, kwargs, error, argument):
    with pytest.raises(error, match=argument) as info:
        cls(**kwargs)
    value = next(iter(kwargs.values()))
    if not isinstance(value, (dict, list, float)) or isinstance(value, str):
        assert repr(value) in str(info.value) or str(value) in str(info.value)


def test_integer_arguments_of_keras_adamw_scripts_work():
    optimizer = keras_adamw.SGDW(lr=1, momentum=0, nesterov=0, eta_min=0, eta_max=1)
    assert optimizer.momentum == 0.0 and isinstance(optimizer.momentum, float)
    assert float(K_eval(optimizer.learning_rate)) == 1.0


def test_total_iterations_le_1_switches_off_with_a_warning():
    with pytest.warns(UserWarning, match="cosine annealing and autorestart are switched OFF"):
        optimizer = keras_adamw.AdamW(use_cosine_annealing=True, total_iterations=1)
    assert not optimizer.use_cosine_annealing
    with pytest.warns(UserWarning, match="weight_decays are switched OFF.*total_iterations"):
        optimizer = keras_adamw.AdamW(weight_decays={"dense_1/kernel": (0, 1e-4)})
    assert optimizer.weight_decays == {}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        keras_adamw.AdamW(weight_decays={"dense_1/kernel": (0, 1e-4)}, total_iterations_wd=100)


def test_init_verbose_prints_one_table_at_build(capsys):
    model = small_model(keras)
    optimizer = keras_adamw.AdamW(lr_multipliers={"dense_1": 0.5}, total_iterations=100,
                                  weight_decays={"dense_2/kernel:0": (0, 1e-2)})
    assert capsys.readouterr().out == ""
    optimizer.build(model.trainable_variables)
    out = capsys.readouterr().out
    assert "dense_1/kernel" in out and "0.5" in out and f"{1e-2 / math.sqrt(100):.3g}" in out
    optimizer.build(model.trainable_variables)
    assert capsys.readouterr().out == ""
    quiet = keras_adamw.AdamW(lr_multipliers={"dense_1": 0.5}, init_verbose=False)
    quiet.build(small_model(keras).trainable_variables)
    assert capsys.readouterr().out == ""


def test_unmatched_keys_warn_with_the_closest_paths():
    optimizer = keras_adamw.AdamW(lr_multipliers={"dens_1/kernal": 0.5},
                                  weight_decays={"dense_9/kernel:0": (0, 1e-3)},
                                  total_iterations=10, init_verbose=False)
    with pytest.warns(UserWarning) as record:
        optimizer.build(small_model(keras).trainable_variables)
    messages = [str(r.message) for r in record]
    assert any("lr_multipliers" in m and "dense_1/kernel" in m for m in messages)
    assert any("weight_decays" in m and "'dense_9/kernel:0'" in m for m in messages)


def test_ambiguous_weight_decay_key_is_refused():
    optimizer = keras_adamw.AdamW(weight_decays={"kernel": (0, 1e-3)}, total_iterations=10,
                                  init_verbose=False)
    with pytest.raises(ValueError, match="matches 2"):
        optimizer.build(small_model(keras).trainable_variables)


def test_legacy_attributes_and_settings_are_readable():
    optimizer = keras_adamw.AdamW(total_iterations=24, use_cosine_annealing=True,
                                  lr_multipliers={"lstm_1": 0.5}, init_verbose=False)
    assert optimizer.total_iterations == 24 and optimizer.autorestart
    assert optimizer.lr_multipliers == {"lstm_1": 0.5}
    assert float(K_eval(optimizer.eta_t)) == 1.0 and int(K_eval(optimizer.t_cur)) == 0


def test_exclude_from_weight_decay_method_after_build_is_refused():
    optimizer = keras_adamw.AdamW(weight_decay=0.1, init_verbose=False)
    optimizer.build(small_model(keras).trainable_variables)
    with pytest.raises(ValueError, match="before the optimizer is built"):
        optimizer.exclude_from_weight_decay(var_names=["bias"])


def test_utils_fill_dict_in_order_and_k_eval():
    filled = utils.fill_dict_in_order({"a": None, "b": None}, [(0, 1e-3), (1e-4, 0)])
    assert filled == {"a": (0, 1e-3), "b": (1e-4, 0)}
    with pytest.raises(ValueError, match="one value per key"):
        utils.fill_dict_in_order({"a": None}, [1, 2])
    variable = keras.Variable(np.arange(3.0), name="v")
    np.testing.assert_array_equal(K_eval(variable), [0, 1, 2])
    np.testing.assert_array_equal(K_eval(variable, keras.backend), [0, 1, 2])
    np.testing.assert_array_equal(K_eval(keras.ops.ones((2,))), [1, 1])
    assert K_eval(3.5) == 3.5


def test_reset_seeds_makes_runs_repeatable():
    draws = []
    for _ in range(2):
        utils.reset_seeds()
        draws.append((np.random.rand(), K_eval(keras.random.normal((2,)))))
    assert draws[0][0] == draws[1][0]
    np.testing.assert_array_equal(draws[0][1], draws[1][1])


def test_package_exports_and_version():
    assert keras_adamw.__version__ == "2.0.0"
    assert keras_adamw.FLAVOUR == "keras3"
    assert keras_adamw.AdamW is keras_adamw.keras3.AdamW


def test_legacy_rnn_keys_match_the_cell_weights():
    """keras-adamw 1.x `lstm_1/kernel:0` names Keras 3's `lstm_1/lstm_cell/kernel`."""
    inputs = keras.Input((3, 2))
    outputs = keras.layers.LSTM(2, name="lstm_1")(inputs)
    model = keras.Model(inputs, outputs)
    optimizer = keras_adamw.AdamW(weight_decays={"lstm_1/kernel:0": (0, 1e-3)},
                                  lr_multipliers={"lstm_1": 0.5}, total_iterations=4,
                                  init_verbose=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        optimizer.build(model.trainable_variables)
    rules = dict(zip([v.path for v in model.trainable_variables], optimizer._rules))
    assert rules["lstm_1/lstm_cell/kernel"].l2 == pytest.approx(1e-3 / 2)
    assert rules["lstm_1/lstm_cell/recurrent_kernel"].l2 == 0
    assert all(rule.multiplier == 0.5 for rule in rules.values())


@pytest.mark.parametrize("weight_decays", [{"dense_1/kernel:0": (0, 1e-4)}, {"a": 0}, {}])
def test_model_decays_win_over_weight_decays_with_a_warning_as_in_1x(weight_decays):
    model = small_model(keras)
    model.get_layer("dense_1").kernel.regularizer = L2(0.1)
    model.get_layer("dense_1").kernel_regularizer = model.get_layer("dense_1").kernel.regularizer
    with pytest.warns(UserWarning, match=r"`weight_decays` is ignored because `model` is given"):
        optimizer = keras_adamw.AdamW(model=model, weight_decays=weight_decays,
                                      total_iterations=10, init_verbose=False)
    (path,) = optimizer.weight_decays
    assert path.endswith("dense_1/kernel")
    np.testing.assert_allclose(optimizer.weight_decays[path], (0, 0.1))


@pytest.mark.parametrize("total_iterations", [0, 1, 10])
@pytest.mark.parametrize("how", ["l2(0) regularizers", "zero weight_decays"])
def test_zero_decays_are_valid_with_any_total_iterations(how, total_iterations):
    """keras-adamw 1.x's README: set the penalties to zero (`l2(0)`) and pass `model=`."""
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(
        3, name="dense_1", kernel_regularizer=keras.regularizers.l2(0))])
    if how == "l2(0) regularizers":
        optimizer = keras_adamw.AdamW(model=model, total_iterations=total_iterations,
                                      init_verbose=False)
    else:
        optimizer = keras_adamw.AdamW(weight_decays={"dense_1/kernel": (0, 0)},
                                      total_iterations=total_iterations)
    reference = keras_adamw.AdamW(total_iterations=total_iterations)  # no decay at all
    grads = [keras.ops.ones(v.shape) for v in model.trainable_variables]
    start = [K_eval(v) for v in model.trainable_variables]
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    ours = [K_eval(v) for v in model.trainable_variables]
    for value, variable in zip(start, model.trainable_variables):
        variable.assign(value)
    reference.apply_gradients(zip(grads, model.trainable_variables))
    for mine, theirs in zip(ours, model.trainable_variables):
        np.testing.assert_array_equal(mine, K_eval(theirs))


def test_decays_switched_off_leave_the_model_penalties_in_the_loss():
    """total_iterations <= 1 switches `model=` decays off (warned); the regularizers
    are then not zeroed, so the model keeps its L2 (1.x did the same)."""
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(
        3, name="dense_1", kernel_regularizer=keras.regularizers.l2(1e-2))])
    with pytest.warns(UserWarning, match="regularizers stay in the loss"):
        optimizer = keras_adamw.AdamW(model=model, total_iterations=0, init_verbose=False)
    assert optimizer.weight_decays == {}
    model(np.ones((1, 4), "float32"))
    assert float(K_eval(model.losses[0])) > 0


def test_a_regularizer_shared_by_several_layers_gives_each_its_decay():
    shared = keras.regularizers.l2(1e-3)
    model = keras.Sequential([keras.Input((4,)),
                              keras.layers.Dense(3, name="dense_1", kernel_regularizer=shared),
                              keras.layers.Dense(2, name="dense_2", kernel_regularizer=shared)])
    decays = utils.get_weight_decays(model, zero_penalties=True)
    assert len(decays) == 2
    for pair in decays.values():
        np.testing.assert_allclose(pair, (0.0, 1e-3))
    assert shared.l2 == 0.0
