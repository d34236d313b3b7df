"""Building an in-process vLLM engine with an llmsched policy installed."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from typing import Any

# NOTE: the engine runs in this process (no spawned engine core): faster on small CPUs, lets the runner read
# engine-core timestamps on the same monotonic clock, and spares callers the `if __name__ == "__main__"` guard.
ENGINE_ENV = {"VLLM_ENABLE_V1_MULTIPROCESSING": "0", "TOKENIZERS_PARALLELISM": "false"}


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
    """

    model: str = "tiny"
    policy: str = "fcfs"
    policy_args: dict[str, Any] = field(default_factory=dict)
    plugin: bool = True
    dtype: str = "float32"
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

    def __post_init__(self) -> None:
        from llmsched.policies import PolicySpec

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
    from vllm import LLM

    return LLM(**config.llm_kwargs())


def json_key(config: Any) -> Any:
    """`config` as it reads back from JSON (tuples become lists, ...): compare cache keys in this form."""
    return json.loads(json.dumps(config, sort_keys=True, default=str))


def config_hash(config: Any, n: int = 10) -> str:
    """A short stable hash of a JSON-able config: result paths depend on the config, not the clock."""
    blob = json.dumps(config, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:n]
