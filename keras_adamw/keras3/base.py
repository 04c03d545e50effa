"""The Keras 3 adapter: state, once-per-step scalars and schedule, kernel dispatch.

Every Keras 3 optimizer applies one update as
`apply -> _backend_apply_gradients -> _backend_update_step -> update_step` (per
variable). `_backend_update_step` runs exactly once per applied update (also
under `gradient_accumulation_steps`, jit and JAX's stateless apply), so the
per-step scalars (`core.step.Step`) are computed there, before the variables,
and `t_cur`/`eta_t`/`lr_t` advance there, after them.
"""
import keras  # type: ignore[import-untyped]
import numpy as np
from keras import ops  # type: ignore[import-untyped]

from keras_adamw.adapter.optimizer import OptimizerAdapter
from keras_adamw.core import matching, precision, rules, schedule
from keras_adamw.core.checks import check_float_variables
from keras_adamw.core.step import variable_scalars
from keras_adamw.keras3 import regularizers
from keras_adamw.kernels import Hyper, Update
from keras_adamw.kernels import keras3 as kernels

WORDS = {"model": "Keras 3 model", "variable": "variable path", "framework": "Keras 3",
         "framework_kwargs": "`clipnorm`, `clipvalue`,\n            `global_clipnorm`, "
         "`use_ema`, `ema_momentum`, `ema_overwrite_frequency`,\n            "
         "`loss_scale_factor`, `gradient_accumulation_steps`",
         "epsilon": "keras.config.epsilon()"}
ATTRIBUTES = """
    Attributes:
        native_kernels: take the fast kernel paths where they run (see
            `keras_adamw.kernels.PATHS`): on TensorFlow the native single-pass
            ops (CPU float32/float64; XLA custom calls inside `jit_compile`),
            on JAX (CPU) the custom calls for variables of at least 2^16
            elements. Default True; False takes the XLA-compiled pass (TensorFlow
            AdamW, NadamW; SGDW: the fused op after a decay pass outside XLA) and
            Keras ops on JAX.
"""


class Keras3Adapter(OptimizerAdapter):
    """Decoupled weight decay, warm restarts and lr multipliers for Keras 3.

    Placed after the front and before a Keras optimizer in the bases. The
    optimizer implements `_slot_variables(index)` and `update_step` (the reference path
    plus one `_kernel_update` call).
    """

    _FRAMEWORK_KWARGS = ("clipnorm", "clipvalue", "global_clipnorm", "use_ema",
                         "ema_momentum", "ema_overwrite_frequency", "loss_scale_factor",
                         "gradient_accumulation_steps")
    # The optimizer's own arguments the Keras base optimizer takes, and those it
    # does not (set as attributes, written by `get_config`).
    _FRAMEWORK_HYPERS: tuple[str, ...] = ()
    _OWN_CONFIG: tuple[str, ...] = ()
    _regularizers = regularizers
    _math = ops
    _variable_path = staticmethod(matching.variable_path)
    _serialize = staticmethod(keras.saving.serialize_keras_object)
    _schedule_class = keras.optimizers.schedules.LearningRateSchedule

    def _init_framework(self, learning_rate, name, kwargs, hyperparameters):
        framework = {k: v for k, v in hyperparameters.items() if k in self._FRAMEWORK_HYPERS}
        super(OptimizerAdapter, self).__init__(learning_rate=learning_rate, name=name,
                                               **framework, **kwargs)
        for key in hyperparameters.keys() - framework.keys():
            setattr(self, key, hyperparameters[key])

    @staticmethod
    def _default_epsilon():
        return keras.config.epsilon()

    def _init_state(self):
        """`t_cur`, `eta_t`, `lr_t` variables; rules and kernel paths after build."""
        self._rules = ()
        self._anchors = []
        self._kernel_paths = {}
        self._native_kernels = True
        with keras.name_scope(self.name, caller=self):
            self.t_cur = self._add_scalar("t_cur", self._settings.t_cur, "int")
            self.eta_t = self._add_scalar("eta_t", self._settings.initial_eta(), "float32")
            self.lr_t = self._add_scalar("lr_t", 0.0, "float32")

    def _add_scalar(self, name, value, dtype):
        return self.add_variable(shape=(), initializer=keras.initializers.Constant(value),
                                 dtype=dtype, aggregation="only_first_replica", name=name)

    @property
    def native_kernels(self):
        """Whether the fast kernel paths are taken where they run (see the class)."""
        return self._native_kernels

    @native_kernels.setter
    def native_kernels(self, value):
        self._native_kernels = bool(value)
        self._kernel_paths = {}  # chosen again, at the next update of each variable

    def _rules_resolved(self):
        return self.built

    def build(self, variables):
        """Creates the slots, then resolves per-variable rules once, by path."""
        if self.built:
            return
        paths = [matching.variable_path(v) for v in variables]
        dtypes = [keras.backend.standardize_dtype(v.dtype) for v in variables]
        check_float_variables(paths, dtypes)
        super().build(variables)
        self._rules = matching.resolve_rules(paths, self._settings)
        self._anchors = [self._anchor(v) if rule.decay_to_init else None
                         for v, rule in zip(variables, self._rules)]
        precision.warn_rounded_decays(paths, dtypes, self._rules, self._settings.eta_max,
                                      self._constant_learning_rate())
        self._report_rules(self.name, paths, self._rules)

    def _anchor(self, variable):
        """`theta_0` of `decay_to="init"`: the variable's value at build, kept (and
        saved) as an optimizer variable. Copied eagerly: on TensorFlow an optimizer
        may be built inside the first traced step, where an `assign` would run at
        every step."""
        anchor = self.add_variable_from_reference(variable, name="anchor")
        kernels.eager_copy(anchor, variable)
        return anchor

    def _constant_learning_rate(self):
        """The learning rate as a float; None for a schedule or a callable."""
        if not isinstance(self._learning_rate, keras.Variable):
            return None
        return kernels.eager_float(self._learning_rate)

    def _variable_rule(self, variable):
        return self._rules[self._get_variable_index(variable)]

    def _apply_weight_decay(self, variables):
        """Decay is part of our update (`core.rules.decay_term`), not Keras's."""

    # ---- once per step -------------------------------------------------------------

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        iterations = ops.cast(self.iterations, "float32")
        self._step = self._make_step(ops.cast(learning_rate, "float32"), iterations)
        self._scalars_cache = {}
        self._step_hyper = self._kernel_hyper()  # what every kernel call of the step takes
        grads, trainable_variables = self._update_sparse_rows(grads, trainable_variables)
        host_step = kernels.run_step(self, grads, trainable_variables,
                                     lambda: self._keras_update_loop(
                                         grads, trainable_variables, learning_rate))
        lr_t = self._step.lr_t if host_step is None else host_step.lr_t
        self._advance_schedule(lr_t, on_host=host_step is not None)

    def _update_model_variables_moving_average(self, trainable_variables):
        """`use_ema`: the average moves once per applied update.

        ```
        average = m average + (1 - m) theta     m = ema_momentum; 0 at the first update
        ```

        Keras moves it at every call; under `gradient_accumulation_steps = k`, k - 1
        of the k calls apply nothing, so its momentum would be `m**k`. Here the
        calls that apply nothing leave it alone, except before the first applied
        update, where it holds the variables (Keras's first call).
        """
        steps = self.gradient_accumulation_steps
        if not steps:
            super()._update_model_variables_moving_average(trainable_variables)
            return
        calls = ops.convert_to_tensor(self._iterations)  # `iterations` counts updates
        first_cycle = ops.less(calls, steps)  # up to the first applied update
        moves = ops.logical_or(ops.equal((calls + 1) % steps, 0), first_cycle)
        for variable, average in zip(trainable_variables,
                                     self._model_variables_moving_average):
            if average is None:
                continue
            momentum = ops.where(first_cycle, 0.0, self.ema_momentum)
            momentum = ops.cast(momentum, variable.dtype)
            value = ops.convert_to_tensor(average)
            moved = momentum * value + (1 - momentum) * ops.convert_to_tensor(variable)
            average.assign(ops.where(moves, moved, value))

    def _keras_update_loop(self, grads, trainable_variables, learning_rate):
        super()._backend_update_step(grads, trainable_variables, learning_rate)

    def _eta_value(self):
        return ops.cast(self.eta_t, "float32")

    def _kernel_betas(self):
        return kernels.adam_betas(self.beta_1, self.beta_2)

    def _advance_schedule(self, lr_t, on_host=False):
        """`t_cur`, `eta_t`, `lr_t` after the update. `on_host`: in Python numbers,
        where the step's scalars are on the host already (torch's eager path), a
        few Keras ops less per step."""
        if on_host:
            t_cur, xp = int(kernels.eager_float(self.t_cur)), schedule.HostMath
            write = kernels.set_scalar
        else:
            t_cur, xp, write = ops.convert_to_tensor(self.t_cur), None, self.assign
        t_cur, eta = self._next_schedule(t_cur, xp)
        write(self.t_cur, t_cur)
        if eta is not None:
            write(self.eta_t, eta)
        write(self.lr_t, lr_t)

    # ---- per variable ----------------------------------------------------------------

    def _variable_scalars(self, variable):
        """The variable's `VariableScalars` and its index."""
        index = self._get_variable_index(variable)
        key = (self._rules[index], str(variable.dtype))
        if key not in self._scalars_cache:  # once per step per (rule, dtype)
            self._scalars_cache[key] = variable_scalars(
                self._step, key[0], lambda x: ops.cast(x, variable.dtype))
        return self._scalars_cache[key], index

    def _variable_context(self, gradient, variable):
        """Dense gradient, the variable's `VariableScalars` and its index."""
        scalars, index = self._variable_scalars(variable)
        return kernels.dense_gradient(gradient, variable.dtype), scalars, index

    def _rows_possible(self):
        """Whether any variable's update can touch only a sparse gradient's rows."""
        return False

    def _rows_only(self, variable):
        """Whether the update of `variable` touches only a sparse gradient's rows
        (SGDW without momentum and decay, which also gives `_sgd_scalars`)."""
        return False

    def _update_sparse_rows(self, grads, variables):
        """Applies the sparse gradients whose update touches only their rows (plain
        SGD, no decay: `_rows_only`) to those rows, as Keras's SGD does; returns the
        other pairs, for the step's kernels."""
        if not self._rows_possible() or not any(kernels.is_sparse(g) for g in grads):
            return grads, variables  # the common step: no pass over the pairs
        rest = []
        for grad, variable in zip(grads, variables):
            if kernels.is_sparse(grad) and self._rows_only(variable):
                kernels.subtract_sparse(self, variable, grad,
                                        self._sgd_scalars(variable)[0].step_size)
            else:
                rest.append((grad, variable))
        return [grad for grad, _ in rest], [variable for _, variable in rest]

    def _kernel_hyper(self):
        if self._kind == "sgdw":
            return Hyper(momentum=self.momentum, nesterov=self.nesterov)
        betas = self._kernel_betas() if self._kind == "adamw" else (self.beta_1, self.beta_2)
        return Hyper(*betas, epsilon=self.epsilon)

    def _kernel_update(self, index, variable, grad, scalars):
        """The variable's update by its kernel path (chosen once per variable);
        False where the reference path (`update_step`'s ops) runs."""
        if index not in self._kernel_paths:
            self._kernel_paths[index] = kernels.choose(self, variable)
        choice = self._kernel_paths[index]
        if choice is None:
            return False
        update = Update(self._kind, variable, self._slot_variables(index), grad, scalars,
                        self._step_hyper)
        return kernels.apply(self, choice, update)

    def _assign_decayed(self, variable, theta, delta, scalars, index):
        """`theta + delta - decay(d)`, the decay taken from theta before the update:
        `d = theta`, or `theta - theta_0` with `decay_to="init"`."""
        anchor = self._anchors[index]
        decayed = theta if anchor is None else theta - ops.convert_to_tensor(anchor)
        decay = rules.decay_term(decayed, scalars.c_sign, scalars.c_linear, ops)
        self.assign(variable, theta + delta if decay is None else theta + delta - decay)

    # ---- saving ------------------------------------------------------------------------

    def load_own_variables(self, store):
        """Keras's loading, after refusing the saved state of another optimizer.

        Keras assigns saved optimizer variables by position: a state written by
        another optimizer (Keras's own have no `t_cur`, `eta_t`, `lr_t`) would be
        skipped with a warning, or, where the counts happen to agree, assigned
        to the wrong variables. Both raise here, with the fix.
        """
        mismatch = self.built and state_mismatch(store, self.variables)
        if mismatch:
            raise ValueError(
                f"The saved optimizer state does not fit {type(self).__name__} "
                f"'{self.name}': {mismatch}. It was written by another optimizer or "
                f"configuration (Keras's own optimizers have no `t_cur`, `eta_t`, "
                f"`lr_t`) and is not loaded. To resume, compile with the optimizer that "
                f"wrote it; to load the model weights only and start this optimizer "
                f"fresh, pass `skip_mismatch=True` to `load_weights`.")
        super().load_own_variables(store)

    def get_config(self):
        return {**super().get_config(), **self._keras_adamw_config()}

    @staticmethod
    def _deserialize_function(custom_objects):
        return lambda b: keras.saving.deserialize_keras_object(b, custom_objects=custom_objects)

    @classmethod
    def from_config(cls, config_, custom_objects=None):
        config_ = cls._decoded_config(config_, custom_objects)
        if config_.get("gradient_accumulation_steps") is None:
            config_.pop("gradient_accumulation_steps", None)
        return super().from_config(config_, custom_objects=custom_objects)


def state_mismatch(store, variables):
    """Why a saved optimizer state (Keras `store`) does not fit `variables`, or ''."""
    if len(store.keys()) != len(variables):
        return f"it holds {len(store.keys())} variables, this optimizer {len(variables)}"
    for i, variable in enumerate(variables):
        saved = store[str(i)]
        kind = np.dtype(keras.backend.standardize_dtype(variable.dtype)).kind
        if tuple(saved.shape) != tuple(variable.shape) or np.dtype(saved.dtype).kind != kind:
            return (f"variable {i} (`{variable.path}`, {variable.dtype} "
                    f"{tuple(variable.shape)}) is saved as {saved.dtype} {tuple(saved.shape)}")
    return ""
