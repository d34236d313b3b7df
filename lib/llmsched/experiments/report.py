"""Notebook 06: every figure, every table and the claims table of a profile, read from results/.

    report = Report(params)            # checks every input first: MissingInputError names the notebook to run
    report.figures(); report.tables(); report.claims(); report.update_readme()

Nothing here runs an experiment. Figures go to results/figures/<profile>/ (PNG and PDF), tables to
results/tables/<profile>/ (CSV and Markdown); `written` lists every file written. The results of notebook 04's
reasoning stage (PARS on a reasoning model's measured lengths; profiles that set `pars_reasoning_model`) are
optional: where they exist, a figure and a table show them. The claims table
(llmsched.analysis.claims) states, for each claim of PAPERS.md, where it is checked, the paper's number, ours and
a verdict computed by the rule in its `rule` column, never typed by hand.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from llmsched.analysis.tables import to_markdown
from llmsched.paths import REPO_ROOT, results_dir
from llmsched.pipeline import require

NB = {1: "notebooks/01_collect_lengths.ipynb", 2: "notebooks/02_train_rankers.ipynb",
      3: "notebooks/03_partition_workloads.ipynb", 4: "notebooks/04_serving_experiments.ipynb",
      5: "notebooks/05_meta_optimisation.ipynb"}
README_BEGIN, README_END = "<!-- claims:begin -->", "<!-- claims:end -->"
# What each figure ran on, named in its title's last line (Report.context): the serving model's lengths or real
# engine, the PARS or EWSJF simulator profile, both, or only the profile.
FIGURE_CONTEXT = {
    "pars_lengths": "model", "pars_ranker_quality": "lengths", "pars_ablations": "lengths",
    "pars_backbones": "lengths", "pars_transfer": "lengths",
    "pars_sim_latency_vs_rate": "pars_sim", "pars_sim_throughput": "pars_sim", "pars_sim_cdf": "pars_sim",
    "pars_proxy_latency_vs_rate": "pars_sim", "pars_headroom_vs_load": "pars_sim",
    "pars_headroom_vs_length": "pars_sim",
    "preemption_vs_kv": "pars_sim", "headtohead": "pars_sim", "pars_reasoning_latency_vs_rate": "pars_sim",
    "pars_serve": "model", "pars_serve_ratios": "model", "pars_serve_cdf": "model", "preemption_serve_ratios": "model",
    "ewsjf_serve": "model", "ewsjf_serve_ratios": "model", "sim_vs_engine": "agreement",
    "ewsjf_sweep": "ewsjf_sim", "ewsjf_ablation": "ewsjf_sim", "ewsjf_convergence": "ewsjf_sim",
    "ewsjf_protocol": "protocol", "ewsjf_constraints": "constraints", "ewsjf_partitions": "profile",
    "overheads": "profile",
}


class Report:
    """The results of one profile, loaded once; see the module docstring."""

    def __init__(self, params: dict[str, Any], root: str | Path | None = None) -> None:
        self.p = params
        self.profile = str(params["profile"])
        self.root = Path(root) if root is not None else results_dir()
        self.fig_dir = self.root / "figures" / self.profile
        self.tab_dir = self.root / "tables" / self.profile
        self.written: list[Path] = []
        self._claims: pd.DataFrame | None = None
        self._load()

    # ------------------------------------------------------------------ inputs
    def _need(self, rel: str, nb: int) -> Path:
        return require(self.root / rel.format(p=self.profile), NB[nb], self.profile)

    def _load(self) -> None:
        """Read every input, failing on the first missing one with the notebook that writes it."""
        pq = pd.read_parquet
        pars, ew, h2h = "pars/{p}", "ewsjf/{p}", "headtohead/{p}"
        self.lengths = pq(self._need(f"{pars}/lengths.parquet", 1))
        rk = f"{pars}/rankers"
        self.quality = pq(self._need(f"{rk}/quality.parquet", 2))
        self.transfer_t = pq(self._need(f"{rk}/transfer.parquet", 2))
        self.delta = pq(self._need(f"{rk}/ablation_delta.parquet", 2))
        self.margin = pq(self._need(f"{rk}/ablation_margin.parquet", 2))
        self.methods_ablation = pq(self._need(f"{rk}/methods_ablation_settings.parquet", 2))
        self.methods_seeds = pq(self._need(f"{rk}/methods_seeds.parquet", 2))
        self.noise = pq(self._need(f"{rk}/noise.parquet", 2))
        truncation = self.root / rk.format(p=self.profile) / "ablation_truncation.parquet"
        self.truncation = pq(truncation) if truncation.exists() else None  # only with pars_truncations
        self.backbones = pq(self._need(f"{rk}/ablation_backbone.parquet", 2))
        self.queues = pq(self._need(f"{ew}/partitions/queues.parquet", 3))
        self.partition_lengths = pq(self._need(f"{ew}/partitions/lengths.parquet", 3))
        self.pars_sim = pq(self._need(f"{pars}/sim/summary.parquet", 4))
        self.pars_sim_req = pq(self._need(f"{pars}/sim/requests.parquet", 4))
        self.proxy = pq(self._need(f"{pars}/sim_proxy/summary.parquet", 4))
        self.headroom = pq(self._need(f"{pars}/headroom/ratios.parquet", 4))
        kv = self.root / pars.format(p=self.profile) / "kv" / "summary.csv"
        self.kv = pd.read_csv(kv) if kv.exists() else None  # only with pars_kv_fractions
        self.serve_kv = self._optional_csv(f"{pars}/serve_kv/summary.csv")  # only with pars_kv_serving_blocks
        self.serve_kv_ratios = self._optional(f"{pars}/serve_kv/ratios.parquet")
        self.serve_own = self._optional_csv(f"{pars}/serve_own/summary.csv")  # only with pars_serving_own
        self.serve_own_ratios = self._optional(f"{pars}/serve_own/ratios.parquet")
        reasoning = self.root / pars.format(p=self.profile) / "reasoning" / "summary.parquet"
        self.reasoning = pq(reasoning) if reasoning.exists() else None  # only with pars_reasoning_model
        self.serve_dir = self._need(f"{pars}/serve", 4)
        self.serve = pd.read_csv(self._need(f"{pars}/serve/summary.csv", 4), index_col=0)
        self.agreement_t = pd.read_csv(self._need(f"{pars}/agreement/comparison.csv", 4))
        self.agreement_meta = json.loads(self._need(f"{pars}/agreement/agreement.json", 4).read_text())
        self.ewsjf_serve_dir = self._need(f"{ew}/serve", 4)
        self.ewsjf_serve = pd.read_csv(self._need(f"{ew}/serve/summary.csv", 4), index_col=0)
        self.h2h = pd.concat([pq(self._need(f"{h2h}/{w}/summary.parquet", 4)).assign(workload=w)
                              for w in ("sharegpt", "mixed")], ignore_index=True)
        self.costs = pq(self._need("overheads/{p}/policy_cost.parquet", 4))
        self.ranker_ms = self._ranker_ms(self._need(f"{pars}/scored", 4))
        self.trials = pq(self._need(f"{ew}/tune/trials.parquet", 5))
        self.best = json.loads(self._need(f"{ew}/tune/best.json", 5).read_text())
        self.online = pq(self._need(f"{ew}/online/trials.parquet", 5))
        self.online_summary = pq(self._need(f"{ew}/online/summary.parquet", 5))
        self.ewsjf_sim = pd.concat([pq(self._need(f"{ew}/sim/{preset}/summary.parquet", 5))
                                    for preset in self.p["ewsjf_presets"]], ignore_index=True)
        # repetitions and intervals (older results without them: one seed / one run, no interval)
        self.pars_sim_seeds = self._per_seed(f"{pars}/sim/per_seed.parquet", self.pars_sim)
        self.proxy_seeds = self._per_seed(f"{pars}/sim_proxy/per_seed.parquet", self.proxy)
        self.ewsjf_sim_seeds = pd.concat(
            [self._per_seed(f"{ew}/sim/{preset}/per_seed.parquet", self.ewsjf_sim[self.ewsjf_sim["preset"] == preset])
             .assign(preset=preset) for preset in self.p["ewsjf_presets"]], ignore_index=True)
        self.h2h_seeds = pd.concat([self._per_seed(f"{h2h}/{w}/per_seed.parquet", self.h2h[self.h2h["workload"] == w])
                                    .assign(workload=w) for w in ("sharegpt", "mixed")], ignore_index=True)
        self.serve_ratios: pd.DataFrame | None = pq(self._need(f"{pars}/serve/ratios.parquet", 4))
        self.ewsjf_serve_ratios: pd.DataFrame | None = pq(self._need(f"{ew}/serve/ratios.parquet", 4))
        self.serve_repeats = int(self.serve["n_runs"].max()) if "n_runs" in self.serve else 1
        self.tune_noise = self._optional(f"{ew}/tune/noise.parquet")
        self.protocol = {stage: {t: pq(self._need(f"{ew}/protocol/{stage}/{t}.parquet", 5))
                                 for t in ("summary", "gains")} for stage in ("benchmark", "sweeps")}
        self.protocol_gains: pd.DataFrame | None = pd.concat(
            [v["gains"].assign(stage=stage) for stage, v in self.protocol.items()], ignore_index=True)
        self.serve_runs = self._runs(self.serve_dir)
        self.ewsjf_runs = self._runs(self.ewsjf_serve_dir)
        # the operating point each real-engine comparison asked for (load × capacity) and what its runs achieved
        self.serve_point = self._point(self.serve_dir)
        self.ewsjf_point = self._point(self.ewsjf_serve_dir)
        # the protocol on the real engine (ewsjf_protocol_engine_n > 0): optional
        self.protocol_engine = self._optional_csv(f"{ew}/protocol/engine/summary.csv")
        self.protocol_engine_ratios = self._optional(f"{ew}/protocol/engine/ratios.parquet")

    def _optional(self, rel: str) -> pd.DataFrame | None:
        """A table that only newer or larger runs write (paired ratios, re-evaluations), else None."""
        path = self.root / rel.format(p=self.profile)
        return pd.read_parquet(path) if path.exists() else None

    def _optional_csv(self, rel: str) -> pd.DataFrame | None:
        path = self.root / rel.format(p=self.profile)
        return pd.read_csv(path, index_col=0) if path.exists() else None

    def _per_seed(self, rel: str, summary: pd.DataFrame) -> pd.DataFrame:
        """A sweep's per-seed rows; a single-seed sweep's summary stands in for them (no interval then)."""
        t = self._optional(rel)
        return summary if t is None else t

    @staticmethod
    def _point(folder: Path) -> dict[str, Any]:
        """A serving comparison's operating point: operating_point.json (load, capacity, rate, the step-time
        profile's state; empty for results made before loads were relative) and, under "achieved", what its runs
        achieved per label (llmsched.serving.experiment.achieved)."""
        from llmsched.serving.experiment import achieved

        path = folder / "operating_point.json"
        point = json.loads(path.read_text()) if path.exists() else {}
        return {**point, "achieved": achieved(folder)}

    @staticmethod
    def point_text(point: Mapping[str, Any], label: str = "fcfs") -> str:
        """The operating point in words: asked (load × capacity = rate) and achieved by `label`'s runs."""
        asked = (f"load {point['load']:g} × capacity {point['capacity']:.3g} req/s = {point['rate']:.3g} req/s "
                 f"(step-time profile {point['profile_state']})" if "load" in point else "rate as typed")
        a = point.get("achieved")
        if a is None or label not in a.index:
            return asked
        row = a.loc[label]
        return (f"{asked}; {label} achieved: offered {row['offered_rate']:.3g} req/s, completed "
                f"{row['completion_rate']:.3g} req/s, {row['waited_share']:.0%} of requests waited (mean "
                f"{row['wait_mean']:.3g} s, longest {row['wait_max']:.3g} s)")

    @staticmethod
    def point_title(point: Mapping[str, Any]) -> str:
        return f"load {point['load']:g} ({point['rate']:.2g} req/s)" if "load" in point else "the profile's rate"

    @staticmethod
    def _runs(folder: Path) -> pd.DataFrame:
        """Every request of every run of a serving comparison (columns label and run)."""
        from llmsched.serving.experiment import read_runs

        return read_runs(folder)

    @staticmethod
    def _ranker_ms(folder: Path) -> pd.DataFrame:
        rows = []
        for f in sorted(folder.glob("*.json")):
            for name, rep in json.loads(f.read_text()).items():
                rows.append({"ranker": name, "n": rep["n_requests"], "seconds": rep["seconds"]})
        t = pd.DataFrame(rows, columns=["ranker", "n", "seconds"])
        if not len(t):
            return pd.DataFrame(columns=["ranker", "requests", "ms_per_request"])
        g = t.groupby("ranker", sort=False).sum()
        return pd.DataFrame({"ranker": g.index, "requests": g["n"].to_numpy(),
                             "ms_per_request": 1000 * g["seconds"].to_numpy() / g["n"].to_numpy()})

    # ------------------------------------------------------------------ figures
    def context(self, name: str) -> str:
        """The last line of figure `name`'s title: the profile and what the figure ran on (FIGURE_CONTEXT)."""
        p, model = self.p, f"serving model {self.p['model']}"
        on = {"model": model, "lengths": f"lengths of {model}", "pars_sim": f"simulator {p['pars_sim_steptime']}",
              "ewsjf_sim": f"simulator {p['ewsjf_sim_steptime']}",
              "agreement": f"{model} · simulator {self.agreement_meta['profile']}",
              "protocol": "simulator " + ", ".join(dict.fromkeys(self.protocol["benchmark"]["gains"]["steptime"])),
              "constraints": "simulator " + ", ".join(dict.fromkeys(self.protocol["sweeps"]["summary"]["steptime"])),
              "profile": ""}[FIGURE_CONTEXT.get(name, "profile")]
        return f"profile {self.profile}" + (f" · {on}" if on else "")

    def _save_fig(self, name: str, fig: Any) -> None:
        import matplotlib.pyplot as plt

        self.fig_dir.mkdir(parents=True, exist_ok=True)
        for ext in ("png", "pdf"):
            path = self.fig_dir / f"{name}.{ext}"
            fig.savefig(path, dpi=150 if ext == "png" else None, bbox_inches="tight")
            self.written.append(path)
        plt.close(fig)

    def figures(self, show: bool = True) -> dict[str, Any]:
        from llmsched.analysis import figures as F

        top = self.pars_sim["load"].max()
        slice_top = self.pars_sim_req[np.isclose(self.pars_sim_req["rate"], self.pars_sim.loc[
            np.isclose(self.pars_sim["load"], top), "rate"].iloc[0])]
        makers: dict[str, Callable[[], Any]] = {
            "pars_lengths": lambda: F.lengths(self.lengths, str(self.p["model"])),
            "pars_ranker_quality": lambda: F.ranker_quality(self.quality),
            "pars_ablations": lambda: F.ranker_ablations(self.delta, self.margin),
            "pars_backbones": lambda: F.ranker_backbones(self.backbones),
            "pars_transfer": lambda: F.transfer(self.transfer_t),
            "pars_sim_latency_vs_rate": lambda: F.latency_vs_rate(self.pars_sim, "PARS and the rankers vs FCFS on "
                                                                  "ShareGPT: latency against load (simulator)"),
            "pars_sim_throughput": lambda: F.throughput_vs_rate(self.pars_sim, "PARS and the rankers vs FCFS on "
                                                                "ShareGPT: output throughput against load (simulator)",
                                                                "token_throughput"),
            "pars_sim_cdf": lambda: F.latency_cdf(slice_top, "PARS and the rankers vs FCFS on ShareGPT: per-request "
                                                  f"latency at load {top:g} (simulator)"),
            "pars_proxy_latency_vs_rate": lambda: F.latency_vs_rate(self.proxy, "PARS and the rankers vs FCFS on the "
                                                                    "reasoning proxy (synthetic long outputs): "
                                                                    "latency against load (simulator)"),
            "pars_headroom_vs_load": lambda: F.headroom_vs_load(self.headroom),
            "pars_headroom_vs_length": lambda: F.headroom_vs_length(self.headroom),
            "pars_serve": lambda: F.serving_bars(self.serve, "Policies on the real engine, ShareGPT at "
                                                 f"{self.point_title(self.serve_point)}"),
            "pars_serve_ratios": lambda: F.serving_ratios(self.serve_ratios, "Policies on the real engine, ShareGPT "
                                                          f"at {self.point_title(self.serve_point)}: FCFS / policy"),
            "pars_serve_cdf": lambda: F.latency_cdf(self.serve_runs, "Policies on the real engine, ShareGPT at "
                                                    f"{self.point_title(self.serve_point)}: per-request latency"),
            "sim_vs_engine": lambda: F.agreement(self.agreement_t.set_index(["case", "policy"]),
                                                 "Simulator vs real engine on the same requests, per policy"
                                                 + (" (step times measured after the runs)" if self.agreement_meta[
                                                     "measured_after_the_runs"] else "")),
            "ewsjf_partitions": lambda: F.partitions(self.partition_lengths, self.queues),
            "ewsjf_sweep": lambda: F.ewsjf_sweep(self.ewsjf_sim),
            "ewsjf_ablation": lambda: F.ewsjf_ablation(self.ewsjf_sim, float(self.ewsjf_sim["load"].max())),
            "ewsjf_convergence": lambda: F.convergence(self.trials, self.online),
            "ewsjf_serve": lambda: F.serving_bars(self.ewsjf_serve, "EWSJF vs FCFS and prompt-length SJF on the real "
                                                  f"engine, 100-2000-token prompts at "
                                                  f"{self.point_title(self.ewsjf_point)}", {
                                                      "ttft_short_mean": "mean TTFT, short (s)",
                                                      "ttft_long_mean": "mean TTFT, long (s)",
                                                      "e2e_mean": "mean E2E (s)",
                                                      "total_token_throughput": "prompt+output throughput (tok/s)"}),
            "ewsjf_protocol": lambda: F.protocol_benchmark(self.protocol["benchmark"]["gains"]),
            "ewsjf_constraints": lambda: F.protocol_sweeps(self.protocol["sweeps"]["gains"],
                                                           self.protocol["sweeps"]["summary"]),
            "ewsjf_serve_ratios": lambda: F.serving_ratios(self.ewsjf_serve_ratios, "EWSJF on the real engine, "
                                                           "100-2000-token prompts at "
                                                           f"{self.point_title(self.ewsjf_point)}: FCFS / policy"),
            "headtohead": lambda: F.head_to_head(self.h2h),
            "overheads": lambda: F.overheads(self.costs, self.ranker_ms),
        }
        kv = self.kv
        if kv is not None:
            makers["preemption_vs_kv"] = lambda: F.preemption_vs_kv(
                kv, "Whom to preempt: each policy against the KV pool, ShareGPT at load "
                f"{float(kv['load'].iloc[0]):g} (simulator)")
        kv_ratios = self.serve_kv_ratios
        if kv_ratios is not None:
            makers["preemption_serve_ratios"] = lambda: F.serving_ratios(
                kv_ratios, "Whom to preempt on the real engine with a small KV cache: FCFS / policy")
        if self.reasoning is not None:
            makers["pars_reasoning_latency_vs_rate"] = lambda: F.latency_vs_rate(
                self.reasoning, "PARS and the rankers vs FCFS on a reasoning model's measured lengths: latency "
                "against load (simulator)")
        out = {}
        for name, make in makers.items():
            fig = make()
            F.add_context(fig, self.context(name))
            if show:
                _display(fig)
            self._save_fig(name, fig)
            out[name] = fig
        return out

    # ------------------------------------------------------------------ tables
    def tables(self) -> dict[str, pd.DataFrame]:
        lat = ["normalized_latency_mean", "e2e_mean", "ttft_mean", "e2e_p99", "queue_delay_max", "token_throughput",
               "request_throughput"]
        ew = ["total_token_throughput", "ttft_short_mean", "ttft_long_mean", "e2e_mean", "utilisation",
              "queue_delay_max"]
        t = {
            "ranker_quality": self.quality,
            "ranker_transfer": self.transfer_t,
            "ranker_ablation_delta": self.delta,
            "ranker_ablation_margin": self.margin,
            "ranker_methods_ablation_settings": self.methods_ablation,
            "ranker_methods_seeds": self.methods_seeds,
            "ranker_noise": self.noise,
            **({"ranker_ablation_truncation": self.truncation} if self.truncation is not None else {}),
            "ranker_ablation_backbone": self.backbones,
            "pars_sim": _with_ci(self.pars_sim, ["label", "load", "rate"], [*lat, "promoted"]),
            "pars_sim_proxy": _with_ci(self.proxy, ["label", "load", "rate"], [*lat, "promoted"]),
            "pars_headroom": self.headroom,
            **({"preemption_kv": _with_ci(self.kv, ["kv_fraction", "num_blocks", "label", "load"],
                                          ["e2e_mean", "normalized_latency_mean", "preemptions", "swaps",
                                           "recomputed_tokens", "recomputed_share"])}
               if self.kv is not None else {}),
            **({"preemption_serve": _with_ci(self.serve_kv.reset_index(names="label"), ["label", "n_ok"],
                                             ["preemptions", *lat])}
               if self.serve_kv is not None else {}),
            **({"preemption_serve_ratios": self.serve_kv_ratios} if self.serve_kv_ratios is not None else {}),
            **({"pars_serve_own": _with_ci(self.serve_own.reset_index(names="label"), ["label", "n_ok"], lat)}
               if self.serve_own is not None else {}),
            **({"pars_serve_own_ratios": self.serve_own_ratios} if self.serve_own_ratios is not None else {}),
            "pars_serve": _with_ci(self.serve.reset_index(names="label"), ["label", "n_ok"], lat),
            "pars_serve_ratios": self.serve_ratios,
            "pars_serve_runs": self._run_table(self.serve_dir),
            "pars_serve_operating": self._point_table(self.serve_point),
            "sim_vs_engine": self.agreement_t,
            "ewsjf_partitions": self.queues,
            "ewsjf_sim": _with_ci(self.ewsjf_sim, ["preset", "label", "load", "rate"], [*ew, "ttft_mean"]),
            "ewsjf_serve": _with_ci(self.ewsjf_serve.reset_index(names="label"), ["label", "n_ok"],
                                    [c for c in ew if c != "utilisation"]),
            "ewsjf_serve_ratios": self.ewsjf_serve_ratios,
            "ewsjf_serve_runs": self._run_table(self.ewsjf_serve_dir),
            "ewsjf_serve_operating": self._point_table(self.ewsjf_point),
            "ewsjf_tuning": self.trials,
            "ewsjf_online": self.online,
            "ewsjf_online_vs_fixed": self.online_summary[["label", "load", *ew]],
            "ewsjf_protocol_gains": self.protocol["benchmark"]["gains"],
            "ewsjf_constraint_gains": self.protocol["sweeps"]["gains"],
            **({"ewsjf_tuning_noise": self.tune_noise} if self.tune_noise is not None else {}),
            **({"ewsjf_protocol_engine": _with_ci(self.protocol_engine.reset_index(names="label"), ["label", "n_ok"],
                                                  ["token_throughput", "ttft_mean", "ttft_short_mean",
                                                   "ttft_long_mean", "e2e_mean"])}
               if self.protocol_engine is not None else {}),
            **({"ewsjf_protocol_engine_ratios": self.protocol_engine_ratios}
               if self.protocol_engine_ratios is not None else {}),
            "headtohead": _with_ci(self.h2h, ["workload", "label", "load", "rate"], lat),
            "overheads_policy": self.costs,
            "overheads_ranker": self.ranker_ms,
        }
        if self.reasoning is not None:
            t["pars_reasoning"] = _with_ci(self.reasoning, ["label", "load", "rate"], [*lat, "promoted"])
        for name, frame in t.items():
            self._save_table(name, frame)
        return t

    @staticmethod
    def _point_table(point: Mapping[str, Any]) -> pd.DataFrame:
        """One row per label: the load, capacity and rate asked for, and the operating point its runs achieved
        (mean over runs), with the engine's prefill and decode rates from each run's speed probe."""
        asked = {k: point[k] for k in ("load", "capacity", "rate", "profile", "profile_state") if k in point}
        return point["achieved"].reset_index(names="label").assign(**asked)

    @staticmethod
    def _run_table(folder: Path) -> pd.DataFrame:
        """One row per real-engine run, in the order they ran, with its speed probe: drift made visible."""
        from llmsched.serving.experiment import list_runs

        return list_runs(folder).drop(columns="dir")

    def _save_table(self, name: str, frame: pd.DataFrame) -> None:
        self.tab_dir.mkdir(parents=True, exist_ok=True)
        csv, md = self.tab_dir / f"{name}.csv", self.tab_dir / f"{name}.md"
        frame.to_csv(csv, index=False)
        md.write_text(to_markdown(frame, index=False))
        self.written += [csv, md]

    # ------------------------------------------------------------------ claims
    def claims(self) -> pd.DataFrame:
        """The claims table (computed once per report, saved as claims.csv / claims.md)."""
        from llmsched.analysis.claims import paper_claims

        if self._claims is None:
            self._claims = pd.DataFrame([c.__dict__ for c in paper_claims(self)])
            self._save_table("claims", self._claims)
        return self._claims

    # ------------------------------------------------------------------ README
    def claims_markdown(self) -> str:
        t = self.claims()
        body = to_markdown(t[["claim", "paper", "ours", "verdict", "operating_point", "interval", "where"]]
                           .rename(columns={"operating_point": "operating point", "interval": "interval over"}),
                           index=False)
        return (f"Generated by `notebooks/06_figures_tables_claims.ipynb` from the `{self.profile}` profile's results "
                f"(`results/tables/{self.profile}/claims.csv`, with each verdict's rule); do not edit by hand. "
                "Intervals are 95 %; \"ours\" gives each number as estimate [low, high].\n\n" + body)

    def update_readme(self, readme: str | Path | None = None) -> Path:
        """Replace the text between the claims markers of README.md with this profile's claims table."""
        path = Path(readme) if readme is not None else REPO_ROOT / "README.md"
        path.write_text(fill_section(path.read_text(), self.claims_markdown(), str(path)))
        return path


def _with_ci(frame: pd.DataFrame, keys: list[str], metrics: list[str]) -> pd.DataFrame:
    """`keys` and `metrics` of a summary, each metric followed by its 95 % interval columns where the summary has
    them, and the number of seeds or runs behind each row."""
    cols = [c for c in keys if c in frame] + [c for c in ("n_seeds", "n_runs") if c in frame]
    for m in metrics:
        cols += [c for c in (m, f"{m}_ci_low", f"{m}_ci_high") if c in frame]
    return frame[cols]


def fill_section(text: str, body: str, where: str = "the text") -> str:
    """`text` with everything between the claims markers replaced by `body` (ValueError without markers)."""
    if text.count(README_BEGIN) != 1 or text.count(README_END) != 1:
        raise ValueError(f"{where} needs exactly one {README_BEGIN} ... {README_END} section to fill")
    pattern = re.compile(re.escape(README_BEGIN) + ".*?" + re.escape(README_END), re.S)
    return pattern.sub(lambda _: f"{README_BEGIN}\n{body}\n{README_END}", text)


def _display(fig: Any) -> None:
    try:
        from IPython import get_ipython
        from IPython.display import display

        if get_ipython() is not None:
            display(fig)
    except ImportError:
        pass
