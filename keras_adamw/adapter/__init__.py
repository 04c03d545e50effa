"""The flavour-neutral adapter layer: what `keras2/` and `keras3/` share.

Each shared piece is written once here (or in `keras_adamw.monitoring` and
`keras_adamw.core.schedule`) and takes a `Framework`, the description of one
flavour's Keras that `keras_adamw.keras3.framework` and
`keras_adamw.keras2.framework` provide.
"""
