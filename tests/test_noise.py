"""The label-noise ceiling: its estimates against a latent-plus-noise population where the truth is known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from llmsched.predictors.metrics import kendall_tau
from llmsched.predictors.noise import median_lengths, noise_ceiling, noise_table, sample_matrix, spearman_brown


def population(n: int, k: int, noise: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    latent = rng.normal(5.0, 1.0, n)  # log of the typical length
    return latent, np.exp(latent[:, None] + rng.normal(0.0, noise, (n, k)))


@pytest.mark.parametrize("noise", [0.5, 1.0])
def test_the_ceiling_is_what_a_perfect_predictor_reaches(noise):
    latent, samples = population(4000, 3, noise)
    c = noise_ceiling(samples)
    assert c["tau_one_vs_one"] < c["ceiling_one"] < c["ceiling_median"] < 1
    # the typical length, as scores, against one sample and against the median of the three
    assert abs(kendall_tau(latent, samples[:, 0]) - c["ceiling_one"]) < 0.03
    assert abs(kendall_tau(latent, np.median(samples, axis=1)) - c["ceiling_median"]) < 0.03
    assert abs(c["tau_one_vs_rest"] - c["tau_one_vs_rest_model"]) < 0.03  # the model's own check


def test_noiseless_labels_have_a_ceiling_of_one_and_noisy_ones_far_below():
    _, clean = population(500, 3, 1e-6)
    _, noisy = population(500, 3, 3.0)
    assert noise_ceiling(clean)["ceiling_median"] > 0.99
    assert noise_ceiling(noisy)["ceiling_median"] < 0.5


def test_spearman_brown_and_bad_shapes():
    assert spearman_brown(0.5, 1) == pytest.approx(0.5)
    assert spearman_brown(0.5, 3) == pytest.approx(0.75)
    with pytest.raises(ValueError, match=">= 2 samples"):
        noise_ceiling(np.ones((10, 1)))
    with pytest.raises(ValueError, match=">= 3 prompts"):
        noise_ceiling(np.ones((2, 3)))


def test_collected_tables_give_medians_and_drop_prompts_with_a_failed_sample():
    rows = [("a", 0, 10, "ok"), ("a", 1, 30, "ok"), ("a", 2, 20, "ok"),
            ("b", 0, 5, "ok"), ("b", 1, 0, "error"), ("b", 2, 7, "ok"),
            ("c", 0, 1, "ok"), ("c", 1, 2, "ok"), ("c", 2, 3, "ok"),
            ("d", 0, 9, "error"), ("d", 1, 9, "error"), ("d", 2, 9, "error"),
            ("e", 0, 50, "ok"), ("e", 1, 40, "ok"), ("e", 2, 60, "ok")]
    table = pd.DataFrame(rows, columns=["request_id", "sample", "output_tokens", "status"])
    med, missing = median_lengths(table)
    assert med == {"a": 20.0, "b": 6.0, "c": 2.0, "e": 50.0} and missing == 1
    ids, m = sample_matrix(table)
    assert ids == ["a", "c", "e"] and m.shape == (3, 3)
    assert noise_table(table)["prompts"] == 3
    assert np.isnan(noise_table(table, ids={"a", "c"})["ceiling_median"])  # too few prompts: not estimated
    one = table[table["sample"] == 0]
    assert np.isnan(noise_table(one)["ceiling_median"])  # one sample per prompt: not estimable
