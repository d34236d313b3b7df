"""Serving experiments: one workload, several policies, repeated interleaved runs on the real engine.

    requests = sharegpt_workload(tokenizer_dir, n=120, rate=1.0, seed=0)
    table = compare_policies(requests, EngineConfig(model="gemma"), ["fcfs", "oracle-sjf"], out_root, repeats=3)
    runs = read_runs(out_root)        # every request of every run, with columns label and run

Each policy runs `repeats` times, interleaved (A B C A B C ...: the machine's speed drifts by 10-25 % over
minutes, so back-to-back runs of different policies share its state), on the same requests and arrival times,
each run on a fresh engine with the engine-speed probe (llmsched.serving.probe.speed_probe) run on it just
before the requests. Files under out_root:

    workload.parquet                  the requests and their arrival times (the same for every run)
    <label>/run-<k>/                  run k of a label (k = 0, 1, ...): requests.parquet + config.json (the
                                      runner's), run.json (order position, start time, probe numbers, wall
                                      times), run_key.json (written last: the run is complete)
    runs.parquet                      one row per run, in the order they were scheduled: RUN_COLUMNS, the
                                      probe's numbers, the run's summary metrics and the operating point it
                                      achieved (llmsched.analysis.metrics.operating_point: offered and
                                      completion rate, how many requests waited and for how long)
    summary.csv / summary.md          one row per label: point estimates = mean over runs of each run's metric,
                                      n_runs, <metric>_ci_low / _ci_high (llmsched.analysis.metrics.compare_repeats)
    ratios.parquet / ratios.md        each label's mean-over-requests metrics against the baseline (FCFS): the
                                      paired ratio and its interval (llmsched.analysis.metrics.paired_ratios)

A run whose run_key.json matches its engine config, run config, workload, repeat index and probe setting is not
rerun (force=True redoes every run): an interrupted comparison resumes at the first incomplete run. runs.parquet
lists the runs of the latest call, so runs left on disk by an earlier call with more repeats or other policies
are not read back by `list_runs` / `read_runs`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from llmsched.analysis.intervals import fmt_interval
from llmsched.analysis.metrics import (
    COUNT_COLUMNS,
    OPERATING_COLUMNS,
    RATIO_COLUMNS,
    SLO,
    RequestGroups,
    compare_repeats,
    operating_point,
    paired_ratios,
    run_summary,
)
from llmsched.analysis.tables import to_markdown
from llmsched.policies import PolicySpec
from llmsched.records import read_run
from llmsched.serving.engine import EngineConfig, config_hash, json_key
from llmsched.serving.probe import speed_probe
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


RUN_COLUMNS = ["label", "run", "order", "started_unix", "engine_startup_s", "run_wall_s"]
RUNS_FILE, RATIOS_FILE, RUN_INFO, RUN_MARKER = "runs.parquet", "ratios.parquet", "run.json", "run_key.json"
PROBE_SEED = 0  # every run's probe does the same work


def achieved(out_root: str | Path) -> pd.DataFrame:
    """The operating point each label's runs achieved (runs.parquet's OPERATING_COLUMNS, mean over runs), with
    the probe's prefill and decode rates beside them: one row per label."""
    runs = list_runs(out_root)
    cols = [c for c in (*OPERATING_COLUMNS, "probe_prefill_tok_s", "probe_decode_tok_s") if c in runs.columns]
    return runs.groupby("label", sort=False)[cols].mean().assign(n_runs=runs.groupby("label", sort=False).size())


def run_dir(out_root: str | Path, label: str, run: int) -> Path:
    """The folder of run `run` (0, 1, ...) of `label` in a compare_policies folder."""
    return Path(out_root) / label / f"run-{run}"


def schedule(labels: Sequence[str], repeats: int) -> list[tuple[int, str]]:
    """The order runs are made in: (run, label) pairs, interleaved — every label's run 0, then every run 1, ..."""
    return [(k, label) for k in range(repeats) for label in labels]


def _check_repeats(repeats: object) -> int:
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be an integer >= 1 (runs per policy), got {repeats!r}")
    return repeats


def compare_policies(
    requests: list[Request],
    engine: EngineConfig,
    policies: Sequence[str] | Mapping[str, PolicySpec | tuple[str, Mapping[str, Any]]],
    out_root: str | Path,
    run: RunConfig | None = None,
    slo: SLO | None = None,
    force: bool = False,
    *,
    repeats: int = 1,
    probe: bool = True,
    groups: RequestGroups | None = None,
    baseline: str | None = "fcfs",
    n_boot: int | None = None,
) -> pd.DataFrame:
    """Run `requests` `repeats` times under each policy, interleaved, each run on a fresh engine; return (and
    save) the summary table (module docstring: files, resuming).

    `policies` is a list of policy names (run with the engine's policy_args), or a mapping label -> PolicySpec
    (or (name, args)), e.g. one score-SJF policy per ranker score. Every spec is checked before the first
    engine starts. `probe`: run the engine-speed probe on each engine just before its requests (recorded in
    runs.parquet: drift between runs is visible). `groups`: request groups (name -> mask function of the
    per-request frame, llmsched.analysis.metrics.request_values) whose mean TTFT and E2E the tables add, e.g.
    short and long prompts. `baseline`: the label the ratios are taken against (no ratios when absent).
    `n_boot`: bootstrap draws of every interval (default llmsched.analysis.intervals.N_BOOT).

    The returned table has one row per label (index "label"): SUMMARY_COLUMNS (+ group means) as the MEAN OVER
    RUNS of each run's metric, n_runs, and `<metric>_ci_low` / `<metric>_ci_high` (95 %; NaN with one run).
    """
    repeats = _check_repeats(repeats)
    run = run or RunConfig()
    out = Path(out_root)
    out.mkdir(parents=True, exist_ok=True)
    save_workload(requests, out / "workload.parquet")
    wl_hash = _workload_hash(requests)
    specs = ({label: PolicySpec.parse(s) for label, s in policies.items()} if isinstance(policies, Mapping)
             else {p: PolicySpec(p, engine.policy_args) for p in policies})
    configs = {label: EngineConfig.for_policy(engine, spec) for label, spec in specs.items()}
    frames: dict[str, list[pd.DataFrame]] = {label: [] for label in configs}
    rows = []
    plan = schedule(list(configs), repeats)
    for order, (k, label) in enumerate(plan):
        cfg, folder = configs[label], run_dir(out, label, k)
        key = json_key({"engine": cfg.to_dict(), "run": dataclasses.asdict(run), "workload": wl_hash,
                        "repeat": k, "probe": probe})
        marker = folder / RUN_MARKER
        if not force and marker.exists() and json.loads(marker.read_text()) == key:
            logger.info("%s run %d: results exist for this config, skipping (force=True reruns)", label, k)
            df, _ = read_run(folder)
            info = json.loads((folder / RUN_INFO).read_text())
        else:
            logger.info("run %d/%d: %s, run %d", order + 1, len(plan), label, k)
            marker.unlink(missing_ok=True)
            df, info = _one_run(requests, cfg, run, folder, probe)
            info = {"label": label, "run": k, "order": order, **info}
            (folder / RUN_INFO).write_text(json.dumps(info, indent=2) + "\n")
            marker.write_text(json.dumps(key, indent=2, default=str) + "\n")
        frames[label].append(df)
        rows.append({**info, "label": label, "run": k, "order": order, **run_summary(df, slo, groups),
                     **operating_point(df)})
    runs_table = pd.DataFrame(rows)
    runs_table = runs_table[[*RUN_COLUMNS, *[c for c in runs_table.columns if c not in RUN_COLUMNS]]]
    runs_table.to_parquet(out / RUNS_FILE, index=False)

    table = compare_repeats(frames, slo, groups, n_boot=n_boot)
    table.to_csv(out / "summary.csv")
    (out / "summary.md").write_text(summary_markdown(table))
    ratios = (paired_ratios(frames, baseline, groups, n_boot=n_boot) if baseline is not None and baseline in frames
              else pd.DataFrame(columns=RATIO_COLUMNS))
    ratios.to_parquet(out / RATIOS_FILE, index=False)
    (out / "ratios.md").write_text(ratios_markdown(ratios))
    return table


def _one_run(requests: list[Request], cfg: EngineConfig, run: RunConfig, folder: Path,
             probe: bool) -> tuple[pd.DataFrame, dict[str, Any]]:
    """One run on a fresh engine (probe first, when asked); the frame and the run's timing/probe record."""
    started = time.time()
    with EngineRunner(cfg) as runner:
        speed = speed_probe(runner, seed=PROBE_SEED) if probe else {}
        t = time.monotonic()
        df = runner.run(requests, run, out_dir=folder)
        wall = time.monotonic() - t
        startup = runner.startup_s
    return df, {"started_unix": started, "engine_startup_s": startup, "run_wall_s": wall, **speed}


def list_runs(out_root: str | Path) -> pd.DataFrame:
    """The runs of the latest compare_policies call in out_root (runs.parquet: one row per run in schedule order,
    RUN_COLUMNS, probe numbers and summary metrics), with each run's folder in column `dir`."""
    path = Path(out_root) / RUNS_FILE
    if not path.exists():
        raise FileNotFoundError(f"no {RUNS_FILE} in {out_root}: run the serving comparison (compare_policies) first")
    runs = pd.read_parquet(path)
    runs["dir"] = [str(run_dir(out_root, label, k)) for label, k in zip(runs["label"], runs["run"], strict=True)]
    return runs


def read_runs(out_root: str | Path, labels: Sequence[str] | None = None) -> pd.DataFrame:
    """Every request record of the runs `list_runs` lists (of `labels` only, when given) as one frame, with
    columns label and run (request ids repeat across runs)."""
    runs = list_runs(out_root)
    if labels is not None:
        runs = runs[runs["label"].isin(list(labels))]
    frames = [read_run(d)[0].assign(label=label, run=k)
              for label, k, d in zip(runs["label"], runs["run"], runs["dir"], strict=True)]
    if not frames:
        raise FileNotFoundError(f"no runs of {list(labels) if labels is not None else 'any label'} in {out_root}")
    return pd.concat(frames, ignore_index=True)


def runs_by_label(out_root: str | Path) -> dict[str, list[pd.DataFrame]]:
    """label -> its runs' request frames in run order (the input of compare_repeats / paired_ratios)."""
    runs = list_runs(out_root).sort_values(["order"])
    out: dict[str, list[pd.DataFrame]] = {}
    for label, d in zip(runs["label"], runs["dir"], strict=True):
        out.setdefault(label, []).append(read_run(d)[0])
    return out


def summary_markdown(table: pd.DataFrame, digits: int = 3) -> str:
    """The summary table transposed (a row per metric, a column per label), each cell "estimate [low, high]"."""
    n = table["n_runs"] if "n_runs" in table else pd.Series(1, index=table.index)
    metrics = [c for c in table.columns if not c.endswith(("_ci_low", "_ci_high")) and c != "n_runs"]
    cells = {}
    for label, row in table.iterrows():
        col = {}
        for m in metrics:
            if m in COUNT_COLUMNS or f"{m}_ci_low" not in table:
                col[m] = f"{row[m]:.{digits}g}" if isinstance(row[m], float) and math.isfinite(row[m]) else row[m]
            else:
                col[m] = fmt_interval((row[m], row[f"{m}_ci_low"], row[f"{m}_ci_high"]), digits)
        cells[label] = col
    body = pd.DataFrame(cells, index=pd.Index(metrics, name="metric"))
    runs = sorted({int(x) for x in n})
    head = (f"Mean over {'/'.join(map(str, runs))} interleaved run(s) per policy of each run's metric, with 95 % "
            "intervals: two-stage bootstrap over runs and requests for means over requests, t-interval over runs "
            "for the other per-run numbers.\n\n")
    return head + to_markdown(body)


def ratios_markdown(ratios: pd.DataFrame, digits: int = 3) -> str:
    """The ratio table, a row per (label, metric), each cell "ratio [low, high]"."""
    if ratios.empty:
        return "No baseline among the policies: no ratios.\n"
    t = ratios.assign(**{"baseline / policy": [fmt_interval((r, lo, hi), digits) for r, lo, hi in zip(
        ratios["ratio"], ratios["ci_low"], ratios["ci_high"], strict=True)]})
    wide = t.pivot(index="metric", columns="label", values="baseline / policy")
    wide = wide.loc[list(dict.fromkeys(ratios["metric"])), list(dict.fromkeys(ratios["label"]))]
    return (f"Paired ratio {ratios['baseline'].iloc[0]} mean / policy mean (> 1: the policy is lower), run k with run "
            "k, requests by id, 95 % two-stage paired bootstrap interval.\n\n" + to_markdown(wide))
