"""The flavour-neutral adapter layer: what `keras2/` and `keras3/` share.

Each shared piece is written once here (or in `keras_adamw.monitoring` and
`keras_adamw.core.schedule`): the optimizers' front (`api`: signatures,
docstrings, own arguments), their glue (`optimizer`: settings, construction,
per-step scalars, schedule, config round trip), the regularizer walk
(`regularizers`), each taking a `Framework` (`framework`), the description of
one flavour's Keras that `keras_adamw.keras3.framework` and
`keras_adamw.keras2.framework` provide.
"""
