"""Common interface, registry and checkpoint loading for the proposal models.

Every model is a :class:`ClipModel`: ``predict(batch)`` takes the batch produced by
:func:`models_zoo.preprocess.collate` and returns ``{"a"|"v"|"av": Tensor[B, num_classes]}``
(higher = more likely; CAV-MAE gives logits, LEAP probabilities, Crab matched-class similarities).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

log = logging.getLogger(__name__)

MODALITIES = ("a", "v", "av")
NUM_CLASSES = 309


class CheckpointError(Exception):
    """A checkpoint cannot be used for the requested architecture; the message names the keys."""


class ClipModel(nn.Module):
    """Base class: a batch of decoded clips in, per input modality a [B, num_classes] score out."""

    arch: str = "?"
    num_classes: int = NUM_CLASSES

    def predict(
        self, batch: dict[str, torch.Tensor], modalities: tuple[str, ...] = MODALITIES
    ) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    @classmethod
    def checkpoint_check_config(cls, cfg: dict[str, Any]) -> dict[str, Any]:
        """The config to build this architecture's skeleton with when only a checkpoint's fit is checked
        (no inputs, no other weight files); see :func:`check_checkpoint`."""
        return cfg

    def load_checkpoint(self, path, strict: bool = True) -> "LoadReport":
        return load_checkpoint(self, path, strict=strict)

    @staticmethod
    def check_modalities(modalities) -> tuple[str, ...]:
        mods = tuple(modalities)
        bad = [m for m in mods if m not in MODALITIES]
        if bad or not mods:
            raise ValueError(f"unknown modalities {bad or mods!r}; allowed: {', '.join(MODALITIES)}")
        return mods


# ------------------------------------------------------------------------------------------------
# Checkpoints
# ------------------------------------------------------------------------------------------------


@dataclass
class LoadReport:
    path: str
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, tuple, tuple]] = field(default_factory=list)  # key, ckpt, model

    @property
    def fits(self) -> bool:
        return not self.missing and not self.mismatched

    def describe(self) -> str:
        parts = [f"{len(self.loaded)} tensors loaded"]
        if self.missing:
            parts.append(f"missing in checkpoint ({len(self.missing)}): {', '.join(self.missing)}")
        if self.unexpected:
            parts.append(f"unexpected in checkpoint ({len(self.unexpected)}): {', '.join(self.unexpected)}")
        if self.mismatched:
            parts.append(
                "shape mismatch (%d): %s"
                % (
                    len(self.mismatched),
                    ", ".join(f"{k} checkpoint {list(a)} vs model {list(b)}" for k, a, b in self.mismatched),
                )
            )
        return "; ".join(parts)


def read_state_dict(path) -> dict[str, torch.Tensor]:
    """Read a local .pth/.pt/.bin (or .safetensors) file into a flat state dict, unwrapping
    {"state_dict"|"model"|"module": ...} and stripping a DataParallel ``module.`` prefix."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"checkpoint {p} does not exist or is not a file")
    try:
        if p.suffix == ".safetensors":
            from safetensors.torch import load_file  # noqa: PLC0415

            sd = load_file(str(p))
        else:
            sd = torch.load(str(p), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"checkpoint {p} cannot be read ({type(exc).__name__}: {exc})") from exc
    for wrapper in ("state_dict", "model", "module"):
        if isinstance(sd, dict) and wrapper in sd and isinstance(sd[wrapper], dict):
            sd = sd[wrapper]
    if not isinstance(sd, dict) or not all(isinstance(k, str) for k in sd):
        raise CheckpointError(f"checkpoint {p} does not hold a state dict (got {type(sd).__name__})")
    out = {}
    for k, v in sd.items():
        if not torch.is_tensor(v):
            continue
        while k.startswith("module."):
            k = k[len("module.") :]
        out[k] = v
    if not out:
        raise CheckpointError(f"checkpoint {p} holds no tensors")
    return out


def compare_state_dict(model: nn.Module, sd: dict[str, torch.Tensor], path: str = "") -> LoadReport:
    own = model.state_dict()
    rep = LoadReport(path=str(path))
    for k, v in own.items():
        if k not in sd:
            rep.missing.append(k)
        elif tuple(sd[k].shape) != tuple(v.shape):
            rep.mismatched.append((k, tuple(sd[k].shape), tuple(v.shape)))
        else:
            rep.loaded.append(k)
    rep.unexpected = [k for k in sd if k not in own]
    return rep


def load_checkpoint(
    model: nn.Module,
    path,
    *,
    strict: bool = True,
    prefix: str = "",
    arch: str | None = None,
    refuse_unexpected: bool = False,
) -> LoadReport:
    """Load `path` into `model`. Every missing/unexpected key and shape mismatch is logged and kept
    in the returned report. strict=True refuses (CheckpointError, nothing loaded) when a key is
    missing or a shape differs (and, with refuse_unexpected, when the file holds a key the model does
    not have: torch's strict semantics); strict=False loads every tensor whose name and shape match."""
    sd = read_state_dict(path)
    if prefix:
        sd = {k[len(prefix) :]: v for k, v in sd.items() if k.startswith(prefix)}
    rep = compare_state_dict(model, sd, str(path))
    name = arch or getattr(model, "arch", type(model).__name__)
    for k in rep.missing:
        log.warning("%s: key missing in checkpoint %s: %s", name, path, k)
    for k in rep.unexpected:
        log.warning("%s: unexpected key in checkpoint %s: %s", name, path, k)
    for k, a, b in rep.mismatched:
        log.warning("%s: shape mismatch in checkpoint %s: %s %s vs model %s", name, path, k, a, b)
    if strict and (not rep.fits or (refuse_unexpected and rep.unexpected)):
        raise CheckpointError(f"checkpoint {path} does not fit architecture {name}: {rep.describe()}")
    if not rep.loaded:
        raise CheckpointError(f"checkpoint {path} shares no tensor with architecture {name}: {rep.describe()}")
    copy_loaded(model, sd, rep)
    return rep


def copy_loaded(model: nn.Module, sd: dict[str, torch.Tensor], rep: LoadReport) -> None:
    """Copy the tensors ``rep`` found fitting (name and shape) from ``sd`` into ``model``."""
    own = model.state_dict()
    if any(v.is_meta for v in own.values()):
        return  # a skeleton (check_checkpoint): nothing to copy into
    with torch.no_grad():
        for k in rep.loaded:
            own[k].copy_(sd[k].to(own[k].dtype))


# ------------------------------------------------------------------------------------------------
# Registry
# ------------------------------------------------------------------------------------------------

_REGISTRY: dict[str, Callable[..., ClipModel]] = {}
_PRESETS: dict[str, dict[str, dict[str, Any]]] = {}


def register(arch: str, presets: dict[str, dict[str, Any]], model_class: type | None = None):
    def deco(factory):
        factory.model_class = model_class or ClipModel
        _REGISTRY[arch] = factory
        _PRESETS[arch] = presets
        return factory

    return deco


def _ensure_registered():
    # importing the model modules registers them (they need torch only at import time)
    from . import cavmae, crab, leap  # noqa: F401, PLC0415


def available() -> dict[str, list[str]]:
    _ensure_registered()
    return {a: sorted(p) for a, p in _PRESETS.items()}


def resolve_config(arch: str, config: dict | str | None) -> dict[str, Any]:
    _ensure_registered()
    if arch not in _REGISTRY:
        raise ValueError(f"unknown architecture {arch!r}; allowed: {', '.join(sorted(_REGISTRY))}")
    presets = _PRESETS[arch]
    if config is None:
        config = "base"
    if isinstance(config, str):
        if config in presets:
            return dict(presets[config])
        if config.strip().startswith("{"):
            config = json.loads(config)
        else:
            raise ValueError(f"unknown preset {config!r} for {arch}; allowed: {', '.join(sorted(presets))}")
    cfg = dict(presets[config.get("preset", "base")])
    cfg.update({k: v for k, v in config.items() if k != "preset"})
    return cfg


def build(
    arch: str,
    config: dict | str | None = "base",
    checkpoint=None,
    device="cpu",
    dtype: torch.dtype = torch.float32,
    strict: bool = True,
) -> ClipModel:
    """Build a model: `arch` in {"cavmae", "leap", "crab"}; `config` a preset name ("tiny",
    "base"/"full") or a dict (optionally {"preset": name, **overrides}); `checkpoint` a local path
    (or None for random init / weights named in the config). Returns the model in eval mode."""
    cfg = resolve_config(arch, config)
    dev = torch.device(device)
    if dev.type == "cpu":
        model = _REGISTRY[arch](cfg)
    else:  # initialise directly on the accelerator (full-size Crab would take minutes on the host)
        with dev:
            model = _REGISTRY[arch](cfg)
    if checkpoint is not None:
        model.load_checkpoint(checkpoint, strict=strict)
    model = model.to(device=device, dtype=dtype)
    model.eval()
    return model


def check_checkpoint(arch: str, config: dict | str | None, path) -> LoadReport:
    """Check that the checkpoint at `path` fits `arch` with `config`, without loading any weights: the model's
    skeleton is built on the meta device and the checkpoint is compared with it as ``build`` would load it
    (strictly). Raises CheckpointError naming the file and every key that does not fit; returns the report."""
    cfg = resolve_config(arch, config)
    factory = _REGISTRY[arch]
    cls = getattr(factory, "model_class", ClipModel)
    with torch.device("meta"):
        model = factory(cls.checkpoint_check_config(dict(cfg)))
    return model.load_checkpoint(path, strict=True)


def compile_blocks(model: nn.Module, mode: str | None = None) -> int:
    """torch.compile every transformer block of `model` in place (CAV-MAE branches and joint block,
    LEAP's encoder, Crab's audio encoder): Inductor fuses each block's LayerNorms, GELU and residual
    adds around the matrix products. Python control flow between the blocks stays eager, so any
    batch composition works; each new sequence length compiles once. Returns the number of blocks."""
    from .cavmae import Block  # noqa: PLC0415

    n = 0
    for module in model.modules():
        if isinstance(module, Block):
            module.compile(mode=mode)
            n += 1
    if n == 0:
        raise ValueError(f"{type(model).__name__} has no transformer blocks to compile")
    return n
