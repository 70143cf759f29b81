"""Crab: a unified audio-visual LLM for event description, built from `transformers` parts.

  frames [B, T, 3, 224, 224] -> CLIPVisionModel (ViT-L/14 at full size) -> visual Q-Former (32 queries)
  fbank  [B, 1024, 128]      -> BEATs-like patch transformer           -> audio Q-Former  (32 queries)
  queries -> linear projections -> spliced into the prompt embeddings of LlamaForCausalLM, whose
  attention/MLP projections carry interaction-aware LoRA (one shared A, several B heads mixed per
  token by a router).

Weights come from local directories (``clip_dir``, ``llama_dir``, ``tokenizer_dir``: anything
``from_pretrained`` reads with ``local_files_only``) and an optional checkpoint for the Crab-specific
parts (audio encoder, Q-Formers, projections, LoRA); without them every part is randomly initialised
from its config (benchmarks, tests). Output text is parsed by :mod:`models_zoo.crab_parse` and
mapped to the classes: a class's score is its match similarity (0 when not mentioned).
"""
from __future__ import annotations

import logging
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .base import (MODALITIES, CheckpointError, ClipModel, compare_state_dict, copy_loaded, read_state_dict,
                   register)
from .cavmae import Block, PatchEmbed, sincos_pos_embed_2d

log = logging.getLogger(__name__)

PROMPTS = {
    "a": "Describe the audio events in the audio. Answer with <audio_event>event name (start-end s), ...</audio_event>.",
    "v": "Describe the visual events in the video. Answer with <visual_event>event name (start-end s), ...</visual_event>.",
    "av": ("Describe the audio and the visual events of this audio-visual clip. Answer with "
           "<audio_event>event name (start-end s), ...</audio_event> and <visual_event>event name (start-end s), "
           "...</visual_event>."),
}
SYSTEM = "You are an assistant that recognises sound and visual events in videos."


class ByteTokenizer:
    """Minimal byte-level tokenizer (pad 0, bos 1, eos 2, bytes at 3..258) for random-init models."""

    pad_token_id, bos_token_id, eos_token_id = 0, 1, 2
    vocab_size = 259

    def encode(self, text: str, add_bos: bool = False) -> list[int]:
        ids = [b + 3 for b in text.encode("utf-8")]
        return [self.bos_token_id] + ids if add_bos else ids

    def decode(self, ids) -> str:
        data = bytes(int(i) - 3 for i in ids if 3 <= int(i) < 259)
        return data.decode("utf-8", errors="ignore")


class HFTokenizer:
    def __init__(self, path):
        from transformers import AutoTokenizer  # noqa: PLC0415

        self.tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        self.bos_token_id = self.tok.bos_token_id
        self.eos_token_id = self.tok.eos_token_id
        self.pad_token_id = self.tok.pad_token_id if self.tok.pad_token_id is not None else self.eos_token_id

    def encode(self, text, add_bos=False):
        ids = self.tok.encode(text, add_special_tokens=False)
        return ([self.bos_token_id] if add_bos and self.bos_token_id is not None else []) + ids

    def decode(self, ids):
        return self.tok.decode(list(ids), skip_special_tokens=True)


class IALoRALinear(nn.Module):
    """y = W x + scale * sum_k g_k(x) B_k A x, with A shared, K heads B_k and a per-token router g."""

    def __init__(self, base: nn.Linear, rank: int, num_heads: int, alpha: float):
        super().__init__()
        self.base = base
        self.rank, self.num_heads = rank, num_heads
        self.scale = alpha / rank
        self.lora_A = nn.Linear(base.in_features, rank, bias=False)
        self.lora_B = nn.Linear(rank, base.out_features * num_heads, bias=False)
        self.router = nn.Linear(base.in_features, num_heads, bias=False)
        nn.init.kaiming_uniform_(self.lora_A.weight, a=5 ** 0.5)
        nn.init.zeros_(self.lora_B.weight)
        nn.init.zeros_(self.router.weight)

    def forward(self, x):
        y = self.base(x)
        g = torch.softmax(self.router(x), dim=-1)  # [..., K]
        h = self.lora_B(self.lora_A(x)).unflatten(-1, (self.num_heads, -1))  # [..., K, out]
        return y + self.scale * (g.unsqueeze(-1) * h).sum(dim=-2)


def add_ia_lora(model: nn.Module, targets: Sequence[str], rank: int, num_heads: int, alpha: float) -> int:
    n = 0
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            if child_name in targets and isinstance(child, nn.Linear):
                setattr(module, child_name, IALoRALinear(child, rank, num_heads, alpha))
                n += 1
    if n == 0:
        raise ValueError(f"no Linear named {list(targets)} found for LoRA")
    return n


class QFormer(nn.Module):
    """Learned queries; each layer: self-attention, cross-attention to encoder features, MLP."""

    def __init__(self, num_queries: int, dim: int, enc_dim: int, depth: int, num_heads: int):
        super().__init__()
        self.queries = nn.Parameter(torch.randn(1, num_queries, dim) * 0.02)
        self.enc_proj = nn.Linear(enc_dim, dim)
        self.layers = nn.ModuleList()
        for _ in range(depth):
            self.layers.append(nn.ModuleDict(dict(
                n1=nn.LayerNorm(dim), sa=nn.MultiheadAttention(dim, num_heads, batch_first=True),
                n2=nn.LayerNorm(dim), ca=nn.MultiheadAttention(dim, num_heads, batch_first=True),
                n3=nn.LayerNorm(dim), mlp=nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim)))))
        self.norm = nn.LayerNorm(dim)

    def forward(self, feats):
        kv = self.enc_proj(feats)
        q = self.queries.expand(feats.shape[0], -1, -1).to(kv.dtype)
        for layer in self.layers:
            h = layer["n1"](q)
            q = q + layer["sa"](h, h, h, need_weights=False)[0]
            h = layer["n2"](q)
            q = q + layer["ca"](h, kv, kv, need_weights=False)[0]
            q = q + layer["mlp"](layer["n3"](q))
        return self.norm(q)


class AudioEncoder(nn.Module):
    """BEATs-like: 16x16 patches of the fbank, transformer blocks, final LayerNorm."""

    def __init__(self, dim: int, depth: int, num_heads: int, audio_length=1024, num_mel_bins=128, patch=16):
        super().__init__()
        self.patch_embed = PatchEmbed(1, dim, patch)
        self.pos_embed = nn.Parameter(sincos_pos_embed_2d(dim, num_mel_bins // patch, audio_length // patch))
        self.blocks = nn.ModuleList([Block(dim, num_heads) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)

    def forward(self, fbank):
        x = self.patch_embed(fbank.unsqueeze(1).transpose(2, 3)) + self.pos_embed
        for blk in self.blocks:
            x = blk(x)
        return self.norm(x)


FULL_CLIP = dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                 image_size=224, patch_size=14, projection_dim=768)
FULL_LLAMA = dict(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
                  num_key_value_heads=32, vocab_size=32000, max_position_embeddings=4096, rms_norm_eps=1e-5)
CRAB_PRESETS = {
    "base": dict(clip=FULL_CLIP, clip_dir=None, audio=dict(dim=768, depth=12, num_heads=12),
                 qformer=dict(num_queries=32, dim=768, depth=2, num_heads=12), llama=FULL_LLAMA, llama_dir=None,
                 tokenizer_dir=None, lora=dict(rank=8, num_heads=3, alpha=16.0,
                                               targets=["q_proj", "k_proj", "v_proj", "o_proj"]),
                 num_frames=10, max_new_tokens=96, threshold=0.6, text_backend="auto", class_names=None),
    "tiny": dict(clip=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                           image_size=224, patch_size=32, projection_dim=32), clip_dir=None,
                 audio=dict(dim=32, depth=1, num_heads=2), qformer=dict(num_queries=4, dim=32, depth=1, num_heads=2),
                 llama=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                            num_key_value_heads=4, vocab_size=259, max_position_embeddings=512),
                 llama_dir=None, tokenizer_dir=None,
                 lora=dict(rank=4, num_heads=3, alpha=8.0, targets=["q_proj", "v_proj"]),
                 num_frames=2, max_new_tokens=8, threshold=0.6, text_backend="hash", class_names=None),
}
CRAB_PRESETS["full"] = CRAB_PRESETS["base"]


class Crab(ClipModel):
    arch = "crab"

    def __init__(self, clip, clip_dir, audio, qformer, llama, llama_dir, tokenizer_dir, lora, num_frames,
                 max_new_tokens, threshold, text_backend, class_names, label_cache_dir=None, static_cache=False):
        super().__init__()
        from transformers import CLIPVisionConfig, CLIPVisionModel, LlamaConfig, LlamaForCausalLM  # noqa: PLC0415

        if clip_dir:
            self.vision = CLIPVisionModel.from_pretrained(str(clip_dir), local_files_only=True)
        else:
            self.vision = CLIPVisionModel(CLIPVisionConfig(**clip))
        if llama_dir:
            self.llm = LlamaForCausalLM.from_pretrained(str(llama_dir), local_files_only=True)
        else:
            self.llm = LlamaForCausalLM(LlamaConfig(**llama))
        self.tokenizer = HFTokenizer(tokenizer_dir or llama_dir) if (tokenizer_dir or llama_dir) else ByteTokenizer()
        vocab = self.llm.get_input_embeddings().weight.shape[0]
        if isinstance(self.tokenizer, ByteTokenizer) and vocab < ByteTokenizer.vocab_size:
            raise ValueError(f"LLaMA vocab_size {vocab} is smaller than the byte tokenizer's 259")
        self.audio_encoder = AudioEncoder(audio["dim"], audio["depth"], audio["num_heads"])
        vdim = self.vision.config.hidden_size
        hid = self.llm.config.hidden_size
        q = qformer
        self.qformer_a = QFormer(q["num_queries"], q["dim"], audio["dim"], q["depth"], q["num_heads"])
        self.qformer_v = QFormer(q["num_queries"], q["dim"], vdim, q["depth"], q["num_heads"])
        self.proj_a = nn.Linear(q["dim"], hid)
        self.proj_v = nn.Linear(q["dim"], hid)
        self.n_lora = add_ia_lora(self.llm, lora["targets"], lora["rank"], lora["num_heads"], lora["alpha"])
        self.num_frames = num_frames
        self.max_new_tokens = max_new_tokens
        self.threshold = threshold
        self.text_backend = text_backend
        self._class_names = class_names
        self._label_cache_dir = label_cache_dir
        self._matcher = None
        # CUDA: a fixed-size KV cache lets transformers compile the decoding step (CUDA graphs):
        # ~3.5x the generated tokens/s on the H100, after a one-off compile of 1-2 min per batch shape
        self.static_cache = bool(static_cache)

    # ---- weights ------------------------------------------------------------------------------
    def crab_state_dict(self):
        """Crab-specific tensors (audio encoder, Q-Formers, projections, LoRA): what a Crab checkpoint holds."""
        return {k: v for k, v in self.state_dict().items()
                if not k.startswith(("vision.", "llm.")) or "lora_" in k or ".router." in k}

    def load_checkpoint(self, path, strict: bool = True):
        sd = read_state_dict(path)
        rep = compare_state_dict(self, sd, str(path))
        own_crab = set(self.crab_state_dict())
        rep.missing = [k for k in rep.missing if k in own_crab]  # frozen backbones come from their dirs
        for k in rep.missing + rep.unexpected:
            log.warning("crab: key %s in checkpoint %s: %s",
                        "missing" if k in rep.missing else "unexpected", path, k)
        if (strict and not rep.fits) or not rep.loaded:
            raise CheckpointError(f"checkpoint {path} does not fit Crab: {rep.describe()}")
        copy_loaded(self, sd, rep)
        return rep

    @property
    def matcher(self):
        if self._matcher is None:
            from .crab_parse import ClassMatcher  # noqa: PLC0415
            from .text_embed import default_class_names  # noqa: PLC0415

            names = self._class_names or default_class_names()
            self._matcher = ClassMatcher(names, backend=self.text_backend, threshold=self.threshold,
                                         cache_dir=self._label_cache_dir)
        return self._matcher

    # ---- encoders -----------------------------------------------------------------------------
    @property
    def _dtype(self):
        return self.proj_a.weight.dtype

    def encode_audio(self, fbank):
        return self.proj_a(self.qformer_a(self.audio_encoder(fbank.to(self._dtype))))

    def encode_video(self, frames):
        b, t = frames.shape[:2]
        k = min(self.num_frames, t)
        idx = torch.linspace(0, t - 1, k).round().long().tolist()
        x = frames[:, idx].reshape(b * k, *frames.shape[2:]).to(self._dtype)
        size = self.vision.config.image_size
        if x.shape[-1] != size:
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
        h = self.vision(pixel_values=x).last_hidden_state  # [B*k, N, D]
        h = h.reshape(b, k * h.shape[1], h.shape[2])
        return self.proj_v(self.qformer_v(h))

    def _text_emb(self, ids, b):
        emb = self.llm.get_input_embeddings()
        t = torch.tensor(ids, dtype=torch.long, device=emb.weight.device)
        return emb(t).unsqueeze(0).expand(b, -1, -1)

    def build_inputs(self, batch, modality: str):
        """Prompt embeddings [B, L, H]: system + modality query tokens (between their tags) + instruction."""
        b = batch["fbank"].shape[0]
        tok = self.tokenizer
        pieces = [self._text_emb(tok.encode(f"{SYSTEM}\n", add_bos=True), b)]
        if modality in ("a", "av"):
            pieces += [self._text_emb(tok.encode("<audio>"), b), self.encode_audio(batch["fbank"]),
                       self._text_emb(tok.encode("</audio>"), b)]
        if modality in ("v", "av"):
            pieces += [self._text_emb(tok.encode("<video>"), b), self.encode_video(batch["frames"]),
                       self._text_emb(tok.encode("</video>"), b)]
        pieces.append(self._text_emb(tok.encode(f"\n{PROMPTS[modality]}\nAnswer: "), b))
        return torch.cat([p.to(self._dtype) for p in pieces], dim=1)

    @torch.no_grad()
    def generate_text(self, batch, modality: str, max_new_tokens: int | None = None,
                      min_new_tokens: int | None = None) -> tuple[list[str], torch.Tensor]:
        if modality not in MODALITIES:
            raise ValueError(f"unknown modality {modality!r}; allowed: a, v, av")
        emb = self.build_inputs(batch, modality)
        mask = torch.ones(emb.shape[:2], dtype=torch.long, device=emb.device)
        kw = dict(max_new_tokens=max_new_tokens or self.max_new_tokens, do_sample=False,
                  pad_token_id=self.tokenizer.pad_token_id, eos_token_id=self.tokenizer.eos_token_id)
        if min_new_tokens:
            kw["min_new_tokens"] = min_new_tokens
        if self.static_cache and emb.is_cuda:
            kw["cache_implementation"] = "static"
        out = self.llm.generate(inputs_embeds=emb, attention_mask=mask, **kw)
        texts = [self.tokenizer.decode(row.tolist()) for row in out]
        return texts, out

    @torch.no_grad()
    def predict(self, batch, modalities=MODALITIES):
        mods = self.check_modalities(modalities)
        res = {}
        for m in mods:
            texts, _ = self.generate_text(batch, m)
            allowed = {"a": ("a",), "v": ("v",), "av": ("a", "v", "av")}[m]
            rows = [torch.from_numpy(self.matcher.scores(t, allowed)) for t in texts]
            res[m] = torch.stack(rows)
        has_a = batch["has_audio"].bool().cpu()
        has_v = batch["has_video"].bool().cpu()
        if "a" in res:
            res["a"][~has_a] = 0.0  # no audio: nothing can be heard
        if "v" in res:
            res["v"][~has_v] = 0.0
        return res


@register("crab", CRAB_PRESETS)
def _build_crab(cfg) -> Crab:
    return Crab(**cfg)
