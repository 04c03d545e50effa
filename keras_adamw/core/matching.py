"""Names and patterns -> per-variable learning-rate multiplier and decay.

Resolved once, at build, into one `VariableRule` per variable, in the order of
the optimizer's variables; adapters look rules up by variable index, never by
name (a replica's copy of a variable has another name).
"""
import dataclasses
import difflib
import re
import warnings

_LEGACY_SUFFIX = re.compile(r":\d+$")


@dataclasses.dataclass(frozen=True)
class VariableRule:
    """What one variable gets: `lr_v = lr * multiplier`; decay coefficients.

    `l1`, `l2` are the paper-convention decays already normalised by
    `sqrt(1/total_iterations_wd)`; `decay_lambda` is the Keras-convention
    `weight_decay` (0 when excluded or unset; 1 with `decay_scheduled`, the
    step's schedule value then multiplying it). `keras_coupling`,
    `paper_coupling`: each convention's `decay_coupling` (`core.rules.
    coupling_factor`), with `lr_peak` for the ratios. `decay_to_init`: the decays
    act on `theta - theta_0` (`decay_to="init"`), not on `theta`.
    """

    multiplier: float = 1.0
    l1: float = 0.0
    l2: float = 0.0
    decay_lambda: float = 0.0
    decay_scheduled: bool = False
    keras_coupling: str = "lr"
    paper_coupling: str = "none"
    lr_peak: float | None = None
    decay_to_init: bool = False

    @property
    def has_decay(self):
        return bool(self.l1 or self.l2 or self.decay_lambda)


def normalize_name(name):
    """Drops the TF-style `:0` suffix of keras-adamw 1.x keys and names."""
    return _LEGACY_SUFFIX.sub("", name)


def variable_path(variable):
    """The key a variable is matched by, in both flavours: `variable.path` (Keras 3)
    or the name without `:0` (tf_keras variables have no `path`)."""
    return normalize_name(getattr(variable, "path", None) or variable.name)


def _search(pattern, path):
    """Substring match, or regex match when `pattern` is a valid regex."""
    if pattern in path:
        return True
    try:
        return re.search(pattern, path) is not None
    except re.error:
        return False


def match_multiplier(path, lr_multipliers):
    """The multiplier of the longest key found in `path` (1.0 if none)."""
    found = [key for key in lr_multipliers if _search(normalize_name(key), path)]
    if not found:
        return 1.0, None
    key = max(found, key=lambda k: (len(normalize_name(k)), k))
    return lr_multipliers[key], key


def match_layerwise_factor(path, layerwise_lr_decay):
    """`1 - decay_rate` of the longest pattern found in `path` (1.0 if none).

    adam-lr-decay's convention: rate 0 leaves the learning rate unchanged, rate
    1 freezes the variable.
    """
    rate, key = match_multiplier(path, layerwise_lr_decay)
    return (1.0 if key is None else 1.0 - rate), key


def _unique(key, candidates):
    if len(candidates) > 1:
        raise ValueError(
            f"Argument `weight_decays` key {key!r} names one variable but matches "
            f"{len(candidates)}: {candidates}. Use the full variable path.")
    return candidates[0] if candidates else None


def _tails(name):
    """`name` without its first scope, then without two, ...: longest first. A
    regex anchored at the start (`^sequential/dense_1/kernel$`, as
    `layerwise_lr_decay_from_model` writes) stays anchored (`^dense_1/kernel$`)."""
    anchor = "^" if name.startswith("^") else ""
    parts = name[len(anchor):].split("/")
    return [anchor + "/".join(parts[i:]) for i in range(1, len(parts))]


def _names_a_scope(tail, scopes):
    """True when a segment of `tail` is one of `scopes` (the layer and model scopes
    of the paths), so the tail is more than a weight name such as `kernel`."""
    return any(segment.strip("^$") in scopes for segment in tail.split("/"))


def rescope(key, paths, matches):
    """The form of `key` that names variables among `paths`.

    A path recorded in one model can lose leading scopes in the same model rebuilt:
    `keras.models.load_model` gives `dense_1/kernel` for a `Sequential`'s
    `sequential/dense_1/kernel`, `inner_dense/kernel` for a nested model's
    `inner/inner_dense/kernel`. So a key that matches nothing is retried without its
    first scope, then two, ... (longest tail first), as long as the tail still names
    a layer or scope, not only a weight.

    Args:
        key: a `lr_multipliers`, `weight_decays`, exclusion or layer-wise key.
        paths: the variable paths of this optimizer.
        matches: `tail -> bool`, whether a form of the key finds a variable.

    Returns:
        The first form that matches, else `key` unchanged (reported as unmatched).
    """
    name = normalize_name(key)
    if matches(name):
        return name
    scopes = {s for path in paths for s in path.split("/")[:-1]}
    for tail in _tails(name):
        if _names_a_scope(tail, scopes) and matches(tail):
            return tail
    return name


def rescoped_patterns(patterns, paths):
    """`{form that matches: (value, original key)}` of `{pattern: value}` keys."""
    forms = {}
    for key, value in patterns.items():
        form = rescope(key, paths, lambda p: any(_search(p, path) for path in paths))
        forms.setdefault(form, (value, key))
    return forms


def match_decay_key(key, paths):
    """The one path a `weight_decays` key names.

    In order: the path itself; a unique path ending in `/key`; for keras-adamw 1.x
    keys `layer/weight`, a unique path `layer/.../weight` (Keras 3 puts RNN weights
    under their cell: `lstm_1/kernel:0` is `lstm_1/lstm_cell/kernel`); the same for
    the key without leading scopes that a rebuilt model no longer has (`rescope`).
    """
    name = rescope(key, paths, lambda tail: _match_decay_name(key, tail, paths) is not None)
    return _match_decay_name(key, name, paths)


def _match_decay_name(key, name, paths):
    """`match_decay_key` for one form `name` of `key` (named in errors)."""
    if name in paths:
        return name
    found = _unique(key, [p for p in paths if p.endswith("/" + name)])
    if found or "/" not in name:
        return found
    head, _, tail = name.rpartition("/")
    return _unique(key, [p for p in paths
                         if p.startswith(head + "/") and p.endswith("/" + tail)])


def is_excluded(path, patterns):
    """True when any `exclude_from_weight_decay` regex is found in `path` (patterns
    as `rescoped_patterns` gives them)."""
    return any(_search(p, path) for p in patterns)


def closest(key, paths, n=3):
    """The variable paths closest to an unmatched key, for the warning."""
    name = normalize_name(key)
    by_ratio = difflib.get_close_matches(name, paths, n=n, cutoff=0.3)
    return by_ratio or list(paths)[:n]


def warn_unmatched(argument, keys, paths):
    """One `UserWarning` per key that matched no variable."""
    for key in keys:
        warnings.warn(
            f"`{argument}` key {key!r} matches no variable of this optimizer, so it "
            f"has no effect. Closest variable paths: {closest(key, paths)}.",
            UserWarning, stacklevel=4)


def resolve_rules(paths, settings):
    """One `VariableRule` per variable path, and warnings for unmatched keys.

    The multiplier is the product of the `lr_multipliers` value and the
    layer-wise factor `1 - rate` of `layerwise_lr_decay` (each: longest key wins).

    Args:
        paths: variable paths (`"dense_1/kernel"`), in the optimizer's order.
        settings: a `core.settings.Settings`.

    Returns:
        A tuple of `VariableRule`, aligned with `paths`.
    """
    paths = [normalize_name(p) for p in paths]
    lr_multipliers = rescoped_patterns(settings.lr_multipliers, paths)
    layerwise = rescoped_patterns(settings.layerwise_lr_decay, paths)
    excluded = rescoped_patterns(dict.fromkeys(settings.exclude_from_weight_decay), paths)
    multiplier_values = {form: value for form, (value, _) in lr_multipliers.items()}
    layerwise_rates = {form: rate for form, (rate, _) in layerwise.items()}
    used_multipliers, used_layerwise = set(), set()
    multipliers = []
    for path in paths:
        value, form = match_multiplier(path, multiplier_values)
        factor, layerwise_form = match_layerwise_factor(path, layerwise_rates)
        multipliers.append(value * factor)
        used_multipliers.add(form and lr_multipliers[form][1])
        used_layerwise.add(layerwise_form and layerwise[layerwise_form][1])
    decays, unmatched_decays = paper_decays(settings.weight_decays, paths)
    warn_unmatched("lr_multipliers",
                   [k for k in settings.lr_multipliers if k not in used_multipliers], paths)
    warn_unmatched("weight_decays", unmatched_decays, paths)
    warn_unmatched("layerwise_lr_decay", [k for k in settings.layerwise_lr_decay
                                          if k not in used_layerwise], paths)
    scale = settings.decay_scale
    scheduled = callable(settings.weight_decay)
    coupling = {"keras_coupling": settings.decay_coupling or "lr",
                "paper_coupling": settings.decay_coupling or "none",
                "lr_peak": settings.lr_peak}
    targets = decay_targets(paths, settings.decay_to)
    rules = []
    for path, multiplier, to_init in zip(paths, multipliers, targets):
        l1, l2 = decays.get(path, (0.0, 0.0))
        decay_lambda = 1.0 if scheduled else settings.weight_decay or 0.0
        if is_excluded(path, excluded):
            decay_lambda = 0.0
        decayed = bool(l1 * scale or l2 * scale or decay_lambda)
        rules.append(VariableRule(multiplier, l1 * scale, l2 * scale, decay_lambda,
                                  scheduled and bool(decay_lambda), **coupling,
                                  decay_to_init=to_init and decayed))
    return tuple(rules)


def paper_decays(weight_decays, paths):
    """`({path: (l1, l2)}, unmatched keys)` of `weight_decays`; two keys that name
    one path warn, and the later wins."""
    decays, decay_keys, unmatched = {}, {}, []
    for key, pair in weight_decays.items():
        path = match_decay_key(key, paths)
        if path is None:
            unmatched.append(key)
            continue
        if decays.get(path, pair) != pair:
            warnings.warn(f"`weight_decays` keys {decay_keys[path]!r} and {key!r} both "
                          f"name variable {path!r}; the later one is used: {pair}.",
                          UserWarning, stacklevel=4)
        decays[path], decay_keys[path] = pair, key
    return decays, unmatched


def decay_targets(paths, decay_to):
    """Per path, whether it decays toward its initial value (`decay_to`: "zero",
    "init", or `{pattern: target}`, longest match wins, unmatched: "zero";
    a pattern that matches nothing warns)."""
    if isinstance(decay_to, str):
        return [decay_to == "init"] * len(paths)
    patterns = rescoped_patterns(decay_to, paths)
    values = {form: target for form, (target, _) in patterns.items()}
    used, targets = set(), []
    for path in paths:
        target, form = match_multiplier(path, values)
        targets.append(target == "init")
        used.add(form and patterns[form][1])
    warn_unmatched("decay_to", [k for k in decay_to if k not in used], paths)
    return targets


def format_table(paths, rules, settings):
    """The `init_verbose` table: path, multiplier, decays (raw and normalised)."""
    raw = {match_decay_key(k, paths): v for k, v in settings.weight_decays.items()}
    rows = [("variable", "lr mult", "l1", "l2", "l1 norm", "l2 norm", "wd")]
    for path, rule in zip(paths, rules):
        l1, l2 = raw.get(path, (0.0, 0.0))
        wd = "schedule" if rule.decay_scheduled else f"{rule.decay_lambda:g}"
        if rule.decay_to_init:
            wd += " (to init)"
        rows.append((path, f"{rule.multiplier:g}", f"{l1:g}", f"{l2:g}",
                     f"{rule.l1:.3g}", f"{rule.l2:.3g}", wd))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows)
