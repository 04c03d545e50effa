"""The architecture stays as docs/pages/architecture.md describes it.

Every module the page names exists and every module is named; the native
kernels' scalar structs (`update_kernels.h`) and op inputs (`update_ops.cc`)
follow `keras_adamw.kernels.scalars.LAYOUTS`; the "what runs where" table of
docs/pages/speed.md is the one `keras_adamw.kernels.PATHS` generates; functions
stay short; only the kernel layer and the flavour entry points branch on the
backend's name.
"""
import ast
import pathlib
import re

import pytest

from keras_adamw.kernels import PATHS, paths_table, scalars

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "keras_adamw"
KERNELS = PACKAGE / "kernels"
ARCHITECTURE = ROOT / "docs" / "pages" / "architecture.md"
MODULE_SUFFIXES = (".py", ".h", ".cc")


def tree_block():
    """The folder tree (the first code block) of the architecture page."""
    return ARCHITECTURE.read_text(encoding="utf-8").split("```")[1]


def named_modules():
    """Paths (relative to the repository) of every file the tree names: the
    first column of each line, in the folder of the line above it."""
    root = pathlib.Path("keras_adamw")
    folder, named = root, set()
    for line in tree_block().splitlines()[2:]:
        indent = len(line) - len(line.lstrip())
        names = re.split(r"\s{2,}", line.strip())[0]
        if indent == 2 and names.endswith("/"):
            folder = root / names.rstrip("/")
            continue
        base = folder if indent > 2 else root
        named.update(str(base / name) for name in re.findall(r"\w+\.(?:py|h|cc)\b", names))
    return named


def package_modules():
    return {str(p.relative_to(ROOT)) for p in PACKAGE.rglob("*")
            if p.suffix in MODULE_SUFFIXES and "__pycache__" not in p.parts}


def test_the_tree_names_every_module_and_only_existing_ones():
    named, present = named_modules(), package_modules()
    assert named - present == set(), "the page names modules that do not exist"
    # A folder's own `__init__.py` is named by the folder.
    unnamed = {m for m in present - named if not m.endswith("/__init__.py")
               or m == "keras_adamw/__init__.py"}
    assert unnamed == set(), "modules the page does not name"


def test_every_path_the_page_mentions_exists():
    text = ARCHITECTURE.read_text(encoding="utf-8")
    for path in re.findall(r"`(keras_adamw/[\w/]+\.py)`", text):
        assert (ROOT / path).is_file(), path


def header_fields(struct):
    """The scalar fields of `struct` in `update_kernels.h`, in order (nested
    structs expanded)."""
    header = (KERNELS / "update_kernels.h").read_text()
    body = re.search(rf"struct {struct} {{(.*?)\n}};", header, re.DOTALL).group(1)
    fields = []
    for line in body.splitlines():
        nested = re.match(r"\s*(\w+)<T> \w+;", line)
        if nested:
            fields += header_fields(nested.group(1))
        declared = re.match(r"\s*T ([\w, ]+);", line)
        if declared:
            fields += [name.strip() for name in declared.group(1).split(",")]
    return fields


@pytest.mark.parametrize("kind", sorted(scalars.LAYOUTS))
def test_the_header_mirrors_the_packer(kind):
    assert header_fields(scalars.STRUCTS[kind]) == list(scalars.LAYOUTS[kind])


@pytest.mark.parametrize("kind", sorted(scalars.LAYOUTS))
def test_the_tensorflow_ops_take_the_packer_names(kind):
    ops = (KERNELS / "update_ops.cc").read_text()
    inputs = re.findall(r'\.Input\("(\w+): T"\)', ops)
    assert set(scalars.LAYOUTS[kind]) <= set(inputs)


def test_the_speed_page_table_is_generated_from_the_paths():
    page = (ROOT / "docs" / "pages" / "speed.md").read_text(encoding="utf-8")
    generated = page.split("<!-- paths:", 1)[1].split("-->", 1)[1]
    generated = generated.split("<!-- end paths -->", 1)[0].strip()
    assert generated == paths_table()
    assert {p.name for p in PATHS} >= {"reference", "tf_native", "jax_call", "torch_foreach"}


def function_lengths():
    """`(file, function, body lines)` of every Python function of the package."""
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                body = node.body
                docstring = isinstance(body[0], ast.Expr) and isinstance(
                    body[0].value, ast.Constant) and len(body) > 1
                start = body[1 if docstring else 0].lineno
                yield path.relative_to(ROOT), node.name, node.end_lineno - start + 1


def test_no_function_body_is_over_45_lines():
    long = [f"{path}:{name} ({lines})" for path, name, lines in function_lengths()
            if lines > 45]
    assert long == []


BACKEND_BRANCH = re.compile(r"backend\(\) *(==|!=|in)|BACKEND *(==|!=|in)")


def test_only_the_kernel_layer_and_entry_points_branch_on_the_backend():
    allowed = {KERNELS, PACKAGE / "__init__.py"}
    branching = [str(p.relative_to(ROOT)) for p in PACKAGE.rglob("*.py")
                 if BACKEND_BRANCH.search(p.read_text())
                 and not any(p == a or a in p.parents for a in allowed)]
    assert branching == []
