"""How well can any prompt-only ranker do? The label-noise ceiling of a target made of sampled response lengths.

A sampled response length is the prompt's typical length plus sampling noise, so even a perfect predictor of the
typical length does not rank single samples perfectly. With k samples per prompt:

    tau_one_vs_one      Kendall tau between two independent samples' lengths (mean over sample pairs)
    tau_one_vs_rest     tau between one sample and the median of the other k - 1 (mean over the k choices)
    ceiling_one         estimated tau between the typical length and ONE sample
    ceiling_median      estimated tau between the typical length and the MEDIAN of all k samples: the ceiling of
                        a ranker trained and judged on the median target

The estimate (stated in every table that uses it): in log length, a sample is latent + independent noise. Under a
bivariate-normal model Kendall's tau and Pearson's r are linked by tau = (2/pi) arcsin(r), so the reliability of
one sample is r1 = sin(pi/2 * tau_one_vs_one), and the ceiling for one sample is (2/pi) arcsin(sqrt(r1)). The
median of k samples is less reliable than their mean (Spearman-Brown, r_k = k r1 / (1 + (k - 1) r1), would
overstate it), so `ceiling_median` is computed under the same model by simulation: latent ~ N(0, 1), k samples of
latent + N(0, (1 - r1) / r1), tau between the latent and the samples' median (200,000 prompts, fixed seed). For
k - 1 = 2 other samples the median is their mean, so the model predicts tau_one_vs_rest as
(2/pi) arcsin(sqrt(r1 r_2)); that prediction is reported beside the observed value as a check of the model on the
same data.
"""

from __future__ import annotations

import math
from itertools import combinations

import numpy as np
import pandas as pd

from llmsched.predictors.metrics import kendall_tau
from llmsched.records import OK


def sample_matrix(table: pd.DataFrame) -> tuple[list[str], np.ndarray]:
    """(prompt ids, prompts × samples array of output tokens) for the prompts whose every sample is ok."""
    ok = table[table["status"] == OK]
    wide = ok.pivot_table(index="request_id", columns="sample", values="output_tokens", aggfunc="first")
    k_all = int(table["sample"].nunique()) if len(table) else 0
    wide = wide.dropna()
    if wide.shape[1] < k_all:
        wide = wide.iloc[:, :0]
    return [str(i) for i in wide.index], wide.to_numpy(dtype=np.float64)


def median_lengths(table: pd.DataFrame) -> tuple[dict[str, float], int]:
    """The training target: each prompt's median output tokens over its ok samples, and the number of prompts
    without an ok sample."""
    ok = table[table["status"] == OK]
    med = ok.groupby("request_id")["output_tokens"].median().to_dict()
    missing = int(table["request_id"].nunique() - len(med))
    return {str(k): float(v) for k, v in med.items()}, missing


def _tau_to_r(tau: float) -> float:
    return math.sin(math.pi / 2 * tau)


def _r_to_tau(r: float) -> float:
    return 2 / math.pi * math.asin(math.sqrt(min(max(r, 0.0), 1.0)))


def spearman_brown(r1: float, k: int) -> float:
    """Reliability of the mean of k measurements, each of reliability r1."""
    return k * r1 / (1 + (k - 1) * r1) if r1 > 0 else 0.0


def noise_ceiling(samples: np.ndarray) -> dict[str, float]:
    """The label-noise figures of the module docstring for a prompts × samples array of lengths (k >= 2)."""
    samples = np.asarray(samples, dtype=np.float64)
    if samples.ndim != 2 or samples.shape[1] < 2:
        raise ValueError(f"need a prompts x samples array with >= 2 samples per prompt, got shape {samples.shape}")
    n, k = samples.shape
    if n < 3:
        raise ValueError(f"need >= 3 prompts with {k} ok samples each, got {n}")
    one = float(np.mean([kendall_tau(samples[:, i], samples[:, j]) for i, j in combinations(range(k), 2)]))
    rest = float(np.mean([kendall_tau(samples[:, i], np.median(np.delete(samples, i, axis=1), axis=1))
                          for i in range(k)]))
    r1 = _tau_to_r(one)
    return {
        "prompts": n, "samples_per_prompt": k,
        "tau_one_vs_one": one, "tau_one_vs_rest": rest,
        "tau_one_vs_rest_model": _r_to_tau(r1 * spearman_brown(r1, 2)) if k == 3 else math.nan,
        "ceiling_one": _r_to_tau(r1), "ceiling_median": median_ceiling(r1, k),
    }


def median_ceiling(r1: float, k: int, n: int = 200_000, seed: int = 0) -> float:
    """tau between the latent and the median of k samples of reliability r1 each, under the Gaussian model."""
    if r1 <= 0:
        return 0.0
    if r1 >= 1:
        return 1.0
    rng = np.random.default_rng(seed)
    latent = rng.standard_normal(n)
    noisy = latent[:, None] + rng.standard_normal((n, k)) * math.sqrt((1 - r1) / r1)
    return kendall_tau(latent, np.median(noisy, axis=1))


def noise_table(table: pd.DataFrame, ids: set[str] | None = None) -> dict[str, float]:
    """`noise_ceiling` of a collected-lengths table (llmsched.serving.lengths), on the prompts in `ids` (all by
    default); NaN figures when fewer than 2 samples per prompt were collected."""
    names, samples = sample_matrix(table)
    if ids is not None:
        keep = [i for i, name in enumerate(names) if name in ids]
        samples = samples[keep]
    if samples.ndim != 2 or samples.shape[1] < 2 or samples.shape[0] < 3:
        return {"prompts": int(samples.shape[0]), "samples_per_prompt": int(samples.shape[1]) if samples.ndim == 2
                else 0, **dict.fromkeys(("tau_one_vs_one", "tau_one_vs_rest", "tau_one_vs_rest_model",
                                         "ceiling_one", "ceiling_median"), math.nan)}
    return noise_ceiling(samples)
