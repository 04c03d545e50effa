"""Weight decays read from a Keras 3 model's L1/L2/L1L2 regularizers.

Keys are `variable.path`; the functions are `keras_adamw.adapter.regularizers`
on the Keras 3 `FRAMEWORK`.
"""
from keras_adamw.adapter.regularizers import Regularizers
from keras_adamw.keras3.framework import FRAMEWORK

_REGULARIZERS = Regularizers(FRAMEWORK)
check_model = _REGULARIZERS.check_model
get_weight_decays = _REGULARIZERS.get_weight_decays
zero_model_penalties = _REGULARIZERS.zero_model_penalties
