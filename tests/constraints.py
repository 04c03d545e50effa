"""Prints `tests/constraints.txt`: exact versions of the installed test tools.

Run it in a virtualenv where the README's test command has just passed without
`-c tests/constraints.txt` (so the newest tools were installed):

    python tests/constraints.py > tests/constraints.txt

Pinned: every installed package that the test tools need and the runtime
dependencies do not. The runtime dependencies (keras, numpy, the backends and
what they pull) stay open, so the tests follow their releases.
"""
import importlib.metadata

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

RUNTIME = ["keras", "numpy", "tensorflow", "jax", "jaxlib", "tf_keras", "torch"]
TOOLS = ["pytest", "pytest-cov", "ruff", "mypy", "hypothesis", "optax", "build", "twine",
         "PyYAML", "mkdocs", "mkdocs-material", "mkdocstrings", "mkdocstrings-python",
         "scikit-learn", "matplotlib"]
HEADER = """\
# Exact versions of the test tools, known to pass `python tests/run_all.py`.
# Used by the README's test command (`pip install -e ".[test]" -c tests/constraints.txt`)
# so that a new release of a tool (pytest, mypy, mkdocs, ...) cannot turn the tests
# red overnight. The runtime dependencies (keras, numpy, tensorflow, jax, torch,
# tf_keras and what they pull) are not pinned: the tests follow their releases.
# To refresh, see tests/constraints.py.
"""


def installed():
    """Installed distributions by canonical name."""
    return {canonicalize_name(d.metadata["Name"]): d
            for d in importlib.metadata.distributions()}


def closure(roots, distributions):
    """The canonical names of `roots` and everything they require, installed."""
    seen, stack = set(), [canonicalize_name(root) for root in roots]
    while stack:
        name = stack.pop()
        if name in seen or name not in distributions:
            continue
        seen.add(name)
        for line in distributions[name].requires or []:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                stack.append(canonicalize_name(requirement.name))
    return seen


def pins():
    """`name==version` lines of the tools' own dependencies, sorted."""
    distributions = installed()
    names = closure(TOOLS, distributions) - closure(RUNTIME, distributions)
    return sorted(f"{distributions[n].metadata['Name']}=={distributions[n].version}"
                  for n in names - {"pip", "setuptools"})


if __name__ == "__main__":
    print(HEADER + "\n".join(pins()))
