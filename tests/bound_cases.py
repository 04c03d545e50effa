"""The `effective_lr_bounds` case table shared by both flavours' tests."""


def upper_bound(iterations):
    """A callable bound of the iteration count (named: it serialises safely)."""
    return 0.012 + 0.0005 * iterations


BOUNDS = {
    "off": None,
    "both": (8e-3, 1.5e-2),
    "lower_only": (1e-2, None),
    "callable_upper": (None, upper_bound),
}
