"""The optimizer glue both flavours share: construction, settings, the step.

A keras-adamw optimizer is `Front, FlavourAdapter, framework optimizer`: the
front (`adapter.api`) holds the signature, docstring and own arguments; the
flavour adapter (`keras3.base`, `keras2.base`) subclasses `OptimizerAdapter`
and provides the hooks below; the framework optimizer does the rest.

Hooks of a flavour adapter:
    _math: the namespace `core` functions receive as `xp`.
    _FRAMEWORK_KWARGS: the framework optimizer's keyword arguments.
    _init_framework(learning_rate, name, kwargs, hyperparameters): calls the
        framework optimizer's constructor.
    _default_epsilon(): the framework's `epsilon()`.
    _regularizers: the flavour's module with `get_weight_decays(model)` and
        `zero_model_penalties(model)`.
    _variable_path(variable), _variable_rule(variable), _rules_resolved().
    _serialize, _deserialize(custom_objects): the framework's (de)serialisers.
    _schedule_class: the framework's `LearningRateSchedule`.
"""
from keras_adamw.core import matching, rules, schedule
from keras_adamw.core.checks import (
    check_bool,
    check_number,
    split_kwargs,
)
from keras_adamw.core.settings import (
    decode_config,
    settings_config,
    settings_from_extras,
    warn_model_overrides,
    with_exclusions,
    with_layerwise_lr_decay,
    with_lr_peak,
)
from keras_adamw.core.step import Step

# The keras-adamw arguments of every optimizer's signature, after its own.
KERAS_ADAMW_ARGS = ("total_iterations", "total_iterations_wd", "use_cosine_annealing",
                    "lr_multipliers", "weight_decays", "autorestart", "init_verbose",
                    "eta_min", "eta_max", "t_cur")


class OptimizerAdapter:
    """Settings as read-only attributes (keras-adamw 1.x), the methods that change
    them before build, construction, the per-step scalars and the schedule."""

    def _construct(self, arguments, **hyperparameters):
        """Builds the optimizer from its constructor's `locals()`.

        Args:
            arguments: the constructor's arguments (`learning_rate`, `name`,
                `kwargs`, `model`, `zero_penalties` and `KERAS_ADAMW_ARGS`).
            **hyperparameters: the optimizer's own arguments, checked.
        """
        learning_rate, extras, kwargs = split_kwargs(
            type(self), arguments["learning_rate"], dict(arguments["kwargs"]),
            self._FRAMEWORK_KWARGS)
        self._init_framework(learning_rate, arguments["name"], kwargs, hyperparameters)
        self._init_settings(arguments["model"], arguments["zero_penalties"], extras,
                            **{k: arguments[k] for k in KERAS_ADAMW_ARGS})
        self._settings = with_lr_peak(self._settings, learning_rate,
                                      schedule.peak_learning_rate)
        self._init_state()

    def _check_epsilon(self, epsilon):
        """`None` means the framework's default `epsilon()`."""
        if epsilon is None:
            return self._default_epsilon()
        return check_number("epsilon", epsilon, low=0)

    def _init_settings(self, model, zero_penalties, extras, **keras_adamw_args):
        """Validated `self._settings`; decays read from `model` first when given.

        Args:
            model: the `model=` argument, or None.
            zero_penalties: zero the model's regularizers after reading them.
            extras: the keyword extras `split_kwargs` separated.
            **keras_adamw_args: the remaining keras-adamw arguments.
        """
        weight_decays = keras_adamw_args.pop("weight_decays")
        zero_penalties = check_bool("zero_penalties", zero_penalties)
        if model is not None:
            warn_model_overrides(weight_decays)
            weight_decays = self._regularizers.get_weight_decays(model)
        self.zero_penalties = zero_penalties
        self._settings = settings_from_extras(extras, weight_decays=weight_decays,
                                              **keras_adamw_args)
        # Zeroed only when the decays replace them: with total_iterations_wd <= 1 the
        # decays are off (warned), and the penalties stay in the loss, as in 1.x.
        if model is not None and zero_penalties and self._settings.weight_decays:
            self._regularizers.zero_model_penalties(model)
        self.weight_decay = self._settings.weight_decay

    def _report_rules(self, name, paths, resolved):
        """`init_verbose`: the per-variable table, once, when anything is per variable."""
        s = self._settings
        if s.init_verbose and (s.lr_multipliers or s.weight_decays or s.layerwise_lr_decay):
            print(f"{name}: per-variable settings\n"
                  + matching.format_table(paths, resolved, s))

    # ---- per step ---------------------------------------------------------------

    def _make_step(self, scheduled_lr, iterations):
        """The `Step` of this update, float32, from the scheduled learning rate.

        Args:
            scheduled_lr: `learning_rate(iterations)`, float32.
            iterations: the updates applied so far, float32.
        """
        xp, lr = self._math, scheduled_lr
        if self._settings.decay:
            lr = lr * rules.inverse_time_factor(self._settings.decay, iterations)
        bias_correction, nadam = self._step_coefficients(lr, iterations + 1.0)
        eta = self._eta_value()
        lr_t = eta * (lr if bias_correction is None else lr * bias_correction)
        return Step(lr=lr, eta=eta, lr_t=lr_t, bias_correction=bias_correction, nadam=nadam,
                    bounds=rules.bound_values(self._settings.effective_lr_bounds,
                                              xp.cast(iterations, "float32")),
                    weight_decay=self._weight_decay_value(iterations))

    def _weight_decay_value(self, iterations):
        """`lambda(t)` of a scheduled `weight_decay` (float32), read as Keras reads
        `learning_rate`: a `LearningRateSchedule` of `iterations` (the updates
        before this one), another callable of nothing; None for a constant."""
        weight_decay = self._settings.weight_decay
        if not callable(weight_decay):
            return None
        if isinstance(weight_decay, self._schedule_class):
            return self._math.cast(weight_decay(iterations), "float32")
        return self._math.cast(weight_decay(), "float32")

    def _next_schedule(self, t_cur, xp=None):
        """`(t_cur, eta_t)` after one update; `eta_t` None without annealing.

        Args:
            t_cur: the counter before the update.
            xp: the namespace of `t_cur` (default: the optimizer's `_math`).
        """
        s, xp = self._settings, xp or self._math
        t_cur = schedule.next_t_cur(t_cur, s.total_iterations, s.autorestart, xp)
        if not s.use_cosine_annealing:
            return t_cur, None
        return t_cur, schedule.cosine_eta(xp.cast(t_cur, "float32"), s.total_iterations,
                                          s.eta_min, s.eta_max, xp)

    # ---- config -----------------------------------------------------------------

    def _keras_adamw_config(self):
        """The keras-adamw part of `get_config`: settings, own arguments."""
        own = {name: self._config_value(name) for name in self._OWN_CONFIG}
        return {**own, **settings_config(self._settings, self._serialize),
                "zero_penalties": self.zero_penalties}

    def _config_value(self, name):
        return getattr(self, name)

    @classmethod
    def _decoded_config(cls, config, custom_objects):
        """`config` with the JSON encoding of `_keras_adamw_config` undone."""
        return decode_config(config, cls._deserialize_function(custom_objects))

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
