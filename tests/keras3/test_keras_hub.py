"""Fine-tuning keras-hub models as users do, on every backend.

keras-hub's BERT classifier and GPT-2 causal LM, built from config with random
weights (no downloads), small enough for a test:

- `layerwise_lr_decay_from_model` finds the depth inside the nested backbone:
  embeddings < transformer_layer_0 < transformer_layer_1 < head (pooler, logits),
  exactly `decay ** (D - depth)`;
- BERT's recipe (decay excluded from keras-hub's `*layer_norm*` and `bias`
  variables, warmup into a linear decay, layer-wise decay) fine-tunes, and a run
  saved to `.keras`, loaded and continued equals the run that never stopped:
  weights and every optimizer variable;
- GPT-2 under `mixed_bfloat16` with cosine warm restarts: float32 variables,
  `t_cur`/`eta_t` follow the oracle's schedule through two restarts, the loss
  falls, and save + load + continue equals the uninterrupted run.
"""
import keras
import keras_hub
import numpy as np
import pytest
from helpers import as_float64
from reference import cosine_eta, next_t_cur

import keras_adamw
from keras_adamw.schedules import WarmUp

VOCABULARY, LENGTH, BATCH = 40, 8, 4
SIZES = {"num_layers": 2, "num_heads": 2, "hidden_dim": 8, "intermediate_dim": 16,
         "max_sequence_length": LENGTH}
DECAY = 0.8
BERT_EXCLUDED = ["layer_norm", "bias"]  # keras-hub's names of BERT's LayerNorm and biases


def bert_classifier(seed=0):
    keras.utils.set_random_seed(seed)
    backbone = keras_hub.models.BertBackbone(vocabulary_size=VOCABULARY, dropout=0.0,
                                             **SIZES)
    return keras_hub.models.BertTextClassifier(backbone, num_classes=2, preprocessor=None,
                                               dropout=0.0)


def gpt2_lm(seed=0):
    keras.utils.set_random_seed(seed)
    backbone = keras_hub.models.GPT2Backbone(vocabulary_size=VOCABULARY, dropout=0.0,
                                             dtype="mixed_bfloat16", **SIZES)
    return keras_hub.models.GPT2CausalLM(backbone, preprocessor=None)


def tokens(n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(1, VOCABULARY, size=(n, LENGTH)).astype("int32")


def bert_data(n=2 * BATCH):
    ids = tokens(n)
    x = {"token_ids": ids, "segment_ids": np.zeros_like(ids),
         "padding_mask": np.ones_like(ids, dtype="bool")}
    return x, (ids[:, 0] % 2).astype("int32")


def lm_data(n=2 * BATCH):
    ids = tokens(n, seed=1)
    x = {"token_ids": ids, "padding_mask": np.ones_like(ids, dtype="bool")}
    return x, np.roll(ids, -1, axis=1)


def bert_optimizer(model):
    schedule = WarmUp(keras.optimizers.schedules.PolynomialDecay(1e-2, 6, 0.0), 2)
    return keras_adamw.AdamW(
        learning_rate=schedule, weight_decay=0.01, exclude_from_weight_decay=BERT_EXCLUDED,
        layerwise_lr_decay=keras_adamw.layerwise_lr_decay_from_model(model, DECAY),
        init_verbose=False)


def lm_optimizer(model=None, total_iterations=3):
    return keras_adamw.AdamW(learning_rate=1e-2, weight_decay=0.01,
                             exclude_from_weight_decay=BERT_EXCLUDED,
                             use_cosine_annealing=True, total_iterations=total_iterations,
                             autorestart=True, init_verbose=False)


def compiled_bert(seed=0):
    model = bert_classifier(seed)
    model.compile(bert_optimizer(model),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def compiled_lm(seed=0):
    model = gpt2_lm(seed)
    model.compile(lm_optimizer(),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def rules_by_path(model):
    optimizer = model.optimizer
    return {v.path: optimizer._rules[optimizer._get_variable_index(v)]
            for v in model.trainable_variables}


def depth_group(path):
    """The expected depth group of a BERT classifier variable, from its path."""
    for group in ("transformer_layer_0", "transformer_layer_1"):
        if path.startswith(group + "/"):
            return group
    if path.startswith(("pooled_dense/", "logits/")):
        return "head"
    return "embeddings"


def test_bert_layerwise_decay_grows_with_depth():
    model = compiled_bert()
    x, y = bert_data()
    model.train_on_batch(x, y)
    multipliers = {}
    for path, rule in rules_by_path(model).items():
        multipliers.setdefault(depth_group(path), set()).add(round(rule.multiplier, 12))
    assert multipliers == {"embeddings": {round(DECAY ** 3, 12)},
                           "transformer_layer_0": {round(DECAY ** 2, 12)},
                           "transformer_layer_1": {round(DECAY, 12)}, "head": {1.0}}
    embedding_paths = {p for p in rules_by_path(model) if depth_group(p) == "embeddings"}
    assert embedding_paths == {"token_embedding/embeddings", "position_embedding/embeddings",
                               "segment_embedding/embeddings", "embeddings_layer_norm/gamma",
                               "embeddings_layer_norm/beta"}


def test_bert_decay_excludes_layer_norms_and_biases():
    model = compiled_bert()
    model.train_on_batch(*bert_data())
    decays = {path: rule.decay_lambda for path, rule in rules_by_path(model).items()}
    excluded = {path for path in decays if "layer_norm" in path or path.endswith("/bias")}
    # The embeddings' LayerNorm; per layer 2 LayerNorms and 6 biases; 2 head biases.
    assert len(excluded) == 2 + 2 * (2 * 2 + 6) + 2
    assert {path for path, decay in decays.items() if decay == 0} == excluded
    assert {decays[path] for path in decays.keys() - excluded} == {0.01}


def resume(path, optimizer_for):
    """docs/pages/keras_hub.md's recipe: keras-hub tasks override `compile`, so
    `load_model` leaves them compiled with keras-hub's default Adam (Keras warns);
    compile with the same optimizer again and load its state from the file."""
    with pytest.warns(UserWarning, match="compile"):
        model = keras.saving.load_model(path)
    model.compile(optimizer_for(model), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.optimizer.build(model.trainable_variables)
    model.load_weights(path)
    return model


def fit_steps(model, data, epochs, initial_epoch=0):
    x, y = data
    return model.fit(x, y, batch_size=BATCH, epochs=epochs, initial_epoch=initial_epoch,
                     shuffle=False, verbose=0)


def assert_same_state(model, reference):
    """Weights and every optimizer variable (iterations, t_cur, eta_t, lr_t, slots)."""
    assert len(model.optimizer.variables) == len(reference.optimizer.variables)
    for ours, theirs in zip(model.optimizer.variables, reference.optimizer.variables):
        np.testing.assert_array_equal(as_float64(ours), as_float64(theirs), err_msg=ours.path)
    for ours, theirs in zip(model.weights, reference.weights):
        np.testing.assert_array_equal(as_float64(ours), as_float64(theirs), err_msg=ours.path)


@pytest.mark.parametrize("build, optimizer_for, data",
                         [(compiled_bert, bert_optimizer, bert_data),
                          (compiled_lm, lm_optimizer, lm_data)],
                         ids=["bert_classifier", "gpt2_causal_lm"])
def test_save_load_continue_equals_the_uninterrupted_run(build, optimizer_for, data, tmp_path):
    uninterrupted = build()
    fit_steps(uninterrupted, data(), epochs=3)
    interrupted = build()
    fit_steps(interrupted, data(), epochs=1)
    interrupted.save(tmp_path / "model.keras")
    resumed = resume(tmp_path / "model.keras", optimizer_for)
    assert int(resumed.optimizer.iterations.numpy()) == 2
    fit_steps(resumed, data(), epochs=3, initial_epoch=1)
    assert_same_state(resumed, uninterrupted)


def test_gpt2_mixed_bfloat16_with_warm_restarts():
    model = compiled_lm()
    x, y = lm_data()
    assert {v.dtype for v in model.trainable_variables} == {"float32"}
    assert model.backbone.compute_dtype == "bfloat16"
    t_cur, losses = 0, []
    for _ in range(7):  # two restarts: 3-update cycles
        losses.append(model.train_on_batch(x, y, return_dict=True)["loss"])
        t_cur = next_t_cur(t_cur, 3, autorestart=True)
        assert int(model.optimizer.t_cur.numpy()) == t_cur
        assert float(model.optimizer.eta_t.numpy()) == pytest.approx(
            cosine_eta(t_cur, 3, 0.0, 1.0), abs=1e-7)
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]
    assert {v.dtype for v in model.trainable_variables} == {"float32"}
