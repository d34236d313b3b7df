"""Response-length predictors: the PARS pairwise ranker, its baselines, training, metrics and request scoring.

    base        Predictor interface (score(prompts) -> scores, lower = shorter) and score_requests
    heuristics  prompt length, random, oracle
    registry    PREDICTORS: every predictor the ranker study compares, by name
    model       encoder + pooled vector + linear head
    losses      margin ranking (PARS), ListMLE (LTR), MSE on log length (pointwise), bucket cross entropy
    objectives  OBJECTIVES: one class per training method (batches, loss, labels, scores)
    pairs       PARS training pairs filtered by relative length gap
    config      TrainConfig, METHODS
    train       the training loop (train_ranker)
    trained     TrainedRanker (a Predictor) and its checkpoint format
    ranker      the training cache (train_cached)
    metrics     Kendall's tau-b, pairwise accuracy
    study       the ranker study: every predictor trained and evaluated, ranking-quality tables
    data        the prompt split the study and the PARS experiments share
    scheduling  scoring a workload with several rankers, their SJF policies, the reasoning proxy
"""

from llmsched.predictors.base import Predictor, ScoreReport, check_prompts, score_requests
from llmsched.predictors.config import METHODS, TrainConfig
from llmsched.predictors.heuristics import OraclePredictor, PromptLengthPredictor, RandomPredictor
from llmsched.predictors.metrics import kendall_tau, pairwise_accuracy
from llmsched.predictors.objectives import OBJECTIVES, Objective
from llmsched.predictors.pairs import filter_pairs, relative_gap, sample_pairs
from llmsched.predictors.ranker import checkpoint_dir, data_hash, train_cached
from llmsched.predictors.registry import PREDICTORS, PredictorEntry
from llmsched.predictors.train import train_ranker
from llmsched.predictors.trained import TrainedRanker, load_ranker

__all__ = [
    "METHODS",
    "OBJECTIVES",
    "PREDICTORS",
    "Objective",
    "OraclePredictor",
    "Predictor",
    "PredictorEntry",
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
