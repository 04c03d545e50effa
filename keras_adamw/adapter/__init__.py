"""The adapter layer both flavours share: what wires `keras_adamw.core` into a
Keras optimizer, written once; `keras2/` and `keras3/` keep only what differs."""
