"""The Keras 3 flavour: AdamW, NadamW, SGDW on TensorFlow, JAX and PyTorch."""
from keras_adamw.keras3.optimizers import SGDW, AdamW, NadamW

__all__ = ["SGDW", "AdamW", "NadamW"]
