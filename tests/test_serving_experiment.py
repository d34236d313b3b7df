"""compare_policies: repeated interleaved runs, one speed probe per run, intervals, paired ratios, resuming.

Most tests replace the engine by a stand-in that writes deterministic records (each policy a fixed speed-up of
FCFS, each run a drift of the machine's speed), so the bookkeeping is checked in milliseconds; one test runs the
tiny random-weight model end to end.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from llmsched.records import RequestRecord, write_run
from llmsched.serving import experiment
from llmsched.serving.engine import EngineConfig
from llmsched.serving.experiment import compare_policies, list_runs, read_runs, run_dir, runs_by_label
from llmsched.serving.runner import RunConfig
from llmsched.workload.request import Request

SPEED = {"fcfs": 1.0, "oracle-sjf": 0.5, "prompt-sjf": 0.8}  # stand-in latency factor of each policy


class Calls:
    """What the stand-in engine did: one entry per started engine, per probe and per finished run."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []
        self.fail_at: int | None = None  # raise in the run with this index (0-based, counting started runs)

    def runs(self) -> list[str]:
        return [p for kind, p in self.events if kind == "run"]

    def probes(self) -> int:
        return sum(kind == "probe" for kind, _ in self.events)


@pytest.fixture
def fake_engine(monkeypatch):
    calls = Calls()

    class FakeRunner:
        def __init__(self, config: EngineConfig) -> None:
            self.config, self.startup_s = config, 0.01
            calls.events.append(("start", config.policy))

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return None

        def run(self, requests, run, out_dir=None):
            n = len(calls.runs())
            if calls.fail_at is not None and n == calls.fail_at:
                raise KeyboardInterrupt("interrupted")
            drift = 1.0 + 0.1 * (n // 3)  # the machine slows down, round by round (3 policies a round)
            recs = []
            for i, r in enumerate(sorted(requests, key=lambda r: r.arrival_time)):
                e2e = (1.0 + i % 5 + 0.2 * r.output_tokens) * SPEED[self.config.policy] * drift
                recs.append(RequestRecord(r.request_id, prompt_tokens=r.prompt_tokens,
                                          ref_output_tokens=r.output_tokens, output_tokens=r.output_tokens,
                                          arrival=r.arrival_time,
                                          queued=r.arrival_time, scheduled=r.arrival_time + 0.3 * e2e,
                                          first_token=r.arrival_time + 0.4 * e2e, last_token=r.arrival_time + e2e))
            calls.events.append(("run", self.config.policy))
            write_run(out_dir, recs, {"engine": self.config.to_dict()})
            from llmsched.records import records_to_frame

            return records_to_frame(recs)

    def fake_probe(runner, *, seed=0):
        calls.events.append(("probe", runner.config.policy))
        return {"probe_output_tok_s": 100.0 / (1 + len(calls.runs())), "probe_seconds": 1.0, "probe_step_ms_mean": 5.0}

    monkeypatch.setattr(experiment, "EngineRunner", FakeRunner)
    monkeypatch.setattr(experiment, "speed_probe", fake_probe)
    return calls


def workload(n: int = 12) -> list[Request]:
    return [Request(f"r{i}", f"prompt {i}", 50 + 100 * (i % 3), 3 + 2 * (i % 4), arrival_time=0.1 * i)
            for i in range(n)]


POLICIES = ["fcfs", "oracle-sjf", "prompt-sjf"]
ENGINE = EngineConfig(model="tiny", max_num_seqs=2)


def compare(requests: list[Request], policies: list[str], out_root, **kwargs):
    """compare_policies on the stand-in engine (fewer bootstrap draws: the intervals' bookkeeping is tested)."""
    return compare_policies(requests, ENGINE, policies, out_root, run=RunConfig(progress=False), n_boot=200, **kwargs)


def test_runs_are_interleaved_each_with_one_probe(fake_engine, tmp_path):
    table = compare(workload(), POLICIES, tmp_path, repeats=3)
    assert fake_engine.runs() == POLICIES * 3  # A B C A B C A B C, not A A A B B B ...
    # every run: a fresh engine, then the probe, then the requests
    assert fake_engine.events[:3] == [("start", "fcfs"), ("probe", "fcfs"), ("run", "fcfs")]
    assert fake_engine.probes() == 9
    runs = list_runs(tmp_path)
    assert runs["order"].tolist() == list(range(9))
    assert list(zip(runs["label"], runs["run"], strict=True)) == [(p, k) for k in range(3) for p in POLICIES]
    assert runs["probe_output_tok_s"].tolist() == pytest.approx([100.0 / (1 + i) for i in range(9)])
    assert (runs["run_wall_s"] >= 0).all() and (runs["n_ok"] == 12).all()
    for label, k in zip(runs["label"], runs["run"], strict=True):
        folder = run_dir(tmp_path, label, k)
        assert (folder / "requests.parquet").exists() and (folder / "run_key.json").exists()
    assert list(table.index) == POLICIES and table.index.name == "label"
    assert (table["n_runs"] == 3).all()


def test_summary_is_the_mean_over_runs_with_intervals_and_ratios_against_fcfs(fake_engine, tmp_path):
    short = {"short": lambda m: m["prompt_tokens"] <= 100, "long": lambda m: m["prompt_tokens"] > 100}
    table = compare(workload(), POLICIES, tmp_path, repeats=3, groups=short)
    runs = list_runs(tmp_path)
    for label in POLICIES:
        mine = runs[runs["label"] == label]
        for col in ("e2e_mean", "ttft_mean", "token_throughput", "e2e_p90", "ttft_short_mean"):
            assert table.loc[label, col] == pytest.approx(mine[col].mean())  # point estimate: mean over runs
    checked = ["e2e_mean", "normalized_latency_mean", "ttft_mean", "ttft_short_mean", "ttft_long_mean",
               "e2e_long_mean", "token_throughput", "request_throughput", "makespan", "e2e_p90", "queue_delay_max"]
    for col in checked:
        lo, est, hi = table[f"{col}_ci_low"], table[col], table[f"{col}_ci_high"]
        assert (lo <= est + 1e-12).all() and (est <= hi + 1e-12).all() and (lo < hi).all(), col
    assert "n_ok_ci_low" not in table  # counts get no interval
    assert pd.read_csv(tmp_path / "summary.csv", index_col=0).shape == table.shape
    assert "[" in (tmp_path / "summary.md").read_text()

    ratios = pd.read_parquet(tmp_path / "ratios.parquet")
    assert set(ratios["label"]) == {"oracle-sjf", "prompt-sjf"} and set(ratios["baseline"]) == {"fcfs"}
    assert set(ratios["metric"]) >= {"e2e_mean", "ttft_mean", "normalized_latency_mean", "ttft_short_mean"}
    e2e = ratios.set_index(["label", "metric"]).loc[("oracle-sjf", "e2e_mean")]
    assert e2e["ratio"] == pytest.approx(2.0) and e2e["n_runs"] == 3  # the stand-in's oracle is twice as fast
    assert (ratios["ci_low"] <= ratios["ratio"] + 1e-12).all() and (ratios["ratio"] <= ratios["ci_high"] + 1e-12).all()


def test_one_run_per_policy_gives_no_interval(fake_engine, tmp_path):
    table = compare(workload(), POLICIES[:2], tmp_path)
    assert (table["n_runs"] == 1).all()
    ci = [c for c in table.columns if c.endswith(("_ci_low", "_ci_high"))]
    assert ci and table[ci].isna().all().all()
    assert table["e2e_mean"].notna().all()
    ratios = pd.read_parquet(tmp_path / "ratios.parquet")
    assert ratios["ratio"].notna().all() and ratios[["ci_low", "ci_high"]].isna().all().all()
    assert "no interval" in (tmp_path / "summary.md").read_text()


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "3", None])
def test_bad_repeats_are_rejected_before_any_engine_starts(fake_engine, tmp_path, bad):
    with pytest.raises(ValueError, match=r"repeats must be an integer >= 1 \(runs per policy\), got"):
        compare_policies(workload(), ENGINE, POLICIES, tmp_path, repeats=bad)
    assert fake_engine.events == []


def test_an_interrupted_comparison_resumes_at_the_first_incomplete_run(fake_engine, tmp_path):
    fake_engine.fail_at = 4  # the 5th run (oracle-sjf, run 1) dies before writing anything
    with pytest.raises(KeyboardInterrupt):
        compare(workload(), POLICIES, tmp_path, repeats=2)
    assert fake_engine.runs() == POLICIES + ["fcfs"]
    fake_engine.fail_at = None
    fake_engine.events.clear()
    compare(workload(), POLICIES, tmp_path, repeats=2)
    assert fake_engine.runs() == ["oracle-sjf", "prompt-sjf"]  # the four complete runs are read back
    assert len(list_runs(tmp_path)) == 6

    # a run folder without its marker (a run cut off while writing) is redone; the others are skipped
    (run_dir(tmp_path, "prompt-sjf", 0) / "run_key.json").unlink()
    fake_engine.events.clear()
    compare(workload(), POLICIES, tmp_path, repeats=2)
    assert fake_engine.runs() == ["prompt-sjf"] and fake_engine.probes() == 1
    # another workload is another comparison: every run is redone
    fake_engine.events.clear()
    compare(workload(10), POLICIES, tmp_path, repeats=2)
    assert len(fake_engine.runs()) == 6


def test_read_runs_lists_only_the_latest_comparison(fake_engine, tmp_path):
    compare(workload(), POLICIES, tmp_path, repeats=3)
    fake_engine.events.clear()
    compare(workload(), POLICIES[:2], tmp_path, repeats=2)
    assert fake_engine.runs() == []  # runs 0 and 1 exist already
    assert run_dir(tmp_path, "prompt-sjf", 2).exists()  # left on disk, but not part of this comparison
    frame = read_runs(tmp_path)
    assert sorted(set(zip(frame["label"], frame["run"], strict=True))) == [(p, k) for p in POLICIES[:2]
                                                                           for k in range(2)]
    assert len(frame) == 4 * 12
    only = read_runs(tmp_path, labels=["fcfs"])
    assert set(only["label"]) == {"fcfs"} and len(only) == 24
    by_label = runs_by_label(tmp_path)
    assert list(by_label) == POLICIES[:2] and [len(v) for v in by_label.values()] == [2, 2]
    with pytest.raises(FileNotFoundError, match="runs.parquet"):
        list_runs(tmp_path / "nothing")


def test_no_baseline_means_no_ratios(fake_engine, tmp_path):
    compare(workload(), ["oracle-sjf", "prompt-sjf"], tmp_path, repeats=2)
    assert pd.read_parquet(tmp_path / "ratios.parquet").empty
    assert "no ratios" in (tmp_path / "ratios.md").read_text()


@pytest.mark.vllm
def test_repeated_comparison_on_the_tiny_model(tiny_model, tmp_path):
    """Two policies, two interleaved runs each, on the real engine: every run probed, the table complete."""
    # one long request ahead of five short ones, all queued at once, one sequence at a time
    reqs = [Request(f"r{i}", f"tell me about the number {i} please", 10, 30 if i == 0 else 2, arrival_time=0.0)
            for i in range(6)]
    table = compare_policies(reqs, EngineConfig(model=tiny_model, max_num_seqs=1), ["fcfs", "oracle-sjf"],
                             tmp_path, run=RunConfig(progress=False), n_boot=200, repeats=2)
    runs = list_runs(tmp_path)
    assert list(zip(runs["label"], runs["run"], strict=True)) == [("fcfs", 0), ("oracle-sjf", 0), ("fcfs", 1),
                                                                   ("oracle-sjf", 1)]
    assert (runs["probe_output_tok_s"] > 0).all() and (runs["probe_seconds"] > 0).all()
    assert (runs["n_ok"] == 6).all() and (runs["engine_startup_s"] > 0).all()
    assert np.all(np.diff(runs["started_unix"]) > 0)
    assert (table["n_runs"] == 2).all()
    assert (table["e2e_mean_ci_low"] <= table["e2e_mean"]).all()
    assert (table["e2e_mean"] <= table["e2e_mean_ci_high"]).all()
    # shortest first serves the five short requests before the long one: a much lower mean E2E
    assert table.loc["oracle-sjf", "e2e_mean"] < table.loc["fcfs", "e2e_mean"], table["e2e_mean"]
    ratio = pd.read_parquet(tmp_path / "ratios.parquet").set_index("metric").loc["e2e_mean"]
    assert ratio["ratio"] > 1 and not math.isnan(ratio["ci_low"])


def test_serve_figures_show_intervals_and_the_number_of_runs(fake_engine, tmp_path):
    import matplotlib.pyplot as plt

    from llmsched.analysis import figures

    table = compare(workload(), POLICIES, tmp_path, repeats=3)
    fig = figures.serving_bars(table, "Real engine")
    assert "mean and 95 % CI over 3 interleaved runs per policy" in fig._suptitle.get_text()
    bars = [c for c in fig.axes[0].containers if hasattr(c, "errorbar")]
    assert bars and bars[0].errorbar is not None  # error bars drawn
    plt.close(fig)
    fig = figures.serving_ratios(pd.read_parquet(tmp_path / "ratios.parquet"), "vs FCFS")
    assert len(fig.axes) == 3 and "3 interleaved runs" in fig._suptitle.get_text()  # normalized latency, E2E, TTFT
    plt.close(fig)
    one = compare(workload(), POLICIES[:2], tmp_path / "one")
    fig = figures.serving_bars(one, "Real engine")
    assert "one run per policy, no interval" in fig._suptitle.get_text()
    plt.close(fig)
