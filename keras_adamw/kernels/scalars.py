"""The scalars of the native kernels, named and in order: the one packer.

`update_kernels.h` declares one struct per kernel (`AdamWScalars`,
`NadamWScalars`, `SgdWScalars`) whose fields are these names in this order;
the TensorFlow ops take them as named inputs (`update_ops.cc`), the XLA custom
calls (TensorFlow and JAX) as one row of a `[variables, count]` table.
`tests/test_architecture.py` checks the header against `LAYOUTS`.
"""
ADAM = ("neg_step", "beta_1", "one_minus_beta_1", "beta_2", "one_minus_beta_2", "epsilon",
        "c_sign", "c_linear")
LAYOUTS = {
    "adamw": ADAM,
    "nadamw": ADAM + ("grad_weight", "momentum_weight", "v_correction"),
    "sgdw": ("lr", "momentum", "c_sign", "c_linear"),
}
# The structs of `update_kernels.h`, by kind.
STRUCTS = {"adamw": "AdamWScalars", "nadamw": "NadamWScalars", "sgdw": "SgdWScalars"}


def named(update):
    """`{name: value}` of `update` (a `kernels.Update`) in the kernel's layout.

    Values are tensors of the variable's dtype or Python floats (`1 - beta` is
    computed in Python, then rounded once to the dtype by the caller).
    """
    s, h = update.scalars, update.hyper
    values = {"c_sign": 0.0 if s.c_sign is None else s.c_sign,
              "c_linear": 0.0 if s.c_linear is None else s.c_linear}
    if update.kind == "sgdw":
        values.update(lr=s.step_size, momentum=h.momentum if update.slots else 0.0)
    else:
        values.update(neg_step=-s.step_size, beta_1=h.beta_1, one_minus_beta_1=1.0 - h.beta_1,
                      beta_2=h.beta_2, one_minus_beta_2=1.0 - h.beta_2, epsilon=h.epsilon)
    if update.kind == "nadamw":
        values.update(s.nadam._asdict())
    return values


def pack(update):
    """The scalar vector of `update`, in `LAYOUTS[update.kind]` order."""
    values = named(update)
    return [values[name] for name in LAYOUTS[update.kind]]


def flags(update):
    """The kernels' static flags: which decay terms exist, Nesterov momentum."""
    return {"decay_sign": update.scalars.c_sign is not None,
            "decay_linear": update.scalars.c_linear is not None,
            "nesterov": bool(update.hyper.nesterov) and bool(update.slots)}


def target(update):
    """The custom call's registered name: one handler per kind and slot set."""
    if update.kind == "adamw":
        return "keras_adamw_amsgrad" if len(update.slots) == 3 else "keras_adamw_adamw"
    if update.kind == "sgdw":
        return "keras_adamw_momentum" if update.slots else "keras_adamw_sgdw"
    return "keras_adamw_nadamw"
