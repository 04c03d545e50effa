"""Every script in docs/examples/ runs (quick sizes), so none rots.

Each example picks its own backend or flavour (they set `KERAS_BACKEND` or
`TF_USE_LEGACY_KERAS` before importing Keras), so each runs in a subprocess;
tests/run_all.py runs this module once, in the tensorflow pass.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "docs" / "examples").glob("*.py"))
# What each example prints when it worked (a line of its summary).
EXPECTED = {
    "bert_finetuning.py": "per-layer effective learning rates and lr_t logged",
    "jax_backend.py": "custom loop:",
    "keras2_flavour.py": "identical weights",
    "keras_hub_finetuning.py": "resumed run equals the uninterrupted one",
    "torch_backend.py": "torch loop:",
}


def test_every_example_is_listed():
    assert sorted(p.name for p in EXAMPLES) == sorted(EXPECTED)


@pytest.mark.parametrize("script", EXAMPLES, ids=lambda p: p.name)
def test_example_runs(script, tmp_path):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    for name in ("KERAS_BACKEND", "TF_KERAS", "TF_USE_LEGACY_KERAS"):
        env.pop(name, None)  # the example chooses
    result = subprocess.run([sys.executable, str(script), "--quick"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    assert EXPECTED[script.name] in result.stdout, result.stdout[-2000:]
