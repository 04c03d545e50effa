"""AdamW, NadamW and SGDW for tf_keras (Keras 2 API, TF_USE_LEGACY_KERAS=1).

Subclasses of tf_keras's legacy `OptimizerV2`, so clipping, gradient
transformers, loss scaling, `tf.distribute` and `get_updates` keep working.
Each variable's update takes the TensorFlow path of the kernel layer
(`keras_adamw.kernels.tf_paths`: a single pass of rule and decay where one
runs), else the rule's TensorFlow ops (`_apply_rule`: the fused op where one
expresses the rule, as tf_keras's legacy optimizers), after an in-place decay
pass; see DESIGN.md section 4.
"""
import tensorflow as tf  # type: ignore[import-untyped]

from keras_adamw.adapter.api import AdamWFront, NadamWFront, SGDWFront, document
from keras_adamw.core import rules
from keras_adamw.keras2.base import (
    ATTRIBUTES,
    TF_MATH,
    WORDS,
    FusedInputs,
    Keras2Adapter,
)
from keras_adamw.keras2.framework import keras2, optimizer_v2

register = keras2.utils.register_keras_serializable(package="keras_adamw")


def _assign_moments(optimizer, var, grad, fused):
    """`m`, `v` slots updated in place (`core.rules.adam_moments`); their new values."""
    m, v = optimizer.get_slot(var, "m"), optimizer.get_slot(var, "v")
    m_new, v_new = rules.adam_moments(m.read_value(), v.read_value(), grad,
                                      fused.beta_1, fused.beta_2)
    use_locking = optimizer._use_locking
    return (tf.compat.v1.assign(m, m_new, use_locking=use_locking),
            tf.compat.v1.assign(v, v_new, use_locking=use_locking))


def _adam_inputs(optimizer, t):
    """Betas, their powers at step `t` (fused-op inputs) and epsilon, float32."""
    beta_1 = tf.constant(optimizer.beta_1, tf.float32)
    beta_2 = tf.constant(optimizer.beta_2, tf.float32)
    return FusedInputs(beta_1=beta_1, beta_2=beta_2, beta_1_power=tf.pow(beta_1, t),
                       beta_2_power=tf.pow(beta_2, t),
                       epsilon=tf.constant(optimizer.epsilon, tf.float32))


class _AdamFamily(Keras2Adapter, optimizer_v2.OptimizerV2):
    """The slots of AdamW and NadamW: `m`, `v` (and `vhat` with amsgrad)."""

    _OWN_CONFIG: tuple[str, ...] = ("beta_1", "beta_2", "epsilon")
    _SLOT_KINDS = ("m", "v")

    def _slot_kinds(self):
        return self._SLOT_KINDS

    def _create_slots(self, var_list):
        for slot in self._slot_kinds():
            for var in var_list:
                self.add_slot(var, slot)
        super()._create_slots(var_list)

    def _slot_variables(self, var):
        return tuple(self.get_slot(var, name) for name in self._slot_kinds())

    def _fused_inputs(self, t):
        return _adam_inputs(self, t)


@register
class AdamW(AdamWFront, _AdamFamily):
    __doc__ = document(AdamWFront, WORDS, ATTRIBUTES)
    _OWN_CONFIG = _AdamFamily._OWN_CONFIG + ("amsgrad",)

    def _slot_kinds(self):
        return self._SLOT_KINDS + (("vhat",) if self.amsgrad else ())

    @property
    def _FUSED_RULE(self):
        # TensorFlow has no XLA kernel for `ResourceApplyAdamWithAmsgrad`: it
        # failed in `jit_compile` train steps, the compiled pass works in all.
        return not self.amsgrad

    def _apply_rule(self, grad, var, scalars, fused):
        """`ResourceApplyAdam[WithAmsgrad]` with `lr = eta lr_v` (it folds the
        bias correction `sqrt(1 - b2^t) / (1 - b1^t)` in from the beta powers);
        with bounds, composite ops."""
        if scalars.bounds is not None:
            return self._apply_bounded(grad, var, scalars, fused)
        slots = self._slot_variables(var)
        args = {"var": var.handle, "m": slots[0].handle, "v": slots[1].handle,
                "beta1_power": fused.beta_1_power, "beta2_power": fused.beta_2_power,
                "lr": scalars.eta_lr, "beta1": fused.beta_1, "beta2": fused.beta_2,
                "epsilon": fused.epsilon, "grad": grad, "use_locking": self._use_locking}
        if self.amsgrad:
            return tf.raw_ops.ResourceApplyAdamWithAmsgrad(vhat=slots[2].handle, **args)
        return tf.raw_ops.ResourceApplyAdam(**args)

    def _apply_bounded(self, grad, var, s, fused):
        """`theta -= clip(eta lr_v bias_correction / (sqrt(v) + eps)) m`."""
        m_new, v_new = _assign_moments(self, var, grad, fused)
        if self.amsgrad:
            vhat = self.get_slot(var, "vhat")
            v_new = tf.compat.v1.assign(vhat, tf.maximum(vhat.read_value(), v_new),
                                        use_locking=self._use_locking)
        rate = rules.adaptive_rate(s.step_size, v_new, fused.epsilon, TF_MATH)
        return var.assign_sub(rules.clip_rate(rate, s.bounds, TF_MATH) * m_new,
                              use_locking=self._use_locking, read_value=False)

    def _effective_rate(self, var, step_size, iterations):
        v = self.get_slot(var, "vhat" if self.amsgrad else "v")
        return rules.adaptive_rate(step_size, v.read_value(), self.epsilon, TF_MATH)


@register
class NadamW(NadamWFront, _AdamFamily):
    __doc__ = document(NadamWFront, WORDS, ATTRIBUTES)
    _EXTRA_STATE = (("momentum_cache", 1.0),)
    _FUSED_RULE = False
    _OWN_CONFIG = _AdamFamily._OWN_CONFIG + ("schedule_decay",)

    def _advance_u_product(self, u_t):
        """`prod_t` is the optimizer weight `momentum_cache`, as in legacy `Nadam`."""
        cache = self._state_variables()["momentum_cache"]
        return tf.identity(tf.compat.v1.assign(cache, cache * u_t,
                                               use_locking=self._use_locking))

    def _apply_rule(self, grad, var, scalars, fused):
        """Composite TensorFlow ops (below `xla_min_size`, or with bounds)."""
        s = scalars
        m_new, v_new = _assign_moments(self, var, grad, fused)
        if s.bounds is None:
            delta = s.step_size * rules.nadam_direction(m_new, v_new, grad, s.nadam,
                                                        fused.epsilon, TF_MATH)
        else:
            rate = rules.adaptive_rate(s.step_size, v_new, fused.epsilon, TF_MATH,
                                       s.nadam.v_correction)
            delta = rules.clip_rate(rate, s.bounds, TF_MATH) * rules.nadam_momentum_bar(
                m_new, grad, s.nadam)
        return var.assign_sub(delta, use_locking=self._use_locking, read_value=False)

    def _effective_rate(self, var, step_size, iterations):
        v_correction = 1.0 / rules.one_minus_power(self._schedule_betas()[1], iterations,
                                                   TF_MATH)
        return rules.adaptive_rate(step_size, self.get_slot(var, "v").read_value(),
                                   self.epsilon, TF_MATH, tf.cast(v_correction, var.dtype))


@register
class SGDW(SGDWFront, Keras2Adapter, optimizer_v2.OptimizerV2):
    __doc__ = document(SGDWFront, WORDS, ATTRIBUTES)
    _HYPERS = ("momentum",)
    _OWN_CONFIG = ("momentum", "nesterov")
    # Momentum SGD's fused op costs what the compiled pass costs per element,
    # so the compiled pass pays off only where it saves the decay pass on a large
    # variable; below this size its fixed cost per call dominates.
    xla_min_size = 2 ** 17

    def _init_framework(self, learning_rate, name, kwargs, hyperparameters):
        super()._init_framework(learning_rate, name, kwargs, hyperparameters)
        self._initial_momentum = hyperparameters["momentum"]

    def _create_slots(self, var_list):
        if self._initial_momentum > 0:
            for var in var_list:
                self.add_slot(var, "momentum")
        super()._create_slots(var_list)

    def _slot_variables(self, var):
        return (self.get_slot(var, "momentum"),) if self._initial_momentum > 0 else ()

    def _fused_inputs(self, t):
        return FusedInputs(momentum=tf.identity(self._get_hyper("momentum", tf.float32)))

    def _bounded(self, scalars):
        """Each rule's `eta lr_v` clipped to the bounds (a scalar rate: the fused
        and single-pass kernels then apply the bounded step)."""
        rate = rules.clip_rate(scalars.eta_lr, scalars.bounds, TF_MATH)
        return scalars._replace(eta_lr=rate, step_size=rate, bounds=None)

    def _rows_only(self, scalars):
        # theta - eta lr_v g changes only g's rows when nothing else moves theta.
        return self._initial_momentum <= 0 and not scalars.decayed

    def _effective_rate(self, var, step_size, iterations):
        return tf.broadcast_to(step_size, var.shape)

    def _apply_rule(self, grad, var, scalars, fused):
        """`ResourceApplyKerasMomentum` (or plain descent) with `lr = eta lr_v`."""
        if self._initial_momentum <= 0:
            return tf.raw_ops.ResourceApplyGradientDescent(
                var=var.handle, alpha=scalars.eta_lr, delta=grad,
                use_locking=self._use_locking)
        return tf.raw_ops.ResourceApplyKerasMomentum(
            var=var.handle, accum=self.get_slot(var, "momentum").handle, lr=scalars.eta_lr,
            grad=grad, momentum=fused.momentum, use_locking=self._use_locking,
            use_nesterov=self.nesterov)
