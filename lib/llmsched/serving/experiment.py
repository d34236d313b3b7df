"""Serving experiments: one workload, several policies, one engine configuration, results on disk.

    requests = sharegpt_workload(tokenizer_dir, n=120, rate=1.0, seed=0)
    table = compare_policies(requests, EngineConfig(model="gemma"), ["fcfs", "oracle-sjf"], out_root)

Each policy's run goes to `out_root/<policy>/` (requests.parquet + config.json); the workload itself to
`out_root/workload.parquet`; the summary table to `out_root/summary.csv` and `summary.md`. A policy whose
results exist for the same engine, run config and workload is not rerun (delete the folder or pass
force=True to redo it).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from llmsched.analysis.metrics import SLO, compare
from llmsched.analysis.tables import to_markdown
from llmsched.policies import PolicySpec
from llmsched.records import read_run
from llmsched.serving.engine import EngineConfig, config_hash, json_key
from llmsched.serving.runner import EngineRunner, RunConfig
from llmsched.workload import (
    Request,
    assign_arrivals,
    load_sharegpt,
    load_tokenizer,
    make_arrivals,
    save_workload,
    to_requests,
)

logger = logging.getLogger(__name__)


def sharegpt_workload(
    tokenizer_dir: str | Path,
    n: int,
    rate: float,
    seed: int,
    *,
    arrivals: str = "poisson",
    burstiness: float = 1.0,
    max_prompt_tokens: int | None = 512,
    max_output_tokens: int | None = 256,
) -> list[Request]:
    """n ShareGPT first turns sampled with `seed`, lengths counted with the model's tokenizer, arriving at
    `rate` req/s. Returns the requests and logs the loader's and the sampler's skip statistics."""
    records, load_stats = load_sharegpt()
    logger.info("%s", load_stats)
    tok = load_tokenizer(tokenizer_dir)
    requests, sample_stats = to_requests(
        records, tok, limit=n, seed=seed, max_prompt_tokens=max_prompt_tokens, max_output_tokens=max_output_tokens
    )
    logger.info("%s", sample_stats)
    if len(requests) < n:
        raise ValueError(f"only {len(requests)} ShareGPT requests pass the filters, {n} asked for")
    times = make_arrivals(arrivals, n, rate, seed=seed, burstiness=burstiness)
    return assign_arrivals(requests, times)


def _workload_hash(requests: list[Request]) -> str:
    return config_hash(
        [(r.request_id, r.prompt, r.prompt_tokens, r.output_tokens, r.arrival_time, r.source, r.hints)
         for r in requests]
    )


def compare_policies(
    requests: list[Request],
    engine: EngineConfig,
    policies: Sequence[str] | Mapping[str, PolicySpec | tuple[str, Mapping[str, Any]]],
    out_root: str | Path,
    run: RunConfig | None = None,
    slo: SLO | None = None,
    force: bool = False,
) -> pd.DataFrame:
    """Run `requests` under each policy on a fresh engine; return (and save) the summary table.

    `policies` is a list of policy names (run with the engine's policy_args), or a mapping label -> PolicySpec
    (or (name, args)), e.g. one score-SJF policy per ranker score; results go to out_root/<label>/. Every spec is
    checked before the first engine starts.
    """
    run = run or RunConfig()
    out = Path(out_root)
    out.mkdir(parents=True, exist_ok=True)
    save_workload(requests, out / "workload.parquet")
    wl_hash = _workload_hash(requests)
    frames: dict[str, pd.DataFrame] = {}
    specs = ({label: PolicySpec.parse(s) for label, s in policies.items()} if isinstance(policies, Mapping)
             else {p: PolicySpec(p, engine.policy_args) for p in policies})
    configs = {label: EngineConfig.for_policy(engine, spec) for label, spec in specs.items()}
    for policy, cfg in configs.items():
        run_dir = out / policy
        key = json_key({"engine": cfg.to_dict(), "run": dataclasses.asdict(run), "workload": wl_hash})
        marker = run_dir / "run_key.json"
        if not force and marker.exists() and json.loads(marker.read_text()) == key:
            logger.info("%s: results exist for this config, skipping (force=True reruns)", policy)
            frames[policy], _ = read_run(run_dir)
            continue
        with EngineRunner(cfg) as runner:
            frames[policy] = runner.run(requests, run, out_dir=run_dir)
        marker.write_text(json.dumps(key, indent=2, default=str) + "\n")
    table = compare(frames, slo)
    table.to_csv(out / "summary.csv")
    (out / "summary.md").write_text(to_markdown(table.T))
    return table
