"""keras-adamw 2: AdamW, NadamW, SGDW for Keras 3 and tf_keras."""
import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
VERSION = re.search(r'__version__ = "([^"]+)"',
                    (HERE / "keras_adamw" / "__init__.py").read_text()).group(1)

# One extra per Keras backend: a JAX or PyTorch user installs no TensorFlow.
EXTRAS = {
    "tensorflow": ["tensorflow>=2.16"],
    "jax": ["jax>=0.4.30"],
    "torch": ["torch>=2.1"],
    "legacy": ["tf_keras>=2.16", "tensorflow>=2.16"],
    # TensorFlow 2.12-2.15, where `tf.keras` is the keras 2.x package (Keras 2 flavour).
    "tf2": ["tensorflow>=2.12,<2.16"],
    "plot": ["matplotlib>=3.5"],
    # keras-hub's models (BERT, GPT-2, Gemma, ...): docs/examples/keras_hub_finetuning.py.
    "hub": ["keras-hub>=0.21"],
    "docs": ["mkdocs>=1.6", "mkdocs-material>=9.5", "mkdocstrings[python]>=0.26",
             "scikit-learn>=1.3", "matplotlib>=3.5"],
}
# Everything `python tests/run_all.py` runs: pytest on every backend (torch is
# installed first, as the README says), ruff, mypy, the docs build and the package
# checks.
EXTRAS["test"] = sorted(set(
    ["pytest>=7", "pytest-cov", "ruff==0.17.6", "mypy>=1.10", "hypothesis>=6", "optax",
     "build>=1", "twine>=5", "setuptools>=70.1", "PyYAML>=6"]
    + EXTRAS["tensorflow"] + EXTRAS["jax"] + EXTRAS["legacy"] + EXTRAS["docs"]
    + EXTRAS["hub"]))

setup(
    name="keras-adamw",
    version=VERSION,
    description=("AdamW, NadamW and SGDW with decoupled weight decay, SGDR warm restarts "
                 "and per-layer learning rates for Keras 3 (TensorFlow, JAX, PyTorch) "
                 "and tf_keras"),
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    author="keras-adamw developers",
    license="MIT",
    keywords=["keras", "adamw", "optimizer", "weight decay", "warm restarts", "sgdr",
              "tensorflow", "jax", "pytorch", "tf_keras"],
    url="https://github.com/OverLordGoldDragon/keras-adamw",
    packages=find_packages(include=["keras_adamw", "keras_adamw.*"]),
    package_data={"keras_adamw": ["py.typed", "kernels/*.cc", "kernels/*.h"]},
    python_requires=">=3.10",
    # Keras 3 (>= 3.3) for the Keras 3 flavour: pip installs the newest. The keras 2.x
    # that TensorFlow 2.12-2.15 pin (their `tf.keras`) also satisfies it, for the Keras 2
    # flavour there; importing the Keras 3 flavour with it names the fix.
    install_requires=["numpy>=1.23", "keras>=2.12"],
    extras_require=EXTRAS,
    classifiers=[
        "Development Status :: 5 - Production/Stable",
        "Intended Audience :: Developers",
        "Intended Audience :: Science/Research",
        "Operating System :: OS Independent",
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3 :: Only",
        "Programming Language :: Python :: 3.10",
        "Programming Language :: Python :: 3.11",
        "Programming Language :: Python :: 3.12",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
        "Topic :: Software Development :: Libraries :: Python Modules",
        "Typing :: Typed",
    ],
)
