"""Length predictors: metrics, pair filter, losses, training on a learnable synthetic task, checkpoints, scoring."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import scipy.stats
import torch

from llmsched.predictors import (
    METHODS,
    OBJECTIVES,
    PREDICTORS,
    Objective,
    OraclePredictor,
    Predictor,
    PredictorEntry,
    PromptLengthPredictor,
    RandomPredictor,
    TrainConfig,
    filter_pairs,
    kendall_tau,
    load_ranker,
    pairwise_accuracy,
    sample_pairs,
    score_requests,
    train_cached,
    train_ranker,
)
from llmsched.predictors.base import BLANK, NON_FINITE, PREDICTOR_ERROR
from llmsched.predictors.embeddings import embedding_key, frozen_vectors, token_ids
from llmsched.predictors.losses import list_mle
from llmsched.predictors.objectives import make_objective
from llmsched.predictors.registry import names
from llmsched.predictors.train import bucket_by_length
from llmsched.workload import Request


@pytest.fixture(autouse=True)
def _own_results(tmp_path, monkeypatch):
    """Frozen-backbone vectors are cached under results/: each test gets its own."""
    monkeypatch.setenv("LLMSCHED_RESULTS", str(tmp_path / "results"))

# ---------------------------------------------------------------- metrics


@pytest.mark.parametrize("n,levels", [(7, 3), (300, 20), (1200, 1000)])
def test_kendall_tau_agrees_with_scipy(n, levels):
    rng = np.random.default_rng(n)
    true = rng.integers(0, levels, n)  # ties in the truth
    pred = true + rng.normal(0, levels / 3, n)
    pred[: n // 5] = np.round(pred[: n // 5])  # and ties in the prediction
    assert kendall_tau(pred, true) == pytest.approx(scipy.stats.kendalltau(pred, true).statistic, abs=1e-12)


def _tau_b_by_pairs(pred, true) -> float:
    """Kendall's tau-b by its definition, over all pairs: (C - D) / sqrt((C + D + T_pred) (C + D + T_true))."""
    c = d = tie_pred = tie_true = 0
    for i in range(len(pred)):
        for j in range(i + 1, len(pred)):
            sp, st = np.sign(pred[i] - pred[j]), np.sign(true[i] - true[j])
            c += sp * st > 0
            d += sp * st < 0
            tie_pred += sp == 0 and st != 0
            tie_true += st == 0 and sp != 0
    denom = math.sqrt((c + d + tie_pred) * (c + d + tie_true))
    return (c - d) / denom if denom else math.nan


@pytest.mark.parametrize("ties", ["none", "truth", "both"])
@pytest.mark.parametrize("n", [2, 9, 150])
def test_kendall_tau_is_tau_b_over_all_pairs(n, ties):
    rng = np.random.default_rng(n)
    true = rng.permutation(n).astype(float) if ties == "none" else rng.integers(0, 4, n).astype(float)
    pred = true + rng.normal(0, 2.0, n)
    if ties == "both":
        pred = np.round(pred)
    assert kendall_tau(pred, true) == pytest.approx(_tau_b_by_pairs(pred, true), abs=1e-12)


def test_kendall_tau_by_hand_and_undefined_without_warnings():
    # pairs: (0,1) tied in the truth only, (1,2) tied in the scores only, the other 4 concordant:
    # tau-b = 4 / sqrt(5 * 5) = 0.8 (tau-a would be 4 / 6)
    assert kendall_tau([1, 2, 2, 3], [1, 1, 2, 3]) == pytest.approx(0.8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert math.isnan(kendall_tau([], []))
        assert math.isnan(kendall_tau([1.0], [2.0]))
        assert math.isnan(kendall_tau([1.0, 1.0, 1.0], [1, 2, 3]))


def test_kendall_tau_extremes_and_errors():
    x = np.arange(10.0)
    assert kendall_tau(x, x) == pytest.approx(1.0)
    assert kendall_tau(-x, x) == pytest.approx(-1.0)
    assert math.isnan(kendall_tau(np.ones(5), x[:5]))
    with pytest.raises(ValueError, match="differ in length"):
        kendall_tau(x, x[:3])
    with pytest.raises(ValueError, match="finite"):
        kendall_tau([1.0, math.nan], [1, 2])


def test_pairwise_accuracy_by_hand():
    true = [10, 20, 30, 30]
    # pairs with different truth: (0,1) (0,2) (0,3) (1,2) (1,3) -> 5; scores get (0,1) wrong, tie on (1,2)
    pred = [2.0, 1.0, 1.0, 3.0]
    # (0,1): 2>1 but 10<20 wrong; (0,2): 2>1 wrong; (0,3): 2<3 right; (1,2): tie half; (1,3): right
    assert pairwise_accuracy(pred, true) == pytest.approx(2.5 / 5)
    # with min_gap 0.5 only pairs with |a-b|/max >= 0.5 count: (0,1) 0.5, (0,2) 0.67, (0,3) 0.67
    assert pairwise_accuracy(pred, true, min_gap=0.5) == pytest.approx(1 / 3)


# ---------------------------------------------------------------- pairs and losses


@pytest.mark.parametrize("delta", [0.0, 0.1, 0.2, 0.4])
def test_pair_filter_keeps_exactly_the_pairs_with_gap_at_least_delta(delta):
    rng = np.random.default_rng(1)
    lengths = rng.integers(0, 60, 200)
    a = rng.integers(0, 200, 5000)
    b = rng.integers(0, 200, 5000)
    ka, kb, y = filter_pairs(a, b, lengths, delta)
    expected = [
        (i, j) for i, j in zip(a, b, strict=True)
        if lengths[i] != lengths[j] and abs(lengths[i] - lengths[j]) / max(lengths[i], lengths[j]) >= delta
    ]
    assert list(zip(ka.tolist(), kb.tolist(), strict=True)) == [(int(i), int(j)) for i, j in expected]
    assert np.array_equal(y, np.where(lengths[ka] > lengths[kb], 1.0, -1.0))


def test_sample_pairs_draws_other_prompts_only():
    lengths = np.arange(1, 51) * 10
    a, b, y = sample_pairs(lengths, 0.0, 10, np.random.default_rng(0))
    assert len(a) == 500  # all lengths differ, delta 0: nothing filtered
    assert (a != b).all()
    assert np.bincount(a, minlength=50).tolist() == [10] * 50
    with pytest.raises(ValueError, match="at least 2"):
        sample_pairs([5], 0.2, 3, np.random.default_rng(0))
    with pytest.raises(ValueError, match="delta"):
        filter_pairs(a, b, lengths, 1.0)


def test_list_mle_prefers_the_true_order():
    rel = torch.tensor([3.0, 1.0, 2.0, 0.0])
    right = list_mle(torch.tensor([3.0, 1.0, 2.0, 0.0]), rel)
    wrong = list_mle(torch.tensor([0.0, 2.0, 1.0, 3.0]), rel)
    assert right < wrong


# ---------------------------------------------------------------- training on a learnable synthetic task

FILLER = "river table green music window paper coffee mountain garden letter".split()


def synthetic(n: int, seed: int) -> tuple[list[str], np.ndarray]:
    """Prompts whose response length is set by how much detail they ask for (0-3 'detailed' requests)."""
    rng = np.random.default_rng(seed)
    prompts, lengths = [], []
    for _ in range(n):
        k = int(rng.integers(0, 4))
        words = list(rng.choice(FILLER, 6))
        ask = ["Answer yes or no."] if k == 0 else ["Explain in great detail with long examples."] * k
        prompts.append(" ".join(words[:3] + ask + words[3:]))
        lengths.append(float(10 * 4**k + rng.integers(0, 5)))
    return prompts, np.array(lengths)


def test_pars_fine_tuned_scores_longer_responses_higher():
    prompts, lengths = synthetic(80, 0)
    cfg = TrainConfig(method="pars", max_tokens=32, epochs=3, batch_size=32, lr=2e-4, pairs_per_prompt=4,
                      warmup=0.0)
    ranker = train_ranker(cfg, prompts, lengths, progress=False)
    test_p, test_l = synthetic(60, 1)
    s = ranker.score(test_p)
    assert s[test_l > 100].mean() > s[test_l < 20].mean()  # raw score grows with response length
    assert kendall_tau(s, test_l) > 0.5
    assert ranker.info["best_val_pairwise_accuracy"] > 0.7
    assert ranker.info["history"], "validation history recorded"


@pytest.mark.parametrize("method", ["pars", "ltr", "pointwise", "classify"])
def test_short_training_beats_random(method):
    prompts, lengths = synthetic(120, 2)
    cfg = TrainConfig(method=method, max_tokens=32, epochs=8, batch_size=32, lr=5e-2, freeze_encoder=True,
                      pair_sampling="in_batch", n_classes=4, warmup=0.0)
    ranker = train_ranker(cfg, prompts, lengths, progress=False)
    test_p, test_l = synthetic(80, 3)
    tau = kendall_tau(ranker.score(test_p), test_l)
    tau_random = kendall_tau(RandomPredictor(seed=0).score(test_p), test_l)
    assert tau > tau_random + 0.3, (method, tau, tau_random)


def test_checkpoint_round_trip_and_cache(tmp_path, monkeypatch):
    prompts, lengths = synthetic(40, 4)
    cfg = TrainConfig(method="pointwise", max_tokens=16, epochs=1, batch_size=16, freeze_encoder=True)
    first = train_cached(cfg, prompts, lengths, root=tmp_path / "ck", progress=False)
    assert (tmp_path / "ck" / "model.safetensors").exists() and (tmp_path / "ck" / "DONE").exists()
    again = load_ranker(tmp_path / "ck")
    np.testing.assert_allclose(again.score(prompts[:7]), first.score(prompts[:7]), rtol=1e-5, atol=1e-6)

    def boom(*a, **k):
        raise AssertionError("retrained although a checkpoint exists")

    monkeypatch.setattr("llmsched.predictors.ranker.train_ranker", boom)
    cached = train_cached(cfg, prompts, lengths, root=tmp_path / "ck", progress=False)
    np.testing.assert_allclose(cached.score(prompts[:3]), first.score(prompts[:3]), rtol=1e-5, atol=1e-6)


def test_missing_checkpoint_says_how_to_make_one(tmp_path):
    with pytest.raises(FileNotFoundError, match="train_cached"):
        load_ranker(tmp_path / "nothing")
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "model.safetensors").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="no complete ranker checkpoint"):
        load_ranker(tmp_path / "half")


class _LogMSE(Objective):
    """MSE on log(1 + length), not standardized: an objective registered only by the test below."""

    def loss(self, batch, outputs, lengths, stats, gen):
        out = outputs(batch)
        return torch.nn.functional.mse_loss(out, torch.tensor(np.log1p(lengths[batch]), dtype=out.dtype))


def test_a_registered_objective_is_a_method_and_unknown_methods_list_the_valid_ones(monkeypatch):
    assert METHODS == tuple(OBJECTIVES) == ("pars", "ltr", "pointwise", "classify")
    with pytest.raises(ValueError, match=r"one of \('pars', 'ltr', 'pointwise', 'classify'\), got 'log-mse'"):
        TrainConfig(method="log-mse")
    cfg = TrainConfig()
    cfg.method = "bogus"
    with pytest.raises(ValueError, match="one of .*'classify'.*got 'bogus'"):
        make_objective(cfg)
    monkeypatch.setitem(OBJECTIVES, "log-mse", _LogMSE)
    prompts, lengths = synthetic(80, 5)
    cfg = TrainConfig(method="log-mse", max_tokens=32, epochs=8, batch_size=32, lr=5e-2, freeze_encoder=True,
                      warmup=0.0)
    ranker = train_ranker(cfg, prompts, lengths, progress=False)
    assert ranker.name == "log-mse" and ranker.info["n_outputs"] == 1 and ranker.info["history"]
    test_p, test_l = synthetic(60, 6)
    assert kendall_tau(ranker.score(test_p), test_l) > 0.3


def test_predictor_registry_holds_every_objective_the_baselines_and_the_oracle():
    assert names("trained") == METHODS
    assert names("baseline") == ("prompt-length", "random") and names("oracle") == ("oracle",)
    for name in names("baseline"):
        assert PREDICTORS[name].make(7).name == name
    assert PREDICTORS["random"].make(7).seed == 7
    assert PREDICTORS["oracle"].make([("a b", 3.0), ("c", 1.0)]).score(["c", "a b"]).tolist() == [1.0, 3.0]
    with pytest.raises(TypeError, match="train_cached"):
        PREDICTORS["pars"].make(0)
    with pytest.raises(ValueError, match="kind must be one of"):
        PredictorEntry("heuristic", PromptLengthPredictor)
    with pytest.raises(ValueError, match="needs a build"):
        PredictorEntry("baseline")


def test_train_config_rejects_bad_values():
    with pytest.raises(ValueError, match="method must be one of"):
        TrainConfig(method="bogus")
    with pytest.raises(ValueError, match="delta"):
        TrainConfig(delta=-0.1)
    with pytest.raises(ValueError, match="lengths must be finite"):
        train_ranker(TrainConfig(), ["a b", "c d", "e f", "g h"], [1, 2, math.nan, 4], progress=False)


# ---------------------------------------------------------------- heuristics and scoring requests


def test_heuristic_predictors():
    prompts = ["one", "one two three", "one two"]
    assert PromptLengthPredictor().score(prompts).tolist() == [1.0, 3.0, 2.0]
    a = RandomPredictor(seed=3).score(prompts)
    assert np.array_equal(a, RandomPredictor(seed=3).score(prompts))
    oracle = OraclePredictor({"one": 5, "one two": 50})
    assert oracle.score(["one two", "one"]).tolist() == [50.0, 5.0]
    with pytest.raises(KeyError, match="no length"):
        oracle.score(["unknown"])


@pytest.mark.parametrize("bad", [["ok", ""], ["ok", "   \n"], ["ok", None], ["ok", 3.5]])
def test_predictors_reject_prompts_that_are_not_text(bad):
    with pytest.raises(ValueError, match="cannot be scored"):
        PromptLengthPredictor().score(bad)


class _Flaky(Predictor):
    """NaN for prompts containing 'nan', inf for 'inf', raises for 'boom'."""

    name = "flaky"

    def _score(self, prompts):
        if any("boom" in p for p in prompts):
            raise RuntimeError("predictor crashed")
        return [math.nan if "nan" in p else math.inf if "inf" in p else float(len(p)) for p in prompts]


def test_score_requests_never_loses_a_request_and_counts_fallbacks():
    texts = ["short", "nan here", "   ", "a longer prompt", "inf", "boom", "fine", "x"]
    reqs = [Request(f"r{i}", t, 1, 1, arrival_time=float(i), hints={"score": -1.0}) for i, t in enumerate(texts)]
    out, report = score_requests(reqs, _Flaky(), batch_size=2)
    assert [r.request_id for r in out] == [r.request_id for r in reqs]
    scored = {r.request_id: r.hints.get("score") for r in out}
    assert scored["r0"] == 5.0 and scored["r3"] == 15.0
    # no stale score survives on requests that could not be scored
    assert all(scored[k] is None for k in ("r1", "r2", "r4"))
    # usable prompts go in batches of 2: [short, nan here] [a longer prompt, inf] [boom, fine] [x]
    assert report.unscored[BLANK] == 1 and report.unscored[NON_FINITE] == 2
    assert report.unscored[PREDICTOR_ERROR] == 2 and "predictor crashed" in report.errors[0]
    assert report.scored + sum(report.unscored.values()) == len(reqs)
    assert "unscored" in report.summary()


def test_hub_backbone_offline_fails_with_the_offline_alternative(monkeypatch):
    from llmsched.predictors.model import load_encoder

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OSError, match="backbone='minilm'"):
        load_encoder("some-org/not-a-local-encoder")


def _tiny_backbone(tmp_path, config):
    """A random-weight transformers model of `config` with the tiny model's tokenizer, saved to a folder."""
    from transformers import AutoModel, AutoTokenizer

    from llmsched.models import model_path

    tok = AutoTokenizer.from_pretrained(model_path("tiny"))
    config.vocab_size = len(tok)
    AutoModel.from_config(config).save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    return str(tmp_path)


def test_every_backbone_kind_scores_prompts_with_a_head_of_its_output_width(tmp_path):
    from transformers import OPTConfig, T5Config

    from llmsched.predictors.model import EncoderRanker, backbone_kind, load_encoder

    t5 = _tiny_backbone(tmp_path / "t5", T5Config(d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4))
    opt = _tiny_backbone(tmp_path / "opt", OPTConfig(hidden_size=32, word_embed_proj_dim=16, ffn_dim=64,
                                                     num_hidden_layers=2, num_attention_heads=4))
    cases = {"minilm": ("encoder", 384), "tiny": ("decoder", None), t5: ("encoder-decoder", 32), opt: ("decoder", 16)}
    for backbone, (kind, width) in cases.items():
        encoder, tok = load_encoder(backbone)
        assert backbone_kind(encoder) == kind, backbone
        model = EncoderRanker(encoder, pooling="mean").eval()
        if width is not None:  # OPT projects its last hidden states from 32 to 16
            assert model.head.in_features == width, backbone
        enc = tok(["a short prompt", "a different and much longer prompt"], padding=True, return_tensors="pt")
        with torch.no_grad():
            scores = model(enc["input_ids"], enc["attention_mask"])
        assert scores.shape == (2,) and torch.isfinite(scores).all() and scores[0] != scores[1], backbone
        if kind == "decoder":
            with pytest.raises(ValueError, match="pooling='mean'"):
                EncoderRanker(encoder, pooling="cls")


# ---------------------------------------------------------------- training speed: buckets, caches, heads

def test_length_buckets_keep_every_item_and_pad_less():
    rng = np.random.default_rng(0)
    sizes = rng.integers(5, 128, size=400)
    perm = rng.permutation(400)
    batches = [perm[s:s + 16] for s in range(0, 400, 16)]
    bucketed = bucket_by_length(batches, sizes, np.random.default_rng(1), pool=5)
    assert sorted(np.concatenate(bucketed).tolist()) == list(range(400))  # the same prompts, each once
    assert all(len(b) == 16 for b in bucketed)

    def mean_width(bs):
        return float(np.mean([sizes[b].max() for b in bs]))

    assert mean_width(bucketed) < 0.8 * mean_width(batches)
    # pair rows (a, b, y): grouped by the longer prompt of the pair, rows kept whole
    pairs = np.stack([rng.integers(0, 400, 300), rng.integers(0, 400, 300), rng.choice([-1, 1], 300)], axis=1)
    rows = [pairs[s:s + 32] for s in range(0, 300, 32)]
    out = bucket_by_length(rows, sizes, np.random.default_rng(2), pool=3)
    assert sorted(map(tuple, np.concatenate(out).tolist())) == sorted(map(tuple, pairs.tolist()))


def test_bucketed_training_pads_less_and_records_its_speed():
    prompts, lengths = synthetic(96, 5)
    prompts = [p + " and more" * int(k % 7) * 3 for k, p in enumerate(prompts)]  # varied token lengths
    base = dict(method="pointwise", max_tokens=64, epochs=1, batch_size=16, lr=1e-3, warmup=0.0)
    plain = train_ranker(TrainConfig(**base), prompts, lengths, progress=False).info
    bucketed = train_ranker(TrainConfig(**base, length_bucketing=True), prompts, lengths, progress=False).info
    assert plain["steps_per_second"] > 0 and bucketed["steps_per_second"] > 0
    assert bucketed["mean_padded_tokens"] < plain["mean_padded_tokens"]


class _CountingEmbed(torch.nn.Module):
    """A stand-in backbone: the vector is (sum of ids, length), and every call is counted."""

    calls = 0

    def embed(self, ids, mask):
        type(self).calls += 1
        return torch.stack([(ids * mask).sum(1).float(), mask.sum(1).float()], dim=1)


def test_frozen_vectors_are_computed_once_and_read_back_from_disk():
    ids = [[1, 2, 3], [4], [5, 6], [7, 8, 9, 10]]
    model = _CountingEmbed()
    first = frozen_vectors(model, ids, pad_id=0, key="probe-test", batch_size=3, progress=False)
    # rows in the caller's order although batches are length-sorted
    assert first.tolist() == [[6.0, 3.0], [4.0, 1.0], [11.0, 2.0], [34.0, 4.0]]
    calls = _CountingEmbed.calls
    again = frozen_vectors(model, ids, pad_id=0, key="probe-test", progress=False)
    assert _CountingEmbed.calls == calls and torch.equal(again, first)
    other = frozen_vectors(model, ids[:3], pad_id=0, key="probe-test", progress=False)  # stale file: recomputed
    assert _CountingEmbed.calls > calls and other.shape == (3, 2)


def test_token_ids_and_embedding_keys_follow_their_inputs():
    from transformers import AutoTokenizer

    from llmsched.models import resolve_model

    tok = AutoTokenizer.from_pretrained(str(resolve_model("minilm")))
    prompts = ["a short prompt", "a somewhat longer prompt with more words in it"]
    assert token_ids(tok, prompts, 8) is token_ids(tok, prompts, 8)  # cached
    assert max(len(r) for r in token_ids(tok, prompts, 8)) == 8
    assert token_ids(tok, prompts, 64) != token_ids(tok, prompts, 8)
    k = embedding_key("minilm", "mean", 128, prompts)
    assert k == embedding_key("minilm", "mean", 128, list(prompts))
    assert len({k, embedding_key("minilm", "cls", 128, prompts), embedding_key("minilm", "mean", 64, prompts),
                embedding_key("minilm", "mean", 128, prompts[::-1])}) == 4


def test_two_layer_probe_head_trains_and_round_trips(tmp_path):
    prompts, lengths = synthetic(120, 2)
    cfg = TrainConfig(method="pointwise", max_tokens=32, epochs=8, batch_size=32, lr=5e-3, freeze_encoder=True,
                      head_hidden=16, warmup=0.0)
    ranker = train_cached(cfg, prompts, lengths, root=tmp_path / "ck", progress=False)
    assert isinstance(ranker.model.head, torch.nn.Sequential)
    test_p, test_l = synthetic(80, 3)
    assert kendall_tau(ranker.score(test_p), test_l) > 0.3
    again = load_ranker(tmp_path / "ck")
    np.testing.assert_allclose(again.score(test_p[:5]), ranker.score(test_p[:5]), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="head_hidden"):
        TrainConfig(head_hidden=-1)


def test_a_probe_scores_large_prompt_sets_from_cached_vectors_with_the_same_result(monkeypatch):
    from llmsched.predictors.trained import FROZEN_CACHE_MIN

    prompts, lengths = synthetic(80, 6)
    cfg = TrainConfig(method="pointwise", max_tokens=16, epochs=2, batch_size=32, lr=5e-3, freeze_encoder=True,
                      warmup=0.0)
    ranker = train_ranker(cfg, prompts, lengths, progress=False)
    many, _ = synthetic(FROZEN_CACHE_MIN, 7)
    direct = ranker.score(many)  # off by default: the encoder runs (a serving-time cost is measured honestly)
    ranker.cache_vectors = True
    cached = ranker.score(many)  # encodes once, keeps the vectors on disk
    np.testing.assert_allclose(cached, direct, rtol=1e-4, atol=1e-5)
    monkeypatch.setattr(ranker.model, "embed", lambda *a: (_ for _ in ()).throw(AssertionError("re-encoded")))
    np.testing.assert_allclose(ranker.score(many), cached)  # read back: no encoder call


def test_probes_of_one_backbone_share_its_vectors_of_a_prompt_set(monkeypatch):
    """What ParsExperiments.scored_test relies on: the second probe scores a large set without an encoder pass."""
    from llmsched.predictors.trained import FROZEN_CACHE_MIN

    prompts, lengths = synthetic(80, 8)
    probes = [train_ranker(TrainConfig(method=m, max_tokens=16, epochs=2, batch_size=32, lr=5e-3,
                                       freeze_encoder=True, warmup=0.0), prompts, lengths, progress=False)
              for m in ("pars", "pointwise")]
    many, _ = synthetic(FROZEN_CACHE_MIN, 9)
    direct = probes[1].score(many)
    for probe in probes:
        probe.cache_vectors = True
    probes[0].score(many)  # the first probe encodes the set once
    monkeypatch.setattr(probes[1].model, "embed", lambda *a: (_ for _ in ()).throw(AssertionError("re-encoded")))
    np.testing.assert_allclose(probes[1].score(many), direct, rtol=1e-4, atol=1e-5)


def test_repeated_prompt_texts_are_drawn_once():
    from llmsched.predictors.data import unique_prompts

    reqs = [Request(request_id=f"r{i}", prompt=p, prompt_tokens=3, output_tokens=5 + i)
            for i, p in enumerate(["hi", "tell me more", " hi\n", "continue", "tell me more", "Hi"])]
    assert [r.request_id for r in unique_prompts(reqs)] == ["r0", "r1", "r3", "r5"]  # the first of each text


def test_repeated_prompts_count_texts_answered_differently():
    from llmsched.predictors.data import repeated_prompts
    from llmsched.workload.records import PromptRecord

    recs = [PromptRecord(f"r{i}", p, a, "x") for i, (p, a) in enumerate(
        [("hi", "Hello!"), ("hi ", "Hi there"), ("sum 2+2", "4"), ("sum 2+2", "4 "), ("bye", "Bye")])]
    assert repeated_prompts(recs) == 1  # "hi" twice with different answers; "sum 2+2" twice with the same one
