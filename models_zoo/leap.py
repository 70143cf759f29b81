"""LEAP-style label-embedding decoder for audio-visual event parsing.

Label queries (one per class, initialised from offline text embeddings of the class names, projected
to the decoder width) cross-attend to per-second audio and visual segment features taken from the
CAV-MAE encoders. Each modality has its own stack of decoder blocks (cross-attention -> self-attention
among labels -> MLP; 2 blocks by default). Per-second event probabilities come from the similarity of
each refined label query with each segment feature; clip-level probabilities from a per-label
classifier on the refined queries.

predict(): "a" = audio clip-level probabilities, "v" = visual, "av" = 1 - (1 - p_a)(1 - p_v)
(an event audible or visible). predict_segments() also returns [B, S, C] per-second probabilities.
"""
from __future__ import annotations

import logging

import torch
from torch import nn

from .base import (MODALITIES, CheckpointError, ClipModel, LoadReport, compare_state_dict, copy_loaded,
                   read_state_dict, register)
from .cavmae import CAVMAE, CAVMAE_PRESETS

log = logging.getLogger(__name__)


class DecoderBlock(nn.Module):
    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, dropout: float = 0.0):
        super().__init__()
        self.norm_q = nn.LayerNorm(dim)
        self.norm_kv = nn.LayerNorm(dim)
        self.cross_attn = nn.MultiheadAttention(dim, num_heads, dropout=dropout, batch_first=True)
        self.norm_s = nn.LayerNorm(dim)
        self.self_attn = nn.MultiheadAttention(dim, num_heads, dropout=dropout, batch_first=True)
        self.norm_m = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, int(dim * mlp_ratio)), nn.GELU(), nn.Linear(int(dim * mlp_ratio), dim))

    def forward(self, q, kv):
        kvn = self.norm_kv(kv)
        qn = self.norm_q(q)
        q = q + self.cross_attn(qn, kvn, kvn, need_weights=False)[0]
        qn = self.norm_s(q)
        q = q + self.self_attn(qn, qn, qn, need_weights=False)[0]
        return q + self.mlp(self.norm_m(q))


class ModalityDecoder(nn.Module):
    def __init__(self, feat_dim, dim, depth, num_heads, mlp_ratio, num_segments):
        super().__init__()
        self.in_proj = nn.Linear(feat_dim, dim)
        self.seg_pos = nn.Parameter(torch.zeros(1, num_segments, dim))
        self.blocks = nn.ModuleList([DecoderBlock(dim, num_heads, mlp_ratio) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.seg_norm = nn.LayerNorm(dim)
        self.seg_proj = nn.Linear(dim, dim)
        self.cls_weight = nn.Parameter(torch.zeros(1, 1, dim))  # clip-level score = <query, w> + b_c
        self.logit_scale = nn.Parameter(torch.tensor(1.0 / dim ** 0.5))
        self.seg_bias = nn.Parameter(torch.tensor(0.0))
        nn.init.normal_(self.seg_pos, std=0.02)
        nn.init.normal_(self.cls_weight, std=0.02)

    def forward(self, queries, feats):
        x = self.in_proj(feats) + self.seg_pos[:, : feats.shape[1]]
        q = queries
        for blk in self.blocks:
            q = blk(q, x)
        q = self.norm(q)  # [B, C, D]
        seg = self.seg_proj(self.seg_norm(x))  # [B, S, D]
        seg_logits = torch.einsum("bsd,bcd->bsc", seg, q) * self.logit_scale + self.seg_bias
        clip_logits = (q * self.cls_weight).sum(-1)
        return clip_logits, seg_logits


LEAP_PRESETS = {
    "base": dict(encoder="base", dim=512, depth=2, num_heads=8, mlp_ratio=4.0, num_segments=10,
                 num_classes=309, text_backend="auto", class_names=None, encoder_checkpoint=None),
    "tiny": dict(encoder="tiny", dim=32, depth=2, num_heads=2, mlp_ratio=2.0, num_segments=10,
                 num_classes=309, text_backend="hash", class_names=None, encoder_checkpoint=None),
}
LEAP_PRESETS["full"] = LEAP_PRESETS["base"]


class LEAP(ClipModel):
    arch = "leap"

    def __init__(self, encoder="base", dim=512, depth=2, num_heads=8, mlp_ratio=4.0, num_segments=10,
                 num_classes=309, text_backend="auto", class_names=None, encoder_checkpoint=None,
                 label_cache_dir=None):
        super().__init__()
        from .text_embed import default_class_names, label_embeddings  # noqa: PLC0415

        enc_cfg = dict(CAVMAE_PRESETS[encoder]) if isinstance(encoder, str) else dict(encoder)
        self.encoder = CAVMAE(**enc_cfg)
        if encoder_checkpoint:
            self.encoder.load_checkpoint(encoder_checkpoint, strict=False)
        names = list(class_names) if class_names is not None else default_class_names()
        if len(names) != num_classes:
            raise ValueError(f"LEAP got {len(names)} class names for num_classes={num_classes}")
        self.class_names = names
        self.num_classes = num_classes
        self.num_segments = num_segments
        emb = torch.from_numpy(label_embeddings(names, backend=text_backend, cache_dir=label_cache_dir))
        self.register_buffer("label_text", emb, persistent=False)
        self.label_proj = nn.Linear(emb.shape[1], dim)
        self.label_bias = nn.Parameter(torch.zeros(num_classes, dim))
        fdim = enc_cfg["embed_dim"]
        self.dec_a = ModalityDecoder(fdim, dim, depth, num_heads, mlp_ratio, num_segments)
        self.dec_v = ModalityDecoder(fdim, dim, depth, num_heads, mlp_ratio, num_segments)
        self.clip_bias_a = nn.Parameter(torch.full((num_classes,), -2.0))
        self.clip_bias_v = nn.Parameter(torch.full((num_classes,), -2.0))

    def label_queries(self, batch_size):
        q = self.label_proj(self.label_text.to(self.label_proj.weight.dtype)) + self.label_bias
        return q.unsqueeze(0).expand(batch_size, -1, -1)

    def decoder_state_dict(self):
        return {k: v for k, v in self.state_dict().items() if not k.startswith("encoder.")}

    def load_checkpoint(self, path, strict: bool = False) -> LoadReport:
        """Load decoder (and, if present, `encoder.`-prefixed CAV-MAE) weights wherever name and shape
        match; everything skipped is reported. strict=True refuses when a decoder tensor is missing."""
        sd = read_state_dict(path)
        rep = compare_state_dict(self, sd, str(path))
        for k in rep.unexpected:
            log.warning("leap: unexpected key in checkpoint %s: %s", path, k)
        for k, a, b in rep.mismatched:
            log.warning("leap: shape mismatch in checkpoint %s: %s %s vs model %s (kept random)", path, k, a, b)
        dec_missing = [k for k in rep.missing if not k.startswith("encoder.")]
        for k in dec_missing:
            log.warning("leap: decoder key missing in checkpoint %s: %s", path, k)
        if not rep.loaded or (strict and (dec_missing or rep.mismatched)):
            raise CheckpointError(f"checkpoint {path} does not fit LEAP: {rep.describe()}")
        copy_loaded(self, sd, rep)
        return rep

    @torch.no_grad()
    def predict_segments(self, batch):
        fa, fv = self.encoder.segment_features(batch, self.num_segments)
        b = fa.shape[0]
        q = self.label_queries(b)
        clip_a, seg_a = self.dec_a(q, fa)
        clip_v, seg_v = self.dec_v(q, fv)
        p_a = torch.sigmoid(clip_a + self.clip_bias_a)
        p_v = torch.sigmoid(clip_v + self.clip_bias_v)
        has_a = batch["has_audio"].to(p_a.device).bool().unsqueeze(1)
        has_v = batch["has_video"].to(p_v.device).bool().unsqueeze(1)
        p_a = p_a * has_a  # a missing modality contributes no events
        p_v = p_v * has_v
        return {
            "a": p_a, "v": p_v, "av": 1 - (1 - p_a) * (1 - p_v),
            "a_seg": torch.sigmoid(seg_a) * has_a.unsqueeze(1),
            "v_seg": torch.sigmoid(seg_v) * has_v.unsqueeze(1),
        }

    @torch.no_grad()
    def predict(self, batch, modalities=MODALITIES):
        mods = self.check_modalities(modalities)
        out = self.predict_segments(batch)
        return {m: out[m] for m in mods}


@register("leap", LEAP_PRESETS)
def _build_leap(cfg) -> LEAP:
    return LEAP(**cfg)


__all__ = ["LEAP", "LEAP_PRESETS"]
