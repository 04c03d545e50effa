"""Validated optimizer settings shared by every flavour.

`make_settings` checks every keras-adamw argument once, at construction, and
returns a frozen `Settings`. Errors name the argument, the value received and
the fix; keras-adamw 1.x behaviours that switch a feature off are kept but warn.
"""
import dataclasses
import difflib
import inspect
import math
import numbers
import re
import warnings
from collections.abc import Mapping

from keras_adamw.core import rules


@dataclasses.dataclass(frozen=True)
class Settings:
    """What a keras-adamw optimizer does beyond its Keras base optimizer."""

    total_iterations: int = 0
    total_iterations_wd: int = 0
    use_cosine_annealing: bool = False
    autorestart: bool = False
    eta_min: float = 0.0
    eta_max: float = 1.0
    t_cur: int = 0
    lr_multipliers: Mapping[str, float] = dataclasses.field(default_factory=dict)
    weight_decays: Mapping[str, tuple[float, float]] = dataclasses.field(
        default_factory=dict)
    weight_decay: float | None = None
    exclude_from_weight_decay: tuple[str, ...] = ()
    decay: float = 0.0
    init_verbose: bool = True
    layerwise_lr_decay: Mapping[str, float] = dataclasses.field(default_factory=dict)
    effective_lr_bounds: tuple | None = None

    @property
    def decay_scale(self):
        """Paper normalisation `sqrt(1 / total_iterations_wd)` of `weight_decays`.

        0 when no decay is set, or every decay is zero (`l2(0)` regularizers, 1.x's
        way to turn a penalty off), with any `total_iterations_wd`, 0 included.
        """
        if not any(l1 or l2 for l1, l2 in self.weight_decays.values()):
            return 0.0
        return math.sqrt(1.0 / self.total_iterations_wd)

    def initial_eta(self):
        """`eta_t` before the first update: the cosine at `t_cur`, else 1."""
        from keras_adamw.core.schedule import cosine_eta
        if not self.use_cosine_annealing:
            return 1.0
        return float(cosine_eta(self.t_cur, self.total_iterations, self.eta_min,
                                self.eta_max))


def argument_error(name, value, requirement, fix=None, error=ValueError):
    """Builds the error raised for a bad argument, Keras style."""
    message = f"Argument `{name}` must be {requirement}. Received: {name}={value!r}"
    if fix:
        message += f". {fix}"
    return error(message)


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
    if lr_multipliers is None:
        return {}
    if not isinstance(lr_multipliers, Mapping):
        raise argument_error("lr_multipliers", lr_multipliers,
                             "a dict {layer name or pattern: multiplier}", error=TypeError)
    checked = {}
    for key, value in lr_multipliers.items():
        _check_key("lr_multipliers", key)
        checked[key] = check_number(f"lr_multipliers[{key!r}]", value, low=0)
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
    if rates is None:
        return {}
    if not isinstance(rates, Mapping):
        raise argument_error(name, rates, "a dict {variable path pattern: decay rate}",
                             error=TypeError)
    checked = {}
    for key, value in rates.items():
        _check_key(name, key)
        checked[key] = check_number(f"{name}[{key!r}]", value, low=0, high=1)
    return checked


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


def make_settings(*, total_iterations=0, total_iterations_wd=None,
                  use_cosine_annealing=False, autorestart=None, eta_min=0, eta_max=1,
                  t_cur=0, lr_multipliers=None, weight_decays=None, weight_decay=None,
                  exclude_from_weight_decay=None, decay=0.0, init_verbose=True,
                  layerwise_lr_decay=None, effective_lr_bounds=None):
    """Validates the keras-adamw arguments and returns the effective `Settings`.

    keras-adamw 1.x switched cosine annealing off when `total_iterations <= 1`
    and weight decays off when `total_iterations_wd <= 1`; that is kept, with a
    `UserWarning` that says what was switched off and which argument to pass.
    """
    total_iterations = check_count("total_iterations", total_iterations)
    if total_iterations_wd is None:
        total_iterations_wd = total_iterations
    total_iterations_wd = check_count("total_iterations_wd", total_iterations_wd)
    use_cosine_annealing = check_bool("use_cosine_annealing", use_cosine_annealing)
    if autorestart is not None:
        autorestart = check_bool("autorestart", autorestart)
        if autorestart and not use_cosine_annealing:
            raise argument_error(
                "autorestart", autorestart, "False (or None) without cosine annealing",
                fix="Pass use_cosine_annealing=True with total_iterations > 1 to restart "
                    "the cosine schedule")
    eta_min = check_number("eta_min", eta_min, low=0)
    eta_max = check_number("eta_max", eta_max, low=0)
    if eta_min > eta_max:
        raise argument_error("eta_min", eta_min, f"<= eta_max={eta_max}")
    if isinstance(t_cur, bool) or not isinstance(t_cur, numbers.Integral) or t_cur < -1:
        raise argument_error("t_cur", t_cur, "an integer >= -1 (-1 restarts the cycle)")
    lr_multipliers = check_multipliers(lr_multipliers)
    weight_decays = check_weight_decays(weight_decays)
    if weight_decay is not None:
        weight_decay = check_number("weight_decay", weight_decay, low=0)
    exclude = check_patterns("exclude_from_weight_decay", exclude_from_weight_decay)
    decay = check_number("decay", 0.0 if decay is None else decay, low=0)

    if use_cosine_annealing and total_iterations <= 1:
        warnings.warn(
            f"use_cosine_annealing=True needs total_iterations > 1 (the updates in one "
            f"cycle); received total_iterations={total_iterations}, so cosine annealing "
            f"and autorestart are switched OFF. Pass total_iterations=<updates per cycle>.",
            UserWarning, stacklevel=3)
        use_cosine_annealing, autorestart = False, False
    if any(l1 or l2 for l1, l2 in weight_decays.values()) and total_iterations_wd <= 1:
        warnings.warn(
            f"weight_decays are normalised by sqrt(1/total_iterations_wd) and need "
            f"total_iterations_wd > 1; received total_iterations={total_iterations}, "
            f"total_iterations_wd={total_iterations_wd}, so weight_decays are switched "
            f"OFF (a `model=`'s regularizers stay in the loss). Pass "
            f"total_iterations=<updates per cycle> (or total_iterations_wd).",
            UserWarning, stacklevel=3)
        weight_decays = {}
    return Settings(
        total_iterations=total_iterations, total_iterations_wd=total_iterations_wd,
        use_cosine_annealing=use_cosine_annealing,
        autorestart=use_cosine_annealing if autorestart is None else autorestart,
        eta_min=eta_min, eta_max=eta_max, t_cur=int(t_cur), lr_multipliers=lr_multipliers,
        weight_decays=weight_decays, weight_decay=weight_decay,
        exclude_from_weight_decay=exclude, decay=decay,
        init_verbose=check_bool("init_verbose", init_verbose),
        layerwise_lr_decay=check_layerwise_lr_decay(layerwise_lr_decay),
        effective_lr_bounds=check_effective_lr_bounds(effective_lr_bounds))


def settings_from_extras(extras, **keras_adamw_args):
    """`make_settings` with the keyword extras that `split_kwargs` separated."""
    return make_settings(**{k: v for k, v in extras.items() if k != "lr"},
                         **keras_adamw_args)


# keras-adamw arguments accepted as keywords by every optimizer of both flavours.
EXTRA_KWARGS = ("lr", "decay", "weight_decay", "exclude_from_weight_decay",
                "layerwise_lr_decay", "effective_lr_bounds")


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


def with_exclusions(settings, paths=(), patterns=None):
    """`settings` with more `exclude_from_weight_decay` entries (exact paths, regexes)."""
    added = [f"^{re.escape(p)}$" for p in paths] + list(check_patterns("var_names", patterns))
    return dataclasses.replace(settings, exclude_from_weight_decay=(
        settings.exclude_from_weight_decay + tuple(added)))


def with_layerwise_lr_decay(settings, var_name_dicts=None, var_dict=None, path_of=None):
    """`settings` with more layer-wise decay rates (`apply_layerwise_lr_decay`).

    Args:
        settings: the current `Settings`.
        var_name_dicts: `{pattern: rate}`, patterns searched in variable paths.
        var_dict: the variables themselves with their rates: a dict, or pairs
            `[(variable, rate), ...]` (Keras 3 variables are not hashable); a key
            may also be a `tf.Variable.ref()` or a path. Each becomes an
            exact-path regex.
        path_of: the adapter's `variable -> path`.

    Returns:
        New `Settings`; a pattern given again replaces its earlier rate.
    """
    added = dict(check_layerwise_lr_decay(var_name_dicts, "var_name_dicts"))
    if var_dict is not None:
        items = var_dict.items() if isinstance(var_dict, Mapping) else var_dict
        try:
            pairs = [(key, rate) for key, rate in items]
        except (TypeError, ValueError):
            raise argument_error("var_dict", var_dict, "a dict or a list of (variable, "
                                 "decay rate) pairs", error=TypeError) from None
        paths = {}
        for key, rate in pairs:
            key = key.deref() if hasattr(key, "deref") else key
            paths[key if isinstance(key, str) else path_of(key)] = rate
        for path, rate in check_layerwise_lr_decay(paths, "var_dict").items():
            added[f"^{re.escape(path)}$"] = rate
    return dataclasses.replace(settings, layerwise_lr_decay={
        **settings.layerwise_lr_decay, **added})


def settings_config(settings, serialize):
    """The keras-adamw part of `get_config`, JSON-serialisable.

    Args:
        settings: the `Settings`.
        serialize: the flavour's Keras serialiser, for callable bounds.
    """
    bounds = settings.effective_lr_bounds
    if bounds is not None:
        bounds = [serialize(b) if callable(b) else b for b in bounds]
    return {
        "total_iterations": settings.total_iterations,
        "total_iterations_wd": settings.total_iterations_wd,
        "use_cosine_annealing": settings.use_cosine_annealing,
        "autorestart": settings.autorestart,
        "eta_min": settings.eta_min, "eta_max": settings.eta_max, "t_cur": settings.t_cur,
        "lr_multipliers": dict(settings.lr_multipliers),
        "weight_decays": {k: list(v) for k, v in settings.weight_decays.items()},
        "weight_decay": settings.weight_decay,
        "exclude_from_weight_decay": list(settings.exclude_from_weight_decay),
        "decay": settings.decay, "init_verbose": settings.init_verbose,
        "layerwise_lr_decay": dict(settings.layerwise_lr_decay),
        "effective_lr_bounds": bounds,
    }


def decode_config(config, deserialize):
    """Undoes the JSON encoding of `settings_config` (pairs back to tuples).

    Args:
        config: the optimizer's config.
        deserialize: `serialized dict -> object`, the flavour's Keras
            deserialiser (with the caller's `custom_objects`).
    """
    config = dict(config)
    if config.get("weight_decays"):
        config["weight_decays"] = {k: tuple(v) for k, v in config["weight_decays"].items()}
    if config.get("effective_lr_bounds") is not None:
        config["effective_lr_bounds"] = tuple(
            deserialize(b) if isinstance(b, dict) else b
            for b in config["effective_lr_bounds"])
    return config


def warn_model_overrides(weight_decays):
    """keras-adamw 1.x: with `model=`, the decays come from the model's regularizers
    and a `weight_decays` argument is ignored (not checked), with a warning."""
    if weight_decays is None:
        return
    warnings.warn(
        f"`weight_decays` is ignored because `model` is given: the decays are read from "
        f"the model's regularizers (as in keras-adamw 1.x). Received: "
        f"weight_decays={weight_decays!r}. To set decays by hand, pass `weight_decays` "
        f"without `model` (`keras_adamw.get_weight_decays(model)` gives the model's).",
        UserWarning, stacklevel=5)


class SettingsAttributes:
    """The settings as read-only attributes (keras-adamw 1.x), and the methods that
    change them before build. An adapter provides `_variable_path(variable)` and
    `_rules_resolved()` (True once the per-variable rules exist)."""

    def _init_settings(self, model, zero_penalties, extras, regularizers,
                       **keras_adamw_args):
        """Validated `self._settings`; decays read from `model` first when given.

        Args:
            model: the `model=` argument, or None.
            zero_penalties: zero the model's regularizers after reading them.
            extras: the keyword extras `split_kwargs` separated.
            regularizers: the flavour's module with `get_weight_decays(model)`
                and `zero_model_penalties(model)`.
            **keras_adamw_args: the remaining keras-adamw arguments.
        """
        weight_decays = keras_adamw_args.pop("weight_decays")
        zero_penalties = check_bool("zero_penalties", zero_penalties)
        if model is not None:
            warn_model_overrides(weight_decays)
            weight_decays = regularizers.get_weight_decays(model)
        self.zero_penalties = zero_penalties
        self._settings = settings_from_extras(extras, weight_decays=weight_decays,
                                              **keras_adamw_args)
        # Zeroed only when the decays replace them: with total_iterations_wd <= 1 the
        # decays are off (warned), and the penalties stay in the loss, as in 1.x.
        if model is not None and zero_penalties and self._settings.weight_decays:
            regularizers.zero_model_penalties(model)
        self.weight_decay = self._settings.weight_decay

    def exclude_from_weight_decay(self, var_list=None, var_names=None):
        """Excludes variables from `weight_decay` (the Keras method, on variable paths).

        Args:
            var_list: variables to exclude.
            var_names: regexes searched in each variable's path, e.g. `["bias"]`.
        """
        self._check_not_built("exclude_from_weight_decay")
        self._settings = with_exclusions(
            self._settings, [self._variable_path(v) for v in var_list or ()], var_names)

    def apply_layerwise_lr_decay(self, var_name_dicts=None, var_dict=None):
        """Layer-wise learning-rate decay (ELECTRA; adam-lr-decay's method).

        A matching variable learns at `lr * (1 - decay_rate)` (0: unchanged, 1:
        frozen), times its `lr_multipliers` value; the longest matching pattern
        wins. Saved in `get_config` as `layerwise_lr_decay`.

        Args:
            var_name_dicts: `{pattern: decay_rate}`, regexes searched in variable
                paths, e.g. `keras_adamw.layerwise_lr_decay(0.9, 8)`.
            var_dict: the variables themselves with their decay rates, as
                `[(variable, rate), ...]` (Keras 3 variables are not hashable)
                or a dict keyed by variable (tf_keras) or path.
        """
        self._check_not_built("apply_layerwise_lr_decay")
        self._settings = with_layerwise_lr_decay(self._settings, var_name_dicts, var_dict,
                                                 self._variable_path)

    def effective_learning_rate(self, variable):
        """The per-element learning rate the last update applied to `variable`.

        ```
        AdamW:   eta lr_v sqrt(1 - b2^t) / (1 - b1^t) / (sqrt(v) + eps)   (vhat: amsgrad)
        NadamW:  eta lr_v / (sqrt(v / (1 - b2^t)) + eps)
        SGDW:    eta lr_v                                  (broadcast to the shape)
        ```
        with `t = iterations` (the last update), `eta lr` of that update (from
        `lr_t`) and the slots as they are now, clipped to `effective_lr_bounds`
        when set. Computed on demand from the slots; zeros before the first
        update.

        Args:
            variable: a variable this optimizer updates.

        Returns:
            A tensor of the variable's shape and dtype.

        Raises:
            ValueError: the optimizer is not built yet.
            KeyError: `variable` is not one this optimizer updates.
        """
        if not self._rules_resolved():
            raise ValueError("`effective_learning_rate()` needs a built optimizer: "
                             "apply at least one update first.")
        xp, dtype = self._math, variable.dtype
        rule = self._variable_rule(variable)
        iterations = xp.cast(self.iterations, "float32")
        step_size = xp.cast(self.lr_t, dtype) * rule.multiplier
        rate = self._effective_rate(variable, step_size, iterations)
        bounds = rules.bound_values(self.effective_lr_bounds, iterations - 1.0)
        if bounds is None:
            return rate
        bounds = tuple(None if b is None else xp.cast(b, dtype) for b in bounds)
        return xp.where(iterations > 0, rules.clip_rate(rate, bounds, xp), rate)

    def _check_not_built(self, method):
        if self._rules_resolved():
            raise ValueError(f"`{method}()` must be called before the optimizer is built "
                             f"(before the first step).")

    total_iterations = property(lambda self: self._settings.total_iterations)
    total_iterations_wd = property(lambda self: self._settings.total_iterations_wd)
    use_cosine_annealing = property(lambda self: self._settings.use_cosine_annealing)
    autorestart = property(lambda self: self._settings.autorestart)
    eta_min = property(lambda self: self._settings.eta_min)
    eta_max = property(lambda self: self._settings.eta_max)
    lr_multipliers = property(lambda self: dict(self._settings.lr_multipliers))
    weight_decays = property(lambda self: dict(self._settings.weight_decays))
    layerwise_lr_decay = property(lambda self: dict(self._settings.layerwise_lr_decay))
    effective_lr_bounds = property(lambda self: self._settings.effective_lr_bounds)
    init_verbose = property(lambda self: self._settings.init_verbose)
