"""The keras2 suite runs with Keras 2 as `tf.keras`: tf_keras (TF_USE_LEGACY_KERAS=1)
on TensorFlow >= 2.16, the keras 2.x package on TensorFlow 2.12-2.15 (where the
variable would make TensorFlow look for tf_keras instead)."""
import importlib.metadata
import os

TF_MINOR = int(importlib.metadata.version("tensorflow").split(".")[1])
if TF_MINOR >= 16:
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
