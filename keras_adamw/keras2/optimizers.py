"""AdamW, NadamW and SGDW for tf_keras (Keras 2 API, TF_USE_LEGACY_KERAS=1).

Subclasses of tf_keras's legacy `OptimizerV2`, so clipping, gradient
transformers, loss scaling, `tf.distribute` and `get_updates` keep working. A
variable without decay is updated by TensorFlow's fused training op where one
expresses the rule (`ResourceApplyAdam`, `ResourceApplyKerasMomentum`,
`ResourceApplyGradientDescent`). A decayed variable, every amsgrad AdamW and
every NadamW variable, by one single-pass native kernel that applies rule and
decay together (`keras_adamw.native`, CPU float32/float64: a TensorFlow op, or
inside `jit_compile` an XLA custom call, which then updates every variable);
where that cannot run, by one XLA-compiled pass (`keras_adamw.tf_kernels`) from
`xla_min_size` elements (SGDW: 2^17; below, the decay is its own in-place pass
before the fused op). All are fed with per-step scalars from `keras_adamw.core`;
see DESIGN.md section 4.
"""
import numpy as np
import tensorflow as tf  # type: ignore[import-untyped]

from keras_adamw.core import config, rules
from keras_adamw.keras2.base import (
    KERAS_KWARGS,
    TF_MATH,
    KerasAdamWMixin,
    check_epsilon,
)
from keras_adamw.keras2.framework import keras2, optimizer_v2

register = keras2.utils.register_keras_serializable(package="keras_adamw")


def _assign_moments(optimizer, var, grad, s):
    """`m`, `v` slots updated in place (`core.rules.adam_moments`); their new values."""
    m, v = optimizer.get_slot(var, "m"), optimizer.get_slot(var, "v")
    m_new, v_new = rules.adam_moments(m.read_value(), v.read_value(), grad,
                                      s["beta_1"], s["beta_2"])
    use_locking = optimizer._use_locking
    return (tf.compat.v1.assign(m, m_new, use_locking=use_locking),
            tf.compat.v1.assign(v, v_new, use_locking=use_locking))


def _float32_betas(optimizer):
    """The betas as the fused ops and tf_keras's Adam/Nadam hold them (float32)."""
    return float(np.float32(optimizer.beta_1)), float(np.float32(optimizer.beta_2))


def _adam_scalars(optimizer, t):
    """Betas, their powers at step `t` (fused-op inputs) and epsilon, float32."""
    beta_1 = tf.constant(optimizer.beta_1, tf.float32)
    beta_2 = tf.constant(optimizer.beta_2, tf.float32)
    return {"beta_1": beta_1, "beta_2": beta_2,
            "beta_1_power": tf.pow(beta_1, t), "beta_2_power": tf.pow(beta_2, t),
            "epsilon": tf.constant(optimizer.epsilon, tf.float32)}


@register
class AdamW(KerasAdamWMixin, optimizer_v2.OptimizerV2):
    """Adam with decoupled weight decay, warm restarts and lr multipliers (tf_keras).

    Loshchilov & Hutter, "Decoupled Weight Decay Regularization" (arXiv:1711.05101).
    Per update, `t = iterations + 1`, `lr_v = lr * multiplier(v)`, `eta = eta_t`:

    ```
    m = b1 m + (1 - b1) g
    v = b2 v + (1 - b2) g^2            (amsgrad: vhat = max(vhat, v), used below)
    theta -= eta lr_v sqrt(1 - b2^t) / (1 - b1^t) m / (sqrt(v) + eps)
    theta -= eta (l1_n sign(theta) + l2_n theta)     weight_decays, l_n = l sqrt(1/T_wd)
    theta -= eta lr_v lambda theta                   weight_decay=lambda
    ```
    (decays from theta before the update). Then `t_cur` advances (restarting at
    `total_iterations` with `autorestart`) and `eta_t` follows the cosine.

    Args:
        learning_rate: float, `LearningRateSchedule` or callable. Alias `lr=`.
        beta_1: decay of the first moment, in [0, 1).
        beta_2: decay of the second moment, in [0, 1).
        epsilon: added to `sqrt(v)`; `None` means `tf_keras.backend.epsilon()`.
        amsgrad: use the maximum of past second moments.
        model: a tf_keras model whose L1/L2 regularizers give `weight_decays`.
        zero_penalties: with `model`, zero those regularizers (recommended).
        total_iterations: updates per cosine cycle; also normalises `weight_decays`.
        total_iterations_wd: normalisation of `weight_decays` (default
            `total_iterations`).
        use_cosine_annealing: multiply the step by the cosine `eta_t`.
        lr_multipliers: `{layer name or regex: multiplier}`; longest match wins.
        weight_decays: `{variable name: (l1, l2)}`, paper convention.
        autorestart: restart the cycle after `total_iterations` updates
            (default: `use_cosine_annealing`).
        init_verbose: print the per-variable table at build when multipliers
            or decays are set.
        eta_min: `eta_t` at the end of a cycle.
        eta_max: `eta_t` at the start of a cycle.
        t_cur: initial position in the cycle (`-1` restarts).
        name: optimizer name.
        **kwargs: `OptimizerV2` arguments (`clipnorm`, `clipvalue`,
            `global_clipnorm`, `gradient_aggregator`, `gradient_transformers`),
            and `lr`, `decay` (legacy inverse-time decay), `weight_decay` (Keras
            convention lambda), `exclude_from_weight_decay` (regexes of names).

    Attributes:
        native_kernels: update a decayed variable (any variable with `amsgrad`;
            inside `jit_compile`, every variable) by the single-pass native
            kernel (`keras_adamw.native`) where it runs: a CPU variable of
            float32/float64. Default True.
        xla_min_size: otherwise, such a variable with at least this many
            elements is updated (rule and decay) in one XLA-compiled pass,
            compiled once per shape on first use; smaller ones, or all if
            `None`, by `ResourceApplyAdam[WithAmsgrad]` after an in-place decay
            pass (the amsgrad kernel has no XLA version: keep the default in
            `jit_compile` steps). Default 0.
    """

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=None,
                 amsgrad=False, model=None, zero_penalties=True, total_iterations=0,
                 total_iterations_wd=None, use_cosine_annealing=False, lr_multipliers=None,
                 weight_decays=None, autorestart=None, init_verbose=True, eta_min=0,
                 eta_max=1, t_cur=0, name="AdamW", **kwargs):
        learning_rate, extras, kwargs = config.split_kwargs(
            type(self), learning_rate, kwargs, KERAS_KWARGS)
        super().__init__(name, **kwargs)
        self._set_hyper("learning_rate", learning_rate)
        self.beta_1 = config.check_beta("beta_1", beta_1)
        self.beta_2 = config.check_beta("beta_2", beta_2)
        self.epsilon = check_epsilon(epsilon)
        self.amsgrad = config.check_bool("amsgrad", amsgrad)
        self._init_keras_adamw(
            model, zero_penalties, extras, total_iterations=total_iterations,
            total_iterations_wd=total_iterations_wd,
            use_cosine_annealing=use_cosine_annealing, lr_multipliers=lr_multipliers,
            weight_decays=weight_decays, autorestart=autorestart, init_verbose=init_verbose,
            eta_min=eta_min, eta_max=eta_max, t_cur=t_cur)

    @property
    def _FUSED_RULE(self):
        # TensorFlow has no XLA kernel for `ResourceApplyAdamWithAmsgrad`: it
        # failed in `jit_compile` train steps, the compiled pass works in all.
        return not self.amsgrad

    def _create_slots(self, var_list):
        for slot in ("m", "v") + (("vhat",) if self.amsgrad else ()):
            for var in var_list:
                self.add_slot(var, slot)
        super()._create_slots(var_list)

    def _step_coefficients(self, lr, t):
        step = _adam_scalars(self, t)
        # From the betas the moments are updated with, so the step is consistent.
        step["bias_correction"] = rules.adam_bias_correction(*_float32_betas(self), t,
                                                             TF_MATH)
        step["lr_t_factor"] = lr * step["bias_correction"]
        return step

    def _apply_compiled(self, grad, var, scalars, decay, kernels):
        vhat = self.get_slot(var, "vhat").handle if self.amsgrad else None
        return kernels.adamw(var.handle, self.get_slot(var, "m").handle,
                             self.get_slot(var, "v").handle, vhat, grad, scalars["lr"],
                             scalars["bias_correction"], decay, *_float32_betas(self),
                             self.epsilon)

    def _apply_rule(self, grad, var, scalars):
        """`ResourceApplyAdam[WithAmsgrad]` with `lr = eta lr_v` (it folds the
        bias correction `sqrt(1 - b2^t) / (1 - b1^t)` in from the beta powers);
        with bounds, composite ops."""
        s = scalars
        if s["bounds"] is not None:
            return self._apply_bounded(grad, var, s)
        args = {"var": var.handle, "m": self.get_slot(var, "m").handle,
                    "v": self.get_slot(var, "v").handle, "beta1_power": s["beta_1_power"],
                    "beta2_power": s["beta_2_power"], "lr": s["lr"], "beta1": s["beta_1"],
                    "beta2": s["beta_2"], "epsilon": s["epsilon"], "grad": grad,
                    "use_locking": self._use_locking}
        if self.amsgrad:
            return tf.raw_ops.ResourceApplyAdamWithAmsgrad(
                vhat=self.get_slot(var, "vhat").handle, **args)
        return tf.raw_ops.ResourceApplyAdam(**args)

    def _apply_bounded(self, grad, var, s):
        """`theta -= clip(eta lr_v bias_correction / (sqrt(v) + eps)) m`."""
        m_new, v_new = _assign_moments(self, var, grad, s)
        if self.amsgrad:
            vhat = self.get_slot(var, "vhat")
            v_new = tf.compat.v1.assign(vhat, tf.maximum(vhat.read_value(), v_new),
                                        use_locking=self._use_locking)
        rate = rules.adaptive_rate(s["lr"] * s["bias_correction"], v_new, s["epsilon"],
                                   TF_MATH)
        return var.assign_sub(rules.clip_rate(rate, s["bounds"], TF_MATH) * m_new,
                              use_locking=self._use_locking, read_value=False)

    def _effective_rate(self, var, step_size, iterations):
        v = self.get_slot(var, "vhat" if self.amsgrad else "v")
        return rules.adaptive_rate(step_size, v.read_value(), self.epsilon, TF_MATH)

    def get_config(self):
        config_ = super().get_config()
        config_.update({"beta_1": self.beta_1, "beta_2": self.beta_2,
                        "epsilon": self.epsilon, "amsgrad": self.amsgrad})
        return config_


@register
class NadamW(KerasAdamWMixin, optimizer_v2.OptimizerV2):
    """Nadam (Dozat) with decoupled weight decay, warm restarts and lr multipliers.

    tf_keras legacy `Nadam`'s momentum schedule
    `u_t = b1 (1 - 0.5 * 0.96^(schedule_decay t))`, `schedule_decay=0.004`:

    ```
    m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;  prod_t = u_1 ... u_t
    m_bar = (1 - u_t) g / (1 - prod_t) + u_{t+1} m / (1 - prod_t u_{t+1})
    theta -= eta lr_v m_bar / (sqrt(v / (1 - b2^t)) + eps)
    ```
    then the decoupled decays and the schedule advance of `AdamW`. `prod_t` is
    the optimizer weight `momentum_cache`, as in legacy `Nadam`.

    Args:
        schedule_decay: exponent scale of the momentum schedule, >= 0.
        (others): as `AdamW`, without `amsgrad`.

    Attributes:
        native_kernels: as `AdamW`, for every variable. Default True.
        xla_min_size: as `AdamW`, for every variable (there is no fused Nadam
            kernel; below it, composite TensorFlow ops). Default 0.
    """

    _EXTRA_STATE = (("momentum_cache", 1.0),)
    _FUSED_RULE = False

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=None,
                 schedule_decay=0.004, model=None, zero_penalties=True, total_iterations=0,
                 total_iterations_wd=None, use_cosine_annealing=False, lr_multipliers=None,
                 weight_decays=None, autorestart=None, init_verbose=True, eta_min=0,
                 eta_max=1, t_cur=0, name="NadamW", **kwargs):
        learning_rate, extras, kwargs = config.split_kwargs(
            type(self), learning_rate, kwargs, KERAS_KWARGS)
        super().__init__(name, **kwargs)
        self._set_hyper("learning_rate", learning_rate)
        self.beta_1 = config.check_beta("beta_1", beta_1)
        self.beta_2 = config.check_beta("beta_2", beta_2)
        self.epsilon = check_epsilon(epsilon)
        self.schedule_decay = config.check_number("schedule_decay", schedule_decay, low=0)
        self._init_keras_adamw(
            model, zero_penalties, extras, total_iterations=total_iterations,
            total_iterations_wd=total_iterations_wd,
            use_cosine_annealing=use_cosine_annealing, lr_multipliers=lr_multipliers,
            weight_decays=weight_decays, autorestart=autorestart, init_verbose=init_verbose,
            eta_min=eta_min, eta_max=eta_max, t_cur=t_cur)

    def _create_slots(self, var_list):
        for slot in ("m", "v"):
            for var in var_list:
                self.add_slot(var, slot)
        super()._create_slots(var_list)

    def _step_coefficients(self, lr, t):
        step = _adam_scalars(self, t)
        beta_1, beta_2 = _float32_betas(self)  # as the moments and tf_keras's Nadam
        u_t = rules.nadam_momentum(beta_1, self.schedule_decay, t, TF_MATH)
        u_next = rules.nadam_momentum(beta_1, self.schedule_decay, t + 1.0, TF_MATH)
        cache = self._state_variables()["momentum_cache"]
        u_product = tf.identity(tf.compat.v1.assign(cache, cache * u_t,
                                                    use_locking=self._use_locking))
        step.update(rules.nadam_coefficients(u_t, u_next, u_product, beta_2, t, TF_MATH))
        step["lr_t_factor"] = lr
        return step

    def _apply_compiled(self, grad, var, scalars, decay, kernels):
        coefficients = {k: scalars[k] for k in ("grad_weight", "momentum_weight",
                                                "v_correction")}
        return kernels.nadamw(var.handle, self.get_slot(var, "m").handle,
                              self.get_slot(var, "v").handle, grad, scalars["lr"],
                              coefficients, decay, *_float32_betas(self), self.epsilon)

    def _apply_rule(self, grad, var, scalars):
        """Composite TensorFlow ops (below `xla_min_size`, or with bounds)."""
        s = scalars
        m_new, v_new = _assign_moments(self, var, grad, s)
        if s["bounds"] is None:
            delta = s["lr"] * rules.nadam_direction(m_new, v_new, grad, s, s["epsilon"],
                                                    TF_MATH)
        else:
            rate = rules.adaptive_rate(s["lr"], v_new, s["epsilon"], TF_MATH,
                                       s["v_correction"])
            delta = rules.clip_rate(rate, s["bounds"], TF_MATH) * rules.nadam_momentum_bar(
                m_new, grad, s)
        return var.assign_sub(delta, use_locking=self._use_locking, read_value=False)

    def _effective_rate(self, var, step_size, iterations):
        v_correction = 1.0 / rules.one_minus_power(_float32_betas(self)[1], iterations,
                                                   TF_MATH)
        return rules.adaptive_rate(step_size, self.get_slot(var, "v").read_value(),
                                   self.epsilon, TF_MATH, tf.cast(v_correction, var.dtype))

    def get_config(self):
        config_ = super().get_config()
        config_.update({"beta_1": self.beta_1, "beta_2": self.beta_2,
                        "epsilon": self.epsilon, "schedule_decay": self.schedule_decay})
        return config_


@register
class SGDW(KerasAdamWMixin, optimizer_v2.OptimizerV2):
    """SGD (Keras momentum convention) with decoupled weight decay and restarts.

    ```
    velocity = mu velocity - eta lr_v g
    theta += velocity                (nesterov: theta += mu velocity - eta lr_v g)
    ```
    (`momentum=0`: `theta -= eta lr_v g`), then the decoupled decays and the
    schedule advance of `AdamW`.

    Args:
        momentum: float in [0, 1] (integers accepted).
        nesterov: use Nesterov momentum.
        (others): as `AdamW`, without the Adam arguments.

    Attributes:
        native_kernels: as `AdamW`, for a decayed variable (inside
            `jit_compile`, every variable). Default True.
        xla_min_size: as `AdamW` (below it, `ResourceApplyKerasMomentum` after
            an in-place decay pass). Default 2^17.
    """

    # Momentum SGD's fused kernel costs what the compiled pass costs per element,
    # so the compiled pass pays off only where it saves the decay pass on a large
    # variable; below this size its fixed cost per call dominates.
    xla_min_size = 2 ** 17

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, model=None,
                 zero_penalties=True, total_iterations=0, total_iterations_wd=None,
                 use_cosine_annealing=False, lr_multipliers=None, weight_decays=None,
                 autorestart=None, init_verbose=True, eta_min=0, eta_max=1, t_cur=0,
                 name="SGDW", **kwargs):
        learning_rate, extras, kwargs = config.split_kwargs(
            type(self), learning_rate, kwargs, KERAS_KWARGS)
        super().__init__(name, **kwargs)
        momentum = config.check_number("momentum", momentum, low=0, high=1)
        self._set_hyper("learning_rate", learning_rate)
        self._set_hyper("momentum", momentum)
        self._momentum = momentum > 0
        self.nesterov = config.check_bool("nesterov", nesterov)
        self._init_keras_adamw(
            model, zero_penalties, extras, total_iterations=total_iterations,
            total_iterations_wd=total_iterations_wd,
            use_cosine_annealing=use_cosine_annealing, lr_multipliers=lr_multipliers,
            weight_decays=weight_decays, autorestart=autorestart, init_verbose=init_verbose,
            eta_min=eta_min, eta_max=eta_max, t_cur=t_cur)

    def _create_slots(self, var_list):
        if self._momentum:
            for var in var_list:
                self.add_slot(var, "momentum")
        super()._create_slots(var_list)

    def _step_coefficients(self, lr, t):
        return {"lr_t_factor": lr,
                "momentum": tf.identity(self._get_hyper("momentum", tf.float32))}

    def _prepare_local(self, var_device, var_dtype, apply_state):
        """As the base, with each rule's `eta lr_v` clipped to the bounds (a scalar
        rate: the fused and compiled kernels then apply the bounded step)."""
        super()._prepare_local(var_device, var_dtype, apply_state)
        local = apply_state[(var_device, var_dtype)]
        for scalars in local["rules"].values():
            scalars["lr"] = rules.clip_rate(scalars["lr"], local["bounds"], TF_MATH)
        local["bounds"] = None

    def _effective_rate(self, var, step_size, iterations):
        return tf.broadcast_to(step_size, var.shape)

    def _apply_compiled(self, grad, var, scalars, decay, kernels):
        if not self._momentum:
            return kernels.sgdw(var.handle, None, grad, scalars["lr"], None, decay, False)
        return kernels.sgdw(var.handle, self.get_slot(var, "momentum").handle, grad,
                            scalars["lr"], scalars["momentum"], decay, self.nesterov)

    def _apply_rule(self, grad, var, scalars):
        """`ResourceApplyKerasMomentum` (or plain descent) with `lr = eta lr_v`."""
        if not self._momentum:
            return tf.raw_ops.ResourceApplyGradientDescent(
                var=var.handle, alpha=scalars["lr"], delta=grad,
                use_locking=self._use_locking)
        return tf.raw_ops.ResourceApplyKerasMomentum(
            var=var.handle, accum=self.get_slot(var, "momentum").handle, lr=scalars["lr"],
            grad=grad, momentum=scalars["momentum"], use_locking=self._use_locking,
            use_nesterov=self.nesterov)

    def get_config(self):
        config_ = super().get_config()
        config_.update({"momentum": self._serialize_hyperparameter("momentum"),
                        "nesterov": self.nesterov})
        return config_
