"""Shared pieces of the tests that drive vLLM's own V1 `Scheduler` without a model.

Import only where vLLM is importable (after `pytest.importorskip("vllm")`): this module imports vLLM.

vLLM's real `Scheduler` (the pinned 0.32) is built from configs alone (`build_scheduler`), fed `Request`s built
from workload requests (`scheduler_request`) and driven with fake sampled tokens (`fake_step`: one token per
request whose prefill is done, like the model runner). `request_priority` is the vLLM request priority a policy
gives a request, as the serving runner passes it.
"""

from __future__ import annotations

from typing import Any

import torch
from vllm import SamplingParams
from vllm.config import CacheConfig, ModelConfig, SchedulerConfig, VllmConfig
from vllm.v1.core.sched.scheduler import Scheduler
from vllm.v1.kv_cache_interface import FullAttentionSpec, KVCacheConfig, KVCacheGroupSpec
from vllm.v1.outputs import ModelRunnerOutput
from vllm.v1.request import Request as VllmRequest
from vllm.v1.structured_output import StructuredOutputManager

from llmsched.models import model_path
from llmsched.policies import PolicySpec, RequestView
from llmsched.sim import SimConfig
from llmsched.vllm_plugin.scheduler import PolicyScheduler, vllm_request_view
from llmsched.workload.request import Request

FAKE_TOKEN = 7  # the token every fake model step samples (not the tiny model's EOS)


def tiny_model_config(max_model_len: int) -> ModelConfig:
    """vLLM's ModelConfig of the tiny model (needs it prepared: python -m llmsched.models prepare tiny)."""
    return ModelConfig(model=str(model_path("tiny")), dtype="float32", seed=0, max_model_len=max_model_len)


Policy = str | PolicySpec | tuple  # a policy name, a spec, or (name, args)


def uses_vllm_priority(policy: Policy) -> bool:
    """Whether `policy` is vLLM's own priority scheduling (vLLM's queues, scheduling_policy="priority")."""
    return PolicySpec.parse(policy).build().uses_vllm_priority


def request_priority(policy: Policy, view: RequestView) -> int:
    """The vLLM request priority of a request under `policy`: the policy's `priority_of` for vLLM's priority
    policies (as the serving runner passes it), else vLLM's default 0."""
    queue = PolicySpec.parse(policy).build()
    return queue.priority_of(view) if queue.uses_vllm_priority else 0


def build_scheduler(model: ModelConfig, cfg: SimConfig, policy: Policy, plugin: bool = False) -> Scheduler:
    """vLLM's Scheduler for the engine settings of `cfg`, scheduling by `policy`; no model, no executor.

    plugin=False: "fcfs" runs vLLM's own FCFS queue (stock vLLM, the reference), vLLM's priority policies its
    own priority queue, every other policy llmsched's queues swapped in the way the plug-in does.
    plugin=True: the plug-in's own class (llmsched.vllm_plugin.PolicyScheduler) configured through
    additional_config, exactly as an engine runs it ("fcfs" is then llmsched's FCFS queue, and time-aware
    policies are ticked with the wall clock).
    """
    stock_priority = uses_vllm_priority(policy)
    sched_cfg = SchedulerConfig(
        max_num_seqs=cfg.max_num_seqs, max_num_batched_tokens=cfg.max_num_batched_tokens,
        max_model_len=model.max_model_len, enable_chunked_prefill=True, is_encoder_decoder=False,
        watermark=cfg.watermark, scheduler_reserve_full_isl=cfg.reserve_full_prompt,
        policy="priority" if stock_priority else "fcfs",
    )
    cache = CacheConfig(block_size=cfg.block_size, enable_prefix_caching=False)
    pspec = PolicySpec.parse(policy)
    additional: dict[str, Any] = {"llmsched": pspec.to_json()} if plugin else {}
    vc = VllmConfig(scheduler_config=sched_cfg, model_config=model, cache_config=cache, additional_config=additional)
    spec = FullAttentionSpec(block_size=cfg.block_size, num_kv_heads=1, head_size=1, dtype=torch.float32)
    kv = KVCacheConfig(num_blocks=cfg.num_blocks, kv_cache_tensors=[],
                       kv_cache_groups=[KVCacheGroupSpec(["layer"], spec)])
    cache.num_gpu_blocks = cfg.num_blocks
    cls = PolicyScheduler if plugin else Scheduler
    s = cls(vllm_config=vc, kv_cache_config=kv, structured_output_manager=StructuredOutputManager(vc),
            block_size=cfg.block_size, log_stats=False)
    if not plugin and pspec.name != "fcfs" and not stock_priority:  # what llmsched.vllm_plugin does
        s.waiting = pspec.build(view=vllm_request_view)
        s.kv_holding_waiting = pspec.build(view=vllm_request_view)
    return s


def scheduler_request(r: Request, policy: Policy, **params: Any) -> VllmRequest:
    """The vLLM request of workload request `r`: prompt of r.prompt_tokens tokens, exactly r.output_tokens
    output tokens (at least 1), hints `ref_output_tokens` and r.hints as SamplingParams.extra_args, the priority
    `policy` gives it. `params` go to SamplingParams."""
    hints = {"ref_output_tokens": r.output_tokens, **r.hints}
    sp = SamplingParams(max_tokens=max(1, r.output_tokens), ignore_eos=True, extra_args=hints, **params)
    priority = request_priority(policy, RequestView(r.request_id, r.arrival_time, r.prompt_tokens, hints))
    return VllmRequest(r.request_id, [5] * r.prompt_tokens, sp, None, arrival_time=r.arrival_time,
                       priority=priority)


def fake_step(sched: Scheduler) -> Any:
    """One engine step without a model: schedule, then report one sampled token for every scheduled request
    whose prompt is done. Returns the SchedulerOutput."""
    out = sched.schedule()
    ids = list(out.num_scheduled_tokens)
    sampled = []
    for rid in ids:
        r = sched.requests[rid]
        sampled.append([FAKE_TOKEN] if r.num_computed_tokens >= r.num_tokens else [])
    mro = ModelRunnerOutput(req_ids=ids, req_id_to_index={rid: k for k, rid in enumerate(ids)},
                            sampled_token_ids=sampled)
    sched.update_from_output(out, mro)
    return out
