"""The tf_keras (Keras 2 API) flavour: AdamW, NadamW, SGDW on legacy `OptimizerV2`."""
from keras_adamw.keras2.optimizers import SGDW, AdamW, NadamW

__all__ = ["SGDW", "AdamW", "NadamW"]
