"""Backend-neutral: ELECTRA table, layer-wise rules, bounds and warmup maths in core."""
import math
import warnings

import numpy as np
import pytest

from keras_adamw.core import checks, matching, rules, schedule
from keras_adamw.core import settings as core_settings
from keras_adamw.core.layerwise import layerwise_lr_decay

# ELECTRA (google-research/electra, `_get_layer_lrs`), decay 0.9, 8 layers:
# lr * 0.9 ** (n_layers + 2 - depth); decay rate = 1 - that multiplier.
PUBLISHED_RATES = {
    "/embeddings/": 0.6513215599, "/embeddings_project/": 0.6513215599,
    "encoder/layer_0/": 0.612579511, "encoder/layer_1/": 0.56953279,
    "encoder/layer_2/": 0.5217031, "encoder/layer_3/": 0.468559,
    "encoder/layer_4/": 0.40951, "encoder/layer_5/": 0.3439,
    "encoder/layer_6/": 0.271, "encoder/layer_7/": 0.19, "task_specific/": 0.0,
}


def test_electra_table_equals_the_published_values():
    rates = layerwise_lr_decay(0.9, 8)
    assert list(rates) == list(PUBLISHED_RATES)
    for key, rate in rates.items():
        assert rate == pytest.approx(PUBLISHED_RATES[key], abs=1e-10), key
    assert 1 - rates["/embeddings/"] == pytest.approx(0.3486784401, abs=1e-10)


def test_electra_table_with_custom_patterns():
    rates = layerwise_lr_decay(0.5, 2, embeddings="emb", layer="block_{i}/", head=["head"])
    assert rates == {"emb": 1 - 0.5**4, "block_0/": 1 - 0.5**3, "block_1/": 1 - 0.5**2,
                     "head": 0.0}
    with pytest.raises(TypeError, match="layer"):
        layerwise_lr_decay(0.5, 2, layer="block/")
    with pytest.raises(ValueError, match="decay"):
        layerwise_lr_decay(0.0, 2)


def test_layerwise_rates_compose_with_multipliers_longest_pattern_wins():
    settings = core_settings.make_settings(lr_multipliers={"encoder": 2.0},
                                    layerwise_lr_decay={"layer_1/": 0.5, "layer_10/": 0.75})
    paths = ["encoder/layer_1/kernel", "encoder/layer_10/kernel", "head/kernel"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        resolved = matching.resolve_rules(paths, settings)
    assert [r.multiplier for r in resolved] == [1.0, 0.5, 1.0]


def test_var_dict_becomes_exact_path_regexes_and_is_saved():
    settings = core_settings.with_layerwise_lr_decay(
        core_settings.make_settings(), {"dense": 0.1}, [("dense/kernel", 0.5)], path_of=str)
    assert settings.layerwise_lr_decay == {"dense": 0.1, r"^dense/kernel$": 0.5}
    resolved = matching.resolve_rules(["dense/kernel", "dense/bias", "dense/kernel_2"],
                                      settings)
    assert [r.multiplier for r in resolved] == [0.5, 0.9, 0.9]
    saved = core_settings.settings_config(settings, serialize=None)
    assert core_settings.make_settings(**core_settings.decode_config(saved, deserialize=None)) == settings


def test_bounds_are_checked_and_evaluated_per_iteration():
    assert checks.check_effective_lr_bounds(None) is None
    assert checks.check_effective_lr_bounds((None, None)) is None
    assert checks.check_effective_lr_bounds([1, 2]) == (1.0, 2.0)
    with pytest.raises(ValueError, match="lower <= upper"):
        checks.check_effective_lr_bounds((2, 1))
    bounds = (0.1, lambda iterations: 0.1 * (iterations + 2))
    assert rules.bound_values(bounds, 3) == (0.1, pytest.approx(0.5))
    np.testing.assert_allclose(rules.clip_rate(np.array([0.0, 0.3, 1.0]), (0.1, 0.5), np),
                               [0.1, 0.3, 0.5])
    assert rules.clip_rate(0.7, (None, 0.5), np) == 0.5


def test_adaptive_rate_formulas():
    v = np.array([4.0, 0.25])
    np.testing.assert_allclose(rules.adaptive_rate(0.1, v, 0.0, np), [0.05, 0.2])
    np.testing.assert_allclose(rules.adaptive_rate(0.1, v, 0.0, np, 4.0), [0.025, 0.1])


def test_warmup_formula():
    steps = np.arange(6.0)
    after = 1.0 * 0.5 ** np.maximum(steps - 4, 0)
    values = schedule.warmup_lr(steps, 4, 0.2, 1.0, after, np)
    np.testing.assert_allclose(values, [0.2, 0.4, 0.6, 0.8, 1.0, 0.5])
    assert schedule.warmup_lr(0.0, 0, 0.2, 1.0, 1.0, np) == 1.0
    assert math.isclose(schedule.warmup_lr(2.0, 4, 0.0, 1.0, 1.0, np), 0.5)
