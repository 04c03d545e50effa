"""Keras 3 optimizers against the float64 oracle, on the backend of this process.

The rows of tests/cases.py on the `reference` path x extras. Each case runs 50 applied updates with the
same random gradients in both, and compares variables *and* optimizer state
(slots, t_cur, eta_t, lr_t) to rtol 1e-5.
"""
import keras
import numpy as np
import pytest
from cases import case_id, on_path
from helpers import (
    as_float64,
    assert_close,
    assert_matches_oracle,
    oracle_for,
    small_model,
)
from keras3_helpers import BACKEND, densified, float32_terms, gradients, numpy_values

import keras_adamw

STEPS = 50
REFERENCE = on_path("reference")

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


def build_pair(case, extras, variables):
    """Our optimizer and the oracle configured independently for the same case."""
    library = {"learning_rate": 0.01, **extras["library"]}
    oracle_kwargs = dict(extras["oracle"])
    if extras.get("schedule"):
        library["learning_rate"] = exponential_schedule()
        oracle_kwargs["learning_rate_fn"] = oracle_lr
    else:
        oracle_kwargs["learning_rate"] = library["learning_rate"]
    paths = [v.path for v in variables]
    multipliers = extras.get("multipliers", {})
    oracle_kwargs["multipliers"] = [
        next((m for k, m in multipliers.items() if p.startswith(k + "/")), 1.0) for p in paths]
    l1_l2 = extras.get("l1_l2", {})
    oracle_kwargs["l1_l2"] = [l1_l2.get(p, (0.0, 0.0)) for p in paths]
    if "weight_decay" in extras:
        oracle_kwargs["weight_decay"] = extras["weight_decay"]
        oracle_kwargs["decay_mask"] = [extras.get("exclude", "\0") not in p for p in paths]
    oracle = oracle_for(case, [v.shape for v in variables], float32=float32_terms(case),
                        **oracle_kwargs)
    return case.make(keras_adamw, **library), oracle


def run_case(case, extras_case, with_embedding=False, steps=STEPS):
    """`steps` updates of ours and the oracle; t_cur and eta_t compared every step."""
    extras = EXTRAS[extras_case]
    model = small_model(keras, with_embedding=with_embedding)
    variables = model.trainable_variables
    optimizer, oracle = build_pair(case, extras, variables)
    params = numpy_values(variables)
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
        assert int(as_float64(optimizer.t_cur)) == oracle.t_cur, f"t_cur at step {step}"
        assert_close(optimizer.eta_t, oracle.eta_t, what=f"eta_t at step {step}")
    return optimizer, oracle, variables, params


@pytest.mark.parametrize("extras_case", sorted(EXTRAS))
@pytest.mark.parametrize("case", REFERENCE, ids=case_id)
def test_matches_oracle(case, extras_case):
    optimizer, oracle, variables, params = run_case(case, extras_case)
    assert_matches_oracle(optimizer, variables, oracle, params, case)
    assert oracle.iterations == STEPS


@pytest.mark.parametrize("case", on_path("reference", "adamw", "nadamw", "sgdw_momentum"),
                         ids=case_id)
def test_embedding_gradients_match_oracle(case):
    """Embedding gradients (sparse IndexedSlices with repeated rows on TensorFlow)."""
    optimizer, oracle, variables, params = run_case(
        case, "paper_decay_multipliers_autorestart", with_embedding=True, steps=20)
    assert_matches_oracle(optimizer, variables, oracle, params, case)


@pytest.mark.skipif(BACKEND != "tensorflow", reason="IndexedSlices exist on TensorFlow only")
def test_indexed_slices_with_duplicates_equal_dense():
    """Repeated rows are summed first; absent rows still decay their moments."""
    import tensorflow as tf
    from reference import densify

    model = small_model(keras, with_embedding=True)
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
        results.append((as_float64(table), as_float64(optimizer._momentums[0]),
                        as_float64(optimizer._velocities[0])))
    # Equal up to the float32 summation order of the repeated row (1 ulp).
    for sparse_value, dense_value in zip(*results):
        np.testing.assert_allclose(sparse_value, dense_value, rtol=1e-6, atol=1e-9)
