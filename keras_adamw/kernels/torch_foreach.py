"""Multi-tensor update of the Keras 3 optimizers on the torch backend.

`kernels.keras3.run_step` calls `update` once per applied update, after the
adapter computed the per-step scalars (`core.step.Step`). The numbers are those of
DESIGN.md section 4 (the `update_step` of each optimizer); only the kernels
differ. Contiguous float32/float64 CPU variables go to the native host call
(`kernels.torch_native`, one call per rule kind); the others here, to torch's
fused multi-tensor kernels (`torch._fused_adamw_`,
`torch._fused_sgd_`) and `torch._foreach_*` ops, one call per group of
variables that share dtype, device and `VariableRule` (multiplier and decay).

How our rules map onto torch's kernels (exact algebra, checked by the oracle
tests on variables and slots):

```
torch fused AdamW, step count s:
  theta *= 1 - lr wd
  theta -= lr / (1 - b1^s) m / (sqrt(v) / sqrt(1 - b2^s) + eps)
with s = inf (bias corrections exactly 1), lr = eta mult alpha, wd = c_linear / lr,
alpha = lr sqrt(1 - b2^t) / (1 - b1^t):
  theta -= c_linear theta + eta mult alpha m / (sqrt(v) + eps)          (AdamW)

torch fused SGD, momentum 0:   x -= lr (y + wd x)
with lr = -b, wd = (a - 1) / b:  x = a x + b y                      (axpby_, SGDW)
```
NadamW is the fused AdamW kernel on the momentum term plus one `_foreach_addcdiv_`
for the gradient term (`update_nadamw`).

Grouping is done once per list of variables (cached by the variables' ids);
per step, the scalars reach the host in one transfer and every group costs a
few kernel launches, independent of its number of tensors. Small CPU tensors
run on one thread (`CPU_GRAIN_SIZE`).
"""
import contextlib
import dataclasses
import math
import weakref

import torch
from keras import ops  # type: ignore[import-untyped]

from keras_adamw.core import rules
from keras_adamw.kernels import torch_native

# Dtypes and device types that torch's fused Adam/SGD kernels accept.
FUSED_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
FUSED_DEVICES = ("cpu", "cuda")
# Private torch kernels (CPU and CUDA since torch 2.4); without them every
# variable takes the optimizer's own `update_step`.
KERNELS_AVAILABLE = hasattr(torch, "_fused_adamw_") and hasattr(torch, "_fused_sgd_")
# Elements below which a CPU tensor is updated on one thread: torch's fused
# CPU kernels split every tensor across all threads (no grain size), so many
# small tensors cost a fork/join each, and a timeslice each when the cores are
# oversubscribed. torch's elementwise ops use this grain size (at::GRAIN_SIZE).
CPU_GRAIN_SIZE = 32768
# The slots of `optimizer._slot_variables(index)`, named, by kind.
SLOT_NAMES = {"adamw": ("m", "v", "vhat"), "nadamw": ("m", "v"), "sgdw": ("velocity",)}
# Plans per optimizer, one per distinct list of variables (None gradients are
# filtered by Keras, so a step may update a subset); weak so that the optimizer
# owns nothing new and pickles/serialises as before.
_PLANS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_MAX_PLANS = 8


@dataclasses.dataclass
class Group:
    """Variables updated by one kernel call: same dtype, device and rule.

    Attributes:
        rule: the variables' `core.matching.VariableRule`.
        indices: their positions in the list of variables (and gradients).
        params: their tensors.
        slots: `{slot name: tensors}` ("m", "v", "vhat" or "velocity").
        steps: the step counts handed to torch's fused Adam (all infinity).
        small: CPU tensors below `CPU_GRAIN_SIZE` elements.
    """

    rule: object
    indices: list = dataclasses.field(default_factory=list)
    params: list = dataclasses.field(default_factory=list)
    slots: dict = dataclasses.field(default_factory=dict)
    steps: list = dataclasses.field(default_factory=list)
    small: bool = False


@dataclasses.dataclass
class Plan:
    """Groups of one list of variables, and the variables no kernel takes.

    `native` are the `torch_native.HostGroup`s (contiguous float32/float64
    CPU tensors, one C call each); `small_groups` hold the other CPU tensors
    below `CPU_GRAIN_SIZE` elements, updated on one thread; `groups` the rest.
    """

    params: list
    groups: list
    small_groups: list
    fallback: list
    native: list = dataclasses.field(default_factory=list)


def eager():
    """Whether this step runs eagerly: under `torch.compile` (Keras's
    `jit_compile=True`) the fused kernels' in-place updates of functional
    tensors cannot be traced, and the optimizers' Keras ops run instead."""
    compiler = getattr(torch, "compiler", None)
    return compiler is None or not compiler.is_compiling()


def update(optimizer, grads, variables, step):
    """Applies one update to every variable with torch's multi-tensor kernels.

    Args:
        optimizer: a keras_adamw Keras 3 optimizer (`_kind` "adamw", "nadamw"
            or "sgdw"), built.
        grads: dense gradients (torch tensors or arrays), one per variable.
        variables: the Keras variables to update.
        step: the `core.step.Step` of this update (0-d float32 tensors).

    Returns:
        The `Step` with Python floats (`host_step`).
    """
    if not variables:
        return host_step(step)
    plan = _plan(optimizer, variables)
    with torch.no_grad():
        step = host_step(step)
        scalars = step_values(optimizer._kind, step)
        grads = as_gradients(grads, plan.params)
        for group in plan.native:
            torch_native.run(optimizer, group, grads, step)
        with single_threaded(bool(plan.small_groups)):
            run_groups(optimizer, plan.small_groups, grads, scalars)
        run_groups(optimizer, plan.groups, grads, scalars)
        for i in plan.fallback:
            optimizer.update_step(grads[i], variables[i], None)
    return step


def run_groups(optimizer, groups, grads, scalars):
    """One kernel sequence per group; the L1 sign term from theta before it."""
    updater = UPDATERS[optimizer._kind]
    for group in groups:
        group_grads = [grads[i] for i in group.indices]
        signs = _signs_before_update(group)
        updater(optimizer, group, group_grads, scalars)
        _apply_sign_decay(group, signs, scalars)


@contextlib.contextmanager
def single_threaded(active=True):
    """torch's intra-op threads set to 1 in this thread, restored on exit.

    For the small-tensor groups (see `CPU_GRAIN_SIZE`); large tensors keep the
    user's `torch.set_num_threads`.
    """
    previous = torch.get_num_threads()
    if not active or previous == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def step_values(kind, step):
    """`{name: float}` of the `core.step.Step` scalars the kind reads: `eta`,
    `lr`, and `alpha = lr bias_correction` (AdamW) or Nadam's coefficients."""
    values = {"eta": step.eta, "lr": step.lr, "weight_decay": step.weight_decay}
    if kind == "adamw":
        values["alpha"] = step.lr * step.bias_correction
    if kind == "nadamw":
        values.update(step.nadam._asdict())
    return values


def host_step(step):
    """The `core.step.Step` (computed on the device in float32, like the other
    paths) with Python floats, in one device-to-host transfer.

    The kernels take their coefficients as Python floats; gathering the few
    scalars of a step first costs one sync instead of one per group.
    """
    fields = {name: value for name, value in step._asdict().items()
              if value is not None and name not in ("nadam", "bounds")}
    if step.nadam is not None:
        fields.update({f"nadam.{name}": value for name, value in step.nadam._asdict().items()})
    values = list(fields.values())
    device = next((v.device for v in values if isinstance(v, torch.Tensor)), "cpu")
    floats = dict(zip(fields, torch.stack([torch.as_tensor(v, dtype=torch.float32,
                                                           device=device)
                                           for v in values]).tolist()))
    nadam = None if step.nadam is None else type(step.nadam)(
        **{name: floats[f"nadam.{name}"] for name in step.nadam._fields})
    return step._replace(nadam=nadam, **{name: floats[name] for name in fields
                                         if not name.startswith("nadam.")})


def as_gradients(grads, params):
    """`as_gradient` of every pair; a gradient that is already a contiguous
    tensor of its variable's dtype, shape and device is taken as it is (the
    common case, checked cheaply: a step of 400 tensors checks 400 of them)."""
    return [grad if (type(grad) is torch.Tensor and grad.dtype is param.dtype
                     and grad.shape == param.shape and grad.is_contiguous()
                     and grad.layout is torch.strided
                     and (grad.is_cpu and param.is_cpu or grad.device == param.device))
            else as_gradient(grad, param) for grad, param in zip(grads, params)]


def as_gradient(grad, param):
    """The gradient as a dense contiguous tensor of the variable's dtype, device
    and shape (the native kernels read `param.numel()` elements of it)."""
    if not isinstance(grad, torch.Tensor):
        grad = ops.convert_to_tensor(grad)  # numpy arrays, Keras variables
    if grad.layout != torch.strided:
        grad = grad.to_dense()  # sparse gives the numbers of the dense gradient
    if grad.shape != param.shape:
        raise ValueError(f"A gradient of shape {tuple(grad.shape)} was given for a variable "
                         f"of shape {tuple(param.shape)}: pass one gradient per variable, "
                         f"of the variable's shape.")
    if grad.dtype != param.dtype or grad.device != param.device:
        grad = grad.to(device=param.device, dtype=param.dtype)
    return grad.contiguous()


def _plan(optimizer, variables):
    """The cached grouping of `variables`, built at the first step that sees them."""
    plans = _PLANS.setdefault(optimizer, {})
    key = (optimizer.native_kernels, *(id(v) for v in variables))
    plan = plans.get(key)
    if plan is None:
        if len(plans) >= _MAX_PLANS:
            plans.clear()
        plan = plans[key] = build_plan(optimizer, variables)
    return plan


def build_plan(optimizer, variables):
    """Groups variables by (dtype, device, rule); others use `update_step`.

    Keras torch variables are updated in place (`assign` copies into the same
    tensor), so the tensors can be resolved once here.
    """
    params = [v.value for v in variables]
    groups, native, fallback = {}, {}, []
    for i, (variable, param) in enumerate(zip(variables, params)):
        index = optimizer._get_variable_index(variable)
        if optimizer._rules[index].decay_to_init:  # the kernels decay theta itself
            fallback.append(i)
            continue
        slots = slot_tensors(optimizer, index)
        if optimizer.native_kernels and torch_native.usable(param, slots.values()):
            key = torch_native.group_key(optimizer._kind, param, slots)
            native.setdefault(key, torch_native.HostGroup(*key)).add(
                i, optimizer._rules[index], [param, *slots.values()])
            continue
        if not fusable(param, slots.values()):
            fallback.append(i)
            continue
        rule = optimizer._rules[index]
        small = param.device.type == "cpu" and param.numel() < CPU_GRAIN_SIZE
        group = groups.setdefault((param.dtype, param.device, rule, small), Group(rule))
        group.small = small
        group.indices.append(i)
        group.params.append(param)
        for name, slot in slots.items():
            group.slots.setdefault(name, []).append(slot)
    for group in groups.values():
        if optimizer._kind != "sgdw":
            # Step count infinity makes torch's bias corrections exactly 1; ours
            # is folded into the learning rate (see the module docstring).
            inf = torch.tensor(math.inf, dtype=torch.float32, device=group.params[0].device)
            group.steps = [inf] * len(group.params)
    for group in native.values():
        group.freeze()
    return Plan(params, [g for g in groups.values() if not g.small],
                [g for g in groups.values() if g.small], fallback, list(native.values()))


def slot_tensors(optimizer, index):
    """`{slot name: tensor}` of the variable at `index`, for this optimizer kind."""
    return {name: slot.value for name, slot in zip(SLOT_NAMES[optimizer._kind],
                                                   optimizer._slot_variables(index))}


def fusable(param, slots):
    """Whether the fused kernels take this variable and its slots together."""
    if not KERNELS_AVAILABLE:
        return False
    if param.dtype not in FUSED_DTYPES or param.device.type not in FUSED_DEVICES:
        return False
    return all(s.dtype == param.dtype and s.device == param.device for s in slots)


def linear_coefficient(group, scalars):
    """`c_linear` of the group's decoupled decay this step (0.0 without one)."""
    lr_v = scalars["lr"] * group.rule.multiplier
    _, c_linear = rules.decay_coefficients(group.rule, scalars["eta"], lr_v,
                                           scalars["weight_decay"])
    return c_linear or 0.0


def kernel_weight_decay(group, c_linear, kernel_lr):
    """`wd` of a kernel that decays as `theta *= 1 - kernel_lr wd`, for `c_linear`.

    The decay then costs no pass of its own. When `kernel_lr` is 0 the decay is
    applied here, before the kernel (exact: the step does not read theta), and
    the kernel gets 0.
    """
    if not c_linear:
        return 0.0
    if kernel_lr:
        weight_decay = c_linear / kernel_lr
        if math.isfinite(weight_decay):
            return weight_decay
    torch._foreach_mul_(group.params, 1.0 - c_linear)
    return 0.0


def sgd_kernel_works(tensor):
    """torch's fused SGD kernel leaves float16/bfloat16 CPU tensors unchanged."""
    return tensor.device.type != "cpu" or tensor.dtype not in (torch.float16,
                                                                 torch.bfloat16)


def axpby_(xs, ys, a, b):
    """`x = a x + b y` for every pair, in one pass over x and y.

    torch's fused SGD without momentum computes `x -= lr (y + wd x)`, which is
    this with `lr = -b`, `wd = (a - 1) / b`; `x` is exact to its own rounding
    even when `b` is tiny and `wd` large (checked against the oracle).
    """
    if b == 0:
        if a != 1:
            torch._foreach_mul_(xs, a)
        return
    weight_decay = (a - 1.0) / b
    if not math.isfinite(weight_decay) or not sgd_kernel_works(xs[0]):
        torch._foreach_mul_(xs, a)
        torch._foreach_add_(xs, ys, alpha=b)
        return
    torch._fused_sgd_(xs, ys, [], weight_decay=weight_decay, momentum=0.0, lr=-b,
                      dampening=0.0, nesterov=False, maximize=False, is_first_step=False)


def _signs_before_update(group):
    """`sign(theta)` before the update, for the L1 decay; None without L1."""
    if not group.rule.l1:
        return None
    return torch._foreach_sign(group.params)


def _apply_sign_decay(group, signs, scalars):
    """`theta -= c_sign sign(theta_before)` (the L1 part of the paper decay)."""
    if signs is None:
        return
    lr_v = scalars["lr"] * group.rule.multiplier
    c_sign, _ = rules.decay_coefficients(group.rule, scalars["eta"], lr_v,
                                         scalars["weight_decay"])
    torch._foreach_add_(group.params, signs, alpha=-c_sign)


def fused_adam(optimizer, group, grads, lr, eps, weight_decay):
    """torch's fused AdamW with bias corrections 1: `theta *= 1 - lr wd`, then

    ```
    m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2  [vhat = max(vhat, v)]
    theta -= lr m / (sqrt(v) + eps)
    ```
    """
    amsgrad = "vhat" in group.slots
    torch._fused_adamw_(
        group.params, grads, group.slots["m"], group.slots["v"],
        group.slots["vhat"] if amsgrad else [], group.steps, lr=lr,
        beta1=float(optimizer.beta_1), beta2=float(optimizer.beta_2),
        weight_decay=weight_decay, eps=eps, amsgrad=amsgrad, maximize=False)


def update_adamw(optimizer, group, grads, scalars):
    """AdamW, `theta -= eta mult alpha m / (sqrt(v) + eps) + c_linear theta`.

    `alpha = lr sqrt(1 - b2^t) / (1 - b1^t)` (so `mult alpha` is `lr_v` times
    the bias correction): one fused kernel call.
    """
    lr = scalars["eta"] * scalars["alpha"] * group.rule.multiplier
    weight_decay = kernel_weight_decay(group, linear_coefficient(group, scalars), lr)
    fused_adam(optimizer, group, grads, lr, float(optimizer.epsilon), weight_decay)


def update_nadamw(optimizer, group, grads, scalars):
    """NadamW as the fused AdamW kernel plus one gradient term.

    With `c = v_correction = 1 / (1 - b2^t)` and `s = eta lr_v / sqrt(c)`:

    ```
    m_bar / (sqrt(c v) + eps) = (mw m + gw g) / (sqrt(c) (sqrt(v) + eps / sqrt(c)))
    fused:  theta -= s mw m / (sqrt(v) + eps') + c_linear theta,   eps' = eps / sqrt(c)
    then:   theta -= s gw g / (sqrt(v) + eps')                      (v already updated)
    ```
    """
    root_c = math.sqrt(scalars["v_correction"])
    scale = scalars["eta"] * scalars["lr"] * group.rule.multiplier / root_c
    eps = float(optimizer.epsilon) / root_c
    lr = scale * scalars["momentum_weight"]
    weight_decay = kernel_weight_decay(group, linear_coefficient(group, scalars), lr)
    fused_adam(optimizer, group, grads, lr, eps, weight_decay)
    denominators = torch._foreach_sqrt(group.slots["v"])
    torch._foreach_add_(denominators, eps)
    torch._foreach_addcdiv_(group.params, grads, denominators,
                            value=-scale * scalars["grad_weight"])


def update_sgdw(optimizer, group, grads, scalars):
    """SGDW in the Keras convention, as one-pass `axpby_` updates.

    ```
    velocity = mu velocity - eta lr_v g
    theta = (1 - c_linear) theta + velocity
    nesterov: theta = (1 - c_linear) theta - eta lr_v g + mu velocity
    ```
    (`momentum=0`: `theta = (1 - c_linear) theta - eta lr_v g`). torch's own
    momentum kernel is not used: it keeps `mu buf + g` and its dampening would
    carry `eta lr_v` in float32 (`1 - dampening`), losing digits.
    """
    scaled_lr = scalars["eta"] * scalars["lr"] * group.rule.multiplier
    keep = 1.0 - linear_coefficient(group, scalars)
    momentum = float(optimizer.momentum)
    if momentum == 0:
        axpby_(group.params, grads, keep, -scaled_lr)
        return
    velocities = group.slots["velocity"]
    axpby_(velocities, grads, momentum, -scaled_lr)
    if optimizer.nesterov:
        axpby_(group.params, grads, keep, -scaled_lr)
        torch._foreach_add_(group.params, velocities, alpha=momentum)
    else:
        axpby_(group.params, velocities, keep, 1.0)


UPDATERS = {"adamw": update_adamw, "nadamw": update_nadamw, "sgdw": update_sgdw}
