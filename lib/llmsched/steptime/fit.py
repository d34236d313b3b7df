"""Fit a LinearStepTime profile to measured engine steps (pure: a step frame in, a profile dict out).

The steps come from the real engine (llmsched.serving.calibrate drives it and records them).

The fit. Non-negative least squares (scipy.optimize.nnls) of cycle time on [1, prefill_tokens, decode_seqs,
kv_tokens], rows weighted by 1/measured time (minimises relative error: decode steps of 100 ms and prefill
steps of 2 s count alike). Outliers are dropped robustly for the shape of the fit (three rounds of refitting
without steps whose relative residual lies more than 4 scaled MADs from the median), then all coefficients are
scaled by the mean measured/predicted ratio over the training steps, outliers included: the simulator sums
step times, so it needs the mean step, stalls included (`fit_step_time`). Quality is reported on a held-out
random 25 % of the steps (never used for the fit): R^2, mean / median / p90 relative error, the error of the
summed time, and per step kind (prefill, decode, mixed).

NOTE: on a CPU the model is compute bound, so step time is close to linear in the tokens computed, which is
what LinearStepTime expresses. What it cannot express: (1) prefill attention is quadratic in the chunk length
(kv_tokens of a P-token prefill is P, while attention work grows with P^2 / 2): with Gemma-3-270M a single
1,500-token prompt takes ~12 % longer than the fit says and 8 prompts of 100 tokens ~15 % less; prompts of the
serving experiments (<= 512 tokens, mostly one per step) sit in between; (2) the LM head and sampler run once
per *scheduled* sequence, also for prefills (decode_seqs only counts decodes): ~2 tokens' worth, negligible.
Neither needs an extra term at the accuracy this machine allows: consecutive steps of identical composition
vary by ~10 % (mean |relative error| of a fit on a serving run's own steps), and the machine's speed drifts
by 10-20 % between runs minutes apart (c0, the per-step cost of streaming ~1 GB of fp32 weights, moves most),
so a profile is only as good as the period it was measured in; recalibrate right before the runs it should
predict. The interface stays (c0, c_prefill, c_decode, c_kv).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from llmsched.steptime.models import LinearStepTime
from llmsched.steptime.profiles import SCHEMA

FEATURES = ("prefill_tokens", "decode_seqs", "kv_tokens")


def step_kind(df: pd.DataFrame) -> pd.Series:
    """'prefill' (no decodes), 'decode' (no prefill tokens) or 'mixed', per step."""
    return pd.Series(np.where(df["decode_seqs"] == 0, "prefill", np.where(df["prefill_tokens"] == 0, "decode",
                                                                           "mixed")), index=df.index)


@dataclass
class FitResult:
    """A fitted LinearStepTime and how well it fits (see `fit_step_time`)."""

    model: LinearStepTime
    quality: dict[str, Any]
    train: np.ndarray  # boolean masks over the frame given to fit_step_time
    test: np.ndarray
    outliers: np.ndarray


def design(df: pd.DataFrame) -> np.ndarray:
    return np.column_stack([np.ones(len(df)), *(df[c].to_numpy(float) for c in FEATURES)])


def predict(model: LinearStepTime, df: pd.DataFrame) -> np.ndarray:
    c = np.array([model.c0, model.c_prefill, model.c_decode, model.c_kv])
    return design(df) @ c


def time_errors(model: LinearStepTime, steps: pd.DataFrame) -> dict[str, float]:
    """`model` on recorded steps: (predicted - measured) / measured of the summed cycle time over the steps with
    a known cycle, overall ("all") and per step kind present (prefill, decode, mixed). Empty without such steps."""
    pred, measured = predict(model, steps), steps["cycle_s"].to_numpy(float)
    cyc = np.isfinite(measured)
    if not cyc.any():
        return {}
    kinds = step_kind(steps).to_numpy()
    out = {"all": float(pred[cyc].sum() / measured[cyc].sum() - 1.0)}
    for k in ("prefill", "decode", "mixed"):
        m = cyc & (kinds == k)
        if m.any():
            out[k] = float(pred[m].sum() / measured[m].sum() - 1.0)
    return out


def _nnls(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    from scipy.optimize import nnls

    scale = np.maximum(np.abs(x).max(axis=0), 1e-12)  # column scaling: kv_tokens is ~1e4, the intercept 1
    coef, _ = nnls(x * w[:, None] / scale, y * w)
    return coef / scale


def _r2(y: np.ndarray, p: np.ndarray) -> float:
    ss = float(((y - y.mean()) ** 2).sum())
    return 1.0 - float(((y - p) ** 2).sum()) / ss if ss > 0 else math.nan


def _errors(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    if not len(y):
        return {"n": 0}
    rel = (p - y) / y
    return {
        "n": int(len(y)),
        "r2": _r2(y, p),
        "rel_err_mean_abs": float(np.abs(rel).mean()),
        "rel_err_median_abs": float(np.median(np.abs(rel))),
        "rel_err_p90_abs": float(np.percentile(np.abs(rel), 90)),
        "rel_err_bias": float(rel.mean()),
        "total_time_rel_err": float(p.sum() / y.sum() - 1.0),
        "measured_mean_s": float(y.mean()),
    }


def fit_step_time(df: pd.DataFrame, target: str = "cycle_s", *, test_fraction: float = 0.25, seed: int = 0,
                  mad_k: float = 4.0, rounds: int = 3, relative: bool = True,
                  mean_correct: bool = True) -> FitResult:
    """Fit LinearStepTime to measured steps (columns prefill_tokens, decode_seqs, kv_tokens and `target`).

    Rows with a missing or non-positive target or in a phase named "warmup" are ignored. A seeded random
    `test_fraction` of the rest is held out; the fit (NNLS, rows weighted by 1/target when `relative`) drops
    outliers in `rounds` refits (relative residual more than `mad_k` scaled MADs from the median).
    With `mean_correct`, the coefficients are then scaled by the mean of measured / predicted over all training
    steps, outliers included.
    NOTE: the robust relative fit gives the shape (how time grows with each feature) of a *typical* step;
    the simulator sums step times, so it needs the *mean* step, and stalls (another process, the allocator,
    the VM's neighbours) are real time the engine loses at some rate: on this machine the relative fit alone
    underestimates summed time by 3-15 %. The correction puts that rate back, uniformly.
    Quality: errors on the fitted steps, the held-out steps (outliers included there: no peeking), per step kind.
    """
    if target not in df.columns:
        raise ValueError(f"step frame has no column {target!r}; has {list(df.columns)}")
    y_all = df[target].to_numpy(float)
    usable = np.isfinite(y_all) & (y_all > 0)
    if "phase" in df.columns:
        usable &= (df["phase"] != "warmup").to_numpy()
    idx = np.flatnonzero(usable)
    if len(idx) < 8:
        raise ValueError(f"only {len(idx)} usable steps (finite {target} > 0, not warm-up): need at least 8")
    rng = np.random.default_rng(seed)
    test = np.zeros(len(df), bool)
    test[rng.choice(idx, int(round(test_fraction * len(idx))), replace=False)] = True
    train = usable & ~test
    x_all = design(df)
    keep = train.copy()
    for _ in range(max(1, rounds)):
        w = 1.0 / y_all[keep] if relative else np.ones(int(keep.sum()))
        coef = _nnls(x_all[keep], y_all[keep], w)
        rel = (x_all @ coef - y_all) / np.where(usable, y_all, 1.0)
        med = float(np.median(rel[train]))
        mad = 1.4826 * float(np.median(np.abs(rel[train] - med)))
        new_keep = train & (np.abs(rel - med) <= mad_k * max(mad, 1e-3))
        if (new_keep == keep).all():
            break
        keep = new_keep
    w = 1.0 / y_all[keep] if relative else np.ones(int(keep.sum()))
    coef = _nnls(x_all[keep], y_all[keep], w)
    scale = float(np.mean(y_all[train] / np.maximum(x_all[train] @ coef, 1e-12))) if mean_correct else 1.0
    coef = coef * scale
    model = LinearStepTime(*(float(c) for c in coef))
    pred = x_all @ coef
    kinds = step_kind(df).to_numpy()
    quality: dict[str, Any] = {
        "target": target,
        "weighting": "relative (rows weighted by 1/measured)" if relative else "absolute",
        "mean_correction": scale,
        "n_steps": int(len(df)),
        "n_usable": int(usable.sum()),
        "n_train": int(train.sum()),
        "n_outliers": int((train & ~keep).sum()),
        "n_test": int(test.sum()),
        "train": _errors(y_all[keep], pred[keep]),
        "test": _errors(y_all[test], pred[test]),
        "test_by_kind": {k: _errors(y_all[test & (kinds == k)], pred[test & (kinds == k)])
                         for k in ("prefill", "decode", "mixed")},
    }
    return FitResult(model, quality, train & keep, test, train & ~keep)


def build_profile(name: str, fit: FitResult, engine: dict[str, int], meta: dict[str, Any]) -> dict[str, Any]:
    """The JSON dict of a linear profile (loadable by llmsched.sim.load_profile)."""
    m = fit.model
    q = fit.quality
    model = meta.get("model_dir") or meta.get("model", "?")
    return {
        "schema": SCHEMA,
        "name": name,
        "kind": "linear",
        "description": (
            f"Step time (serving-loop cycle) of {model} on vLLM {meta.get('vllm_version', '?')} "
            f"CPU, {meta.get('machine', {}).get('nproc', '?')} cores ({meta.get('machine', {}).get('cpu_model', '?')})"
            f", fitted by llmsched.serving.calibrate (NNLS): held-out R^2 {q['test'].get('r2', math.nan):.3f}, mean "
            f"|relative error| {q['test'].get('rel_err_mean_abs', math.nan):.1%}."
        ),
        "coefficients": {"c0": m.c0, "c_prefill": m.c_prefill, "c_decode": m.c_decode, "c_kv": m.c_kv},
        "engine": engine,
        "fit": q,
        "caveat": "valid for the machine and the period it was measured in: on a shared small VM the engine's speed "
                  "drifts (10-25 % between runs minutes apart on the 2-core development machine); recalibrate "
                  "right before the runs it should predict (llmsched.serving.calibrate module doc)",
        "calibration": meta,
        "sources": {
            "coefficients": "NNLS fit of measured serving-loop cycles (schedule() entry to the next schedule() "
                            "entry) of the real engine: llmsched.serving.calibrate; raw steps in "
                            f"{meta.get('steps_file', '?')}",
            "engine.num_blocks": "vllm_config.cache_config.num_gpu_blocks of the calibrated engine (KV cache of "
                                 f"{meta.get('engine_config', {}).get('kv_cache_gib', '?')} GiB)",
            "engine.block_size": "vllm_config.cache_config.block_size of the calibrated engine",
            "engine.max_num_seqs": "the calibrated engine's scheduler_config (as in the serving experiments)",
            "engine.max_num_batched_tokens": "the calibrated engine's scheduler_config",
            "engine.max_model_len": "the calibrated engine's model_config",
        },
    }


def report(data: dict[str, Any]) -> str:
    """A few lines on a calibrated profile: coefficients and fit quality."""
    c, q = data["coefficients"], data["fit"]
    lines = [
        f"profile {data['name']}: c0 = {c['c0'] * 1e3:.2f} ms, c_prefill = {c['c_prefill'] * 1e6:.1f} us/token, "
        f"c_decode = {c['c_decode'] * 1e3:.2f} ms/seq, c_kv = {c['c_kv'] * 1e6:.3f} us/token",
        f"engine limits: {data['engine']}",
        f"steps: {q['n_steps']} recorded, {q['n_train']} fitted ({q['n_outliers']} outliers dropped), "
        f"{q['n_test']} held out; mean correction x{q.get('mean_correction', 1.0):.3f}",
    ]
    for part in ("train", "test"):
        e = q[part]
        lines.append(f"{part:5s}: R^2 {e['r2']:.4f}  |rel err| mean {e['rel_err_mean_abs']:.1%} median "
                     f"{e['rel_err_median_abs']:.1%} p90 {e['rel_err_p90_abs']:.1%}  bias {e['rel_err_bias']:+.1%}  "
                     f"summed time {e['total_time_rel_err']:+.1%}")
    for k, e in q["test_by_kind"].items():
        if e.get("n"):
            lines.append(f"  test {k:7s} n={e['n']:3d} |rel err| mean {e['rel_err_mean_abs']:.1%} bias "
                         f"{e['rel_err_bias']:+.1%} (mean measured {e['measured_mean_s'] * 1e3:.0f} ms)")
    return "\n".join(lines)
