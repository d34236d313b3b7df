"""Rate sweeps in the simulator: the same workload under several policies, from light load to overload, repeated
over seeds.

    table = seed_sweep({s: draw(s) for s in sweep_seeds(0, 5)}, [0.5, 1.0, 2.0], policies, config, step_time,
                       out_dir=...)                                     # mean and 95 % CI over 5 seeds
    cap = saturation_throughput(requests, config, step_time)          # req/s with everything queued at once
    table = rate_sweep(requests, [0.5 * cap, cap, 2 * cap], policies, config, step_time, seed=0, out_dir=...)

`policies` maps a label to a PolicySpec (or a (name, args) pair), e.g.
{"pars": PolicySpec("sjf", {"score_key": "score_pars", "starvation_limit": 1000})}, so one policy class can
appear with different scores (PARS, LTR, pointwise rankers) and settings.

`rate_sweep` is one seed at given rates: each rate gets fresh arrival times from the same seed (the same arrival
pattern, scaled), shared by all policies. `seed_sweep` repeats it over seeds: seed s simulates its own workload
draw (`workloads[s]`, drawn by the caller) with arrivals seeded by s, at rates = load × the saturation
throughput of that draw, so every (label, load) row pools the seeds at the same load. Its runs are independent
simulations, spread over processes (`workers`); the result does not depend on how many.

Outputs in `out_dir`:
    summary.parquet   one row per label × load (× rate for rate_sweep): the llmsched.analysis.metrics summary
                      columns (or the `metrics` function's), label, policy, rate, load, promoted, missing_score;
                      from seed_sweep each is the mean over seeds, plus n_seeds and `<metric>_ci_low`,
                      `<metric>_ci_high` (Student-t 95 % interval over seeds, llmsched.analysis.intervals) for
                      the CI_METRICS present
    per_seed.parquet  (seed_sweep) the same columns, one row per seed × label × load, with `seed` and the
                      seed's own capacity
    requests.parquet  every simulated request's record with label and rate (seed_sweep: the summary row's rate,
                      plus load, seed and arrival_rate, the seed's own rate); above MAX_REQUEST_ROWS rows only the
                      first seed's requests are kept (sweep.json says which seeds it holds)
    sweep.json        engine limits, step-time model, policies, loads or rates, seeds, capacities; seed_sweep adds
                      its sweep_key, and reuses the tables of an identical sweep (same key) instead of simulating
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from llmsched.analysis.metrics import summarize
from llmsched.policies import PolicySpec
from llmsched.sim.simulator import SimResult, simulate
from llmsched.steptime.limits import SimConfig
from llmsched.steptime.models import StepTimeModel
from llmsched.workload import Request, assign_arrivals, make_arrivals

logger = logging.getLogger(__name__)

PolicySpecs = Mapping[str, PolicySpec | tuple[str, Mapping[str, Any]]]
Metrics = Callable[[SimResult, SimConfig], Mapping[str, Any]]

# Metrics whose 95 % interval over seeds the summary carries (those a sweep produces).
CI_METRICS = ("e2e_mean", "e2e_p99", "normalized_latency_mean", "ttft_mean", "ttft_p99", "ttft_short_mean",
              "ttft_long_mean", "queue_delay_max", "token_throughput", "total_token_throughput", "request_throughput",
              "utilisation")
MAX_REQUEST_ROWS = 250_000  # requests.parquet keeps every seed's requests up to this many rows, else the first seed's
WORKERS_ENV = "LLMSCHED_SIM_WORKERS"  # default worker count of seed_sweep (1: no processes)


def sweep_seeds(seed: int, n: int) -> list[int]:
    """The seeds of an n-seed sweep: seed, seed + 1, ..., seed + n - 1 (the first one is the profile's seed)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"a sweep needs a whole number of seeds >= 1, got {n!r}")
    return [int(seed) + i for i in range(n)]


def saturation_throughput(requests: Sequence[Request], config: SimConfig, step_time: StepTimeModel) -> float:
    """Requests per second the engine admits while a backlog lasts: every request waits at time 0 (FCFS), and
    the rate is n / (time the last one is admitted).

    NOTE: n / makespan would understate it: the makespan ends with the longest responses decoding in a
    nearly empty batch, which says nothing about the rate the engine can take new requests at.
    """
    at_once = assign_arrivals(list(requests), [0.0] * len(requests))
    frame = simulate(at_once, config, step_time, "fcfs").frame
    last_admitted = float(pd.to_numeric(frame["scheduled"], errors="coerce").max())
    if not last_admitted > 0:
        raise ValueError("the engine admitted the whole workload at once: no saturation rate to measure")
    return len(frame) / last_admitted


def default_metrics(result: SimResult, config: SimConfig) -> dict[str, Any]:
    """The summary metrics of a run plus the score-SJF guard's counters (promoted, missing_score)."""
    pstats = result.stats.get("policy_stats", {})
    return {**summarize(result.frame), "promoted": int(pstats.get("promoted", 0)),
            "missing_score": int(pstats.get("missing_score", 0))}


# ------------------------------------------------------------------------------------------------ one run
@dataclass(frozen=True)
class _Context:
    """What every run of a sweep shares (sent once to each worker process)."""

    workloads: Mapping[int, Sequence[Request]]
    specs: Mapping[str, PolicySpec]
    config: SimConfig
    step_time: StepTimeModel
    arrivals: str
    burstiness: float
    metrics: Metrics
    trace_steps: bool


@dataclass(frozen=True)
class _Run:
    seed: int
    rate: float
    label: str


def _simulate(ctx: _Context, run: _Run) -> tuple[dict[str, Any], pd.DataFrame]:
    reqs = ctx.workloads[run.seed]
    times = make_arrivals(ctx.arrivals, len(reqs), run.rate, seed=run.seed, burstiness=ctx.burstiness)
    spec = ctx.specs[run.label]
    res = simulate(assign_arrivals(list(reqs), times), ctx.config, ctx.step_time, spec, trace_steps=ctx.trace_steps)
    row = {"label": run.label, "policy": spec.name, "rate": float(run.rate), **ctx.metrics(res, ctx.config)}
    return row, res.frame


def _capacity(ctx: _Context, seed: int) -> float:
    return saturation_throughput(ctx.workloads[seed], ctx.config, ctx.step_time)


_WORKER: _Context | None = None  # the context of a worker process (set by its initializer)


def _init_worker(ctx: _Context) -> None:
    global _WORKER
    _WORKER = ctx


def _worker_simulate(run: _Run) -> tuple[dict[str, Any], pd.DataFrame]:
    assert _WORKER is not None
    return _simulate(_WORKER, run)


def _worker_capacity(seed: int) -> float:
    assert _WORKER is not None
    return _capacity(_WORKER, seed)


def resolve_workers(workers: int | None, n_jobs: int) -> int:
    """Worker processes for `n_jobs` runs: `workers`, else $LLMSCHED_SIM_WORKERS, else every core; never more
    than os.cpu_count() or n_jobs. 1 runs everything in this process."""
    if workers is None:
        env = os.environ.get(WORKERS_ENV, "").strip()
        try:
            workers = int(env) if env else (os.cpu_count() or 1)
        except ValueError:
            raise ValueError(f"${WORKERS_ENV} must be a whole number of worker processes, got {env!r}") from None
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a whole number >= 1, got {workers!r}")
    return max(1, min(workers, os.cpu_count() or 1, n_jobs))


class _Runner:
    """Runs a sweep's simulations in this process or in a pool of worker processes, results in job order."""

    def __init__(self, ctx: _Context, workers: int) -> None:
        self.ctx, self.workers = ctx, workers
        self.pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> _Runner:
        if self.workers > 1:
            # NOTE: spawn, not fork: the calling process may hold threads (torch, tokenizers) a fork would copy
            # mid-lock. Each worker receives the context once, not once per run.
            self.pool = ProcessPoolExecutor(self.workers, mp_context=get_context("spawn"),
                                            initializer=_init_worker, initargs=(self.ctx,))
        return self

    def __exit__(self, *exc: object) -> None:
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)

    def capacities(self, seeds: Sequence[int]) -> list[float]:
        if self.pool is None:
            return [_capacity(self.ctx, s) for s in seeds]
        return list(self.pool.map(_worker_capacity, seeds))

    def simulate(self, runs: Sequence[_Run]) -> Iterator[tuple[dict[str, Any], pd.DataFrame]]:
        if self.pool is None:
            return (_simulate(self.ctx, r) for r in runs)
        return self.pool.map(_worker_simulate, runs)


@functools.cache
def code_fingerprint() -> str:
    """Hash of the llmsched package's source: a cached sweep is reused only by the code that wrote it."""
    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for f in sorted(root.rglob("*.py")):
        h.update(str(f.relative_to(root)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def _callable_name(f: Any) -> str:
    if isinstance(f, functools.partial):
        return f"partial({_callable_name(f.func)}, {f.args!r}, {sorted(f.keywords.items())!r})"
    return f"{getattr(f, '__module__', '?')}.{getattr(f, '__qualname__', repr(f))}"


def sweep_key(workloads: Mapping[int, Sequence[Request]], loads: Sequence[float], specs: Mapping[str, PolicySpec],
              config: SimConfig, step_time: StepTimeModel, **settings: Any) -> str:
    """What a seed sweep's tables are a function of: every request, the loads, policies, engine, step-time model,
    the other settings and the library's code (code_fingerprint)."""
    h = hashlib.sha256()
    for seed, reqs in sorted(workloads.items()):
        h.update(repr((int(seed), [(r.request_id, r.prompt_tokens, r.output_tokens, r.arrival_time, r.source,
                                    sorted(r.hints.items())) for r in reqs])).encode())
    h.update(json.dumps({"loads": [float(x) for x in loads], "policies": {k: v.to_json() for k, v in specs.items()},
                         "engine": config.to_dict(), "step_time": repr(step_time), "code": code_fingerprint(),
                         **settings}, sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def _lean(requests: Sequence[Request]) -> list[Request]:
    """The requests without prompt text (the simulator never reads it): less to send to the workers."""
    return [dataclasses.replace(r, prompt="") if r.prompt else r for r in requests]


def _check(policies: PolicySpecs, values: Sequence[float], what: str) -> dict[str, PolicySpec]:
    if not values or any(not v > 0 for v in values):
        raise ValueError(f"{what} must be a non-empty list of positive numbers, got {list(values)}")
    if not policies:
        raise ValueError("no policies to sweep")
    return {label: PolicySpec.parse(s) for label, s in policies.items()}  # all checked before the first run


# ------------------------------------------------------------------------------------------------ sweeps
def rate_sweep(
    requests: Sequence[Request],
    rates: Sequence[float],
    policies: PolicySpecs,
    config: SimConfig,
    step_time: StepTimeModel,
    *,
    seed: int,
    arrivals: str = "poisson",
    burstiness: float = 1.0,
    capacity: float | None = None,
    out_dir: str | Path | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Simulate every (policy label, rate) of one seed; return the summary table (and write it with `out_dir`)."""
    from tqdm.auto import tqdm

    specs = _check(policies, rates, "rates")
    ctx = _Context({seed: list(requests)}, specs, config, step_time, arrivals, burstiness, default_metrics, False)
    runs = [_Run(seed, float(rate), label) for rate in rates for label in specs]
    rows, frames = [], []
    for run in tqdm(runs, desc="sim sweep", disable=not progress, unit="run"):
        row, frame = _simulate(ctx, run)
        if capacity:
            row["load"] = run.rate / capacity
        rows.append(row)
        frames.append(frame.assign(label=run.label, rate=run.rate))
    table = pd.DataFrame(rows)
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        table.to_parquet(out / "summary.parquet", index=False)
        pd.concat(frames, ignore_index=True).to_parquet(out / "requests.parquet", index=False)
        meta = {"engine": config.to_dict(),
                "step_time": repr(step_time), "policies": {k: s.to_json() for k, s in specs.items()},
                "rates": list(map(float, rates)), "seed": seed, "arrivals": arrivals, "burstiness": burstiness,
                "n_requests": len(requests), "capacity_req_s": capacity}
        (out / "sweep.json").write_text(json.dumps(meta, indent=2, default=str) + "\n")
    return table


def seed_sweep(
    workloads: Mapping[int, Sequence[Request]],
    loads: Sequence[float],
    policies: PolicySpecs,
    config: SimConfig,
    step_time: StepTimeModel,
    *,
    arrivals: str = "poisson",
    burstiness: float = 1.0,
    metrics: Metrics = default_metrics,
    trace_steps: bool = False,
    keys: Mapping[str, Any] | None = None,
    out_dir: str | Path | None = None,
    meta: Mapping[str, Any] | None = None,
    workers: int | None = None,
    progress: bool = True,
    desc: str = "sim sweep",
    reuse: bool = True,
) -> pd.DataFrame:
    """Simulate every (seed, load, policy label); return the summary over seeds (and write every output with
    `out_dir`, see the module docstring).

    workloads   seed → that seed's requests (the caller's seeded draw); arrivals are seeded by the same seed
    loads       request rate / saturation throughput of each seed's workload
    metrics     a run's metrics from its SimResult and the engine limits (default_metrics); with worker processes
                it must be picklable (a module-level function or a functools.partial of one)
    trace_steps whether `metrics` needs the engine steps (SimResult.steps)
    keys        constant columns put first in every table (e.g. {"preset": "100-2000"})
    meta        further entries of sweep.json
    workers     processes to spread the runs over (resolve_workers: default every core, $LLMSCHED_SIM_WORKERS
                overrides it; 1: this process). Every run is a deterministic simulation, so the tables are the
                same whatever the number.
    reuse       with `out_dir`: when its sweep.json records the same sweep_key (same requests, loads, policies,
                engine, step-time model, settings and library code), return its summary instead of simulating
                again (a rerun of a stage, or a notebook opened on a finished profile)
    """
    from tqdm.auto import tqdm

    specs = _check(policies, loads, "loads")
    if not workloads:
        raise ValueError("no seeds to sweep")
    seeds = [int(s) for s in workloads]
    ctx = _Context({int(s): _lean(w) for s, w in workloads.items()}, specs, config, step_time, arrivals,
                   float(burstiness), metrics, trace_steps)
    keys = dict(keys or {})
    # the key hashes every request: only a sweep that writes its tables needs it
    key = None if out_dir is None else sweep_key(
        workloads, loads, specs, config, step_time, arrivals=arrivals, burstiness=float(burstiness),
        metrics=_callable_name(metrics), trace_steps=trace_steps, keys=keys, meta=dict(meta or {}))
    if out_dir is not None and reuse:
        done = Path(out_dir) / "sweep.json"
        if done.exists() and (Path(out_dir) / "summary.parquet").exists() \
                and json.loads(done.read_text()).get("sweep_key") == key:
            logger.info("%s: reusing %s (same requests, policies, engine and code)", desc, out_dir)
            return pd.read_parquet(Path(out_dir) / "summary.parquet")
    n_workers = resolve_workers(workers, len(seeds) * len(loads) * len(specs))

    def run_all(n: int) -> tuple[dict[int, float], list[_Run], list[tuple[dict[str, Any], pd.DataFrame]]]:
        with _Runner(ctx, n) as runner:
            caps = dict(zip(seeds, runner.capacities(seeds), strict=True))
            runs = [_Run(s, caps[s] * float(load), label) for s in seeds for load in loads for label in specs]
            return caps, runs, list(tqdm(runner.simulate(runs), total=len(runs), desc=desc, disable=not progress,
                                         unit="run"))

    try:
        caps, runs, results = run_all(n_workers)
    except BrokenProcessPool as err:
        # NOTE: e.g. a script without an `if __name__ == "__main__":` guard, which spawned workers re-run; the
        # runs are deterministic, so running them here gives the same tables
        logger.warning("worker processes failed (%s); running the %s sweep in this process", err, desc)
        caps, runs, results = run_all(1)
    run_loads = [float(load) for _ in seeds for load in loads for _ in specs]
    rows, frames = [], []
    for run, load, (row, frame) in zip(runs, run_loads, results, strict=True):
        rows.append({**keys, "seed": run.seed, "load": load, "capacity": caps[run.seed], **row})
        frames.append((run, load, frame))
    per_seed = pd.DataFrame(rows)
    summary = summarize_seeds(per_seed, [*keys, "label", "load"])
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        summary.to_parquet(out / "summary.parquet", index=False)
        per_seed.to_parquet(out / "per_seed.parquet", index=False)
        kept = seeds if sum(len(f) for *_, f in frames) <= MAX_REQUEST_ROWS else seeds[:1]
        rate_of = summary.set_index(["label", "load"])["rate"]
        pd.concat([f.assign(label=r.label, rate=float(rate_of[(r.label, load)]), load=load, seed=r.seed,
                            arrival_rate=r.rate) for r, load, f in frames if r.seed in kept],
                  ignore_index=True).to_parquet(out / "requests.parquet", index=False)
        record = {"engine": config.to_dict(), "step_time": repr(step_time),
                  "policies": {k: s.to_json() for k, s in specs.items()}, "loads": [float(x) for x in loads],
                  "seeds": seeds, "n_seeds": len(seeds), "arrivals": arrivals, "burstiness": burstiness,
                  "n_requests": {str(s): len(w) for s, w in workloads.items()},
                  "capacity_req_s": {str(s): c for s, c in caps.items()},
                  "capacity_req_s_mean": float(np.mean(list(caps.values()))),
                  "requests_parquet_seeds": kept,
                  "summary": "mean over seeds; <metric>_ci_low/_ci_high: Student-t 95 % interval over seeds",
                  **keys, **(meta or {}), "sweep_key": key}
        (out / "sweep.json").write_text(json.dumps(record, indent=2, default=str) + "\n")
    return summary


def summarize_seeds(per_seed: pd.DataFrame, by: Sequence[str], ci: Sequence[str] = CI_METRICS) -> pd.DataFrame:
    """One row per group of `by` from a per-seed table: every numeric column's mean over seeds under its own
    name (integers stay integers where every mean is whole), other columns from the first seed, n_seeds, and
    `<metric>_ci_low` / `<metric>_ci_high` for the metrics of `ci` present (llmsched.analysis.intervals)."""
    from llmsched.analysis.intervals import seed_table

    by = list(by)
    skip = {*by, "seed"}
    numeric = [c for c in per_seed.columns if c not in skip and pd.api.types.is_numeric_dtype(per_seed[c])
               and not pd.api.types.is_bool_dtype(per_seed[c])]
    other = [c for c in per_seed.columns if c not in skip and c not in numeric]
    table = seed_table(per_seed, by, numeric)
    out = table[by].copy()
    firsts = per_seed.groupby(by, sort=False, dropna=False)[other].first().reset_index(drop=True) if other else None
    for c in per_seed.columns:
        if c in skip:
            continue
        if c in numeric:
            mean = table[f"{c}_mean"]
            whole = pd.api.types.is_integer_dtype(per_seed[c]) and bool(np.all(mean == np.round(mean)))
            out[c] = mean.round().astype(per_seed[c].dtype) if whole else mean
        elif firsts is not None:
            out[c] = firsts[c].to_numpy()
    out["n_seeds"] = table["n_seeds"].to_numpy()
    for m in ci:
        if m in numeric:
            out[f"{m}_ci_low"] = table[f"{m}_ci_low"].to_numpy()
            out[f"{m}_ci_high"] = table[f"{m}_ci_high"].to_numpy()
    return out
