"""The torch paths against the oracle: the native host call
(`keras_adamw.kernels.torch_native`, the default on the CPU) and torch's
multi-tensor kernels (`keras_adamw.kernels.torch_foreach`, `native_kernels=False`
here; CUDA and half precision take it).

`test_oracle.py` runs the default path on a small model. Here, on both paths:
tensors on both sides of the grain size in one step, every optimizer variant, L1
and both decay conventions, a zero learning rate (decay without a step to fold
it into), float64 variables, gradients given as numpy arrays or transposed
views, a subset of variables, and the per-variable fallback; variables *and*
slots compared after many steps.
"""
import keras
import numpy as np
import pytest
from cases import CASES, case_id, on_path
from helpers import (
    as_float64,
    assert_close,
    assert_missing_compiler_warns,
    assert_slots_match,
    oracle_for,
)

import keras_adamw

if keras.backend.backend() != "torch":
    pytest.skip("torch backend only", allow_module_level=True)

import torch

from keras_adamw.kernels import torch_foreach

STEPS = 20
LARGE = torch_foreach.CPU_GRAIN_SIZE + 8  # one thread group and one multi-thread group
FAST = on_path("torch_foreach")
EACH = on_path("torch_foreach", "adamw", "nadamw", "sgdw_momentum")
# `native_kernels` of each path.
NATIVE = {"torch_native": True, "torch_foreach": False}
BOTH = pytest.mark.parametrize("path", list(NATIVE))
SHAPES = {"big_kernel": (LARGE,), "big_bias": (LARGE,), "small_kernel": (6, 5),
          "small_bias": (5,)}
MULTIPLIERS = {"big": 0.5, "small_kernel": 2.0}
L1_L2 = {"big_kernel": (1e-3, 2e-2), "small_kernel": (0.0, 5e-2)}
SCHEDULE = {"total_iterations": 12, "use_cosine_annealing": True, "eta_min": 0.1}


def make_variables(dtype="float32", seed=0):
    rng = np.random.default_rng(seed)
    return [keras.Variable(rng.normal(size=shape).astype(dtype), name=name)
            for name, shape in SHAPES.items()]


def make_pair(case, variables, learning_rate=0.01, path="torch_foreach"):
    """Our optimizer with every extra on, on `path`, and the oracle configured
    the same."""
    optimizer = case.make(keras_adamw, learning_rate=learning_rate,
                          lr_multipliers=MULTIPLIERS, weight_decays=L1_L2,
                          weight_decay=0.02, exclude_from_weight_decay=["bias"], **SCHEDULE)
    optimizer.native_kernels = NATIVE[path]
    paths = [v.path for v in variables]
    oracle = oracle_for(
        case, [v.shape for v in variables], learning_rate=learning_rate,
        multipliers=[next((m for k, m in sorted(MULTIPLIERS.items(), key=lambda i: -len(i[0]))
                           if k in p), 1.0) for p in paths],
        l1_l2=[L1_L2.get(p, (0.0, 0.0)) for p in paths], weight_decay=0.02,
        decay_mask=["bias" not in p for p in paths], **SCHEDULE)
    return optimizer, oracle


def run(case, variables, learning_rate=0.01, grads_as=None, steps=STEPS, path="torch_foreach"):
    """`steps` updates of ours and the oracle; returns both and the oracle's values."""
    optimizer, oracle = make_pair(case, variables, learning_rate, path)
    # Copies: a float64 view could alias the variable updated in place.
    values = [as_float64(v) for v in variables]
    rng = np.random.default_rng(1)
    for _ in range(steps):
        dense = [rng.normal(size=v.shape) for v in values]
        grads = [grads_as(g) if grads_as else torch.tensor(g, dtype=torch.float32)
                 for g in dense]
        optimizer.apply(grads, variables)
        values = oracle.step(values, dense)
    return optimizer, oracle, values


def check(case, optimizer, oracle, variables, values):
    for variable, expected in zip(variables, values):
        assert_close(variable, expected, what=variable.path)
    assert_slots_match(optimizer, variables, oracle, case)
    assert_close(optimizer.lr_t, oracle.lr_t, what="lr_t")


@BOTH
@pytest.mark.parametrize("case", FAST, ids=case_id)
def test_matches_oracle_across_grain_size(case, path):
    variables = make_variables()
    optimizer, oracle, values = run(case, variables, path=path)
    plan = torch_foreach._plan(optimizer, variables)
    assert not plan.fallback
    if path == "torch_native":  # every rule and size in one call
        assert [g.indices for g in plan.native] == [[0, 1, 2, 3]]
        assert not plan.groups and not plan.small_groups
    else:
        assert plan.groups and plan.small_groups and not plan.native
    check(case, optimizer, oracle, variables, values)


@BOTH
@pytest.mark.parametrize("case", EACH, ids=case_id)
def test_zero_learning_rate_still_decays(case, path):
    """Paper decay without a step to fold it into (the kernel's lr is 0)."""
    variables = make_variables()
    optimizer, oracle, values = run(case, variables, learning_rate=0.0, steps=5, path=path)
    check(case, optimizer, oracle, variables, values)


@BOTH
@pytest.mark.parametrize("case", on_path("torch_foreach", "adamw", "nadamw",
                                                 "sgdw_nesterov"), ids=case_id)
def test_float64_variables_and_numpy_gradients(case, path):
    variables = make_variables("float64")
    optimizer, oracle, values = run(case, variables, grads_as=lambda g: g, steps=10,
                                    path=path)
    check(case, optimizer, oracle, variables, values)
    assert all(v.dtype == "float64" for v in variables)


@BOTH
@pytest.mark.parametrize("case", EACH, ids=case_id)
def test_transposed_gradients(case, path):
    """A non-contiguous gradient (a transposed view) gives the same numbers."""
    variables = make_variables()

    def transposed(gradient):
        if gradient.ndim < 2:
            return torch.tensor(gradient, dtype=torch.float32)
        return torch.tensor(gradient.T, dtype=torch.float32).T

    optimizer, oracle, values = run(case, variables, grads_as=transposed, steps=5, path=path)
    check(case, optimizer, oracle, variables, values)


def test_a_gradient_of_another_shape_is_refused():
    variables = make_variables()
    optimizer = keras_adamw.AdamW(learning_rate=0.1, init_verbose=False)
    grads = [torch.ones(v.shape) for v in variables]
    grads[2] = torch.ones(5, 6)
    with pytest.raises(ValueError, match=r"shape \(5, 6\) was given for a variable of "
                                         r"shape \(6, 5\)"):
        optimizer.apply(grads, variables)


@pytest.mark.parametrize("threads", [1, 2])
def test_native_call_per_step_and_threads(monkeypatch, threads):
    """One host call per step for every variable; any thread count, same numbers."""
    from keras_adamw.kernels import torch_native

    calls = []
    library = torch_native.library()
    monkeypatch.setattr(torch_native, "library",
                        lambda: (lambda *args: calls.append((args[2], args[-1])) or library(*args)))
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        variables = make_variables()
        optimizer, oracle, values = run(CASES["nadamw"], variables, steps=4,
                                        path="torch_native")
    finally:
        torch.set_num_threads(previous)
    assert calls == [(4, threads)] * 4
    check(CASES["nadamw"], optimizer, oracle, variables, values)


def test_native_off_or_unavailable_takes_torchs_kernels(monkeypatch):
    from keras_adamw.kernels import torch_native

    variables = make_variables()
    optimizer, _ = make_pair(CASES["adamw"], variables, path="torch_native")
    optimizer.apply([torch.ones(v.shape) for v in variables], variables)
    assert torch_foreach._plan(optimizer, variables).native
    optimizer.native_kernels = False
    assert not torch_foreach._plan(optimizer, variables).native
    monkeypatch.setattr(torch_native, "library", lambda: None)
    optimizer.native_kernels = True
    torch_foreach._PLANS.clear()
    plan = torch_foreach._plan(optimizer, variables)
    assert not plan.native and plan.groups


def test_without_a_compiler_a_warning_names_the_fix(monkeypatch, tmp_path):
    from keras_adamw.kernels import torch_native

    assert_missing_compiler_warns(monkeypatch, tmp_path, torch_native.library, "torch")


@pytest.mark.parametrize("case", on_path("torch_foreach", "adamw_amsgrad", "nadamw",
                                                 "sgdw_momentum"), ids=case_id)
def test_fallback_gives_the_same_numbers(case, monkeypatch):
    """Without the fused kernels every variable takes `update_step`."""
    monkeypatch.setattr(torch_foreach, "KERNELS_AVAILABLE", False)
    variables = make_variables()
    optimizer, oracle, values = run(case, variables, steps=10, path="torch_foreach")
    plan = torch_foreach._plan(optimizer, variables)
    assert not plan.groups and not plan.small_groups and len(plan.fallback) == 4
    check(case, optimizer, oracle, variables, values)


def test_subset_of_variables_gets_its_own_plan():
    """A step with a None gradient updates (and plans) the others only."""
    variables = make_variables()
    optimizer = keras_adamw.AdamW(learning_rate=0.1, init_verbose=False)
    grads = [torch.ones(v.shape) for v in variables]
    optimizer.apply(grads, variables)
    before = as_float64(variables[0])
    with pytest.warns(UserWarning, match="Gradients do not exist"):
        optimizer.apply([None] + grads[1:], variables)
    np.testing.assert_array_equal(as_float64(variables[0]), before)
    assert len(torch_foreach._PLANS[optimizer]) == 2
    assert int(as_float64(optimizer.iterations)) == 2


def test_grouping_and_threads():
    """Groups by rule and size once; torch's thread count is restored."""
    variables = make_variables()
    optimizer, _ = make_pair(CASES["adamw"], variables, path="torch_foreach")
    threads = torch.get_num_threads()
    grads = [torch.ones(v.shape) for v in variables]
    optimizer.apply(grads, variables)
    plan = torch_foreach._plan(optimizer, variables)
    optimizer.apply(grads, variables)
    assert torch_foreach._plan(optimizer, variables) is plan
    assert torch.get_num_threads() == threads
    # big_kernel and big_bias differ in decay: two large groups, two small.
    assert [g.indices for g in plan.groups] == [[0], [1]]
    assert sorted(g.indices for g in plan.small_groups) == [[2], [3]]


@pytest.mark.parametrize("case", EACH, ids=case_id)
def test_no_extra_per_parameter_state(case):
    """The optimizer's variables are the slots plus a few scalars, after steps."""
    variables = make_variables()
    optimizer, _ = make_pair(case, variables)
    optimizer.apply([torch.ones(v.shape) for v in variables], variables)
    params = sum(int(np.prod(v.shape)) for v in variables)
    slots_per_param = len(case.slots)
    state = sum(int(np.prod(v.shape)) for v in optimizer.variables)
    assert slots_per_param * params <= state < slots_per_param * params + 16
    for group in torch_foreach._plan(optimizer, variables).groups:
        assert all(step.ndim == 0 for step in group.steps)


@pytest.mark.parametrize("a, b", [(0.9, -0.01), (0.5, 0.0), (1.0, 0.0), (0.9, 1e-320),
                                  (0.9, -1e-9), (0.999, 1.0)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_axpby(a, b, dtype):
    """`x = a x + b y` to the rounding of x, also for tiny `b` (large kernel wd)."""
    x = [torch.linspace(-1, 1, 101, dtype=dtype)]
    y = [torch.linspace(2, 3, 101, dtype=dtype)]
    expected = a * x[0].double() + b * y[0].double()
    torch_foreach.axpby_(x, y, a, b)
    torch.testing.assert_close(x[0].double(), expected, rtol=0,
                               atol=2 * torch.finfo(dtype).eps)


@pytest.mark.parametrize("case", EACH, ids=case_id)
def test_stateless_apply_returns_the_update_and_leaves_the_variables(case):
    """`stateless_apply` (after stateful steps built a plan) returns what `apply`
    does and writes neither the variables nor the values passed in."""
    variables, twins = make_variables(), make_variables()
    stateful, _ = make_pair(case, twins, path="torch_native")
    stateless, _ = make_pair(case, variables, path="torch_native")
    grads = [torch.full(v.shape, 0.5) for v in variables]
    for optimizer, targets in [(stateful, twins), (stateless, variables)]:
        optimizer.apply(grads, targets)
    before = [as_float64(v) for v in variables]
    values = [v.value.clone() for v in variables]
    passed = [value.clone() for value in values]
    new_values, new_state = stateless.stateless_apply(
        [v.value.clone() for v in stateless.variables], grads, values)
    stateful.apply(grads, twins)
    for variable, expected in zip(variables, before):
        np.testing.assert_array_equal(as_float64(variable), expected)
    for value, copy in zip(values, passed):
        assert torch.equal(value, copy)
    for value, twin in zip(new_values, twins):
        np.testing.assert_allclose(as_float64(value), as_float64(twin), rtol=1e-6, atol=1e-7)
    for value, twin in zip(new_state, stateful.variables):
        np.testing.assert_allclose(as_float64(value), as_float64(twin), rtol=1e-6, atol=1e-7)
