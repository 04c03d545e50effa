"""The optimizers' public front: signatures, docstrings and own arguments, once.

`AdamWFront`, `NadamWFront` and `SGDWFront` come first in the bases of both
flavours' `AdamW`, `NadamW` and `SGDW`: each `__init__` checks the optimizer's
own arguments and hands its `locals()` to `OptimizerAdapter._construct`. Their
docstrings are templates (in the way of Keras's `base_optimizer_keyword_args`)
that `document` fills with the flavour's words.
"""
from keras_adamw.core import rules
from keras_adamw.core.checks import check_beta, check_bool, check_number

SHARED_ARGS = """\
        model: a {model} whose L1/L2 regularizers give `weight_decays`.
        zero_penalties: with `model`, zero those regularizers (recommended).
        total_iterations: updates per cosine cycle; also normalises `weight_decays`.
        total_iterations_wd: normalisation of `weight_decays` (default
            `total_iterations`).
        use_cosine_annealing: multiply the step by the cosine `eta_t`.
        lr_multipliers: `{{layer name or regex: multiplier}}`; longest match wins.
        weight_decays: `{{{variable}: (l1, l2)}}`, paper convention.
        autorestart: restart the cycle after `total_iterations` updates
            (default: `use_cosine_annealing`).
        init_verbose: print the per-variable table at build when multipliers,
            decays or layer-wise rates are set.
        eta_min: `eta_t` at the end of a cycle.
        eta_max: `eta_t` at the start of a cycle.
        t_cur: initial position in the cycle (`-1` restarts).
        name: optimizer name.
        **kwargs: {framework} arguments ({framework_kwargs}),
            and `lr`, `decay` (legacy inverse-time decay), `weight_decay` (Keras
            convention lambda: a number, a `LearningRateSchedule` or a callable),
            `exclude_from_weight_decay` (regexes of {variable}s),
            `decay_coupling` (the decay's factor: "lr" lr_v, "none" 1, "lr_ratio"
            lr_v / lr_peak, "corrected" lr_v^2 / lr_peak; default "lr" for
            `weight_decay`, "none" for `weight_decays`), `lr_peak` (default: the
            learning rate's peak), `decay_to` ("zero"; "init": the decays act on
            theta - theta_0, theta_0 the value at build; or {{pattern: target}}),
            `layerwise_lr_decay`, `effective_lr_bounds`."""


def document(front, flavour_words, attributes=""):
    """The docstring of a flavour's optimizer: the front's template filled in.

    Args:
        front: `AdamWFront`, `NadamWFront` or `SGDWFront`.
        flavour_words: `{"model", "variable", "framework", "framework_kwargs",
            "epsilon"}` in the flavour's terms.
        attributes: the flavour's "Attributes:" section, if any.
    """
    shared = SHARED_ARGS.format(**flavour_words)
    return front.TEMPLATE.format(shared=shared, **flavour_words) + attributes


def adam_arguments(optimizer, beta_1, beta_2, epsilon):
    """The checked arguments AdamW and NadamW share."""
    return {"beta_1": check_beta("beta_1", beta_1), "beta_2": check_beta("beta_2", beta_2),
            "epsilon": optimizer._check_epsilon(epsilon)}


class AdamWFront:
    TEMPLATE = """Adam with decoupled weight decay, warm restarts, lr multipliers ({framework}).

    Loshchilov & Hutter, "Decoupled Weight Decay Regularization" (arXiv:1711.05101).
    Per update, `t = iterations + 1`, `lr_v = lr * multiplier(v)`, `eta = eta_t`:

    ```
    m = b1 m + (1 - b1) g
    v = b2 v + (1 - b2) g^2            (amsgrad: vhat = max(vhat, v), used below)
    theta -= eta lr_v sqrt(1 - b2^t) / (1 - b1^t) m / (sqrt(v) + eps)
    theta -= eta c (l1_n sign(theta) + l2_n theta)   weight_decays, l_n = l sqrt(1/T_wd)
    theta -= eta c lambda(t) theta                   weight_decay=lambda (or a schedule)
    ```
    (decays from theta before the update; `c` by `decay_coupling`: `lr_v` for
    `weight_decay` and 1 for `weight_decays` by default). Then `t_cur` advances (restarting at
    `total_iterations` with `autorestart`) and `eta_t` follows the cosine.

    Args:
        learning_rate: float, `LearningRateSchedule` or callable. Alias `lr=`.
        beta_1: decay of the first moment, in [0, 1).
        beta_2: decay of the second moment, in [0, 1).
        epsilon: added to `sqrt(v)`; `None` means `{epsilon}`.
        amsgrad: use the maximum of past second moments.
{shared}
"""
    _kind = "adamw"

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=None,
                 amsgrad=False, model=None, zero_penalties=True, total_iterations=0,
                 total_iterations_wd=None, use_cosine_annealing=False, lr_multipliers=None,
                 weight_decays=None, autorestart=None, init_verbose=True, eta_min=0,
                 eta_max=1, t_cur=0, name="AdamW", **kwargs):
        self._construct(locals(), amsgrad=check_bool("amsgrad", amsgrad),
                        **adam_arguments(self, beta_1, beta_2, epsilon))

    def _step_coefficients(self, lr, t):
        """`(bias_correction, None)`: `sqrt(1 - b2^t) / (1 - b1^t)` from the betas
        the moments are updated with."""
        return rules.adam_bias_correction(*self._kernel_betas(), t, self._math), None


class NadamWFront:
    TEMPLATE = """Nadam (Dozat) with decoupled weight decay, restarts, lr multipliers ({framework}).

    Momentum schedule `u_t = b1 (1 - 0.5 * 0.96^(schedule_decay t))` as in the
    paper and Keras 2 (`schedule_decay=0.004`; Keras 3's Nadam is 1.0):

    ```
    m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;  prod_t = u_1 ... u_t
    m_bar = (1 - u_t) g / (1 - prod_t) + u_{{t+1}} m / (1 - prod_t u_{{t+1}})
    theta -= eta lr_v m_bar / (sqrt(v / (1 - b2^t)) + eps)
    ```
    then the decoupled decays and the schedule advance of `AdamW`.

    Args:
        learning_rate: float, `LearningRateSchedule` or callable. Alias `lr=`.
        beta_1: decay of the first moment, in [0, 1).
        beta_2: decay of the second moment, in [0, 1).
        epsilon: added to `sqrt(v / (1 - b2^t))`; `None` means `{epsilon}`.
        schedule_decay: exponent scale of the momentum schedule, >= 0.
{shared}
"""
    _kind = "nadamw"

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=None,
                 schedule_decay=0.004, model=None, zero_penalties=True,
                 total_iterations=0, total_iterations_wd=None, use_cosine_annealing=False,
                 lr_multipliers=None, weight_decays=None, autorestart=None,
                 init_verbose=True, eta_min=0, eta_max=1, t_cur=0, name="NadamW", **kwargs):
        self._construct(locals(), **adam_arguments(self, beta_1, beta_2, epsilon),
                        schedule_decay=check_number("schedule_decay", schedule_decay, low=0))

    def _step_coefficients(self, lr, t):
        """`(None, NadamCoefficients)` of this step; advances `prod_t` once."""
        beta_1, beta_2 = self._schedule_betas()
        u_t = rules.nadam_momentum(beta_1, self.schedule_decay, t, self._math)
        u_next = rules.nadam_momentum(beta_1, self.schedule_decay, t + 1.0, self._math)
        u_product = self._advance_u_product(u_t)
        return None, rules.nadam_coefficients(u_t, u_next, u_product, beta_2, t, self._math)


class SGDWFront:
    TEMPLATE = """SGD (Keras momentum) with decoupled weight decay and warm restarts ({framework}).

    ```
    velocity = mu velocity - eta lr_v g
    theta += velocity                (nesterov: theta += mu velocity - eta lr_v g)
    ```
    (`momentum=0`: `theta -= eta lr_v g`), then the decoupled decays and the
    schedule advance of `AdamW`.

    Args:
        learning_rate: float, `LearningRateSchedule` or callable. Alias `lr=`.
        momentum: float in [0, 1] (integers accepted).
        nesterov: use Nesterov momentum.
{shared}
"""
    _kind = "sgdw"

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, model=None,
                 zero_penalties=True, total_iterations=0, total_iterations_wd=None,
                 use_cosine_annealing=False, lr_multipliers=None, weight_decays=None,
                 autorestart=None, init_verbose=True, eta_min=0, eta_max=1, t_cur=0,
                 name="SGDW", **kwargs):
        self._construct(locals(),
                        momentum=check_number("momentum", momentum, low=0, high=1),
                        nesterov=check_bool("nesterov", nesterov))

    def _step_coefficients(self, lr, t):
        return None, None
