"""PARS scheduling: score a workload with several rankers once, then compare SJF-by-score policies.

    scored, reports = score_workload(requests, {"pars": pars, "ltr": ltr})    # hints score_pars, score_ltr
    specs = ranker_policies(["pars", "ltr"], starvation_limit=1000)          # + fcfs and oracle-sjf
    rate_sweep(scored, rates, specs, ...)  /  compare_policies(scored, engine, specs, out_root)

Every ranker's score sits in its own hint (`score_<label>`), so one workload file carries all of them and each
policy reads its own; the score-SJF queue serves requests without a usable score after the scored ones, in
arrival order (FCFS fallback), and counts them.

The reasoning proxy (`reasoning_proxy`) stands in for PARS's reasoning-model workloads where no reasoning
model can run: ShareGPT prompts that look like math or code, with each ChatGPT response length stretched by
a seeded log-normal factor (median 8, sigma 0.8, capped). It is a *proxy*: the lengths are synthetic, and every
table and figure built from it must say so (its requests carry source "sharegpt-reasoning-proxy").
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence

import numpy as np

from llmsched.policies import PolicySpec
from llmsched.predictors.base import Predictor, ScoreReport, score_requests
from llmsched.workload import Request

PROXY_SOURCE = "sharegpt-reasoning-proxy"
_MATH_CODE = re.compile(
    r"```|\bdef |\bfunction\b|\bclass \w+|\bimport \w+|\bSELECT\b|\bcode\b|\bpython\b|\bjava(script)?\b|"
    r"\bsolve\b|\bequation\b|\bcalculate\b|\bprove\b|\bintegral\b|\bderivative\b|\bprobability\b|"
    r"\d+\s*[-+*/^=]\s*\d+",
    re.IGNORECASE,
)


def score_key(label: str) -> str:
    return f"score_{label}"


def score_workload(
    requests: Sequence[Request], predictors: Mapping[str, Predictor], batch_size: int = 32,
    progress: bool = False,
) -> tuple[list[Request], dict[str, ScoreReport]]:
    """The requests with one hint per predictor (`score_<label>`), and each predictor's scoring report."""
    out = list(requests)
    reports: dict[str, ScoreReport] = {}
    for label, predictor in predictors.items():
        out, reports[label] = score_requests(out, predictor, key=score_key(label), batch_size=batch_size,
                                             progress=progress)
    return out, reports


def ranker_policies(
    labels: Sequence[str], starvation_limit: int | None = None, baselines: bool = True
) -> dict[str, PolicySpec]:
    """Policy specs by label: FCFS, one score-SJF per ranker label, oracle SJF; with the "pars" ranker also
    "pars-released", PARS as its authors run it (its score as vLLM request priority, vLLM's priority scheduler:
    llmsched.policies.priority) and "pars-rank", PARS with rank-aware preemption victims (the running request with
    the highest score is preempted, llmsched.policies.base); with the "ltr" ranker also "ltr-released", LTR's
    scheduler as its authors ran it (llmsched.policies.ltr: rank victims, swaps, step-based starvation control).

    Every ranker schedules through the same guarded score-SJF queue (policy "sjf") reading its own score hint, so
    comparisons between rankers differ only in the scores; `starvation_limit` applies to all of them alike (None:
    no guard, as in the paper).
    """
    specs: dict[str, PolicySpec] = {"fcfs": PolicySpec("fcfs", {})} if baselines else {}
    for label in labels:
        specs[label] = PolicySpec("sjf", {"score_key": score_key(label), "starvation_limit": starvation_limit})
        if label == "pars":
            specs["pars-released"] = PolicySpec("pars-released", {"score_key": score_key(label)})
            specs["pars-rank"] = PolicySpec("sjf", {"score_key": score_key(label),
                                                    "starvation_limit": starvation_limit, "victim": "rank"})
        if label == "ltr":
            specs["ltr-released"] = PolicySpec("ltr-released", {"score_key": score_key(label)})
    if baselines:
        specs["oracle-sjf"] = PolicySpec("oracle-sjf", {})
    return specs


def looks_like_math_or_code(prompt: str) -> bool:
    return bool(_MATH_CODE.search(prompt))


def reasoning_proxy(
    requests: Sequence[Request], seed: int, median_factor: float = 8.0, sigma: float = 0.8,
    max_output_tokens: int = 16384, max_model_len: int | None = None,
) -> list[Request]:
    """Math/code-looking requests with long-tailed synthetic output lengths (see the module docstring).

    Lengths are capped at max_output_tokens and, with max_model_len, at max_model_len - prompt_tokens (what
    the engine allows)."""
    if median_factor <= 0 or sigma < 0 or max_output_tokens < 1:
        raise ValueError(f"bad proxy parameters: median_factor={median_factor}, sigma={sigma}, "
                         f"max_output_tokens={max_output_tokens}")
    picked = [r for r in requests if looks_like_math_or_code(r.prompt)]
    rng = np.random.default_rng(seed)
    factors = rng.lognormal(np.log(median_factor), sigma, len(picked))
    out = []
    for r, f in zip(picked, factors, strict=True):
        cap = max_output_tokens if max_model_len is None else min(max_output_tokens, max_model_len - r.prompt_tokens)
        if cap < 1:
            continue  # the prompt alone fills the context: the engine would reject it
        out.append(dataclasses.replace(r, output_tokens=int(min(cap, max(1, round(r.output_tokens * f)))),
                                       source=PROXY_SOURCE))
    return out
