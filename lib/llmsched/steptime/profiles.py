"""Step-time profiles: JSON files holding a step-time model plus the engine limits it implies.

A profile lives in `artifact/profiles/steptime/<name>.json` (or anywhere, by path) and is loaded with
`load_profile(name_or_path)`, which returns a `Profile`: the step-time model and the SimConfig fields of the
engine it describes (num_blocks, block_size, max_num_seqs, max_num_batched_tokens, max_model_len).

Two kinds (the "kind" field):

    analytic  hardware + model numbers + stated assumptions -> AnalyticStepTime; the KV-cache size is derived
              the way vLLM sizes it: per GPU, memory * gpu_memory_utilization - weights / tp - activation
              reserve, divided into blocks of block_size tokens. Every number of the "hardware", "model",
              "assumptions" and "engine" sections has an entry in "sources" ("section.field": where it
              comes from, or "assumption: ..."); the "derived" section is recomputed on load and must match.
    linear    {"coefficients": {"c0", "c_prefill", "c_decode", "c_kv"}, "engine": {...}} -> LinearStepTime;
              what a calibration against the real engine writes.

The analytic profiles shipped with the artifact are written by

    python -m llmsched.steptime write            # -> artifact/profiles/steptime/*.json
    python -m llmsched.steptime list
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmsched.paths import REPO_ROOT
from llmsched.steptime.limits import SimConfig
from llmsched.steptime.models import AnalyticStepTime, LinearStepTime, StepTimeModel

PROFILE_DIR = REPO_ROOT / "artifact" / "profiles" / "steptime"
SCHEMA = "llmsched.steptime/1"
GIB = 2**30
MIB = 2**20

# ---------------------------------------------------------------------------------------------------------
# Catalogue: public numbers, each with its source
# ---------------------------------------------------------------------------------------------------------

GPUS: dict[str, dict[str, Any]] = {
    "a100-80gb": {
        "gpu": "NVIDIA A100 80GB SXM",
        "peak_flops": 312e12,
        "hbm_bw": 2.039e12,
        "memory_bytes": 81920 * MIB,
    },
    "h100-sxm": {
        "gpu": "NVIDIA H100 SXM 80GB",
        "peak_flops": 989e12,
        "hbm_bw": 3.35e12,
        "memory_bytes": 81559 * MIB,
    },
}
GPU_SOURCES: dict[str, dict[str, str]] = {
    "a100-80gb": {
        "peak_flops": "NVIDIA A100 datasheet: 312 TFLOP/s dense BF16 Tensor Core (624 with sparsity)",
        "hbm_bw": "NVIDIA A100 datasheet: 80GB HBM2e SXM, 2,039 GB/s",
        "memory_bytes": "80 GB HBM2e (datasheet); 81,920 MiB total as reported by nvidia-smi / "
                        "torch.cuda.mem_get_info, which vLLM uses",
    },
    "h100-sxm": {
        "peak_flops": "NVIDIA H100 datasheet: H100 SXM 989 TFLOP/s dense BF16 Tensor Core (1,979 with sparsity)",
        "hbm_bw": "NVIDIA H100 datasheet: H100 SXM 80GB HBM3, 3.35 TB/s",
        "memory_bytes": "80 GB HBM3 (datasheet); 81,559 MiB total as reported by nvidia-smi / "
                        "torch.cuda.mem_get_info, which vLLM uses",
    },
}

MODELS: dict[str, dict[str, Any]] = {
    "llama-2-13b": {
        "name": "meta-llama/Llama-2-13b-hf",
        "params": 13_015_864_320,
        "num_layers": 40,
        "hidden_size": 5120,
        "num_attention_heads": 40,
        "num_kv_heads": 40,
        "head_dim": 128,
        "dtype_bytes": 2,
        "max_model_len": 4096,
    },
    "llama-3-8b": {
        "name": "meta-llama/Meta-Llama-3-8B",
        "params": 8_030_261_248,
        "num_layers": 32,
        "hidden_size": 4096,
        "num_attention_heads": 32,
        "num_kv_heads": 8,
        "head_dim": 128,
        "dtype_bytes": 2,
        "max_model_len": 8192,
    },
    "llama-3-70b": {
        "name": "meta-llama/Meta-Llama-3-70B",
        "params": 70_553_706_496,
        "num_layers": 80,
        "hidden_size": 8192,
        "num_attention_heads": 64,
        "num_kv_heads": 8,
        "head_dim": 128,
        "dtype_bytes": 2,
        "max_model_len": 8192,
    },
}


def _model_sources(hub: str, params: str, gqa: str) -> dict[str, str]:
    cfg = f"config.json of {hub} on the Hugging Face Hub"
    return {
        "params": f"{params} (safetensors parameter count of {hub} on the Hugging Face Hub)",
        "num_layers": f"{cfg}: num_hidden_layers",
        "hidden_size": f"{cfg}: hidden_size",
        "num_attention_heads": f"{cfg}: num_attention_heads",
        "num_kv_heads": f"{cfg}: {gqa}",
        "head_dim": f"{cfg}: hidden_size / num_attention_heads",
        "dtype_bytes": f"{cfg}: BF16/FP16 weights and KV cache (2 bytes), vLLM's default dtype for this model",
        "max_model_len": f"{cfg}: max_position_embeddings (vLLM's default max_model_len)",
    }


MODEL_SOURCES: dict[str, dict[str, str]] = {
    "llama-2-13b": _model_sources("meta-llama/Llama-2-13b-hf", "13.0 B", "num_key_value_heads = 40 (no GQA)"),
    "llama-3-8b": _model_sources("meta-llama/Meta-Llama-3-8B", "8.03 B", "num_key_value_heads = 8 (GQA)"),
    "llama-3-70b": _model_sources("meta-llama/Meta-Llama-3-70B", "70.6 B", "num_key_value_heads = 8 (GQA)"),
}

ASSUMPTIONS: dict[str, Any] = {
    "mfu": 0.5,
    "mbu": 0.7,
    "overhead_s": 0.002,
    "overhead_per_seq_s": 0.0,
    "gpu_memory_utilization": 0.9,
    "activation_reserve_bytes": 2 * GIB,
}
ASSUMPTION_SOURCES: dict[str, str] = {
    "mfu": "assumption: 50% of dense BF16 peak in the GEMMs of prefill-heavy steps; to be calibrated",
    "mbu": "assumption: 70% of HBM bandwidth when streaming weights and KV in decode steps; to be calibrated",
    "overhead_s": "assumption: 2 ms of per-step CPU work (scheduling, input preparation, sampling, launches); "
                  "to be calibrated",
    "overhead_per_seq_s": "assumption: per-request cost folded into overhead_s and mbu",
    "gpu_memory_utilization": "vLLM default (CacheConfig.gpu_memory_utilization = 0.9)",
    "activation_reserve_bytes": "assumption: 2 GiB per GPU for what vLLM's memory profiling subtracts besides "
                                "weights (peak activations of a max_num_batched_tokens batch, CUDA graphs, "
                                "non-torch allocations)",
}

BLOCK_SIZE_SOURCE = "vLLM default KV block size on CUDA (16 tokens)"
ENGINE_DEFAULTS_FILE = "vllm/engine/arg_utils.py (vLLM 0.32), EngineArgs.get_batch_defaults"


def _engine_defaults(gpu_key: str) -> tuple[int, int, str]:
    """vLLM 0.32's LLM-class defaults for max_num_batched_tokens and max_num_seqs on this GPU."""
    if gpu_key == "a100-80gb":
        return 8192, 256, f"{ENGINE_DEFAULTS_FILE}: LLM class defaults for other GPUs (A100 excluded from the " \
                          "H100/H200 branch)"
    return 16384, 1024, f"{ENGINE_DEFAULTS_FILE}: LLM class defaults for GPUs with >= 70 GiB that are not A100"


# The shipped profiles: (gpu, model, tensor-parallel size).
SHIPPED = (
    ("a100-80gb", "llama-2-13b", 1),
    ("a100-80gb", "llama-3-8b", 1),
    ("h100-sxm", "llama-2-13b", 1),
    ("h100-sxm", "llama-3-8b", 1),
    ("h100-sxm", "llama-3-70b", 4),
)


def profile_name(gpu: str, model: str, tp: int = 1) -> str:
    return f"{gpu if tp == 1 else f'{tp}x{gpu}'}_{model}"


# ---------------------------------------------------------------------------------------------------------
# Building analytic profiles
# ---------------------------------------------------------------------------------------------------------


def derive(data: Mapping[str, Any]) -> dict[str, Any]:
    """The derived numbers of an analytic profile (weights, KV bytes per token, KV cache, blocks)."""
    hw, model, asm, eng = data["hardware"], data["model"], data["assumptions"], data["engine"]
    tp = eng["tensor_parallel_size"]
    weight_bytes = model["params"] * model["dtype_bytes"]
    kv_per_token = 2 * model["num_layers"] * model["num_kv_heads"] * model["head_dim"] * model["dtype_bytes"]
    kv_cache_per_gpu = (
        hw["memory_bytes"] * asm["gpu_memory_utilization"] - weight_bytes / tp - asm["activation_reserve_bytes"]
    )
    block_bytes_per_gpu = eng["block_size"] * kv_per_token / tp
    num_blocks = max(0, math.floor(kv_cache_per_gpu / block_bytes_per_gpu))
    return {
        "weight_bytes": weight_bytes,
        "kv_bytes_per_token": kv_per_token,
        "kv_cache_bytes_per_gpu": round(kv_cache_per_gpu),
        "num_blocks": num_blocks,
        "kv_cache_tokens": num_blocks * eng["block_size"],
    }


def analytic_profile(gpu: str, model: str, tp: int = 1, **assumptions: Any) -> dict[str, Any]:
    """The JSON dict of an analytic profile for a catalogued GPU and model; keyword arguments override
    ASSUMPTIONS (their source then reads "assumption: set by the caller")."""
    if gpu not in GPUS:
        raise ValueError(f"unknown GPU {gpu!r}; catalogued: {sorted(GPUS)}")
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}; catalogued: {sorted(MODELS)}")
    unknown = sorted(set(assumptions) - set(ASSUMPTIONS))
    if unknown:
        raise ValueError(f"unknown assumption(s) {unknown}; valid: {sorted(ASSUMPTIONS)}")
    tokens, seqs, limits_source = _engine_defaults(gpu)
    m = MODELS[model]
    hw = {**GPUS[gpu], "num_gpus": tp}
    asm = {**ASSUMPTIONS, **assumptions}
    engine = {
        "block_size": 16,
        "max_num_seqs": seqs,
        "max_num_batched_tokens": tokens,
        "max_model_len": m["max_model_len"],
        "tensor_parallel_size": tp,
    }
    sources = {f"hardware.{k}": v for k, v in GPU_SOURCES[gpu].items()}
    sources["hardware.num_gpus"] = "the deployment: one GPU per tensor-parallel rank"
    sources.update({f"model.{k}": v for k, v in MODEL_SOURCES[model].items()})
    sources.update({f"assumptions.{k}": ASSUMPTION_SOURCES[k] if k not in assumptions else
                    "assumption: set by the caller" for k in asm})
    sources.update({
        "engine.block_size": BLOCK_SIZE_SOURCE,
        "engine.max_num_seqs": limits_source,
        "engine.max_num_batched_tokens": limits_source,
        "engine.max_model_len": f"model.max_model_len ({MODEL_SOURCES[model]['max_model_len']})",
        "engine.tensor_parallel_size": "the deployment" + (" (70B weights need more than one 80 GB GPU)"
                                                            if tp > 1 else ""),
        "derived": "computed by llmsched.steptime.profiles.derive from the numbers above; recomputed on load",
    })
    data: dict[str, Any] = {
        "schema": SCHEMA,
        "name": profile_name(gpu, model, tp),
        "kind": "analytic",
        "description": (
            f"Roofline step time of {m['name']} (BF16) on {tp} x {GPUS[gpu]['gpu']}"
            f"{' with tensor parallelism' if tp > 1 else ''}: max(compute, memory) + overhead (see "
            "llmsched.steptime.models.AnalyticStepTime). Uncalibrated: efficiency factors are assumptions."
        ),
        "hardware": hw,
        "model": {k: v for k, v in m.items()},
        "assumptions": asm,
        "engine": engine,
    }
    data["derived"] = derive(data)
    data["sources"] = sources
    return data


def write_analytic_profiles(out_dir: str | Path = PROFILE_DIR) -> list[Path]:
    """Write the SHIPPED analytic profiles as <name>.json into out_dir; returns the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for gpu, model, tp in SHIPPED:
        data = analytic_profile(gpu, model, tp)
        path = out / f"{data['name']}.json"
        path.write_text(json.dumps(data, indent=2) + "\n")
        paths.append(path)
    return paths


# ---------------------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------------------

ENGINE_LIMITS = ("num_blocks", "block_size", "max_num_seqs", "max_num_batched_tokens", "max_model_len")


@dataclass(frozen=True)
class Profile:
    """A loaded profile: the step-time model and the engine limits (SimConfig fields) it implies."""

    name: str
    step_time: StepTimeModel
    engine: dict[str, int]
    data: dict[str, Any] = field(repr=False)
    path: Path | None = None
    check: Any = field(default=None, repr=False, compare=False)  # a ProfileCheck when checked on load

    def sim_config(self, **overrides: Any) -> SimConfig:
        """A SimConfig from the profile's engine limits; keyword arguments override them."""
        return SimConfig(**{**self.engine, **overrides})

    @property
    def measured(self) -> bool:
        """Whether the profile was measured on a machine (a calibrated linear profile, the `cpu-*` files), so it
        holds only on the machine state that measured it; analytic and hand-made profiles are not."""
        return self.data.get("kind") == "linear" and isinstance(self.data.get("calibration"), Mapping)

    def provenance(self) -> dict[str, Any]:
        """Which calibration this is and when and where it was measured: name, path, kind, measured_at (an ISO
        timestamp; older profiles hold only a date), machine (cores, CPU model), model, vLLM version. What every
        simulator-vs-engine number records beside itself."""
        out: dict[str, Any] = {"profile": self.name, "profile_path": str(self.path) if self.path else None,
                               "kind": self.data.get("kind")}
        meta = self.data.get("calibration")
        if isinstance(meta, Mapping):
            mach = meta.get("machine") or {}
            out.update({
                "measured_at": meta.get("measured_at") or meta.get("date"),
                "machine": f"{mach.get('nproc', '?')} cores, {mach.get('cpu_model', '?')}, "
                           f"{mach.get('memory_gib', '?')} GiB" if mach else None,
                "model": meta.get("model_dir") or meta.get("model"),
                "vllm_version": meta.get("vllm_version"),
            })
        else:
            out.update({"measured_at": None, "machine": None, "model": None, "vllm_version": None})
        return out


def _section(data: Mapping[str, Any], name: str, where: str, keys: tuple[str, ...]) -> dict[str, Any]:
    sec = data.get(name)
    if not isinstance(sec, Mapping):
        raise ValueError(f"{where}: missing section {name!r} (a JSON object)")
    missing = [k for k in keys if k not in sec]
    if missing:
        raise ValueError(f"{where}: section {name!r} is missing field(s) {missing}")
    out = dict(sec)
    for k in keys:
        v = sec[k]
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v < 0:
            raise ValueError(f"{where}: {name}.{k} must be a finite number >= 0, got {v!r}")
    return out


def _engine_limits(data: Mapping[str, Any], where: str, num_blocks: int | None = None) -> dict[str, int]:
    keys = tuple(k for k in ENGINE_LIMITS if k != "num_blocks" or num_blocks is None)
    eng = _section(data, "engine", where, keys)
    limits = {k: eng[k] for k in keys}
    if num_blocks is not None:
        limits["num_blocks"] = num_blocks
    for k, v in limits.items():
        if not isinstance(v, int) or v <= 0:
            raise ValueError(f"{where}: engine.{k} must be an integer > 0, got {v!r}")
    return {k: limits[k] for k in ENGINE_LIMITS}


def profile_from_dict(data: Mapping[str, Any], where: str = "profile", path: Path | None = None) -> Profile:
    """Validate a profile dict (see the module docstring) and build its Profile."""
    if not isinstance(data, Mapping):
        raise ValueError(f"{where}: a profile must be a JSON object, got {type(data).__name__}")
    kind = data.get("kind")
    name = str(data.get("name") or (path.stem if path else "profile"))
    if kind == "linear":
        coef = data.get("coefficients")
        if not isinstance(coef, Mapping):
            raise ValueError(f"{where}: a linear profile needs a 'coefficients' object with c0, c_prefill, "
                             "c_decode, c_kv")
        try:
            model: StepTimeModel = LinearStepTime.from_dict(coef)
        except ValueError as e:
            raise ValueError(f"{where}: {e}") from None
        engine = _engine_limits(data, where) if "engine" in data else {}
        return Profile(name, model, engine, dict(data), path)
    if kind != "analytic":
        raise ValueError(f"{where}: kind must be 'linear' or 'analytic', got {kind!r}")

    hw = _section(data, "hardware", where, ("peak_flops", "hbm_bw", "memory_bytes", "num_gpus"))
    mdl = _section(data, "model", where, ("params", "num_layers", "num_kv_heads", "head_dim", "dtype_bytes",
                                          "max_model_len"))
    asm = _section(data, "assumptions", where, tuple(ASSUMPTIONS))
    eng = _section(data, "engine", where, ("block_size", "max_num_seqs", "max_num_batched_tokens",
                                           "max_model_len", "tensor_parallel_size"))
    sources = data.get("sources")
    if not isinstance(sources, Mapping):
        raise ValueError(f"{where}: missing 'sources' (an object: 'section.field' -> where the number comes from)")
    unsourced = [f"{sec}.{k}" for sec, d in (("hardware", hw), ("model", mdl), ("assumptions", asm),
                                              ("engine", eng))
                 for k, v in d.items() if isinstance(v, int | float) and not isinstance(v, bool)
                 and not str(sources.get(f"{sec}.{k}", "")).strip()]
    if unsourced:
        raise ValueError(f"{where}: number(s) without a source in 'sources': {unsourced}")
    tp = eng["tensor_parallel_size"]
    if not isinstance(tp, int) or tp < 1 or hw["num_gpus"] != tp:
        raise ValueError(f"{where}: engine.tensor_parallel_size ({tp!r}) must be an integer >= 1 equal to "
                         f"hardware.num_gpus ({hw['num_gpus']!r})")
    derived = derive({"hardware": hw, "model": mdl, "assumptions": asm, "engine": eng})
    stored = data.get("derived")
    if stored is not None:
        stale = {k: (stored.get(k), v) for k, v in derived.items() if k in stored and stored.get(k) != v}
        if stale:
            raise ValueError(f"{where}: 'derived' does not match the numbers above it (stored, recomputed): "
                             f"{stale}; regenerate with `python -m llmsched.steptime write`")
    if derived["num_blocks"] <= 0:
        raise ValueError(f"{where}: no memory left for the KV cache ({derived['kv_cache_bytes_per_gpu']} bytes per "
                         "GPU after weights and the activation reserve): num_blocks would be 0")
    if eng["max_model_len"] > mdl["max_model_len"]:
        raise ValueError(f"{where}: engine.max_model_len {eng['max_model_len']} exceeds the model's "
                         f"{mdl['max_model_len']}")
    try:
        model = AnalyticStepTime(
            params=mdl["params"], weight_bytes=derived["weight_bytes"],
            kv_bytes_per_token=derived["kv_bytes_per_token"], peak_flops=hw["peak_flops"], hbm_bw=hw["hbm_bw"],
            mfu=asm["mfu"], mbu=asm["mbu"], tp=tp, overhead_s=asm["overhead_s"],
            overhead_per_seq_s=asm["overhead_per_seq_s"],
        )
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from None
    if not 0 < asm["gpu_memory_utilization"] <= 1:
        raise ValueError(f"{where}: assumptions.gpu_memory_utilization must be in (0, 1], got "
                         f"{asm['gpu_memory_utilization']!r}")
    return Profile(name, model, _engine_limits(data, where, derived["num_blocks"]), dict(data), path)


def available_profiles(directory: str | Path = PROFILE_DIR) -> list[str]:
    """Names of the profiles in `directory` (default: the artifact's)."""
    d = Path(directory)
    return sorted(p.stem for p in d.glob("*.json")) if d.is_dir() else []


def load_profile(path_or_name: str | Path) -> Profile:
    """Load a profile from a JSON path, or by name from artifact/profiles/steptime/ ("h100-sxm_llama-3-8b")."""
    p = Path(path_or_name)
    if not p.exists() and isinstance(path_or_name, str) and "/" not in path_or_name:
        p = PROFILE_DIR / (path_or_name if path_or_name.endswith(".json") else f"{path_or_name}.json")
    if not p.is_file():
        raise FileNotFoundError(f"no step-time profile {str(path_or_name)!r}; available in {PROFILE_DIR}: "
                                f"{available_profiles() or 'none (run python -m llmsched.steptime write)'}")
    try:
        data = json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{p}: not valid JSON ({e})") from None
    return profile_from_dict(data, where=str(p), path=p)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m llmsched.steptime", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("write", help="write the shipped analytic profiles")
    w.add_argument("--out", default=str(PROFILE_DIR))
    sub.add_parser("list", help="list profiles and the engine limits they imply")
    args = ap.parse_args(argv)
    if args.cmd == "write":
        for path in write_analytic_profiles(args.out):
            print(path)
    else:
        for name in available_profiles():
            prof = load_profile(name)
            print(f"{name:28s} {prof.engine}")

