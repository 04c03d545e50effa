"""Fine-tuning a keras-hub BERT classifier with keras-adamw (Keras 3, any backend).

keras-hub is where Keras users get BERT, GPT-2, Gemma and Llama. This recipe
fine-tunes `keras_hub.models.BertTextClassifier` the way BERT and ELECTRA are:

- `AdamW(weight_decay=0.01)` with keras-hub's LayerNorm and bias variables
  excluded (`exclude_from_weight_decay=["layer_norm", "bias"]`);
- linear warmup into a linear decay to 0 (`schedules.WarmUp`);
- layer-wise learning-rate decay by depth inside the backbone
  (`layerwise_lr_decay_from_model`): embeddings < transformer_layer_0 < ... <
  head, printed as a table at build (`init_verbose`);
- save to `.keras`, load and continue: keras-hub tasks override `compile`, so
  `load_model` leaves them compiled with keras-hub's default Adam; compile with
  the same optimizer again and `load_weights` the file for its state. The
  resumed run equals the one that never stopped.

The backbone is built from config with random weights (no download); with a
preset, `keras_hub.models.BertTextClassifier.from_preset("bert_base_en", ...)`
takes the same optimizer.

    python docs/examples/keras_hub_finetuning.py            # 3 epochs, 4 layers
    python docs/examples/keras_hub_finetuning.py --quick    # a smoke run (seconds)
    KERAS_BACKEND=jax python docs/examples/keras_hub_finetuning.py
"""
import argparse
import os
import tempfile

import keras
import keras_hub
import numpy as np

from keras_adamw import AdamW, layerwise_lr_decay_from_model
from keras_adamw.schedules import WarmUp

LENGTH, VOCABULARY, BATCH = 16, 100, 16


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, 2 epochs")
    parser.add_argument("--epochs", type=int, default=3)
    return parser.parse_args(argv)


def classifier(num_layers, hidden_dim, seed=0):
    keras.utils.set_random_seed(seed)
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=VOCABULARY, num_layers=num_layers, num_heads=2,
        hidden_dim=hidden_dim, intermediate_dim=2 * hidden_dim, max_sequence_length=LENGTH,
        dropout=0.0)
    return keras_hub.models.BertTextClassifier(backbone, num_classes=2, preprocessor=None,
                                               dropout=0.0)


def synthetic_task(n, seed=0):
    """Label 1 when token 1 appears more often than token 2."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, VOCABULARY, size=(n, LENGTH)).astype("int32")
    ids[: n // 2, :4] = 1  # enough positives to learn from
    x = {"token_ids": ids, "segment_ids": np.zeros_like(ids),
         "padding_mask": np.ones_like(ids, dtype="bool")}
    return x, ((ids == 1).sum(1) > (ids == 2).sum(1)).astype("int32")


def optimizer_for(model, total_steps, verbose=False):
    warmup_steps = max(1, total_steps // 10)
    schedule = WarmUp(keras.optimizers.schedules.PolynomialDecay(
        5e-4, total_steps - warmup_steps, end_learning_rate=0.0), warmup_steps)
    return AdamW(learning_rate=schedule, weight_decay=0.01,
                 exclude_from_weight_decay=["layer_norm", "bias"],
                 layerwise_lr_decay=layerwise_lr_decay_from_model(model, 0.8),
                 init_verbose=verbose)


def compile_with(model, optimizer):
    model.compile(optimizer, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return model


def resume(path, total_steps):
    """The `.keras` file back into training, optimizer state included."""
    model = keras.saving.load_model(path)  # keras-hub warns: compile() was not called
    compile_with(model, optimizer_for(model, total_steps))
    model.optimizer.build(model.trainable_variables)
    model.load_weights(path)  # the optimizer's variables are in the file too
    return model


def main(argv=None):
    args = parse_args(argv)
    num_layers, hidden_dim = (2, 16) if args.quick else (4, 64)
    epochs = 2 if args.quick else max(2, args.epochs)
    x, y = synthetic_task(128 if args.quick else 2048)
    total_steps = epochs * (len(y) // BATCH)
    fit = {"batch_size": BATCH, "shuffle": False, "verbose": 0}

    model = classifier(num_layers, hidden_dim)
    compile_with(model, optimizer_for(model, total_steps, verbose=True))
    history = model.fit(x, y, epochs=epochs, **fit)
    for epoch, (loss, accuracy) in enumerate(zip(history.history["loss"],
                                                 history.history["accuracy"])):
        print(f"epoch {epoch + 1}: loss {loss:.3f}  accuracy {accuracy:.3f}")

    interrupted = classifier(num_layers, hidden_dim)
    compile_with(interrupted, optimizer_for(interrupted, total_steps))
    interrupted.fit(x, y, epochs=1, **fit)
    path = os.path.join(tempfile.mkdtemp(), "bert_classifier.keras")
    interrupted.save(path)
    resumed = resume(path, total_steps)
    resumed.fit(x, y, epochs=epochs, initial_epoch=1, **fit)
    same = all(np.array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b))
               for a, b in zip(resumed.weights + resumed.optimizer.variables,
                               model.weights + model.optimizer.variables))
    print(f"keras-hub fine-tuning: resumed run {'equals' if same else 'DIFFERS from'} "
          f"the uninterrupted one")
    return same


if __name__ == "__main__":
    raise SystemExit(0 if main() else 1)
