"""BERT-style fine-tuning recipe with keras-adamw (Keras 3, any backend).

A small Transformer encoder classifier fine-tuned the way BERT and ELECTRA are:

- `AdamW(weight_decay=0.01)` (the Keras/PyTorch convention), with LayerNorm
  parameters and biases excluded from the decay (`exclude_from_weight_decay`);
- linear warmup into a linear decay to 0 (`schedules.WarmUp` around Keras's
  `PolynomialDecay`);
- ELECTRA's layer-wise learning-rate decay: each layer closer to the input
  learns `decay` times slower (`layerwise_lr_decay_from_model`);
- `callbacks.LearningRateMonitor` logs `lr`, `lr_t` and the per-layer effective
  learning rate, here into a CSV file.

    python docs/examples/bert_finetuning.py               # 3 epochs on synthetic data
    python docs/examples/bert_finetuning.py --quick       # a smoke run (seconds)
    KERAS_BACKEND=jax python docs/examples/bert_finetuning.py
"""
import argparse
import os
import tempfile

import keras
import numpy as np

from keras_adamw import AdamW, layerwise_lr_decay_from_model
from keras_adamw.callbacks import LearningRateMonitor
from keras_adamw.schedules import WarmUp


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one epoch")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--log", default=None, help="CSV log path (default: a temp file)")
    return parser.parse_args(argv)


def encoder_block(x, width, heads, index):
    """One post-norm Transformer block; names follow BERT's (`layer_norm`, `bias`)."""
    attention = keras.layers.MultiHeadAttention(heads, width // heads,
                                                name=f"encoder_{index}_attention")(x, x)
    x = keras.layers.LayerNormalization(name=f"encoder_{index}_layer_norm_1")(x + attention)
    hidden = keras.layers.Dense(2 * width, activation="gelu", name=f"encoder_{index}_ffn_in")(x)
    hidden = keras.layers.Dense(width, name=f"encoder_{index}_ffn_out")(hidden)
    return keras.layers.LayerNormalization(name=f"encoder_{index}_layer_norm_2")(x + hidden)


def make_model(vocab, length, width, heads, n_layers):
    tokens = keras.Input((length,), dtype="int32")
    x = keras.layers.Embedding(vocab, width, name="embeddings")(tokens)
    for index in range(n_layers):
        x = encoder_block(x, width, heads, index)
    x = keras.layers.GlobalAveragePooling1D()(x)
    return keras.Model(tokens, keras.layers.Dense(2, name="classifier")(x))


def synthetic_task(n, vocab, length, seed=0):
    """Label 1 when token 1 appears more often than token 2: needs attention to count."""
    rng = np.random.default_rng(seed)
    x = rng.integers(1, vocab, size=(n, length)).astype("int32")
    y = ((x == 1).sum(1) > (x == 2).sum(1)).astype("int32")
    return x, y


def main(argv=None):
    args = parse_args(argv)
    quick = {"vocab": 50, "length": 16, "width": 32, "heads": 2, "n_layers": 2}
    full = {"vocab": 200, "length": 32, "width": 64, "heads": 4, "n_layers": 4}
    sizes = quick if args.quick else full
    epochs = 1 if args.quick else args.epochs
    batch_size = 16
    keras.utils.set_random_seed(0)
    x, y = synthetic_task(128 if args.quick else 2048, sizes["vocab"], sizes["length"])
    model = make_model(**sizes)

    total_steps = epochs * (len(x) // batch_size)
    warmup_steps = max(1, total_steps // 10)
    schedule = WarmUp(keras.optimizers.schedules.PolynomialDecay(
        5e-4, total_steps - warmup_steps, end_learning_rate=0.0), warmup_steps)
    optimizer = AdamW(learning_rate=schedule, weight_decay=0.01,
                      exclude_from_weight_decay=["layer_norm", "bias"],
                      layerwise_lr_decay=layerwise_lr_decay_from_model(model, 0.8),
                      init_verbose=False)
    model.compile(optimizer, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])

    log = args.log or os.path.join(tempfile.mkdtemp(), "finetune_log.csv")
    history = model.fit(x, y, batch_size=batch_size, epochs=epochs, verbose=0,
                        validation_split=0.2, shuffle=True,
                        callbacks=[LearningRateMonitor(per_layer=True),
                                   keras.callbacks.CSVLogger(log)])
    for epoch in range(epochs):
        print(f"epoch {epoch + 1}: loss {history.history['loss'][epoch]:.3f}  "
              f"val_accuracy {history.history['val_accuracy'][epoch]:.3f}  "
              f"lr {history.history['lr'][epoch]:.2e}")
    print(f"per-layer effective learning rates and lr_t logged to {log}")
    return history


if __name__ == "__main__":
    main()
