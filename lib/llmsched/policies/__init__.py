"""Scheduling policies: waiting queues shared by the vLLM plug-in and the simulator."""

from llmsched.policies.base import PolicyQueue, RequestView, identity_view, plan_swap
from llmsched.policies.fcfs import FCFSQueue
from llmsched.policies.ltr import LTRReleasedQueue
from llmsched.policies.priority import PARSReleasedQueue, VLLMPriorityQueue, scores_to_priorities
from llmsched.policies.registry import POLICIES, PolicySpec, make_policy, policy_class
from llmsched.policies.sjf import OracleSJFQueue, PARSQueue, PromptLengthSJFQueue, ScoreSJFQueue

__all__ = [
    "POLICIES",
    "FCFSQueue",
    "LTRReleasedQueue",
    "OracleSJFQueue",
    "PARSReleasedQueue",
    "PARSQueue",
    "PolicyQueue",
    "PolicySpec",
    "PromptLengthSJFQueue",
    "RequestView",
    "ScoreSJFQueue",
    "VLLMPriorityQueue",
    "identity_view",
    "make_policy",
    "plan_swap",
    "policy_class",
    "scores_to_priorities",
]
