"""Layer-wise learning-rate decay tables (ELECTRA, Clark et al. 2020, arXiv:2003.10555).

ELECTRA fine-tunes layer `depth` of a Transformer at

```
lr * decay ** (n_layers + 2 - depth)
```

with the embeddings at depth 0, encoder layer `i` (0-based) at depth `i + 1` and
the task-specific head at depth `n_layers + 2` (full learning rate). The
functions here return `{pattern: decay_rate}` with `decay_rate = 1 - multiplier`,
the argument of `optimizer.apply_layerwise_lr_decay` (adam-lr-decay's
convention: rate 0 keeps the learning rate, rate 1 freezes).
"""
import re

from keras_adamw.core import checks, matching

# ELECTRA's keys (model/optimization.py `_get_layer_lrs`).
ELECTRA_EMBEDDINGS = ("/embeddings/", "/embeddings_project/")
ELECTRA_LAYER = "encoder/layer_{i}/"
ELECTRA_HEAD = ("task_specific/",)


def _patterns(name, value):
    return checks.check_patterns(name, value)


def layerwise_lr_decay(decay, n_layers, embeddings=ELECTRA_EMBEDDINGS, layer=ELECTRA_LAYER,
                       head=ELECTRA_HEAD):
    """ELECTRA's layer-wise decay rates, for `apply_layerwise_lr_decay`.

    ```
    multiplier(depth) = decay ** (n_layers + 2 - depth);   rate = 1 - multiplier
    embeddings: depth 0;  encoder layer i: depth i + 1;  head: depth n_layers + 2
    ```

    Args:
        decay: ELECTRA's `layerwise_lr_decay`, in (0, 1] (1: no decay).
        n_layers: number of encoder layers, >= 0.
        embeddings: patterns of the embedding variables (depth 0).
        layer: pattern of encoder layer `i`, with `{i}` for the 0-based index.
        head: patterns of the task-specific head (full learning rate).

    Returns:
        `{pattern: decay_rate}` in depth order, e.g. for `decay=0.9`,
        `n_layers=8`: `{"/embeddings/": 0.6513215599, ...}` (`1 - 0.9**10`).
    """
    decay = checks.check_number("decay", decay, low=0, high=1, low_open=True)
    n_layers = checks.check_count("n_layers", n_layers)
    if not isinstance(layer, str) or "{i}" not in layer:
        raise checks.argument_error("layer", layer, "a pattern with `{i}`, e.g. "
                                    "'encoder/layer_{i}/'", error=TypeError)
    depths = {pattern: 0 for pattern in _patterns("embeddings", embeddings)}
    for i in range(n_layers):
        depths[layer.format(i=i)] = i + 1
    for pattern in _patterns("head", head):
        depths[pattern] = n_layers + 2
    return {pattern: 1.0 - decay ** (n_layers + 2 - depth)
            for pattern, depth in depths.items()}


def layerwise_lr_decay_from_model(model, decay):
    """Layer-wise decay rates by the order of a model's layers.

    The layers of `model.layers` that own trainable variables get depths
    `0, 1, ..., n - 1` in order; the last one keeps the full learning rate:

    ```
    multiplier(depth) = decay ** (n - 1 - depth);   rate = 1 - multiplier
    ```

    Args:
        model: a built Keras 3 or tf_keras model (nested models count as one layer).
        decay: the decay per layer, in (0, 1].

    Returns:
        `{exact-path regex: decay_rate}` for every trainable variable.
    """
    decay = checks.check_number("decay", decay, low=0, high=1, low_open=True)
    layers = getattr(model, "layers", None)
    if layers is None:
        raise checks.argument_error("model", model, "a Keras model with `layers`",
                                    error=TypeError)
    owners = [layer for layer in layers if layer.trainable_variables]
    rates = {}
    for depth, layer in enumerate(owners):
        rate = 1.0 - decay ** (len(owners) - 1 - depth)
        for variable in layer.trainable_variables:
            rates[f"^{re.escape(matching.variable_path(variable))}$"] = rate
    return rates
