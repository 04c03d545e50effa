"""Runs the whole test suite: every Keras 3 backend and the tf_keras flavour.

Each backend needs its own process (Keras picks it at import). Before them, the
checks of the project as a whole, one count each: `ruff check .`, `mypy
keras_adamw`, `mkdocs build --strict` of docs/, and the package (`python -m
build`, `twine check`, the wheel installed into a virtualenv runs `example.py`).
Prints one closing line `N passed, N failed, N skipped` and exits non-zero on
any failure.

Usage: python tests/run_all.py [--only lint,mypy,docs,package,tensorflow,jax,torch,keras2]
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

# name -> (environment, pytest targets)
RUNS = {
    "tensorflow": ({"KERAS_BACKEND": "tensorflow"},
                   ["tests/core", "tests/keras3", "tests/test_docs.py",
                    "tests/test_examples.py", "tests/test_ci_configs.py"]),
    "jax": ({"KERAS_BACKEND": "jax"}, ["tests/keras3", "tests/test_docs.py"]),
    "torch": ({"KERAS_BACKEND": "torch"}, ["tests/keras3", "tests/test_docs.py"]),
    "keras2": ({"TF_USE_LEGACY_KERAS": "1", "TF_KERAS": "1", "KERAS_BACKEND": "tensorflow"},
               ["tests/keras2"]),
}


def counts(junit_file):
    """(passed, failed, skipped) from a pytest JUnit XML report."""
    if not junit_file.exists():
        return 0, 1, 0
    suite = ET.parse(junit_file).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    total, skipped = int(suite.get("tests")), int(suite.get("skipped"))
    failed = int(suite.get("failures")) + int(suite.get("errors"))
    return total - failed - skipped, failed, skipped


def run_pytest(name, extra_args, workdir):
    env_update, targets = RUNS[name]
    targets = [t for t in targets if (ROOT / t).exists()]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **env_update}
    junit = Path(workdir) / f"{name}.xml"
    command = [sys.executable, "-m", "pytest", "-q", "-c", str(TESTS / "pytest.ini"),
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
    in the list gives its command when its turn comes)."""
    print(f"\n=== {name}", flush=True)
    started = time.time()
    for command in commands:
        command = command() if callable(command) else command
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


def package_commands(workdir):
    """sdist and wheel, `twine check`, and the wheel (not this checkout), with the
    source of the native ops, running a copy of `example.py` from a virtualenv
    that sees the installed frameworks."""
    workdir = Path(workdir)
    dist, venv, python = workdir / "dist", workdir / "venv", workdir / "venv" / "bin" / "python"
    shutil.copy(ROOT / "example.py", workdir / "example.py")
    return [
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(dist), str(ROOT)],
        lambda: [sys.executable, "-m", "twine", "check", "--strict", *map(str, dist.glob("*"))],
        [sys.executable, "-m", "venv", "--system-site-packages", str(venv)],
        lambda: [str(python), "-m", "pip", "install", "--quiet", "--no-deps",
                 *map(str, dist.glob("*.whl"))],
        [str(python), "-c", ("import keras_adamw, sys; "
                             f"sys.exit(not keras_adamw.__file__.startswith({str(venv)!r}))")],
        # The native kernels' sources ship in the wheel (built on first use).
        [str(python), "-c", ("import sys; from keras_adamw import native; sys.exit(not all("
                             "f.is_file() for f in native.SOURCES + native.HEADERS))")],
        [str(python), "example.py", "--epochs", "1", "--iterations", "3",
         "--out", "example.png"],
    ]


CHECKS = {"lint": lint_commands, "mypy": mypy_commands, "docs": docs_commands,
          "package": package_commands}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only",
                        default="lint,mypy,docs,package,tensorflow,jax,torch,keras2")
    args, pytest_args = parser.parse_known_args()
    totals = [0, 0, 0]
    with tempfile.TemporaryDirectory() as workdir:
        for name in args.only.split(","):
            if name in CHECKS:
                result = run_check(name, CHECKS[name](workdir),
                                   cwd=workdir if name == "package" else ROOT)
            else:
                result = run_pytest(name, pytest_args, workdir)
            totals = [a + b for a, b in zip(totals, result)]
    passed, failed, skipped = totals
    print(f"\n{passed} passed, {failed} failed, {skipped} skipped")
    return 1 if failed or not passed else 0


if __name__ == "__main__":
    sys.exit(main())
