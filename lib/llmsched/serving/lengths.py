"""Collect a model's response lengths: the first step of the PARS methodology.

    sampling = LengthSampling()                       # documented defaults below
    table = collect_lengths(requests, EngineConfig(model="gemma"), sampling)

Every prompt is sent to the engine at once (free mode: the model decides when to stop, up to max_tokens) and
the number of generated tokens is recorded; with n_samples > 1 each prompt is generated that many times to
measure run-to-run variability. Results are cached under results/lengths/<model>-<hash>/ (lengths.parquet +
config.json), keyed by the engine config, the prompts and the sampling config; a rerun with the same key reads
the file instead of generating.

Default sampling, chosen for a *base* model (Gemma-3-270M has no chat tuning and rarely emits EOS: with a
plain prompt all 32 prompts of a probe ran to the 256-token cap): the prompt is framed as
"Question: <prompt>\\nAnswer:", and generation stops at EOS, at a blank line or when the model starts the next
"Question:". The response length is then the length of the model's first answer paragraph. Temperature 0.7,
top-p 0.95, max_tokens 256 (responses reaching the cap are marked `truncated`). For chat and reasoning
models pass chat=True (the prompt becomes one user turn of the model's own chat template), template="{prompt}"
and stop=() to record the natural response length.

Columns of lengths.parquet: request_id (prompt id), sample, prompt_tokens, output_tokens, truncated,
finish_reason, status, error. Failed or rejected generations are kept with their status; `prompt_lengths`
summarizes per prompt over ok samples only.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from llmsched.paths import results_dir
from llmsched.records import OK
from llmsched.serving.engine import EngineConfig, config_hash, json_key
from llmsched.serving.runner import EngineRunner, RunConfig
from llmsched.workload.request import Request

logger = logging.getLogger(__name__)

SAMPLE_SEP = "#s"


@dataclass(frozen=True)
class LengthSampling:
    """How responses are generated when collecting lengths (see the module docstring for the defaults)."""

    template: str = "Question: {prompt}\nAnswer:"
    stop: tuple[str, ...] = ("\n\n", "Question:")
    max_tokens: int = 256
    temperature: float = 0.7
    top_p: float = 0.95
    n_samples: int = 1
    chat: bool = False
    time_limit_s: float = 6 * 3600.0

    def __post_init__(self) -> None:
        if "{prompt}" not in self.template:
            raise ValueError(f"template must contain '{{prompt}}', got {self.template!r}")
        if self.n_samples < 1:
            raise ValueError(f"n_samples must be >= 1, got {self.n_samples}")
        if self.max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {self.max_tokens}")

    def run_config(self, progress: bool = True) -> RunConfig:
        return RunConfig(mode="free", max_tokens=self.max_tokens, temperature=self.temperature, top_p=self.top_p,
                         seed=None, stop=tuple(self.stop), time_limit_s=self.time_limit_s, progress=progress)


def _key(requests: list[Request], engine: EngineConfig, sampling: LengthSampling) -> dict[str, Any]:
    return json_key({
        "engine": engine.to_dict(),
        "sampling": dataclasses.asdict(sampling),
        "prompts": config_hash([(r.request_id, r.prompt) for r in requests], n=16),
        "n_prompts": len(requests),
    })


def lengths_dir(requests: list[Request], engine: EngineConfig, sampling: LengthSampling,
                root: str | Path | None = None) -> Path:
    root = Path(root) if root is not None else results_dir() / "lengths"
    return root / f"{Path(str(engine.model)).name}-{config_hash(_key(requests, engine, sampling))}"


def collect_lengths(
    requests: list[Request],
    engine: EngineConfig,
    sampling: LengthSampling | None = None,
    root: str | Path | None = None,
    force: bool = False,
    progress: bool = True,
) -> pd.DataFrame:
    """Generate responses for `requests`' prompts and return (and cache) their lengths, one row per sample."""
    sampling = sampling or LengthSampling()
    if not requests:
        raise ValueError("no prompts to collect lengths for")
    ids = [r.request_id for r in requests]
    if len(set(ids)) != len(ids):
        raise ValueError("duplicate prompt ids")
    out = lengths_dir(requests, engine, sampling, root)
    table = out / "lengths.parquet"
    key = _key(requests, engine, sampling)
    if not force and table.exists() and (out / "config.json").exists():
        if json.loads((out / "config.json").read_text()).get("key") == key:
            logger.info("lengths exist for this config: %s", table)
            return pd.read_parquet(table)
    frame_prompt = _chat_formatter(engine) if sampling.chat else (lambda text: text)
    jobs = [
        dataclasses.replace(r, request_id=f"{r.request_id}{SAMPLE_SEP}{k}",
                            prompt=frame_prompt(sampling.template.format(prompt=r.prompt)) if r.prompt.strip()
                            else r.prompt, arrival_time=0.0, output_tokens=0, hints={})
        for k in range(sampling.n_samples) for r in requests
    ]
    with EngineRunner(engine) as runner:
        frame = runner.run(jobs, sampling.run_config(progress), out_dir=out / "run")
    frame = frame.copy()
    frame["sample"] = frame["request_id"].str.rsplit(SAMPLE_SEP, n=1).str[1].astype(int)
    frame["request_id"] = frame["request_id"].str.rsplit(SAMPLE_SEP, n=1).str[0]
    if "finish_reason" not in frame:
        frame["finish_reason"] = None
    frame["truncated"] = frame["finish_reason"].astype(str).eq("length")
    cols = ["request_id", "sample", "prompt_tokens", "output_tokens", "truncated", "finish_reason", "status", "error"]
    result = frame[cols].sort_values(["request_id", "sample"]).reset_index(drop=True)
    result["finish_reason"] = result["finish_reason"].astype(str)
    out.mkdir(parents=True, exist_ok=True)
    result.to_parquet(table, index=False)
    (out / "config.json").write_text(json.dumps({"key": key}, indent=2, default=str) + "\n")
    result = pd.read_parquet(table)  # the same dtypes as a cached read
    bad = int((result["status"] != OK).sum())
    logger.info("collected %d responses (%d not ok, %d truncated) into %s", len(result), bad,
                int(result["truncated"].sum()), table)
    return result


def _chat_formatter(engine: EngineConfig):
    """text -> the model's chat template around one user turn, ready for generation."""
    from llmsched.models import load_model_tokenizer

    tok = load_model_tokenizer(engine.model)
    if not getattr(tok, "chat_template", None):
        raise ValueError(f"model {engine.model!r} has no chat template; collect with chat=False and a template")

    def fmt(text: str) -> str:
        return tok.apply_chat_template([{"role": "user", "content": text}], tokenize=False,
                                       add_generation_prompt=True)

    return fmt


def prompt_lengths(table: pd.DataFrame) -> pd.DataFrame:
    """Per prompt over its ok samples: mean, std, min, max output tokens, share truncated, sample count."""
    ok = table[table["status"] == OK]
    g = ok.groupby("request_id")["output_tokens"]
    summary = pd.DataFrame({
        "mean_tokens": g.mean(), "std_tokens": g.std(ddof=0), "min_tokens": g.min(), "max_tokens": g.max(),
        "truncated_share": ok.groupby("request_id")["truncated"].mean(), "n_samples": g.size(),
    })
    return summary.reset_index()
