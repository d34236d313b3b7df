"""The policy registry: a name → a policy queue class, and `PolicySpec`, a policy as data (name + arguments).

    spec = PolicySpec("sjf", {"score_key": "score_pars", "starvation_limit": 1000})   # ValueError if bad
    queue = spec.build(view)                     # a fresh queue (the simulator, the plug-in, the runner)
    spec.to_json()                               # {"policy": ..., "args": ...}: the plug-in's config form
    PolicySpec.parse("fcfs") / parse(("ewsjf", {...})) / parse({"policy": ..., "args": ...})

Every place that names a policy (simulator sweeps, serving experiments, drivers, EngineConfig, the plug-in)
carries a PolicySpec; its arguments are checked against the class when the spec is made, so a typo fails before
a simulation starts or vLLM loads a model. Adding a policy: a module with a PolicyQueue subclass (a unique
`name`), and one line in POLICIES below (docs/library.md, "Adding a policy").
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from llmsched.policies.base import PolicyQueue, RequestView, identity_view
from llmsched.policies.ewsjf import EWSJFQueue, ReleasedEWSJFQueue
from llmsched.policies.fcfs import FCFSQueue
from llmsched.policies.ltr import LTRReleasedQueue
from llmsched.policies.priority import PARSReleasedQueue, VLLMPriorityQueue
from llmsched.policies.sjf import OracleSJFQueue, PARSQueue, PromptLengthSJFQueue, ScoreSJFQueue

POLICIES: dict[str, type[PolicyQueue]] = {
    cls.name: cls for cls in (FCFSQueue, ScoreSJFQueue, PARSQueue, OracleSJFQueue, PromptLengthSJFQueue,
                             EWSJFQueue, ReleasedEWSJFQueue, VLLMPriorityQueue, PARSReleasedQueue, LTRReleasedQueue)
}


def policy_class(name: str) -> type[PolicyQueue]:
    """The queue class registered as `name`; ValueError listing the valid names otherwise."""
    try:
        return POLICIES[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown policy {name!r}; valid policies: {', '.join(sorted(POLICIES))}") from None


@dataclass(frozen=True)
class PolicySpec:
    """A policy by name with its constructor arguments (everything but `view`), validated when made.

    `args` may be given in JSON form (as a profile or the plug-in's config writes them); they are resolved once
    (`PolicyQueue.resolve_args`, e.g. a step-time profile name becomes its model) and checked against the
    constructor's signature. Unknown names and unknown or missing arguments are ValueErrors.
    """

    name: str
    args: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        cls = policy_class(self.name)
        if not isinstance(self.args, Mapping):
            raise ValueError(f"arguments of policy {self.name!r} must be a mapping, got {self.args!r}")
        if "view" in self.args:
            raise ValueError(f"policy {self.name!r}: `view` is given to build(), not in the arguments")
        try:
            args = cls.resolve_args(self.args)
        except (FileNotFoundError, TypeError, ValueError) as e:
            raise ValueError(f"bad arguments {dict(self.args)} for policy {self.name!r}: {e}") from None
        try:
            inspect.signature(cls).bind(**args)
        except TypeError as e:
            raise ValueError(f"bad arguments {dict(self.args)} for policy {self.name!r}: {e}") from None
        object.__setattr__(self, "args", args)

    @property
    def cls(self) -> type[PolicyQueue]:
        return POLICIES[self.name]

    def build(self, view: Callable[[Any], RequestView] = identity_view) -> PolicyQueue:
        """A fresh queue of this policy; ValueError for argument values the constructor rejects."""
        try:
            return self.cls(view=view, **self.args)
        except TypeError as e:
            raise ValueError(f"bad arguments {dict(self.args)} for policy {self.name!r}: {e}") from None

    def to_json(self) -> dict[str, Any]:
        """{"policy": name, "args": JSON-able args}: the plug-in's `additional_config["llmsched"]`."""
        return {"policy": self.name, "args": self.cls.json_args(self.args)}

    @classmethod
    def parse(cls, spec: PolicySpec | str | tuple | Mapping[str, Any]) -> PolicySpec:
        """A spec from a PolicySpec, a name, a (name, args) pair or {"policy": name, "args": {...}}."""
        if isinstance(spec, PolicySpec):
            return spec
        if isinstance(spec, str):
            return cls(spec)
        if isinstance(spec, tuple | list) and len(spec) == 2:
            return cls(spec[0], dict(spec[1] or {}))
        if isinstance(spec, Mapping) and "policy" in spec and set(spec) <= {"policy", "args"}:
            return cls(spec["policy"], dict(spec.get("args") or {}))
        raise ValueError(f'a policy is a name, (name, args) or {{"policy": name, "args": {{}}}}, got {spec!r}')


def make_policy(
    name: str, view: Callable[[Any], RequestView] = identity_view, **kwargs: Any
) -> PolicyQueue:
    """Build the waiting queue of policy `name`; keyword arguments go to its constructor.

    Raises ValueError listing the valid names for an unknown policy, and for arguments it does not take.
    """
    return PolicySpec(name, kwargs).build(view)
