"""The tf_keras (Keras 2) adapter: state, once-per-step scalars and schedule, paths.

A tf_keras legacy `OptimizerV2` applies one update as
`apply_gradients -> _prepare -> _distributed_apply` (once), which calls
`_resource_apply_dense`/`_resource_apply_sparse` per variable. So the per-step
scalars (`core.step.Step`) are computed in `_prepare` (once, float32), cast per
`(device, dtype)` (`_local_scalars`), and `t_cur`/`eta_t`/`lr_t` advance at the end of
`_distributed_apply`, after every variable update (control dependencies in graph
mode). The numbers come from `keras_adamw.core` (DESIGN.md section 4).
"""
import types
from typing import Any, NamedTuple

import tensorflow as tf  # type: ignore[import-untyped]

from keras_adamw.adapter.optimizer import OptimizerAdapter
from keras_adamw.core import matching, precision, rules
from keras_adamw.core.checks import check_float_variables
from keras_adamw.core.step import variable_scalars
from keras_adamw.keras2 import regularizers
from keras_adamw.keras2.framework import keras2, optimizer_v2
from keras_adamw.keras2.schedules import WarmUp
from keras_adamw.kernels import Hyper, Update, tf_fused, tf_paths

# The math namespace `xp` that `core` functions receive.
TF_MATH = types.SimpleNamespace(
    power=tf.pow, sqrt=tf.sqrt, cos=tf.cos, where=tf.where, sign=tf.sign, equal=tf.equal,
    expm1=tf.math.expm1, exp=tf.exp, log=tf.math.log, maximum=tf.maximum,
    minimum=tf.minimum, abs=tf.abs, cast=tf.cast)
_STEP = "keras_adamw_step"  # apply_state key of the float32 per-step scalars
WORDS = {"model": "tf_keras model", "variable": "variable name", "framework": "tf_keras",
         "framework_kwargs": "`clipnorm`, `clipvalue`,\n            `global_clipnorm`, "
         "`gradient_aggregator`, `gradient_transformers`",
         "epsilon": "tf_keras.backend.epsilon()"}
ATTRIBUTES = """
    Attributes:
        native_kernels: update by the single-pass native kernels
            (`keras_adamw.kernels.tf_native`; inside `jit_compile` the XLA custom
            calls, for every variable) where they run: a CPU variable of
            float32/float64. Default True.
        xla_min_size: otherwise, a variable that takes one pass (decayed,
            amsgrad, NadamW) with at least this many elements is updated in one
            XLA-compiled pass, compiled once per shape on first use; smaller ones,
            or all if `None`, by TensorFlow's ops after an in-place decay pass.
            Default 0 (SGDW: 2^17).
"""


class FusedInputs(NamedTuple):
    """TensorFlow's fused ops' inputs of this step (tf_keras's legacy optimizers'
    own arithmetic), float32, cast per dtype. None where the rule has none."""

    beta_1: Any = None
    beta_2: Any = None
    beta_1_power: Any = None
    beta_2_power: Any = None
    epsilon: Any = None
    momentum: Any = None


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


class Keras2Adapter(OptimizerAdapter):
    """Decoupled weight decay, warm restarts and lr multipliers for tf_keras.

    Placed after the front and before `OptimizerV2` in the bases. The optimizer
    implements `_create_slots`, `_slot_variables(var)`, `_fused_inputs(t)` (float32),
    `_apply_rule(grad, var, scalars, fused)` (the reference path: TensorFlow's
    fused ops, or composite ops with per-element bounds) and
    `_effective_rate(var, step_size, iterations)`.
    """

    _HAS_AGGREGATE_GRAD = True
    _FRAMEWORK_KWARGS = ("clipnorm", "clipvalue", "global_clipnorm", "gradient_aggregator",
                         "gradient_transformers")
    # Optimizer arguments kept as hyperparameters (`_set_hyper`, may be tensors).
    _HYPERS: tuple[str, ...] = ()
    _OWN_CONFIG: tuple[str, ...] = ()
    # Whether a fused TensorFlow op expresses the rule (`_apply_rule`).
    _FUSED_RULE = True
    # See the class docstrings' Attributes; changing either re-decides the paths.
    xla_min_size = 0
    native_kernels = True
    # Extra float32 state scalars of a subclass: ((name, initial value), ...).
    _EXTRA_STATE: tuple[tuple[str, float], ...] = ()
    _regularizers = regularizers
    _math = TF_MATH
    _variable_path = staticmethod(matching.variable_path)
    _serialize = staticmethod(keras2.utils.serialize_keras_object)
    _schedule_class = keras2.optimizers.schedules.LearningRateSchedule

    def _init_framework(self, learning_rate, name, kwargs, hyperparameters):
        optimizer_v2.OptimizerV2.__init__(self, name, **kwargs)
        self._set_hyper("learning_rate", learning_rate)
        for key, value in hyperparameters.items():
            if key in self._HYPERS:
                self._set_hyper(key, value)
            else:
                setattr(self, key, value)

    @staticmethod
    def _default_epsilon():
        return keras2.backend.epsilon()

    def _init_state(self):
        """The state variables are created with the slots (`_state_variables`)."""
        self._rules = {}  # optimizer_v2._var_key(variable) -> VariableRule
        self._rule_paths = {}  # same keys -> variable path, in creation order
        self._capabilities = {}  # (key, knobs) -> tf_paths.Capabilities
        self._state = None

    def _rules_resolved(self):
        return bool(self._rules)

    def _variable_rule(self, variable):
        key = optimizer_v2._var_key(variable)
        if key not in self._rules:
            raise KeyError(f"Variable {variable.name!r} is not updated by this optimizer "
                           f"(it has no slots); pass one of the variables it trains.")
        return self._rules[key]

    def _kernel_betas(self):
        """The betas as the fused ops and tf_keras's Adam/Nadam hold them (float32)."""
        return tf_paths.float32_betas(self.beta_1, self.beta_2)

    _schedule_betas = _kernel_betas

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
            with tf.init_scope(), self._distribution_strategy_scope():
                state = {name: self.add_weight(
                    name, shape=[], dtype=dtype, trainable=False,
                    initializer=keras2.initializers.Constant(value),
                    aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
                    for name, dtype, value in specs}
            self._weights.extend(state.values())
            self._state = state
        return self._state

    t_cur = property(lambda self: self._state_variables()["t_cur"])
    eta_t = property(lambda self: self._state_variables()["eta_t"])
    lr_t = property(lambda self: self._state_variables()["lr_t"])

    def _create_all_weights(self, var_list):
        # Before any slot exists: a refused variable leaves nothing half-built.
        check_float_variables([matching.variable_path(v) for v in var_list],
                              [v.dtype.base_dtype.name for v in var_list])
        self._state_variables()
        super()._create_all_weights(var_list)

    def _create_slots(self, var_list):
        """Resolves the rules of new variables once (the subclass created the slots)."""
        dtypes = [v.dtype.base_dtype.name for v in var_list]
        # The kernels compute `1 - beta` in the variable's dtype.
        precision.check_moment_decays({name: getattr(self, name) for name in
                                       ("beta_1", "beta_2") if hasattr(self, name)},
                                      sorted(set(dtypes)))
        new = [v for v in var_list if optimizer_v2._var_key(v) not in self._rules]
        if not new:
            return
        for variable in new:
            self._rule_paths[optimizer_v2._var_key(variable)] = matching.variable_path(variable)
        paths = list(self._rule_paths.values())
        resolved = matching.resolve_rules(paths, self._settings)
        self._rules = dict(zip(self._rule_paths, resolved))
        precision.warn_rounded_decays(
            [matching.variable_path(v) for v in new], [v.dtype.base_dtype.name for v in new],
            [self._rules[optimizer_v2._var_key(v)] for v in new], self._settings.eta_max,
            self._constant_learning_rate())
        self._report_rules(self._name, paths, resolved)
        for variable in new:  # theta_0 of `decay_to="init"`, the value at build
            if self._rules[optimizer_v2._var_key(variable)].decay_to_init:
                self.add_slot(variable, "anchor",
                              initializer=lambda shape, dtype, v=variable: tf.identity(v))

    def _constant_learning_rate(self):
        """The learning rate as a float; None for a schedule or a callable."""
        lr = self._hyper.get("learning_rate")
        if isinstance(lr, tf.Variable):
            with tf.init_scope():
                return float(keras2.backend.get_value(lr))
        return None if callable(lr) else float(lr)

    # ---- per-step scalars ------------------------------------------------------

    def _scheduled_lr(self, var_dtype):
        """`learning_rate(iterations)`."""
        lr = self._get_hyper("learning_rate", var_dtype)
        if isinstance(lr, keras2.optimizers.schedules.LearningRateSchedule):
            lr = tf.cast(lr(tf.cast(self.iterations, var_dtype)), var_dtype)
        return lr

    def _decayed_lr(self, var_dtype):
        """`learning_rate(iterations)` times the legacy inverse-time factor."""
        lr = self._scheduled_lr(var_dtype)
        if self._settings.decay:
            iterations = tf.cast(self.iterations, var_dtype)
            lr = lr * tf.cast(rules.inverse_time_factor(self._settings.decay, iterations),
                              var_dtype)
        return lr

    def _eta_value(self):
        return tf.identity(self.eta_t)

    def _prepare(self, var_list):
        """The `Step` once (float32), then cast once per `(device, dtype)`."""
        iterations = tf.cast(self.iterations, tf.float32)
        step = self._make_step(self._scheduled_lr(tf.float32), iterations)
        apply_state = {_STEP: (step, self._fused_inputs(iterations + 1.0),
                               {self._rules[optimizer_v2._var_key(v)] for v in var_list})}
        keys = set()
        for var in var_list:
            devices = var._devices if isinstance(var, tf.distribute.DistributedValues) \
                else [var.device]
            keys.update((device, var.dtype.base_dtype) for device in devices)
        for var_device, var_dtype in keys:
            with tf.device(var_device):
                apply_state[(var_device, var_dtype)] = self._local_scalars(
                    apply_state[_STEP], var_dtype)
        return apply_state

    def _local_scalars(self, prepared, var_dtype):
        """`(FusedInputs, {rule: VariableScalars}, kernels.Hyper)` in `var_dtype`."""
        step, fused, step_rules = prepared
        fused = FusedInputs(*(None if x is None else tf.cast(x, var_dtype) for x in fused))
        per_rule = {}
        for rule in step_rules:
            s = variable_scalars(step, rule, lambda x: tf.cast(x, var_dtype))
            if step.bias_correction is not None:  # folded in the dtype, as the kernels did
                s = s._replace(step_size=s.eta_lr * tf.cast(step.bias_correction, var_dtype))
            per_rule[rule] = self._bounded(s)
        return fused, per_rule, self._kernel_hyper(fused)

    def _bounded(self, scalars):
        """Hook: SGDW clips its scalar rate to the bounds here."""
        return scalars

    def _fallback_apply_state(self, var_device, var_dtype):
        raise RuntimeError("The keras-adamw optimizers compute their per-step scalars in "
                           "`_prepare`; apply gradients with `apply_gradients` or "
                           "`minimize`.")

    def _scalars(self, var, apply_state):
        """This variable's `VariableScalars`, the dtype's `FusedInputs` and `Hyper`."""
        fused, per_rule, hyper = apply_state[(var.device, var.dtype.base_dtype)]
        return per_rule[self._rules[optimizer_v2._var_key(var)]], fused, hyper

    # ---- updates ---------------------------------------------------------------

    def _resource_apply_dense(self, grad, var, apply_state=None):
        """One variable's update, decay from theta before it (DESIGN.md section 4).

        The path of `kernels.tf_paths` (a single pass, rule and decay together);
        else the rule's TensorFlow ops (`_apply_rule`: a fused op where one
        exists), after an in-place decay pass if there is a decay.
        """
        s, fused, hyper = self._scalars(var, apply_state)
        if self._rules[optimizer_v2._var_key(var)].decay_to_init:
            return self._apply_anchored(grad, var, s, fused)
        path = None if s.bounds is not None else tf_paths.path(
            self._var_capabilities(var), s.decayed)
        if path not in (None, "tf_fused"):
            slots = tuple(slot.handle for slot in self._slot_variables(var))
            update = Update(self._kind, var.handle, slots, grad, s, hyper)
            return tf_paths.apply(path, update)
        if not s.decayed:
            return self._apply_rule(grad, var, s, fused)
        with tf.control_dependencies([grad]):  # TF1 graphs: after the forward pass
            decay_op = tf_fused.decay_pass(var.handle, var.dtype.base_dtype, s.c_sign,
                                           s.c_linear, self._use_locking)
        with tf.control_dependencies([decay_op]):
            return self._apply_rule(grad, var, s, fused)

    def _apply_anchored(self, grad, var, s, fused):
        """`decay_to="init"`: the decay of `theta - theta_0` in TensorFlow ops, then
        the rule's update (exact: the update does not read theta)."""
        anchor = self.get_slot(var, "anchor")
        with tf.control_dependencies([grad]):  # TF1 graphs: after the forward pass
            decay = rules.decay_term(var.read_value() - anchor, s.c_sign, s.c_linear,
                                     TF_MATH)
            decay_op = var.assign_sub(decay, use_locking=self._use_locking)
        with tf.control_dependencies([decay_op]):
            return self._apply_rule(grad, var, s, fused)

    def _var_capabilities(self, var):
        """`tf_paths.Capabilities` of `var`, decided once (again if a knob changes)."""
        key = (optimizer_v2._var_key(var), self.native_kernels, self.xla_min_size)
        if key not in self._capabilities:
            size = var.shape.num_elements()
            compiled = self.xla_min_size is not None and size is not None \
                and size >= self.xla_min_size
            self._capabilities[key] = tf_paths.capabilities(
                var, self.native_kernels, self._FUSED_RULE, "always" if compiled else "never")
        return self._capabilities[key]

    def _kernel_hyper(self, fused):
        if self._kind == "sgdw":
            return Hyper(momentum=fused.momentum, nesterov=self.nesterov)
        return Hyper(*self._kernel_betas(), epsilon=self.epsilon)

    def _resource_apply_sparse_duplicate_indices(self, grad, handle, indices, **kwargs):
        """Sparse gradients give the dense numbers: rows summed, absent rows decay."""
        return self._resource_apply_sparse(grad, handle, indices, **kwargs)

    def _resource_apply_sparse(self, grad, var, indices, apply_state=None):
        s = self._scalars(var, apply_state)[0]
        if self._rows_only(s):  # repeated rows add up in the scatter, as in the sum
            return tf.raw_ops.ResourceScatterAdd(resource=var.handle, indices=indices,
                                                 updates=-s.eta_lr * grad)
        dense = tf.math.unsorted_segment_sum(grad, indices, tf.shape(var)[0])
        return self._resource_apply_dense(dense, var, apply_state=apply_state)

    def _rows_only(self, scalars):
        """Whether the update touches only a sparse gradient's rows (SGDW without
        momentum and decay; its `eta_lr` is then the whole step)."""
        return False

    # ---- once per step -----------------------------------------------------------

    def _distributed_apply(self, distribution, grads_and_vars, apply_state, name):
        """Every variable update and `iterations += 1`, then the schedule advance.

        The native updates (ops, or custom calls inside XLA) are emitted
        together, one per group (`kernels.tf_paths.batch`)."""
        from keras_adamw.kernels import tf_paths

        with tf_paths.batch() as emitted:
            step = super()._distributed_apply(distribution, grads_and_vars, apply_state, name)
        if emitted:
            step = tf.group(step, *emitted)
        lr_t = apply_state[_STEP][0].lr_t
        if tf.executing_eagerly():
            self._advance_schedule(lr_t)
            return step
        with tf.control_dependencies([step]):
            return tf.group(*self._advance_schedule(lr_t))

    def _advance_schedule(self, lr_t):
        """`t_cur` (restart rule), `eta_t` (cosine), `lr_t`; returns the assign ops."""
        t_cur, eta = self._next_schedule(self.t_cur.read_value())
        updates = [self.t_cur.assign(t_cur, read_value=False)]
        if eta is not None:
            updates.append(self.eta_t.assign(eta, read_value=False))
        updates.append(self.lr_t.assign(lr_t, read_value=False))
        return [u for u in updates if u is not None]

    # ---- config -------------------------------------------------------------------

    def get_config(self):
        return {**super().get_config(),
                "learning_rate": self._serialize_hyperparameter("learning_rate"),
                **self._keras_adamw_config()}

    def _config_value(self, name):
        if name in self._HYPERS:
            return self._serialize_hyperparameter(name)
        return getattr(self, name)

    @staticmethod
    def _deserialize_function(custom_objects):
        return lambda b: deserialize_callable(b, custom_objects)

    @classmethod
    def from_config(cls, config_, custom_objects=None):
        # h5 loading reads schedules by class name: make ours known by it.
        custom_objects = {"WarmUp": WarmUp, **(custom_objects or {})}
        config_ = cls._decoded_config(config_, custom_objects)
        return super().from_config(config_, custom_objects=custom_objects)
