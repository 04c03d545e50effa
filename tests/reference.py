"""Float64 numpy oracle of the keras_adamw update rules.

This module is the test oracle of the project. It is written from section 4
("Semantics") of ``DESIGN.md`` and from the papers it cites, never from the
library's adapters, and it imports numpy only:

- Loshchilov & Hutter, "Decoupled Weight Decay Regularization"
  (arXiv:1711.05101): decoupled decay, its normalisation
  ``sqrt(1 / total_iterations_wd)`` and the schedule multiplier ``eta_t`` with
  cosine warm restarts (SGDR).
- Adam as the Keras family writes it: epsilon added to ``sqrt(v)`` and the
  bias correction folded into the step size.
- Dozat's Nadam as tf_keras' legacy ``Nadam`` writes it, with the momentum
  schedule ``u_t = beta_1 * (1 - 0.5 * 0.96 ** (schedule_decay * t))``.
- SGD with momentum in the Keras convention (velocity holds the step).

Everything is computed in float64. One call to ``ReferenceOptimizer.step`` is
one applied update, in this order::

    iterations is the count before the update; t = iterations + 1
    lr   = learning_rate_fn(iterations) or learning_rate
    lr  *= 1 / (1 + decay * iterations)                  # when decay > 0
    eta  = eta_t                                         # as it stands
    for each variable theta with gradient g:
        lr_v   = lr * multiplier
        theta += kind_increment(g, lr_v, eta, t)         # Adam/Nadam/SGD
        d = theta0 - anchor (decay_to="init"), else theta0
        theta -= eta * c("none") * s * (l1 * sign(d) + l2 * d)
        theta -= eta * c("lr") * weight_decay(iterations) * d   # unless masked
    t_cur  = 0 if autorestart and t_cur == T - 1 else t_cur + 1
    eta_t  = cosine_eta(t_cur, T, eta_min, eta_max)      # with annealing
    iterations += 1

where ``theta0`` is the variable before this update, ``T`` is
``total_iterations``, ``s = sqrt(1 / total_iterations_wd)`` and ``c(default)``
the decay coupling (``decay_coupling``, else ``default``): ``"lr"`` gives
``lr_v``, ``"none"`` 1, ``"lr_ratio"`` ``lr_v / lr_peak``, ``"corrected"``
``lr_v**2 / lr_peak`` (AdamC). ``weight_decay`` may be a schedule of the
iterations before the update.

The oracle does not model the library's warnings or automatic switch-offs:
settings that the library would turn off (for example cosine annealing with
``total_iterations <= 1``) raise ``ValueError`` here instead.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

KINDS = ("adamw", "nadamw", "sgdw")
COUPLINGS = ("lr", "none", "lr_ratio", "corrected")
NADAM_DECAY_BASE = 0.96


# ---------------------------------------------------------------------------
# Pure helpers
# ---------------------------------------------------------------------------


def cosine_eta(t_cur, total_iterations, eta_min, eta_max) -> float:
    """Cosine-annealed schedule multiplier of SGDR.

    ``eta = eta_min + (eta_max - eta_min) * (1 + cos(pi * t_cur / (T - 1))) / 2``
    so that a cycle of ``T`` updates runs from ``eta_max`` (``t_cur = 0``) to
    ``eta_min`` (``t_cur = T - 1``).

    Args:
        t_cur: Position in the current cycle (may be negative or past the end;
            the formula is applied as is).
        total_iterations: Cycle length ``T``; must be greater than 1.
        eta_min: Multiplier at the end of a cycle.
        eta_max: Multiplier at the start of a cycle.

    Returns:
        The multiplier as a Python float.

    Raises:
        ValueError: If ``total_iterations <= 1``.
    """
    if total_iterations <= 1:
        raise ValueError(
            "Argument `total_iterations` must be > 1 for cosine annealing. "
            f"Received: total_iterations={total_iterations}"
        )
    phase = math.pi * float(t_cur) / float(total_iterations - 1)
    return float(eta_min) + (float(eta_max) - float(eta_min)) * (1.0 + math.cos(phase)) / 2.0


def next_t_cur(t_cur, total_iterations, autorestart) -> int:
    """Advance the cycle position by one applied update.

    Args:
        t_cur: Position before the update.
        total_iterations: Cycle length ``T``.
        autorestart: Whether a cycle restarts by itself after ``T`` updates.

    Returns:
        ``0`` if ``autorestart`` and ``t_cur == T - 1``, else ``t_cur + 1``.
    """
    if autorestart and t_cur == total_iterations - 1:
        return 0
    return int(t_cur) + 1


def densify(values, indices, shape) -> np.ndarray:
    """Turn an ``IndexedSlices``-like gradient into the equivalent dense one.

    Rows named several times in ``indices`` are summed, as tf_keras does.

    Args:
        values: Array of shape ``(n,) + shape[1:]``.
        indices: Integer array of shape ``(n,)``, each in ``[0, shape[0])``.
        shape: Dense shape of the variable.

    Returns:
        A float64 array of ``shape``; rows absent from ``indices`` are zero.

    Raises:
        ValueError: If the shapes disagree or an index is out of range.
    """
    shape = tuple(int(d) for d in shape)
    values = np.asarray(values, dtype=np.float64)
    indices = np.asarray(indices)
    if not shape:
        raise ValueError("Argument `shape` must have at least one dimension. Received: shape=()")
    if indices.ndim != 1 or (indices.size and not np.issubdtype(indices.dtype, np.integer)):
        raise ValueError(
            "Argument `indices` must be a 1-D integer array. "
            f"Received: indices with shape {indices.shape} and dtype {indices.dtype}"
        )
    if values.shape != (indices.shape[0],) + shape[1:]:
        raise ValueError(
            f"Argument `values` must have shape {(indices.shape[0],) + shape[1:]}. "
            f"Received: values.shape={values.shape}"
        )
    indices = indices.astype(np.int64)
    if indices.size and (indices.min() < 0 or indices.max() >= shape[0]):
        raise ValueError(
            f"Argument `indices` must lie in [0, {shape[0]}). Received: indices={indices.tolist()}"
        )
    dense = np.zeros(shape, dtype=np.float64)
    np.add.at(dense, indices, values)
    return dense


def scheduled_lr(iterations, learning_rate, learning_rate_fn=None, decay=0.0) -> float:
    """Learning rate of the update made when ``iterations`` updates are done.

    Args:
        iterations: Count of updates applied before this one.
        learning_rate: Constant learning rate (used when no function is given).
        learning_rate_fn: Optional callable ``iterations -> lr``.
        decay: Legacy inverse-time decay; applied when positive.

    Returns:
        ``lr(iterations) / (1 + decay * iterations)`` (no factor if decay is 0).
    """
    if learning_rate_fn is not None:
        lr = float(learning_rate_fn(iterations))
    else:
        lr = float(learning_rate)
    if decay > 0:
        lr *= 1.0 / (1.0 + float(decay) * iterations)
    return lr


def adam_step_factor(t, beta_1, beta_2) -> float:
    """Adam's bias correction folded into the step size (Keras family).

    Args:
        t: One-based step number.
        beta_1: First-moment decay.
        beta_2: Second-moment decay.

    Returns:
        ``sqrt(1 - beta_2**t) / (1 - beta_1**t)``.
    """
    return math.sqrt(1.0 - beta_2**t) / (1.0 - beta_1**t)


def nadam_momentum(t, beta_1, schedule_decay) -> float:
    """Dozat's momentum schedule ``u_t``.

    Args:
        t: One-based step number.
        beta_1: Base momentum.
        schedule_decay: Schedule decay (0.004 in the paper and tf_keras).

    Returns:
        ``beta_1 * (1 - 0.5 * 0.96 ** (schedule_decay * t))``.
    """
    return beta_1 * (1.0 - 0.5 * NADAM_DECAY_BASE ** (schedule_decay * t))


def paper_decay_term(theta, l1, l2) -> np.ndarray:
    """Unnormalised decoupled decay of the paper, ``l1 sign(theta) + l2 theta``.

    Args:
        theta: Variable before the update.
        l1: L1 coefficient.
        l2: L2 coefficient.

    Returns:
        The decay direction (to be scaled by ``eta * s`` and subtracted).
    """
    return float(l1) * np.sign(theta) + float(l2) * theta


# ---------------------------------------------------------------------------
# Argument checks
# ---------------------------------------------------------------------------


def _per_variable(name, value, default, count) -> list:
    """Expand an optional per-variable list, checking its length."""
    if value is None:
        return [default] * count
    value = list(value)
    if len(value) != count:
        raise ValueError(
            f"Argument `{name}` must have one entry per variable ({count}). "
            f"Received: {name} with {len(value)} entries"
        )
    return value


def _check_l1_l2(l1_l2) -> list:
    """Convert ``[(l1, l2), ...]`` to floats, checking each entry is a pair."""
    pairs = []
    for entry in l1_l2:
        entry = tuple(entry)
        if len(entry) != 2:
            raise ValueError(f"Argument `l1_l2` entries must be (l1, l2) pairs. Received: {entry}")
        pairs.append((float(entry[0]), float(entry[1])))
    return pairs


def _check_schedule(total_iterations, use_cosine_annealing, autorestart) -> None:
    """Refuse schedule settings whose maths is undefined."""
    if total_iterations < 0:
        raise ValueError(
            "Argument `total_iterations` must be >= 0. "
            f"Received: total_iterations={total_iterations}"
        )
    if (use_cosine_annealing or autorestart) and total_iterations <= 1:
        raise ValueError(
            "Cosine annealing and autorestart need `total_iterations` > 1. "
            f"Received: total_iterations={total_iterations}, "
            f"use_cosine_annealing={use_cosine_annealing}, autorestart={autorestart}"
        )


def _check_array(name, index, array, shape) -> np.ndarray:
    """Return ``array`` as a float64 copy, checking its shape."""
    array = np.array(array, dtype=np.float64, copy=True)
    if array.shape != tuple(shape):
        raise ValueError(
            f"Argument `{name}[{index}]` must have shape {tuple(shape)}. "
            f"Received: shape={array.shape}"
        )
    return array


# ---------------------------------------------------------------------------
# The oracle
# ---------------------------------------------------------------------------


class ReferenceOptimizer:
    """Float64 numpy oracle of AdamW, NadamW and SGDW (DESIGN.md section 4).

    The oracle does not hold the variables: ``step`` takes the current values
    and the gradients and returns the new values. It holds the optimizer state,
    readable after every step:

    Attributes:
        iterations: Count of applied updates.
        t_cur: Position in the current warm-restart cycle.
        eta_t: Schedule multiplier the *next* update will use.
        lr_t: Scalar learning rate of the last update (``eta * lr`` times
            Adam's bias correction for AdamW); 0.0 before the first update.
        m: First moments (AdamW, NadamW).
        v: Second moments (AdamW, NadamW).
        vhat: Running maximum of ``v`` (AdamW with ``amsgrad``).
        velocity: Momentum buffers (SGDW with ``momentum > 0``).
        u_product: NadamW's product ``u_1 * ... * u_t`` (1.0 before any update).
    """

    def __init__(
        self,
        kind,
        shapes,
        *,
        learning_rate=0.001,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-7,
        amsgrad=False,
        momentum=0.0,
        nesterov=False,
        schedule_decay=0.004,
        decay=0.0,
        multipliers=None,
        l1_l2=None,
        weight_decay=None,
        decay_mask=None,
        total_iterations=0,
        total_iterations_wd=None,
        use_cosine_annealing=False,
        autorestart=None,
        eta_min=0.0,
        eta_max=1.0,
        t_cur=0,
        learning_rate_fn: Callable | None = None,
        effective_lr_bounds=None,
        weight_decay_fn: Callable | None = None,
        decay_coupling=None,
        lr_peak=None,
        anchors=None,
    ):
        """Build the oracle.

        Args:
            kind: One of ``"adamw"``, ``"nadamw"``, ``"sgdw"``.
            shapes: Shapes of the variables, in the order of ``step``'s lists.
            learning_rate: Constant learning rate.
            beta_1: First-moment decay (AdamW, NadamW).
            beta_2: Second-moment decay (AdamW, NadamW).
            epsilon: Added to ``sqrt(v)`` (AdamW, NadamW).
            amsgrad: AdamW only: divide by ``sqrt(max(v seen so far))``.
            momentum: SGDW momentum ``mu`` in ``[0, 1]``.
            nesterov: SGDW Nesterov momentum.
            schedule_decay: NadamW momentum-schedule decay.
            decay: Legacy inverse-time learning-rate decay (``>= 0``).
            multipliers: Per-variable learning-rate multipliers (default 1.0).
            l1_l2: Per-variable ``(l1, l2)`` of the paper convention (default
                ``(0, 0)``); normalised by ``sqrt(1 / total_iterations_wd)``,
                not multiplied by the learning rate or the multipliers.
            weight_decay: Keras/torch-convention ``lambda`` or None.
            decay_mask: Per-variable bools; False excludes the variable from
                ``weight_decay`` (not from ``l1_l2``). Default all True.
            total_iterations: Cycle length ``T`` of the warm restarts.
            total_iterations_wd: Normalisation length of ``l1_l2``; defaults
                to ``total_iterations``.
            use_cosine_annealing: Anneal ``eta_t`` with ``cosine_eta``.
            autorestart: Restart ``t_cur`` after ``T`` updates; None means
                ``use_cosine_annealing``.
            eta_min: Lower end of ``eta_t``.
            eta_max: Upper end of ``eta_t``.
            t_cur: Initial cycle position.
            learning_rate_fn: Optional callable ``iterations -> lr`` that
                replaces ``learning_rate``.
            effective_lr_bounds: Optional ``(lower, upper)``; each side None,
                a number, or a callable ``iterations -> bound`` (iterations
                before the update). The per-element effective learning rate
                (AdamW ``eta lr_v sqrt(1-b2^t)/(1-b1^t) / (sqrt(v)+eps)``, NadamW
                ``eta lr_v / (sqrt(v/(1-b2^t))+eps)``, SGDW ``eta lr_v``) is
                clipped to it before the step (AdaBound-style); the decay terms
                are not clipped. None (default): no clipping.
            weight_decay_fn: Optional callable ``iterations -> lambda`` that
                replaces ``weight_decay`` (a schedule of the decay; iterations
                before the update).
            decay_coupling: The factor of both decay conventions: ``"lr"``
                (``lr_v``), ``"none"`` (1), ``"lr_ratio"`` (``lr_v / lr_peak``),
                ``"corrected"`` (``lr_v**2 / lr_peak``). None: ``"lr"`` for
                ``weight_decay``, ``"none"`` for ``l1_l2``.
            lr_peak: The peak learning rate of the two ratios.
            anchors: Per-variable ``theta_0`` (``decay_to="init"``: the decays act
                on ``theta - theta_0``) or None (toward zero); default all None.

        Raises:
            ValueError: For an unknown kind or inconsistent settings.
        """
        if kind not in KINDS:
            raise ValueError(f"Argument `kind` must be one of {KINDS}. Received: kind={kind!r}")
        self.kind = kind
        self.shapes = [tuple(int(d) for d in shape) for shape in shapes]
        count = len(self.shapes)
        self._check_hyperparameters(amsgrad, momentum, nesterov, decay)

        self.learning_rate = float(learning_rate)
        self.learning_rate_fn = learning_rate_fn
        self.beta_1, self.beta_2, self.epsilon = float(beta_1), float(beta_2), float(epsilon)
        self.amsgrad, self.momentum, self.nesterov = bool(amsgrad), float(momentum), bool(nesterov)
        self.schedule_decay, self.decay = float(schedule_decay), float(decay)

        self.multipliers = [float(x) for x in _per_variable("multipliers", multipliers, 1.0, count)]
        self.l1_l2 = _check_l1_l2(_per_variable("l1_l2", l1_l2, (0.0, 0.0), count))
        self.weight_decay = None if weight_decay is None else float(weight_decay)
        self.weight_decay_fn = weight_decay_fn
        self.anchors = [None if a is None else np.array(a, dtype=np.float64)
                        for a in _per_variable("anchors", anchors, None, count)]
        if decay_coupling not in (None, *COUPLINGS):
            raise ValueError(f"Argument `decay_coupling` must be one of {COUPLINGS} or None. "
                             f"Received: decay_coupling={decay_coupling!r}")
        if decay_coupling in ("lr_ratio", "corrected") and not (lr_peak and lr_peak > 0):
            raise ValueError(f"Argument `lr_peak` must be > 0. Received: lr_peak={lr_peak!r}")
        self.decay_coupling = decay_coupling
        self.lr_peak = None if lr_peak is None else float(lr_peak)
        self.decay_mask = [bool(x) for x in _per_variable("decay_mask", decay_mask, True, count)]

        self.total_iterations = int(total_iterations)
        self.total_iterations_wd = int(
            total_iterations if total_iterations_wd is None else total_iterations_wd
        )
        self.use_cosine_annealing = bool(use_cosine_annealing)
        self.autorestart = self.use_cosine_annealing if autorestart is None else bool(autorestart)
        self.eta_min, self.eta_max = float(eta_min), float(eta_max)
        _check_schedule(self.total_iterations, self.use_cosine_annealing, self.autorestart)
        self.decay_scale = self._paper_decay_scale()

        self.effective_lr_bounds = effective_lr_bounds
        self.iterations = 0
        self.t_cur = int(t_cur)
        self.eta_t = self._eta_of(self.t_cur) if self.use_cosine_annealing else 1.0
        self.lr_t = 0.0
        self.u_product = 1.0
        self.m = [np.zeros(shape) for shape in self.shapes]
        self.v = [np.zeros(shape) for shape in self.shapes]
        self.vhat = [np.zeros(shape) for shape in self.shapes]
        self.velocity = [np.zeros(shape) for shape in self.shapes]

    # -- construction helpers -------------------------------------------------

    def _check_hyperparameters(self, amsgrad, momentum, nesterov, decay) -> None:
        """Refuse settings that do not fit ``self.kind``."""
        if amsgrad and self.kind != "adamw":
            raise ValueError(f"`amsgrad` is an AdamW option. Received: kind={self.kind!r}")
        if (momentum or nesterov) and self.kind != "sgdw":
            raise ValueError(
                f"`momentum`/`nesterov` are SGDW options. Received: kind={self.kind!r}"
            )
        if not 0.0 <= float(momentum) <= 1.0:
            raise ValueError(
                f"Argument `momentum` must be in [0, 1]. Received: momentum={momentum}"
            )
        if decay < 0:
            raise ValueError(f"Argument `decay` must be >= 0. Received: decay={decay}")

    def _paper_decay_scale(self) -> float:
        """``sqrt(1 / total_iterations_wd)``, or 0.0 when no ``l1_l2`` is set."""
        if not any(l1 or l2 for l1, l2 in self.l1_l2):
            return 0.0
        if self.total_iterations_wd <= 1:
            raise ValueError(
                "`l1_l2` decay needs `total_iterations_wd` (default `total_iterations`) > 1. "
                f"Received: total_iterations_wd={self.total_iterations_wd}"
            )
        return math.sqrt(1.0 / self.total_iterations_wd)

    def _eta_of(self, t_cur) -> float:
        """Cosine schedule multiplier at ``t_cur`` with this oracle's settings."""
        return cosine_eta(t_cur, self.total_iterations, self.eta_min, self.eta_max)

    # -- public API -----------------------------------------------------------

    def set_t_cur(self, value) -> None:
        """Set the cycle position (``-1`` is a manual restart).

        Only ``t_cur`` changes: the next update still uses ``eta_t`` as it
        stands; the update after it uses ``f(value + 1)``.

        Args:
            value: New cycle position.
        """
        self.t_cur = int(value)

    def step(self, params, grads) -> list[np.ndarray]:
        """Apply one update.

        Args:
            params: Current values, one array per variable.
            grads: Dense gradients, one per variable (use ``densify`` for
                sparse ones). A ``None`` gradient leaves that variable and its
                slots untouched, as Keras skips variables without gradient;
                the step counters still advance once.

        Returns:
            The new values as float64 copies (inputs are not modified).

        Raises:
            ValueError: If the lists or shapes do not match ``shapes``.
        """
        params, grads = self._check_inputs(params, grads)
        t = self.iterations + 1
        lr = scheduled_lr(self.iterations, self.learning_rate, self.learning_rate_fn, self.decay)
        eta = self.eta_t
        if self.kind == "nadamw":
            u_t, u_next = self._advance_nadam_schedule(t)
        new_params = []
        for i, (theta, g) in enumerate(zip(params, grads, strict=True)):
            if g is None:
                new_params.append(theta)
                continue
            lr_v = lr * self.multipliers[i]
            if self.kind == "adamw":
                increment = self._adam_increment(i, g, eta * lr_v, t)
            elif self.kind == "nadamw":
                increment = self._nadam_increment(i, g, eta * lr_v, t, u_t, u_next)
            else:
                increment = self._sgd_increment(i, g, eta * lr_v)
            new_params.append(theta + increment - self._decay(i, theta, eta, lr_v))
        self._finish_step(t, lr, eta)
        return new_params

    # -- step helpers ---------------------------------------------------------

    def _check_inputs(self, params, grads):
        """Convert inputs to float64 copies, checking counts and shapes."""
        params, grads = list(params), list(grads)
        for name, values in (("params", params), ("grads", grads)):
            if len(values) != len(self.shapes):
                raise ValueError(
                    f"Argument `{name}` must have {len(self.shapes)} entries. "
                    f"Received: {len(values)}"
                )
        params = [
            _check_array("params", i, p, s)
            for i, (p, s) in enumerate(zip(params, self.shapes, strict=True))
        ]
        grads = [
            None if g is None else _check_array("grads", i, g, s)
            for i, (g, s) in enumerate(zip(grads, self.shapes, strict=True))
        ]
        return params, grads

    def _advance_nadam_schedule(self, t):
        """Update ``u_product`` to ``u_1...u_t``; return ``(u_t, u_{t+1})``."""
        u_t = nadam_momentum(t, self.beta_1, self.schedule_decay)
        u_next = nadam_momentum(t + 1, self.beta_1, self.schedule_decay)
        self.u_product *= u_t
        return u_t, u_next

    def _update_moments(self, i, g) -> None:
        """Exponential moving averages of ``g`` and ``g**2`` for variable ``i``."""
        self.m[i] = self.beta_1 * self.m[i] + (1.0 - self.beta_1) * g
        self.v[i] = self.beta_2 * self.v[i] + (1.0 - self.beta_2) * np.square(g)

    def _adam_increment(self, i, g, step_size, t) -> np.ndarray:
        """AdamW's change of variable ``i`` (without decay)."""
        self._update_moments(i, g)
        denominator = self.v[i]
        if self.amsgrad:
            self.vhat[i] = np.maximum(self.vhat[i], self.v[i])
            denominator = self.vhat[i]
        alpha = step_size * adam_step_factor(t, self.beta_1, self.beta_2)
        if self.effective_lr_bounds is not None:
            rate = self._clip(alpha / (np.sqrt(denominator) + self.epsilon))
            return -rate * self.m[i]
        return -alpha * self.m[i] / (np.sqrt(denominator) + self.epsilon)

    def _nadam_increment(self, i, g, step_size, t, u_t, u_next) -> np.ndarray:
        """NadamW's change of variable ``i`` (without decay).

        ``u_product`` must already include ``u_t``.
        """
        self._update_moments(i, g)
        m_bar = (1.0 - u_t) * g / (1.0 - self.u_product) + u_next * self.m[i] / (
            1.0 - self.u_product * u_next
        )
        v_hat = self.v[i] / (1.0 - self.beta_2**t)
        if self.effective_lr_bounds is not None:
            return -self._clip(step_size / (np.sqrt(v_hat) + self.epsilon)) * m_bar
        return -step_size * m_bar / (np.sqrt(v_hat) + self.epsilon)

    def _sgd_increment(self, i, g, step_size) -> np.ndarray:
        """SGDW's change of variable ``i`` (without decay), Keras convention."""
        if self.effective_lr_bounds is not None:
            step_size = float(self._clip(step_size))
        if self.momentum == 0.0:
            return -step_size * g
        self.velocity[i] = self.momentum * self.velocity[i] - step_size * g
        if self.nesterov:
            return self.momentum * self.velocity[i] - step_size * g
        return self.velocity[i]

    def _clip(self, rate):
        """``rate`` clipped to ``effective_lr_bounds`` at the current iterations."""
        lower, upper = (
            None if b is None else float(b(self.iterations) if callable(b) else b)
            for b in self.effective_lr_bounds
        )
        if lower is not None:
            rate = np.maximum(rate, lower)
        if upper is not None:
            rate = np.minimum(rate, upper)
        return rate

    def _coupling(self, default, lr_v) -> float:
        """The factor of a decay term: ``decay_coupling``, else the convention's
        ``default`` (``"lr"`` for ``weight_decay``, ``"none"`` for ``l1_l2``)."""
        coupling = self.decay_coupling or default
        if coupling == "lr":
            return lr_v
        if coupling == "none":
            return 1.0
        if coupling == "lr_ratio":
            return lr_v / self.lr_peak
        return lr_v * lr_v / self.lr_peak

    def _decay(self, i, theta, eta, lr_v) -> np.ndarray:
        """Decoupled decay of variable ``i``, from its value before the update."""
        l1, l2 = self.l1_l2[i]
        if self.anchors[i] is not None:
            theta = theta - self.anchors[i]
        total = (eta * self._coupling("none", lr_v) * self.decay_scale
                 * paper_decay_term(theta, l1, l2))
        weight_decay = self.weight_decay
        if self.weight_decay_fn is not None:
            weight_decay = float(self.weight_decay_fn(self.iterations))
        if weight_decay is not None and self.decay_mask[i]:
            total = total + eta * self._coupling("lr", lr_v) * weight_decay * theta
        return total

    def _finish_step(self, t, lr, eta) -> None:
        """Advance ``t_cur``, ``eta_t``, ``iterations``; record ``lr_t``."""
        self.t_cur = next_t_cur(self.t_cur, self.total_iterations, self.autorestart)
        if self.use_cosine_annealing:
            self.eta_t = self._eta_of(self.t_cur)
        self.iterations += 1
        self.lr_t = eta * lr
        if self.kind == "adamw":
            self.lr_t *= adam_step_factor(t, self.beta_1, self.beta_2)

    def effective_learning_rate(self, i, multiplier) -> np.ndarray:
        """Per-element rate of the last update of variable ``i`` (section 4),
        from ``lr_t`` and the moments as they are now, clipped to the bounds.

        AdamW ``lr_t mult / (sqrt(v or vhat) + eps)`` (``lr_t`` holds the bias
        correction); NadamW ``lr_t mult / (sqrt(v / (1 - b2^t)) + eps)``; SGDW
        ``lr_t mult`` in the variable's shape.
        """
        t = self.iterations
        rate = self.lr_t * multiplier
        if self.kind == "sgdw":
            rate = np.full(self.shapes[i], rate)
        elif self.kind == "adamw":
            v = self.vhat[i] if self.amsgrad else self.v[i]
            rate = rate / (np.sqrt(v) + self.epsilon)
        else:
            rate = rate / (np.sqrt(self.v[i] / (1.0 - self.beta_2**t)) + self.epsilon)
        if self.effective_lr_bounds is None:
            return rate
        lower, upper = (None if b is None else float(b(t - 1) if callable(b) else b)
                        for b in self.effective_lr_bounds)
        return np.clip(rate, lower, upper)


__all__ = [
    "KINDS",
    "ReferenceOptimizer",
    "adam_step_factor",
    "cosine_eta",
    "densify",
    "nadam_momentum",
    "next_t_cur",
    "paper_decay_term",
    "scheduled_lr",
]
