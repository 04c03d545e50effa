"""Argument checks shared by every flavour: errors name the argument, the value and the fix.

Keras style: "Argument `x` must be ... Received: x=...". Each check returns the
value normalised (floats, ints, tuples) so the settings hold plain Python values.
"""
import difflib
import inspect
import math
import numbers
import pathlib
import sys
from collections.abc import Mapping

from keras_adamw.core.rules import DECAY_COUPLINGS

_PACKAGE = str(pathlib.Path(__file__).resolve().parents[1])


def argument_error(name, value, requirement, fix=None, error=ValueError):
    """Builds the error raised for a bad argument, Keras style."""
    message = f"Argument `{name}` must be {requirement}. Received: {name}={value!r}"
    if fix:
        message += f". {fix}"
    return error(message)


def caller_stacklevel():
    """The `stacklevel` of a warning that points at the user's line: the first
    frame outside keras_adamw, however deep the call inside it."""
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        frame, level = frame.f_back, level + 1
    return level


def check_t_cur(t_cur):
    """The cycle position: an integer >= -1 (-1 restarts the cycle)."""
    if isinstance(t_cur, bool) or not isinstance(t_cur, numbers.Integral) or t_cur < -1:
        raise argument_error("t_cur", t_cur, "an integer >= -1 (-1 restarts the cycle)")
    return int(t_cur)


def check_eta_range(eta_min, eta_max):
    """`(eta_min, eta_max)` as floats, both >= 0 and `eta_min <= eta_max`."""
    eta_min = check_number("eta_min", eta_min, low=0)
    eta_max = check_number("eta_max", eta_max, low=0)
    if eta_min > eta_max:
        raise argument_error("eta_min", eta_min, f"<= eta_max={eta_max}")
    return eta_min, eta_max


def _is_real(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_number(name, value, low=None, high=None, low_open=False, high_open=False):
    """Returns `value` as float after checking it is a finite number in range."""
    if not _is_real(value) or not math.isfinite(value):
        raise argument_error(name, value, "a finite number", error=TypeError
                             if not _is_real(value) else ValueError)
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if too_low or too_high:
        left = "(" if low_open else "["
        right = ")" if high_open else "]"
        span = f"{left}{'-inf' if low is None else low}, {'inf' if high is None else high}{right}"
        raise argument_error(name, value, f"in {span}")
    return float(value)


def shortest_decimal(value):
    """The shortest decimal of a float32 value: regularizers store 1e-4 as 9.99e-05.

    Regularizer strengths come back from Keras as float32; the decimal the user
    wrote is the shortest one that rounds to the same float32.
    """
    import numpy as np

    return float(str(np.float32(value)))


def check_count(name, value):
    """Returns `value` as int after checking it is a non-negative integer."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        if _is_real(value) and float(value).is_integer():
            value = int(value)
        else:
            raise argument_error(name, value, "a non-negative integer", error=TypeError)
    if value < 0:
        raise argument_error(name, value, "a non-negative integer")
    return int(value)


def check_bool(name, value):
    """Returns `value` after checking it is a bool (numpy bools accepted)."""
    if not isinstance(value, (bool, int)) or value not in (0, 1):
        raise argument_error(name, value, "True or False", error=TypeError)
    return bool(value)


def check_multipliers(lr_multipliers):
    """`{pattern: multiplier}` with non-negative finite multipliers."""
    return _check_number_dict("lr_multipliers", lr_multipliers,
                              "a dict {layer name or pattern: multiplier}", high=None)


def _check_number_dict(name, values, requirement, high):
    """`{non-empty string: number in [0, high]}`; None is `{}`."""
    if values is None:
        return {}
    if not isinstance(values, Mapping):
        raise argument_error(name, values, requirement, error=TypeError)
    checked = {}
    for key, value in values.items():
        _check_key(name, key)
        checked[key] = check_number(f"{name}[{key!r}]", value, low=0, high=high)
    return checked


def check_weight_decays(weight_decays):
    """`{variable name: (l1, l2)}` with non-negative finite values.

    keras-adamw 1.x documents `(l1, l2)` pairs; a bare number is ambiguous (L1
    or L2?) and is refused with the fix.
    """
    if weight_decays is None:
        return {}
    if not isinstance(weight_decays, Mapping):
        raise argument_error("weight_decays", weight_decays,
                             "a dict {variable name: (l1, l2)}", error=TypeError)
    checked = {}
    for key, value in weight_decays.items():
        _check_key("weight_decays", key)
        name = f"weight_decays[{key!r}]"
        if not isinstance(value, (tuple, list)) or len(value) != 2:
            raise argument_error(name, value, "a pair (l1, l2)",
                                 fix="For L2 only, pass (0, l2)", error=TypeError)
        checked[key] = (check_number(name + "[0]", value[0], low=0),
                        check_number(name + "[1]", value[1], low=0))
    return checked


def _check_key(argument, key):
    if not isinstance(key, str) or not key:
        raise argument_error(f"{argument} key", key, "a non-empty string", error=TypeError)


def check_patterns(name, patterns):
    """A list of regex strings (a single string is accepted as a list of one)."""
    if patterns is None:
        return ()
    if isinstance(patterns, str):
        patterns = [patterns]
    if not isinstance(patterns, (list, tuple)) or not all(
            isinstance(p, str) and p for p in patterns):
        raise argument_error(name, patterns, "a list of non-empty strings", error=TypeError)
    return tuple(patterns)


def check_layerwise_lr_decay(rates, name="layerwise_lr_decay"):
    """`{pattern: decay_rate}` with rates in [0, 1] (0: unchanged, 1: frozen)."""
    return _check_number_dict(name, rates, "a dict {variable path pattern: decay rate}",
                              high=1)


def check_effective_lr_bounds(bounds):
    """`(lower, upper)`: each None, a number >= 0 or a callable of the iteration."""
    if bounds is None:
        return None
    name = "effective_lr_bounds"
    if not isinstance(bounds, (tuple, list)) or len(bounds) != 2:
        raise argument_error(name, bounds, "a pair (lower, upper) of numbers, callables "
                             "of the iteration or None", error=TypeError)
    checked = []
    for side, bound in zip(("lower", "upper"), bounds):
        if bound is None or callable(bound):
            checked.append(bound)
        else:
            checked.append(check_number(f"{name}[{side}]", bound, low=0))
    lower, upper = checked
    if _is_real(lower) and _is_real(upper) and lower > upper:
        raise argument_error(name, tuple(bounds), "(lower, upper) with lower <= upper")
    return None if lower is None and upper is None else tuple(checked)


def check_learning_rate(learning_rate):
    """Floats (ints accepted) must be finite and >= 0; schedules pass through."""
    if callable(learning_rate):
        return learning_rate
    return check_number("learning_rate", learning_rate, low=0)


def check_beta(name, value):
    """A moment decay rate in [0, 1)."""
    return check_number(name, value, low=0, high=1, high_open=True)


FLOAT_DTYPES = ("float16", "bfloat16", "float32", "float64")


def check_float_variables(paths, dtypes):
    """Refuses an integer, boolean or complex variable, by name, before any state exists.

    The update rules (and the Keras kernels) are defined for real floating-point
    variables only; without this check the frameworks fail deep in a kernel
    (TensorFlow) or silently round every update to zero (JAX).

    Args:
        paths: the variables' paths, in the optimizer's order.
        dtypes: their dtype names (`"float32"`, `"int32"`, ...).
    """
    for index, (path, dtype) in enumerate(zip(paths, dtypes)):
        if str(dtype) not in FLOAT_DTYPES:
            raise TypeError(
                f"Argument `var_list` must contain floating-point variables only "
                f"({', '.join(FLOAT_DTYPES)}). Received: var_list[{index}]={path!r} of "
                f"dtype {dtype}. Leave it out of the optimizer's variables (e.g. "
                f"trainable=False), or create it with a float dtype.")


# keras-adamw arguments accepted as keywords by every optimizer of both flavours.
EXTRA_KWARGS = ("lr", "decay", "weight_decay", "exclude_from_weight_decay",
                "layerwise_lr_decay", "effective_lr_bounds", "decay_coupling", "lr_peak",
                "decay_to")


def split_kwargs(cls, learning_rate, kwargs, framework_kwargs):
    """Separates `lr=`, keras-adamw extras and framework arguments; refuses the rest.

    Args:
        cls: the optimizer class (its signature feeds the "did you mean").
        learning_rate: the `learning_rate` argument (`lr=` overrides it).
        kwargs: the constructor's `**kwargs`.
        framework_kwargs: names the framework's base optimizer accepts.

    Returns:
        `(learning_rate, extras, framework kwargs)`.
    """
    accepted = tuple(framework_kwargs) + EXTRA_KWARGS
    unknown = [k for k in kwargs if k not in accepted]
    if unknown:
        key = unknown[0]
        known = list(inspect.signature(cls.__init__).parameters)[1:-1] + list(accepted)
        hint = difflib.get_close_matches(key, known, 1)
        fix = f"Did you mean `{hint[0]}`?" if hint else f"Accepted arguments: {sorted(known)}"
        raise TypeError(f"{cls.__name__} got an unexpected keyword argument `{key}` "
                        f"(value {kwargs[key]!r}). {fix}")
    extras = {k: kwargs.pop(k) for k in EXTRA_KWARGS if k in kwargs}
    if "lr" in extras:
        learning_rate = extras.pop("lr")
    return check_learning_rate(learning_rate), extras, kwargs


def check_weight_decay(weight_decay):
    """`weight_decay`: None, a number >= 0, or a schedule or callable, as
    `learning_rate` takes them (evaluated at every update)."""
    if weight_decay is None or callable(weight_decay):
        return weight_decay
    if not _is_real(weight_decay):
        raise argument_error("weight_decay", weight_decay,
                             "a number >= 0, a LearningRateSchedule or a callable",
                             error=TypeError)
    return check_number("weight_decay", weight_decay, low=0)


def check_decay_coupling(decay_coupling):
    """None (each convention's default) or one of `rules.DECAY_COUPLINGS`."""
    if decay_coupling is None or decay_coupling in DECAY_COUPLINGS:
        return decay_coupling
    raise argument_error("decay_coupling", decay_coupling,
                         f"one of {', '.join(map(repr, DECAY_COUPLINGS))} or None")


DECAY_TARGETS = ("zero", "init")


def check_decay_to(decay_to):
    """`"zero"`, `"init"`, or `{pattern: "zero" | "init"}` (patterns as `lr_multipliers`)."""
    requirement = "'zero', 'init', or a dict {pattern: 'zero' | 'init'}"
    if isinstance(decay_to, str) and decay_to in DECAY_TARGETS:
        return decay_to
    if not isinstance(decay_to, Mapping):
        raise argument_error("decay_to", decay_to, requirement,
                             error=ValueError if isinstance(decay_to, str) else TypeError)
    for key, target in decay_to.items():
        _check_key("decay_to", key)
        if target not in DECAY_TARGETS:
            raise argument_error(f"decay_to[{key!r}]", target, "'zero' or 'init'")
    return dict(decay_to)
