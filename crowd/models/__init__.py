"""Models of the crowd: workers, batches, assignments and answers, expert annotations, marketplace records."""

from .crowd import Assignment, AssignmentDecisionLog, Batch, BatchItem, ClipAnswer, Worker, WorkerStatusLog
from .gold import ExpertAnnotation
from .marketplace import (
    Bonus,
    Hit,
    HitAssignment,
    InhouseTask,
    MarketplaceCall,
    MarketplaceQualification,
    ProlificStudy,
    WorkerBlock,
)

__all__ = [
    "Assignment",
    "AssignmentDecisionLog",
    "Batch",
    "BatchItem",
    "Bonus",
    "ClipAnswer",
    "ExpertAnnotation",
    "Hit",
    "HitAssignment",
    "InhouseTask",
    "MarketplaceCall",
    "MarketplaceQualification",
    "ProlificStudy",
    "Worker",
    "WorkerBlock",
    "WorkerStatusLog",
]
