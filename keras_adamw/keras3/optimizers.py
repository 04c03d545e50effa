"""AdamW, NadamW and SGDW for Keras 3 (TensorFlow, JAX and PyTorch backends).

Subclasses of Keras's own Adam, Nadam and SGD, so clipping, EMA, loss scaling,
gradient accumulation and learning-rate schedules keep working. The numbers
come from `keras_adamw.core`; see DESIGN.md section 4.
"""
import keras  # type: ignore[import-untyped]
import numpy as np
from keras import ops  # type: ignore[import-untyped]

from keras_adamw.core import config, rules
from keras_adamw.keras3.base import KERAS_KWARGS, KerasAdamWMixin, check_epsilon

BACKEND = keras.backend.backend()
if BACKEND == "tensorflow":
    from keras_adamw.kernels import tf_fused as tf_fast
elif BACKEND == "jax":
    from keras_adamw.kernels import jax_calls as jax_kernels

register = keras.saving.register_keras_serializable(package="keras_adamw")


@register
class AdamW(KerasAdamWMixin, keras.optimizers.Adam):
    """Adam with decoupled weight decay, warm restarts and lr multipliers.

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
        epsilon: added to `sqrt(v)`; `None` means `keras.config.epsilon()`.
        amsgrad: use the maximum of past second moments.
        model: a Keras 3 model whose L1/L2 regularizers give `weight_decays`.
        zero_penalties: with `model`, zero those regularizers (recommended).
        total_iterations: updates per cosine cycle; also normalises `weight_decays`.
        total_iterations_wd: normalisation of `weight_decays` (default
            `total_iterations`).
        use_cosine_annealing: multiply the step by the cosine `eta_t`.
        lr_multipliers: `{layer name or regex: multiplier}`; longest match wins.
        weight_decays: `{variable path: (l1, l2)}`, paper convention.
        autorestart: restart the cycle after `total_iterations` updates
            (default: `use_cosine_annealing`).
        init_verbose: print the per-variable table at build when multipliers
            or decays are set.
        eta_min: `eta_t` at the end of a cycle.
        eta_max: `eta_t` at the start of a cycle.
        t_cur: initial position in the cycle (`-1` restarts).
        name: optimizer name.
        **kwargs: Keras optimizer arguments (`clipnorm`, `clipvalue`,
            `global_clipnorm`, `use_ema`, `ema_momentum`,
            `ema_overwrite_frequency`, `loss_scale_factor`,
            `gradient_accumulation_steps`), and `lr`, `decay` (legacy
            inverse-time decay), `weight_decay` (Keras convention lambda),
            `exclude_from_weight_decay` (regexes of paths).
    """

    _kind = "adamw"
    _step_base = "alpha"

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=None,
                 amsgrad=False, model=None, zero_penalties=True, total_iterations=0,
                 total_iterations_wd=None, use_cosine_annealing=False, lr_multipliers=None,
                 weight_decays=None, autorestart=None, init_verbose=True, eta_min=0,
                 eta_max=1, t_cur=0, name="AdamW", **kwargs):
        learning_rate, extras, kwargs = config.split_kwargs(
            type(self), learning_rate, kwargs, KERAS_KWARGS)
        super().__init__(learning_rate=learning_rate,
                         beta_1=config.check_beta("beta_1", beta_1),
                         beta_2=config.check_beta("beta_2", beta_2),
                         epsilon=check_epsilon(epsilon),
                         amsgrad=config.check_bool("amsgrad", amsgrad), name=name, **kwargs)
        self._init_keras_adamw(
            model, zero_penalties, extras, total_iterations=total_iterations,
            total_iterations_wd=total_iterations_wd,
            use_cosine_annealing=use_cosine_annealing, lr_multipliers=lr_multipliers,
            weight_decays=weight_decays, autorestart=autorestart, init_verbose=init_verbose,
            eta_min=eta_min, eta_max=eta_max, t_cur=t_cur)

    def _step_coefficients(self, lr, t):
        beta_1, beta_2 = self.beta_1, self.beta_2
        if BACKEND == "tensorflow":
            # TF's fused kernels take float32 betas: the bias correction must too.
            beta_1, beta_2 = (float(np.float32(b)) for b in (beta_1, beta_2))
        alpha = lr * rules.adam_bias_correction(beta_1, beta_2, t, ops)
        return {"alpha": alpha, "lr_t_factor": alpha}

    def update_step(self, gradient, variable, learning_rate):
        grad, s = self._variable_context(gradient, variable)
        index = self._get_variable_index(variable)
        m, v = self._momentums[index], self._velocities[index]
        v_hat = self._velocity_hats[index] if self.amsgrad else None
        bounds = self._scalar_bounds(s)
        if BACKEND == "tensorflow" and bounds is None and \
                keras.backend.standardize_dtype(variable.dtype) in tf_fast.ADAM_DTYPES:
            tf_fast.adamw(variable, m, v, v_hat, grad, s, self.beta_1, self.beta_2,
                          self.epsilon, self.native_kernels)
            return
        if self._jax_native(variable, bounds):
            jax_kernels.adamw(self, variable, m, v, v_hat, grad, s, self.beta_1, self.beta_2,
                              self.epsilon)
            return
        theta = ops.convert_to_tensor(variable)
        m_new, v_new = rules.adam_moments(ops.convert_to_tensor(m), ops.convert_to_tensor(v),
                                          grad, self.beta_1, self.beta_2)
        self.assign(m, m_new)
        self.assign(v, v_new)
        if v_hat is not None:
            v_new = ops.maximum(ops.convert_to_tensor(v_hat), v_new)
            self.assign(v_hat, v_new)
        if bounds is None:
            delta = -s["step_size"] * rules.adam_direction(m_new, v_new, self.epsilon, ops)
        else:
            rate = rules.adaptive_rate(s["step_size"], v_new, self.epsilon, ops)
            delta = -rules.clip_rate(rate, bounds, ops) * m_new
        self._assign_decayed(variable, theta, delta, s)

    def _effective_rate(self, variable, step_size, iterations):
        index = self._get_variable_index(variable)
        v = self._velocity_hats[index] if self.amsgrad else self._velocities[index]
        return rules.adaptive_rate(step_size, ops.convert_to_tensor(v), self.epsilon, ops)


@register
class NadamW(KerasAdamWMixin, keras.optimizers.Nadam):
    """Nadam (Dozat) with decoupled weight decay, warm restarts and lr multipliers.

    Momentum schedule `u_t = b1 (1 - 0.5 * 0.96^(schedule_decay t))` as in the
    paper and Keras 2 (`schedule_decay=0.004`; Keras 3's Nadam is 1.0):

    ```
    m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;  prod_t = u_1 ... u_t
    m_bar = (1 - u_t) g / (1 - prod_t) + u_{t+1} m / (1 - prod_t u_{t+1})
    theta -= eta lr_v m_bar / (sqrt(v / (1 - b2^t)) + eps)
    ```
    then the decoupled decays and the schedule advance of `AdamW`.

    Args:
        schedule_decay: exponent scale of the momentum schedule, >= 0.
        (others): as `AdamW`, without `amsgrad`.
    """

    _kind = "nadamw"
    _step_base = "lr"

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=None,
                 schedule_decay=0.004, model=None, zero_penalties=True, total_iterations=0,
                 total_iterations_wd=None, use_cosine_annealing=False, lr_multipliers=None,
                 weight_decays=None, autorestart=None, init_verbose=True, eta_min=0,
                 eta_max=1, t_cur=0, name="NadamW", **kwargs):
        learning_rate, extras, kwargs = config.split_kwargs(
            type(self), learning_rate, kwargs, KERAS_KWARGS)
        super().__init__(learning_rate=learning_rate,
                         beta_1=config.check_beta("beta_1", beta_1),
                         beta_2=config.check_beta("beta_2", beta_2),
                         epsilon=check_epsilon(epsilon),
                         name=name, **kwargs)
        self.schedule_decay = config.check_number("schedule_decay", schedule_decay, low=0)
        self._init_keras_adamw(
            model, zero_penalties, extras, total_iterations=total_iterations,
            total_iterations_wd=total_iterations_wd,
            use_cosine_annealing=use_cosine_annealing, lr_multipliers=lr_multipliers,
            weight_decays=weight_decays, autorestart=autorestart, init_verbose=init_verbose,
            eta_min=eta_min, eta_max=eta_max, t_cur=t_cur)

    def _keras_update_loop(self, grads, trainable_variables, learning_rate):
        # Skip Keras Nadam's own u_product advance (fixed schedule_decay=1).
        super(keras.optimizers.Nadam, self)._backend_update_step(
            grads, trainable_variables, learning_rate)

    def _step_coefficients(self, lr, t):
        u_t = rules.nadam_momentum(self.beta_1, self.schedule_decay, t, ops)
        u_next = rules.nadam_momentum(self.beta_1, self.schedule_decay, t + 1.0, ops)
        u_product = ops.cast(self._u_product, "float32") * u_t
        self.assign(self._u_product, u_product)
        step = rules.nadam_coefficients(u_t, u_next, u_product, self.beta_2, t, ops)
        step["lr_t_factor"] = lr
        return step

    def update_step(self, gradient, variable, learning_rate):
        grad, s = self._variable_context(gradient, variable)
        index = self._get_variable_index(variable)
        m, v = self._momentums[index], self._velocities[index]
        bounds = self._scalar_bounds(s)
        if BACKEND == "tensorflow" and bounds is None and \
                keras.backend.standardize_dtype(variable.dtype) in tf_fast.ADAM_DTYPES:
            tf_fast.nadamw(variable, m, v, grad, s, self.beta_1, self.beta_2, self.epsilon,
                           self.native_kernels)
            return
        if self._jax_native(variable, bounds):
            jax_kernels.nadamw(self, variable, m, v, grad, s, self.beta_1, self.beta_2,
                               self.epsilon)
            return
        theta = ops.convert_to_tensor(variable)
        m_new, v_new = rules.adam_moments(ops.convert_to_tensor(m), ops.convert_to_tensor(v),
                                          grad, self.beta_1, self.beta_2)
        self.assign(m, m_new)
        self.assign(v, v_new)
        if bounds is None:
            delta = -s["step_size"] * rules.nadam_direction(m_new, v_new, grad, s,
                                                            self.epsilon, ops)
        else:
            rate = rules.adaptive_rate(s["step_size"], v_new, self.epsilon, ops,
                                       s["v_correction"])
            delta = -rules.clip_rate(rate, bounds, ops) * rules.nadam_momentum_bar(
                m_new, grad, s)
        self._assign_decayed(variable, theta, delta, s)

    def _effective_rate(self, variable, step_size, iterations):
        v_correction = 1.0 / rules.one_minus_power(self.beta_2, iterations, ops)
        v = self._velocities[self._get_variable_index(variable)]
        return rules.adaptive_rate(step_size, ops.convert_to_tensor(v),
                                   self.epsilon, ops, ops.cast(v_correction, step_size.dtype))

    def get_config(self):
        config = super().get_config()
        config["schedule_decay"] = self.schedule_decay
        return config


@register
class SGDW(KerasAdamWMixin, keras.optimizers.SGD):
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
    """

    _kind = "sgdw"
    _step_base = "lr"

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, model=None,
                 zero_penalties=True, total_iterations=0, total_iterations_wd=None,
                 use_cosine_annealing=False, lr_multipliers=None, weight_decays=None,
                 autorestart=None, init_verbose=True, eta_min=0, eta_max=1, t_cur=0,
                 name="SGDW", **kwargs):
        learning_rate, extras, kwargs = config.split_kwargs(
            type(self), learning_rate, kwargs, KERAS_KWARGS)
        super().__init__(learning_rate=learning_rate,
                         momentum=config.check_number("momentum", momentum, low=0, high=1),
                         nesterov=config.check_bool("nesterov", nesterov), name=name, **kwargs)
        self._init_keras_adamw(
            model, zero_penalties, extras, total_iterations=total_iterations,
            total_iterations_wd=total_iterations_wd,
            use_cosine_annealing=use_cosine_annealing, lr_multipliers=lr_multipliers,
            weight_decays=weight_decays, autorestart=autorestart, init_verbose=init_verbose,
            eta_min=eta_min, eta_max=eta_max, t_cur=t_cur)

    def _step_coefficients(self, lr, t):
        return {"lr_t_factor": lr}

    def update_step(self, gradient, variable, learning_rate):
        grad, s = self._variable_context(gradient, variable)
        velocity = None
        if self.momentum != 0:
            velocity = self.momentums[self._get_variable_index(variable)]
        step_size = rules.clip_rate(s["step_size"], self._scalar_bounds(s), ops)
        if BACKEND == "tensorflow":
            tf_fast.sgdw(variable, velocity, grad, step_size, self.momentum, self.nesterov,
                         s["c_sign"], s["c_linear"], self.native_kernels)
            return
        if self._jax_native(variable, None):
            jax_kernels.sgdw(self, variable, velocity, grad, step_size, self.momentum,
                             self.nesterov, s)
            return
        theta = ops.convert_to_tensor(variable)
        new_velocity, delta = rules.sgd_step(
            None if velocity is None else ops.convert_to_tensor(velocity), grad,
            step_size, self.momentum, self.nesterov)
        if velocity is not None:
            self.assign(velocity, new_velocity)
        self._assign_decayed(variable, theta, delta, s)

    def _effective_rate(self, variable, step_size, iterations):
        return ops.broadcast_to(step_size, variable.shape)
