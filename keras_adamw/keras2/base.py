"""Glue shared by the tf_keras (Keras 2) optimizers: arguments, state, step advance.

A tf_keras legacy `OptimizerV2` applies one update as
`apply_gradients -> _prepare -> _distributed_apply` (once), which calls
`_resource_apply_dense`/`_resource_apply_sparse` per variable. So the per-step
scalars are computed in `_prepare` (once, float32), cast per `(device, dtype)` in
`_prepare_local`, and `t_cur`/`eta_t`/`lr_t` advance at the end of
`_distributed_apply`, after every variable update (control dependencies in graph
mode). The numbers come from `keras_adamw.core` (DESIGN.md section 4).
"""
import types

import tensorflow as tf  # type: ignore[import-untyped]

from keras_adamw.kernels import tf_native as native, tf_compiled as tf_kernels
from keras_adamw.core import config, matching, precision, rules, schedule
from keras_adamw.keras2 import regularizers
from keras_adamw.keras2.framework import keras2, optimizer_v2
from keras_adamw.keras2.schedules import WarmUp

# The math namespace `xp` that `core` functions receive.
TF_MATH = types.SimpleNamespace(
    power=tf.pow, sqrt=tf.sqrt, cos=tf.cos, where=tf.where, sign=tf.sign, equal=tf.equal,
    expm1=tf.math.expm1, exp=tf.exp, log=tf.math.log, maximum=tf.maximum,
    minimum=tf.minimum, abs=tf.abs, cast=tf.cast)
# Arguments of `OptimizerV2` passed through unchanged.
KERAS_KWARGS = ("clipnorm", "clipvalue", "global_clipnorm", "gradient_aggregator",
                "gradient_transformers")
_STEP = "keras_adamw_step"  # apply_state key of the float32 per-step scalars


def variable_path(variable):
    """The tf_keras variable name without `:0` (`"dense_1/kernel"`)."""
    return matching.normalize_name(variable.name)


def check_epsilon(epsilon):
    """`None` means the tf_keras default `tf_keras.backend.epsilon()`."""
    if epsilon is None:
        return keras2.backend.epsilon()
    return config.check_number("epsilon", epsilon, low=0)


def _registered_without_package(name):
    """The one registered object named `package>name`: keras 2.x (TensorFlow <= 2.15)
    writes a registered function's name without its package."""
    found = [obj for key, obj in keras2.utils.get_custom_objects().items()
             if key.rpartition(">")[2] == name]
    return found[0] if len(found) == 1 else None


def deserialize_callable(serialized, custom_objects=None):
    """A callable `effective_lr_bounds` side back from its `get_config` dict.

    A function's dict is looked up by its registered name directly: h5 loading
    puts tf_keras in its legacy deserialiser, which cannot read the dict
    `tf_keras.utils.serialize_keras_object` writes for a function.
    """
    if serialized.get("class_name") != "function":
        return keras2.utils.deserialize_keras_object(serialized, custom_objects=custom_objects)
    function = (keras2.utils.get_registered_object(serialized["config"], custom_objects)
                or _registered_without_package(serialized["config"]))
    if function is None:
        raise ValueError(f"Cannot restore the `effective_lr_bounds` function "
                         f"{serialized['config']!r}: register it with "
                         f"`tf_keras.utils.register_keras_serializable()` or pass it in "
                         f"`custom_objects`.")
    return function


class KerasAdamWMixin(config.SettingsAttributes):
    """Decoupled weight decay, warm restarts and lr multipliers for tf_keras.

    Placed before `OptimizerV2` in the bases. Subclasses implement
    `_step_coefficients(lr, t)` (per-step float32 scalars, once per step),
    `_apply_compiled(grad, var, scalars, decay, kernels)` (one variable's update
    and decay in one call of `keras_adamw.native` or `keras_adamw.tf_kernels`), `_apply_rule(grad, var, scalars)`
    (the update without decay, TensorFlow ops, clipped to `scalars["bounds"]`
    when not None) and `_effective_rate(var, step_size, iterations)`, from
    those scalars cast to the variable's dtype; `scalars["lr"]` is `eta * lr_v`.
    """

    _HAS_AGGREGATE_GRAD = True
    # Whether a fused TensorFlow kernel (`_apply_rule`) expresses the rule.
    _FUSED_RULE = True
    # A decayed variable (any variable, for a rule without a fused kernel) of at
    # least this many elements updates in one XLA-compiled pass; smaller ones,
    # or all with None, by TensorFlow ops (decay first, as its own pass). A
    # compiled call costs more per call than a fused op, and less per element.
    xla_min_size = 0
    # Use the native kernels where they can run (CPU, float32/64; TensorFlow ops
    # outside XLA, custom calls inside it); they take precedence over the XLA
    # kernels and `xla_min_size`.
    native_kernels = True
    # Extra float32 state scalars of a subclass: ((name, initial value), ...).
    _EXTRA_STATE: tuple[tuple[str, float], ...] = ()

    def _init_keras_adamw(self, model, zero_penalties, extras, **keras_adamw_args):
        """Creates the settings; the state variables are created with the slots."""
        self._init_settings(model, zero_penalties, extras, regularizers,
                            **keras_adamw_args)
        self._rules = {}  # optimizer_v2._var_key(variable) -> VariableRule
        self._rule_paths = {}  # same keys -> variable path, in creation order
        self._state = None

    _variable_path = staticmethod(variable_path)

    def _rules_resolved(self):
        return bool(self._rules)

    _math = TF_MATH

    def _variable_rule(self, variable):
        key = optimizer_v2._var_key(variable)
        if key not in self._rules:
            raise KeyError(f"Variable {variable.name!r} is not updated by this optimizer "
                           f"(it has no slots); pass one of the variables it trains.")
        return self._rules[key]

    # ---- state variables -------------------------------------------------------

    def _state_variables(self):
        """`t_cur`, `eta_t`, `lr_t` (and subclass extras), created once, after `iter`.

        They are optimizer weights (h5 `optimizer_weights`, `get_weights`) and
        checkpoint dependencies (`tf.train.Checkpoint`), always in this order.
        """
        if self._state is None:
            _ = self.iterations
            s = self._settings
            specs = [("t_cur", tf.int64, s.t_cur), ("eta_t", tf.float32, s.initial_eta()),
                     ("lr_t", tf.float32, 0.0)]
            specs += [(name, tf.float32, value) for name, value in self._EXTRA_STATE]
            state = {}
            with tf.init_scope(), self._distribution_strategy_scope():
                for name, dtype, value in specs:
                    state[name] = self.add_weight(
                        name, shape=[], dtype=dtype, trainable=False,
                        initializer=keras2.initializers.Constant(value),
                        aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
            self._weights.extend(state.values())
            self._state = state
        return self._state

    t_cur = property(lambda self: self._state_variables()["t_cur"])
    eta_t = property(lambda self: self._state_variables()["eta_t"])
    lr_t = property(lambda self: self._state_variables()["lr_t"])

    def _create_all_weights(self, var_list):
        # Before any slot exists: a refused variable leaves nothing half-built.
        config.check_float_variables([variable_path(v) for v in var_list],
                                     [v.dtype.base_dtype.name for v in var_list])
        self._state_variables()
        super()._create_all_weights(var_list)

    def _create_slots(self, var_list):
        """Creates the slots, then resolves the rules of new variables once."""
        dtypes = [v.dtype.base_dtype.name for v in var_list]
        # The kernels compute `1 - beta` in the variable's dtype.
        precision.check_moment_decays({name: getattr(self, name) for name in
                                       ("beta_1", "beta_2") if hasattr(self, name)},
                                      sorted(set(dtypes)))
        super()._create_slots(var_list)
        new = [v for v in var_list if optimizer_v2._var_key(v) not in self._rules]
        if not new:
            return
        for variable in new:
            self._rule_paths[optimizer_v2._var_key(variable)] = variable_path(variable)
        paths = list(self._rule_paths.values())
        resolved = matching.resolve_rules(paths, self._settings)
        self._rules = dict(zip(self._rule_paths, resolved))
        precision.warn_rounded_decays(
            [variable_path(v) for v in new], [v.dtype.base_dtype.name for v in new],
            [self._rules[optimizer_v2._var_key(v)] for v in new], self._settings.eta_max,
            self._constant_learning_rate())
        configured = self._settings.lr_multipliers or self._settings.weight_decays
        if self._settings.init_verbose and configured:
            print(f"{self._name}: per-variable settings\n"
                  + matching.format_table(paths, resolved, self._settings))

    def _constant_learning_rate(self):
        """The learning rate as a float; None for a schedule or a callable."""
        lr = self._hyper.get("learning_rate")
        if isinstance(lr, tf.Variable):
            with tf.init_scope():
                return float(keras2.backend.get_value(lr))
        return None if callable(lr) else float(lr)

    # ---- per-step scalars ------------------------------------------------------

    def _decayed_lr(self, var_dtype):
        """`learning_rate(iterations)` times the legacy inverse-time factor."""
        lr = self._get_hyper("learning_rate", var_dtype)
        iterations = tf.cast(self.iterations, var_dtype)
        if isinstance(lr, keras2.optimizers.schedules.LearningRateSchedule):
            lr = tf.cast(lr(iterations), var_dtype)
        if self._settings.decay:
            lr = lr * tf.cast(rules.inverse_time_factor(self._settings.decay, iterations),
                              var_dtype)
        return lr

    def _step_scalars(self, var_list):
        """Float32 scalars of this step: subclass coefficients, lr, eta, lr_t, rules."""
        lr = self._decayed_lr(tf.float32)
        step = self._step_coefficients(lr, tf.cast(self.iterations + 1, tf.float32))
        step["eta"] = tf.identity(self.eta_t)
        step["lr_t"] = step["eta"] * step.pop("lr_t_factor")
        step["lr"] = lr
        step["rules"] = {self._rules[optimizer_v2._var_key(v)] for v in var_list}
        step["bounds"] = rules.bound_values(self._settings.effective_lr_bounds,
                                            tf.cast(self.iterations, tf.float32))
        return step

    def _prepare(self, var_list):
        """Per-step scalars once, then cast once per `(device, dtype)`."""
        apply_state = {_STEP: self._step_scalars(var_list)}
        keys = set()
        for var in var_list:
            devices = var._devices if isinstance(var, tf.distribute.DistributedValues) \
                else [var.device]
            keys.update((device, var.dtype.base_dtype) for device in devices)
        for var_device, var_dtype in keys:
            apply_state[(var_device, var_dtype)] = {}
            with tf.device(var_device):
                self._prepare_local(var_device, var_dtype, apply_state)
        return apply_state

    def _prepare_local(self, var_device, var_dtype, apply_state):
        """The step scalars in `var_dtype`, and per rule `eta lr_v` and decay terms."""
        step = apply_state[_STEP]
        local = {k: tf.cast(v, var_dtype) for k, v in step.items()
                 if k not in ("rules", "lr_t", "lr", "eta", "bounds")}
        local["bounds"] = None if step["bounds"] is None else tuple(
            None if b is None else tf.cast(b, var_dtype) for b in step["bounds"])
        eta_lr = step["eta"] * step["lr"]
        local["rules"] = {}
        for rule in step["rules"]:
            scaled = eta_lr * rule.multiplier if rule.multiplier != 1.0 else eta_lr
            c_sign, c_linear = rules.decay_coefficients(rule, step["eta"],
                                                  step["lr"] * rule.multiplier)
            local["rules"][rule] = {
                "lr": tf.cast(scaled, var_dtype),
                "decay_sign": None if c_sign is None else tf.cast(c_sign, var_dtype),
                "decay_linear": None if c_linear is None else tf.cast(c_linear, var_dtype)}
        apply_state[(var_device, var_dtype)] = local

    def _fallback_apply_state(self, var_device, var_dtype):
        raise RuntimeError("The keras-adamw optimizers compute their per-step scalars in "
                           "`_prepare`; apply gradients with `apply_gradients` or "
                           "`minimize`.")

    def _scalars(self, var, apply_state):
        """This variable's step scalars: the dtype's, with its rule's `lr` and decays."""
        local = apply_state[(var.device, var.dtype.base_dtype)]
        rule = self._rules[optimizer_v2._var_key(var)]
        return {**local, **local["rules"][rule]}

    # ---- updates ---------------------------------------------------------------

    def _resource_apply_dense(self, grad, var, apply_state=None):
        """One variable's update, decay from theta before it (DESIGN.md section 4).

        With a decay (or for a rule without a fused TensorFlow kernel), one
        single-pass kernel reads theta, the slots and the gradient and writes all
        of them (`_single_pass_kernels`). Otherwise (and with per-element
        `effective_lr_bounds`) the rule's TensorFlow ops (`_apply_rule`: a fused
        kernel where one exists), after an in-place decay pass if there is a
        decay.
        """
        scalars = self._scalars(var, apply_state)
        decay = (scalars["decay_sign"], scalars["decay_linear"])
        has_decay = decay[0] is not None or decay[1] is not None
        if scalars["bounds"] is None:
            kernels = self._single_pass_kernels(var, has_decay)
            if kernels is not None:
                return self._apply_compiled(grad, var, scalars, decay, kernels)
        if not has_decay:
            return self._apply_rule(grad, var, scalars)
        with tf.control_dependencies([grad]):  # TF1 graphs: after the forward pass
            decay_op = self._apply_decay(var, decay)
        with tf.control_dependencies([decay_op]):
            return self._apply_rule(grad, var, scalars)

    def _single_pass_kernels(self, var, has_decay):
        """The kernels of one pass for `var`, or None for `_apply_rule`.

        Inside XLA, the native custom calls for every variable (a fused op is
        one loop per updated tensor there). Outside it, with a decay or a rule
        without a fused op: the native ops, else `keras_adamw.tf_kernels` from
        `xla_min_size` elements. `native_kernels=False` keeps off the native
        kernels.
        """
        kernels = native.kernels(var) if self.native_kernels else None
        if kernels is native.xla_calls:
            return kernels
        if not has_decay and self._FUSED_RULE:
            return None
        if kernels is not None:
            return kernels
        return tf_kernels if self._compiled(var) else None

    def _compiled(self, var):
        """Whether `var` updates by an XLA-compiled kernel (`xla_min_size`)."""
        size = var.shape.num_elements()
        return self.xla_min_size is not None and size is not None \
            and size >= self.xla_min_size

    def _apply_decay(self, var, decay):
        """`theta -= c_sign sign(theta) + c_linear theta` in place.

        The fallback of `_resource_apply_dense`: the update of every rule depends
        on the gradient and the slots only, so applying the decay first is
        `theta + delta - decay(theta)` exactly.
        """
        c_sign, c_linear = decay
        theta = var.read_value()
        if c_sign is None:
            delta, alpha = theta, c_linear
        else:
            delta = rules.decay_term(theta, c_sign, c_linear, TF_MATH)
            alpha = tf.ones([], var.dtype.base_dtype)
        return tf.raw_ops.ResourceApplyGradientDescent(
            var=var.handle, alpha=alpha, delta=delta, use_locking=self._use_locking)

    def _resource_apply_sparse_duplicate_indices(self, grad, handle, indices, **kwargs):
        """Sparse gradients give the dense numbers: rows summed, absent rows decay."""
        return self._resource_apply_sparse(grad, handle, indices, **kwargs)

    def _resource_apply_sparse(self, grad, var, indices, apply_state=None):
        dense = tf.math.unsorted_segment_sum(grad, indices, tf.shape(var)[0])
        return self._resource_apply_dense(dense, var, apply_state=apply_state)

    # ---- once per step -----------------------------------------------------------

    def _distributed_apply(self, distribution, grads_and_vars, apply_state, name):
        """Every variable update and `iterations += 1`, then the schedule advance.

        Inside XLA, the native custom calls of the updates are emitted together,
        one per group (`native.xla_calls.batch`)."""
        with native.xla_calls.batch() as emitted:
            step = super()._distributed_apply(distribution, grads_and_vars, apply_state, name)
        if emitted:
            step = tf.group(step, *emitted)
        if tf.executing_eagerly():
            self._advance_schedule(apply_state[_STEP]["lr_t"])
            return step
        with tf.control_dependencies([step]):
            return tf.group(*self._advance_schedule(apply_state[_STEP]["lr_t"]))

    def _advance_schedule(self, lr_t):
        """`t_cur` (restart rule), `eta_t` (cosine), `lr_t`; returns the assign ops."""
        s = self._settings
        t_cur = schedule.next_t_cur(self.t_cur.read_value(),
                                    s.total_iterations, s.autorestart, TF_MATH)
        updates = [self.t_cur.assign(t_cur, read_value=False)]
        if s.use_cosine_annealing:
            eta = schedule.cosine_eta(tf.cast(t_cur, tf.float32), s.total_iterations,
                                      s.eta_min, s.eta_max, TF_MATH)
            updates.append(self.eta_t.assign(eta, read_value=False))
        updates.append(self.lr_t.assign(lr_t, read_value=False))
        return [u for u in updates if u is not None]

    # ---- config -------------------------------------------------------------------

    def get_config(self):
        return {**super().get_config(),
                "learning_rate": self._serialize_hyperparameter("learning_rate"),
                **config.settings_config(self._settings, keras2.utils.serialize_keras_object),
                "zero_penalties": self.zero_penalties}

    @classmethod
    def from_config(cls, config_, custom_objects=None):
        # h5 loading reads schedules by class name: make ours known by it.
        custom_objects = {"WarmUp": WarmUp, **(custom_objects or {})}
        config_ = config.decode_config(config_, lambda b: deserialize_callable(b, custom_objects))
        return super().from_config(config_, custom_objects=custom_objects)
