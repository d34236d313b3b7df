"""The request record every stage passes around."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Request:
    """One inference request of a workload.

    request_id      unique within a workload
    prompt          the prompt text sent to the model
    prompt_tokens   prompt length in tokens of the target model's tokenizer
    output_tokens   reference response length in tokens (ground truth for replay and oracle SJF)
    arrival_time    seconds since the start of the workload
    source          dataset the prompt came from (e.g. "sharegpt", "alpaca-gpt4", "mixed-100-2000")
    hints           per-request scheduler hints (e.g. {"score": 0.3}); they travel to the engine in
                    SamplingParams.extra_args
    """

    request_id: str
    prompt: str
    prompt_tokens: int
    output_tokens: int
    arrival_time: float = 0.0
    source: str = ""
    hints: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.request_id, str) or not self.request_id:
            raise ValueError(f"request_id must be a non-empty string, got {self.request_id!r}")
        if not isinstance(self.prompt, str):
            kind = type(self.prompt).__name__
            raise ValueError(f"request {self.request_id}: prompt must be str, got {kind}")
        if self.prompt_tokens < 0 or self.output_tokens < 0:
            raise ValueError(
                f"request {self.request_id}: token counts must be >= 0, got "
                f"prompt_tokens={self.prompt_tokens}, output_tokens={self.output_tokens}"
            )
        if not self.arrival_time >= 0:  # also rejects NaN
            raise ValueError(f"request {self.request_id}: arrival_time must be >= 0, got {self.arrival_time}")
