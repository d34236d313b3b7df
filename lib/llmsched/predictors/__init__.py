"""Response-length predictors: the PARS pairwise ranker, its baselines, training, metrics and request scoring.

    base        Predictor interface (score(prompts) -> scores, lower = shorter) and score_requests
    heuristics  prompt length, random, oracle
    model       encoder + pooled vector + linear head
    losses      margin ranking (PARS), ListMLE (LTR), MSE on log length (pointwise), bucket cross entropy
    pairs       PARS training pairs filtered by relative length gap
    train       TrainConfig and the training loop
    ranker      TrainedRanker (a Predictor), checkpoints, the training cache
    metrics     Kendall's tau-b, pairwise accuracy
    evaluate    ranking-quality tables
"""

from llmsched.predictors.base import Predictor, ScoreReport, check_prompts, score_requests
from llmsched.predictors.heuristics import OraclePredictor, PromptLengthPredictor, RandomPredictor
from llmsched.predictors.metrics import kendall_tau, pairwise_accuracy
from llmsched.predictors.pairs import filter_pairs, relative_gap, sample_pairs
from llmsched.predictors.ranker import TrainedRanker, checkpoint_dir, data_hash, load_ranker, train_cached
from llmsched.predictors.train import METHODS, TrainConfig, train_ranker

__all__ = [
    "METHODS",
    "OraclePredictor",
    "Predictor",
    "PromptLengthPredictor",
    "RandomPredictor",
    "ScoreReport",
    "TrainConfig",
    "TrainedRanker",
    "check_prompts",
    "checkpoint_dir",
    "data_hash",
    "filter_pairs",
    "kendall_tau",
    "load_ranker",
    "pairwise_accuracy",
    "relative_gap",
    "sample_pairs",
    "score_requests",
    "train_cached",
    "train_ranker",
]
