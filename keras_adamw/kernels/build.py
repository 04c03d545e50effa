"""Building the native kernels: the compiler call, the cache, the on/off switch.

Framework-neutral (no TensorFlow or JAX import): `kernels.tf_native` builds the
TensorFlow library with it, `kernels.jax_calls` the JAX one, both from the C++
sources beside it in `keras_adamw/kernels/`. A library is compiled on first use into
`cache_dir()`, named by a hash of its sources and compiler call (which holds the
framework's flags), written whole and then renamed, and loaded from there
afterwards.
"""
import hashlib
import logging
import os
import pathlib
import platform
import shlex
import subprocess
import tempfile
import warnings

SOURCE_DIR = pathlib.Path(__file__).parent
HEADERS = [SOURCE_DIR / "update_kernels.h", SOURCE_DIR / "group_rules.h"]
SWITCH = "KERAS_ADAMW_NATIVE"  # "0" (false/no/off): never build or use the libraries
CACHE_DIR = "KERAS_ADAMW_CACHE_DIR"
# -fno-math-errno lets `sqrt` vectorise (the results are the same IEEE values).
OPTIMIZE = ["-O3", "-fno-math-errno", "-shared", "-fPIC", "-w"]
# The widest vectors of this CPU, where the sources allow (TensorFlow's Eigen
# headers do not build with every -march): on many small tensors, in cache,
# NadamW's square root and division bound the step (benchmarks/README.md).
# The cache key holds the CPU (`cpu_fingerprint`).
NATIVE_ARCH = ["-march=native"]
LOGGER = logging.getLogger("keras_adamw")


def cache_dir():
    """Where the compiled libraries are kept: `$KERAS_ADAMW_CACHE_DIR`, else the
    user's cache directory, else (read-only home) a per-user temporary one."""
    if os.environ.get(CACHE_DIR):
        return pathlib.Path(os.environ[CACHE_DIR])
    base = pathlib.Path(os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache")
    if _writable(base):
        return base / "keras_adamw"
    user = getattr(os, "getuid", lambda: "user")()
    return pathlib.Path(tempfile.gettempdir()) / f"keras_adamw-{user}"


def _writable(path):
    """Whether `path`, or its nearest existing ancestor, can be written."""
    while not path.exists() and path.parent != path:
        path = path.parent
    return os.access(path, os.W_OK)


def compiler():
    """`$CXX` (split like a shell would), else `g++`."""
    return shlex.split(os.environ.get("CXX") or "g++")


def cpu_fingerprint():
    """The CPU the library is built for (`-march=native`): model and feature flags
    where Linux lists them, else what `platform` knows."""
    try:
        lines = pathlib.Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        lines = []
    fields = [line for line in lines if line.startswith(("model name", "flags", "Features"))]
    return " ".join(sorted(set(fields))) or f"{platform.machine()} {platform.processor()}"


def library_path(name, sources, command, extra=()):
    """`<cache_dir>/<name>-<hash>.so` for these sources, compiler call, CPU and extras."""
    key = hashlib.sha256()
    for source in list(sources) + HEADERS:
        key.update(source.read_bytes())
    key.update(" ".join(list(extra) + command + [cpu_fingerprint()]).encode())
    return cache_dir() / f"{name}-{key.hexdigest()[:16]}.so"


def compile_library(command, path, what):
    """Runs `command(partial)` to build `path` (written whole, then renamed);
    OSError with the compiler's message if it fails."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, partial = tempfile.mkstemp(suffix=".so", dir=path.parent)
    os.close(handle)
    call = command(partial)
    LOGGER.info("keras_adamw: building the native %s kernels (once): %s", what,
                shlex.join(call))
    try:
        result = subprocess.run(call, capture_output=True, text=True, timeout=900,
                                check=False)
        if result.returncode != 0:
            raise OSError(f"{shlex.join(call[:1])} exited with {result.returncode}: "
                          f"{result.stderr.strip()[-2000:]}")
        os.replace(partial, path)
    finally:
        if os.path.exists(partial):
            os.remove(partial)


def switched_off():
    """`KERAS_ADAMW_NATIVE` is 0/false/no/off; another unknown value is warned about."""
    value = os.environ.get(SWITCH, "").strip().lower()
    if value in ("0", "false", "no", "off"):
        return True
    if value not in ("", "1", "true", "yes", "on"):
        warnings.warn(f"{SWITCH}={value!r} is not understood: set it to 0 to turn the native "
                      f"kernels off, or 1 (or leave it unset) to use them; using them.",
                      RuntimeWarning, stacklevel=3)
    return False


def unavailable_warning(framework, error, fallback):
    """The one warning of a library that could not be built or loaded."""
    warnings.warn(
        f"keras_adamw: the native {framework} kernels are not available ({error}); "
        f"{fallback} (same numbers, slower on the CPU). Install a C++ compiler (g++, or "
        f"set CXX), or set {SWITCH}=0 to skip them without this warning.",
        RuntimeWarning, stacklevel=3)
