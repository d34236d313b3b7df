"""The ranker study: train every method on the same prompts and backbone, then tabulate ranking quality.

    tables = run_ranker_study(split, StudyConfig(...), out_dir, target_lengths=gemma_table)

The main comparison trains `StudyConfig.methods` (every training objective by default) and evaluates them beside
every baseline and oracle of the predictor registry (llmsched.predictors.registry); transfer and ablations are
PARS's.

Writes into `out_dir` (each table as .parquet, .csv and .md):
    quality     method × evaluation target: Kendall tau, pairwise accuracy (all pairs, and pairs with relative
                gap >= 0.2) on the held-out test prompts
    transfer    rankers trained on one model's lengths (ShareGPT's ChatGPT answers, or the target model's
                collected lengths) evaluated against the other's; and the ceiling of transfer: one model's true
                lengths as scores for the other's
    methods_ablation_settings
                every method under `ablation_overrides` (on CPU the frozen encoder: identical features for all
                losses), PARS with both pair samplings, once per seed of `seeds`
    methods_seeds
                the same summarised over seeds: mean and sample standard deviation of each quality figure, and
                whether the rankers were fine-tuned or are probes of a frozen encoder
    noise       the label-noise ceiling of each evaluation target (llmsched.predictors.noise): tau between
                samples, and the ceiling of the median target; one sample per prompt (ChatGPT's): not estimable
    ablation_delta, ablation_margin
                PARS with delta in {0, 0.1, 0.2, 0.4} and several margins (on `ablation_overrides`, e.g. a
                frozen encoder on CPU; the table says which)
    ablation_backbone
                PARS on each of `backbones` (encoders, causal decoders, encoder-decoders; on
                `ablation_overrides` + `backbone_overrides`, every backbone with `backbone_pooling`): kind,
                parameters, width, training prompts, quality (on `backbone_test` test prompts when set)
    ablation_truncation
                (with `truncations`) PARS reading at most each number of prompt tokens, on the backbone settings:
                share of test prompts the limit cuts, quality (on the backbone ablation's test prompts)
    scores      every test prompt's score under every main ranker (for figures)
    study.json  the configs, checkpoint folders and timings behind every row

Evaluation targets: "chatgpt" = ShareGPT's recorded ChatGPT response lengths; "<model>" = lengths collected
from the serving model on a subset of the same prompts (median over ok samples, the training target as well;
prompts without an ok sample are left out and counted). Rows judged against a target with several samples per
prompt carry its `noise_ceiling` (the ceiling of the median target).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from llmsched.analysis.tables import to_markdown
from llmsched.predictors.base import Predictor
from llmsched.predictors.config import METHODS, PAIR_SAMPLING, TrainConfig
from llmsched.predictors.data import PromptSplit
from llmsched.predictors.metrics import kendall_tau, pairwise_accuracy
from llmsched.predictors.model import POOLINGS, backbone_kind
from llmsched.predictors.noise import median_lengths, noise_table
from llmsched.predictors.ranker import checkpoint_dir, train_cached
from llmsched.predictors.registry import PREDICTORS, names
from llmsched.predictors.trained import TrainedRanker
from llmsched.workload import Request

logger = logging.getLogger(__name__)

CHATGPT = "chatgpt"
PARS = "pars"  # the ranker the transfer and ablation runs train


@dataclass
class StudyConfig:
    """What the study trains. `train` holds TrainConfig overrides shared by all main runs (e.g. epochs).

    methods           the trained rankers of the main comparison (default: every training objective)
    """

    methods: tuple[str, ...] = METHODS
    train: dict[str, Any] = field(default_factory=dict)
    deltas: tuple[float, ...] = (0.0, 0.1, 0.2, 0.4)
    margins: tuple[float, ...] = (0.5, 1.0, 2.0)
    ablation_overrides: dict[str, Any] = field(default_factory=dict)
    backbones: tuple[str, ...] = ("minilm",)
    backbone_pooling: str = "mean"  # one pooling for every backbone (a causal decoder cannot use "cls")
    backbone_overrides: dict[str, Any] = field(default_factory=dict)  # on top of ablation_overrides: backbone and
    # truncation ablations only
    truncations: tuple[int, ...] = ()  # truncation ablation: PARS reading at most this many prompt tokens (off: ())
    backbone_test: int | None = None  # backbone and truncation ablations: a seeded sample of this many test prompts
    # (None: all; encoding the test set with a 100 M+ model is most of their cost)
    target_name: str = "gemma"  # the serving model whose collected lengths are the second target
    seed: int = 0
    seeds: tuple[int, ...] = (42,)  # training seeds of the methods-under-ablation-settings runs
    partner_seeds: int | None = None  # PARS with sampled partners on the first this many of `seeds` (None: all)

    def __post_init__(self) -> None:
        self.backbones = tuple(self.backbones)
        if not self.backbones or not all(isinstance(b, str) and b for b in self.backbones):
            raise ValueError(f"backbones must be a non-empty list of model names or folders, got {self.backbones!r}")
        self.truncations = tuple(int(x) for x in self.truncations)
        if any(t < 8 for t in self.truncations):
            raise ValueError(f"truncations must be token counts >= 8, got {self.truncations!r}")
        self.seeds = tuple(int(x) for x in self.seeds)
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be distinct integers, at least one, got {self.seeds!r}")
        if self.partner_seeds is not None and not 1 <= int(self.partner_seeds) <= len(self.seeds):
            raise ValueError(f"partner_seeds must be None or 1..{len(self.seeds)} (the number of seeds), got "
                             f"{self.partner_seeds!r}")
        if self.backbone_test is not None and self.backbone_test < 10:
            raise ValueError(f"backbone_test must be None or >= 10 test prompts, got {self.backbone_test!r}")
        if self.backbone_pooling not in POOLINGS:
            raise ValueError(f"backbone_pooling must be one of {POOLINGS}, got {self.backbone_pooling!r}")

    def train_config(self, method: str, **extra: Any) -> TrainConfig:
        return TrainConfig(**{**self.train, "method": method, **extra})


def rank_quality(predictor: Predictor | np.ndarray, prompts: list[str], lengths: np.ndarray) -> dict[str, float]:
    """Kendall tau and pairwise accuracies of a predictor (or precomputed scores) against true lengths."""
    s = predictor if isinstance(predictor, np.ndarray) else predictor.score(prompts)
    return {
        "n": len(prompts),
        "kendall_tau": kendall_tau(s, lengths),
        "pairwise_accuracy": pairwise_accuracy(s, lengths),
        "pairwise_accuracy_gap02": pairwise_accuracy(s, lengths, min_gap=0.2),
    }


def target_lengths_by_id(table: pd.DataFrame) -> tuple[dict[str, float], int]:
    """Median output tokens per prompt id over ok samples (the training target), and how many prompts had none."""
    return median_lengths(table)


QUALITY = ("kendall_tau", "pairwise_accuracy", "pairwise_accuracy_gap02")


def seed_summary(frame: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Mean and sample standard deviation over seeds of each quality figure, per group of `by`; `path` says
    whether the rankers were fine-tuned or are probes of a frozen encoder."""
    rows = []
    for key, group in frame.groupby(by, sort=False):
        row = dict(zip(by, key if isinstance(key, tuple) else (key,), strict=True))
        row["path"] = "probe (frozen encoder)" if bool(group["freeze_encoder"].iloc[0]) else "fine-tuned"
        row["seeds"] = len(group)
        for q in QUALITY:
            row[f"{q}_mean"] = float(group[q].mean())
            row[f"{q}_sd"] = float(group[q].std(ddof=1)) if len(group) > 1 else float("nan")
        rows.append(row)
    return pd.DataFrame(rows)


def _path(pred: Predictor) -> str:
    """How a ranker was trained: fine-tuned end to end, a probe of a frozen encoder, or "-" (not trained)."""
    if not isinstance(pred, TrainedRanker):
        return "-"
    return "probe (frozen encoder)" if pred.config.freeze_encoder else "fine-tuned"


def _with_target(requests: list[Request], lengths: dict[str, float]) -> tuple[list[str], np.ndarray]:
    kept = [r for r in requests if r.request_id in lengths]
    return [r.prompt for r in kept], np.array([lengths[r.request_id] for r in kept])


def _save(frame: pd.DataFrame, out: Path, name: str) -> None:
    frame.to_parquet(out / f"{name}.parquet", index=False)
    frame.to_csv(out / f"{name}.csv", index=False)
    (out / f"{name}.md").write_text(to_markdown(frame))


def run_ranker_study(
    split: PromptSplit,
    cfg: StudyConfig,
    out_dir: str | Path,
    target_lengths: pd.DataFrame | None = None,
    checkpoints: str | Path | None = None,
    progress: bool = True,
) -> dict[str, pd.DataFrame]:
    """Train, evaluate and write the study's tables (see the module docstring); returns them by name."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ck_root = Path(checkpoints) if checkpoints is not None else None
    t_start = time.perf_counter()
    train_p = [r.prompt for r in split.train]
    train_l = np.array([r.output_tokens for r in split.train], dtype=np.float64)
    test_p = [r.prompt for r in split.test]
    test_l = np.array([r.output_tokens for r in split.test], dtype=np.float64)
    targets: dict[str, tuple[list[str], np.ndarray]] = {CHATGPT: (test_p, test_l)}
    tgt_train: tuple[list[str], np.ndarray] | None = None
    missing = 0
    if target_lengths is not None:
        by_id, missing = target_lengths_by_id(target_lengths)
        targets[cfg.target_name] = _with_target(split.test, by_id)
        tgt_train = _with_target(split.train, by_id)
        if len(targets[cfg.target_name][0]) < 10:
            raise ValueError(f"too few test prompts with {cfg.target_name} lengths: "
                             f"{len(targets[cfg.target_name][0])} (need 10)")
        if len(tgt_train[0]) < 10:
            # NOTE: a profile may collect test prompts only (pars_collect_train: 0): the noise ceiling and the
            # ChatGPT-trained rankers on this model's lengths are measured, PARS trained on its lengths is not
            if len(tgt_train[0]):
                raise ValueError(f"too few training prompts with {cfg.target_name} lengths: {len(tgt_train[0])} "
                                 "(need 10, or none: then PARS is not trained on them)")
            tgt_train = None
    record: dict[str, Any] = {"config": dataclasses.asdict(cfg), "n_train": len(train_p), "n_test": len(test_p),
                              "target_prompts_without_ok_sample": missing, "runs": {}}

    def fit(label: str, tc: TrainConfig, prompts: list[str], lengths: np.ndarray) -> TrainedRanker:
        t = time.perf_counter()
        folder = None if ck_root is None else ck_root / checkpoint_dir(tc, prompts, lengths).name
        ranker = train_cached(tc, prompts, lengths, root=folder, progress=progress)
        ranker.cache_vectors = True  # a probe's evaluations reuse the backbone vectors of its prompt sets
        record["runs"][label] = {"config": tc.to_dict(), "seconds": time.perf_counter() - t,
                                 "checkpoint": str(folder or checkpoint_dir(tc, prompts, lengths)),
                                 "train_seconds": ranker.info.get("train_seconds")}
        return ranker

    # Main comparison: every method on ChatGPT lengths, plus the predictor-free baselines of the registry.
    main: dict[str, Predictor] = {m: fit(m, cfg.train_config(m), train_p, train_l) for m in cfg.methods}
    main.update({name: PREDICTORS[name].make(cfg.seed) for name in names("baseline")})
    rows, score_cols = [], {}
    for name, pred in main.items():
        score_cols[name] = pred.score(test_p)
        for target, (prompts, lengths) in targets.items():
            s = score_cols[name] if target == CHATGPT else pred.score(prompts)
            rows.append({"method": name, "train_lengths": CHATGPT if name in cfg.methods else "-",
                         "path": _path(pred), "eval_lengths": target, **rank_quality(s, prompts, lengths)})
    for target, (prompts, lengths) in targets.items():
        for name in names("oracle"):
            oracle = PREDICTORS[name].make(list(zip(prompts, lengths, strict=True)))
            rows.append({"method": name, "train_lengths": "-", "path": "-", "eval_lengths": target,
                         **rank_quality(oracle, prompts, lengths)})
    noise = {CHATGPT: {"target": CHATGPT, "prompts": len(test_p), "samples_per_prompt": 1,
                       "note": f"one answer per prompt; the source repeats {split.repeated_prompts} prompt texts with "
                               "different answers (ShareGPT: mostly greetings and 'continue', too few and unlike the "
                               "test prompts): not estimated"}}
    if target_lengths is not None:
        noise[cfg.target_name] = {"target": cfg.target_name,
                                  **noise_table(target_lengths, ids={r.request_id for r in split.test}),
                                  "note": "test prompts; ceiling of the median target under the Gaussian model of "
                                          "llmsched.predictors.noise"}
    tables = {"quality": pd.DataFrame(rows)}
    tables["quality"]["noise_ceiling"] = [noise[t].get("ceiling_median", np.nan)
                                          for t in tables["quality"]["eval_lengths"]]
    tables["noise"] = pd.DataFrame(list(noise.values()))
    scores = pd.DataFrame({"request_id": [r.request_id for r in split.test], "chatgpt_tokens": test_l, **score_cols})
    tables["scores"] = scores

    # Cross-model transfer: PARS trained on each model's lengths (on the target's only when the profile collected
    # training prompts), evaluated against each.
    if target_lengths is not None:
        trained = {CHATGPT: main.get(PARS) or fit(PARS, cfg.train_config(PARS), train_p, train_l)}
        if tgt_train is not None:
            trained[cfg.target_name] = fit(f"{PARS}-on-{cfg.target_name}", cfg.train_config(PARS), *tgt_train)
        rows = [{"method": PARS, "train_lengths": src, "n_train": len(train_p) if src == CHATGPT else
                 len(tgt_train[0]) if tgt_train is not None else 0, "eval_lengths": dst,
                 **rank_quality(pred, *targets[dst])}
                for src, pred in trained.items() for dst in targets]
        # The ceiling of any transfer: one model's true lengths used as the scores for the other's.
        both = [r for r in split.test if r.request_id in by_id]
        chatgpt_l = np.array([r.output_tokens for r in both], dtype=np.float64)
        target_l = np.array([by_id[r.request_id] for r in both])
        prompts = [r.prompt for r in both]
        rows += [{"method": "other model's true lengths", "train_lengths": src, "n_train": 0, "eval_lengths": dst,
                  **rank_quality(scores, prompts, truth)}
                 for src, dst, scores, truth in ((CHATGPT, cfg.target_name, chatgpt_l, target_l),
                                                 (cfg.target_name, CHATGPT, target_l, chatgpt_l))]
        tables["transfer"] = pd.DataFrame(rows)

    # Every method again under the ablation settings (on CPU: a linear probe of the frozen encoder, where all
    # methods see identical features and PARS can afford the paper's 10 random partners per prompt).
    rows = []
    variants: list[tuple[str, dict[str, Any]]] = [(m, {}) for m in cfg.methods]
    variants += [(PARS, {"pair_sampling": s}) for s in PAIR_SAMPLING]
    done: set[tuple[str, str, int]] = set()
    base_sampling = cfg.train_config(PARS, **cfg.ablation_overrides).pair_sampling
    for k, seed in enumerate(cfg.seeds):
        for method, extra in variants:
            tc = cfg.train_config(method, **{**cfg.ablation_overrides, **extra, "seed": seed})
            sampling = tc.pair_sampling if method == PARS else "-"
            if (method, sampling, seed) in done:
                continue
            if method == PARS and sampling != base_sampling and cfg.partner_seeds is not None \
                    and k >= cfg.partner_seeds:
                continue  # the other pair sampling on the first partner_seeds seeds only
            done.add((method, sampling, seed))
            pred = fit(f"{method}-{tc.pair_sampling}-ablation-settings-seed{seed}", tc, train_p, train_l)
            rows.append({"method": method, "pair_sampling": sampling, "seed": seed,
                         "freeze_encoder": tc.freeze_encoder, "head_hidden": tc.head_hidden,
                         **rank_quality(pred, test_p, test_l)})
    tables["methods_ablation_settings"] = pd.DataFrame(rows)
    tables["methods_seeds"] = seed_summary(tables["methods_ablation_settings"], ["method", "pair_sampling"])

    # Ablations of the pair filter and the margin (PARS, ChatGPT lengths).
    for knob, values in (("delta", cfg.deltas), ("margin", cfg.margins)):
        rows = []
        for v in values:
            tc = cfg.train_config(PARS, **{**cfg.ablation_overrides, knob: v})
            pred = fit(f"{PARS}-{knob}-{v}", tc, train_p, train_l)
            rows.append({knob: v, "freeze_encoder": tc.freeze_encoder, "pair_sampling": tc.pair_sampling,
                         **rank_quality(pred, test_p, test_l)})
        tables[f"ablation_{knob}"] = pd.DataFrame(rows)

    # Backbone ablation (PARS, ChatGPT lengths): the same head, loss and pooling on each backbone, scored on
    # `backbone_test` of the test prompts (the same sample for every backbone and truncation).
    bb_p, bb_l = test_p, test_l
    if cfg.backbone_test is not None and cfg.backbone_test < len(test_p):
        keep = np.sort(np.random.default_rng(cfg.seed).permutation(len(test_p))[: cfg.backbone_test])
        bb_p, bb_l = [test_p[i] for i in keep], test_l[keep]
    rows = []
    for backbone in cfg.backbones:
        tc = cfg.train_config(PARS, **{**cfg.ablation_overrides, **cfg.backbone_overrides, "backbone": backbone,
                                       "pooling": cfg.backbone_pooling})
        pred = fit(f"{PARS}-backbone-{backbone}", tc, train_p, train_l)
        enc = pred.model.encoder
        rows.append({"backbone": backbone, "kind": backbone_kind(enc), "architecture": type(enc).__name__,
                     "parameters_m": sum(x.numel() for x in enc.parameters()) / 1e6,
                     "width": pred.model.width, "pooling": tc.pooling,
                     "freeze_encoder": tc.freeze_encoder, "n_train": pred.info.get("n_train"),
                     **rank_quality(pred, bb_p, bb_l), "train_seconds": pred.info.get("train_seconds")})
    tables["ablation_backbone"] = pd.DataFrame(rows)

    # Truncation ablation (PARS, ChatGPT lengths, backbone settings): how much of the prompt the ranker reads.
    if cfg.truncations:
        rows = []
        for max_tokens in cfg.truncations:
            tc = cfg.train_config(PARS, **{**cfg.ablation_overrides, **cfg.backbone_overrides,
                                           "max_tokens": max_tokens})
            pred = fit(f"{PARS}-truncation-{max_tokens}", tc, train_p, train_l)
            full = [len(x) for x in pred.tokenizer(bb_p, add_special_tokens=True)["input_ids"]]
            rows.append({"max_tokens": max_tokens, "backbone": tc.backbone,
                         "test_prompts_truncated": float(np.mean(np.array(full) > max_tokens)),
                         "freeze_encoder": tc.freeze_encoder, "n_train": pred.info.get("n_train"),
                         **rank_quality(pred, bb_p, bb_l), "train_seconds": pred.info.get("train_seconds")})
        tables["ablation_truncation"] = pd.DataFrame(rows)

    for name, frame in tables.items():
        _save(frame, out, name)
    record["seconds"] = time.perf_counter() - t_start
    (out / "study.json").write_text(json.dumps(record, indent=2, default=str) + "\n")
    logger.info("ranker study written to %s in %.0f s", out, record["seconds"])
    return tables
