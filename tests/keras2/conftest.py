"""The keras2 suite runs with tf_keras as `tf.keras` (TF_USE_LEGACY_KERAS=1)."""
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
