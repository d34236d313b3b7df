"""The claims table: each claim of PAPERS.md, where this artifact checks it, the paper's number, ours, a verdict.

    rows = paper_claims(Report(params))

Every "ours" is computed from the report's results and every verdict by the rule stated beside it (the `rule`
column; the rules live in llmsched.analysis.verdicts, each with a unit test on a weak and a strong input), never
typed by hand. Each row names its operating point (the load or protocol the verdict is judged at, and why) and
the decisive number's 95 % interval (over simulator seeds, interleaved real-engine runs or training seeds).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from llmsched.analysis.intervals import Interval, fmt_interval, t_interval
from llmsched.analysis.verdicts import (
    REPRODUCED,
    STALE_PROFILE,
    TRANSFER_RULE,
    as_interval,
    best_row,
    convergence_verdict,
    engine_verdict,
    gain_verdict,
    low_load_informative,
    order_verdict,
    seed_ratios,
    throughput_testable,
    transfer_verdict,
)

if TYPE_CHECKING:
    from llmsched.experiments.report import Report


@dataclass
class Claim:
    claim: str
    source: str
    where: str
    paper: str
    ours: str
    verdict: str
    rule: str
    operating_point: str = "—"  # where the verdict is judged (load, protocol, data) and why there
    interval: str = "—"  # the decisive number with its 95 % interval and what the interval is over


def _fmt(x: float, digits: int = 3) -> str:
    return "n/a" if x is None or not math.isfinite(float(x)) else f"{float(x):.{digits}g}"


def _top_load(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[np.isclose(frame["load"], frame["load"].max())].set_index("label")


def _q(r: Report, method: str, target: str = "chatgpt", col: str = "kendall_tau") -> float:
    row = r.quality[(r.quality["method"] == method) & (r.quality["eval_lengths"] == target)]
    return float(row[col].iloc[0]) if len(row) else math.nan


BACKBONE_ORDER = ("encoder", "decoder", "encoder-decoder")  # BERT > OPT > T5


def backbone_verdict(table: pd.DataFrame) -> tuple[str, str]:
    """(verdict, rule) of "BERT > OPT > T5" from the backbone ablation (columns kind, kendall_tau): the full
    order of the best τ of each kind."""
    best = table.groupby("kind")["kendall_tau"].max()
    return order_verdict({str(k): float(v) for k, v in best.items()}, BACKBONE_ORDER)


def oracle_share(metric: pd.Series, label: str, base: str = "fcfs", oracle: str = "oracle-sjf") -> float:
    """The share of the oracle's reduction of `metric` (lower is better) vs `base` that policy `label` achieves:
    (base − label) / (base − oracle); NaN when a run is missing or the oracle gains nothing."""
    if any(k not in metric.index for k in (base, label, oracle)):
        return math.nan
    gain = metric[base] - metric[oracle]
    return float((metric[base] - metric[label]) / gain) if gain > 0 else math.nan


def methods_verdict(seeds: pd.DataFrame, pars_sampling: str, others: tuple[str, ...] = ("ltr", "pointwise"),
                    ) -> tuple[str, str, str]:
    """(verdict, ours, rule) of "PARS beats LTR and pointwise" from the methods-over-seeds table (columns method,
    pair_sampling, seeds, kendall_tau_mean, kendall_tau_sd)."""
    rule = ("over the seeds of the methods table: reproduced if PARS's mean τ exceeds each other method's by more "
            "than the sum of their standard deviations; not reproduced if another method's mean exceeds PARS's by "
            "that much; a tie within the seed spread otherwise; not decidable with one seed")
    t = seeds.copy()
    t["key"] = np.where(t["method"] == "pars", "pars-" + t["pair_sampling"].astype(str), t["method"])
    t = t.set_index("key")
    pars_key = f"pars-{pars_sampling}"
    if pars_key not in t.index or any(o not in t.index for o in others):
        return "not run here", "methods table lacks PARS or a baseline", rule
    row = t.loc[pars_key]
    ours = "; ".join(f"{k} τ {_fmt(t.loc[k, 'kendall_tau_mean'])} ± {_fmt(t.loc[k, 'kendall_tau_sd'], 2)}"
                     for k in (pars_key, *others)) + f" ({int(row['seeds'])} seeds, {row.get('path', '')})"
    if int(row["seeds"]) < 2:
        return "not decidable (one seed)", ours, rule
    margins = [(row["kendall_tau_mean"] - t.loc[o, "kendall_tau_mean"],
                row["kendall_tau_sd"] + t.loc[o, "kendall_tau_sd"]) for o in others]
    if all(d > spread for d, spread in margins):
        return "reproduced", ours, rule
    if any(-d > spread for d, spread in margins):
        return "not reproduced", ours, rule
    return "tie within the seed spread", ours, rule


def _ratio_at(per_seed: pd.DataFrame, num: str, den: str, col: str, load: float) -> Interval:
    """Ratio num/den of `col` at `load` with its interval over seeds (NaN where a label or the load is missing)."""
    t = seed_ratios(per_seed, num, den, col)
    row = t[np.isclose(t["load"], load)] if len(t) else t
    return as_interval(row.iloc[0]) if len(row) else (math.nan, math.nan, math.nan)


def _seeds(frame: pd.DataFrame) -> int:
    return int(frame["seed"].nunique()) if "seed" in frame.columns else 1


def _serve_ratio(r: Report, label: str, metric: str, ratios: pd.DataFrame | None = None) -> Interval:
    """FCFS / `label` of a real-engine metric with its paired interval over interleaved runs (ratios table of the
    serve stage); without that table, the point ratio of the summary and no interval."""
    t = r.serve_ratios if ratios is None else ratios
    if t is not None and len(t):
        row = t[(t["label"] == label) & (t["metric"] == metric)]
        if len(row):
            return float(row["ratio"].iloc[0]), float(row["ci_low"].iloc[0]), float(row["ci_high"].iloc[0])
    serve = r.serve if ratios is None else r.ewsjf_serve
    if label not in serve.index or "fcfs" not in serve.index:
        return math.nan, math.nan, math.nan
    return float(serve.loc["fcfs", metric] / serve.loc[label, metric]), math.nan, math.nan


def _pct(x: Interval) -> Interval:
    return 100 * x[0], 100 * x[1], 100 * x[2]


def _runs_note(r: Report) -> str:
    n = r.serve_repeats
    return f"{n} interleaved runs per policy, paired bootstrap" if n > 1 else "one run per policy: no interval"


def _combine(*verdicts: str) -> str:
    """The weakest of several verdicts on parts of one claim: reproduced only if every part is."""
    return REPRODUCED if all(v == REPRODUCED for v in verdicts) else next(v for v in verdicts if v != REPRODUCED)


def _waited(point: dict, label: str = "fcfs") -> float:
    """The share of `label`'s requests that waited in a real-engine comparison (mean over runs; NaN if absent)."""
    a = point.get("achieved")
    if a is None or label not in a.index or "waited_share" not in a.columns:
        return math.nan
    return float(a.loc[label, "waited_share"])


def paper_claims(r: Report) -> list[Claim]:
    """Every claim of PAPERS.md checked against the report's results (module docstring)."""
    out: list[Claim] = []
    sim = r.pars_sim
    sim_s, proxy_s = r.pars_sim_seeds, r.proxy_seeds
    prof = r.p["pars_sim_steptime"]
    top = float(sim["load"].max())
    n_seeds = _seeds(sim_s)
    point = r.point_text(r.serve_point)

    # --- PARS
    real = _serve_ratio(r, "pars", "normalized_latency_mean")
    simr = _ratio_at(sim_s, "fcfs", "pars", "normalized_latency_mean", top)
    v_real, rule = gain_verdict(real)
    v_real, engine_rule = engine_verdict(v_real, r.serve_point.get("profile_state"), _waited(r.serve_point))
    v_sim, _ = gain_verdict(simr)
    captured = oracle_share(r.serve["normalized_latency_mean"], "pars")
    ms = r.ranker_ms.set_index("ranker")["ms_per_request"].get("pars", math.nan)
    cost = r.costs.set_index("policy")["us_per_admission"]
    e2e_s = float(r.serve.loc["fcfs", "e2e_mean"]) if "fcfs" in r.serve.index else math.nan
    overhead = ms / 1000 / e2e_s if e2e_s > 0 else math.nan
    minimal = bool(overhead < 0.01)
    latency = _combine(v_real, v_sim)
    out.append(Claim(
        "PARS: lower latency than FCFS with minimal overhead", "PARS [paper]",
        "fig pars_serve, pars_sim_latency_vs_rate, overheads; tables pars_serve, pars_serve_ratios, pars_sim, "
        "overheads_*", "lower latency (no single number)",
        f"normalized latency FCFS/PARS: real engine {fmt_interval(real)}, simulator {fmt_interval(simr)}; "
        f"PARS captures {_fmt(100 * captured, 2)}% of oracle SJF's reduction on the real engine; overhead: scoring "
        f"{_fmt(ms)} ms/request before the engine = {_fmt(100 * overhead, 2)}% of FCFS's mean E2E, policy "
        f"{_fmt(cost.get('pars (guard 1000)', math.nan))} µs/admission",
        (latency if latency != REPRODUCED else (REPRODUCED if minimal else "partly: lower latency, overhead "
                                                "≥ 1% of mean E2E")),
        f"{rule}; both the real engine's and the simulator's interval must show it; the real engine's {engine_rule}; "
        "overhead minimal if ranker scoring costs < 1% of FCFS's mean E2E",
        f"real engine {r.p['model']}: {point}; simulator {prof} at load {top:g} (overload, the paper's regime)",
        f"real engine: {_runs_note(r)}; simulator: t-interval over {n_seeds} seeds"))

    best = None
    for name, frame in (("ShareGPT", sim_s), ("reasoning proxy", proxy_s)):
        for label in ("pars", "pars-noguard"):
            t = seed_ratios(frame, "fcfs", label, "normalized_latency_mean")
            row = best_row(t, t["load"] > 1) if len(t) else None
            if row is not None and (best is None or row["ratio"] > best[0]["ratio"]):
                best = (row, f"{label} on {name} at load {row['load']:g}")
    room = _headroom_best(r.headroom, ("pars", "pars-noguard"), "normalized_latency_mean")
    if room is not None and (best is None or room[0]["ratio"] > best[0]["ratio"]):
        best = room
    oracle = _headroom_best(r.headroom, ("oracle-sjf",), "normalized_latency_mean")
    interval = as_interval(best[0]) if best else (math.nan, math.nan, math.nan)
    verdict, rule = gain_verdict(interval, 15.7)
    out.append(Claim(
        "PARS: up to 15.7× lower (per-token) latency than vLLM's default scheduler under overload",
        "PARS v3 [paper], per-token under overload [3rd]",
        "fig pars_sim_latency_vs_rate, pars_proxy_latency_vs_rate, pars_headroom_vs_load, pars_headroom_vs_length; "
        "tables pars_sim, pars_sim_proxy, pars_headroom",
        "15.7×", (f"best over overloaded loads, tails, the reasoning proxy and run lengths: {best[1]}: "
                  f"{fmt_interval(interval)}" if best else "no overloaded load ran")
        + (f"; oracle SJF's best: {fmt_interval(as_interval(oracle[0]))} ({oracle[1]})" if oracle else ""),
        verdict, rule,
        f"simulator {prof}: overloaded loads (the claim is about overload), heavier-tailed lengths and longer runs "
        "(under sustained overload FCFS's latency grows with the run's length, so the ratio is no property of the "
        "policy alone)", f"t-interval over {n_seeds} seeds"))

    tau_p, tau_base = _q(r, "pars"), _q(r, "prompt-length")
    out.append(Claim(
        "PARS: Kendall τ 0.09 → 0.50 over a baseline ranker (LMSYS, DeepSeek-R1 lengths)", "PARS [3rd]",
        "fig pars_ranker_quality; table ranker_quality",
        "τ 0.50 (baseline 0.09)", f"ShareGPT/ChatGPT lengths: PARS τ {_fmt(tau_p)}, prompt-length baseline "
        f"{_fmt(tau_base)} (other dataset and model)",
        "reproduced" if tau_p >= 0.45 else ("partly" if tau_p > tau_base else "not reproduced"),
        "reproduced if τ ≥ 0.45; partly if above the baseline only",
        f"held-out ShareGPT prompts ({int(_q(r, 'pars', col='n')) if math.isfinite(_q(r, 'pars', col='n')) else '?'}"
        "), ChatGPT lengths: the only offline data with a chat model's lengths at this scale",
        "seed spread in the methods row below"))
    tau_l, tau_pw = _q(r, "ltr"), _q(r, "pointwise")
    verdict, seeds_ours, rule = methods_verdict(r.methods_seeds, str(r.p.get("pars_train", {}).get(
        "pair_sampling", "partners")))
    out.append(Claim(
        "PARS beats pointwise (regression) and listwise (LTR) rankers", "PARS [paper/3rd]",
        "fig pars_ranker_quality; tables ranker_quality, ranker_methods_seeds",
        "PARS > LTR, pointwise", f"main rankers τ PARS {_fmt(tau_p)}, LTR {_fmt(tau_l)}, pointwise {_fmt(tau_pw)}; "
        f"over seeds: {seeds_ours}", verdict, rule,
        "the same prompts, backbone and head for every method (ablation settings)",
        "mean ± sd over training seeds"))
    tr = r.transfer_t[r.transfer_t["method"] == "pars"].set_index(["train_lengths", "eval_lengths"])
    target = str(r.p["model"])
    cross = tr["kendall_tau"].get(("chatgpt", target), math.nan)
    own = tr["kendall_tau"].get((target, target), math.nan)
    ceil = r.transfer_t[r.transfer_t["method"] != "pars"]["kendall_tau"]
    out.append(Claim(
        "PARS generalises across models (ranker trained on one model's lengths schedules another)",
        "PARS [paper]", "fig pars_transfer; table ranker_transfer", "transfer works (no single number)",
        f"on {target} lengths: trained on ChatGPT τ {_fmt(cross)}, trained on {target} τ {_fmt(own)}; "
        f"ceiling (the other model's true lengths) τ {_fmt(ceil.max())}",
        transfer_verdict(cross, own), TRANSFER_RULE,
        f"{target}'s test prompts (its own sampled lengths)", "one training seed: no interval"))

    top_row = sim[np.isclose(sim["load"], top)].set_index("label")
    thr = _ratio_at(sim_s, "pars", "fcfs", "request_throughput", top)
    testable = "fcfs" in top_row.index and throughput_testable(top_row.loc["fcfs"])
    verdict, rule = gain_verdict(thr, 2.87 / 2.57)
    out.append(Claim(
        "PARS: throughput 2.57 → 2.87 req/s", "PARS [3rd]", "table pars_sim (request_throughput)",
        "+12%", f"PARS/FCFS request throughput at load {top:g}: {fmt_interval(thr)}",
        verdict if testable else "not testable in this setting",
        f"{rule}; testable only where FCFS falls behind the offered rate (< 90% of it): in an open-loop run whose "
        "requests are all served as they arrive, the arrivals set the throughput",
        f"simulator {prof}, load {top:g}", f"t-interval over {n_seeds} seeds"))
    bb = r.backbones.sort_values("kendall_tau", ascending=False)
    ours = "; ".join(f"{x.backbone} ({x.kind}, {x.parameters_m:.3g} M) τ {_fmt(x.kendall_tau)}"
                     for x in bb.itertuples())
    verdict, rule = backbone_verdict(bb)
    out.append(Claim(
        "PARS backbone ablation: BERT > OPT > T5", "PARS [3rd]", "fig pars_backbones; table ranker_ablation_backbone",
        "encoder > decoder > encoder-decoder", ours, verdict, rule,
        "the same head, loss, pooling and prompts on every backbone", "one training seed: no interval"))

    # LTR as its authors ran it (its scheduler: llmsched.policies.ltr) where the sweep has it, else LTR's ranker
    # through PARS's admission queue
    ltr_label = "ltr-released" if "ltr-released" in set(sim_s["label"]) else "ltr"
    ltr_best = seed_ratios(sim_s, "fcfs", ltr_label, "e2e_mean")
    row = best_row(ltr_best, ltr_best["load"] >= 1) if len(ltr_best) else None
    interval = as_interval(row) if row is not None else (math.nan, math.nan, math.nan)
    room = _headroom_best(r.headroom, ("ltr",), "e2e_mean")
    where = f"ShareGPT at load {row['load']:g}" if row is not None else ""
    if room is not None and room[0]["ratio"] > interval[0]:
        interval, where = as_interval(room[0]), room[1]
    verdict, rule = gain_verdict(interval, 2.8)
    out.append(Claim(
        "LTR: 2.8× lower chatbot latency than FCFS", "LTR baseline [paper]", "tables pars_sim, pars_headroom",
        "2.8×", f"mean E2E FCFS/{ltr_label}, best at loads ≥ 1 (sweep; headroom map: the ltr ranker): "
        f"{fmt_interval(interval)} ({where})", verdict, rule,
        f"simulator {prof}, loads ≥ 1 × saturation (LTR's chatbot runs are near or above saturation)",
        f"t-interval over {n_seeds} seeds"))
    out.append(Claim(
        "LTR: τ ≈ 0.55 on ShareGPT (OPT-350M, Llama-3-70B lengths)", "LTR baseline [paper]",
        "table ranker_quality", "0.55", f"LTR τ {_fmt(tau_l)} (ChatGPT lengths)",
        "reproduced" if tau_l >= 0.5 else "not reproduced", "reproduced if ≥ 0.50",
        "held-out ShareGPT prompts, ChatGPT lengths", "seed spread in ranker_methods_seeds"))
    lo_load = float(sim["load"].min())
    informative, share = low_load_informative(sim)
    hi_int = _ratio_at(sim_s, "fcfs", "ltr", "normalized_latency_mean", top)
    lo_int = _ratio_at(sim_s, "fcfs", "ltr", "normalized_latency_mean", lo_load)
    v_hi, _ = gain_verdict(hi_int)
    no_gain_low = not (math.isfinite(lo_int[1]) and lo_int[1] > 1.1) and not (lo_int[0] > 1.1)
    if v_hi != REPRODUCED:
        verdict = f"not reproduced: above saturation {v_hi}"
    elif not informative:
        verdict = "partly: the gain above saturation holds; the low-load half is not informative here"
    else:
        verdict = REPRODUCED if no_gain_low else "not reproduced: a gain at low load too"
    out.append(Claim(
        "LTR: gains appear only near or above saturation", "LTR baseline [paper]",
        "fig pars_sim_latency_vs_rate", "no gain at low load",
        f"FCFS/LTR normalized latency at load {lo_load:g}: {fmt_interval(lo_int)}, at {top:g}: "
        f"{fmt_interval(hi_int)}; FCFS's requests wait {_fmt(100 * share, 2)}% of their E2E at load {lo_load:g}",
        verdict, "the top load's interval must show a gain (lower end > 1); the low load is judged only if FCFS's "
        "requests queue there (mean queue delay ≥ 5% of E2E): then no gain means a ratio below 1.1; with no "
        "queue every policy admits every request at once, so 'no gain' holds by construction",
        f"simulator {prof}, loads {lo_load:g} and {top:g}", f"t-interval over {n_seeds} seeds"))

    # --- EWSJF
    ew, ew_s = r.ewsjf_sim, r.ewsjf_sim_seeds
    ew_seeds = _seeds(ew_s)
    ew_prof = r.p["ewsjf_sim_steptime"]
    prot = r.protocol_gains
    gains = []
    for preset, g in ew_s.groupby("preset", sort=False):
        t = seed_ratios(g, "ewsjf", "fcfs", "total_token_throughput")
        row = best_row(t)
        top_fcfs = ew[(ew["preset"] == preset) & np.isclose(ew["load"], ew["load"].max()) & (ew["label"] == "fcfs")]
        if row is not None:
            gains.append((preset, row, bool(len(top_fcfs)) and throughput_testable(top_fcfs.iloc[0])))
    sweep_txt = "; ".join(f"{p}: best {fmt_interval(as_interval(row))}× at load {row['load']:g}"
                          + ("" if ok else " (not testable: every request served as it arrives)")
                          for p, row, ok in gains)
    cond = _best_protocol_gain(prot, "ewsjf")
    if cond is not None:
        interval = (1 + cond["mean"] / 100, 1 + cond["ci_low"] / 100, 1 + cond["ci_high"] / 100)
        verdict, rule = gain_verdict(interval, 1.30)
        where, op = (f"; authors' protocol and constraint sweeps: best {fmt_interval(interval)}× ({cond['where']})",
                     "the authors' benchmark protocol (constant arrivals, 100-token outputs, budget 2,048, 128 "
                     "seqs) and sweeps of KV capacity, token budget and chunked prefill: where admission order can "
                     "move throughput")
    else:
        testable_rows = [(p, row) for p, row, ok in gains if ok]
        pick = max(testable_rows, key=lambda x: x[1]["ratio"]) if testable_rows else None
        interval = as_interval(pick[1]) if pick else (math.nan, math.nan, math.nan)
        verdict, rule = gain_verdict(interval, 1.30)
        verdict = verdict if pick else "not testable in this setting"
        where, op = "", f"simulator {ew_prof}, open-loop Poisson sweeps"
    eng = r.protocol_engine
    if eng is not None and {"ewsjf", "fcfs"} <= set(eng.index):
        def _tput(label: str) -> str:
            row = eng.loc[label]
            return fmt_interval((float(row["token_throughput"]), float(row.get("token_throughput_ci_low", math.nan)),
                                 float(row.get("token_throughput_ci_high", math.nan))))
        where += (f"; the protocol on the real engine ({int(eng['n_runs'].max())} runs per policy): EWSJF "
                  f"{_tput('ewsjf')} vs FCFS {_tput('fcfs')} output tok/s (measured, not judged: one small engine)")
    out.append(Claim(
        "EWSJF: > 30% higher end-to-end token throughput than FCFS", "EWSJF [paper]",
        "fig ewsjf_sweep, ewsjf_protocol, ewsjf_constraints; tables ewsjf_sim, ewsjf_protocol_gains",
        "> +30%", f"EWSJF/FCFS token throughput, sweeps: {sweep_txt}{where}", verdict,
        f"{rule} (+30% − 10%); open-loop runs count only where FCFS falls behind the offered rate",
        op, f"t-interval over seeds (sweeps: {ew_seeds})"))

    stable = []
    for preset, g in ew_s.groupby("preset", sort=False):
        t = seed_ratios(g, "fcfs", "ewsjf", "ttft_short_mean")
        row = best_row(t, t["load"] <= 1.0) if len(t) else None
        if row is not None:
            sjf = _ratio_at(g, "fcfs", "prompt-sjf", "ttft_short_mean", float(row["load"]))
            stable.append((preset, row, sjf))
    short_best = max(stable, key=lambda x: x[1]["ratio"]) if stable else None
    interval = as_interval(short_best[1]) if short_best else (math.nan, math.nan, math.nan)
    verdict, rule = gain_verdict(interval, 4.0)
    ours = "; ".join(f"{p}: EWSJF {fmt_interval(as_interval(row))}× at load {row['load']:g}, prompt-length SJF "
                     f"{fmt_interval(sjf)}×" for p, row, sjf in stable)
    short = _best_protocol_gain(prot, "ewsjf", metric="ttft_short_speedup", conditions=("benchmark",))
    if short is not None:
        ours += f"; authors' protocol: {fmt_interval((short['mean'], short['ci_low'], short['ci_high']))}× " \
                f"({short['where']})"
    srv = _serve_ratio(r, "ewsjf", "ttft_short_mean", r.ewsjf_serve_ratios)
    srv_v, _ = engine_verdict("judged", r.ewsjf_point.get("profile_state"), _waited(r.ewsjf_point))
    srv_text = (f"real engine {fmt_interval(srv)}× ({r.point_text(r.ewsjf_point)})" if srv_v == "judged"
                else f"real engine {srv_v}")
    out.append(Claim(
        "EWSJF: up to 4× lower mean TTFT of short requests", "EWSJF [paper]",
        "fig ewsjf_sweep, ewsjf_serve, ewsjf_protocol; tables ewsjf_sim, ewsjf_serve, ewsjf_protocol_gains",
        "up to 4×", f"{ours}; {srv_text}", verdict,
        f"{rule}; judged at stable loads only (≤ 1× saturation): under overload FCFS's queue grows without bound "
        "and any short-first policy passes by hundreds of times; prompt-length SJF shown beside it",
        f"simulator {ew_prof}, the best stable load; and the authors' protocol", f"t-interval over {ew_seeds} seeds"))

    utils = []
    for preset, g in ew_s.groupby("preset", sort=False):
        at = g[np.isclose(g["load"], g["load"].max())]
        a = t_interval(at[at["label"] == "fcfs"]["utilisation"].to_numpy(float))
        b = t_interval(at[at["label"] == "ewsjf"]["utilisation"].to_numpy(float))
        utils.append((preset, a, b))
    ok = any(b[0] - a[0] >= 0.10 and (not math.isfinite(b[1]) or b[1] > a[2]) for _, a, b in utils)
    out.append(Claim(
        "EWSJF: GPU utilisation ~65% → ~80%", "EWSJF [code PR]", "fig ewsjf_sweep; table ewsjf_sim",
        "65% → 80%", "share of the step token budget used (not GPU utilisation, which the simulator does not "
        "model): " + "; ".join(f"{p}: FCFS {fmt_interval(_pct(a), 2)}% → EWSJF {fmt_interval(_pct(b), 2)}%"
                               for p, a, b in utils),
        "reproduced" if ok else "not reproduced",
        "reproduced if EWSJF's mean share is ≥ 10 points higher and the two intervals do not overlap",
        f"simulator {ew_prof}, top load {ew['load'].max():g}", f"t-interval over {ew_seeds} seeds"))

    rel = []
    for preset, g in ew_s.groupby("preset", sort=False):
        row = best_row(seed_ratios(g, "ewsjf-released", "fcfs", "total_token_throughput"))
        if row is not None:
            rel.append((preset, row))
    cond = _best_protocol_gain(prot, "ewsjf-released")
    pick_int = ((1 + cond["mean"] / 100, 1 + cond["ci_low"] / 100, 1 + cond["ci_high"] / 100) if cond is not None
                else (as_interval(max(rel, key=lambda x: x[1]["ratio"])[1]) if rel else (math.nan,) * 3))
    verdict, rule = gain_verdict(pick_int, 1.30)
    out.append(Claim(
        "EWSJF (released code): token throughput +30% to +54% (Llama-2-13B, A100)", "EWSJF [code PR]",
        "table ewsjf_sim (ewsjf-released), ewsjf_protocol_gains", "+30% to +54%",
        "; ".join(f"{p}: best {fmt_interval(as_interval(row))}×" for p, row in rel)
        + (f"; authors' protocol and sweeps: {fmt_interval(pick_int)}× ({cond['where']})" if cond is not None
           else ""), verdict, rule,
        "the authors' protocol where it ran, else the open-loop sweeps", "t-interval over seeds"))

    values = r.trials.sort_values("trial")["value"].to_numpy(float)
    noise = (r.tune_noise[r.tune_noise["params"] == "defaults"]["value"].std(ddof=1)
             if r.tune_noise is not None and len(r.tune_noise) else math.nan)
    verdict, reach, rule = convergence_verdict(values, float(noise))
    held = _held_out_gain(r.tune_noise)
    out.append(Claim(
        "EWSJF meta-optimisation converges in 5–8 trials", "EWSJF [paper]",
        "fig ewsjf_convergence; tables ewsjf_tuning, ewsjf_tuning_noise", "5–8 trials",
        f"R {_fmt(values[0])} (defaults, trial 1) → {_fmt(np.nanmax(values))} over {len(values)} trials; 95% of "
        f"the gain by trial {reach}; re-evaluation noise sd {_fmt(noise)}; tuned − defaults on unseen draws "
        f"{fmt_interval(held)}", verdict, rule,
        f"the tuning workload (100-2000 mix at {r.p['ewsjf_tune_load']} × saturation, its own draw)",
        "noise: sd of R over further tuning draws; held-out gain: t-interval over them"))

    # --- neither paper
    h = r.h2h[np.isclose(r.h2h["load"], r.h2h["load"].max())]
    best_h = {w: g.drop(g.index[g["label"] == "oracle-sjf"]).sort_values("normalized_latency_mean").iloc[0]
              for w, g in h.groupby("workload", sort=False)}
    has_ci = "normalized_latency_mean_ci_low" in h.columns
    out.append(Claim(
        "Head to head (neither paper): best non-oracle policy per workload at the top load",
        "this artifact", "fig headtohead; table headtohead", "—",
        "; ".join(f"{w}: {b['label']}" + (f" ({fmt_interval((b['normalized_latency_mean'], b['normalized_latency_mean_ci_low'], b['normalized_latency_mean_ci_high']))} s/token)" if has_ci else "")  # noqa: E501
                  for w, b in best_h.items()), "measured", "lowest mean normalized latency",
        f"simulator, load {r.h2h['load'].max():g}",
        f"t-interval over {_seeds(r.h2h_seeds)} seeds" if has_ci else "one seed: no interval"))
    checks = ("profile_check_err", "serve_probe_step_err")  # the profile against the speed probe, not sim vs real
    errs = r.agreement_t[[c for c in r.agreement_t if c.endswith("_err") and c not in checks]].abs()
    probe = r.agreement_t[[c for c in checks if c in r.agreement_t]].abs()
    meta = r.agreement_meta
    stale = meta.get("profile_state") == "stale"
    out.append(Claim(
        "Simulator vs real engine (neither paper): same policy code, same workload", "this artifact",
        "fig sim_vs_engine; table sim_vs_engine", "—",
        "mean |relative error|: " + ", ".join(f"{c[:-4]} {_fmt(100 * errs[c].mean(), 2)}%" for c in errs)
        + "".join(f"; profile vs {'the check probe' if c == checks[0] else 'the serve runs’ probes'} "
                  f"{_fmt(100 * probe[c].mean(), 2)}%" for c in probe),
        STALE_PROFILE if stale else "measured",
        "(sim − real) / real per policy; not judged when the simulator's step-time profile missed the engine's "
        "speed probe and was kept (serving_on_mismatch: warn)",
        f"the serve stage's runs, simulated with {meta.get('profile')}"
        + (f" measured {meta['measured_at']}" if meta.get("measured_at") else "")
        + (" (calibrated on this machine after the runs)" if meta.get("measured_after_the_runs") else ""),
        "per policy and run"))
    return out


def _best_protocol_gain(gains: pd.DataFrame | None, label: str, metric: str = "throughput_gain_pct",
                        conditions: tuple[str, ...] | None = None) -> dict | None:
    """The condition of the EWSJF protocol/constraint tables (columns stage, label, metric, mean, ci_low,
    ci_high, and the condition's columns) with the best mean of `metric` for `label`, and a text naming it."""
    if gains is None or not len(gains):
        return None
    t = gains[(gains["label"] == label) & (gains["metric"] == metric)]
    if conditions is not None and "stage" in t.columns:
        t = t[t["stage"].isin(conditions)]
    t = t[np.isfinite(t["mean"])]
    if t.empty:
        return None
    row = t.loc[t["mean"].idxmax()]
    skip = {"label", "metric", "mean", "ci_low", "ci_high", "n_seeds"}
    where = ", ".join(f"{k} {row[k]}" for k in t.columns if k not in skip and pd.notna(row[k]))
    return {"mean": float(row["mean"]), "ci_low": float(row["ci_low"]), "ci_high": float(row["ci_high"]),
            "where": where}


def _held_out_gain(noise: pd.DataFrame | None) -> Interval:
    """Tuned − default objective per unseen tuning draw, with a t-interval over the draws."""
    if noise is None or not len(noise):
        return math.nan, math.nan, math.nan
    x = noise.pivot_table(index="seed", columns="params", values="value")
    if not {"defaults", "tuned"} <= set(x.columns):
        return math.nan, math.nan, math.nan
    return t_interval((x["tuned"] - x["defaults"]).to_numpy(float))


def _headroom_best(ratios: pd.DataFrame | None, labels: tuple[str, ...], metric: str,
                   ) -> tuple[pd.Series, str] | None:
    """The headroom map's row (columns distribution, gamma, n, load, label, metric, ratio, ci_low, ci_high) with
    the highest ratio among `labels` at loads ≥ 1, and a text naming where it is."""
    if ratios is None or not len(ratios):
        return None
    t = ratios[ratios["label"].isin(labels) & (ratios["metric"] == metric) & (ratios["load"] >= 1)]
    row = best_row(t)
    if row is None:
        return None
    return row, (f"{row['label']} on {row['distribution']} (γ {row['gamma']:g}), {int(row['n'])} requests, "
                 f"load {row['load']:g}")
