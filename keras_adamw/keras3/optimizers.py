"""AdamW, NadamW and SGDW for Keras 3 (TensorFlow, JAX and PyTorch backends).

Subclasses of Keras's own Adam, Nadam and SGD, so clipping, EMA, loss scaling,
gradient accumulation and learning-rate schedules keep working. Each
`update_step` is the reference path (the rule in Keras ops, from
`keras_adamw.core.rules`) after one call to the kernel layer
(`keras_adamw.kernels`); see DESIGN.md section 4.
"""
import keras  # type: ignore[import-untyped]
from keras import ops  # type: ignore[import-untyped]

from keras_adamw.adapter.api import AdamWFront, NadamWFront, SGDWFront, document
from keras_adamw.core import rules
from keras_adamw.keras3.base import ATTRIBUTES, WORDS, Keras3Adapter
from keras_adamw.kernels import keras3 as kernels

register = keras.saving.register_keras_serializable(package="keras_adamw")


def _tensors(*variables):
    return [None if v is None else ops.convert_to_tensor(v) for v in variables]


@register
class AdamW(AdamWFront, Keras3Adapter, keras.optimizers.Adam):
    __doc__ = document(AdamWFront, WORDS, ATTRIBUTES)
    _FRAMEWORK_HYPERS = ("beta_1", "beta_2", "epsilon", "amsgrad")

    def _slot_variables(self, index):
        slots = (self._momentums[index], self._velocities[index])
        return slots + (self._velocity_hats[index],) if self.amsgrad else slots

    def update_step(self, gradient, variable, learning_rate):
        grad, s, index = self._variable_context(gradient, variable)
        if self._kernel_update(index, variable, grad, s):
            return
        m, v, *v_hat = self._slot_variables(index)
        theta, m_old, v_old = _tensors(variable, m, v)
        # The kernels' betas (float32 on TensorFlow): every path gives one set of numbers.
        m_new, v_new = rules.adam_moments(m_old, v_old, grad, *self._kernel_betas())
        self.assign(m, m_new)
        self.assign(v, v_new)
        if v_hat:
            v_new = ops.maximum(ops.convert_to_tensor(v_hat[0]), v_new)
            self.assign(v_hat[0], v_new)
        if s.bounds is None:
            delta = -s.step_size * rules.adam_direction(m_new, v_new, self.epsilon, ops)
        else:
            rate = rules.adaptive_rate(s.step_size, v_new, self.epsilon, ops)
            delta = -rules.clip_rate(rate, s.bounds, ops) * m_new
        self._assign_decayed(variable, theta, delta, s, index)

    def _effective_rate(self, variable, step_size, iterations):
        index = self._get_variable_index(variable)
        v = self._velocity_hats[index] if self.amsgrad else self._velocities[index]
        return rules.adaptive_rate(step_size, ops.convert_to_tensor(v), self.epsilon, ops)


@register
class NadamW(NadamWFront, Keras3Adapter, keras.optimizers.Nadam):
    __doc__ = document(NadamWFront, WORDS, ATTRIBUTES)
    _FRAMEWORK_HYPERS = ("beta_1", "beta_2", "epsilon")
    _OWN_CONFIG = ("schedule_decay",)

    def _keras_update_loop(self, grads, trainable_variables, learning_rate):
        # Skip Keras Nadam's own u_product advance (fixed schedule_decay=1).
        super(keras.optimizers.Nadam, self)._backend_update_step(
            grads, trainable_variables, learning_rate)

    def _schedule_betas(self):
        return self.beta_1, self.beta_2

    def _advance_u_product(self, u_t):
        u_product = ops.cast(self._u_product, "float32") * u_t
        self.assign(self._u_product, u_product)
        return u_product

    def _slot_variables(self, index):
        return self._momentums[index], self._velocities[index]

    def update_step(self, gradient, variable, learning_rate):
        grad, s, index = self._variable_context(gradient, variable)
        if self._kernel_update(index, variable, grad, s):
            return
        m, v = self._slot_variables(index)
        theta, m_old, v_old = _tensors(variable, m, v)
        m_new, v_new = rules.adam_moments(m_old, v_old, grad, self.beta_1, self.beta_2)
        self.assign(m, m_new)
        self.assign(v, v_new)
        if s.bounds is None:
            delta = -s.step_size * rules.nadam_direction(m_new, v_new, grad, s.nadam,
                                                         self.epsilon, ops)
        else:
            rate = rules.adaptive_rate(s.step_size, v_new, self.epsilon, ops,
                                       s.nadam.v_correction)
            delta = -rules.clip_rate(rate, s.bounds, ops) * rules.nadam_momentum_bar(
                m_new, grad, s.nadam)
        self._assign_decayed(variable, theta, delta, s, index)

    def _effective_rate(self, variable, step_size, iterations):
        v_correction = 1.0 / rules.one_minus_power(self.beta_2, iterations, ops)
        v = self._velocities[self._get_variable_index(variable)]
        return rules.adaptive_rate(step_size, ops.convert_to_tensor(v),
                                   self.epsilon, ops, ops.cast(v_correction, step_size.dtype))


@register
class SGDW(SGDWFront, Keras3Adapter, keras.optimizers.SGD):
    __doc__ = document(SGDWFront, WORDS, ATTRIBUTES)
    _FRAMEWORK_HYPERS = ("momentum", "nesterov")

    def _slot_variables(self, index):
        return () if self.momentum == 0 else (self.momentums[index],)

    def _rows_possible(self):
        return self.momentum == 0

    def _rows_only(self, variable):
        # theta - step * g changes only g's rows when nothing else moves theta.
        return self.momentum == 0 and not self._variable_rule(variable).has_decay

    def _sgd_scalars(self, variable):
        """`VariableScalars` with the step clipped by the bounds (SGD's per-element
        rate is the scalar step: bounds clip it, for every path), and the index."""
        s, index = self._variable_scalars(variable)
        step_size = rules.clip_rate(s.step_size, s.bounds, ops)
        return s._replace(step_size=step_size, eta_lr=step_size, bounds=None), index

    def update_step(self, gradient, variable, learning_rate):
        s, index = self._sgd_scalars(variable)
        grad = kernels.dense_gradient(gradient, variable.dtype)
        if self._kernel_update(index, variable, grad, s):
            return
        velocity = self._slot_variables(index)
        theta, = _tensors(variable)
        new_velocity, delta = rules.sgd_step(
            ops.convert_to_tensor(velocity[0]) if velocity else None, grad, s.step_size,
            self.momentum, self.nesterov)
        if velocity:
            self.assign(velocity[0], new_velocity)
        self._assign_decayed(variable, theta, delta, s, index)

    def _effective_rate(self, variable, step_size, iterations):
        return ops.broadcast_to(step_size, variable.shape)
