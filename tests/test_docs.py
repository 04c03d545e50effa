"""README.md and docs/pages/**/*.md say what the code does: their code blocks run.

Backend-neutral: runs on the Keras backend of this process (`KERAS_BACKEND`).

Conventions for fenced ```python blocks in README.md and docs/pages/**/*.md. A marker is an
HTML comment on the line right before the opening fence (invisible when rendered):

- no marker: run in a fresh namespace, in a temporary working directory, after
  `keras.backend.clear_session()`, with the Keras 3 flavour (skipped in a process
  where `TF_KERAS=1` selects the tf_keras flavour for `import keras_adamw`).
  Blocks are self-contained and use small sizes (the suite stays well under 60 s).
- `<!-- docs-test: skip -->`: shown, not run (keras-adamw 1.x code, shell setup).
- `<!-- docs-test: tf_keras -->`: uses `tf_keras` and `keras_adamw.keras2`
  explicitly; run wherever tf_keras is installed, whatever the flavour.
- `<!-- docs-test: signature -->`: `Name(args...)`, which must equal
  `inspect.signature` of the public object `Name` (whitespace and quotes aside).

Blocks in other languages (```bash, ```text) are not run. Also checked: the two
README commands verbatim, relative links, every public name in docs/pages/api.md, and
`example.py` in a quick configuration.
"""
import contextlib
import inspect
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "pages"  # docs_dir of docs/mkdocs.yml
PAGES = ["README.md"] + sorted(str(p.relative_to(ROOT)) for p in DOCS.rglob("*.md"))
DOC_PAGES = ("index.md", "algorithms.md", "decay.md", "restarts.md", "migration.md",
             "api.md")
COMMANDS = (
    "python example.py",
    'pip install torch==2.13.0 && pip install -e ".[test]" && python tests/run_all.py',
)
MARKER = re.compile(r"<!--\s*docs-test:\s*([\w-]+)\s*-->")
FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([\w+-]*)")


def code_blocks(page):
    """`(line, language, marker, source)` of every fenced block of `page`."""
    lines = (ROOT / page).read_text(encoding="utf-8").splitlines()
    blocks, index = [], 0
    while index < len(lines):
        match = FENCE.match(lines[index])
        if not match:
            index += 1
            continue
        indent, fence, language = match.groups()
        previous = next((lines[j] for j in range(index - 1, -1, -1) if lines[j].strip()), "")
        marker = MARKER.search(previous)
        body, end = [], index + 1
        while end < len(lines) and not lines[end].strip().startswith(fence):
            line = lines[end]
            body.append(line.removeprefix(indent))
            end += 1
        blocks.append((index + 1, language.lower(), marker.group(1) if marker else None,
                       "\n".join(body) + "\n"))
        index = end + 1
    return blocks


def python_blocks(kind):
    """pytest params of the ```python blocks with marker `kind` (None: unmarked)."""
    params = []
    for page in PAGES:
        for line, language, marker, source in code_blocks(page):
            if language in ("python", "py", "python3") and marker == kind:
                params.append(pytest.param(source, id=f"{page}:{line}"))
    return params


def tf_keras_available():
    try:
        import tf_keras  # noqa: F401
    except ImportError:
        return False
    return True


def run_block(source, name, path):
    """Runs `source` as a script in a fresh namespace, cwd `path`; returns stdout."""
    out = io.StringIO()
    cwd = os.getcwd()
    os.chdir(path)
    try:
        with contextlib.redirect_stdout(out):
            exec(compile(source, name, "exec"), {"__name__": "__docs__"})  # noqa: S102
    finally:
        os.chdir(cwd)
    return out.getvalue()


def test_pages_exist():
    for name in DOC_PAGES:
        assert (DOCS / name).is_file(), f"docs/pages/{name} is missing"


def test_readme_has_the_two_commands_verbatim():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "## Two commands" in readme
    section = readme.split("## Two commands", 1)[1].split("\n## ", 1)[0]
    for command in COMMANDS:
        assert command in section, f"README 'Two commands' lacks: {command}"


@pytest.mark.parametrize("page", PAGES)
def test_relative_links_resolve(page):
    text = (ROOT / page).read_text(encoding="utf-8")
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"^[a-z]+:", target) or target.startswith("#"):
            continue
        path = target.split("#", 1)[0]
        assert ((ROOT / page).parent / path).exists(), f"{page}: broken link {target}"


@pytest.mark.parametrize("page", PAGES)
def test_fences_are_closed_and_markers_known(page):
    text = (ROOT / page).read_text(encoding="utf-8")
    fences = [line for line in text.splitlines() if FENCE.match(line)]
    assert len(fences) % 2 == 0, f"{page}: unclosed code fence"
    for marker in MARKER.findall(text):
        assert marker in ("skip", "tf_keras", "signature"), f"{page}: marker {marker}"


@pytest.mark.parametrize("source", python_blocks(None))
def test_python_block_runs(source, tmp_path, request):
    import keras

    import keras_adamw

    if keras_adamw.FLAVOUR != "keras3":
        pytest.skip("Keras 3 block; TF_KERAS=1 selects the tf_keras flavour here")
    keras.backend.clear_session()
    run_block(source, request.node.callspec.id, tmp_path)


@pytest.mark.parametrize("source", python_blocks("tf_keras"))
def test_tf_keras_block_runs(source, tmp_path, request):
    if not tf_keras_available():
        pytest.skip("tf_keras is not installed (pip install '.[legacy]')")
    run_block(source, request.node.callspec.id, tmp_path)


def _normalise(text):
    return re.sub(r"\s+", "", text).replace('"', "'")


@pytest.mark.parametrize("source", python_blocks("signature"))
def test_documented_signature_matches_code(source):
    from keras_adamw import keras3, utils

    name = source.strip().split("(", 1)[0].strip()
    owners = [keras3, utils]
    if tf_keras_available() and hasattr(keras3, name):
        from keras_adamw import keras2

        owners.append(keras2)
    found = [getattr(owner, name) for owner in owners if hasattr(owner, name)]
    assert found, f"documented {name} is not a public name of keras_adamw"
    for obj in found:
        actual = name + str(inspect.signature(obj))
        assert _normalise(source) == _normalise(actual), (
            f"docs signature differs from {obj.__module__}.{name}:\n{actual}")


def test_api_page_covers_public_names():
    import keras_adamw

    api = (DOCS / "api.md").read_text(encoding="utf-8")
    for name in keras_adamw.__all__:
        assert f"`{name}" in api or f"{name}(" in api, f"docs/pages/api.md lacks {name}"


def test_example_runs_quickly_and_saves_png(tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "lr_t.png"
    env = dict(os.environ)
    env.pop("TF_KERAS", None)  # example.py is the Keras 3 example
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    result = subprocess.run(
        [sys.executable, str(ROOT / "example.py"), "--epochs", "1", "--iterations", "3",
         "--out", str(out)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Iter 3 loss:" in result.stdout
    assert out.is_file() and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
