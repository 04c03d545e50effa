"""Typed per-step scalars, shared by both flavours and every kernel path.

An applied update computes `Step` once (float32, DESIGN.md section 4), then
`VariableScalars` once per (rule, dtype): what a kernel needs for one variable,
in the variable's dtype. Names mean one thing everywhere:

```
lr          learning_rate(iterations) x the legacy inverse-time factor
eta         eta_t before this update (cosine annealing; 1 without)
eta_lr      eta lr_v = eta lr multiplier(v)
step_size   eta lr_v bias_correction   (AdamW; eta_lr for NadamW and SGDW)
c_sign      eta f l1_n: the decay term c_sign sign(theta)          (None: no L1)
c_linear    eta (f l2_n + lambda(t) f_k): the term c_linear theta  (None: no L2)
            (f, f_k: `rules.coupling_factor`; by default 1 and lr_v)
```
"""
from typing import Any, NamedTuple

from keras_adamw.core import rules
from keras_adamw.core.rules import NadamCoefficients


class Step(NamedTuple):
    """The scalars of one applied update, float32, computed once per step.

    Attributes:
        lr: the scheduled learning rate, before `eta` and multipliers.
        eta: `eta_t` before this update.
        lr_t: the scalar rate of this update, `eta lr bias_correction` (the
            monitor's `lr_t`).
        bias_correction: AdamW's `sqrt(1 - b2^t) / (1 - b1^t)`; None for
            NadamW and SGDW.
        nadam: `NadamCoefficients` (NadamW), else None.
        bounds: `(lower, upper)` of `effective_lr_bounds` at this step, or None.
        weight_decay: a scheduled `weight_decay` at this step (`lambda(t)`), or
            None when it is a constant (held by the rules).
    """

    lr: Any
    eta: Any
    lr_t: Any
    bias_correction: Any = None
    nadam: NadamCoefficients | None = None
    bounds: tuple | None = None
    weight_decay: Any = None


class VariableScalars(NamedTuple):
    """One variable's scalars in its dtype: the `Step` with its rule applied.

    Attributes:
        eta_lr: `eta lr_v`.
        step_size: `eta lr_v bias_correction` (AdamW), else `eta_lr`.
        c_sign: `c_sign` of the decoupled decay, or None.
        c_linear: `c_linear` of the decoupled decay, or None.
        nadam: the step's `NadamCoefficients`, or None.
        bounds: the step's `(lower, upper)`, or None.
    """

    eta_lr: Any
    step_size: Any
    c_sign: Any = None
    c_linear: Any = None
    nadam: NadamCoefficients | None = None
    bounds: tuple | None = None

    @property
    def decayed(self):
        """Whether the variable has a decoupled decay term this step."""
        return self.c_sign is not None or self.c_linear is not None


def variable_scalars(step, rule, cast):
    """`VariableScalars` of `rule` (a `core.matching.VariableRule`) at `step`.

    Args:
        step: the `Step`.
        rule: the variable's rule (multiplier, decays).
        cast: `float32 scalar -> the variable's dtype`.
    """
    lr_v = step.lr * rule.multiplier
    eta_lr = step.eta * step.lr * rule.multiplier
    step_size = eta_lr if step.bias_correction is None else (
        step.eta * (step.lr * step.bias_correction) * rule.multiplier)
    c_sign, c_linear = rules.decay_coefficients(rule, step.eta, lr_v, step.weight_decay)
    return VariableScalars(
        eta_lr=cast(eta_lr), step_size=cast(step_size),
        c_sign=None if c_sign is None else cast(c_sign),
        c_linear=None if c_linear is None else cast(c_linear),
        nadam=None if step.nadam is None else step.nadam.cast(cast),
        bounds=None if step.bounds is None else tuple(
            None if b is None else cast(b) for b in step.bounds))
