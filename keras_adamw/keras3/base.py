"""Glue shared by the Keras 3 optimizers: arguments, state, once-per-step advance.

Every Keras 3 optimizer applies one update as
`apply -> _backend_apply_gradients -> _backend_update_step -> update_step` (per
variable). `_backend_update_step` runs exactly once per applied update (also
under `gradient_accumulation_steps`, jit and JAX's stateless apply), so the
per-step scalars are computed there, before the variables, and `t_cur`/`eta_t`/
`lr_t` advance there, after them.
"""

import keras  # type: ignore[import-untyped]
import numpy as np
from keras import ops  # type: ignore[import-untyped]

from keras_adamw.core import config, matching, precision, rules, schedule
from keras_adamw.keras3 import regularizers

# Arguments of `keras.optimizers.Optimizer` passed through unchanged.
KERAS_KWARGS = ("clipnorm", "clipvalue", "global_clipnorm", "use_ema", "ema_momentum",
                "ema_overwrite_frequency", "loss_scale_factor",
                "gradient_accumulation_steps")


def variable_path(variable):
    """`variable.path` for Keras variables, the `:0`-less name otherwise."""
    return matching.normalize_name(getattr(variable, "path", None) or variable.name)


def check_epsilon(epsilon):
    """`None` means the Keras default `keras.config.epsilon()`."""
    if epsilon is None:
        return keras.config.epsilon()
    return config.check_number("epsilon", epsilon, low=0)


class KerasAdamWMixin(config.SettingsAttributes):
    """Decoupled weight decay, warm restarts and lr multipliers for Keras 3.

    Placed before a Keras optimizer in the bases. Subclasses implement
    `_step_coefficients(lr, t)` (per-step scalars, once per step) and
    `update_step` (one variable, from those scalars).

    Attributes:
        native_kernels: on the TensorFlow backend, update a decayed AdamW or
            SGDW variable, any amsgrad AdamW and any NadamW variable (inside
            `jit_compile`, every variable) by the single-pass native kernel
            (`keras_adamw.native`: a TensorFlow op, or an XLA custom call inside
            `jit_compile`) where it runs: a CPU variable of float32/float64. On
            JAX (CPU), every float32/float64 variable of at least 2^16 elements
            by the same custom calls (`keras_adamw.jax_kernels`). Default True;
            False takes the XLA-compiled pass (AdamW, NadamW) or the fused op
            after a decay pass (SGDW; the XLA pass inside XLA), and Keras ops on
            JAX.
    """

    native_kernels = True

    def _init_keras_adamw(self, model, zero_penalties, extras, **keras_adamw_args):
        """Creates the settings and the `t_cur`/`eta_t`/`lr_t` variables."""
        self._init_settings(model, zero_penalties, extras, regularizers,
                            **keras_adamw_args)
        self._rules = ()
        with keras.name_scope(self.name, caller=self):
            self.t_cur = self._add_scalar("t_cur", self._settings.t_cur, "int")
            self.eta_t = self._add_scalar("eta_t", self._settings.initial_eta(), "float32")
            self.lr_t = self._add_scalar("lr_t", 0.0, "float32")

    def _add_scalar(self, name, value, dtype):
        return self.add_variable(shape=(), initializer=keras.initializers.Constant(value),
                                 dtype=dtype, aggregation="only_first_replica", name=name)

    _variable_path = staticmethod(variable_path)

    def _rules_resolved(self):
        return self.built

    def build(self, variables):
        """Creates the slots, then resolves per-variable rules once, by path."""
        if self.built:
            return
        paths = [variable_path(v) for v in variables]
        dtypes = [keras.backend.standardize_dtype(v.dtype) for v in variables]
        config.check_float_variables(paths, dtypes)
        super().build(variables)
        self._rules = matching.resolve_rules(paths, self._settings)
        precision.warn_rounded_decays(paths, dtypes, self._rules, self._settings.eta_max,
                                      self._constant_learning_rate())
        configured = (self._settings.lr_multipliers or self._settings.weight_decays
                      or self._settings.layerwise_lr_decay)
        if self._settings.init_verbose and configured:
            print(f"{self.name}: per-variable settings\n"
                  + matching.format_table(paths, self._rules, self._settings))

    def _constant_learning_rate(self):
        """The learning rate as a float; None for a schedule or a callable.

        Read eagerly: on TensorFlow the optimizer is built inside the first
        traced step.
        """
        if not isinstance(self._learning_rate, keras.Variable):
            return None
        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf  # type: ignore[import-untyped]

            with tf.init_scope():
                return float(self._learning_rate.numpy())
        return float(self._learning_rate.value)  # a 0-d jax or torch tensor

    _math = ops

    def _variable_rule(self, variable):
        return self._rules[self._get_variable_index(variable)]

    def _scalar_bounds(self, scalars):
        """`(lower, upper)` of this step in the variable's dtype, or None."""
        if self._settings.effective_lr_bounds is None:
            return None
        return scalars["lr_lower"], scalars["lr_upper"]

    def _apply_weight_decay(self, variables):
        """Decay is part of our update (`core.rules.decay_term`), not Keras's."""

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        self._step = self._prepare_step(learning_rate)
        self._rule_scalars_cache = {}
        self._run_update_steps(grads, trainable_variables, learning_rate)
        self._advance_schedule(self._step["lr_t"])

    def _run_update_steps(self, grads, trainable_variables, learning_rate):
        """All variables' updates: torch's multi-tensor path, else Keras's loop.

        Keras's loop calls `update_step` per variable (distribution-aware on TF);
        the native custom calls of the loop (TensorFlow inside XLA, JAX) are
        emitted together, one per group (`batch` of `native.xla_calls`,
        `jax_kernels`).
        """
        backend = keras.backend.backend()
        if backend == "torch" and self._settings.effective_lr_bounds is None:
            from keras_adamw.kernels import torch_foreach as torch_fast

            torch_fast.update(self, grads, trainable_variables, self._step)
            return
        if backend in ("tensorflow", "jax"):
            if backend == "tensorflow":
                from keras_adamw.kernels.tf_xla_calls import batch
            else:
                from keras_adamw.kernels.jax_calls import batch
            with batch():
                self._keras_update_loop(grads, trainable_variables, learning_rate)
            return
        self._keras_update_loop(grads, trainable_variables, learning_rate)

    def _jax_native(self, variable, bounds):
        """Whether `variable` takes the JAX custom calls (`keras_adamw.jax_kernels`):
        JAX backend, `native_kernels`, no per-element bounds, where they run."""
        if keras.backend.backend() != "jax" or not self.native_kernels or bounds is not None:
            return False
        from keras_adamw.kernels import jax_calls as jax_kernels

        return jax_kernels.usable(variable)

    def _keras_update_loop(self, grads, trainable_variables, learning_rate):
        super()._backend_update_step(grads, trainable_variables, learning_rate)

    def _prepare_step(self, learning_rate):
        """Per-step scalars: lr (with legacy inverse-time decay), eta, t."""
        iterations = ops.cast(self.iterations, "float32")
        lr = ops.cast(learning_rate, "float32")
        if self._settings.decay:
            lr = lr * rules.inverse_time_factor(self._settings.decay, iterations)
        step = self._step_coefficients(lr, iterations + 1.0)
        step["lr"] = lr
        step["eta"] = ops.cast(self.eta_t, "float32")
        step["lr_t"] = step["eta"] * step.pop("lr_t_factor")
        bounds = rules.bound_values(self._settings.effective_lr_bounds, iterations)
        if bounds is not None:
            step["lr_lower"], step["lr_upper"] = bounds
        return step

    def _advance_schedule(self, lr_t):
        s = self._settings
        t_cur = schedule.next_t_cur(ops.convert_to_tensor(self.t_cur), s.total_iterations,
                                    s.autorestart, ops)
        self.assign(self.t_cur, t_cur)
        if s.use_cosine_annealing:
            self.assign(self.eta_t, schedule.cosine_eta(
                ops.cast(t_cur, "float32"), s.total_iterations, s.eta_min, s.eta_max, ops))
        self.assign(self.lr_t, lr_t)

    def _variable_context(self, gradient, variable):
        """Dense gradient and the variable's scalars for this step, in its dtype."""
        rule = self._rules[self._get_variable_index(variable)]
        return dense_gradient(gradient, variable.dtype), self._rule_scalars(rule, variable.dtype)

    def _rule_scalars(self, rule, dtype):
        """Step scalars plus `step_size = eta lr_v [bias correction]` and the decay
        coefficients of `rule`: computed once per step per (rule, dtype)."""
        key = (rule, str(dtype))
        if key not in self._rule_scalars_cache:
            step = self._step
            c_sign, c_linear = rules.decay_coefficients(rule, step["eta"],
                                                        step["lr"] * rule.multiplier)
            scalars = {**step, "step_size": step["eta"] * step[self._step_base] *
                       rule.multiplier, "c_sign": c_sign, "c_linear": c_linear}
            self._rule_scalars_cache[key] = {
                k: None if v is None else ops.cast(v, dtype) for k, v in scalars.items()}
        return self._rule_scalars_cache[key]

    def _assign_decayed(self, variable, theta, delta, scalars):
        """`theta + delta - decay(theta)`, the decay taken from theta before the update."""
        decay = rules.decay_term(theta, scalars["c_sign"], scalars["c_linear"], ops)
        self.assign(variable, theta + delta if decay is None else theta + delta - decay)

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
        settings = config.settings_config(self._settings, keras.saving.serialize_keras_object)
        return {**super().get_config(), **settings, "zero_penalties": self.zero_penalties}

    @classmethod
    def from_config(cls, config_, custom_objects=None):
        config_ = config.decode_config(config_, lambda b: keras.saving.deserialize_keras_object(
            b, custom_objects=custom_objects))
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


def dense_gradient(gradient, dtype):
    """The dense equivalent of a gradient; `IndexedSlices` rows are summed.

    DESIGN.md section 4: sparse gradients give the numbers of the dense one, so
    repeated rows are summed first and absent rows still decay their moments.
    """
    if hasattr(gradient, "indices") and hasattr(gradient, "dense_shape"):
        # Only TensorFlow makes IndexedSlices.
        import tensorflow as tf  # type: ignore[import-untyped]

        gradient = tf.convert_to_tensor(gradient)
    return ops.cast(gradient, dtype)




