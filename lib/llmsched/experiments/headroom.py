"""Where do large FCFS/policy latency ratios live? The map behind PARS's "up to 15.7×" and LTR's "2.8×".

    table = run_headroom(settings, {"sharegpt": scored_test, "reasoning-proxy": scored_proxy}, out_dir)
    operating_points(table)        # where PARS reaches 15.7× and LTR 2.8× (or the best ratio reached)

Our simulator's PARS sweep (ShareGPT prompts with ChatGPT lengths, 0.5-2 × saturation) gives FCFS/PARS ratios
of about 1.2-3×. A ratio of mean latencies is not a property of a policy alone: it depends on how much the
output lengths spread (the head-of-line blocking SJF can remove), how far the engine is overloaded, and, under
sustained overload, how long the run lasts (FCFS's queue, and so its mean latency, grows with the run, while
SJF keeps serving the short requests that arrive). This stage maps the ratio over those three:

- output-length distributions: (a) the ShareGPT test prompts as they are (gamma 1); (b) the reasoning proxy
  (llmsched.predictors.scheduling.reasoning_proxy: math/code prompts with synthetic long-tailed lengths, gamma
  1); (c) heavier tails made from (a) by a monotone power transform of every output length, L' = c·L^γ
  (`power_tail`). NOTE: a monotone transform keeps the order of the lengths, so every ranker's order agrees
  with the new lengths exactly as much as with the old ones (its Kendall τ is unchanged, up to ties from
  rounding and the cap): the γ axis changes the tail alone, not the quality of the rankers, which isolates
  the effect of the length distribution from that of ranking;
- load: request rate / saturation throughput of each run's own draw (llmsched.sim.sweep.seed_sweep), as in
  the PARS sim stage;
- run length under overload: the draw of n requests extended to k·n (the same prompts and arrivals, then
  more of them, `repeat_requests` and Poisson arrivals are prefix-stable) at the same arrival rate as the n
  run, at the top loads. NOTE: held at the same *rate*, not the same nominal load: saturation_throughput
  counts the engine's first batch (up to max_num_seqs requests admitted at once), so a short draw's capacity
  reads higher than a long one's, and rescaling the load per n would change the rate with the length.

Policies (the labels of ParsExperiments._sweep, plus prompt-length SJF): FCFS, PARS (guarded score-SJF on
score_pars, the profile's starvation limit), PARS without the guard (as in the paper), LTR (score_ltr), oracle
SJF (true lengths), prompt-length SJF (no predictor). NOTE: "pars" and "ltr" run the profile's starvation guard,
as in the sim stage; under sustained overload every request that has waited `starvation_limit` admissions is
promoted and promoted requests go oldest first, so a guarded score-SJF turns into FCFS as the run grows and its
ratio falls back towards 1. "pars-noguard" (no guard, the paper's setting) shows what ordering alone gives; LTR's
own guard (a request idle 200 steps runs first for 10 steps) is not modelled. Every (distribution, γ, n, load)
is a seed_sweep over `headroom_seeds` seeds: seed s draws its workload with repeat_requests(pool, n, seed=s) and
its arrivals with s.

Outputs in out_dir (results/pars/<profile>/headroom/):
    ratios.parquet    one row per distribution, gamma, n, load, label (≠ fcfs), metric: ratio = FCFS / policy
                      (mean over seeds of the per-seed ratio), ci_low, ci_high (95 % Student-t interval over
                      seeds, llmsched.analysis.verdicts.seed_ratios), n_seeds; oracle_share (the policy's share
                      of oracle SJF's reduction, (FCFS − policy) / (FCFS − oracle), per seed, NaN where the
                      oracle's reduction is under 1 % of FCFS) with its interval; kendall_tau of the policy's
                      score against the distribution's lengths; rate_req_s (mean arrival rate); steptime
    per_seed.parquet  every run: distribution, gamma, n, load, seed, label, rate, capacity and the summary metrics
    headroom.json     every parameter: settings, engine limits, step-time profile, policies, pools, power
                      transforms (c, cap), the run-length rates
    sweeps/<name>/    each seed_sweep's own outputs (summary, per_seed, first seed's requests, sweep.json)
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from llmsched.experiments.settings import check_headroom as check_settings
from llmsched.policies import PolicySpec
from llmsched.workload import Request

logger = logging.getLogger(__name__)

METRICS = {"normalized_latency_mean": "mean normalized latency (E2E / output tokens)", "e2e_mean": "mean E2E"}
LABELS = ("fcfs", "pars", "pars-noguard", "ltr", "oracle-sjf", "prompt-sjf")
SCORE_KEYS = {"pars": "score_pars", "pars-noguard": "score_pars", "ltr": "score_ltr"}
# The papers' headline factors, by the label that stands for each method here (PARS as its authors run it has no
# starvation guard: both PARS labels are held to its factor).
TARGETS = {"pars": 15.7, "pars-noguard": 15.7, "ltr": 2.8}
TOLERANCE = 0.10  # a factor counts as reached when the ratio's lower 95 % bound is >= (1 - TOLERANCE) × factor
SHARE_MIN = 0.01  # oracle_share is NaN where the oracle removes less than this share of FCFS's latency
SHAREGPT, PROXY = "sharegpt", "reasoning-proxy"
KEYS = ["distribution", "gamma", "n", "load"]
RATIO_COLUMNS = [*KEYS, "label", "metric", "ratio", "ci_low", "ci_high", "n_seeds"]


# ------------------------------------------------------------------------------------------------ settings
# ------------------------------------------------------------------------------------------------ workloads
@dataclasses.dataclass(frozen=True)
class PowerTail:
    """What `power_tail` did: L' = clip(round(c · L^gamma), 1, cap)."""

    gamma: float
    c: float
    cap: int
    mean_before: float
    mean_after: float
    clipped: int
    p99_before: float
    p99_after: float


def power_tail(requests: Sequence[Request], gamma: float, max_model_len: int, *,
               rtol: float = 1e-3) -> tuple[list[Request], PowerTail]:
    """The requests with heavier-tailed output lengths L' = clip(round(c · L^gamma), 1, cap) and what was done.

    c keeps the mean output length (found by bisection, within `rtol`, after rounding and clipping); cap =
    max_model_len − the longest prompt of `requests`, one cap for all, so that the map stays monotone
    (a per-request cap, max_model_len − that prompt, could put a clipped long response below an unclipped
    shorter one) and every request fits the engine. Monotone: L_i < L_j ⇒ L'_i ≤ L'_j, so every ranker's
    order, and its Kendall τ against the lengths, stays what it was (ties from rounding aside).

    Raises ValueError for gamma <= 0, a prompt that fills the context, or a mean the cap cannot keep."""
    if not gamma > 0:
        raise ValueError(f"gamma must be > 0, got {gamma!r}")
    if not requests:
        raise ValueError("no requests to transform")
    lengths = np.array([r.output_tokens for r in requests], dtype=np.float64)
    if (lengths < 1).any():
        raise ValueError("power_tail needs output lengths >= 1")
    cap = int(max_model_len - max(r.prompt_tokens for r in requests))
    target = float(lengths.mean())
    if cap < 1 or cap < target:
        raise ValueError(f"cap {cap} (max_model_len {max_model_len} − longest prompt) cannot keep the mean output "
                         f"length {target:.1f}")
    powered = lengths ** gamma

    def transformed(c: float) -> np.ndarray:
        return np.clip(np.rint(c * powered), 1, cap)

    lo, hi = 0.0, target / float(powered.mean())
    while transformed(hi).mean() < target:
        hi *= 2
        if hi > 1e300:  # pragma: no cover - the cap check above rules it out
            raise ValueError("power_tail: no scale keeps the mean")
    for _ in range(200):
        mid = (lo + hi) / 2
        if transformed(mid).mean() < target:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-12 * hi:
            break
    # the rounded mean moves in steps: take the closer side
    c = min((lo, hi), key=lambda x: abs(transformed(x).mean() - target)) if lo > 0 else hi
    out = transformed(c)
    if abs(out.mean() - target) > rtol * target + 1.0 / len(out):
        raise ValueError(f"power_tail: the mean {out.mean():.2f} misses {target:.2f} (gamma {gamma})")
    reqs = [dataclasses.replace(r, output_tokens=int(x)) for r, x in zip(requests, out, strict=True)]
    info = PowerTail(float(gamma), float(c), cap, target, float(out.mean()), int((out >= cap).sum()),
                     float(np.percentile(lengths, 99)), float(np.percentile(out, 99)))
    return reqs, info


def policies(starvation_limit: int | None) -> dict[str, PolicySpec]:
    """The compared labels (LABELS): as in ParsExperiments._sweep, plus prompt-length SJF."""
    from llmsched.predictors.scheduling import ranker_policies

    specs = ranker_policies(["pars", "ltr"], starvation_limit=starvation_limit)
    specs["pars-noguard"] = PolicySpec("sjf", {"score_key": "score_pars", "starvation_limit": None})
    specs["prompt-sjf"] = PolicySpec("prompt-sjf", {})
    return {label: specs[label] for label in LABELS}


def kendall_taus(pool: Sequence[Request]) -> dict[str, float]:
    """Kendall τ-b of each label's score against the pool's output lengths (oracle 1, prompt-sjf its prompt
    lengths, a ranker NaN when its score is missing)."""
    from llmsched.predictors.metrics import kendall_tau

    true = np.array([r.output_tokens for r in pool], dtype=np.float64)
    out: dict[str, float] = {"oracle-sjf": kendall_tau(true, true),
                             "prompt-sjf": kendall_tau([r.prompt_tokens for r in pool], true)}
    for label, key in SCORE_KEYS.items():
        scores = np.array([float(r.hints.get(key, math.nan)) for r in pool], dtype=np.float64)
        out[label] = kendall_tau(scores, true) if np.isfinite(scores).all() else math.nan
    return out


# ------------------------------------------------------------------------------------------------ the stage
def _sweep(pool: Sequence[Request], n: int, loads: Sequence[float], seeds: Sequence[int], specs: Mapping[str, Any],
           config: Any, step_time: Any, keys: dict[str, Any], out: Path, workers: int | None) -> pd.DataFrame:
    """One seed_sweep of `pool` drawn to n requests per seed; its per-seed table."""
    from llmsched.sim.sweep import seed_sweep
    from llmsched.workload import repeat_requests

    workloads = {s: repeat_requests(pool, n, seed=s) for s in seeds}
    name = f"{keys['distribution']}-g{keys['gamma']:g}-n{n}" + (f"-{keys['part']}" if "part" in keys else "")
    seed_sweep(workloads, loads, specs, config, step_time, keys={k: v for k, v in keys.items() if k != "part"},
               out_dir=out / "sweeps" / name, workers=workers, progress=False, desc=f"headroom {name}")
    return pd.read_parquet(out / "sweeps" / name / "per_seed.parquet")


def _draw_capacity(pool: Sequence[Request], n: int, seeds: Sequence[int], config: Any, step_time: Any) -> float:
    from llmsched.sim.sweep import saturation_throughput
    from llmsched.workload import repeat_requests

    return float(np.mean([saturation_throughput(repeat_requests(pool, n, seed=s), config, step_time)
                          for s in seeds]))


def run_headroom(settings: Any, pools: Mapping[str, Sequence[Request]], out_dir: str | Path, *,
                 workers: int | None = None) -> pd.DataFrame:
    """The map (see the module docstring) from a PARSSettings and the scored pools: "sharegpt" (required: the
    test prompts with score_pars and score_ltr) and "reasoning-proxy" (optional; left out when missing or when
    pars_headroom_proxy_n is 0). Returns the ratios table and writes every output under `out_dir`."""
    from llmsched.sim import load_profile
    from llmsched.sim.sweep import sweep_seeds

    check_settings(settings)
    s = settings
    if SHAREGPT not in pools or not pools[SHAREGPT]:
        raise ValueError(f"run_headroom needs the scored ShareGPT test prompts as pools[{SHAREGPT!r}]")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    prof = load_profile(s.sim_steptime)
    config = prof.sim_config(**s.sim_overrides)
    specs = policies(s.starvation_limit)
    seeds = sweep_seeds(s.seed, int(s.headroom_seeds))
    n = int(s.headroom_n)
    base = list(pools[SHAREGPT])

    # the distributions: (name, gamma) → pool
    dists: dict[tuple[str, float], list[Request]] = {(SHAREGPT, 1.0): base}
    tails: dict[str, Any] = {}
    for g in s.headroom_gammas:
        dists[(SHAREGPT, float(g))], info = power_tail(base, float(g), config.max_model_len)
        tails[f"{float(g):g}"] = dataclasses.asdict(info)
    frames = []
    for (dist, g), pool in dists.items():
        keys = {"distribution": dist, "gamma": g, "n": n}
        frames.append(_sweep(pool, n, s.headroom_loads, seeds, specs, config, prof.step_time, keys, out, workers))
    proxy = list(pools.get(PROXY) or [])
    proxy_n = int(s.headroom_proxy_n)
    if proxy and proxy_n:
        keys = {"distribution": PROXY, "gamma": 1.0, "n": proxy_n}
        frames.append(_sweep(proxy, proxy_n, s.headroom_proxy_loads, seeds, specs, config, prof.step_time, keys, out,
                             workers))
    elif proxy_n:
        logger.warning("headroom: no reasoning-proxy pool given; its map is left out")

    # run length at the top loads: the k·n draw at the arrival rate of the n draw (see the module docstring)
    lengths_rates: list[dict[str, Any]] = []
    factors = sorted({int(k) for k in s.headroom_lengths_factors} - {1})
    if factors:
        first = frames[: len(dists)]
        for ((dist, g), pool), base_frame in zip(dists.items(), first, strict=True):
            cap_n = float(base_frame["capacity"].mean())
            for k in factors:
                cap_k = _draw_capacity(pool, k * n, seeds, config, prof.step_time)
                scale = cap_n / cap_k
                loads = [float(x) * scale for x in s.headroom_lengths_loads]
                keys = {"distribution": dist, "gamma": g, "n": k * n, "part": "length"}
                t = _sweep(pool, k * n, loads, seeds, specs, config, prof.step_time, keys, out, workers)
                t["load_own"] = t["load"]
                t["load"] = t["load"].map(lambda x, sc=scale: _nominal(x / sc, s.headroom_lengths_loads))
                frames.append(t)
                lengths_rates.append({"distribution": dist, "gamma": g, "n": k * n, "capacity_n": cap_n,
                                      "capacity_kn": cap_k, "load_scale": scale})

    per_seed = pd.concat(frames, ignore_index=True)
    per_seed["steptime"] = prof.name
    per_seed.to_parquet(out / "per_seed.parquet", index=False)
    taus = {(d, g): kendall_taus(pool) for (d, g), pool in dists.items()}
    if proxy:
        taus[(PROXY, 1.0)] = kendall_taus(proxy)
    ratios = ratio_table(per_seed, taus)
    ratios["steptime"] = prof.name
    ratios.to_parquet(out / "ratios.parquet", index=False)
    meta = {"settings": {f.name: getattr(s, f.name) for f in dataclasses.fields(s) if f.name.startswith("headroom")},
            "seed": s.seed, "seeds": seeds, "starvation_limit": s.starvation_limit, "steptime": prof.name,
            "engine": config.to_dict(), "step_time": repr(prof.step_time),
            "policies": {k: v.to_json() for k, v in specs.items()},
            "pools": {SHAREGPT: len(base), PROXY: len(proxy)}, "power_tails": tails,
            "run_length_rates": lengths_rates, "metrics": METRICS, "targets": TARGETS, "tolerance": TOLERANCE,
            "kendall_tau": {f"{d} gamma {g:g}": t for (d, g), t in taus.items()},
            "ratio": "FCFS / policy per seed, mean and Student-t 95 % interval over seeds (seed_ratios)",
            "draw": "repeat_requests(pool, n, seed=s), Poisson arrivals seeded by s"}
    (out / "headroom.json").write_text(json.dumps(meta, indent=2, default=str) + "\n")
    return ratios


def _nominal(load: float, loads: Sequence[float]) -> float:
    """The nominal load among `loads` nearest to `load` (undoes the rescaling's rounding)."""
    return float(min(loads, key=lambda x: abs(x - load)))


# ------------------------------------------------------------------------------------------------ tables
def ratio_table(per_seed: pd.DataFrame, taus: Mapping[tuple[str, float], Mapping[str, float]] | None = None,
                metrics: Sequence[str] = tuple(METRICS)) -> pd.DataFrame:
    """FCFS / policy for every label ≠ fcfs and metric, per (distribution, gamma, n, load): the seed_ratios
    interval over seeds, the policy's share of oracle SJF's reduction with its interval, Kendall τ of its score
    (from `taus`, keyed by (distribution, gamma)), and the mean arrival rate."""
    from llmsched.analysis.intervals import t_interval
    from llmsched.analysis.verdicts import seed_ratios

    rows = []
    labels = [x for x in dict.fromkeys(per_seed["label"]) if x != "fcfs"]
    for metric in metrics:
        wide = per_seed.pivot_table(index=[*KEYS, "seed"], columns="label", values=metric)
        for label in labels:
            r = seed_ratios(per_seed, "fcfs", label, metric, by=KEYS)
            if r.empty:
                continue
            r.insert(len(KEYS), "label", label)
            r.insert(len(KEYS) + 1, "metric", metric)
            share = pd.Series(np.nan, index=wide.index)
            if "oracle-sjf" in wide and label in wide:
                gain = wide["fcfs"] - wide["oracle-sjf"]
                ok = gain > SHARE_MIN * wide["fcfs"]
                share = ((wide["fcfs"] - wide[label]) / gain).where(ok)
            bounds = share.groupby(level=KEYS).apply(lambda x: t_interval(x.to_numpy(float)))
            idx = pd.MultiIndex.from_frame(r[KEYS])
            est = bounds.reindex(idx)
            r["oracle_share"] = [b[0] if isinstance(b, tuple) else math.nan for b in est]
            r["oracle_share_ci_low"] = [b[1] if isinstance(b, tuple) else math.nan for b in est]
            r["oracle_share_ci_high"] = [b[2] if isinstance(b, tuple) else math.nan for b in est]
            rows.append(r)
    if not rows:
        return pd.DataFrame(columns=RATIO_COLUMNS)
    table = pd.concat(rows, ignore_index=True)
    taus = taus or {}
    table["kendall_tau"] = [taus.get((d, float(g)), {}).get(label, math.nan)
                            for d, g, label in zip(table["distribution"], table["gamma"], table["label"], strict=True)]
    rate = per_seed[per_seed["label"] == "fcfs"].groupby(KEYS)["rate"].mean()
    table["rate_req_s"] = rate.reindex(pd.MultiIndex.from_frame(table[KEYS])).to_numpy()
    return table.sort_values([*KEYS, "metric", "label"], ignore_index=True)


def operating_points(ratios: pd.DataFrame, targets: Mapping[str, float] = TARGETS,
                     metrics: Sequence[str] | None = ("normalized_latency_mean",),
                     tol: float = TOLERANCE) -> pd.DataFrame:
    """Where each label's ratio reaches its paper's factor: for every (label, target) and metric, the rows whose
    lower 95 % bound is >= (1 − tol) × target (found=True, one row each, best first); where none does, the one
    row with the highest ratio (found=False). Columns: label, target, metric, found, the ratio row's keys and
    values, verdict ("reached at ..." / "none: best ratio ... at ...")."""
    rows = []
    metrics = list(metrics) if metrics is not None else list(dict.fromkeys(ratios["metric"]))
    for label, target in targets.items():
        for metric in metrics:
            t = ratios[(ratios["label"] == label) & (ratios["metric"] == metric)]
            t = t[np.isfinite(t["ratio"].astype(float))]
            if t.empty:
                continue
            need = (1 - tol) * target
            hit = t[t["ci_low"].astype(float) >= need].sort_values("ratio", ascending=False)
            picked, found = (hit, True) if len(hit) else (t.loc[[t["ratio"].astype(float).idxmax()]], False)
            for _, row in picked.iterrows():
                where = (f"{row['distribution']} γ={row['gamma']:g}, n={int(row['n'])}, load {row['load']:g}")
                value = f"{row['ratio']:.3g}× [{row['ci_low']:.3g}, {row['ci_high']:.3g}]"
                verdict = (f"reached: {value} ≥ {need:.3g}× at {where}" if found else
                           f"none: best ratio {value} at {where} (target {target:g}×, needs ci_low ≥ {need:.3g}×)")
                rows.append({"label": label, "target": float(target), "metric": metric, "found": found,
                             **{k: row[k] for k in [*KEYS, "ratio", "ci_low", "ci_high", "n_seeds"]},
                             "verdict": verdict})
    cols = ["label", "target", "metric", "found", *KEYS, "ratio", "ci_low", "ci_high", "n_seeds", "verdict"]
    return pd.DataFrame(rows, columns=cols)
