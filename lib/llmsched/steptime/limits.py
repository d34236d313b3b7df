"""Engine limits of the simulated vLLM instance."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class SimConfig:
    """The scheduler settings of the simulated engine (vLLM's names where vLLM has one).

    num_blocks              KV-cache blocks of the engine (vLLM: num_gpu_blocks, from the memory profile);
                            one of them is vLLM's reserved null block, so num_blocks - 1 hold tokens
    block_size              tokens per KV block (vLLM's CUDA default 16)
    max_num_seqs            most requests running at once
    max_num_batched_tokens  token budget of one step (prefill chunks + decodes)
    max_model_len           longest sequence (prompt + output) a request may reach
    watermark               fraction of num_blocks kept free when admitting a waiting request while others
                            run (vLLM `SchedulerConfig.watermark`, default 0)
    reserve_full_prompt     admit a waiting request only if the KV blocks for its whole prompt (plus tokens
                            it already generated, when resuming) are free (vLLM
                            `scheduler_reserve_full_isl`, default True); False checks only the first chunk
    chunked_prefill         split prompts longer than the budget left into chunks over several steps (vLLM
                            `enable_chunked_prefill`, default True in V1); False admits a waiting request only
                            if its whole prompt (+ generated tokens, when resuming) fits the budget left, and
                            stops admission at the first head that does not; as in vLLM this needs
                            max_num_batched_tokens >= max_model_len
    """

    num_blocks: int
    block_size: int = 16
    max_num_seqs: int = 256
    max_num_batched_tokens: int = 8192
    max_model_len: int = 4096
    watermark: float = 0.0
    reserve_full_prompt: bool = True
    chunked_prefill: bool = True

    def __post_init__(self) -> None:
        for name in ("num_blocks", "block_size", "max_num_seqs", "max_num_batched_tokens", "max_model_len"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise ValueError(f"SimConfig.{name} must be an integer > 0, got {v!r}")
        if self.num_blocks < 2:
            raise ValueError(f"SimConfig.num_blocks must be >= 2 (one is vLLM's reserved null block), got "
                             f"{self.num_blocks!r}")
        w = self.watermark
        if isinstance(w, bool) or not isinstance(w, int | float) or not math.isfinite(w) or not 0 <= w < 1:
            raise ValueError(f"SimConfig.watermark must be a number in [0, 1), got {w!r}")
        if not isinstance(self.reserve_full_prompt, bool):
            raise ValueError(f"SimConfig.reserve_full_prompt must be a bool, got {self.reserve_full_prompt!r}")
        if not isinstance(self.chunked_prefill, bool):
            raise ValueError(f"SimConfig.chunked_prefill must be a bool, got {self.chunked_prefill!r}")
        if not self.chunked_prefill and self.max_num_batched_tokens < self.max_model_len:
            # NOTE: vLLM's SchedulerConfig refuses the same: a prompt longer than the budget could never run
            raise ValueError(f"SimConfig: with chunked_prefill=False, max_num_batched_tokens "
                             f"({self.max_num_batched_tokens}) must be >= max_model_len ({self.max_model_len}), "
                             "as vLLM requires")

    @property
    def usable_blocks(self) -> int:
        """Blocks that can hold tokens: vLLM's block pool keeps one block aside as the null block."""
        return self.num_blocks - 1

    @property
    def watermark_blocks(self) -> int:
        """Blocks kept free for admissions (vLLM: int(watermark * num_blocks))."""
        return int(self.watermark * self.num_blocks)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
