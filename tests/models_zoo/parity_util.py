"""Deterministic weights and inputs for the parity tests, identical for our models and the authors' code.

Every parameter (and floating buffer) is filled from a generator seeded with a hash of its *name*, so the
values do not depend on construction order or on the implementation: two modules with the same state-dict
names and shapes get the same weights. Parameters shared under two names (the LEAP TemporalBlock's
``conv1``/``net.0``) are filled once, under the first name ``named_parameters`` gives.

The same functions were used to record ``tests/models_zoo/data/leap_tiny_forward.npz`` from the authors'
code (see tests/models_zoo/data/README.md), so a change here invalidates that recording.
"""

from __future__ import annotations

import math
import zlib

import torch


def _generator(name: str, seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + zlib.crc32(name.encode("utf-8")))


def seeded_tensor(name: str, shape, seed: int = 0) -> torch.Tensor:
    """Values for the tensor called `name`: LayerNorm-like weights near 1, biases small, matrices scaled
    by 1/sqrt(fan_in) so activations keep a useful range."""
    shape = tuple(shape)
    t = torch.randn(shape, generator=_generator(name, seed), dtype=torch.float64)
    last = name.rsplit(".", 1)[-1]
    if len(shape) == 1 and last == "weight":
        t = 1.0 + 0.1 * t
    elif len(shape) <= 1:
        t = 0.05 * t
    else:
        fan_in = math.prod(shape[1:])
        t = t / math.sqrt(fan_in)
    return t.float()


@torch.no_grad()
def fill_seeded_(module: torch.nn.Module, seed: int = 0, strip_prefix: str = "") -> torch.nn.Module:
    """strip_prefix: a wrapper prefix left out of the seeding name (the authors' PEFT ``base_model.model.``)."""
    for name, p in module.named_parameters():
        if strip_prefix and name.startswith(strip_prefix):
            name = name[len(strip_prefix) :]
        p.copy_(seeded_tensor(name, p.shape, seed).to(p.dtype))
    return module


def crab_inputs(seed: int = 4321) -> dict[str, torch.Tensor]:
    """Tiny-Crab encoder and LLM inputs: a BEATs fbank [1, 2 s, 98, 128], CLIP-normalised frames
    [1, 2, 3, 28, 28] and prompt embeddings [1, 5, 64]."""
    g = torch.Generator().manual_seed(seed)
    return {
        "fbank": torch.randn(1, 2, 98, 128, generator=g),
        "pixels": torch.randn(1, 2, 3, 28, 28, generator=g),
        "embeds": torch.randn(1, 5, 64, generator=g),
    }


def leap_inputs(batch: int = 2, seed: int = 1234) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "audio": torch.randn(batch, 10, 128, generator=g),
        "video_s": torch.randn(batch, 80, 2048, generator=g).abs(),  # ResNet features are post-ReLU
        "video_st": torch.randn(batch, 10, 512, generator=g).abs(),
        "label": torch.randn(batch, 25, 300, generator=g) * 0.3,
    }


def state_dict_shapes(module: torch.nn.Module) -> dict[str, list[int]]:
    return {k: list(v.shape) for k, v in module.state_dict().items()}
