"""Step-time models and the JSON profiles in artifact/profiles/steptime/."""

from __future__ import annotations

import json
import math

import pytest

from llmsched.sim import (
    AnalyticStepTime,
    LinearStepTime,
    SimConfig,
    analytic_profile,
    available_profiles,
    load_profile,
    simulate,
    step_time_from_dict,
)
from llmsched.steptime.profiles import GIB, SHIPPED, profile_name
from llmsched.workload.request import Request

SHIPPED_NAMES = [profile_name(g, m, tp) for g, m, tp in SHIPPED]


def test_linear_formula_and_validation() -> None:
    m = LinearStepTime(c0=0.01, c_prefill=1e-4, c_decode=2e-3, c_kv=1e-6)
    assert m.step_time(100, 4, 5000, 5) == pytest.approx(0.01 + 0.01 + 0.008 + 0.005)
    assert LinearStepTime(c0=0.5).step_time(1000, 10, 10**6, 11) == 0.5
    assert step_time_from_dict(m.to_dict()) == m
    with pytest.raises(ValueError, match="c_kv"):
        LinearStepTime(c_kv=-1e-6)
    with pytest.raises(ValueError, match="c0"):
        LinearStepTime(c0=math.inf)
    with pytest.raises(ValueError, match=r"missing coefficient\(s\) \['c_decode'\]"):
        LinearStepTime.from_dict({"c0": 0.0, "c_prefill": 0.0, "c_kv": 0.0})
    with pytest.raises(ValueError, match="c_prefill"):
        LinearStepTime.from_dict({"c0": 0.0, "c_prefill": float("nan"), "c_decode": 0.0, "c_kv": 0.0})
    with pytest.raises(ValueError, match="unknown coefficient"):
        LinearStepTime.from_dict({"c0": 0.0, "c_prefill": 0.0, "c_decode": 0.0, "c_kv": 0.0, "c9": 1.0})


def test_analytic_formula() -> None:
    m = AnalyticStepTime(params=8e9, weight_bytes=16e9, kv_bytes_per_token=131072, peak_flops=989e12, hbm_bw=3.35e12,
                         mfu=0.5, mbu=0.7, overhead_s=0.002)
    # decode of 64 sequences with 64k context tokens: memory bound
    mem = (16e9 + 131072 * 65536) / (3.35e12 * 0.7)
    assert m.step_time(0, 64, 65536, 64) == pytest.approx(mem + 0.002)
    # a 8192-token prefill chunk: compute bound
    comp = 2 * 8e9 * 8192 / (989e12 * 0.5)
    assert comp > (16e9 + 131072 * 8192) / (3.35e12 * 0.7)
    assert m.step_time(8192, 0, 8192, 1) == pytest.approx(comp + 0.002)
    tp4 = AnalyticStepTime(params=8e9, weight_bytes=16e9, kv_bytes_per_token=131072, peak_flops=989e12,
                           hbm_bw=3.35e12, tp=4)
    assert tp4.step_time(0, 1, 100, 1) == pytest.approx((16e9 + 131072 * 100) / (4 * 3.35e12 * 0.7))
    assert step_time_from_dict(m.to_dict()) == m
    with pytest.raises(ValueError, match="mfu"):
        AnalyticStepTime(params=1, weight_bytes=1, kv_bytes_per_token=1, peak_flops=1, hbm_bw=1, mfu=1.5)
    with pytest.raises(ValueError, match="hbm_bw"):
        AnalyticStepTime(params=1, weight_bytes=1, kv_bytes_per_token=1, peak_flops=1, hbm_bw=0)
    with pytest.raises(ValueError, match="tp"):
        AnalyticStepTime(params=1, weight_bytes=1, kv_bytes_per_token=1, peak_flops=1, hbm_bw=1, tp=0)
    with pytest.raises(ValueError, match="kind"):
        step_time_from_dict({"kind": "cubic"})


def test_shipped_profiles_load_and_are_current() -> None:
    assert set(SHIPPED_NAMES) <= set(available_profiles())
    for (gpu, model, tp), name in zip(SHIPPED, SHIPPED_NAMES, strict=True):
        prof = load_profile(name)
        assert prof.name == name and isinstance(prof.step_time, AnalyticStepTime)
        # the file is what the generator writes today (numbers and sources)
        assert prof.data == analytic_profile(gpu, model, tp)
        cfg = prof.sim_config()
        assert isinstance(cfg, SimConfig) and cfg.num_blocks > 1000 and cfg.block_size == 16
        assert prof.sim_config(max_num_seqs=8).max_num_seqs == 8
        sources = prof.data["sources"]
        assert all(sources[k].strip() for k in sources)
        t1, t2 = prof.step_time.step_time(0, 1, 500, 1), prof.step_time.step_time(0, 256, 256 * 500, 256)
        assert 0.002 < t1 < t2 < 1.0


def test_kv_block_counts_by_hand() -> None:
    # Llama-2-13B on A100 80GB: 2 * 40 layers * 5120 * 2 B = 819,200 B per token
    prof = load_profile("a100-80gb_llama-2-13b")
    kv = 81920 * 2**20 * 0.9 - 13_015_864_320 * 2 - 2 * GIB
    assert prof.data["derived"]["kv_bytes_per_token"] == 2 * 40 * 5120 * 2
    assert prof.engine["num_blocks"] == math.floor(kv / (16 * 819_200))
    assert prof.engine["max_model_len"] == 4096 and prof.engine["max_num_seqs"] == 256
    # Llama-3-8B on H100: 2 * 32 layers * 8 kv heads * 128 * 2 B = 131,072 B per token
    prof = load_profile("h100-sxm_llama-3-8b")
    kv = 81559 * 2**20 * 0.9 - 8_030_261_248 * 2 - 2 * GIB
    assert prof.engine["num_blocks"] == math.floor(kv / (16 * 131_072))
    # Llama-3-70B on 4 x H100, tensor parallel: weights and KV heads split over 4 GPUs
    prof = load_profile("4xh100-sxm_llama-3-70b")
    kv = 81559 * 2**20 * 0.9 - 70_553_706_496 * 2 / 4 - 2 * GIB
    assert prof.engine["num_blocks"] == math.floor(kv / (16 * 2 * 80 * 1024 * 2 / 4))
    assert prof.step_time.tp == 4


def _write(tmp_path, data) -> str:
    path = tmp_path / "p.json"
    path.write_text(json.dumps(data))
    return str(path)


def test_linear_profile_round_trip_and_errors(tmp_path) -> None:
    data = {"kind": "linear", "name": "calibrated", "coefficients": {"c0": 0.003, "c_prefill": 5e-5,
            "c_decode": 1e-4, "c_kv": 2e-8},
            "engine": {"num_blocks": 500, "block_size": 16, "max_num_seqs": 64, "max_num_batched_tokens": 2048,
                       "max_model_len": 2048}}
    prof = load_profile(_write(tmp_path, data))
    assert prof.step_time == LinearStepTime(0.003, 5e-5, 1e-4, 2e-8)
    assert prof.sim_config().num_blocks == 500
    reqs = [Request(f"r{i}", "x", 50, 20, 0.01 * i) for i in range(20)]
    assert len(simulate(reqs, prof.sim_config(), prof.step_time).frame) == 20

    for mutate, match in [
        (lambda d: d["coefficients"].pop("c_kv"), "c_kv"),
        (lambda d: d["coefficients"].update(c_decode=-1.0), "c_decode"),
        (lambda d: d["coefficients"].update(c0="fast"), "c0"),
        (lambda d: d["engine"].update(num_blocks=0), "num_blocks"),
        (lambda d: d.update(kind="quadratic"), "kind"),
    ]:
        bad = json.loads(json.dumps(data))
        mutate(bad)
        with pytest.raises(ValueError, match=match):
            load_profile(_write(tmp_path, bad))
    with pytest.raises(FileNotFoundError, match="available"):
        load_profile("no-such-gpu_no-such-model")


def test_analytic_profile_errors(tmp_path) -> None:
    good = analytic_profile("h100-sxm", "llama-3-8b")
    for mutate, match in [
        (lambda d: d["sources"].pop("hardware.hbm_bw"), "without a source.*hardware.hbm_bw"),
        (lambda d: d["hardware"].pop("peak_flops"), "peak_flops"),
        (lambda d: d["hardware"].update(hbm_bw=float("nan")), "hbm_bw"),
        (lambda d: d["assumptions"].update(mfu=2.0), "mfu"),
        (lambda d: d["derived"].update(num_blocks=1), "derived"),
        (lambda d: (d["assumptions"].update(activation_reserve_bytes=10**12), d.pop("derived")),
         "num_blocks would be 0"),
    ]:
        bad = json.loads(json.dumps(good))
        mutate(bad)
        with pytest.raises(ValueError, match=match):
            load_profile(_write(tmp_path, bad))
    with pytest.raises(ValueError, match="unknown GPU"):
        analytic_profile("tpu-v9", "llama-3-8b")
    custom = analytic_profile("a100-80gb", "llama-3-8b", mfu=0.4)
    assert custom["sources"]["assumptions.mfu"].startswith("assumption")
    assert load_profile(_write(tmp_path, custom)).step_time.mfu == 0.4
