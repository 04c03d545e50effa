"""Weight decays read from a tf_keras model's L1/L2/L1L2 regularizers.

Keys are the variable names without `:0`; the functions are
`keras_adamw.adapter.regularizers` on the tf_keras `FRAMEWORK`, which zeroes
`l1`/`l2` as numpy float arrays, the type tf_keras keeps.
"""
from keras_adamw.adapter.regularizers import Regularizers
from keras_adamw.keras2.framework import FRAMEWORK

_REGULARIZERS = Regularizers(FRAMEWORK)
check_model = _REGULARIZERS.check_model
get_weight_decays = _REGULARIZERS.get_weight_decays
zero_model_penalties = _REGULARIZERS.zero_model_penalties
