"""Token counting and exact-length text (llmsched.workload.tokens), with a tiny tokenizer trained offline."""

from __future__ import annotations

import numpy as np
import pytest

from llmsched.workload.tokens import (
    TokenPool,
    count_tokens,
    load_tokenizer,
    special_token_overhead,
    train_toy_tokenizer,
)


def test_count_tokens_matches_tokenizer_and_flag(tok):
    texts = ["Hello world, this is a test.", "", "café ☕"]
    plain = count_tokens(tok, texts)
    assert plain == [len(tok(t, add_special_tokens=False)["input_ids"]) for t in texts]
    assert plain[1] == 0
    assert count_tokens(tok, texts, add_special_tokens=True) == [n + 1 for n in plain]  # BOS
    assert special_token_overhead(tok) == 1
    assert special_token_overhead(train_toy_tokenizer(["a b c"], vocab_size=300, bos=False)) == 0
    assert count_tokens(tok, []) == []


def test_count_tokens_rejects_non_text(tok):
    with pytest.raises(TypeError, match="#1"):
        count_tokens(tok, ["fine", 3])


def test_load_tokenizer_missing_folder_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="no-such-model"):
        load_tokenizer(tmp_path / "no-such-model")


def test_load_tokenizer_from_saved_folder(tok, tmp_path):
    tok.save_pretrained(tmp_path / "tok")
    again = load_tokenizer(tmp_path / "tok")
    assert count_tokens(again, ["Hello world"], add_special_tokens=True) == count_tokens(
        tok, ["Hello world"], add_special_tokens=True)


@pytest.mark.parametrize("add_special", [True, False])
def test_token_pool_exact_lengths(tok, pool_texts, add_special):
    pool = TokenPool(tok, pool_texts, add_special_tokens=add_special)
    rng = np.random.default_rng(0)
    targets = rng.integers(pool.min_tokens, 3 * pool.n_tokens, size=60).tolist()  # some wrap the pool
    texts, counts = pool.texts(targets, rng)
    assert counts == count_tokens(tok, texts, add_special_tokens=add_special)
    assert counts == targets
    assert all(t.strip() for t in texts)


def test_token_pool_is_seeded(tok, pool_texts):
    pool = TokenPool(tok, pool_texts)
    a = pool.texts([50, 120, 7], np.random.default_rng(3))
    b = pool.texts([50, 120, 7], np.random.default_rng(3))
    assert a == b


def test_token_pool_bad_input(tok):
    with pytest.raises(ValueError, match="empty"):
        TokenPool(tok, ["", "   "])
    with pytest.raises(TypeError, match="#1"):
        TokenPool(tok, ["text", None])
    pool = TokenPool(tok, ["Some real text to cut."])
    with pytest.raises(ValueError, match="below the minimum"):
        pool.texts([1], np.random.default_rng(0))  # 1 token = only the BOS


def test_toy_tokenizer_uses_the_shared_offline_bpe_trainer(pool_texts):
    from llmsched.models import train_byte_bpe

    raw = train_byte_bpe(pool_texts, vocab_size=400, special_tokens=["<s>", "</s>", "<pad>"], bos="<s>")
    toy = train_toy_tokenizer(pool_texts, vocab_size=400)
    assert toy.backend_tokenizer.get_vocab() == raw.get_vocab()
    a, b = (raw.encode(t, add_special_tokens=False).ids for t in ("a", "b"))
    assert toy("a", "b")["input_ids"] == raw.encode("a", "b").ids == [raw.token_to_id("<s>"), *a, *b]
    both = train_byte_bpe(pool_texts, vocab_size=400, special_tokens=["<s>"], bos="<s>", bos_before_pair=True)
    assert both.encode("a", "b").ids.count(both.token_to_id("<s>")) == 2
