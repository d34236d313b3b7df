"""The artifact's figures: each function takes result tables (as the stages write them) and returns a figure.

Notebooks 01–05 show them inline; notebook 06 (llmsched.experiments.report) saves every one as PNG and PDF.
Column names are those of the stage outputs described in results/README.md.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.ticker import LogFormatter, NullFormatter

from llmsched.analysis.metrics import per_request

LATENCY = {"e2e_mean": "mean E2E (s)", "normalized_latency_mean": "mean normalized latency (s/token)",
           "ttft_mean": "mean TTFT (s)"}
# A fixed colour per policy label across every figure.
ORDER = ["fcfs", "prompt-sjf", "pars", "pars-noguard", "pars-released", "pars-rank", "ltr", "ltr-released",
         "pointwise", "ewsjf", "ewsjf-rank", "ewsjf-tuned", "ewsjf-online", "ewsjf-released", "ewsjf-norefine",
         "ewsjf-nobubbles", "oracle-sjf"]
_PALETTE = dict(zip(ORDER, sns.color_palette("tab20", len(ORDER)), strict=True))


def palette(labels: Sequence[str]) -> dict[str, tuple[float, float, float]]:
    extra = [x for x in labels if x not in _PALETTE]
    more = dict(zip(extra, sns.color_palette("husl", max(len(extra), 1)), strict=False))
    return {x: _PALETTE[x] if x in _PALETTE else more[x] for x in labels}


def _order(labels: Sequence[str]) -> list[str]:
    seen = list(dict.fromkeys(labels))
    return [x for x in ORDER if x in seen] + [x for x in seen if x not in ORDER]


class _PlainLogFormatter(LogFormatter):
    """Log-axis tick labels as plain numbers (0.02, 5, 10×) instead of 2×10⁻²; which ticks get a label is
    matplotlib's choice, as with its default formatter."""

    def __init__(self, suffix: str = "") -> None:
        super().__init__(10, labelOnlyBase=False)
        self.suffix = suffix

    def _num_to_string(self, x: float, vmin: float, vmax: float) -> str:
        return f"{x:g}{self.suffix}"


def plain_log(ax: plt.Axes, which: str = "y", suffix: str = "") -> None:
    """Label the log-scaled axis `which` ("x", "y" or "both") of `ax` with plain numbers, `suffix` appended."""
    axes = [ax.xaxis] if which == "x" else [ax.yaxis] if which == "y" else [ax.xaxis, ax.yaxis]
    for axis in axes:
        axis.set_major_formatter(_PlainLogFormatter(suffix))
        axis.set_minor_formatter(_PlainLogFormatter(suffix))


def add_context(fig: plt.Figure, line: str) -> None:
    """Append `line` (the profile, serving model or simulator behind the figure) to the figure's title, or make it
    the title of a figure without one, and lay the figure out again."""
    text = getattr(fig, "_suptitle", None)  # matplotlib keeps the title's font size only there
    title = fig.get_suptitle()
    size = text.get_fontsize() if text is not None and title else 10
    fig.suptitle(f"{title}\n{line}" if title else line, fontsize=size)
    fig.tight_layout()


def lengths(table: pd.DataFrame, model: str) -> plt.Figure:
    """Collected lengths: the serving model's vs ChatGPT's on the same prompts (notebook 01)."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    long = pd.concat([pd.DataFrame({"tokens": table["chatgpt_tokens"], "source": "ChatGPT (ShareGPT)"}),
                      pd.DataFrame({"tokens": table["model_tokens"], "source": model})], ignore_index=True)
    sns.histplot(data=long, x="tokens", hue="source", bins=30, element="step", ax=axes[0])
    axes[0].set_xlabel("response length (tokens)")
    axes[0].set_ylabel("prompts")
    sns.scatterplot(data=table, x="chatgpt_tokens", y="model_tokens", hue="split", ax=axes[1], s=14)
    axes[1].set_xlabel("ChatGPT response (tokens)")
    axes[1].set_ylabel(f"{model} response (tokens)")
    fig.suptitle(f"Response lengths of {len(table)} ShareGPT prompts: {model} vs ChatGPT")
    fig.tight_layout()
    return fig


# Published prompt-only rankers (PAPERS.md): Kendall τ 0.50-0.64 on ShareGPT / LMSYS; LTR's OPT-350M 0.55 on ShareGPT.
PAPER_TAU_BAND = (0.50, 0.64)
PAPER_TAU_LTR = 0.55


def ranker_quality(quality: pd.DataFrame) -> plt.Figure:
    """Kendall τ and pairwise accuracy per method and evaluation target (notebook 02); the published rankers'
    τ (0.50-0.64, LTR's 0.55 on ShareGPT) as a reference band and line."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.0))
    order = list(dict.fromkeys(quality["method"]))
    for ax, col, label in ((axes[0], "kendall_tau", "Kendall τ"), (axes[1], "pairwise_accuracy", "pairwise accuracy")):
        sns.barplot(data=quality, x="method", y=col, hue="eval_lengths", order=order, ax=ax)
        ax.set_ylabel(label)
        ax.set_xlabel("")
        ax.tick_params(axis="x", rotation=30)
    axes[0].axhspan(*PAPER_TAU_BAND, color="grey", alpha=0.2, lw=0,
                    label=f"published rankers: τ {PAPER_TAU_BAND[0]:.2f}-{PAPER_TAU_BAND[1]:.2f}")
    axes[0].axhline(PAPER_TAU_LTR, color="crimson", ls="--", lw=1, label=f"paper: τ {PAPER_TAU_LTR} (LTR, ShareGPT)")
    axes[0].axhline(0, color="grey", lw=0.8)
    axes[1].axhline(0.5, color="grey", lw=0.8, ls=":", label="chance (0.5)")
    if "noise_ceiling" in quality:
        ceilings = quality.dropna(subset=["noise_ceiling"]).groupby("eval_lengths")["noise_ceiling"].first()
        for k, (target, ceiling) in enumerate(ceilings.items()):
            axes[0].axhline(ceiling, color="black", lw=0.9, ls=(0, (4, 2 + k)),
                            label=f"label-noise ceiling ({target} median)")
    for ax in axes:
        ax.legend(title="true lengths of", fontsize=7, title_fontsize=8, loc="upper left", bbox_to_anchor=(0, -0.28),
                  ncol=2, frameon=False)
    fig.suptitle("Ranking quality of each method on held-out prompts: Kendall τ and pairwise accuracy against the "
                 "true lengths")
    fig.tight_layout()
    return fig


def ranker_ablations(delta: pd.DataFrame, margin: pd.DataFrame) -> plt.Figure:
    """PARS's pair filter δ and margin (notebook 02)."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), sharey=True)
    for ax, table, knob in ((axes[0], delta, "delta"), (axes[1], margin, "margin")):
        ax.plot(table[knob], table["kendall_tau"], marker="o", label="Kendall τ")
        ax.plot(table[knob], table["pairwise_accuracy"], marker="s", label="pairwise accuracy")
        ax.set_xlabel({"delta": "δ (minimum relative length gap of a pair)",
                       "margin": "margin of the pairwise hinge loss (score units)"}[knob])
    axes[0].set_ylabel("Kendall τ / pairwise accuracy")
    axes[0].legend(fontsize=8)
    frozen = bool(delta["freeze_encoder"].iloc[0]) if "freeze_encoder" in delta else False
    fig.suptitle("PARS ranker ablations: pair filter δ and loss margin"
                 + (" (probe on the frozen encoder)" if frozen else ""))
    fig.tight_layout()
    return fig


def ranker_backbones(table: pd.DataFrame) -> plt.Figure:
    """PARS on each backbone: Kendall τ and pairwise accuracy, labelled with kind and size (notebook 02)."""
    labels = [f"{b}\n{k}, {m:.3g} M" for b, k, m in zip(table["backbone"], table["kind"], table["parameters_m"],
                                                         strict=True)]
    x = np.arange(len(table))
    fig, ax = plt.subplots(figsize=(1.6 * len(table) + 3, 3.6))
    ax.bar(x - 0.2, table["kendall_tau"], 0.4, label="Kendall τ")
    ax.bar(x + 0.2, table["pairwise_accuracy"] - 0.5, 0.4, label="pairwise accuracy − 0.5")
    ax.set_xticks(x, labels, fontsize=8)
    ax.set_ylabel("Kendall τ / pairwise accuracy − 0.5")
    ax.axhline(0, color="grey", lw=0.8)
    ax.legend(fontsize=8)
    frozen = bool(table["freeze_encoder"].iloc[0])
    fig.suptitle("PARS backbone ablation: ranking quality per backbone\n"
                 f"({'probe on the frozen backbone' if frozen else 'fine-tuned'}, {table['pooling'].iloc[0]} pooling)",
                 fontsize=10)
    fig.tight_layout()
    return fig


def transfer(table: pd.DataFrame) -> plt.Figure:
    """Cross-model transfer: τ of PARS trained on one model's lengths against each model's (notebook 02)."""
    pars = table[table["method"] == "pars"].pivot(index="train_lengths", columns="eval_lengths", values="kendall_tau")
    ceiling = table[table["method"] != "pars"]
    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    sns.heatmap(pars, annot=True, fmt=".3f", cmap="vlag", center=0, ax=ax, cbar_kws={"label": "Kendall τ"})
    ax.set_xlabel("evaluated on lengths of")
    ax.set_ylabel("PARS trained on lengths of")
    if len(ceiling):
        ax.set_title("transfer ceiling (other model's true lengths): τ = "
                     + ", ".join(f"{x:.3f}" for x in ceiling["kendall_tau"]), fontsize=9)
    fig.suptitle("Cross-model transfer of PARS: Kendall τ", fontsize=11)
    fig.tight_layout()
    return fig


def seeds_note(summary: pd.DataFrame) -> str:
    """What a sweep figure's lines and bands are: "mean and 95 % CI over N seeds" for a summary over seeds
    (its n_seeds column), nothing for a one-seed table."""
    if "n_seeds" not in summary or not len(summary):
        return ""
    lo, hi = int(summary["n_seeds"].min()), int(summary["n_seeds"].max())
    n = str(hi) if lo == hi else f"{lo}-{hi}"
    return "one seed, no interval" if hi == 1 else f"mean and 95 % CI over {n} seeds"


def _with_note(title: str, summary: pd.DataFrame) -> str:
    note = seeds_note(summary)
    return f"{title}\n{note}" if note else title


def _lines_with_bands(ax: plt.Axes, part: pd.DataFrame, x: str, col: str, labels: Sequence[str]) -> None:
    """One line per label (the mean over seeds) and, where the table has `<col>_ci_low/_ci_high`, its 95 %
    interval as a band of the same colour."""
    colours = palette(labels)
    band = f"{col}_ci_low" in part and f"{col}_ci_high" in part
    for label in labels:
        rows = part[part["label"] == label].sort_values(x)
        if not len(rows):
            continue
        ax.plot(rows[x].to_numpy(), rows[col].to_numpy(), marker="o", ms=4, color=colours[label], label=label)
        if band:
            ax.fill_between(rows[x].to_numpy(float), rows[f"{col}_ci_low"].to_numpy(float),
                            rows[f"{col}_ci_high"].to_numpy(float), color=colours[label], alpha=0.18, lw=0)


def latency_vs_rate(summary: pd.DataFrame, title: str, x: str = "load",
                    metrics: dict[str, str] = LATENCY) -> plt.Figure:
    """Latency metrics vs load, one line per policy label (simulator sweeps); over seeds, the mean with its 95 %
    interval as a band."""
    labels = _order(summary["label"])
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.6))
    for ax, (col, name) in zip(np.atleast_1d(axes), metrics.items(), strict=True):
        _lines_with_bands(ax, summary, x, col, labels)
        ax.set_ylabel(name)
        ax.set_xlabel("request rate / saturation throughput" if x == "load" else x)
        if (summary[col] > 0).all() and summary[col].max() / max(summary[col].min(), 1e-12) > 50:
            ax.set_yscale("log")
            plain_log(ax)
    np.atleast_1d(axes)[-1].legend(fontsize=7, title=None, loc="upper left", bbox_to_anchor=(1, 1))
    fig.suptitle(_with_note(title, summary))
    fig.tight_layout()
    return fig


def throughput_vs_rate(summary: pd.DataFrame, title: str, col: str = "token_throughput") -> plt.Figure:
    names = {"token_throughput": "output throughput (tok/s)",
             "total_token_throughput": "prompt+output throughput (tok/s)",
             "request_throughput": "request throughput (req/s)"}
    return latency_vs_rate(summary, title, metrics={col: names.get(col, col.replace("_", " "))})


def latency_cdf(requests: pd.DataFrame, title: str, by: str = "label",
                metrics: Sequence[str] = ("e2e", "normalized_latency", "ttft")) -> plt.Figure:
    """Per-request latency CDFs, one line per policy label (a run's or a sweep slice's requests)."""
    m = per_request(requests)
    m[by] = requests[by].to_numpy()
    m = m[m["status"] == "ok"]
    labels = _order(m[by])
    names = {"e2e": "E2E (s)", "normalized_latency": "normalized latency (s/token)", "ttft": "TTFT (s)"}
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.4))
    for ax, col in zip(np.atleast_1d(axes), metrics, strict=True):
        data = m[m[col] > 0] if col != "e2e" else m
        sns.ecdfplot(data=data, x=col, hue=by, hue_order=labels, palette=palette(labels), ax=ax,
                     log_scale=col != "e2e", legend=ax is np.atleast_1d(axes)[-1])
        ax.set_xlabel(names.get(col, col))
        ax.set_ylabel("fraction of requests")
        if col != "e2e":
            plain_log(ax, "x")
    last = np.atleast_1d(axes)[-1]
    if last.get_legend() is not None:
        sns.move_legend(last, "upper left", bbox_to_anchor=(1, 1), fontsize=7, title=None)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def runs_note(summary: pd.DataFrame) -> str:
    """What a real-engine figure's bars and error bars are, from the summary's n_runs column (compare_policies):
    "mean and 95 % CI over N interleaved runs per policy", "one run per policy, no interval", or nothing."""
    if "n_runs" not in summary or not len(summary):
        return ""
    lo, hi = int(summary["n_runs"].min()), int(summary["n_runs"].max())
    n = str(hi) if lo == hi else f"{lo}-{hi}"
    return "one run per policy, no interval" if hi == 1 else f"mean and 95 % CI over {n} interleaved runs per policy"


def _error_bars(summary: pd.DataFrame, labels: Sequence[str], col: str) -> np.ndarray | None:
    """Asymmetric error bars of `col` from its `_ci_low/_ci_high` columns (0 where undefined), or None."""
    if f"{col}_ci_low" not in summary or f"{col}_ci_high" not in summary:
        return None
    est = summary.loc[labels, col].to_numpy(float)
    lo = np.nan_to_num(est - summary.loc[labels, f"{col}_ci_low"].to_numpy(float)).clip(min=0)
    hi = np.nan_to_num(summary.loc[labels, f"{col}_ci_high"].to_numpy(float) - est).clip(min=0)
    return np.vstack([lo, hi])


def serving_bars(summary: pd.DataFrame, title: str,
                 metrics: dict[str, str] | None = None) -> plt.Figure:
    """One real-engine comparison (index = policy label): a bar per policy for each metric — the mean over the
    policy's runs — with its 95 % interval as an error bar where the summary has `<col>_ci_low/_ci_high`
    (llmsched.serving.experiment.compare_policies); the title says over how many runs."""
    metrics = metrics or {**LATENCY, "token_throughput": "output throughput (tok/s)"}
    labels = _order(list(summary.index))
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.3 * len(metrics), 3.6))
    for ax, (col, name) in zip(np.atleast_1d(axes), metrics.items(), strict=True):
        vals = summary.loc[labels, col]
        ax.bar(range(len(labels)), vals, color=[palette(labels)[x] for x in labels],
               yerr=_error_bars(summary, labels, col), capsize=3, error_kw={"elinewidth": 1})
        ax.set_xticks(range(len(labels)), labels, rotation=40, ha="right", fontsize=8)
        ax.set_ylabel(name, fontsize=9)
    note = runs_note(summary)
    fig.suptitle(f"{title}\n{note}" if note else title, fontsize=11)
    fig.tight_layout()
    return fig


SERVING_RATIOS = {"normalized_latency_mean": "normalized latency", "e2e_mean": "E2E", "ttft_mean": "TTFT",
                  "ttft_short_mean": "TTFT, short prompts", "ttft_long_mean": "TTFT, long prompts"}


def serving_ratios(ratios: pd.DataFrame, title: str, metrics: dict[str, str] | None = None) -> plt.Figure:
    """Paired ratios against the baseline (ratios.parquet of compare_policies: baseline mean / policy mean,
    > 1 = the policy is lower): a point per policy with its 95 % interval, a panel per metric present."""
    metrics = metrics or SERVING_RATIOS
    metrics = {m: n for m, n in metrics.items() if m in set(ratios["metric"])}
    if not metrics:
        raise ValueError(f"serving_ratios: none of {list(SERVING_RATIOS)} in the ratio table")
    labels = _order(list(ratios["label"]))
    colours = palette(labels)
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.3 * len(metrics), 0.45 * len(labels) + 1.9), sharey=True,
                             squeeze=False)
    for ax, (metric, name) in zip(axes[0], metrics.items(), strict=True):
        t = ratios[ratios["metric"] == metric].set_index("label").reindex(labels)
        est = t["ratio"].to_numpy(float)
        err = np.vstack([np.nan_to_num(est - t["ci_low"].to_numpy(float)).clip(min=0),
                         np.nan_to_num(t["ci_high"].to_numpy(float) - est).clip(min=0)])
        y = np.arange(len(labels))
        for i, label in enumerate(labels):
            ax.errorbar(est[i], y[i], xerr=err[:, i:i + 1], fmt="o", color=colours[label], capsize=3)
        ax.axvline(1, color="grey", lw=0.8, ls="--")
        if metric == "ttft_short_mean" and str(ratios["baseline"].iloc[0]) == "fcfs":
            ax.axvline(PAPER_TTFT_SHORT_SPEEDUP, color="crimson", ls="--", lw=1, label=PAPER_TTFT_SHORT_LABEL)
            ax.legend(fontsize=7, loc="lower right")
        ax.set_yticks(y, labels, fontsize=8)
        ax.set_xlabel(f"{name}: {ratios['baseline'].iloc[0]} / policy (×)", fontsize=9)
    n = int(ratios["n_runs"].max()) if len(ratios) else 0
    note = "one run per policy, no interval" if n <= 1 else f"paired over {n} interleaved runs, 95 % CI"
    note += "; > 1: the policy is lower"
    fig.suptitle(f"{title}\n{note}", fontsize=11)
    fig.tight_layout()
    return fig


def agreement(table: pd.DataFrame, title: str) -> plt.Figure:
    """Simulator vs real engine per policy: real and simulated value of each metric (notebook 04)."""
    t = table.reset_index()
    metrics = [m for m in ("e2e_mean", "ttft_mean", "normalized_latency_mean", "token_throughput")
               if f"{m}_real" in t]
    names = {**LATENCY, "token_throughput": "output throughput (tok/s)"}
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.4 * len(metrics), 3.4))
    for ax, m in zip(np.atleast_1d(axes), metrics, strict=True):
        x = np.arange(len(t))
        ax.bar(x - 0.2, t[f"{m}_real"], 0.4, label="real engine")
        ax.bar(x + 0.2, t[f"{m}_sim"], 0.4, label="simulator")
        ax.set_xticks(x, t["policy"], rotation=40, ha="right", fontsize=8)
        ax.set_ylabel(names[m], fontsize=9)
        ax.set_title(f"mean |simulator − real| / real: {np.nanmean(np.abs(t[f'{m}_err'])):.0%}", fontsize=9)
    np.atleast_1d(axes)[-1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1, 1))
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def partitions(lengths_table: pd.DataFrame, queues: pd.DataFrame) -> plt.Figure:
    """EWSJF's queues over the length histogram of each preset's sample (notebook 03)."""
    presets = list(dict.fromkeys(lengths_table["preset"]))
    variants = list(dict.fromkeys(queues["variant"]))
    fig, axes = plt.subplots(len(presets), 1, figsize=(9, 2.8 * len(presets)), squeeze=False)
    styles = dict(zip(variants, ["-", "--", ":"], strict=False))
    for ax, preset in zip(axes[:, 0], presets, strict=True):
        x = lengths_table.loc[lengths_table["preset"] == preset, "prompt_tokens"]
        ax.hist(x, bins=80, color="lightgrey")
        top = ax.get_ylim()[1]
        for j, variant in enumerate(variants):
            q = queues[(queues["preset"] == preset) & (queues["variant"] == variant)]
            for _, row in q.iterrows():
                ax.axvline(row["lo"], color=f"C{j}", ls=styles[variant], lw=1)
                ax.axvline(row["hi"], color=f"C{j}", ls=styles[variant], lw=1)
                ax.text((row["lo"] + row["hi"]) / 2, top * (0.92 - 0.12 * j), f"{int(row['count'])}",
                        color=f"C{j}", ha="center", fontsize=7,
                        bbox={"fc": "white", "ec": "none", "pad": 0.5, "alpha": 0.8})
            ax.plot([], [], color=f"C{j}", ls=styles[variant], label=f"{variant}: {len(q)} queues")
        ax.set_title(f"preset {preset}: {len(x)} prompt lengths", fontsize=10)
        ax.set_xlabel("prompt length (tokens)")
        ax.set_ylabel("prompts")
        ax.legend(fontsize=8, loc="upper center")
    fig.suptitle("EWSJF's queues (boundaries) over each preset's prompt-length histogram; numbers: prompts per queue",
                 fontsize=10)
    fig.tight_layout()
    return fig


def _sweep_grid(summary: pd.DataFrame, by: str, cols: dict[str, str], title: str,
                log: Callable[[str], bool]) -> plt.Figure:
    """A row of panels per value of `by` (preset, workload), a panel per metric vs load, a line per label (over
    seeds: the mean, its 95 % interval as a band)."""
    groups = list(dict.fromkeys(summary[by]))
    labels = _order(summary["label"])
    fig, axes = plt.subplots(len(groups), len(cols), figsize=(4.1 * len(cols), 3.2 * len(groups)), squeeze=False)
    for r, group in enumerate(groups):
        part = summary[summary[by] == group]
        for c, (col, name) in enumerate(cols.items()):
            ax = axes[r, c]
            _lines_with_bands(ax, part, "load", col, labels)
            ax.set_ylabel(name)
            ax.set_xlabel("request rate / saturation throughput")
            ax.set_title(f"{by} {group}", fontsize=9)
            if log(col) and (part[col] > 0).all():
                ax.set_yscale("log")
                plain_log(ax)
    axes[0, -1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1, 1))
    fig.suptitle(_with_note(title, summary))
    fig.tight_layout()
    return fig


def ewsjf_sweep(summary: pd.DataFrame) -> plt.Figure:
    """EWSJF claims vs load, per preset: token throughput, short- and long-request TTFT, utilisation."""
    cols = {"total_token_throughput": "prompt+output throughput (tok/s)", "ttft_short_mean": "mean TTFT, short (s)",
            "ttft_long_mean": "mean TTFT, long (s)", "utilisation": "token-budget utilisation (fraction)"}
    return _sweep_grid(summary, "preset", cols, "EWSJF and its variants vs FCFS and prompt-length SJF against load "
                       "(simulator)", lambda col: col.startswith("ttft"))


def ewsjf_ablation(summary: pd.DataFrame, load: float) -> plt.Figure:
    """Component ablation at one load: each EWSJF variant's short/long TTFT and throughput, FCFS = 1; the paper's
    4× lower short-request TTFT (0.25) and +30 % throughput (1.3) drawn over their own metric only."""
    part = summary[np.isclose(summary["load"], load)]
    cols = {"ttft_short_mean": "mean TTFT,\nshort prompts", "ttft_long_mean": "mean TTFT,\nlong prompts",
            "e2e_mean": "mean E2E", "total_token_throughput": "prompt+output\nthroughput",
            "queue_delay_max": "worst\nqueueing delay"}
    rows = []
    for preset, g in part.groupby("preset", sort=False):
        base = g.set_index("label").loc["fcfs", list(cols)]
        for _, row in g.iterrows():
            rows += [{"preset": preset, "label": row["label"], "metric": cols[c], "vs FCFS": row[c] / base[c]}
                     for c in cols]
    t = pd.DataFrame(rows)
    presets = list(dict.fromkeys(t["preset"]))
    labels = _order(t["label"])
    fig, axes = plt.subplots(1, len(presets), figsize=(8.5 * len(presets), 4.0), squeeze=False, sharey=True)
    refs = {"ttft_short_mean": (1 / PAPER_TTFT_SHORT_SPEEDUP, "paper: 4× lower short TTFT (EWSJF), 0.25×"),
            "total_token_throughput": (1 + PAPER_THROUGHPUT_GAIN_PCT / 100, "paper: +30 % throughput (EWSJF), 1.3×")}
    for ax, preset in zip(axes[0], presets, strict=True):
        sns.barplot(data=t[t["preset"] == preset], x="metric", y="vs FCFS", hue="label", hue_order=labels,
                    order=list(cols.values()), palette=palette(labels), ax=ax)
        ax.axhline(1, color="grey", lw=0.8)
        for k, (metric, (value, name)) in enumerate(refs.items()):
            i = list(cols).index(metric)
            ax.hlines(value, i - 0.45, i + 0.45, colors="crimson", linestyles=["--", ":"][k], lw=1.2, label=name)
        ax.set_yscale("log")
        plain_log(ax, suffix="×")
        ax.set_xlabel("")
        ax.tick_params(axis="x", labelsize=8)
        ax.set_ylabel("policy / FCFS (×, log)")
        ax.set_title(f"preset {preset}", fontsize=9)
        ax.get_legend().remove()
    axes[0, -1].legend(*axes[0, -1].get_legend_handles_labels(), fontsize=7, loc="upper left",
                       bbox_to_anchor=(1, 1))
    fig.suptitle(f"EWSJF's components vs FCFS at load {load:g}: each variant's metric / FCFS's (< 1: lower)",
                 fontsize=11)
    fig.tight_layout()
    return fig


def convergence(trials: pd.DataFrame, online: pd.DataFrame | None = None) -> plt.Figure:
    """Meta-optimisation: R per trial and best so far (offline), and per live window (online)."""
    n = 2 if online is not None and len(online) else 1
    fig, axes = plt.subplots(1, n, figsize=(5 * n, 3.4), squeeze=False)
    ax = axes[0, 0]
    ax.plot(trials["trial"], trials["value"], "o", ms=4, alpha=0.6, label="trial")
    ax.plot(trials["trial"], trials["best_so_far"], "-", label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel("R = λ1·C + λ2·L − λ3·S − λ4·U")
    ax.set_title("offline (simulator), seeded TPE", fontsize=10)
    ax.legend(fontsize=8)
    if online is not None and n == 2:
        ax = axes[0, 1]
        ax.plot(online["window"], online["value"], "o-", ms=3, label="window")
        ax.plot(online["window"], online["best_so_far"], "-", label="best so far")
        ax.set_xlabel("feedback window")
        ax.set_ylabel("R of the window")
        ax.set_title("online (re-tuned while serving)", fontsize=10)
        ax.legend(fontsize=8)
    fig.suptitle("EWSJF meta-optimisation: objective R per trial (offline) and per feedback window (online)",
                 fontsize=11)
    fig.tight_layout()
    return fig


def head_to_head(summary: pd.DataFrame) -> plt.Figure:
    """PARS, LTR and EWSJF on the same workloads: normalized latency, TTFT and worst wait vs load."""
    cols = {"normalized_latency_mean": "mean normalized latency (s/token)", "ttft_mean": "mean TTFT (s)",
            "queue_delay_max": "worst queueing delay (s)"}
    return _sweep_grid(summary, "workload", cols, "PARS, LTR and EWSJF head to head on the same workloads against "
                       "load (simulator)", lambda _: True)


def overheads(costs: pd.DataFrame, ranker_ms: pd.DataFrame | None = None) -> plt.Figure:
    """Policy cost per admission (and the rankers' scoring cost per request, when measured)."""
    n = 2 if ranker_ms is not None and len(ranker_ms) else 1
    fig, axes = plt.subplots(1, n, figsize=(5 * n, 3.4), squeeze=False)
    ax = axes[0, 0]
    ax.barh(costs["policy"], costs["us_per_admission"])
    ax.set_xlabel(f"policy cost per admission (µs, {int(costs['n_waiting'].iloc[0])} waiting)")
    ax.set_title("scheduling policy (queue operations)", fontsize=10)
    if ranker_ms is not None and n == 2:
        axes[0, 1].barh(ranker_ms["ranker"], ranker_ms["ms_per_request"])
        axes[0, 1].set_xlabel("scoring cost per request (ms, batched, before the engine)")
        axes[0, 1].set_title("length ranker (scoring the prompt once)", fontsize=10)
    fig.suptitle("Overheads of each scheduler: policy cost per admission" + (" and ranker scoring cost per request"
                                                                             if n == 2 else ""), fontsize=11)
    fig.tight_layout()
    return fig


# --- EWSJF under the authors' benchmark protocol (llmsched.experiments.protocol) ------------------------------------

PAPER_THROUGHPUT_GAIN_PCT = 30.0  # EWSJF's claim: > 30 % higher end-to-end throughput than FCFS
PAPER_TTFT_SHORT_SPEEDUP = 4.0  # ... and up to 4x lower mean TTFT of short requests
PAPER_THROUGHPUT_LABEL = "paper: > +30 % (EWSJF)"
PAPER_TTFT_SHORT_LABEL = "paper: up to 4× (EWSJF)"


def _yerr(t: pd.DataFrame) -> np.ndarray:
    """Asymmetric error bars from mean / ci_low / ci_high (0 where an interval is undefined)."""
    lo = (t["mean"] - t["ci_low"]).fillna(0).clip(lower=0).to_numpy()
    hi = (t["ci_high"] - t["mean"]).fillna(0).clip(lower=0).to_numpy()
    return np.vstack([lo, hi])


def protocol_benchmark(gains: pd.DataFrame) -> plt.Figure:
    """The authors' protocol in the simulator: each policy's throughput gain over FCFS (%) and short-request TTFT
    speed-up (FCFS / policy), per profile (columns) and preset @ rate (x), mean over seeds with 95 % t-intervals;
    the paper's +30 % and 4x as reference lines. `gains`: protocol/benchmark/gains.parquet."""
    rows = {"throughput_gain_pct": ("output-token throughput vs FCFS (%)", 0.0, PAPER_THROUGHPUT_GAIN_PCT,
                                    PAPER_THROUGHPUT_LABEL),
            "ttft_short_speedup": ("short-prompt mean TTFT,\nFCFS / policy (×)", 1.0, PAPER_TTFT_SHORT_SPEEDUP,
                                   PAPER_TTFT_SHORT_LABEL)}
    profiles = list(dict.fromkeys(gains["steptime"]))
    labels = _order(gains["label"])
    colours = palette(labels)
    fig, axes = plt.subplots(len(rows), len(profiles), figsize=(max(4.6 * len(profiles), 6.0), 3.4 * len(rows)),
                             squeeze=False, sharey="row")
    for c, prof in enumerate(profiles):
        for r, (metric, (ylabel, base, ref, ref_label)) in enumerate(rows.items()):
            ax = axes[r, c]
            t = gains[(gains["steptime"] == prof) & (gains["metric"] == metric)]
            groups = list(dict.fromkeys(zip(t["preset"], t["rate"], strict=True)))
            width = 0.8 / max(len(labels), 1)
            for k, label in enumerate(labels):
                part = t[t["label"] == label].set_index(["preset", "rate"]).reindex(groups)
                xs = np.arange(len(groups)) + (k - (len(labels) - 1) / 2) * width
                ax.bar(xs, part["mean"].to_numpy(float) - base, width, bottom=base, yerr=_yerr(part), capsize=3,
                       color=colours[label], label=label)
            ax.set_xticks(range(len(groups)), [f"{p}\n@ {rate:g}/s" for p, rate in groups], fontsize=8)
            if r == len(rows) - 1:
                ax.set_xlabel("prompt tokens @ arrival rate")
            ax.axhline(base, color="grey", lw=0.8)
            ax.axhline(ref, color="crimson", ls="--", lw=1, label=ref_label)
            ax.set_ylabel(ylabel if c == 0 else "")
            if r == 0:
                ax.set_title(prof, fontsize=10)
    for r in range(len(rows)):
        axes[r, -1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    budgets = ", ".join(f"{b:,}" for b in sorted(set(gains["max_num_batched_tokens"])))
    fig.suptitle("EWSJF and prompt-length SJF vs FCFS under the authors' protocol\n(simulator: constant arrivals, "
                 f"token budget {budgets}; mean and 95 % CI over prompt draws)", fontsize=10)
    fig.tight_layout()
    return fig


def protocol_sweeps(gains: pd.DataFrame, summary: pd.DataFrame) -> plt.Figure:
    """Where admission order can change throughput: the gain over FCFS (%), each policy's throughput (tok/s) and
    FCFS's wasted capacity (recomputed share of scheduled tokens, idle share of the token budget) against the KV
    cache (num_blocks) and the token budget, chunked prefill on (solid) and off (dashed); 95 % t-interval bands
    over seeds, the paper's +30 % as a reference line. `gains`, `summary`: protocol/sweeps/*.parquet."""
    sweeps = {"kv_blocks": ("num_blocks", "KV cache (blocks of 16 tokens)"),
              "budget": ("max_num_batched_tokens", "token budget (max_num_batched_tokens)")}
    labels = _order(summary["label"])
    colours = palette(labels)
    styles = {True: "-", False: "--"}
    waste = {"recomputed_share": "recomputed tokens / scheduled", "budget_idle_share": "idle budget share"}
    fig, axes = plt.subplots(3, len(sweeps), figsize=(5.4 * len(sweeps), 9.6), squeeze=False)

    def band(ax, t: pd.DataFrame, x: str, colour, ls: str, label: str) -> None:
        t = t.sort_values(x)
        ax.plot(t[x], t["mean"], ls, marker="o", ms=3, color=colour, label=label)
        ax.fill_between(t[x], t["ci_low"], t["ci_high"], color=colour, alpha=0.15, lw=0)

    for c, (sweep, (x, xlabel)) in enumerate(sweeps.items()):
        g, s = gains[gains["sweep"] == sweep], summary[summary["sweep"] == sweep]
        for chunked, ls in styles.items():
            on = "chunked prefill on" if chunked else "chunked prefill off"
            gg, ss = g[g["chunked_prefill"] == chunked], s[s["chunked_prefill"] == chunked]
            for label in labels:
                if label != "fcfs":
                    band(axes[0, c], gg[(gg["label"] == label) & (gg["metric"] == "throughput_gain_pct")], x,
                         colours[label], ls, f"{label}, {on}")
                band(axes[1, c], ss[(ss["label"] == label) & (ss["metric"] == "throughput")], x, colours[label], ls,
                     f"{label}, {on}")
            for k, (metric, name) in enumerate(waste.items()):
                band(axes[2, c], ss[(ss["label"] == "fcfs") & (ss["metric"] == metric)], x, f"C{k}", ls,
                     f"FCFS {name}, {on}")
        axes[0, c].axhline(0, color="grey", lw=0.8)
        axes[0, c].axhline(PAPER_THROUGHPUT_GAIN_PCT, color="crimson", ls="--", lw=1, label=PAPER_THROUGHPUT_LABEL)
        axes[0, c].set_ylabel("output-token throughput vs FCFS (%)")
        axes[1, c].set_ylabel("output-token throughput (tok/s)")
        axes[2, c].set_ylabel("share of FCFS's capacity")
        for r in range(3):
            axes[r, c].set_xscale("log", base=2)
            axes[r, c].set_xlabel(xlabel)
        axes[0, c].set_title(f"sweep of the {xlabel.split(' (')[0]}", fontsize=10)
    for r in range(3):
        axes[r, -1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    first = summary.iloc[0]
    fig.suptitle(f"When can admission order raise throughput? EWSJF and prompt-length SJF vs FCFS\non "
                 f"{first['steptime']}, {first['preset']}-token prompts at {first['rate']:g} req/s (simulator; mean "
                 "and 95 % CI over prompt draws)", fontsize=10)
    fig.tight_layout()
    return fig


# --- Where FCFS/policy latency ratios grow (llmsched.experiments.headroom) ------------------------------------------

HEADROOM_LABELS = ("pars", "pars-noguard", "ltr", "oracle-sjf", "prompt-sjf")
PAPER_FACTORS = {"pars": (15.7, "paper: up to 15.7× (PARS)"), "ltr": (2.8, "paper: 2.8× (LTR, chatbot)")}
# The papers' factors are FCFS / policy of latency (PARS: per-token latency; LTR: chatbot latency), not of TTFT.
PAPER_FACTOR_METRICS = ("normalized_latency_mean", "e2e_mean")


def _headroom_panel_name(distribution: str, gamma: float) -> str:
    return distribution if float(gamma) == 1.0 else f"{distribution}, L' = c·L^{float(gamma):g}"


def _headroom_panels(ratios: pd.DataFrame, metric: str) -> tuple[pd.DataFrame, list[tuple[str, float]], str]:
    t = ratios[(ratios["metric"] == metric) & ratios["label"].isin(HEADROOM_LABELS)]
    if t.empty:
        raise ValueError(f"headroom figure: no rows of metric {metric!r} (has {sorted(set(ratios['metric']))})")
    t = t.assign(ratio_ci_low=t["ci_low"], ratio_ci_high=t["ci_high"])
    panels = sorted(dict.fromkeys(zip(t["distribution"], t["gamma"].astype(float), strict=True)),
                    key=lambda p: (p[0] != "sharegpt", p[0], p[1]))  # ShareGPT first, its tails by γ
    prof = str(t["steptime"].iloc[0]) if "steptime" in t else "simulator"
    n = int(t["n_seeds"].max())
    note = f"mean and 95 % CI over {n} seeds" if n > 1 else "one seed, no interval"
    title = f"FCFS / policy, {LATENCY.get(metric, metric)}: simulator, {prof} ({note})"
    return t, panels, title


def _paper_lines(ax: plt.Axes, metric: str) -> None:
    """The papers' factors over FCFS (where the axis is the same latency ratio), 1 = no change, plain log labels."""
    if metric in PAPER_FACTOR_METRICS:
        for label, (factor, name) in PAPER_FACTORS.items():
            ax.axhline(factor, color=palette([label])[label], ls="--", lw=1, label=name)
    ax.axhline(1, color="grey", lw=0.8)
    ax.set_yscale("log")
    plain_log(ax, suffix="×")


PREEMPTION = {"e2e_mean": "mean E2E (s)", "preemptions": "preemptions per run",
              "recomputed_share": "recomputed share of scheduled tokens"}


def preemption_vs_kv(table: pd.DataFrame, title: str) -> plt.Figure:
    """The KV sweep (llmsched.experiments.preemption): latency, preemptions and recompute cost against the KV pool
    (fraction of the simulator profile's blocks, log x), a line per policy with its 95 % band over seeds.
    `table`: pars/<profile>/kv/summary.csv."""
    labels = _order(table["label"])
    fig, axes = plt.subplots(1, len(PREEMPTION), figsize=(4.2 * len(PREEMPTION), 3.6))
    for ax, (col, name) in zip(np.atleast_1d(axes), PREEMPTION.items(), strict=True):
        _lines_with_bands(ax, table, "kv_fraction", col, labels)
        ax.set_xscale("log")
        ax.set_xlabel("KV pool (fraction of the profile's blocks)")
        ax.set_ylabel(name)
        if col == "e2e_mean" and (table[col] > 0).all():
            ax.set_yscale("log")
            plain_log(ax)
        plain_log(ax, "x")
    np.atleast_1d(axes)[-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1, 1))
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def headroom_vs_load(ratios: pd.DataFrame, metric: str = "normalized_latency_mean") -> plt.Figure:
    """FCFS / policy vs load, a panel per output-length distribution (at its map's run length, the smallest n),
    a line per policy with its 95 % band over seeds, the papers' 15.7× and 2.8× as reference lines, log y.
    `ratios`: headroom/ratios.parquet."""
    t, panels, title = _headroom_panels(ratios, metric)
    labels = _order([x for x in HEADROOM_LABELS if x in set(t["label"])])
    fig, axes = plt.subplots(1, len(panels), figsize=(4.0 * len(panels), 3.8), squeeze=False, sharey=True)
    for ax, (dist, gamma) in zip(axes[0], panels, strict=True):
        part = t[(t["distribution"] == dist) & (t["gamma"].astype(float) == gamma)]
        n = int(part["n"].min())
        part = part[part["n"] == n]
        _lines_with_bands(ax, part, "load", "ratio", labels)
        _paper_lines(ax, metric)
        ax.set_xlabel("request rate / saturation throughput")
        ax.set_title(f"{_headroom_panel_name(dist, gamma)}\n{n:,} requests per run", fontsize=9)
    axes[0, 0].set_ylabel("FCFS / policy (×; > 1: policy lower)")
    axes[0, -1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1, 1))
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def headroom_vs_length(ratios: pd.DataFrame, metric: str = "normalized_latency_mean") -> plt.Figure:
    """FCFS / policy vs run length (requests per run, at the arrival rate of the shortest run) at the overload
    loads where the map ran several lengths: a panel per distribution and load, a line per policy with its 95 %
    band, the papers' factors as reference lines, log axes. `ratios`: headroom/ratios.parquet."""
    t, _, title = _headroom_panels(ratios, metric)
    several = t.groupby(["distribution", "gamma", "load"])["n"].transform("nunique") > 1
    t = t[several]
    if t.empty:
        raise ValueError("headroom_vs_length: no load ran more than one run length")
    panels = sorted(dict.fromkeys(zip(t["distribution"], t["gamma"].astype(float), t["load"].astype(float),
                                      strict=True)), key=lambda p: (p[0] != "sharegpt", p[0], p[1], p[2]))
    labels = _order([x for x in HEADROOM_LABELS if x in set(t["label"])])
    fig, axes = plt.subplots(1, len(panels), figsize=(4.0 * len(panels), 3.8), squeeze=False, sharey=True)
    for ax, (dist, gamma, load) in zip(axes[0], panels, strict=True):
        part = t[(t["distribution"] == dist) & (t["gamma"].astype(float) == gamma) & (t["load"] == load)]
        _lines_with_bands(ax, part, "n", "ratio", labels)
        _paper_lines(ax, metric)
        ax.set_xscale("log", base=2)
        ns = sorted(set(part["n"].astype(int)))
        ax.set_xticks(ns, [f"{x:,}" for x in ns])
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("requests per run (same arrival rate)")
        ax.set_title(f"{_headroom_panel_name(dist, gamma)}\nload {load:g}", fontsize=9)
    axes[0, 0].set_ylabel("FCFS / policy (×; > 1: policy lower)")
    axes[0, -1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1, 1))
    fig.suptitle(f"{title}\nrun length under overload", fontsize=10)
    fig.tight_layout()
    return fig
