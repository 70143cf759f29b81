"""CAV-MAE, fine-tuning variant (state-dict compatible with the official VGGSound checkpoints).

Layout (base): audio fbank [1024, 128] -> transposed to a 1x128x1024 image -> 16x16 patches (512 tokens);
one video frame 3x224x224 -> 16x16 patches (196 tokens); 11 modality-specific blocks per branch,
1 joint block (``blocks_u``) whose LayerNorms exist in three copies (joint / audio / visual),
``norm``, ``norm_a``, ``norm_v``, and ``mlp_head`` = LayerNorm + Linear(768, 309).

Forward modes: ``audioonly`` (a), ``videoonly`` (v), ``multimodal`` (av), and the official
``missingaudioonly`` / ``missingvideoonly`` fallbacks used for the av scores of clips lacking a modality.
Video uses one frame per clip like the official evaluation (the middle one, index T // 2) unless
``frame_index`` is "mean" (logits averaged over all frames).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .base import MODALITIES, ClipModel, load_checkpoint, register


def sincos_pos_embed_2d(dim: int, grid_h: int, grid_w: int) -> torch.Tensor:
    """Fixed 2-D sine-cosine position embedding [1, grid_h * grid_w, dim] (row-major)."""

    def one_d(d, pos):
        omega = 1.0 / 10000 ** (np.arange(d // 2, dtype=np.float64) / (d / 2.0))
        out = np.einsum("m,d->md", pos.reshape(-1), omega)
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)

    gh, gw = np.meshgrid(np.arange(grid_h, dtype=np.float64), np.arange(grid_w, dtype=np.float64), indexing="ij")
    emb = np.concatenate([one_d(dim // 2, gw), one_d(dim // 2, gh)], axis=1)
    if emb.shape[1] < dim:
        emb = np.pad(emb, ((0, 0), (0, dim - emb.shape[1])))
    return torch.from_numpy(emb).float().unsqueeze(0)


class PatchEmbed(nn.Module):
    def __init__(self, in_chans: int, embed_dim: int, patch_size: int):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)


class Attention(nn.Module):
    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"embed_dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        x = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        return self.proj(x.transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)
        # CUDA only: bias + GELU in the fc1 matrix product's epilogue (cuBLASLt), which saves a pass
        # over the widest activation but uses GELU's tanh approximation (|diff| < 1e-3, under bf16's
        # rounding); the official models use the exact (erf) GELU, which stays the default
        self.fused_gelu = False

    def forward(self, x):
        if self.fused_gelu and x.is_cuda:
            h = torch._addmm_activation(self.fc1.bias, x.reshape(-1, x.shape[-1]), self.fc1.weight.t(), use_gelu=True)
            return self.fc2(h.view(*x.shape[:-1], h.shape[-1]))
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block with three LayerNorm sets: joint (None), audio ('a'), visual ('v')."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.norm1, self.norm1_a, self.norm1_v = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = Attention(dim, num_heads)
        self.norm2, self.norm2_a, self.norm2_v = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x, modality: str | None = None):
        n1 = {None: self.norm1, "a": self.norm1_a, "v": self.norm1_v}[modality]
        n2 = {None: self.norm2, "a": self.norm2_a, "v": self.norm2_v}[modality]
        x = x + self.attn(n1(x))
        return x + self.mlp(n2(x))


CAVMAE_PRESETS = {
    "base": dict(
        embed_dim=768,
        num_heads=12,
        modality_specific_depth=11,
        total_depth=12,
        mlp_ratio=4.0,
        num_classes=309,
        audio_length=1024,
        num_mel_bins=128,
        img_size=224,
        patch_size=16,
        frame_index="middle",
    ),
    "tiny": dict(
        embed_dim=32,
        num_heads=2,
        modality_specific_depth=2,
        total_depth=3,
        mlp_ratio=2.0,
        num_classes=309,
        audio_length=1024,
        num_mel_bins=128,
        img_size=224,
        patch_size=16,
        frame_index="middle",
    ),
}
CAVMAE_PRESETS["full"] = CAVMAE_PRESETS["base"]

# forward GFLOPs per clip at base size (2 x multiply-accumulates), used by the benchmarks
GFLOPS_PER_CLIP = {"av": 132.4, "a": 96.8, "v": 34.9}


class CAVMAE(ClipModel):
    arch = "cavmae"

    def __init__(
        self,
        embed_dim=768,
        num_heads=12,
        modality_specific_depth=11,
        total_depth=12,
        mlp_ratio=4.0,
        num_classes=309,
        audio_length=1024,
        num_mel_bins=128,
        img_size=224,
        patch_size=16,
        frame_index="middle",
        fused_gelu=False,
    ):
        super().__init__()
        self.config = dict(
            embed_dim=embed_dim,
            num_heads=num_heads,
            modality_specific_depth=modality_specific_depth,
            total_depth=total_depth,
            mlp_ratio=mlp_ratio,
            num_classes=num_classes,
            audio_length=audio_length,
            num_mel_bins=num_mel_bins,
            img_size=img_size,
            patch_size=patch_size,
            frame_index=frame_index,
            fused_gelu=fused_gelu,
        )
        if not 0 < modality_specific_depth < total_depth:
            raise ValueError("need 0 < modality_specific_depth < total_depth")
        self.num_classes = num_classes
        self.audio_length, self.num_mel_bins = audio_length, num_mel_bins
        self.img_size, self.patch_size = img_size, patch_size
        self.frame_index = frame_index
        self.grid_a = (num_mel_bins // patch_size, audio_length // patch_size)  # (freq, time)
        self.grid_v = (img_size // patch_size, img_size // patch_size)
        self.patch_embed_a = PatchEmbed(1, embed_dim, patch_size)
        self.patch_embed_v = PatchEmbed(3, embed_dim, patch_size)
        self.modality_a = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.modality_v = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed_a = nn.Parameter(sincos_pos_embed_2d(embed_dim, *self.grid_a))
        self.pos_embed_v = nn.Parameter(sincos_pos_embed_2d(embed_dim, *self.grid_v))
        self.blocks_a = nn.ModuleList([Block(embed_dim, num_heads, mlp_ratio) for _ in range(modality_specific_depth)])
        self.blocks_v = nn.ModuleList([Block(embed_dim, num_heads, mlp_ratio) for _ in range(modality_specific_depth)])
        self.blocks_u = nn.ModuleList(
            [Block(embed_dim, num_heads, mlp_ratio) for _ in range(total_depth - modality_specific_depth)]
        )
        self.norm_a, self.norm_v, self.norm = nn.LayerNorm(embed_dim), nn.LayerNorm(embed_dim), nn.LayerNorm(embed_dim)
        self.mlp_head = nn.Sequential(nn.LayerNorm(embed_dim), nn.Linear(embed_dim, num_classes))
        self._init_weights()
        for m in self.modules():
            if isinstance(m, Mlp):
                m.fused_gelu = bool(fused_gelu)

    def _init_weights(self):
        for pe in (self.patch_embed_a, self.patch_embed_v):
            w = pe.proj.weight.data
            nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.normal_(self.modality_a, std=0.02)
        nn.init.normal_(self.modality_v, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def load_checkpoint(self, path, strict: bool = True):
        return load_checkpoint(
            self,
            path,
            strict=strict,
            arch=f"cavmae(embed_dim={self.config['embed_dim']}, "
            f"depth={self.config['modality_specific_depth']}+"
            f"{self.config['total_depth'] - self.config['modality_specific_depth']}, "
            f"classes={self.num_classes})",
        )

    # ---- encoders -----------------------------------------------------------------------------
    def embed_audio(self, fbank: torch.Tensor) -> torch.Tensor:
        """fbank [B, T, F] -> tokens [B, (F/p)*(T/p), D] (row-major over (freq, time))."""
        if fbank.shape[1:] != (self.audio_length, self.num_mel_bins):
            raise ValueError(f"fbank must be [B, {self.audio_length}, {self.num_mel_bins}], got {tuple(fbank.shape)}")
        a = self.patch_embed_a(fbank.unsqueeze(1).transpose(2, 3))
        return a + self.pos_embed_a + self.modality_a

    def embed_video(self, image: torch.Tensor) -> torch.Tensor:
        if image.shape[1:] != (3, self.img_size, self.img_size):
            raise ValueError(f"frames must be [.., 3, {self.img_size}, {self.img_size}], got {tuple(image.shape)}")
        return self.patch_embed_v(image) + self.pos_embed_v + self.modality_v

    def encode_audio(self, fbank):
        a = self.embed_audio(fbank)
        for blk in self.blocks_a:
            a = blk(a)
        return a

    def encode_video(self, image):
        v = self.embed_video(image)
        for blk in self.blocks_v:
            v = blk(v)
        return v

    def _unified(self, x, modality):
        for blk in self.blocks_u:
            x = blk(x, modality)
        norm = {None: self.norm, "a": self.norm_a, "v": self.norm_v}[modality]
        return norm(x)

    def head_audio(self, a):  # audioonly
        return self.mlp_head(self._unified(a, "a").mean(dim=1))

    def head_video(self, v):  # videoonly
        return self.mlp_head(self._unified(v, "v").mean(dim=1))

    def head_joint(self, a, v):  # multimodal
        return self.mlp_head(self._unified(torch.cat((a, v), dim=1), None).mean(dim=1))

    def head_missing(self, x, modality):  # missingaudioonly / missingvideoonly
        u = self._unified(x, None).mean(dim=1)
        m = self._unified(x, modality).mean(dim=1)
        return self.mlp_head((u + m) / 2)

    def forward(self, fbank: torch.Tensor | None, image: torch.Tensor | None, mode: str = "multimodal"):
        """Official-style forward: mode in multimodal, audioonly, videoonly, missingaudioonly,
        missingvideoonly. image is one frame per clip [B, 3, H, W]."""
        if mode == "multimodal":
            return self.head_joint(self.encode_audio(fbank), self.encode_video(image))
        if mode == "audioonly":
            return self.head_audio(self.encode_audio(fbank))
        if mode == "videoonly":
            return self.head_video(self.encode_video(image))
        if mode == "missingaudioonly":  # only audio given to a multimodal model
            return self.head_missing(self.encode_audio(fbank), "a")
        if mode == "missingvideoonly":
            return self.head_missing(self.encode_video(image), "v")
        raise ValueError(
            f"unknown mode {mode!r}; allowed: multimodal, audioonly, videoonly, missingaudioonly, missingvideoonly"
        )

    # ---- ClipModel ----------------------------------------------------------------------------
    def _frames(self, frames: torch.Tensor) -> tuple[torch.Tensor, int]:
        """[B, T, 3, H, W] -> images [B*k, 3, H, W] and k (frames per clip used)."""
        b, t = frames.shape[:2]
        if self.frame_index == "mean":
            return frames.reshape(b * t, *frames.shape[2:]), t
        idx = t // 2 if self.frame_index == "middle" else int(self.frame_index)
        if not 0 <= idx < t:
            raise ValueError(f"frame_index {self.frame_index} outside the {t} frames of the batch")
        return frames[:, idx], 1

    @torch.no_grad()
    def predict(self, batch, modalities=MODALITIES):
        mods = self.check_modalities(modalities)
        out: dict[str, torch.Tensor] = {}
        need_a = any(m in mods for m in ("a", "av"))
        need_v = any(m in mods for m in ("v", "av"))
        a = self.encode_audio(batch["fbank"].to(self.pos_embed_a.dtype)) if need_a else None
        v = k = None
        if need_v:
            imgs, k = self._frames(batch["frames"].to(self.pos_embed_v.dtype))
            v = self.encode_video(imgs)
        b = batch["fbank"].shape[0]

        def per_clip(logits):
            return per_clip_subset(logits, b, k)

        if "a" in mods:
            out["a"] = self.head_audio(a)
        if "v" in mods:
            out["v"] = per_clip(self.head_video(v))
        if "av" in mods:
            if k == 1:
                av = self.head_joint(a, v)
            else:  # one joint pass per frame, averaged
                av = per_clip(self.head_joint(a.repeat_interleave(k, dim=0), v))
            has_a = batch["has_audio"].to(av.device).bool()
            has_v = batch["has_video"].to(av.device).bool()
            only_v = has_v & ~has_a
            only_a = has_a & ~has_v
            if only_v.any():  # silent clip: official 'missingvideoonly' (only video given)
                sel = only_v.repeat_interleave(k) if k > 1 else only_v
                av[only_v] = per_clip_subset(self.head_missing(v[sel], "v"), int(only_v.sum()), k)
            if only_a.any():
                av[only_a] = self.head_missing(a[only_a], "a")
            out["av"] = av
        return {m: out[m] for m in mods}

    # ---- segment features for LEAP ------------------------------------------------------------
    @torch.no_grad()
    def segment_features(self, batch, num_segments: int = 10):
        """Per-second features from the modality-specific encoders (after the unified block with the
        modality's norms): audio [B, S, D] by pooling the time axis of the patch grid; visual [B, T, D]
        (one vector per frame), resampled to S segments."""
        a = self._unified(self.encode_audio(batch["fbank"].to(self.pos_embed_a.dtype)), "a")
        b, _, d = a.shape
        fa, ta = self.grid_a
        a = a.reshape(b, fa, ta, d).mean(dim=1)  # [B, time patches, D]
        a = F.adaptive_avg_pool1d(a.transpose(1, 2), num_segments).transpose(1, 2)
        frames = batch["frames"].to(self.pos_embed_v.dtype)
        t = frames.shape[1]
        v = self._unified(self.encode_video(frames.reshape(b * t, *frames.shape[2:])), "v").mean(dim=1)
        v = v.reshape(b, t, d)
        if t != num_segments:
            v = F.interpolate(v.transpose(1, 2), size=num_segments, mode="nearest").transpose(1, 2)
        return a, v


def per_clip_subset(logits, n, k):
    """[n * k, C] logits of k frames per clip -> [n, C], averaged over the frames."""
    return logits.reshape(n, k, -1).mean(dim=1) if k > 1 else logits


@register("cavmae", CAVMAE_PRESETS)
def _build_cavmae(cfg) -> CAVMAE:
    return CAVMAE(**cfg)


def flops_per_clip(cfg: dict, modality: str) -> float:
    """Analytic forward FLOPs (2 x MACs) per clip for a config; base gives 132.4/96.8/34.9 GFLOPs."""
    d, depth_s, depth = cfg["embed_dim"], cfg["modality_specific_depth"], cfg["total_depth"]
    p = cfg["patch_size"]
    mlp = cfg["mlp_ratio"]
    na = (cfg["num_mel_bins"] // p) * (cfg["audio_length"] // p)
    nv = (cfg["img_size"] // p) ** 2

    def block(n):
        return 2 * n * (4 * d * d + 2 * mlp * d * d) + 4 * n * n * d

    pe_a, pe_v = 2 * na * p * p * d, 2 * nv * p * p * 3 * d
    if modality == "a":
        f = pe_a + depth * block(na)
    elif modality == "v":
        f = pe_v + depth * block(nv)
    elif modality == "av":
        f = pe_a + pe_v + depth_s * (block(na) + block(nv)) + (depth - depth_s) * block(na + nv)
    else:
        raise ValueError(f"unknown modality {modality!r}")
    return float(f)
