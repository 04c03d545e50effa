"""Backend-neutral maths and settings of keras-adamw.

Nothing here imports keras, tensorflow, jax or torch at module level: tensor code
receives a math namespace (`numpy`, `keras.ops` or `tensorflow`) as argument `xp`.
"""
