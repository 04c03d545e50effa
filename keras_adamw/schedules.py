"""Learning-rate schedules of the flavour `import keras_adamw` selected.

`WarmUp` is `keras_adamw.keras3.schedules.WarmUp` (a Keras 3
`LearningRateSchedule`), or the tf_keras twin `keras_adamw.keras2.schedules.WarmUp`
when `keras_adamw.FLAVOUR == "keras2"`.
"""
from keras_adamw import FLAVOUR

if FLAVOUR == "keras2":
    from keras_adamw.keras2.schedules import WarmUp
else:
    from keras_adamw.keras3.schedules import WarmUp

__all__ = ["WarmUp"]
