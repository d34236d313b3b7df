"""EWSJF's mixed prompt-length workload (llmsched.workload.mixed)."""

from __future__ import annotations

import numpy as np
import pytest

from llmsched.workload.mixed import MixedConfig, draw_prompt_lengths, mixed_workload
from llmsched.workload.tokens import TokenPool, count_tokens


@pytest.mark.parametrize("distribution", ["uniform", "bimodal"])
def test_prompt_lengths_in_range_and_exact(tok, pool_texts, distribution):
    cfg = MixedConfig(n=80, lo=20, hi=1500, distribution=distribution)
    reqs = mixed_workload(cfg, tok, pool_texts, seed=0)
    assert len(reqs) == 80 and len({r.request_id for r in reqs}) == 80
    lengths = [r.prompt_tokens for r in reqs]
    assert all(20 <= n <= 1500 for n in lengths)
    assert lengths == count_tokens(tok, [r.prompt for r in reqs], add_special_tokens=True)
    assert all(1 <= r.output_tokens <= 100 for r in reqs)
    assert {r.source for r in reqs} == {"mixed-20-1500"}


def test_bimodal_shape():
    cfg = MixedConfig(n=20_000, lo=100, hi=16_000, distribution="bimodal", short_fraction=0.7, mode_width=0.1)
    n = draw_prompt_lengths(cfg, np.random.default_rng(0))
    w = round(0.1 * (16_000 - 100))
    short, long = n <= 100 + w, n >= 16_000 - w
    assert np.all(short | long)
    assert short.mean() == pytest.approx(0.7, abs=0.02)
    u = draw_prompt_lengths(MixedConfig(n=20_000, lo=100, hi=2000), np.random.default_rng(0))
    assert u.min() >= 100 and u.max() <= 2000 and abs(u.mean() - 1050) < 20


def test_seeded(tok, pool_texts):
    pool = TokenPool(tok, pool_texts)
    cfg = MixedConfig(n=10, lo=10, hi=300)
    a, b = mixed_workload(cfg, tok, pool, seed=3), mixed_workload(cfg, tok, pool, seed=3)
    c = mixed_workload(cfg, tok, pool, seed=4)
    assert [(r.prompt, r.output_tokens) for r in a] == [(r.prompt, r.output_tokens) for r in b]
    assert [r.prompt for r in a] != [r.prompt for r in c]


def test_presets_and_validation(tok):
    cfg = MixedConfig.preset("100-16000", n=5, distribution="bimodal")
    assert (cfg.lo, cfg.hi, cfg.n, cfg.source) == (100, 16000, 5, "mixed-100-16000")
    assert (MixedConfig.preset("100-2000").lo, MixedConfig.preset("100-2000").hi) == (100, 2000)
    with pytest.raises(ValueError, match="valid presets: 100-2000, 100-16000"):
        MixedConfig.preset("tiny")
    with pytest.raises(ValueError, match="lo=50, hi=10"):
        MixedConfig(lo=50, hi=10)
    with pytest.raises(ValueError, match="'zipf'"):
        MixedConfig(distribution="zipf")
    with pytest.raises(ValueError, match="short_fraction"):
        MixedConfig(short_fraction=1.5)
    with pytest.raises(ValueError, match="lo=1 is below"):
        mixed_workload(MixedConfig(n=1, lo=1, hi=5), tok, ["some text"], seed=0)  # BOS + 0 tokens impossible
