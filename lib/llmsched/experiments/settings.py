"""Typed settings of the experiment drivers, built from a profile's flat parameters.

A profile (artifact/profiles/<name>.yaml, or a notebook's parameters cell) is one flat dict; each driver reads
the keys of its own prefix plus the shared keys:

    shared     profile, model, seed, serving_max_num_seqs, serving_steptime, serving_on_mismatch,
               serving_calibration (the real engine's step-time profile: llmsched.experiments.capacity)
    pars_*     PARSSettings   (llmsched.experiments.pars)
    ewsjf_*    EWSJFSettings  (llmsched.experiments.ewsjf)
    h2h_*      HeadToHeadSettings (llmsched.experiments.headtohead; it also reads the pars_ and ewsjf_ settings)

`from_params` takes a driver's keys (prefix stripped: `pars_sim_n` → `sim_n`), rejects keys of its prefix that it
does not know (a typo fails instead of silently keeping a default), ignores the other drivers' keys, and
checks values (`__post_init__`). Each default is written here once; the drivers never default a key again.
Every step-time setting is named `*_steptime` (a step-time profile of llmsched.steptime, by name or path);
"profile" means a run profile only.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from llmsched.policies.ewsjf.partition import DEFAULT_MAX_QUEUES

S = TypeVar("S", bound="_Settings")

SHARED = ("profile", "model", "seed", "serving_max_num_seqs", "serving_steptime", "serving_on_mismatch",
          "serving_calibration")
ON_MISMATCH = ("warn", "error", "recalibrate")  # what a stale measured step-time profile triggers (serving.probe)
CALIBRATIONS = ("full", "quick")  # the calibration plan a recalibration runs (llmsched.serving.calibrate)


@dataclass(frozen=True)
class _Settings:
    """Shared keys of every driver."""

    prefix: ClassVar[str] = ""

    profile: str = "smoke"  # run profile: names every output folder
    model: str = "tiny"  # serving model: a prepared name (tiny, gemma), a folder or a hub id
    seed: int = 0  # every draw (prompt split, arrivals, training) is seeded from this
    serving_max_num_seqs: int = 16  # real engine: concurrent sequences
    serving_steptime: str = "cpu-gemma-3-270m"  # the real engine's step-time profile (a name or path): checked
    # against this engine's speed probe; behind every real-engine operating point, EWSJF's C_prefill there and the
    # simulator's replays of the runs (llmsched.experiments.capacity.engine_profile)
    serving_on_mismatch: str = "recalibrate"  # that profile off the probe by > 10 %: recalibrate on this engine
    # (once per engine configuration) | warn (keep it; the claims resting on it are not judged) | error
    serving_calibration: str = "full"  # the recalibration's plan: full (minutes) | quick (a handful of steps: tests)

    @classmethod
    def from_params(cls: type[S], params: Mapping[str, Any]) -> S:
        """The settings in `params` (a profile's flat dict); ValueError naming unknown keys of this prefix."""
        names = {f.name for f in dataclasses.fields(cls)}
        own = {k[len(cls.prefix):]: v for k, v in params.items() if k.startswith(cls.prefix)}
        unknown = sorted(cls.prefix + k for k in own if k not in names or k in SHARED)
        if unknown:
            valid = sorted(cls.prefix + n for n in names if n not in SHARED)
            raise ValueError(f"{cls.__name__}: unknown parameter(s) {unknown}; valid: {', '.join(valid)}")
        shared = {k: params[k] for k in SHARED if k in params}
        return cls(**shared, **own)

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.type in ("int", "float") and (isinstance(v, bool) or not isinstance(v, int | float)):
                raise ValueError(f"{self.prefix}{f.name} must be a number, got {v!r}")
            if f.type == "int" and int(v) != v:
                raise ValueError(f"{self.prefix}{f.name} must be an integer, got {v!r}")
            if f.type.startswith("tuple") and isinstance(v, list):
                object.__setattr__(self, f.name, tuple(v))
        if self.serving_max_num_seqs < 1:
            raise ValueError(f"serving_max_num_seqs must be >= 1, got {self.serving_max_num_seqs!r}")
        _one_of(self, "serving_on_mismatch", ON_MISMATCH)
        _one_of(self, "serving_calibration", CALIBRATIONS)


def _positive(obj: Any, *names: str) -> None:
    for n in names:
        v = getattr(obj, n)
        if not v > 0:
            raise ValueError(f"{obj.prefix}{n} must be > 0, got {v!r}")


def _one_of(obj: Any, name: str, valid: tuple[str, ...]) -> None:
    v = getattr(obj, name)
    if v not in valid:
        where = "" if name in SHARED else obj.prefix
        raise ValueError(f"{where}{name} must be one of {', '.join(valid)}, got {v!r}")


def _seed_count(obj: Any, name: str) -> None:
    v = getattr(obj, name)
    if isinstance(v, bool) or not isinstance(v, int | float) or int(v) != v or v < 1:
        raise ValueError(f"{obj.prefix}{name} must be a number of seeds, a whole number >= 1 (the sweep runs seeds "
                         f"seed, seed + 1, ..., seed + n - 1), got {v!r}")
    object.__setattr__(obj, name, int(v))


@dataclass(frozen=True)
class PARSSettings(_Settings):
    """The PARS driver's settings (`pars_*` keys)."""

    prefix: ClassVar[str] = "pars_"

    n_train: int = 60  # ShareGPT prompts with ChatGPT lengths for training rankers (10 % validation)
    n_test: int = 40  # held-out prompts: ranking quality and the scheduling workloads
    max_prompt_tokens: int = 256  # longer prompts are skipped
    proxy_pool: int = 0  # further prompts (reasoning proxy, mixed-workload text), used by neither set
    engine: dict[str, Any] = field(default_factory=dict)  # EngineConfig overrides for every PARS engine
    collect_train: int = 20  # training prompts the serving model answers ...
    collect_test: int = 20  # ... and test prompts (its own lengths: transfer)
    collect_samples: int = 1  # samples per prompt
    collect_max_tokens: int = 16  # generation cap (a response that hits it is marked truncated)
    collect_max_num_seqs: int = 16  # engine concurrency while collecting
    collect_sampling: dict[str, Any] = field(default_factory=dict)  # LengthSampling overrides (template, stop, chat)
    train: dict[str, Any] = field(default_factory=dict)  # TrainConfig overrides of every ranker
    ablation: dict[str, Any] = field(default_factory=dict)  # settings of the delta/margin/backbone ablations
    backbones: tuple[str, ...] = ("minilm",)  # backbone ablation: prepared names, folders or hub ids
    backbone_train: dict[str, Any] = field(default_factory=dict)  # backbone and truncation ablations: TrainConfig
    # overrides on top of `ablation`
    backbone_test: int | None = None  # ... scored on a seeded sample of this many test prompts (None: all)
    truncations: tuple[int, ...] = ()  # truncation ablation: prompt tokens PARS reads (empty: not run)
    seeds: tuple[int, ...] = (42,)  # training seeds of every method under the ablation settings (mean ± sd)
    partner_seeds: int | None = None  # PARS with sampled partners (the costly pair sampling) on the first this many
    # of `seeds` (None: all)
    starvation_limit: int | None = 1000  # score-SJF guard: admissions before a waiting request is promoted
    sim_steptime: str = "h100-sxm_llama-3-8b"  # simulator step-time profile (paper scale)
    sim_overrides: dict[str, Any] = field(default_factory=dict)  # SimConfig overrides of that profile's limits
    sim_n: int = 400  # simulated requests per run (test prompts repeated)
    sim_proxy_n: int | None = None  # ... of the reasoning-proxy sweep (None: sim_n; its long outputs cost ~10× more)
    sim_loads: tuple[float, ...] = (0.5, 2.0)  # request rate / saturation throughput
    sim_seeds: int = 5  # seeds of the simulator sweeps (seed, seed + 1, ...): workload draw and arrivals each
    serving_n: int = 10  # real engine: ShareGPT test requests ...
    serving_loads: tuple[float, ...] = (2.0,)  # ... Poisson arrivals at load x the engine's capacity for them
    # (llmsched.experiments.capacity); several: the smallest whose simulated oracle-SJF gain reaches serving_target_gain
    # on other draws (other seeds) than the served one ...
    serving_target_gain: float = 1.5  # ... (FCFS / oracle SJF normalized latency, simulated with this engine's
    # step-time profile)
    serving_max_output_tokens: int = 256  # ... whose ChatGPT response is at most this long
    serving_policies: tuple[str, ...] | None = None  # labels served (None: all)
    serving_repeats: int = 1  # runs per policy, interleaved (A B C A B C ...): intervals need >= 2
    serving_ewsjf: bool = False  # EWSJF on the same workload (the head-to-head on the real engine)
    serving_own: bool = False  # the serving model answering naturally, PARS trained on its own lengths (serve_own)
    agreement_calibrate: bool = False  # the simulator replays the serve runs with serving_steptime as checked (or
    # recalibrated) before them; True: with step times measured on this engine right after the runs
    reasoning_model: str = ""  # reasoning stage: a reasoning model (hub id or path); empty: off
    reasoning_dataset: str = "math-plus"  # ... the dataset of its prompts (llmsched.workload.hf_datasets)
    reasoning_n: int = 2000  # ... prompts it answers
    reasoning_max_tokens: int = 8192  # ... its generation cap
    reasoning_max_model_len: int = 10240  # ... its context length
    # headroom stage (llmsched.experiments.headroom, which checks these): where FCFS/policy ratios grow
    headroom_loads: tuple[float, ...] = (0.5, 1.0, 2.0, 3.0)  # request rate / saturation throughput
    headroom_gammas: tuple[float, ...] = (1.5, 2.0)  # heavier tails: output lengths L' = c·L^gamma, same mean
    headroom_seeds: int = 5  # seeds (seed, seed + 1, ...): workload draw and arrivals each; >= 5
    headroom_n: int = 2000  # requests per run of the ShareGPT maps (test prompts repeated)
    headroom_proxy_n: int = 1200  # requests per run of the reasoning-proxy map (0: not run)
    headroom_proxy_loads: tuple[float, ...] = (2.0, 3.0)  # ... at these loads (its runs cost ~10× more)
    headroom_lengths_factors: tuple[int, ...] = (1, 4)  # run lengths / headroom_n at the top loads (with 1) ...
    headroom_lengths_loads: tuple[float, ...] = (3.0,)  # ... at these loads (of headroom_loads), same arrival rate
    # preemption stage (llmsched.experiments.preemption): policies that choose whom to preempt, under KV pressure
    kv_fractions: tuple[float, ...] = ()  # KV pools as fractions of the simulator profile's blocks (empty: off)
    kv_load: float = 1.5  # request rate / saturation throughput of every run
    kv_n: int = 1000  # requests per run (test prompts repeated)
    kv_seeds: int = 5  # seeds (seed, seed + 1, ...): workload draw and arrivals each
    kv_serving_blocks: int = 0  # real engine with a small KV cache: blocks (0: off) ...
    kv_serving_block_size: int = 32  # ... of this many tokens, the serve stage's requests ...
    kv_serving_policies: tuple[str, ...] = ("fcfs", "pars", "pars-rank", "ltr", "ltr-released")  # ... these policies

    def __post_init__(self) -> None:
        _seed_count(self, "sim_seeds")
        super().__post_init__()
        _positive(self, "n_train", "n_test", "max_prompt_tokens", "collect_samples", "collect_max_tokens",
                  "collect_max_num_seqs", "sim_n", "serving_n", "serving_target_gain", "serving_max_output_tokens",
                  "serving_repeats")
        if self.partner_seeds is not None and not 1 <= self.partner_seeds <= len(self.seeds):
            raise ValueError(f"pars_partner_seeds must be None (every seed) or 1..{len(self.seeds)} (of pars_seeds), "
                             f"got {self.partner_seeds!r}")
        if self.sim_proxy_n is not None and self.sim_proxy_n < 1:
            raise ValueError(f"pars_sim_proxy_n must be None (pars_sim_n) or >= 1, got {self.sim_proxy_n!r}")
        if self.proxy_pool < 0 or self.collect_train < 0 or self.collect_test < 0:
            raise ValueError(f"pars_proxy_pool, pars_collect_train and pars_collect_test must be >= 0, got "
                             f"{self.proxy_pool}, {self.collect_train}, {self.collect_test}")
        if not self.sim_loads or any(not x > 0 for x in self.sim_loads):
            raise ValueError(f"pars_sim_loads must be positive numbers, got {self.sim_loads!r}")
        if not self.serving_loads or any(isinstance(x, bool) or not isinstance(x, int | float) or not x > 0
                                         for x in self.serving_loads):
            raise ValueError(f"pars_serving_loads must be positive multiples of the engine's capacity, got "
                             f"{self.serving_loads!r}")
        check_headroom(self)
        _positive(self, "kv_load", "kv_n", "kv_serving_block_size")
        if self.kv_serving_blocks < 0:
            raise ValueError(f"pars_kv_serving_blocks must be >= 0 (0: off), got {self.kv_serving_blocks}")
        _seed_count(self, "kv_seeds")
        if any(not 0 < f <= 1 for f in self.kv_fractions):
            raise ValueError(f"pars_kv_fractions must lie in (0, 1], got {self.kv_fractions!r}")
        if self.kv_fractions and self.kv_seeds < 2:
            raise ValueError(f"pars_kv_seeds must be >= 2 for intervals, got {self.kv_seeds}")


@dataclass(frozen=True)
class EWSJFSettings(_Settings):
    """The EWSJF driver's settings (`ewsjf_*` keys)."""

    prefix: ClassVar[str] = "ewsjf_"

    sim_steptime: str = "a100-80gb_llama-2-13b"  # simulator step-time profile (the paper's Llama-2-13B / A100)
    max_queues: int = DEFAULT_MAX_QUEUES  # Refine-and-Prune's cap on the number of queues
    sample_n: int = 500  # partition sample the queues are learned from (own draw: seed + TUNE_SEED_OFFSET)
    presets: tuple[str, ...] = ("100-2000",)  # mixed prompt-length workloads (bimodal short/long, outputs 1-100)
    sim_n: int = 300  # requests per simulated run
    sim_loads: tuple[float, ...] = (0.5, 1.5)  # request rate / saturation throughput
    sim_seeds: int = 5  # seeds of the sim sweep (seed, seed + 1, ...): workload draw and arrivals each
    tune_load: float = 1.5  # tuning workload: rate / saturation throughput
    tune_n: int = 200  # requests of the tuning workload (own draw)
    tune_trials: int = 3  # TPE trials (the study resumes from its sqlite file)
    tune_noise_seeds: int = 3  # further tuning-workload draws re-evaluating the defaults and the tuned parameters
    online_every_s: float = 2.0  # online tuner: re-tune every this many seconds of engine time
    serving_n: int = 12  # real engine: requests of the 100-2000 mix cut from ShareGPT text ...
    serving_load: float = 2.0  # ... Poisson arrivals at this multiple of the engine's capacity for them
    serving_policies: tuple[str, ...] | None = None  # labels served (None: all)
    serving_repeats: int = 1  # runs per policy, interleaved (A B C A B C ...): intervals need >= 2

    # EWSJF under the authors' benchmark protocol (llmsched.experiments.protocol, which checks these values)
    protocol_steptimes: tuple[str, ...] = ("a100-80gb_llama-2-13b", "a100-80gb_llama-3-8b", "h100-sxm_llama-3-8b")
    protocol_presets: tuple[str, ...] = ("100-2000", "100-16000")  # prompt-length ranges (tokens)
    protocol_prompts: str = "uniform"  # prompt-length distribution in the range: uniform | bimodal
    protocol_rates: tuple[float, ...] = (10.0, 20.0)  # constant-interval arrivals (req/s)
    protocol_n: int = 400  # requests per benchmark run
    protocol_seeds: int = 5  # prompt-length draws per condition (seed, seed + 1, ...): the intervals' sample
    protocol_max_tokens: int = 100  # max_tokens of every request
    protocol_outputs: str = "fixed"  # fixed: every request generates max_tokens; uniform: drawn in [1, max_tokens]
    protocol_max_num_batched_tokens: int = 2048  # token budget (vLLM 0.11's default; the later script: 7000)
    protocol_max_num_seqs: int = 128
    protocol_reserve_full_prompt: bool = False  # admission checks the whole prompt's KV blocks (vLLM's
    # scheduler_reserve_full_isl, vLLM PR #37307, default in 0.32); False: the first chunk's, as vLLM 0.11 did
    protocol_policies: tuple[str, ...] = ("fcfs", "prompt-sjf", "ewsjf")  # compared labels (fcfs: the baseline)
    protocol_scoring_delay_s: float = 0.0  # > 0: also EWSJF with this wait added to every step ("ewsjf+wait")
    protocol_sweep_steptime: str = "a100-80gb_llama-2-13b"  # sweeps: profile, preset, rate, requests per run
    protocol_sweep_preset: str = "100-2000"
    protocol_sweep_rate: float = 20.0
    protocol_sweep_n: int = 300
    protocol_sweep_kv_blocks: tuple[int, ...] = (0, 1000, 500, 300, 200, 150)  # num_blocks (0: the profile's)
    protocol_sweep_budgets: tuple[int, ...] = (512, 1024, 2048, 4096, 8192)  # max_num_batched_tokens
    protocol_workers: int = 2  # simulation processes
    # the protocol scaled down onto the real engine (ProtocolExperiments.engine_runs): requests per run (0: off) ...
    protocol_engine_n: int = 0
    protocol_engine_preset: str = "100-2000"  # ... prompt lengths uniform in this range, cut from ShareGPT text ...
    protocol_engine_load: float = 2.0  # ... constant-interval arrivals at this multiple of the engine's capacity
    protocol_engine_repeats: int = 3  # ... interleaved runs per policy (protocol_policies)

    def __post_init__(self) -> None:
        _seed_count(self, "sim_seeds")
        super().__post_init__()
        _positive(self, "max_queues", "sample_n", "sim_n", "tune_load", "tune_n", "tune_trials", "tune_noise_seeds",
                  "online_every_s", "serving_n", "serving_load", "serving_repeats")
        if not self.sim_loads or any(not x > 0 for x in self.sim_loads):
            raise ValueError(f"ewsjf_sim_loads must be positive numbers, got {self.sim_loads!r}")


@dataclass(frozen=True)
class HeadToHeadSettings(_Settings):
    """The head-to-head driver's own settings (`h2h_*` keys); it also reads PARSSettings and EWSJFSettings."""

    prefix: ClassVar[str] = "h2h_"

    mixed_n: int = 200  # requests of the mixed workload
    loads: tuple[float, ...] = (0.5, 1.5)  # rate / saturation throughput
    seeds: int = 5  # seeds of each workload's sweep (seed, seed + 1, ...): workload draw and arrivals each

    def __post_init__(self) -> None:
        _seed_count(self, "seeds")
        super().__post_init__()
        _positive(self, "mixed_n")
        if not self.loads or any(not x > 0 for x in self.loads):
            raise ValueError(f"h2h_loads must be positive numbers, got {self.loads!r}")


def check_headroom(s: Any) -> None:
    """ValueError naming the bad `pars_headroom_*` value of a PARSSettings (or anything with those fields)."""
    def numbers(name: str, values: Any, ok: Any, what: str) -> None:
        vals = list(values) if isinstance(values, list | tuple) else None
        if not vals or any(isinstance(v, bool) or not isinstance(v, int | float) or not ok(v) for v in vals):
            raise ValueError(f"pars_headroom_{name} must be a non-empty list of {what}, got {values!r}")

    def count(name: str, v: Any, low: int) -> None:
        if isinstance(v, bool) or not isinstance(v, int | float) or int(v) != v or v < low:
            raise ValueError(f"pars_headroom_{name} must be a whole number >= {low}, got {v!r}")

    numbers("loads", s.headroom_loads, lambda v: v > 0, "positive numbers (request rate / saturation throughput)")
    if not isinstance(s.headroom_gammas, list | tuple):
        raise ValueError(f"pars_headroom_gammas must be a list of exponents > 1 (may be empty), got "
                         f"{s.headroom_gammas!r}")
    if s.headroom_gammas:
        numbers("gammas", s.headroom_gammas, lambda v: v > 1, "exponents > 1 (1 is the untransformed ShareGPT run)")
    count("seeds", s.headroom_seeds, 5)
    count("n", s.headroom_n, 10)
    count("proxy_n", s.headroom_proxy_n, 0)
    if s.headroom_proxy_n:
        count("proxy_n", s.headroom_proxy_n, 10)
        numbers("proxy_loads", s.headroom_proxy_loads, lambda v: v > 0, "positive numbers")
    numbers("lengths_factors", s.headroom_lengths_factors,
            lambda v: v >= 1 and int(v) == v, "whole numbers >= 1 (run length / pars_headroom_n)")
    if 1 not in s.headroom_lengths_factors:
        raise ValueError(f"pars_headroom_lengths_factors must include 1 (the map's own runs, the reference of the "
                         f"longer ones), got {s.headroom_lengths_factors!r}")
    if len(s.headroom_lengths_factors) > 1:
        numbers("lengths_loads", s.headroom_lengths_loads, lambda v: v > 0, "positive numbers")
        missing = [x for x in s.headroom_lengths_loads if not any(math.isclose(x, y) for y in s.headroom_loads)]
        if missing:
            raise ValueError(f"pars_headroom_lengths_loads {missing} are not in pars_headroom_loads "
                             f"{list(s.headroom_loads)}: the longer runs are held at the rate of the map's run")
