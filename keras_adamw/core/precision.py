"""Whether a decoupled decay survives the rounding of the variable's dtype.

The decay multiplies theta by `1 - c` per update (`c = c_linear` of
`core.rules.decay_coefficients`). When `c` is below half the dtype's machine
epsilon, `theta * (1 - c)` rounds back to theta for (some or all) values: the
decay is silently lost. Checked once, at build, at the largest decay of the
schedule (`eta = eta_max`); the adapters call `warn_rounded_decays`.
"""
import warnings

from keras_adamw.core import checks, rules

# Machine epsilon (spacing of floats at 1.0) per floating dtype name.
EPSILON = {"float16": 2.0 ** -10, "bfloat16": 2.0 ** -7, "float32": 2.0 ** -23,
           "float64": 2.0 ** -52}


def relative_decay(rule, eta_max, learning_rate):
    """The linear decay `c` per update at `eta = eta_max`, or None if unknown.

    ```
    c = eta_max (l2 sqrt(1/T_wd) + lr lr_mult lambda)     (rule.l2 is normalised)
    ```
    The L1 term `l1 sign(theta)` is absolute, not relative, so it is not
    checked.

    Args:
        rule: a `core.matching.VariableRule`.
        eta_max: the largest `eta_t` of the schedule.
        learning_rate: the constant learning rate (float), or None when it is a
            schedule or a callable (the Keras-convention term is then unknown).

    Returns:
        `c` as a float (0.0 without a linear decay), or None when `rule` has a
        Keras-convention `lambda` and the learning rate is unknown.
    """
    if rule.decay_lambda and (learning_rate is None or rule.decay_scheduled):
        return None
    lr = learning_rate or 0.0
    _, c_linear = rules.decay_coefficients(rule, eta_max, lr * rule.multiplier)
    return float(c_linear or 0.0)


def rounded_decays(paths, dtypes, variable_rules, eta_max, learning_rate):
    """The variables whose decay rounds away, grouped by dtype.

    Args:
        paths: variable paths, aligned with `dtypes` and `variable_rules`.
        dtypes: dtype names (`"float16"`, `"bfloat16"`, ...); others are skipped.
        variable_rules: one `core.matching.VariableRule` per variable.
        eta_max: the largest `eta_t` of the schedule.
        learning_rate: the constant learning rate, or None (see `relative_decay`).

    Returns:
        `{dtype: [(path, c), ...]}` for every variable with `0 < c < eps / 2`.
    """
    lost = {}
    for path, dtype, rule in zip(paths, dtypes, variable_rules):
        epsilon = EPSILON.get(str(dtype))
        decay = relative_decay(rule, eta_max, learning_rate)
        if epsilon is not None and decay and decay < epsilon / 2:
            lost.setdefault(str(dtype), []).append((path, decay))
    return lost


def warn_rounded_decays(paths, dtypes, variable_rules, eta_max, learning_rate):
    """One `UserWarning` per dtype whose variables would lose their decay.

    Args:
        paths, dtypes, variable_rules, eta_max, learning_rate: as
            `rounded_decays`.
    """
    for dtype, lost in rounded_decays(paths, dtypes, variable_rules, eta_max,
                                      learning_rate).items():
        listed = ", ".join(f"{path!r} ({decay:.3g})" for path, decay in lost)
        warnings.warn(
            f"The decoupled weight decay of {len(lost)} {dtype} variable(s) is below "
            f"the resolution of {dtype} (relative decay per update < eps/2 = "
            f"{EPSILON[dtype] / 2:.3g}), so theta * (1 - decay) rounds back to theta "
            f"and the decay is lost: {listed}. Keep float32 variables (a 'mixed_*' "
            f"dtype policy computes in {dtype} with float32 variables), or raise "
            f"`weight_decay`/`weight_decays` or the learning rate.",
            UserWarning, stacklevel=4)


def rounds_to_one(value, dtype):
    """Whether `value` in [0.5, 1) rounds to 1.0 in `dtype` (spacing below 1: eps/2)."""
    epsilon = EPSILON.get(str(dtype))
    return epsilon is not None and 1.0 - value <= epsilon / 4


def check_moment_decays(decays, dtypes):
    """Refuses moment decay rates that round to 1 in a variable dtype.

    Kernels that compute `1 - beta` in the variable's dtype would never update
    that moment (bfloat16 rounds beta_2 = 0.999 to 1: v stays 0, the step
    `m / (sqrt(v) + eps)` explodes).

    Args:
        decays: `{argument name: rate}`, e.g. `{"beta_1": 0.9, "beta_2": 0.999}`.
        dtypes: the dtype names of the variables to update.

    Raises:
        ValueError: naming the argument, the dtype and the fix.
    """
    for dtype in dtypes:
        for name, value in decays.items():
            if rounds_to_one(value, dtype):
                raise checks.argument_error(
                    name, value, f"below 1 in {dtype}, the dtype of the variables to "
                    f"update (it rounds to 1.0 there: the moment would never update and "
                    f"the steps explode)", fix=f"Keep float32 variables (a 'mixed_float16' "
                    f"or 'mixed_bfloat16' policy computes in low precision with float32 "
                    f"variables), or lower `{name}`")
