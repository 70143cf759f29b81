"""avcrowd model zoo: plain PyTorch proposal models (CAV-MAE, LEAP, Crab), preprocessing and a batch
inference runner. Never imports Django; needs torch + numpy (PyAV and transformers only lazily)."""

from .base import (
    MODALITIES,
    CheckpointError,
    ClipModel,
    LoadReport,
    available,
    build,  # noqa: F401
    check_checkpoint,
    compile_blocks,
    load_checkpoint,
    read_state_dict,
)

__all__ = [
    "MODALITIES",
    "CheckpointError",
    "ClipModel",
    "LoadReport",
    "available",
    "build",
    "check_checkpoint",
    "compile_blocks",
    "load_checkpoint",
    "read_state_dict",
]
