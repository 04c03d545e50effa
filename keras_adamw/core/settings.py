"""Validated optimizer settings (a frozen dataclass) and their config round trip.

`make_settings` checks every keras-adamw argument once, at construction, and
returns a frozen `Settings`. keras-adamw 1.x behaviours that switch a feature
off are kept but warn.
"""
import dataclasses
import math
import re
import warnings
from collections.abc import Mapping
from typing import Any

from keras_adamw.core.checks import (
    argument_error,
    caller_stacklevel,
    check_bool,
    check_count,
    check_decay_coupling,
    check_decay_to,
    check_effective_lr_bounds,
    check_eta_range,
    check_layerwise_lr_decay,
    check_multipliers,
    check_number,
    check_patterns,
    check_t_cur,
    check_weight_decay,
    check_weight_decays,
)


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
    weight_decay: Any = None  # None, a float, or a schedule or callable
    exclude_from_weight_decay: tuple[str, ...] = ()
    decay: float = 0.0
    init_verbose: bool = True
    layerwise_lr_decay: Mapping[str, float] = dataclasses.field(default_factory=dict)
    effective_lr_bounds: tuple | None = None
    decay_coupling: str | None = None
    lr_peak: float | None = None
    decay_to: Any = "zero"  # "zero", "init", or {pattern: "zero" | "init"}

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


def make_settings(*, total_iterations=0, total_iterations_wd=None,
                  use_cosine_annealing=False, autorestart=None, eta_min=0, eta_max=1,
                  t_cur=0, lr_multipliers=None, weight_decays=None, weight_decay=None,
                  exclude_from_weight_decay=None, decay=0.0, init_verbose=True,
                  layerwise_lr_decay=None, effective_lr_bounds=None, decay_coupling=None,
                  lr_peak=None, decay_to="zero"):
    """Validates the keras-adamw arguments and returns the effective `Settings`.

    keras-adamw 1.x switched cosine annealing off when `total_iterations <= 1`
    and weight decays off when `total_iterations_wd <= 1`; that is kept, with a
    `UserWarning` that says what was switched off and which argument to pass.
    """
    total_iterations = check_count("total_iterations", total_iterations)
    if total_iterations_wd is None:
        total_iterations_wd = total_iterations
    total_iterations_wd = check_count("total_iterations_wd", total_iterations_wd)
    use_cosine_annealing, autorestart = _annealing(
        check_bool("use_cosine_annealing", use_cosine_annealing), autorestart,
        total_iterations)
    eta_min, eta_max = check_eta_range(eta_min, eta_max)
    weight_decays = _usable_weight_decays(check_weight_decays(weight_decays),
                                          total_iterations, total_iterations_wd)
    return Settings(
        total_iterations=total_iterations, total_iterations_wd=total_iterations_wd,
        use_cosine_annealing=use_cosine_annealing, autorestart=autorestart,
        eta_min=eta_min, eta_max=eta_max, t_cur=check_t_cur(t_cur),
        lr_multipliers=check_multipliers(lr_multipliers), weight_decays=weight_decays,
        weight_decay=check_weight_decay(weight_decay),
        exclude_from_weight_decay=check_patterns("exclude_from_weight_decay",
                                                 exclude_from_weight_decay),
        decay=check_number("decay", 0.0 if decay is None else decay, low=0),
        init_verbose=check_bool("init_verbose", init_verbose),
        layerwise_lr_decay=check_layerwise_lr_decay(layerwise_lr_decay),
        effective_lr_bounds=check_effective_lr_bounds(effective_lr_bounds),
        decay_coupling=check_decay_coupling(decay_coupling),
        lr_peak=None if lr_peak is None else check_number("lr_peak", lr_peak, low=0,
                                                          low_open=True),
        decay_to=check_decay_to(decay_to))


def with_lr_peak(settings, learning_rate, peak_of):
    """`settings` with `lr_peak` resolved where the coupling needs it.

    `lr_ratio` and `corrected` divide by `lr_peak`: given, else `peak_of(
    learning_rate)` (the float given, a schedule's `initial_learning_rate`,
    `WarmUp`'s peak), else a `ValueError` that names `lr_peak`.
    """
    if settings.decay_coupling not in ("lr_ratio", "corrected") or settings.lr_peak:
        return settings
    peak = peak_of(learning_rate)
    if peak is None or not peak > 0:
        raise argument_error(
            "lr_peak", None, "a number > 0 with "
            f"decay_coupling={settings.decay_coupling!r}",
            fix=f"Its default is the learning rate's peak, and learning_rate="
                f"{learning_rate!r} has none that keras-adamw can read: pass lr_peak=<the "
                f"largest learning rate of the schedule>")
    return dataclasses.replace(settings, lr_peak=float(peak))


def _annealing(use_cosine_annealing, autorestart, total_iterations):
    """`(use_cosine_annealing, autorestart)` in effect: autorestart defaults to
    annealing; annealing without a cycle (`total_iterations <= 1`) is off, warned."""
    if autorestart is not None:
        autorestart = check_bool("autorestart", autorestart)
        if autorestart and not use_cosine_annealing:
            raise argument_error(
                "autorestart", autorestart, "False (or None) without cosine annealing",
                fix="Pass use_cosine_annealing=True with total_iterations > 1 to restart "
                    "the cosine schedule")
    if use_cosine_annealing and total_iterations <= 1:
        warnings.warn(
            f"use_cosine_annealing=True needs total_iterations > 1 (the updates in one "
            f"cycle); received total_iterations={total_iterations}, so cosine annealing "
            f"and autorestart are switched OFF. Pass total_iterations=<updates per cycle>.",
            UserWarning, stacklevel=caller_stacklevel())
        return False, False
    return use_cosine_annealing, use_cosine_annealing if autorestart is None else autorestart


def _usable_weight_decays(weight_decays, total_iterations, total_iterations_wd):
    """`weight_decays`, or `{}` (warned) where their normalisation needs
    `total_iterations_wd > 1` and does not have it."""
    if any(l1 or l2 for l1, l2 in weight_decays.values()) and total_iterations_wd <= 1:
        warnings.warn(
            f"weight_decays are normalised by sqrt(1/total_iterations_wd) and need "
            f"total_iterations_wd > 1; received total_iterations={total_iterations}, "
            f"total_iterations_wd={total_iterations_wd}, so weight_decays are switched "
            f"OFF (a `model=`'s regularizers stay in the loss). Pass "
            f"total_iterations=<updates per cycle> (or total_iterations_wd).",
            UserWarning, stacklevel=caller_stacklevel())
        return {}
    return weight_decays


def settings_from_extras(extras, **keras_adamw_args):
    """`make_settings` with the keyword extras that `split_kwargs` separated."""
    return make_settings(**{k: v for k, v in extras.items() if k != "lr"},
                         **keras_adamw_args)


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
        "weight_decay": serialize(settings.weight_decay) if callable(settings.weight_decay)
        else settings.weight_decay,
        "decay_coupling": settings.decay_coupling, "lr_peak": settings.lr_peak,
        "decay_to": settings.decay_to if isinstance(settings.decay_to, str)
        else dict(settings.decay_to),
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
    if isinstance(config.get("weight_decay"), dict):
        config["weight_decay"] = deserialize(config["weight_decay"])
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
        UserWarning, stacklevel=caller_stacklevel())
