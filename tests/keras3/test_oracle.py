"""Keras 3 optimizers against the float64 oracle, on the backend of this process.

One case table (optimizer x extras). Each case runs 50 applied updates with the
same random gradients in both, and compares variables *and* optimizer state
(slots, t_cur, eta_t, lr_t) to rtol 1e-5.
"""
import keras
import numpy as np
import pytest
from helpers import BACKEND, densified, gradients, numpy_values, small_model
from reference import ReferenceOptimizer

import keras_adamw
from keras_adamw.utils import K_eval

STEPS = 50
RTOL = 1e-5

OPTIMIZERS = {
    "adamw": ("adamw", keras_adamw.AdamW, {}),
    "adamw_amsgrad": ("adamw", keras_adamw.AdamW, {"amsgrad": True}),
    "nadamw": ("nadamw", keras_adamw.NadamW, {}),
    "nadamw_keras3_schedule": ("nadamw", keras_adamw.NadamW, {"schedule_decay": 1.0}),
    "sgdw": ("sgdw", keras_adamw.SGDW, {"learning_rate": 0.05}),
    "sgdw_momentum": ("sgdw", keras_adamw.SGDW, {"learning_rate": 0.05, "momentum": 0.9}),
    "sgdw_nesterov": ("sgdw", keras_adamw.SGDW,
                      {"learning_rate": 0.05, "momentum": 0.9, "nesterov": True}),
}

# Variables of `small_model()`, in order: dense_1/kernel, dense_1/bias, dense_2/kernel,
# dense_2/bias (after embedding/embeddings when present).
EXTRAS = {
    # Paper decays, multipliers (longest key wins), cosine with 2 autorestarts in 50 steps.
    "paper_decay_multipliers_autorestart": {
        "library": {"lr_multipliers": {"dense": 0.5, "dense_2": 2.0},
                     "weight_decays": {"dense_1/kernel:0": (1e-3, 2e-2), "dense_2/kernel": (0, 5e-2)},
                     "total_iterations": 20, "use_cosine_annealing": True, "eta_min": 0.1},
        "multipliers": {"dense_1": 0.5, "dense_2": 2.0, "embedding": 1.0},
        "l1_l2": {"dense_1/kernel": (1e-3, 2e-2), "dense_2/kernel": (0, 5e-2)},
        "oracle": {"total_iterations": 20, "use_cosine_annealing": True, "eta_min": 0.1}},
    # Keras convention with exclusion, annealing without autorestart, manual restart.
    "keras_decay_exclusion_manual_restart": {
        "library": {"weight_decay": 0.05, "exclude_from_weight_decay": ["bias"],
                     "total_iterations": 30, "use_cosine_annealing": True, "autorestart": False},
        "weight_decay": 0.05, "exclude": "bias", "restart_at": 35,
        "oracle": {"total_iterations": 30, "use_cosine_annealing": True, "autorestart": False}},
    # Both conventions at once, a schedule object and legacy inverse-time decay.
    "both_decays_schedule_inverse_time": {
        "library": {"learning_rate": "schedule", "decay": 0.01, "weight_decay": 0.02,
                     "weight_decays": {"dense_2/kernel": (1e-3, 1e-2)}, "total_iterations_wd": 40},
        "weight_decay": 0.02, "l1_l2": {"dense_2/kernel": (1e-3, 1e-2)},
        "schedule": True, "oracle": {"decay": 0.01, "total_iterations_wd": 40}},
}


def exponential_schedule():
    return keras.optimizers.schedules.ExponentialDecay(0.01, decay_steps=10, decay_rate=0.8)


def oracle_lr(iterations):
    return 0.01 * 0.8 ** (iterations / 10)


def build_pair(kind, cls, base_kwargs, extras, paths):
    """Our optimizer and the oracle configured independently for the same case."""
    library = dict(extras["library"])
    kwargs = {"learning_rate": 0.01, **base_kwargs, **library, "init_verbose": False}
    oracle_kwargs = dict(extras["oracle"])
    if extras.get("schedule"):
        kwargs["learning_rate"] = exponential_schedule()
        oracle_kwargs["learning_rate_fn"] = oracle_lr
    else:
        oracle_kwargs["learning_rate"] = kwargs["learning_rate"]
    for key in ("amsgrad", "momentum", "nesterov", "schedule_decay"):
        if key in base_kwargs:
            oracle_kwargs[key] = base_kwargs[key]
    if kind != "sgdw":
        oracle_kwargs["epsilon"] = keras.config.epsilon()
    if kind == "adamw" and BACKEND == "tensorflow":
        # TensorFlow's fused Adam kernels compute 1 - beta in float32: beta_2 is
        # float32(0.999) = 0.99900001 there (as in tf_keras's Adam); 1.3e-5 in v.
        oracle_kwargs["beta_1"], oracle_kwargs["beta_2"] = map(
            float, np.float32([kwargs.get("beta_1", 0.9), kwargs.get("beta_2", 0.999)]))
    multipliers = extras.get("multipliers", {})
    oracle_kwargs["multipliers"] = [
        next((m for k, m in multipliers.items() if p.startswith(k + "/")), 1.0) for p in paths]
    l1_l2 = extras.get("l1_l2", {})
    oracle_kwargs["l1_l2"] = [l1_l2.get(p, (0.0, 0.0)) for p in paths]
    if "weight_decay" in extras:
        oracle_kwargs["weight_decay"] = extras["weight_decay"]
        oracle_kwargs["decay_mask"] = [extras.get("exclude", "\0") not in p for p in paths]
    return cls(**kwargs), oracle_kwargs


def slot_pairs(optimizer, oracle, kind, base_kwargs):
    """(name, ours, oracle's) for every slot list of this optimizer."""
    if kind == "sgdw":
        if not base_kwargs.get("momentum"):
            return []
        return [("velocity", optimizer.momentums, oracle.velocity)]
    pairs = [("m", optimizer._momentums, oracle.m), ("v", optimizer._velocities, oracle.v)]
    if base_kwargs.get("amsgrad"):
        pairs.append(("vhat", optimizer._velocity_hats, oracle.vhat))
    return pairs


def assert_close(name, actual, expected):
    actual = np.asarray(K_eval(actual), dtype=np.float64)
    scale = max(1e-30, float(np.max(np.abs(expected))))
    np.testing.assert_allclose(actual, expected, rtol=RTOL, atol=1e-6 * scale,
                               err_msg=name)


def run_case(optimizer_case, extras_case, with_embedding=False, steps=STEPS):
    kind, cls, base_kwargs = OPTIMIZERS[optimizer_case]
    extras = EXTRAS[extras_case]
    model = small_model(with_embedding=with_embedding)
    variables = model.trainable_variables
    paths = [v.path for v in variables]
    optimizer, oracle_kwargs = build_pair(kind, cls, base_kwargs, extras, paths)
    params = numpy_values(variables)
    oracle = ReferenceOptimizer(kind, [p.shape for p in params], **oracle_kwargs)
    rng = np.random.default_rng(0)
    for step in range(steps):
        if step == extras.get("restart_at"):
            optimizer.t_cur.assign(-1)
            oracle.set_t_cur(-1)
        if with_embedding:
            x = rng.integers(0, 12, (8, 5)).astype("int32")
            x[:, 1] = x[:, 0]  # repeated rows in the sparse gradient
            grads = gradients(model, x, rng.normal(size=(8, 2)).astype("float32"))
            dense = densified(grads)
        else:
            dense = [rng.normal(size=p.shape) for p in params]
            grads = [g.astype("float32") for g in dense]
        optimizer.apply(grads, variables)
        params = oracle.step(params, dense)
        assert int(K_eval(optimizer.t_cur)) == oracle.t_cur, f"t_cur at step {step}"
        assert_close(f"eta_t at step {step}", optimizer.eta_t, oracle.eta_t)
    return optimizer, oracle, variables, params, kind, base_kwargs


@pytest.mark.parametrize("extras_case", sorted(EXTRAS))
@pytest.mark.parametrize("optimizer_case", sorted(OPTIMIZERS))
def test_matches_oracle(optimizer_case, extras_case):
    optimizer, oracle, variables, params, kind, base_kwargs = run_case(
        optimizer_case, extras_case)
    for variable, expected in zip(variables, params):
        assert_close(variable.path, variable, expected)
    for name, ours, theirs in slot_pairs(optimizer, oracle, kind, base_kwargs):
        for slot, expected in zip(ours, theirs):
            assert_close(f"{name} of {slot.path}", slot, expected)
    assert_close("lr_t", optimizer.lr_t, oracle.lr_t)
    assert int(K_eval(optimizer.iterations)) == oracle.iterations == STEPS
    if kind == "nadamw":
        assert_close("u_product", optimizer._u_product, oracle.u_product)


@pytest.mark.parametrize("optimizer_case", ["adamw", "nadamw", "sgdw_momentum"])
def test_embedding_gradients_match_oracle(optimizer_case):
    """Embedding gradients (sparse IndexedSlices with repeated rows on TensorFlow)."""
    optimizer, oracle, variables, params, kind, base_kwargs = run_case(
        optimizer_case, "paper_decay_multipliers_autorestart", with_embedding=True, steps=20)
    for variable, expected in zip(variables, params):
        assert_close(variable.path, variable, expected)
    for name, ours, theirs in slot_pairs(optimizer, oracle, kind, base_kwargs):
        for slot, expected in zip(ours, theirs):
            assert_close(f"{name} of {slot.path}", slot, expected)


@pytest.mark.skipif(BACKEND != "tensorflow", reason="IndexedSlices exist on TensorFlow only")
def test_indexed_slices_with_duplicates_equal_dense():
    """Repeated rows are summed first; absent rows still decay their moments."""
    import tensorflow as tf
    from reference import densify

    model = small_model(with_embedding=True)
    variables = model.trainable_variables
    table = variables[0]
    indices = np.array([3, 1, 3, 3], dtype="int64")
    values = np.random.default_rng(1).normal(size=(4, 4))
    results = []
    for sparse in (True, False):
        table.assign(np.ones(table.shape, "float32"))
        optimizer = keras_adamw.AdamW(learning_rate=0.1, init_verbose=False)
        for _ in range(3):
            if sparse:
                grad = tf.IndexedSlices(tf.constant(values, "float32"), tf.constant(indices),
                                        tf.constant(table.shape, "int64"))
            else:
                grad = tf.constant(densify(values, indices, table.shape), "float32")
            optimizer.apply([grad], [table])
        results.append((K_eval(table), K_eval(optimizer._momentums[0]),
                        K_eval(optimizer._velocities[0])))
    # Equal up to the float32 summation order of the repeated row (1 ulp).
    for sparse_value, dense_value in zip(*results):
        np.testing.assert_allclose(sparse_value, dense_value, rtol=1e-6, atol=1e-9)
