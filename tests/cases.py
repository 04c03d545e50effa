"""The optimizer case table of every flavour and backend (like torch's `OptimizerInfo`).

One row per optimizer variant: the class, its constructor arguments, the same
settings in the terms of the float64 oracle (`tests/reference.py`), the oracle's
slot names and the kernel paths the row is tested on. Tests take their rows from
here (`rows`, `on_path`), so a new optimizer variant or kernel path is covered by
a row or a path name here, not by an edit of every test file.

Kernel paths (`Case.paths`):

- `reference`: the optimizer's own update step, no kernel path forced (Keras 3:
  as the backend runs it by default; the Keras 2 flavour: TensorFlow ops only).
- `tf_fused`: TensorFlow's fused `ResourceApply*` kernels (undecayed variables).
- `tf_native`: the native single-pass TensorFlow ops.
- `tf_xla_call`: the native XLA custom calls inside `jit_compile`.
- `tf_compiled`: the XLA-compiled TensorFlow kernels.
- `jax_call`: the JAX XLA FFI custom calls.
- `torch_native`: the native host calls on torch's CPU tensors.
- `torch_foreach`: torch's multi-tensor kernels.

No framework is imported here: the table serves both flavours.
"""
import dataclasses

PATHS = ("reference", "tf_fused", "tf_native", "tf_xla_call", "tf_compiled", "jax_call",
         "torch_native", "torch_foreach")
CLASS_NAMES = {"adamw": "AdamW", "nadamw": "NadamW", "sgdw": "SGDW"}
BUILTINS = {"adamw": "Adam", "nadamw": "Nadam", "sgdw": "SGD"}
ADAM_ORACLE = {"beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7}
EVERY_PATH = frozenset(PATHS)


@dataclasses.dataclass(frozen=True)
class Case:
    """One optimizer variant.

    Attributes:
        name: the row's name, the test id.
        optimizer: "adamw", "nadamw" or "sgdw" (the oracle's `kind`).
        kwargs: constructor arguments besides `learning_rate`.
        oracle: the oracle's arguments for the same settings (without the
            learning rate).
        slots: the oracle's slot names (`m`, `v`, `vhat`, `velocity`).
        paths: the kernel paths (`PATHS`) this row is tested on.
        learning_rate: the tests' default learning rate.
    """

    name: str
    optimizer: str
    kwargs: dict
    oracle: dict
    slots: tuple
    paths: frozenset = EVERY_PATH
    learning_rate: float = 0.01

    @property
    def class_name(self):
        """`AdamW`, `NadamW` or `SGDW`: the class's name in either flavour."""
        return CLASS_NAMES[self.optimizer]

    @property
    def builtin(self):
        """The name of the framework's own optimizer with the same update."""
        return BUILTINS[self.optimizer]

    def make(self, module, **extra):
        """The optimizer from `module` (`keras_adamw` or `keras_adamw.keras2`).

        Args:
            module: where the classes are.
            **extra: more constructor arguments; `learning_rate` replaces the row's.

        Returns:
            The optimizer, `init_verbose=False`.
        """
        arguments = {"learning_rate": self.learning_rate, "init_verbose": False,
                     **self.kwargs, **extra}
        return getattr(module, self.class_name)(**arguments)


# TensorFlow fuses only Adam without amsgrad (`ResourceApplyAdam`) and SGD.
UNFUSED = EVERY_PATH - {"tf_fused"}
SGD_LR = 0.05

CASES = {case.name: case for case in [
    Case("adamw", "adamw", {}, ADAM_ORACLE, ("m", "v")),
    Case("adamw_amsgrad", "adamw", {"amsgrad": True}, {**ADAM_ORACLE, "amsgrad": True},
         ("m", "v", "vhat"), UNFUSED),
    Case("nadamw", "nadamw", {}, ADAM_ORACLE, ("m", "v"), UNFUSED),
    # Keras 3's Nadam schedule: the built-in equality and the oracle only.
    Case("nadamw_keras3_schedule", "nadamw", {"schedule_decay": 1.0},
         {**ADAM_ORACLE, "schedule_decay": 1.0}, ("m", "v"), frozenset({"reference"})),
    Case("sgdw", "sgdw", {}, {}, (), learning_rate=SGD_LR),
    Case("sgdw_momentum", "sgdw", {"momentum": 0.9}, {"momentum": 0.9}, ("velocity",),
         learning_rate=SGD_LR),
    Case("sgdw_nesterov", "sgdw", {"momentum": 0.9, "nesterov": True},
         {"momentum": 0.9, "nesterov": True}, ("velocity",), learning_rate=SGD_LR),
]}

# One row per optimizer: the variants most tests of a feature other than the
# update itself run on.
EACH_OPTIMIZER = ("adamw", "nadamw", "sgdw_momentum")


def rows(*names):
    """The rows of these names (all of them, in table order, without names).

    Args:
        *names: row names.

    Returns:
        A list of `Case`.
    """
    return [CASES[name] for name in names] if names else list(CASES.values())


def on_path(path, *names):
    """The rows tested on kernel path `path` (of `names` only, if given).

    Args:
        path: one of `PATHS`.
        *names: optional row names to choose from.

    Returns:
        A list of `Case`.
    """
    if path not in PATHS:
        raise ValueError(f"Unknown kernel path {path!r}; one of {PATHS}")
    return [case for case in rows(*names) if path in case.paths]


def case_id(case):
    """The test id of a row (pytest's `ids=`): its name."""
    return case.name


# ---- settings crossed with the rows ------------------------------------------------------


def upper_bound(iterations):
    """A callable bound of the iteration count (named: it serialises safely)."""
    return 0.012 + 0.0005 * iterations


# `effective_lr_bounds` of the bounds tests (both flavours).
BOUNDS = {
    "off": None,
    "both": (8e-3, 1.5e-2),
    "lower_only": (1e-2, None),
    "callable_upper": (None, upper_bound),
}

# The independent-reference tests: a noisy quadratic of `steps` updates, these
# hyperparameters (betas and momentum as in the rows), a cosine cycle of 40.
INDEPENDENT = {"steps": 100, "learning_rate": 0.01, "epsilon": 1e-3, "weight_decay": 0.1,
               "cycle": 40, "eta_min": 0.1, "l2": 0.05}
COSINE = {"use_cosine_annealing": True, "total_iterations": INDEPENDENT["cycle"],
          "eta_min": INDEPENDENT["eta_min"]}
WD = {"weight_decay": INDEPENDENT["weight_decay"]}


@dataclasses.dataclass(frozen=True)
class Reference:
    """A row run against an independent implementation.

    Attributes:
        case: the row's name in `CASES`.
        arguments: constructor arguments besides the row's.
        reference: the reference's name (`helpers.torch_references`, or optax).
        keras2: whether the Keras 2 flavour is checked too.
    """

    case: str
    arguments: dict
    reference: str
    keras2: bool = True

    @property
    def name(self):
        """The test id: `row~reference`, with the extra settings named."""
        return f"{self.case}~{self.reference}"


REFERENCES = [
    Reference("adamw", WD, "torch.AdamW"),
    Reference("adamw_amsgrad", WD, "torch.AdamW(amsgrad)", keras2=False),
    Reference("adamw", {**WD, **COSINE}, "torch.AdamW(lr*eta_t)"),
    Reference("adamw", {"weight_decays": {"kernel": (0, INDEPENDENT["l2"])},
                        "total_iterations": INDEPENDENT["steps"]},
              "torch.AdamW(l2*sqrt(1/T)/lr)"),
    Reference("adamw", WD, "optax.adamw", keras2=False),
    Reference("adamw", {**WD, **COSINE}, "optax.adamw(cosine restarts)", keras2=False),
    Reference("nadamw", WD, "torch.NAdam"),
    Reference("nadamw", {**WD, **COSINE}, "torch.NAdam(lr*eta_t)", keras2=False),
    Reference("sgdw_momentum", {}, "torch.SGD"),
    Reference("sgdw_nesterov", {}, "torch.SGD(nesterov)"),
    Reference("sgdw", WD, "torch.SGD(weight_decay)", keras2=False),
    Reference("sgdw_momentum", COSINE, "torch.SGD(lr=1, eta_t*lr*g)"),
    Reference("sgdw_nesterov", COSINE, "torch.SGD(lr=1, eta_t*lr*g, nesterov)", keras2=False),
]


def independent_arguments(reference):
    """Our constructor arguments of a `Reference` (the row's, its own, Adam's epsilon)."""
    case = CASES[reference.case]
    adam = {} if case.optimizer == "sgdw" else {"epsilon": INDEPENDENT["epsilon"]}
    return {**case.kwargs, **adam, **reference.arguments}
