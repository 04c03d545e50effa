"""keras-adamw 2: AdamW, NadamW, SGDW for Keras 3 and tf_keras."""
import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
VERSION = re.search(r'__version__ = "([^"]+)"',
                    (HERE / "keras_adamw" / "__init__.py").read_text()).group(1)

EXTRAS = {
    "jax": ["jax>=0.4.30"],
    "torch": ["torch>=2.1"],
    "legacy": ["tf_keras>=2.16"],
    "plot": ["matplotlib>=3.5"],
}
EXTRAS["test"] = (["pytest>=7", "pytest-cov", "ruff==0.17.6", "hypothesis", "optax"]
                  + EXTRAS["jax"] + EXTRAS["legacy"] + EXTRAS["plot"])

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
    url="https://github.com/OverLordGoldDragon/keras-adamw",
    packages=find_packages(include=["keras_adamw", "keras_adamw.*"]),
    package_data={"keras_adamw": ["py.typed"]},
    python_requires=">=3.10",
    install_requires=["numpy>=1.23", "keras>=3.3", "tensorflow>=2.16"],
    extras_require=EXTRAS,
    classifiers=[
        "Development Status :: 5 - Production/Stable",
        "Intended Audience :: Science/Research",
        "License :: OSI Approved :: MIT License",
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3.11",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
