"""Keras 3, described for the flavour-neutral adapter (`keras_adamw.adapter`)."""
import keras  # type: ignore[import-untyped]
from keras import ops  # type: ignore[import-untyped]

from keras_adamw.adapter.framework import Flavour, Framework

FLAVOUR = Flavour(
    name="Keras 3", model_name="keras.Model",
    foreign_modules=("tf_keras", "keras.src.engine", "tensorflow.python.keras"),
    foreign_name="Keras 2 (tf_keras)",
    fix=("Use `from keras_adamw.keras2 import AdamW` (or TF_KERAS=1 with "
         "TF_USE_LEGACY_KERAS=1), or build the model with `keras` 3."))

FRAMEWORK = Framework(
    keras=keras, flavour=FLAVOUR, zero_strength=lambda: 0.0,
    current_lr=lambda optimizer: optimizer.learning_rate,
    xp=ops, deserialize=keras.saving.deserialize_keras_object)
