"""Models of the crowd: workers, batches, assignments and answers, the gold standard, marketplace records."""
from .crowd import Assignment, AssignmentDecisionLog, Batch, BatchItem, ClipAnswer, Worker
from .gold import ExpertAnnotation, GoldLabel
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

__all__ = ["Assignment", "AssignmentDecisionLog", "Batch", "BatchItem", "Bonus", "ClipAnswer", "ExpertAnnotation",
           "GoldLabel", "Hit", "HitAssignment", "InhouseTask", "MarketplaceCall", "MarketplaceQualification",
           "ProlificStudy", "Worker", "WorkerBlock"]
