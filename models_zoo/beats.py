"""BEATs audio encoder (Chen et al., 2022), the audio tower of Crab, with the parameter names of the published
checkpoints (``BEATs_iter3_plus_AS2M_finetuned_on_AS2M_cpt2.pt``: ``{"cfg": ..., "model": state_dict}``).

Our own implementation of the computation in ``microsoft/unilm`` ``beats/`` as vendored by Crab
(``models/beats/``): 16x16 patches of a 128-bin fbank, LayerNorm, projection to the encoder width, a
convolutional position embedding (weight-normalised ``pos_conv.0.weight_g/_v``), then post-norm transformer
layers with DeepNorm residual scaling and gated relative position bias (``grep_linear``, ``grep_a``; one bucket
embedding shared by every layer). Only the feature path (``feature_only=True``) is needed by Crab; the
AudioSet head (``predictor``) exists when the checkpoint's cfg says ``finetuned_model`` so its keys load.

Input features (``fbank``): Kaldi fbank of the 16 kHz waveform scaled by 2**15, 128 bins, 25 ms Povey window,
10 ms shift, normalised ``(fbank - 15.41663) / (2 * 6.55582)`` -- see :func:`beats_fbank`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

FBANK_MEAN = 15.41663
FBANK_STD = 6.55582


@dataclass
class BEATsConfig:
    input_patch_size: int = 16
    embed_dim: int = 512
    conv_bias: bool = False
    encoder_layers: int = 12
    encoder_embed_dim: int = 768
    encoder_ffn_embed_dim: int = 3072
    encoder_attention_heads: int = 12
    activation_fn: str = "gelu"
    layer_norm_first: bool = False
    deep_norm: bool = True
    conv_pos: int = 128
    conv_pos_groups: int = 16
    relative_position_embedding: bool = True
    num_buckets: int = 320
    max_distance: int = 800
    gru_rel_pos: bool = True
    finetuned_model: bool = True
    predictor_class: int = 527

    @classmethod
    def from_dict(cls, cfg: dict[str, Any] | None) -> "BEATsConfig":
        """The known fields of a checkpoint's ``cfg`` (training-only fields such as dropouts are ignored)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in (cfg or {}).items() if k in names})


def beats_fbank(waveform: torch.Tensor, sample_rate: int = 16000) -> torch.Tensor:
    """[N] float waveform in [-1, 1] -> normalised fbank [frames, 128] as BEATs (and Crab) compute it."""
    from .preprocess import kaldi_fbank  # noqa: PLC0415

    fb = kaldi_fbank(waveform * 32768.0, sample_rate=sample_rate, window_type="povey")
    return (fb - FBANK_MEAN) / (2 * FBANK_STD)


class WeightNormConv1d(nn.Module):
    """Conv1d whose weight is ``weight_v * weight_g / ||weight_v||`` (norm over all dims but the kernel axis),
    the parametrisation ``torch.nn.utils.weight_norm(conv, dim=2)`` stores as ``weight_g`` / ``weight_v``."""

    def __init__(self, channels: int, kernel_size: int, groups: int):
        super().__init__()
        self.padding = kernel_size // 2
        self.groups = groups
        self.bias = nn.Parameter(torch.zeros(channels))  # (registration order as weight_norm leaves it)
        self.weight_g = nn.Parameter(torch.ones(1, 1, kernel_size))
        self.weight_v = nn.Parameter(
            torch.randn(channels, channels // groups, kernel_size) * math.sqrt(4.0 / (kernel_size * channels))
        )

    def forward(self, x):
        v = self.weight_v
        w = v * (self.weight_g / v.norm(dim=(0, 1), keepdim=True))
        return F.conv1d(x, w, self.bias, padding=self.padding, groups=self.groups)


class SamePad(nn.Module):
    def __init__(self, kernel_size: int):
        super().__init__()
        self.remove = 1 if kernel_size % 2 == 0 else 0

    def forward(self, x):
        return x[:, :, : -self.remove] if self.remove else x


def _gelu(x):
    return F.gelu(x.float()).type_as(x)


class MultiheadAttention(nn.Module):
    """Self-attention with BEATs' scaled-down logits (alpha = 32) and gated relative position bias."""

    ALPHA = 32

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        has_relative_attention_bias: bool,
        num_buckets: int,
        max_distance: int,
        gru_rel_pos: bool,
    ):
        super().__init__()
        self.embed_dim, self.num_heads = embed_dim, num_heads
        self.head_dim = embed_dim // num_heads
        if self.head_dim * num_heads != embed_dim:
            raise ValueError(f"BEATs: embed_dim {embed_dim} is not a multiple of the heads {num_heads}")
        self.scaling = self.head_dim**-0.5
        self.num_buckets, self.max_distance = num_buckets, max_distance
        self.has_relative_attention_bias = has_relative_attention_bias
        if has_relative_attention_bias:
            self.relative_attention_bias = nn.Embedding(num_buckets, num_heads)
        self.k_proj = nn.Linear(embed_dim, embed_dim)
        self.v_proj = nn.Linear(embed_dim, embed_dim)
        self.q_proj = nn.Linear(embed_dim, embed_dim)
        self.out_proj = nn.Linear(embed_dim, embed_dim)
        self.gru_rel_pos = gru_rel_pos
        if gru_rel_pos:
            self.grep_linear = nn.Linear(self.head_dim, 8)
            self.grep_a = nn.Parameter(torch.ones(1, num_heads, 1, 1))

    def _buckets(self, rel: torch.Tensor) -> torch.Tensor:
        half = self.num_buckets // 2
        out = (rel > 0).long() * half
        rel = rel.abs()
        max_exact = half // 2
        large = (
            max_exact
            + (torch.log(rel.float() / max_exact) / math.log(self.max_distance / max_exact) * (half - max_exact)).long()
        )
        large = torch.clamp(large, max=half - 1)
        return out + torch.where(rel < max_exact, rel, large)

    def compute_bias(self, length: int) -> torch.Tensor:
        pos = torch.arange(length, dtype=torch.long)
        buckets = self._buckets(pos[None, :] - pos[:, None]).to(self.relative_attention_bias.weight.device)
        return self.relative_attention_bias(buckets).permute(2, 0, 1)  # [H, T, T]

    def forward(self, x, position_bias=None):
        b, t, _ = x.shape
        h, d = self.num_heads, self.head_dim
        if self.has_relative_attention_bias and position_bias is None:
            position_bias = self.compute_bias(t).unsqueeze(0).expand(b, -1, -1, -1).reshape(b * h, t, t)
        q = self.q_proj(x) * self.scaling / self.ALPHA
        k, v = self.k_proj(x), self.v_proj(x)
        q, k, v = (z.view(b, t, h, d).transpose(1, 2).reshape(b * h, t, d) for z in (q, k, v))
        attn = torch.bmm(q, k.transpose(1, 2))
        attn = (attn - attn.max(dim=-1, keepdim=True)[0]) * self.ALPHA
        if position_bias is not None:
            rel = position_bias
            if self.gru_rel_pos:
                query = q.view(b, h, t, d) * self.ALPHA / self.scaling
                gate_a, gate_b = torch.sigmoid(self.grep_linear(query).view(b, h, t, 2, 4).sum(-1)).chunk(2, dim=-1)
                gate = gate_a * (gate_b * self.grep_a - 1.0) + 2.0
                rel = gate.view(b * h, t, 1) * position_bias
            attn = attn + rel.view(attn.shape)
        attn = F.softmax(attn, dim=-1).type_as(attn)
        out = torch.bmm(attn, v).view(b, h, t, d).transpose(1, 2).reshape(b, t, h * d)
        return self.out_proj(out), position_bias


class TransformerSentenceEncoderLayer(nn.Module):
    def __init__(self, cfg: BEATsConfig, has_relative_attention_bias: bool):
        super().__init__()
        if cfg.activation_fn not in ("gelu", "relu"):
            raise ValueError(f"BEATs activation_fn {cfg.activation_fn!r} is not supported; allowed: gelu, relu")
        self.activation = _gelu if cfg.activation_fn == "gelu" else F.relu
        dim = cfg.encoder_embed_dim
        self.self_attn = MultiheadAttention(
            dim,
            cfg.encoder_attention_heads,
            has_relative_attention_bias,
            cfg.num_buckets,
            cfg.max_distance,
            cfg.gru_rel_pos,
        )
        self.layer_norm_first = cfg.layer_norm_first
        self.self_attn_layer_norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, cfg.encoder_ffn_embed_dim)
        self.fc2 = nn.Linear(cfg.encoder_ffn_embed_dim, dim)
        self.final_layer_norm = nn.LayerNorm(dim)
        self.deep_norm_alpha = math.pow(2 * cfg.encoder_layers, 0.25) if cfg.deep_norm else 1.0

    def forward(self, x, pos_bias=None):
        residual = x
        if self.layer_norm_first:
            x, pos_bias = self.self_attn(self.self_attn_layer_norm(x), pos_bias)
            x = residual + x
            return x + self.fc2(self.activation(self.fc1(self.final_layer_norm(x)))), pos_bias
        x, pos_bias = self.self_attn(x, pos_bias)
        x = self.self_attn_layer_norm(residual * self.deep_norm_alpha + x)
        residual = x
        x = self.fc2(self.activation(self.fc1(x)))
        return self.final_layer_norm(residual * self.deep_norm_alpha + x), pos_bias


class TransformerEncoder(nn.Module):
    def __init__(self, cfg: BEATsConfig):
        super().__init__()
        dim = cfg.encoder_embed_dim
        self.pos_conv = nn.Sequential(
            WeightNormConv1d(dim, cfg.conv_pos, cfg.conv_pos_groups), SamePad(cfg.conv_pos), nn.GELU()
        )
        self.layers = nn.ModuleList(
            [TransformerSentenceEncoderLayer(cfg, cfg.relative_position_embedding) for _ in range(cfg.encoder_layers)]
        )
        if cfg.relative_position_embedding:  # one bucket embedding, shared by every layer (as in BEATs)
            for layer in self.layers[1:]:
                layer.self_attn.relative_attention_bias = self.layers[0].self_attn.relative_attention_bias
        self.layer_norm_first = cfg.layer_norm_first
        self.layer_norm = nn.LayerNorm(dim)

    def forward(self, x):
        x = x + self.pos_conv(x.transpose(1, 2)).transpose(1, 2)
        if not self.layer_norm_first:
            x = self.layer_norm(x)
        pos_bias = None
        for layer in self.layers:
            x, pos_bias = layer(x, pos_bias)
        if self.layer_norm_first:
            x = self.layer_norm(x)
        return x


class BEATs(nn.Module):
    def __init__(self, cfg: BEATsConfig):
        super().__init__()
        self.cfg = cfg
        self.post_extract_proj = (
            nn.Linear(cfg.embed_dim, cfg.encoder_embed_dim) if cfg.embed_dim != cfg.encoder_embed_dim else None
        )
        self.patch_embedding = nn.Conv2d(
            1, cfg.embed_dim, kernel_size=cfg.input_patch_size, stride=cfg.input_patch_size, bias=cfg.conv_bias
        )
        self.encoder = TransformerEncoder(cfg)
        self.layer_norm = nn.LayerNorm(cfg.embed_dim)
        self.predictor = nn.Linear(cfg.encoder_embed_dim, cfg.predictor_class) if cfg.finetuned_model else None

    def extract_features(self, fbank: torch.Tensor) -> torch.Tensor:
        """fbank [B, T, 128] -> token features [B, (T // 16) * 8, encoder_embed_dim]."""
        x = self.patch_embedding(fbank.unsqueeze(1))
        x = self.layer_norm(x.reshape(x.shape[0], x.shape[1], -1).transpose(1, 2))
        if self.post_extract_proj is not None:
            x = self.post_extract_proj(x)
        return self.encoder(x)


__all__ = ["BEATs", "BEATsConfig", "beats_fbank", "FBANK_MEAN", "FBANK_STD"]
