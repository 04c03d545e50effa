"""Update rules of AdamW, NadamW and SGDW (DESIGN.md section 4), written once.

Scalar helpers return per-step coefficients (computed once per step, not per
variable). Tensor helpers use only arithmetic operators and the namespace `xp`,
so numpy arrays, Keras variables and tensors of every backend work alike.
"""
import math
from typing import Any, NamedTuple


class NadamCoefficients(NamedTuple):
    """Dozat's momentum schedule at step `t` (`core.rules.nadam_coefficients`).

    Attributes:
        grad_weight: `(1 - u_t) / (1 - prod_t)`, the weight of `g` in `m_bar`.
        momentum_weight: `u_{t+1} / (1 - prod_t u_{t+1})`, the weight of `m`.
        v_correction: `1 / (1 - b2^t)`.
    """

    grad_weight: Any
    momentum_weight: Any
    v_correction: Any

    def cast(self, cast):
        return NadamCoefficients(*(cast(x) for x in self))



def one_minus_power(base, t, xp):
    """`1 - base^t` without cancellation: `-expm1(t log(base))`.

    In float32, `1 - 0.999^t` loses about 5 digits at small `t`; with `log(base)`
    taken in float64 by Python, the result is exact to the tensor's precision.
    """
    if base == 0:
        return 1.0  # t >= 1
    return -xp.expm1(t * math.log(base))


def inverse_time_factor(decay, iterations):
    """Legacy Keras `decay=`: `lr * 1 / (1 + decay * iterations)`."""
    return 1.0 / (1.0 + decay * iterations)


def adam_bias_correction(beta_1, beta_2, t, xp):
    """Adam's bias correction folded into the step size: `sqrt(1-b2^t)/(1-b1^t)`."""
    return xp.sqrt(one_minus_power(beta_2, t, xp)) / one_minus_power(beta_1, t, xp)


def nadam_momentum(beta_1, schedule_decay, t, xp):
    """Dozat's momentum schedule `u_t = b1 (1 - 0.5 * 0.96^(schedule_decay * t))`."""
    return beta_1 * (1.0 - 0.5 * xp.power(0.96, schedule_decay * t))


def adam_moments(m, v, grad, beta_1, beta_2):
    """`m = b1 m + (1-b1) g`, `v = b2 v + (1-b2) g^2`."""
    return beta_1 * m + (1.0 - beta_1) * grad, beta_2 * v + (1.0 - beta_2) * grad * grad


def adam_direction(m, v, epsilon, xp):
    """`m / (sqrt(v) + eps)`: times `eta * lr_v * bias_correction` gives the step."""
    return m / (xp.sqrt(v) + epsilon)


def nadam_direction(m, v, grad, coefficients, epsilon, xp):
    """Nesterov-corrected direction of Nadam; times `eta * lr_v` gives the step.

    ```
    m_bar = (1 - u_t) g / (1 - prod_t) + u_{t+1} m / (1 - prod_{t+1})
    direction = m_bar / (sqrt(v / (1 - b2^t)) + eps)
    ```
    """
    m_bar = nadam_momentum_bar(m, grad, coefficients)
    return m_bar / (xp.sqrt(v * coefficients.v_correction) + epsilon)


def nadam_momentum_bar(m, grad, coefficients):
    """Nadam's Nesterov momentum `m_bar` (see `nadam_direction`)."""
    return coefficients.grad_weight * grad + coefficients.momentum_weight * m


def nadam_coefficients(u_t, u_next, u_product, beta_2, t, xp):
    """Per-step scalars of `nadam_direction`; `u_product` already includes `u_t`."""
    return NadamCoefficients(grad_weight=(1.0 - u_t) / (1.0 - u_product),
                             momentum_weight=u_next / (1.0 - u_product * u_next),
                             v_correction=1.0 / one_minus_power(beta_2, t, xp))


def sgd_step(velocity, grad, scaled_lr, momentum, nesterov):
    """Keras-convention momentum SGD.

    ```
    velocity = mu velocity - lr g
    delta = velocity                  (or mu velocity - lr g with nesterov)
    ```

    Args:
        velocity: the velocity slot's value, or `None` without momentum.
        grad: the gradient.
        scaled_lr: `eta lr_v`.
        momentum: `mu` (number or tensor; unused without a velocity).
        nesterov: python bool.

    Returns:
        `(new_velocity, delta)`; `theta += delta`. Without a velocity the new
        velocity is `None` and `delta = -lr g`.
    """
    if velocity is None:
        return None, -scaled_lr * grad
    velocity = momentum * velocity - scaled_lr * grad
    if nesterov:
        return velocity, momentum * velocity - scaled_lr * grad
    return velocity, velocity


DECAY_COUPLINGS = ("lr", "none", "lr_ratio", "corrected")


def coupling_factor(coupling, scaled_lr, lr_peak):
    """The factor of a decay term under `decay_coupling`.

    ```
    lr:        lr_v                 (Keras/torch: the decay follows the learning rate)
    none:      1                    (the paper's and TF Addons': it does not)
    lr_ratio:  lr_v / lr_peak       (fully decoupled: lr's schedule, not its size)
    corrected: lr_v^2 / lr_peak     (AdamC, timm's `corrected_weight_decay`)
    ```
    """
    if coupling == "lr":
        return scaled_lr
    if coupling == "none":
        return 1.0
    ratio = scaled_lr / lr_peak
    return ratio if coupling == "lr_ratio" else ratio * scaled_lr


def decay_coefficients(rule, eta, scaled_lr, weight_decay=None):
    """`(c_sign, c_linear)` of the decoupled decay `c_sign sign(theta) + c_linear theta`.

    ```
    paper:  c_sign = eta f_paper l1_n,  c_linear = eta f_paper l2_n   (l_n = l sqrt(1/T_wd))
    keras:  c_linear += eta f_keras lambda(t)
    ```
    with `f` the `coupling_factor` of each convention (defaults: `f_paper = 1`,
    `f_keras = lr_v`) and `lambda(t)` the rule's `decay_lambda`, times the
    step's scheduled `weight_decay` when it is a schedule.

    Args:
        rule: the variable's `core.matching.VariableRule`.
        eta: the annealing multiplier `eta_t`.
        scaled_lr: `lr_v`, the learning rate times the variable's multiplier.
        weight_decay: the step's `weight_decay` schedule value (`core.step.Step`);
            required when the rule's decay is scheduled.

    Returns:
        The two coefficients; each is `None` when that term is absent.
    """
    paper = None  # the factor 1: the defaults' numbers stay exactly as they were
    if (rule.l1 or rule.l2) and rule.paper_coupling != "none":
        paper = coupling_factor(rule.paper_coupling, scaled_lr, rule.lr_peak)
    c_sign = eta * _times(rule.l1, paper) if rule.l1 else None
    c_linear = None
    if rule.l2 or rule.decay_lambda:
        linear = _times(rule.l2, paper)
        if rule.decay_lambda:
            linear = linear + _keras_lambda(rule, weight_decay) * coupling_factor(
                rule.keras_coupling, scaled_lr, rule.lr_peak)
        c_linear = eta * linear
    return c_sign, c_linear


def _times(value, factor):
    return value if factor is None else factor * value


def _keras_lambda(rule, weight_decay):
    """The Keras-convention `lambda` of this step: the rule's, scaled by the
    schedule's value where `weight_decay` is a schedule."""
    if not rule.decay_scheduled:
        return rule.decay_lambda
    if weight_decay is None:
        raise ValueError("A scheduled `weight_decay` needs the step's value: pass "
                         "`Step.weight_decay` to `decay_coefficients`.")
    return rule.decay_lambda * weight_decay


def decay_term(theta, c_sign, c_linear, xp):
    """`c_sign sign(theta) + c_linear theta` (see `decay_coefficients`); None if no decay.

    Args:
        theta: the variable's value before the update.
        c_sign: coefficient of `sign(theta)`, or None.
        c_linear: coefficient of `theta`, or None.
        xp: namespace providing `sign`.
    """
    if c_sign is None:
        return None if c_linear is None else c_linear * theta
    term = c_sign * xp.sign(theta)
    return term if c_linear is None else term + c_linear * theta


def adaptive_rate(step_size, v, epsilon, xp, v_correction=None):
    """Per-element effective learning rate of Adam and Nadam.

    ```
    AdamW:   rate = eta lr_v sqrt(1 - b2^t) / (1 - b1^t) / (sqrt(v) + eps)
    NadamW:  rate = eta lr_v / (sqrt(v / (1 - b2^t)) + eps)
    ```
    The update is `theta -= rate * m` (AdamW) or `rate * m_bar` (NadamW).

    Args:
        step_size: `eta lr_v` times the folded bias correction (AdamW), or
            `eta lr_v` (NadamW).
        v: second moments (`vhat` with amsgrad).
        epsilon: added to the root.
        xp: namespace providing `sqrt`.
        v_correction: NadamW's `1 / (1 - b2^t)`; None for AdamW.
    """
    if v_correction is not None:
        v = v * v_correction
    return step_size / (xp.sqrt(v) + epsilon)


def bound_values(bounds, iterations):
    """`(lower, upper)` of `effective_lr_bounds` for the update after `iterations`.

    Args:
        bounds: `Settings.effective_lr_bounds`: None, or a pair whose sides are
            None, a number, or a callable of the iteration count.
        iterations: updates applied before this one (number or tensor).

    Returns:
        The pair with callables evaluated, or None without bounds.
    """
    if bounds is None:
        return None
    return tuple(b(iterations) if callable(b) else b for b in bounds)


def clip_rate(rate, bounds, xp):
    """`rate` clipped element-wise to `bounds = (lower, upper)` (AdaBound-style).

    A side that is None is open; `bounds` None returns `rate` unchanged.
    """
    if bounds is None:
        return rate
    lower, upper = bounds
    if lower is not None:
        rate = xp.maximum(rate, lower)
    if upper is not None:
        rate = xp.minimum(rate, upper)
    return rate
