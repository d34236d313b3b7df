"""EWSJF: Refine-and-Prune partitioning, dynamic routing with bubble queues, density-weighted scoring,
Bayesian meta-optimisation (Optuna), and the authors' released variant."""

from llmsched.policies.ewsjf.partition import Partition, QueueStats, kmeans_1d, refine_and_prune
from llmsched.policies.ewsjf.queue import EWSJFQueue, ReleasedEWSJFQueue
from llmsched.policies.ewsjf.scoring import EWSJFParams, ewsjf_score, released_score

__all__ = [
    "EWSJFParams",
    "EWSJFQueue",
    "Partition",
    "QueueStats",
    "ReleasedEWSJFQueue",
    "ewsjf_score",
    "kmeans_1d",
    "refine_and_prune",
    "released_score",
]
