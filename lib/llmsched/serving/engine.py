"""Building an in-process vLLM engine with an llmsched policy installed."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# NOTE: the engine runs in this process (no spawned engine core): faster on small CPUs, lets the runner read
# engine-core timestamps on the same monotonic clock, and spares callers the `if __name__ == "__main__"` guard.
ENGINE_ENV = {"VLLM_ENABLE_V1_MULTIPROCESSING": "0", "TOKENIZERS_PARALLELISM": "false"}
_USER_THREADS_BIND = os.environ.get("VLLM_CPU_OMP_THREADS_BIND", "")  # exported before llmsched was imported
MACHINE = "machine"  # EngineConfig.dtype / cpu_threads: follow this machine (machine_dtype, machine_threads)
BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # CPU flags with native bfloat16 arithmetic


def cpu_flags() -> frozenset[str]:
    """The flags of this machine's first CPU in /proc/cpuinfo (empty where there is none: not Linux)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def has_cuda() -> bool:
    """Whether the engine will run on a CUDA GPU ($LLMSCHED_DEVICE=cpu|cuda overrides the detection)."""
    forced = os.environ.get("LLMSCHED_DEVICE", "").strip().lower()
    if forced in ("cpu", "cuda"):
        return forced == "cuda"
    try:
        import torch
    except ImportError:  # pragma: no cover - vLLM depends on torch
        return False
    return bool(torch.cuda.is_available())


def machine_dtype(flags: frozenset[str] | None = None, cuda: bool | None = None) -> tuple[str, str]:
    """The engine dtype for this machine and why: (dtype, reason).

    NOTE: measured with vllm-cpu 0.32 (NOTES.md, artifact/engine_speed.md): on an AMD EPYC with AVX-512 BF16,
    bfloat16 was 1.3-1.6x faster than float32 (prefill and decode); on an Intel Xeon with avx512_bf16 but no AMX,
    decode was 19-26 % faster at 8 sequences and prefill 30 % slower (its bf16 matmul runs at half the fp32 rate);
    on an AVX2-only CPU float32 was about 2x faster than bfloat16 (no native bf16 arithmetic: every op converts).
    The serving experiments spend most engine time decoding, so native bfloat16 wins there. On a GPU the model's
    own dtype ("auto": bf16/fp16 for the papers' models)."""
    if cuda if cuda is not None else has_cuda():
        return "auto", "CUDA GPU: the model's own dtype"
    flags = cpu_flags() if flags is None else flags
    found = [f for f in BF16_FLAGS if f in flags]
    if found:
        return "bfloat16", (f"CPU with {'/'.join(found)}: native bfloat16 (decode faster than float32; prefill "
                            "too with AMX or on an EPYC, slower without AMX on a Xeon)")
    return "float32", ("CPU without avx512_bf16/amx_bf16: float32 (bfloat16 is emulated there, about 2x slower "
                       "with vllm-cpu 0.32)")


def machine_threads() -> str:
    """Every CPU this process may run on, as vLLM's VLLM_CPU_OMP_THREADS_BIND list ("0-1", "0,2-3").

    NOTE: vLLM's own default ("auto") reserves one CPU for a scheduler process even when the engine runs in
    this process: on 2 cores that leaves one compute thread (NOTES.md; binding both gave about +10 % prefill)."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cpus = list(range(os.cpu_count() or 1))
    runs: list[list[int]] = []
    for c in cpus:
        if runs and c == runs[-1][1] + 1:
            runs[-1][1] = c
        else:
            runs.append([c, c])
    return ",".join(f"{a}" if a == b else f"{a}-{b}" for a, b in runs)


@dataclass
class EngineConfig:
    """An engine and the policy it schedules with.

    model             a path, or a prepared model name of llmsched.models ("tiny", "gemma")
    policy            llmsched policy name (see llmsched.policies.POLICIES); policy_args go to its constructor.
                      Both are checked and the queue is built once when the config is made (`spec`, `queue`),
                      so bad arguments fail before vLLM loads a model; policy_args are kept in JSON form.
                      Policies that are vLLM's priority scheduling (`vllm-priority`, `pars-released`) run vLLM's
                      own queues with scheduling_policy="priority"; the runner passes each request's priority.
    plugin            False runs stock vLLM (no llmsched code in the engine; policy must be "fcfs" or a vLLM
                      priority policy) — the reference for measuring the plug-in's overhead
    async_scheduling  vLLM's async scheduling; None lets vLLM decide (async where its platform and executor support
                      it; never on this CPU build). The plug-in class follows vLLM's resolved choice.
    kv_cache_gib      KV-cache size on CPU (VLLM_CPU_KVCACHE_SPACE); ignored on GPU (gpu_memory_utilization)
    dtype             "machine" (the default) follows this machine (`machine_dtype`: bfloat16 on a CPU with
                      AVX-512 BF16 or AMX, float32 on other CPUs, the model's own on a GPU), resolved when the
                      config is made, so the dtype that ran, `dtype_reason` and the CPU flags behind it are in
                      every run's config and cache key; any vLLM dtype ("float32", "bfloat16", "auto") overrides.
    cpu_threads       OpenMP threads of the CPU engine (VLLM_CPU_OMP_THREADS_BIND): "machine" (the default) binds
                      every CPU this process may use (`machine_threads`), "auto" is vLLM's own choice, or a list
                      such as "0-3"; ignored on GPU
    """

    model: str = "tiny"
    policy: str = "fcfs"
    policy_args: dict[str, Any] = field(default_factory=dict)
    plugin: bool = True
    dtype: str = MACHINE
    max_model_len: int = 2048
    max_num_seqs: int = 16
    max_num_batched_tokens: int = 2048
    kv_cache_gib: int = 1
    gpu_memory_utilization: float = 0.9
    enforce_eager: bool = True
    enable_prefix_caching: bool = False
    async_scheduling: bool | None = False
    seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)  # any other vllm.LLM keyword argument
    cpu_threads: str = MACHINE
    dtype_reason: str = ""  # why `dtype` (filled when dtype="machine" is resolved; "set by the caller" otherwise)
    cpu_flags: tuple[str, ...] = ()  # the CPU's bfloat16 flags seen when the dtype was chosen

    def __post_init__(self) -> None:
        from llmsched.policies import PolicySpec

        if self.dtype == MACHINE:
            dtype, why = machine_dtype()
            self.dtype, self.dtype_reason = dtype, f"{dtype}: {why}"
            self.cpu_flags = tuple(f for f in BF16_FLAGS if f in cpu_flags())
        elif not self.dtype_reason.startswith(f"{self.dtype}:"):  # given, or changed by dataclasses.replace
            self.dtype_reason = f"{self.dtype}: set by the caller"
        self.cpu_flags = tuple(self.cpu_flags)
        if self.cpu_threads == MACHINE:
            self.cpu_threads = machine_threads()
        if not isinstance(self.cpu_threads, str) or not self.cpu_threads:
            raise ValueError(f"cpu_threads must be 'machine', 'auto' or a CPU list such as '0-3', got "
                             f"{self.cpu_threads!r}")

        spec = PolicySpec(self.policy, dict(self.policy_args))  # ValueError for unknown names and arguments
        self.policy_args = spec.to_json()["args"]
        self._spec = spec
        if not self.plugin and not (self.policy == "fcfs" and not self.policy_args) and not self.vllm_priority:
            raise ValueError(f"plugin=False runs stock vLLM (FCFS, or its priority scheduling); policy "
                             f"{self.policy!r} needs plugin=True")
        for name in ("max_model_len", "max_num_seqs", "max_num_batched_tokens"):
            if int(getattr(self, name)) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if not isinstance(self.kv_cache_gib, int) or self.kv_cache_gib <= 0:
            raise ValueError(f"kv_cache_gib must be a positive integer (GiB), got {self.kv_cache_gib!r}")
        self._queue = spec.build()  # bad argument values fail here, before vLLM loads a model

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def for_policy(cls, base: EngineConfig, spec: Any) -> EngineConfig:
        """`base` with its policy replaced by `spec` (a PolicySpec, a name, or (name, args))."""
        from llmsched.policies import PolicySpec

        spec = PolicySpec.parse(spec)
        return dataclasses.replace(base, policy=spec.name, policy_args=spec.to_json()["args"])

    @property
    def spec(self) -> Any:
        """The policy as a PolicySpec (arguments resolved)."""
        return self._spec

    @property
    def vllm_priority(self) -> bool:
        """Whether the policy is vLLM's own priority scheduling (scheduling_policy="priority")."""
        return self._spec.cls.uses_vllm_priority

    def build_policy(self) -> Any:
        """The policy queue built when the config was made: the runner asks it for vLLM request priorities."""
        return self._queue

    def resolved_model(self) -> str:
        """What vLLM loads: `model` resolved by llmsched.models.resolve_model (a folder, or a hub id as given)."""
        from llmsched.models import resolve_model

        return str(resolve_model(self.model))

    def llm_kwargs(self) -> dict[str, Any]:
        from llmsched.vllm_plugin import ASYNC_SCHEDULER_CLS, AUTO_SCHEDULER_CLS, SCHEDULER_CLS

        kw: dict[str, Any] = dict(
            model=self.resolved_model(),
            dtype=self.dtype,
            max_model_len=self.max_model_len,
            max_num_seqs=self.max_num_seqs,
            max_num_batched_tokens=self.max_num_batched_tokens,
            enforce_eager=self.enforce_eager,
            enable_prefix_caching=self.enable_prefix_caching,
            gpu_memory_utilization=self.gpu_memory_utilization,
            async_scheduling=self.async_scheduling,
            seed=self.seed,
            disable_log_stats=False,  # per-request timestamps in RequestOutput.metrics
            scheduling_policy="priority" if self.vllm_priority else "fcfs",
        )
        if self.plugin:
            kw["scheduler_cls"] = {None: AUTO_SCHEDULER_CLS, True: ASYNC_SCHEDULER_CLS}.get(self.async_scheduling,
                                                                                           SCHEDULER_CLS)
            kw["additional_config"] = {"llmsched": self._spec.to_json()}
        kw.update(self.extra)
        return kw


def build_llm(config: EngineConfig) -> Any:
    """A `vllm.LLM` for `config`, engine core in this process."""
    for k, v in ENGINE_ENV.items():
        os.environ.setdefault(k, v)
    os.environ["VLLM_CPU_KVCACHE_SPACE"] = str(config.kv_cache_gib)
    # NOTE: vLLM reads the binding when the engine starts; a value the user exported wins over the config's
    os.environ["VLLM_CPU_OMP_THREADS_BIND"] = _USER_THREADS_BIND or config.cpu_threads
    from vllm import LLM

    return LLM(**config.llm_kwargs())


def json_key(config: Any) -> Any:
    """`config` as it reads back from JSON (tuples become lists, ...): compare cache keys in this form."""
    return json.loads(json.dumps(config, sort_keys=True, default=str))


def config_hash(config: Any, n: int = 10) -> str:
    """A short stable hash of a JSON-able config: result paths depend on the config, not the clock."""
    blob = json.dumps(config, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:n]
