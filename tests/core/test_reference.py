"""Self-checks of the float64 oracle (tests/reference.py) against independent facts.

Every expected value here comes from hand arithmetic, a closed form, or a loop
written independently in this file in a different form (e.g. textbook Adam with
explicit bias-corrected moments; tf_keras-style Nadam with ``g_prime`` and
``m_t_prime``), never from the oracle itself.
"""

import math

import numpy as np
import pytest
from reference import (  # on sys.path via tests/conftest.py
    ReferenceOptimizer,
    cosine_eta,
    densify,
)

KINDS = ("adamw", "nadamw", "sgdw")
SQRT_HALF = math.sqrt(2.0) / 2.0


def run(opt, params, grad_seq):
    """Apply ``grad_seq`` (list of per-step gradient lists); return final params."""
    for grads in grad_seq:
        params = opt.step(params, grads)
    return params


def etas_used(opt, steps):
    """Schedule multiplier of each of ``steps`` updates, read off SGD updates.

    With plain SGD, ``learning_rate=1`` and ``g=1`` an update moves the variable
    by exactly ``-eta``.
    """
    theta = [np.zeros(())]
    used = []
    for _ in range(steps):
        new = opt.step(theta, [np.ones(())])
        used.append(float(theta[0] - new[0]))
        theta = new
    return used


def sgd(**kwargs):
    """Scalar plain SGD with learning_rate 1 (so updates reveal eta)."""
    kwargs.setdefault("learning_rate", 1.0)
    return ReferenceOptimizer("sgdw", [()], **kwargs)


# ---------------------------------------------------------------------------
# AdamW
# ---------------------------------------------------------------------------


def test_adam_first_step_by_hand():
    # t=1: m = (1-b1) g, v = (1-b2) g^2, alpha = lr sqrt(1-b2)/(1-b1), so
    # update = lr * g / (|g| + eps / sqrt(1-b2)).
    lr, b1, b2, eps = 0.1, 0.9, 0.999, 1e-7
    g = np.array([0.5, -2.0, 0.0, 3e-6])
    theta = np.array([1.0, 2.0, 3.0, 4.0])
    opt = ReferenceOptimizer("adamw", [(4,)], learning_rate=lr, beta_1=b1, beta_2=b2, epsilon=eps)
    (new,) = opt.step([theta], [g])
    expected = theta - lr * g / (np.abs(g) + eps / math.sqrt(1 - b2))
    np.testing.assert_allclose(new, expected, rtol=1e-14, atol=1e-16)
    np.testing.assert_allclose(opt.m[0], 0.1 * g, rtol=1e-14)
    np.testing.assert_allclose(opt.v[0], 0.001 * g**2, rtol=1e-12)
    assert opt.iterations == 1
    assert opt.lr_t == pytest.approx(lr * math.sqrt(0.001) / 0.1, rel=1e-14)


def test_effective_learning_rate_first_step_by_hand():
    # t=1: the applied step is rate * m with rate = lr sqrt(1-b2)/(1-b1) / (sqrt(v) + eps)
    # (AdamW), lr / (sqrt(v/(1-b2)) + eps) (NadamW), lr (SGDW); times the multiplier,
    # then clipped to the bounds.
    lr, b1, b2, eps, multiplier = 0.1, 0.9, 0.999, 1e-7, 0.5
    g = np.array([0.5, -2.0, 0.0])
    adam = ReferenceOptimizer("adamw", [(3,)], learning_rate=lr, epsilon=eps, multipliers=[0.5])
    adam.step([np.zeros(3)], [g])
    expected = lr * multiplier * math.sqrt(1 - b2) / (1 - b1) / (math.sqrt(1 - b2) * np.abs(g) + eps)
    np.testing.assert_allclose(adam.effective_learning_rate(0, multiplier), expected, rtol=1e-13)
    nadam = ReferenceOptimizer("nadamw", [(3,)], learning_rate=lr, epsilon=eps)
    nadam.step([np.zeros(3)], [g])
    np.testing.assert_allclose(nadam.effective_learning_rate(0, 1.0), lr / (np.abs(g) + eps),
                               rtol=1e-12)
    sgd = ReferenceOptimizer("sgdw", [(3,)], learning_rate=lr, effective_lr_bounds=(0.0, 0.05))
    sgd.step([np.zeros(3)], [g])
    np.testing.assert_array_equal(sgd.effective_learning_rate(0, 1.0), [0.05] * 3)


def test_adam_two_steps_exact_arithmetic():
    # b1=0.5, b2=0.75, eps=0, lr=1, g = 1 then 2.
    # step 1: m=0.5, v=0.25, alpha = sqrt(0.25)/0.5 = 1, update = 1 * 0.5/0.5 = 1
    # step 2: m=0.25+1=1.25, v=0.1875+1=1.1875, alpha = sqrt(0.4375)/0.75
    opt = ReferenceOptimizer("adamw", [()], learning_rate=1.0, beta_1=0.5, beta_2=0.75, epsilon=0.0)
    (p1,) = opt.step([np.array(10.0)], [np.array(1.0)])
    assert p1 == pytest.approx(9.0, abs=1e-15)
    (p2,) = opt.step([p1], [np.array(2.0)])
    assert opt.m[0] == pytest.approx(1.25)
    assert opt.v[0] == pytest.approx(1.1875)
    expected = 9.0 - math.sqrt(0.4375) / 0.75 * 1.25 / math.sqrt(1.1875)
    assert p2 == pytest.approx(expected, rel=1e-15)
    assert opt.lr_t == pytest.approx(math.sqrt(0.4375) / 0.75, rel=1e-15)


def test_amsgrad_keeps_max_second_moment_by_hand():
    # b1=b2=0.5, eps=0, g = 2 then 0.
    # v1 = 0.5*4 = 2, v2 = 0.5*2 = 1, vhat = 2; m1 = 1, m2 = 0.5
    # step 2 update = sqrt(1-0.25)/(1-0.25) * 0.5 / sqrt(2)
    opt = ReferenceOptimizer(
        "adamw", [()], learning_rate=1.0, beta_1=0.5, beta_2=0.5, epsilon=0.0, amsgrad=True
    )
    (p1,) = opt.step([np.array(0.0)], [np.array(2.0)])
    (p2,) = opt.step([p1], [np.array(0.0)])
    assert opt.v[0] == pytest.approx(1.0)
    assert opt.vhat[0] == pytest.approx(2.0)
    step2 = math.sqrt(0.75) / 0.75 * 0.5 / math.sqrt(2.0)
    assert p2 - p1 == pytest.approx(-step2, rel=1e-14)


def textbook_adam(theta, grads, lr, b1, b2, eps, amsgrad=False):
    """Kingma & Ba Adam with explicit bias-corrected moments.

    The Keras form ``alpha_t m / (sqrt(v) + eps)`` equals
    ``lr m_hat / (sqrt(v_hat) + eps / sqrt(1 - b2^t))``; with AMSGrad the
    maximum is taken over the raw ``v`` (as Keras does).
    """
    m = np.zeros_like(theta)
    v = np.zeros_like(theta)
    v_max = np.zeros_like(theta)
    for t, g in enumerate(grads, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        v_max = np.maximum(v_max, v)
        m_hat = m / (1 - b1**t)
        v_hat = (v_max if amsgrad else v) / (1 - b2**t)
        theta = theta - lr * m_hat / (np.sqrt(v_hat) + eps / math.sqrt(1 - b2**t))
    return theta


@pytest.mark.parametrize("amsgrad", [False, True])
def test_adam_matches_textbook_form(amsgrad):
    rng = np.random.default_rng(0)
    theta0 = rng.normal(size=(3, 4))
    grads = [rng.normal(size=(3, 4)) * (3.0 if k % 3 == 0 else 0.2) for k in range(12)]
    kw = {"learning_rate": 0.01, "beta_1": 0.8, "beta_2": 0.95, "epsilon": 1e-3}
    opt = ReferenceOptimizer("adamw", [(3, 4)], amsgrad=amsgrad, **kw)
    (got,) = run(opt, [theta0], [[g] for g in grads])
    expected = textbook_adam(theta0, grads, 0.01, 0.8, 0.95, 1e-3, amsgrad=amsgrad)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-14)


# ---------------------------------------------------------------------------
# NadamW
# ---------------------------------------------------------------------------


def tf_keras_style_nadam(theta, grads, lr, b1, b2, eps, schedule_decay):
    """Nadam written like tf_keras' legacy optimizer (m_schedule, g_prime, ...)."""
    m = np.zeros_like(theta)
    v = np.zeros_like(theta)
    m_schedule = 1.0
    schedules = []
    for iteration, g in enumerate(grads):
        local_step = iteration + 1
        next_step = iteration + 2
        momentum_cache_t = b1 * (1.0 - 0.5 * (0.96 ** (schedule_decay * local_step)))
        momentum_cache_t_1 = b1 * (1.0 - 0.5 * (0.96 ** (schedule_decay * next_step)))
        m_schedule_new = m_schedule * momentum_cache_t
        m_schedule_next = m_schedule_new * momentum_cache_t_1
        g_prime = g / (1.0 - m_schedule_new)
        m = b1 * m + (1.0 - b1) * g
        m_t_prime = m / (1.0 - m_schedule_next)
        v = b2 * v + (1.0 - b2) * g * g
        v_t_prime = v / (1.0 - b2**local_step)
        m_t_bar = (1.0 - momentum_cache_t) * g_prime + momentum_cache_t_1 * m_t_prime
        theta = theta - lr * m_t_bar / (np.sqrt(v_t_prime) + eps)
        m_schedule = m_schedule_new
        schedules.append(m_schedule)
    return theta, m, v, schedules


@pytest.mark.parametrize("schedule_decay", [0.004, 1.0, 0.0])
def test_nadam_matches_tf_keras_style_loop(schedule_decay):
    rng = np.random.default_rng(1)
    theta0 = rng.normal(size=(5,))
    grads = [rng.normal(size=(5,)) for _ in range(10)]
    kw = {"learning_rate": 0.02, "beta_1": 0.9, "beta_2": 0.99, "epsilon": 1e-7}
    opt = ReferenceOptimizer("nadamw", [(5,)], schedule_decay=schedule_decay, **kw)
    expected, m, v, schedules = tf_keras_style_nadam(
        theta0, grads, 0.02, 0.9, 0.99, 1e-7, schedule_decay
    )
    params = [theta0]
    for g, schedule in zip(grads, schedules, strict=True):
        params = opt.step(params, [g])
        assert opt.u_product == pytest.approx(schedule, rel=1e-14)
    np.testing.assert_allclose(params[0], expected, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(opt.m[0], m, rtol=1e-13)
    np.testing.assert_allclose(opt.v[0], v, rtol=1e-13)
    assert opt.lr_t == pytest.approx(0.02)


def test_nadam_first_step_by_hand():
    # schedule_decay = 0: u_t = 0.5 b1 for all t. b1 = 0.5 -> u = 0.25.
    # t=1: u_prod = 0.25; m = 0.5 g; v = (1-b2) g^2; v_hat = g^2
    # m_bar = 0.75 g / 0.75 + 0.25 * 0.5 g / (1 - 0.0625) = g (1 + 0.125/0.9375)
    g = 2.0
    opt = ReferenceOptimizer(
        "nadamw",
        [()],
        learning_rate=1.0,
        beta_1=0.5,
        beta_2=0.9,
        epsilon=0.0,
        schedule_decay=0.0,
    )
    (p1,) = opt.step([np.array(0.0)], [np.array(g)])
    assert opt.u_product == pytest.approx(0.25)
    assert p1 == pytest.approx(-(1.0 + 0.125 / 0.9375), rel=1e-14)


# ---------------------------------------------------------------------------
# SGDW
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("momentum", "nesterov", "expected"),
    [
        # plain: 3 * 0.1
        (0.0, False, [-0.1, -0.2, -0.3]),
        # vel: -0.1, -0.19, -0.271 ; theta: cumulative sums
        (0.9, False, [-0.1, -0.29, -0.561]),
        # increments mu*vel - lr g: -0.19, -0.271, -0.3439
        (0.9, True, [-0.19, -0.461, -0.8049]),
    ],
)
def test_sgd_momentum_three_steps_by_hand(momentum, nesterov, expected):
    opt = ReferenceOptimizer("sgdw", [()], learning_rate=0.1, momentum=momentum, nesterov=nesterov)
    theta = [np.array(0.0)]
    for k in range(3):
        theta = opt.step(theta, [np.array(1.0)])
        assert float(theta[0]) == pytest.approx(expected[k], abs=1e-15)
    if momentum:
        assert float(opt.velocity[0]) == pytest.approx(-0.271, abs=1e-15)
    assert opt.lr_t == pytest.approx(0.1)


# ---------------------------------------------------------------------------
# Learning rate: multipliers, legacy decay, callables
# ---------------------------------------------------------------------------


def test_multipliers_scale_lr_per_variable():
    opt = ReferenceOptimizer("sgdw", [(), (2,)], learning_rate=0.5, multipliers=[2.0, 0.1])
    new = opt.step([np.array(1.0), np.array([1.0, 1.0])], [np.array(1.0), np.array([1.0, -1.0])])
    assert float(new[0]) == pytest.approx(0.0)
    np.testing.assert_allclose(new[1], [0.95, 1.05])
    assert opt.lr_t == pytest.approx(0.5)  # lr_t is the scalar lr, not per variable


def test_legacy_inverse_time_decay():
    # lr_k = 1 / (1 + 0.5 k) for k = iterations = 0, 1, 2
    opt = sgd(decay=0.5)
    assert etas_used(opt, 3) == pytest.approx([1.0, 1.0 / 1.5, 0.5])
    assert opt.lr_t == pytest.approx(0.5)


def test_learning_rate_fn_is_called_with_iterations_before_update():
    seen = []

    def schedule(iterations):
        seen.append(iterations)
        return 0.1 * (iterations + 1)

    opt = sgd(learning_rate_fn=schedule, learning_rate=123.0)
    assert etas_used(opt, 3) == pytest.approx([0.1, 0.2, 0.3])
    assert seen == [0, 1, 2]


# ---------------------------------------------------------------------------
# Cosine annealing and warm restarts
# ---------------------------------------------------------------------------


def closed_form_cycle(lo, hi):
    """f(0..4) for T=5: cos(pi k / 4) = 1, sqrt2/2, 0, -sqrt2/2, -1."""
    cosines = [1.0, SQRT_HALF, 0.0, -SQRT_HALF, -1.0]
    return [lo + (hi - lo) * (1.0 + c) / 2.0 for c in cosines]


def test_cosine_eta_closed_form():
    expected = closed_form_cycle(0.1, 2.0)
    got = [cosine_eta(k, 5, 0.1, 2.0) for k in range(5)]
    assert got == pytest.approx(expected, abs=1e-15)


def test_eta_sequence_three_cycles_with_autorestart():
    cycle = closed_form_cycle(0.1, 1.0)
    opt = sgd(use_cosine_annealing=True, total_iterations=5, eta_min=0.1, eta_max=1.0)
    assert opt.autorestart is True  # None means "follow use_cosine_annealing"
    assert opt.eta_t == pytest.approx(1.0)
    assert etas_used(opt, 15) == pytest.approx(cycle * 3, abs=1e-15)
    assert opt.t_cur == 0
    assert opt.iterations == 15


def test_eta_sequence_without_autorestart_runs_past_cycle():
    # t_cur keeps counting: f(5) = f(3), f(6) = f(2) by symmetry of cos.
    cycle = closed_form_cycle(0.0, 1.0)
    opt = sgd(use_cosine_annealing=True, autorestart=False, total_iterations=5)
    assert etas_used(opt, 7) == pytest.approx(cycle + [cycle[3], cycle[2]], abs=1e-15)
    assert opt.t_cur == 7


def test_t_cur_trace_and_lr_t_with_autorestart():
    opt = sgd(use_cosine_annealing=True, total_iterations=3, learning_rate=2.0)
    trace = []
    for _ in range(7):
        eta_before = opt.eta_t
        opt.step([np.zeros(())], [np.zeros(())])
        trace.append(opt.t_cur)
        assert opt.lr_t == pytest.approx(2.0 * eta_before)
    assert trace == [1, 2, 0, 1, 2, 0, 1]


def test_manual_restart_with_set_t_cur():
    cycle = closed_form_cycle(0.0, 1.0)
    opt = sgd(use_cosine_annealing=True, total_iterations=5)
    assert etas_used(opt, 3) == pytest.approx(cycle[:3], abs=1e-15)
    assert opt.eta_t == pytest.approx(cycle[3])
    opt.set_t_cur(-1)
    assert opt.t_cur == -1
    assert opt.eta_t == pytest.approx(cycle[3])  # eta_t untouched
    # the update right after still uses the old eta_t, then f(0), f(1), ...
    assert etas_used(opt, 3) == pytest.approx([cycle[3], cycle[0], cycle[1]], abs=1e-15)


def test_initial_t_cur_sets_initial_eta():
    cycle = closed_form_cycle(0.0, 1.0)
    opt = sgd(use_cosine_annealing=True, total_iterations=5, t_cur=2)
    assert etas_used(opt, 5) == pytest.approx(cycle[2:] + cycle[:2], abs=1e-15)


def test_no_annealing_keeps_eta_one():
    opt = sgd(total_iterations=5, eta_min=0.3, eta_max=0.7)
    assert etas_used(opt, 6) == pytest.approx([1.0] * 6)
    assert opt.t_cur == 6


# ---------------------------------------------------------------------------
# Decoupled weight decay
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_paper_l2_decay_zero_gradient_is_geometric(kind):
    # g = 0: every kind's gradient step is 0, so theta_n = theta_0 (1 - s l2)^n;
    # s = sqrt(1/T_wd), independent of lr and multipliers.
    l2, t_wd, n = 0.3, 16, 6
    theta0 = np.array([1.5, -2.0, 0.0])
    opt = ReferenceOptimizer(
        kind,
        [(3,)],
        learning_rate=0.7,
        multipliers=[5.0],
        l1_l2=[(0.0, l2)],
        total_iterations=t_wd,
    )
    (got,) = run(opt, [theta0], [[np.zeros(3)]] * n)
    np.testing.assert_allclose(got, theta0 * (1 - l2 / 4.0) ** n, rtol=1e-14)


def test_paper_l1_decay_zero_gradient_is_linear():
    # while the sign holds: theta_n = theta_0 - n s l1 sign(theta_0); sign(0) = 0.
    opt = ReferenceOptimizer("sgdw", [(3,)], l1_l2=[(0.04, 0.0)], total_iterations=4)
    theta0 = np.array([1.0, -1.0, 0.0])
    (got,) = run(opt, [theta0], [[np.zeros(3)]] * 5)
    np.testing.assert_allclose(got, [0.9, -0.9, 0.0], rtol=1e-14)


def test_total_iterations_wd_overrides_total_iterations():
    opt = ReferenceOptimizer(
        "sgdw", [()], l1_l2=[(0.0, 1.0)], total_iterations=4, total_iterations_wd=100
    )
    (got,) = opt.step([np.array(1.0)], [np.array(0.0)])
    assert float(got) == pytest.approx(0.9)


def test_decay_uses_theta_before_update_and_eta():
    # SGD: theta1 = theta0 - eta lr g - eta s (l1 sign(theta0) + l2 theta0)
    # T=5, t_cur=2 -> eta = 0.5; s = 1/2 ; lr = 0.1, g = 3, theta0 = 2, l1 = .2, l2 = .5
    opt = ReferenceOptimizer(
        "sgdw",
        [()],
        learning_rate=0.1,
        l1_l2=[(0.2, 0.5)],
        total_iterations=5,
        total_iterations_wd=4,
        use_cosine_annealing=True,
        t_cur=2,
    )
    (got,) = opt.step([np.array(2.0)], [np.array(3.0)])
    expected = 2.0 - 0.5 * 0.1 * 3.0 - 0.5 * 0.5 * (0.2 + 0.5 * 2.0)
    assert float(got) == pytest.approx(expected, rel=1e-15)


@pytest.mark.parametrize("kind", KINDS)
def test_keras_weight_decay_zero_gradient_and_mask(kind):
    # theta_n = theta_0 (1 - lr * mult * lambda)^n ; masked variable unchanged.
    lr, lam, n = 0.1, 0.5, 4
    opt = ReferenceOptimizer(
        kind,
        [(2,), (2,)],
        learning_rate=lr,
        multipliers=[2.0, 1.0],
        weight_decay=lam,
        decay_mask=[True, False],
    )
    theta0 = [np.array([1.0, -3.0]), np.array([4.0, 5.0])]
    got = run(opt, theta0, [[np.zeros(2), np.zeros(2)]] * n)
    np.testing.assert_allclose(got[0], theta0[0] * (1 - lr * 2.0 * lam) ** n, rtol=1e-14)
    np.testing.assert_array_equal(got[1], theta0[1])


def test_keras_weight_decay_uses_plain_lr_not_adam_alpha():
    # AdamW, t=1, eps=0: Adam part = lr sign(g); decay part = lr * lambda * theta0.
    opt = ReferenceOptimizer("adamw", [()], learning_rate=0.1, epsilon=0.0, weight_decay=0.01)
    (got,) = opt.step([np.array(3.0)], [np.array(-7.0)])
    assert float(got) == pytest.approx(3.0 + 0.1 - 0.1 * 0.01 * 3.0, rel=1e-14)


# ---------------------------------------------------------------------------
# Sparse gradients
# ---------------------------------------------------------------------------


def test_densify_sums_duplicate_rows():
    values = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    dense = densify(values, np.array([0, 2, 0]), (3, 2))
    np.testing.assert_array_equal(dense, [[6.0, 8.0], [0.0, 0.0], [3.0, 4.0]])
    assert dense.dtype == np.float64


def test_densify_empty_and_bad_index():
    np.testing.assert_array_equal(densify(np.zeros((0, 2)), np.array([], int), (2, 2)), 0.0)
    with pytest.raises(ValueError):
        densify(np.ones((1, 2)), np.array([3]), (3, 2))
    with pytest.raises(ValueError):
        densify(np.ones((1, 3)), np.array([0]), (3, 2))


def test_absent_rows_still_decay_moments():
    opt = ReferenceOptimizer("adamw", [(2, 1)], beta_1=0.5, beta_2=0.75)
    params = opt.step([np.zeros((2, 1))], [np.ones((2, 1))])
    opt.step(params, [densify(np.array([[2.0]]), np.array([0]), (2, 1))])
    np.testing.assert_allclose(opt.m[0][:, 0], [0.25 + 1.0, 0.25])
    np.testing.assert_allclose(opt.v[0][:, 0], [0.1875 + 1.0, 0.1875])


# ---------------------------------------------------------------------------
# Interface
# ---------------------------------------------------------------------------


def test_step_returns_float64_copies_and_leaves_inputs():
    theta = np.array([1.0, 2.0], dtype=np.float32)
    opt = ReferenceOptimizer("adamw", [(2,)])
    (new,) = opt.step([theta], [np.array([0.1, 0.1], dtype=np.float32)])
    assert new.dtype == np.float64
    np.testing.assert_array_equal(theta, [1.0, 2.0])


def test_none_gradient_skips_variable_but_counts_step():
    opt = ReferenceOptimizer("sgdw", [(), ()], learning_rate=1.0, weight_decay=0.5)
    new = opt.step([np.array(1.0), np.array(1.0)], [np.array(1.0), None])
    assert float(new[0]) == pytest.approx(-0.5)
    assert float(new[1]) == 1.0
    assert opt.iterations == 1


@pytest.mark.parametrize(
    ("kind", "kwargs"),
    [
        ("rmsprop", {}),
        ("adamw", {"use_cosine_annealing": True, "total_iterations": 1}),
        ("adamw", {"autorestart": True, "total_iterations": 0}),
        ("adamw", {"l1_l2": [(0.0, 0.1)], "total_iterations": 1}),
        ("adamw", {"l1_l2": [(0.0, 0.1)], "total_iterations": 10, "total_iterations_wd": 1}),
        ("adamw", {"multipliers": [1.0, 2.0]}),
        ("adamw", {"decay_mask": []}),
        ("adamw", {"l1_l2": [(0.1,)]}),
        ("nadamw", {"amsgrad": True}),
        ("adamw", {"momentum": 0.9}),
        ("sgdw", {"momentum": 1.5}),
        ("sgdw", {"decay": -1.0}),
    ],
)
def test_inconsistent_settings_raise(kind, kwargs):
    with pytest.raises(ValueError):
        ReferenceOptimizer(kind, [(2,)], **kwargs)


def test_shape_mismatch_raises():
    opt = ReferenceOptimizer("adamw", [(2,)])
    with pytest.raises(ValueError):
        opt.step([np.zeros(3)], [np.zeros(3)])
    with pytest.raises(ValueError):
        opt.step([np.zeros(2)], [np.zeros(3)])
    with pytest.raises(ValueError):
        opt.step([np.zeros(2), np.zeros(2)], [np.zeros(2), np.zeros(2)])
