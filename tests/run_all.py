"""Runs the whole test suite: every Keras 3 backend and the tf_keras flavour.

Each backend needs its own process (Keras picks it at import). Before them, the
checks of the project as a whole, one count each: `ruff check .`, `mypy
keras_adamw`, `mkdocs build --strict` of docs/, the package (`python -m build`,
`twine check`, the wheel installed with `[tensorflow,plot]` into a clean
virtualenv runs `example.py`) and `no_tf` (the wheel in clean virtualenvs with
only `[jax,plot]` and only `[torch]`: no TensorFlow, the README's Quickstart runs,
a missing backend names its extra). The clean virtualenvs see nothing of this
interpreter's packages: pip resolves the wheel's own dependencies.
Prints one closing line `N passed, N failed, N skipped` and exits non-zero on
any failure.

Then pytest once per Keras 3 backend, once for the Keras 2 flavour on tf_keras, and
once (`keras2_tf215`) for the Keras 2 flavour and 1.x's suite in a clean virtualenv
with TensorFlow 2.15, where `tf.keras` is the keras 2.x package.

Usage: python tests/run_all.py
           [--only lint,mypy,docs,package,no_tf,tensorflow,jax,torch,keras2,keras2_tf215]
           [pytest args]
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"
CONSTRAINTS = TESTS / "constraints.txt"
# The README's two commands, verbatim (tests/test_docs.py and tests/test_ci_configs.py
# check the README, `.ci/run` and the CI configs against them).
MAIN_COMMAND = 'pip install ".[tensorflow,plot]" && python example.py'
TEST_COMMAND = ('pip install torch==2.13.0 && pip install -e ".[test]" -c tests/constraints.txt'
                ' && python tests/run_all.py')

# name -> (environment, pytest targets)
# (tests/legacy: keras-adamw 1.38's own suite, ported, on every backend and flavour.)
RUNS = {
    "tensorflow": ({"KERAS_BACKEND": "tensorflow"},
                   ["tests/core", "tests/keras3", "tests/legacy", "tests/test_docs.py",
                    "tests/test_examples.py", "tests/test_ci_configs.py",
                    "tests/test_architecture.py"]),
    "jax": ({"KERAS_BACKEND": "jax"}, ["tests/keras3", "tests/legacy", "tests/test_docs.py"]),
    "torch": ({"KERAS_BACKEND": "torch"},
              ["tests/keras3", "tests/legacy", "tests/test_docs.py"]),
    "keras2": ({"TF_USE_LEGACY_KERAS": "1", "TF_KERAS": "1", "KERAS_BACKEND": "tensorflow"},
               ["tests/keras2", "tests/legacy"]),
    # The Keras 2 flavour on TensorFlow 2.15, where `tf.keras` is the keras 2.x
    # package (TF_USE_LEGACY_KERAS would make it look for tf_keras): in a virtualenv
    # of its own (`tf215_commands`).
    "keras2_tf215": ({"TF_USE_LEGACY_KERAS": None, "TF_KERAS": "1",
                      "KERAS_BACKEND": "tensorflow"}, ["tests/keras2", "tests/legacy"]),
}
TF215 = "tensorflow==2.15.1"


def counts(junit_file):
    """(passed, failed, skipped) from a pytest JUnit XML report."""
    if not junit_file.exists():
        return 0, 1, 0
    suite = ET.parse(junit_file).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    total, skipped = int(suite.get("tests")), int(suite.get("skipped"))
    failed = int(suite.get("failures")) + int(suite.get("errors"))
    return total - failed - skipped, failed, skipped


def run_pytest(name, extra_args, workdir, python=sys.executable):
    """pytest of RUNS[name] with `python`; an environment value None unsets it."""
    env_update, targets = RUNS[name]
    targets = [t for t in targets if (ROOT / t).exists()]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **env_update}
    env = {key: value for key, value in env.items() if value is not None}
    junit = Path(workdir) / f"{name}.xml"
    command = [str(python), "-m", "pytest", "-q", "-c", str(TESTS / "pytest.ini"),
               "--rootdir", str(ROOT), f"--junitxml={junit}", *targets, *extra_args]
    print(f"\n=== {name}: {' '.join(command[2:])}", flush=True)
    started = time.time()
    code = subprocess.call(command, cwd=ROOT, env=env)
    passed, failed, skipped = counts(junit)
    if code not in (0, 1) and failed == 0:  # collection error, no tests, crash
        failed = 1
    print(f"=== {name}: exit {code}, {time.time() - started:.0f}s", flush=True)
    return passed, failed, skipped


def run_check(name, commands, cwd=ROOT):
    """One pass or one failure for a list of commands run in order (a callable
    in the list gives its command when its turn comes, or None to skip it)."""
    print(f"\n=== {name}", flush=True)
    started = time.time()
    for command in commands:
        command = command() if callable(command) else command
        if command is None:
            continue
        print("$ " + " ".join(str(part) for part in command), flush=True)
        code = subprocess.call(command, cwd=cwd)
        if code != 0:
            print(f"=== {name}: FAILED (exit {code})", flush=True)
            return 0, 1, 0
    print(f"=== {name}: ok, {time.time() - started:.0f}s", flush=True)
    return 1, 0, 0


def lint_commands(workdir):
    return [[sys.executable, "-m", "ruff", "check", "."]]


def mypy_commands(workdir):
    return [[sys.executable, "-m", "mypy", "keras_adamw"]]


def docs_commands(workdir):
    return [[sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet",
             "-f", "docs/mkdocs.yml", "-d", str(Path(workdir) / "site")]]


def python_code(source):
    """`python -c source` where `source` is lines joined by newlines."""
    return ["-c", "\n".join(source)]


def build_commands(workdir):
    """sdist and wheel into `workdir/dist` (once per run), then `twine check`."""
    dist = Path(workdir) / "dist"
    return [
        lambda: None if list(dist.glob("*.whl")) else
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(dist), str(ROOT)],
        lambda: [sys.executable, "-m", "twine", "check", "--strict", *map(str, dist.glob("*"))],
    ]


def clean_venv_commands(workdir, name, extras, first=()):
    """A virtualenv `workdir/name` that sees none of this interpreter's packages,
    with `first` installed, then the built wheel with `extras`: pip resolves the
    runtime dependencies from the wheel's own metadata (test tools pinned by
    tests/constraints.txt)."""
    venv = Path(workdir) / name
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
           "-c", str(CONSTRAINTS)]

    def install_wheel():
        wheel = next((Path(workdir) / "dist").glob("*.whl"))
        return [*pip, f"{wheel}[{','.join(extras)}]" if extras else str(wheel)]

    commands = [[sys.executable, "-m", "venv", "--clear", str(venv)]]
    if first:
        commands.append([*pip, *first])
    return [*commands, install_wheel]


def in_venv(workdir, name, backend, *arguments):
    """`python arguments...` of virtualenv `name`, with KERAS_BACKEND=backend and no
    flavour or path variables of this process."""
    python = str(Path(workdir) / name / "bin" / "python")
    return ["env", "-u", "TF_KERAS", "-u", "TF_USE_LEGACY_KERAS", "-u", "PYTHONPATH",
            f"KERAS_BACKEND={backend}", "TF_CPP_MIN_LOG_LEVEL=3", python, *arguments]


def installed_from(workdir, name, backend):
    """Imports keras_adamw from the virtualenv's site-packages, not this checkout."""
    venv = str(Path(workdir) / name)
    return in_venv(workdir, name, backend, *python_code([
        "import sys, keras_adamw",
        f"sys.exit(not keras_adamw.__file__.startswith({venv!r}))"]))


def package_commands(workdir):
    """The wheel with `[tensorflow,plot]` (the README's main job) in a clean
    virtualenv: imported from there, the native kernels' sources shipped, a copy of
    `example.py` run (quick sizes)."""
    shutil.copy(ROOT / "example.py", Path(workdir) / "example.py")
    sources = sorted(p.name for p in (ROOT / "keras_adamw" / "kernels").glob("*.[ch]*"))
    return [
        *build_commands(workdir),
        *clean_venv_commands(workdir, "venv-tf", ["tensorflow", "plot"]),
        installed_from(workdir, "venv-tf", "tensorflow"),
        # Built on first use, so the wheel ships the C++ sources.
        in_venv(workdir, "venv-tf", "tensorflow", *python_code([
            "import sys, pathlib, keras_adamw",
            "native = pathlib.Path(keras_adamw.__file__).parent / 'kernels'",
            f"sys.exit(sorted(p.name for p in native.glob('*.[ch]*')) != {sources!r})"])),
        in_venv(workdir, "venv-tf", "tensorflow", "example.py", "--epochs", "1",
                "--iterations", "3", "--out", "example.png"),
    ]


def tf215_commands(workdir):
    """A clean virtualenv with TensorFlow 2.15 (its keras 2.x), torch (for the
    independent references) and pytest, where the built wheel installs without
    pulling Keras 3; the tests then run from this checkout."""
    return [*build_commands(workdir),
            *clean_venv_commands(workdir, "venv-tf215", [],
                                 first=["torch==2.13.0", TF215, "pytest", "hypothesis"]),
            in_venv(workdir, "venv-tf215", "tensorflow", *python_code([
                "import sys, importlib.metadata as m",
                "sys.exit(not m.version('keras').startswith('2.15'))"])),
            # Without TF_KERAS=1 (the Keras 3 flavour), an error that names the fix.
            in_venv(workdir, "venv-tf215", "tensorflow", *python_code([
                "import sys",
                "try:",
                "    import keras_adamw",
                "except ImportError as error:",
                "    sys.exit('TF_KERAS=1' not in str(error))",
                "sys.exit(1)"]))]


VENV_RUNS = {"keras2_tf215": ("venv-tf215", tf215_commands)}


def run_in_venv(name, extra_args, workdir):
    """The virtualenv of a VENV_RUNS part set up (one failure if it cannot be),
    then its pytest run."""
    venv, commands = VENV_RUNS[name]
    if run_check(f"{name} set-up", commands(workdir), cwd=workdir)[1]:
        return 0, 1, 0
    return run_pytest(name, extra_args, workdir, python=Path(workdir) / venv / "bin" / "python")


def readme_quickstart():
    """The README's Quickstart code block."""
    section = (ROOT / "README.md").read_text(encoding="utf-8").split("## Quickstart", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


NO_TENSORFLOW = python_code([
    "import importlib.util, sys",
    "sys.exit(importlib.util.find_spec('tensorflow') is not None)"])
# The error for a backend that is not installed names the extra to install.
NAMES_THE_EXTRA = python_code([
    "import sys",
    "try:",
    "    import keras_adamw",
    "except ModuleNotFoundError as error:",
    "    sys.exit('keras-adamw[torch]' not in str(error))",
    "sys.exit(1)"])


def no_tf_commands(workdir):
    """JAX and PyTorch users install no TensorFlow: the wheel with `[jax,plot]`, and
    with `[torch]` (torch 2.13.0 first, as the README's test command), each in a
    clean virtualenv, imports, runs the README's Quickstart; the JAX one runs
    `example.py`, and KERAS_BACKEND=torch there fails naming `[torch]`."""
    workdir = Path(workdir)
    shutil.copy(ROOT / "example.py", workdir / "example.py")
    (workdir / "quickstart.py").write_text(readme_quickstart(), encoding="utf-8")
    return [
        *build_commands(workdir),
        *clean_venv_commands(workdir, "venv-jax", ["jax", "plot"]),
        in_venv(workdir, "venv-jax", "jax", *NO_TENSORFLOW),
        installed_from(workdir, "venv-jax", "jax"),
        in_venv(workdir, "venv-jax", "jax", "quickstart.py"),
        in_venv(workdir, "venv-jax", "jax", "example.py", "--epochs", "1",
                "--iterations", "3", "--out", "example-jax.png"),
        in_venv(workdir, "venv-jax", "torch", *NAMES_THE_EXTRA),
        *clean_venv_commands(workdir, "venv-torch", ["torch"], first=["torch==2.13.0"]),
        in_venv(workdir, "venv-torch", "torch", *NO_TENSORFLOW),
        installed_from(workdir, "venv-torch", "torch"),
        in_venv(workdir, "venv-torch", "torch", "quickstart.py"),
    ]


CHECKS = {"lint": lint_commands, "mypy": mypy_commands, "docs": docs_commands,
          "package": package_commands, "no_tf": no_tf_commands}


DEFAULT_PARTS = ",".join([*CHECKS, *RUNS])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=DEFAULT_PARTS)
    args, pytest_args = parser.parse_known_args()
    totals = [0, 0, 0]
    with tempfile.TemporaryDirectory() as workdir:
        for name in args.only.split(","):
            if name in CHECKS:
                result = run_check(name, CHECKS[name](workdir),
                                   cwd=workdir if name in ("package", "no_tf") else ROOT)
            elif name in VENV_RUNS:
                result = run_in_venv(name, pytest_args, workdir)
            else:
                result = run_pytest(name, pytest_args, workdir)
            totals = [a + b for a, b in zip(totals, result)]
    passed, failed, skipped = totals
    print(f"\n{passed} passed, {failed} failed, {skipped} skipped")
    return 1 if failed or not passed else 0


if __name__ == "__main__":
    sys.exit(main())
