"""The report of notebook 06: inputs checked up front, the README section it fills, the figure helpers."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from llmsched.analysis import figures
from llmsched.analysis.claims import backbone_verdict
from llmsched.experiments.report import README_BEGIN, README_END, Report, fill_section
from llmsched.experiments.stages import load_params
from llmsched.pipeline import MissingInputError


def test_report_names_the_first_missing_input_and_its_notebook(tmp_path):
    with pytest.raises(MissingInputError, match=r"pars/smoke/lengths\.parquet: it is written by "
                                                r"notebooks/01_collect_lengths\.ipynb"):
        Report(load_params("smoke"), root=tmp_path)
    (tmp_path / "pars" / "smoke").mkdir(parents=True)
    pd.DataFrame({"x": [1]}).to_parquet(tmp_path / "pars" / "smoke" / "lengths.parquet")
    with pytest.raises(MissingInputError, match=r"rankers/quality\.parquet: it is written by notebooks/02"):
        Report(load_params("smoke"), root=tmp_path)


def test_fill_section_replaces_only_the_marked_text():
    text = f"# T\n\nbefore\n{README_BEGIN}\nold table\n{README_END}\nafter\n"
    out = fill_section(text, "| a |\n|---|\n| 1 |")
    assert out == f"# T\n\nbefore\n{README_BEGIN}\n| a |\n|---|\n| 1 |\n{README_END}\nafter\n"
    assert fill_section(out, "new") == f"# T\n\nbefore\n{README_BEGIN}\nnew\n{README_END}\nafter\n"
    with pytest.raises(ValueError, match="claims:begin"):
        fill_section("no markers here", "x")
    with pytest.raises(ValueError, match="exactly one"):
        fill_section(text + text, "x")


def test_latency_vs_rate_draws_one_line_per_policy():
    summary = pd.DataFrame({"label": ["fcfs", "pars"] * 3, "load": [0.5, 0.5, 1.0, 1.0, 2.0, 2.0],
                            "e2e_mean": [1, 1, 2, 1.5, 9, 4], "normalized_latency_mean": [.1, .1, .2, .1, .9, .3],
                            "ttft_mean": [.1, .1, .5, .2, 5, 1]})
    fig = figures.latency_vs_rate(summary, "t")
    lines = [ln for ln in fig.axes[0].get_lines() if len(ln.get_xdata()) == 3]
    assert len(lines) == 2
    assert sorted(tuple(ln.get_ydata()) for ln in lines) == [(1, 1.5, 4), (1, 2, 9)]


def test_backbone_verdict_checks_the_full_order_of_kinds():
    def verdict(rows):
        return backbone_verdict(pd.DataFrame(rows, columns=["kind", "kendall_tau"]))[0]

    enc, dec, t5 = ("encoder", 0.3), ("decoder", 0.2), ("encoder-decoder", 0.1)
    assert verdict([enc, dec, t5]) == "reproduced"
    assert verdict([enc, dec]) == "partly (not every kind ran)"  # no encoder-decoder ran
    assert verdict([enc, ("decoder", 0.35), t5]) == "not reproduced"
    assert verdict([enc, ("decoder", 0.05), t5]) == "not reproduced"  # encoder first, but T5 above OPT
    assert verdict([enc, ("decoder", 0.1), ("decoder", 0.31)]) == "not reproduced"  # the best decoder counts
    assert verdict([enc, ("encoder", 0.4)]) == "not run here"  # only one kind


def test_methods_verdict_needs_a_margin_beyond_the_seed_spread():
    from llmsched.analysis.claims import methods_verdict

    def table(pars, ltr, pointwise, seeds=3):
        rows = [("pars", "in_batch", *pars), ("pars", "partners", 0.0, 0.01), ("ltr", "-", *ltr),
                ("pointwise", "-", *pointwise)]
        t = pd.DataFrame(rows, columns=["method", "pair_sampling", "kendall_tau_mean", "kendall_tau_sd"])
        return t.assign(seeds=seeds, path="probe (frozen encoder)")

    strong = table((0.40, 0.01), (0.30, 0.01), (0.35, 0.02))
    assert methods_verdict(strong, "in_batch")[0] == "reproduced"
    assert methods_verdict(strong, "partners")[0] == "not reproduced"  # the other PARS row is judged
    weak = table((0.31, 0.01), (0.30, 0.01), (0.35, 0.02))  # ahead of LTR by less than the spread
    assert methods_verdict(weak, "in_batch")[0] == "not reproduced"  # pointwise is ahead by more than the spread
    tie = table((0.31, 0.01), (0.30, 0.01), (0.30, 0.02))
    assert methods_verdict(tie, "in_batch")[0] == "tie within the seed spread"
    assert methods_verdict(table((0.40, float("nan")), (0.3, float("nan")), (0.3, float("nan")), seeds=1),
                           "in_batch")[0] == "not decidable (one seed)"
    verdict, ours, rule = methods_verdict(strong.drop(index=2), "in_batch")
    assert verdict == "not run here"


def test_oracle_share_is_the_part_of_the_oracles_gain_a_policy_gets():
    from llmsched.analysis.claims import oracle_share

    lat = pd.Series({"fcfs": 10.0, "pars": 7.0, "oracle-sjf": 5.0, "ltr": 11.0})
    assert oracle_share(lat, "pars") == pytest.approx(0.6)
    assert oracle_share(lat, "ltr") == pytest.approx(-0.2)  # worse than FCFS: a negative share
    assert math.isnan(oracle_share(lat, "pointwise"))  # not run
    assert math.isnan(oracle_share(lat.replace({5.0: 10.0}), "pars"))  # the oracle gains nothing
