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
    """Layer-wise decay rates by depth in a model, through nested models and backbones.

    Depth comes from the model's layers in forward order, nested models (a
    keras-hub backbone inside its task) opened up. When the model has a stack of
    numbered blocks (sibling layers named `<stem>_<i>` or `<stem>_<i>_<rest>`,
    `i` = 0 ... k-1, each block made of the same kinds of layers: keras-hub's
    `transformer_layer_{i}`, or `encoder_{i}_attention`, `encoder_{i}_ffn`, ...),
    each block is one depth and the layers between blocks share one: the
    embeddings before the first block are depth 0, block `i` is depth `i + 1`,
    the head after the last block (pooler, classifier) is the top. Without such a stack every layer that owns trainable
    variables is one depth, in order. The top depth `D` keeps the learning rate:

    ```
    multiplier(depth) = decay ** (D - depth);   rate = 1 - multiplier
    ```

    Args:
        model: a built Keras 3 or tf_keras model (Sequential, Functional,
            subclassed; nested models and keras-hub backbones included).
        decay: the decay per depth, in (0, 1].

    Returns:
        `{exact-path regex: decay_rate}` for every trainable variable, in forward
        order (a variable shared by two layers takes its first, lowest depth).
    """
    decay = checks.check_number("decay", decay, low=0, high=1, low_open=True)
    if getattr(model, "layers", None) is None:
        raise checks.argument_error("model", model, "a Keras model with `layers`",
                                    error=TypeError)
    stages = _stages(_units(model))
    top = len(stages) - 1
    rates = {}
    for depth, variables in enumerate(stages):
        for variable in variables:
            key = f"^{re.escape(matching.variable_path(variable))}$"
            rates.setdefault(key, 1.0 - decay ** (top - depth))
    return rates


# A block's layer name: `<stem><i>` or `<stem>_<i>`, alone or before `_<rest>`
# (keras-hub's `transformer_layer_3`, `encoder_3_attention`); Keras's own
# `conv2d_1` or `dense_1` do not start a stack, which must count from 0.
_BLOCK = re.compile(r"^(?P<stem>\D*?)_?(?P<index>\d+)(?=$|_)")


def _children(layer):
    """A layer's direct sub-layers in forward order (`model.layers` for models)."""
    children = getattr(layer, "layers", None)
    if children is None:
        flatten = getattr(layer, "_flatten_layers", None)
        children = flatten(include_self=False, recursive=False) if flatten else []
    unique = {id(child): child for child in children}
    return list(unique.values())


def _blocks(children):
    """`{id(child): (stem, index)}` of the children in a stack of numbered blocks:
    one stem, indices exactly 0..k-1 with k >= 2, every block made of the same
    kinds of layers (one `transformer_layer_i`, or the `encoder_i_*` layers)."""
    members = {}
    for child in children:
        found = _BLOCK.match(child.name)
        if found and child.trainable_variables:
            key = (found["stem"], int(found["index"]))
            members.setdefault(key, []).append(child)
    stacks = {}
    for (stem, index), layers in members.items():
        kinds = tuple(sorted(type(layer).__name__ for layer in layers))
        stacks.setdefault(stem, {})[index] = (kinds, layers)
    blocks = {}
    for stem, stack in stacks.items():
        if (len(stack) >= 2 and sorted(stack) == list(range(len(stack)))
                and len({kinds for kinds, _ in stack.values()}) == 1):
            blocks.update({id(layer): (stem, index)
                           for index, (_, layers) in stack.items() for layer in layers})
    return blocks


def _opens_up(layer):
    """Whether depth looks inside `layer`: a nested model, or a layer holding blocks."""
    return getattr(layer, "layers", None) is not None or bool(_blocks(_children(layer)))


def _units(layer):
    """`[(block or None, variables)]` in forward order: each numbered block (its
    layers together), each other layer that owns trainable variables; nested
    models and layers holding blocks opened up."""
    children = _children(layer)
    blocks = _blocks(children)
    owned = {id(v) for child in children for v in child.trainable_variables}
    units = [(None, [v for v in layer.trainable_variables if id(v) not in owned])]
    for child in children:
        if not child.trainable_variables:  # e.g. an `x + y` between a block's layers
            continue
        block = blocks.get(id(child))
        if block is not None:
            if units[-1][0] != block:
                units.append((block, []))
            units[-1][1].extend(child.trainable_variables)
        elif _opens_up(child):
            units.extend(_units(child))
        else:
            units.append((None, list(child.trainable_variables)))
    return [(block, variables) for block, variables in units if variables]


def _stages(units):
    """Variables per depth: one depth per block and per run of layers between blocks
    when the model has blocks, else one depth per layer."""
    if all(block is None for block, _ in units):
        return [variables for _, variables in units]
    stages = []
    previous = ("", -1)
    for block, variables in units:
        if block is not None or previous is not None:
            stages.append([])
        stages[-1].extend(variables)
        previous = block
    return stages
