"""The prompt sets the ranker study and PARS scheduling experiments share.

ShareGPT first turns (offline) with their real ChatGPT response lengths, counted with the target model's
tokenizer, split once into training and held-out test prompts; a subset of both is what the target model
answers when its own lengths are collected (llmsched.serving.lengths), so a ranker can be trained on one
model's lengths and tested on the other's (cross-model transfer).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmsched.workload import Request, load_sharegpt, load_tokenizer, to_requests


@dataclass(frozen=True)
class PromptSplit:
    """train and test prompts; `extra` are further prompts of the same seeded draw, used by neither (the
    reasoning proxy picks its math/code prompts there)."""

    train: list[Request]
    test: list[Request]
    extra: list[Request] = field(default_factory=list)
    repeated_prompts: int = 0  # prompt texts the source answers more than once, differently (its label noise)

    def collection_set(self, n_train: int, n_test: int) -> list[Request]:
        """The first n_train training and n_test test prompts: the ones the target model answers."""
        if n_train > len(self.train) or n_test > len(self.test):
            raise ValueError(f"asked for {n_train}/{n_test} prompts of {len(self.train)}/{len(self.test)}")
        return self.train[:n_train] + self.test[:n_test]


def model_tokenizer(model: str) -> Any:
    """The tokenizer of a serving model: a prepared name ("gemma"), a local folder, or a hub id (online)."""
    from llmsched.models import load_model_tokenizer

    return load_model_tokenizer(model)


def repeated_prompts(records: list[Any]) -> int:
    """How many prompt texts (stripped) occur with two or more different answers: the only repeated samples of
    a one-answer-per-prompt source such as ShareGPT's ChatGPT lengths."""
    answers: dict[str, set[str]] = {}
    for rec in records:
        answers.setdefault(rec.prompt.strip(), set()).add(rec.response.strip())
    return sum(len(a) > 1 for a in answers.values())


def unique_prompts(requests: list[Request]) -> list[Request]:
    """`requests` without those whose prompt text (stripped of surrounding white space) came earlier."""
    seen: set[str] = set()
    out = []
    for r in requests:
        key = r.prompt.strip()
        if key not in seen:
            seen.add(key)
            out.append(r)
    return out


def sharegpt_split(tokenizer: Any, n_train: int, n_test: int, seed: int,
                   max_prompt_tokens: int | None = 512, n_extra: int = 0) -> PromptSplit:
    """n_train + n_test ShareGPT prompts (seeded sample; prompts up to max_prompt_tokens), split train/test.

    `tokenizer` (a tokenizer or a model folder) counts prompt and response tokens. A prompt text is drawn once:
    ShareGPT repeats some prompts (greetings, "continue", duplicated conversations), and the same text on both
    sides of the split would be scored against its own training label."""
    if n_train < 10 or n_test < 10:
        raise ValueError(f"need at least 10 training and 10 test prompts, got {n_train} and {n_test}")
    records, _ = load_sharegpt()
    if isinstance(tokenizer, str | Path):
        tokenizer = load_tokenizer(tokenizer)
    want = n_train + n_test + n_extra
    # NOTE: ask for a little more than wanted, then drop repeated prompt texts (about 5 % of ShareGPT's first turns)
    requests, _ = to_requests(records, tokenizer, limit=min(len(records), int(want * 1.08) + 20), seed=seed,
                              max_prompt_tokens=max_prompt_tokens)
    requests = unique_prompts(requests)[:want]
    if len(requests) < n_train + n_test:
        raise ValueError(f"only {len(requests)} ShareGPT prompts pass the filters, {n_train + n_test} asked for")
    return PromptSplit(train=requests[:n_train], test=requests[n_train:n_train + n_test],
                       extra=requests[n_train + n_test:], repeated_prompts=repeated_prompts(records))
