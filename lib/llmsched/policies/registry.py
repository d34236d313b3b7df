"""Policy factory: a name → a policy queue class."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from llmsched.policies.base import PolicyQueue, RequestView, identity_view
from llmsched.policies.ewsjf import EWSJFQueue, ReleasedEWSJFQueue
from llmsched.policies.fcfs import FCFSQueue
from llmsched.policies.priority import PARSReleasedQueue, VLLMPriorityQueue
from llmsched.policies.sjf import OracleSJFQueue, PARSQueue, PromptLengthSJFQueue, ScoreSJFQueue

POLICIES: dict[str, type[PolicyQueue]] = {
    cls.name: cls for cls in (FCFSQueue, ScoreSJFQueue, PARSQueue, OracleSJFQueue, PromptLengthSJFQueue,
                             EWSJFQueue, ReleasedEWSJFQueue, VLLMPriorityQueue, PARSReleasedQueue)
}


def make_policy(
    name: str, view: Callable[[Any], RequestView] = identity_view, **kwargs: Any
) -> PolicyQueue:
    """Build the waiting queue of policy `name`; keyword arguments go to its constructor.

    Raises ValueError listing the valid names for an unknown policy, and for arguments it does not take.
    """
    try:
        cls = POLICIES[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown policy {name!r}; valid policies: {', '.join(sorted(POLICIES))}") from None
    try:
        return cls(view=view, **kwargs)
    except TypeError as e:
        raise ValueError(f"bad arguments {kwargs} for policy {name!r}: {e}") from None
