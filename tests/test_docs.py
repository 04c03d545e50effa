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
- `<!-- docs-test: tensorflow -->` (or `jax`, `torch`): a Keras 3 block for a feature
  of that backend only (`tf.distribute`, `keras.distribution` on JAX); run in the
  process of that backend.

Blocks in other languages (```bash, ```text) are not run. Also checked: the two
README commands verbatim, relative links, every public name in docs/pages/api.md,
`example.py` in a quick configuration, the restart conventions that
docs/pages/restarts.md states against Keras's and torch's schedulers, and, once (in
the tensorflow process: they do not depend on the backend), `mkdocs build --strict`
of docs/mkdocs.yml and `docs/make_figures.py --quick`.
"""
import contextlib
import importlib.util
import inspect
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "pages"  # docs_dir of docs/mkdocs.yml
PAGES = ["README.md"] + sorted(str(p.relative_to(ROOT)) for p in DOCS.rglob("*.md"))
DOC_PAGES = ("index.md", "quickstart.md", "algorithms.md", "decay.md", "restarts.md",
             "matching.md", "layerwise.md", "effective_lr.md", "distributed.md", "speed.md",
             "migration.md", "migration_adam_lr_decay.md", "migration_tfa.md",
             "migration_bert.md", "migration_keras.md", "api.md", "reference.md", "changelog.md")
BACKEND_MARKERS = ("tensorflow", "jax", "torch")
MARKERS = ("skip", "tf_keras", "signature") + BACKEND_MARKERS
sys.path.insert(0, str(ROOT / "tests"))
from run_all import MAIN_COMMAND, TEST_COMMAND

COMMANDS = (MAIN_COMMAND, TEST_COMMAND)
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
        assert f"```bash\n{command}\n```" in section, f"README 'Two commands' lacks: {command}"


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
        assert marker in MARKERS, f"{page}: marker {marker}"


@pytest.mark.parametrize("source", python_blocks(None))
def test_python_block_runs(source, tmp_path, request):
    import keras

    import keras_adamw

    if keras_adamw.FLAVOUR != "keras3":
        pytest.skip("Keras 3 block; TF_KERAS=1 selects the tf_keras flavour here")
    keras.backend.clear_session()
    run_block(source, request.node.callspec.id, tmp_path)


@pytest.mark.parametrize("backend,source", [
    pytest.param(backend, *param.values, id=param.id)
    for backend in BACKEND_MARKERS for param in python_blocks(backend)])
def test_backend_block_runs(backend, source, tmp_path, request):
    import keras

    import keras_adamw

    if keras_adamw.FLAVOUR != "keras3" or keras.backend.backend() != backend:
        pytest.skip(f"a {backend}-only feature; runs in the KERAS_BACKEND={backend} process")
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


# --- warm restarts versus Keras's and torch's schedulers (docs/pages/restarts.md) ---

def cosine(fraction, eta_min=0.0, eta_max=1.0):
    """SGDR's cosine at `fraction` of a cycle (independent of keras_adamw.core)."""
    return eta_min + (eta_max - eta_min) * (1.0 + np.cos(np.pi * fraction)) / 2.0


def sgdw_schedule(total_iterations, updates, restart_after=None):
    """`(eta used, lr_t)` of every update of SGDW(learning_rate=1, cosine annealing).

    `restart_after=P`: `autorestart=False` and a manual restart (`t_cur = 0`,
    `eta_t = eta_max`) after every `P` updates, the recipe of restarts.md.
    """
    import keras

    from keras_adamw.keras3 import SGDW
    from keras_adamw.utils import K_eval

    keras.backend.clear_session()
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    optimizer = SGDW(learning_rate=1.0, use_cosine_annealing=True,
                     total_iterations=total_iterations,
                     autorestart=restart_after is None, init_verbose=False)
    model.compile(optimizer, loss="mse")
    x, y = np.zeros((2, 2)), np.zeros((2, 1))  # zero loss: the weights stay put
    etas, lr_ts = [], []
    for _ in range(updates):
        etas.append(float(K_eval(optimizer.eta_t)))
        model.train_on_batch(x, y)
        lr_ts.append(float(K_eval(optimizer.lr_t)))
        if restart_after is not None and int(K_eval(optimizer.t_cur)) == restart_after:
            optimizer.t_cur.assign(0)
            optimizer.eta_t.assign(optimizer.eta_max)
    return np.array(etas), np.array(lr_ts)


def keras_restarts(period, updates):
    """Keras `CosineDecayRestarts(1.0, period, t_mul=1, m_mul=1)` at steps 0, 1, ..."""
    import keras

    from keras_adamw.utils import K_eval

    schedule = keras.optimizers.schedules.CosineDecayRestarts(1.0, period, t_mul=1.0,
                                                              m_mul=1.0, alpha=0.0)
    return np.asarray(K_eval(schedule(np.arange(updates, dtype="float32"))), np.float64)


def torch_restarts(period, updates):
    """torch `CosineAnnealingWarmRestarts(T_0=period)`: the lr of each `optimizer.step()`."""
    torch = pytest.importorskip("torch")
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([parameter], lr=1.0)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(optimizer, T_0=period)
    lrs = []
    for _ in range(updates):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return np.array(lrs)


REFERENCE_RESTARTS = {"keras": keras_restarts, "torch": torch_restarts}
CYCLES, PERIOD = 3, 5


@pytest.fixture(scope="module")
def our_restarts():
    """SGDW's `eta` per update with `total_iterations=PERIOD` (autorestart), and its
    `lr_t` with the manual-restart recipe for a Keras/torch period `PERIOD - 1`."""
    etas, _ = sgdw_schedule(PERIOD, CYCLES * PERIOD)
    _, recipe_lr_t = sgdw_schedule(PERIOD, CYCLES * (PERIOD - 1), restart_after=PERIOD - 1)
    return etas, recipe_lr_t


@pytest.mark.parametrize("reference", sorted(REFERENCE_RESTARTS))
def test_our_cycle_is_theirs_of_one_update_less_then_eta_min(reference, our_restarts):
    """restarts.md: a cycle of T updates uses f(p / (T - 1)), p = 0..T-1, ending at
    eta_min; theirs of period P uses f(p / P), p = 0..P-1. So ours = theirs with
    P = T - 1, plus one update at eta_min; with P = T they differ from update 2 on."""
    ours, _ = our_restarts
    positions = np.tile(np.arange(PERIOD), CYCLES)
    np.testing.assert_allclose(ours, cosine(positions / (PERIOD - 1)), atol=1e-6)

    shorter = REFERENCE_RESTARTS[reference](PERIOD - 1, CYCLES * (PERIOD - 1))
    expected = np.concatenate([np.append(cycle, 0.0)
                               for cycle in np.split(shorter, CYCLES)])
    np.testing.assert_allclose(ours, expected, atol=1e-6)

    same_period = REFERENCE_RESTARTS[reference](PERIOD, CYCLES * PERIOD)
    assert ours[0] == same_period[0] == 1.0
    assert np.min(np.abs(ours - same_period)[1:PERIOD]) > 0.05
    assert same_period.min() > 0.09  # theirs never reaches the minimum: f(4/5) = 0.095


@pytest.mark.parametrize("reference", sorted(REFERENCE_RESTARTS))
def test_manual_restart_recipe_reproduces_their_schedule(reference, our_restarts):
    """restarts.md: total_iterations=P+1, autorestart=False and a restart after every
    P updates give Keras's / torch's learning rates exactly, over 3 cycles."""
    _, lr_t = our_restarts
    theirs = REFERENCE_RESTARTS[reference](PERIOD - 1, CYCLES * (PERIOD - 1))
    np.testing.assert_allclose(lr_t, theirs, rtol=1e-6, atol=1e-7)


# --- the documentation site and its figures ---------------------------------------

FIGURES_DIR = DOCS / "figures"


def make_figures_module():
    spec = importlib.util.spec_from_file_location("make_figures",
                                                  ROOT / "docs" / "make_figures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def skip_unless_tensorflow_process():
    import keras

    if keras.backend.backend() != "tensorflow":
        pytest.skip("docs tooling, independent of the Keras backend: run once, in the "
                    "tensorflow process")


def test_checked_in_figures_are_small_pngs_embedded_in_pages():
    pages = "\n".join((ROOT / page).read_text(encoding="utf-8") for page in PAGES)
    for name in re.findall(r'"(\w+\.png)"', (ROOT / "docs" / "make_figures.py").read_text()):
        path = FIGURES_DIR / name
        assert path.is_file(), f"{path} missing: run python docs/make_figures.py"
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert path.stat().st_size < 150_000, f"{name} is {path.stat().st_size} bytes"
        assert f"figures/{name}" in pages, f"{name} is embedded in no page"


def test_make_figures_quick_runs(tmp_path):
    skip_unless_tensorflow_process()
    pytest.importorskip("matplotlib")
    pytest.importorskip("sklearn")
    module = make_figures_module()
    module.main(["--quick", "--out", str(tmp_path)])
    for name in module.FIGURES:
        data = (tmp_path / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) < 150_000, name


def text_outside_math_and_code(html):
    for pattern in (r'<(span|div) class="arithmatex">.*?</\1>', r"<code.*?</code>",
                    r"<script.*?</script>", r"<pre.*?</pre>"):
        html = re.sub(pattern, "", html, flags=re.DOTALL)
    return html


def test_mkdocs_build_strict(tmp_path):
    """The lead's command; strict: any warning (broken link, anchor, reference) fails."""
    skip_unless_tensorflow_process()
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocstrings")
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", "docs/mkdocs.yml",
         "-d", str(site)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
        check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert 'class="arithmatex"' in (site / "algorithms" / "index.html").read_text()
    for html in site.rglob("index.html"):
        assert "$" not in text_outside_math_and_code(html.read_text()), (
            f"{html.relative_to(site)}: a `$` left in the text (math that did not parse)")
    reference = (site / "reference" / "index.html").read_text()
    for name in ("keras3.AdamW", "keras3.NadamW", "keras3.SGDW", "keras2.AdamW",
                 "utils.K_eval", "keras3.schedules.WarmUp",
                 "keras3.callbacks.LearningRateMonitor", "layerwise_lr_decay"):
        assert f'id="keras_adamw.{name}' in reference, f"reference lacks {name}"
    for name in os.listdir(FIGURES_DIR):
        assert (site / "figures" / name).is_file()
