"""The thin vLLM adapter: scheduler classes for vLLM's `scheduler_cls` hook.

Importing this package imports vLLM; the rest of llmsched does not need it.
"""

from llmsched.vllm_plugin.scheduler import (
    AsyncPolicyScheduler,
    AutoPolicyScheduler,
    PolicyScheduler,
    policy_from_vllm_config,
    vllm_request_view,
)

SCHEDULER_CLS = "llmsched.vllm_plugin.PolicyScheduler"
ASYNC_SCHEDULER_CLS = "llmsched.vllm_plugin.AsyncPolicyScheduler"
AUTO_SCHEDULER_CLS = "llmsched.vllm_plugin.AutoPolicyScheduler"

__all__ = [
    "ASYNC_SCHEDULER_CLS",
    "AUTO_SCHEDULER_CLS",
    "SCHEDULER_CLS",
    "AsyncPolicyScheduler",
    "AutoPolicyScheduler",
    "PolicyScheduler",
    "policy_from_vllm_config",
    "vllm_request_view",
]
