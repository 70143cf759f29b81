"""Crab (Du et al., CVPR 2025) as the authors built it, for audio / visual / audio-visual event recognition.

The module tree and parameter names follow the authors' ``UnifiedForCausalLM`` after ``peft_hyper``'s
``get_peft_model`` and ``init_multimodal_modules(visual_branch=True, audio_branch=True)`` (repository
``GeWu-Lab/Crab``: ``models/unified_llama.py``, ``models/unified_arch.py``, ``models/multimodal_encoder.py``,
``models/beats/``, ``peft_hyper/tuners/lora.py``); our own code:

* ``model`` -- ``transformers``' LLaMA decoder (``LlamaModel``) whose ``q/k/v/o/gate/up/down_proj`` carry the
  interaction-aware LoRA (:class:`HyperLoRALinear`: ``lora_route``, ``lora_A``, ``lora_B0..B{n-1}``), with
  the multimodal parts attached as the authors do:
  ``model.visual_encoder.vision_tower`` (``transformers.CLIPVisionModel``, ViT-L/14),
  ``model.vl_projector`` (``visual_ln``, ``visual_Qformer``, ``visual_query_tokens``, ``visual_proj``),
  ``model.audio_encoder.audio_encoder`` (BEATs, :mod:`models_zoo.beats`),
  ``model.al_projector`` (``audio_ln``, ``audio_Qformer``, ``audio_query_tokens``, ``audio_proj``);
* ``lm_head``.

So ``state_dict()`` keys equal the authors' model's keys without PEFT's ``base_model.model.`` wrapper, which
:meth:`Crab.load_checkpoint` strips. Weights come from four places, as in the authors' inference script:
``clip_dir`` (CLIP ViT-L/14 ``from_pretrained`` folder), ``beats_checkpoint`` (the BEATs ``.pt`` with its
``cfg``), ``llama_dir`` (LLaMA-2-7B-chat ``from_pretrained`` folder, also the tokenizer) and the Crab checkpoint
(``finetune_weights.bin``: projectors, Q-Formers and LoRA), loaded strictly. Without them a part is randomly
initialised from the preset (tests, benchmarks).

Inputs (batch from :func:`models_zoo.preprocess.collate`, decoded with ``keep_waveform``): ``frames`` -> 10
frames, CLIP-normalised; ``waveform`` -> ten 1-second segments, each a BEATs fbank [98, 128] -> 48 BEATs tokens
-> 32 Q-Former queries per second. Prompts: the authors' instructions (:data:`INSTRUCTIONS`) in the LLaMA-2 chat
format with their system message; the answer is parsed by :mod:`models_zoo.crab_parse` into VGGSound classes.
"""

from __future__ import annotations

import logging
import math
import re
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .base import MODALITIES, CheckpointError, ClipModel, LoadReport, read_state_dict, register
from .beats import BEATs, BEATsConfig, beats_fbank
from .preprocess import IMAGENET_MEAN, IMAGENET_STD, SAMPLE_RATE
from .qformer import QFormer, QFormerConfig

log = logging.getLogger(__name__)

# the authors' added tokens (UnifiedMetaForCausalLM.initialize_MM_tokenizer), in their order
SPECIAL_TOKENS = (
    "<image>",
    "<image_start>",
    "<image_end>",
    "<video>",
    "<video_start>",
    "<video_end>",
    "<audio>",
    "<audio_start>",
    "<audio_end>",
    "<mask_start>",
    "<mask_end>",
)
MASK_TOKENS = tuple(f"<mask_{i}>" for i in range(6))
SYSTEM = "You are a helpful assistant."
# the authors' instructions (dataset/unified_dataset.py, dataset/pretrain_dataset.py test sets)
INSTRUCTIONS = {
    "audio": "This is an audio:\n<audio_start><audio><audio_end>\nPlease describe this audio.",
    "video": "<video_start><video><video_end>\nPlease describe this video.",
    "avvp": (
        "This is a video:\n<video_start><video><video_end>\nThis is an audio:\n<audio_start><audio><audio_end>\n"
        "Please determine the events that occur based on the visual and audio information in the video, as "
        "well as the start and end times of these events."
    ),
    "ave": (
        "This is a video:\n<video_start><video><video_end>\nThis is an audio:\n<audio_start><audio><audio_end>\n"
        "Please describe the events and time range that occurred in the video."
    ),
}
DEFAULT_PROMPTS = {"a": "audio", "v": "video", "av": "avvp"}
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
CHECKPOINT_PARTS = ("vl_projector", "al_projector", "lora")  # what the authors' finetune_weights.bin holds
PEFT_PREFIX = "base_model.model."


def llama2_chat(instruction: str, system: str = SYSTEM) -> str:
    """The LLaMA-2 chat format of one system + one user turn, as Llama-2-7b-chat-hf's template writes it."""
    return f"<s>[INST] <<SYS>>\n{system}\n<</SYS>>\n\n{instruction.strip()} [/INST]"


# ------------------------------------------------------------------------------------------------
# Tokenizers
# ------------------------------------------------------------------------------------------------


class ByteTokenizer:
    """For randomly initialised models: pad 0, bos 1 ("<s>"), eos 2, bytes at 3..258, then the authors' added
    tokens at 259.. in their order."""

    pad_token_id, bos_token_id, eos_token_id = 0, 1, 2
    base_size = 259

    def __init__(self):
        self.added = {t: self.base_size + i for i, t in enumerate(SPECIAL_TOKENS + MASK_TOKENS)}
        self._split = re.compile("(" + "|".join(re.escape(t) for t in ("<s>", *self.added)) + ")")

    def __len__(self):
        return self.base_size + len(self.added)

    def convert_tokens_to_ids(self, token: str) -> int:
        return self.added[token]

    def encode(self, text: str) -> list[int]:
        ids: list[int] = []
        for piece in self._split.split(text):
            if piece == "<s>":
                ids.append(self.bos_token_id)
            elif piece in self.added:
                ids.append(self.added[piece])
            elif piece:
                ids.extend(b + 3 for b in piece.encode("utf-8"))
        return ids

    def decode(self, ids) -> str:
        return bytes(int(i) - 3 for i in ids if 3 <= int(i) < self.base_size).decode("utf-8", errors="ignore")

    def chat(self, instruction: str) -> str:
        return llama2_chat(instruction)


class HFTokenizer:
    """The LLaMA tokenizer from a local folder, with the authors' added tokens."""

    def __init__(self, path):
        from transformers import AutoTokenizer  # noqa: PLC0415

        self.tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True, padding_side="left")
        self.tok.add_tokens(list(SPECIAL_TOKENS), special_tokens=True)
        self.tok.add_tokens(list(MASK_TOKENS), special_tokens=False)
        self.bos_token_id = self.tok.bos_token_id
        self.eos_token_id = self.tok.eos_token_id
        self.pad_token_id = self.tok.pad_token_id if self.tok.pad_token_id is not None else self.eos_token_id

    def __len__(self):
        return len(self.tok)

    def convert_tokens_to_ids(self, token: str) -> int:
        return self.tok.convert_tokens_to_ids(token)

    def encode(self, text: str) -> list[int]:
        return self.tok.convert_tokens_to_ids(self.tok.tokenize(text))  # as the authors' collator

    def decode(self, ids) -> str:
        return self.tok.decode(list(ids), skip_special_tokens=True)

    def chat(self, instruction: str) -> str:
        messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": instruction}]
        if getattr(self.tok, "chat_template", None):
            return self.tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        return llama2_chat(instruction)


# ------------------------------------------------------------------------------------------------
# Interaction-aware LoRA (peft_hyper/tuners/lora.py: Linear)
# ------------------------------------------------------------------------------------------------


class HyperLoRALinear(nn.Linear):
    """``W x + b + scaling * sum_i softmax(route(x))_i * B_i(A(x))``: one shared down-projection ``lora_A``,
    ``lora_nums`` up-projections ``lora_B{i}`` mixed per token by the router ``lora_route``. Keeps the base
    layer's ``weight``/``bias`` under their own names, as the authors' layer (a subclass of nn.Linear) does."""

    def __init__(self, base: nn.Linear, r: int, lora_alpha: float, lora_nums: int, lora_dropout: float = 0.0):
        nn.Linear.__init__(self, base.in_features, base.out_features, bias=base.bias is not None, device="meta")
        self.weight = base.weight
        self.bias = base.bias
        dd = dict(device=base.weight.device, dtype=base.weight.dtype)
        self.lora_dropout = nn.Dropout(lora_dropout) if lora_dropout > 0 else nn.Identity()
        self.lora_num = lora_nums
        self.lora_route = nn.Linear(base.in_features, lora_nums, bias=False, **dd)
        self.lora_A = nn.Linear(base.in_features, r, bias=False, **dd)
        for i in range(lora_nums):
            setattr(self, f"lora_B{i}", nn.Linear(r, base.out_features, bias=False, **dd))
        self.scaling = lora_alpha / r
        nn.init.kaiming_uniform_(self.lora_A.weight, a=math.sqrt(5))
        nn.init.kaiming_uniform_(self.lora_route.weight, a=math.sqrt(5))
        for i in range(lora_nums):
            nn.init.zeros_(getattr(self, f"lora_B{i}").weight)

    def forward(self, x):
        result = F.linear(x, self.weight, self.bias)
        route = F.softmax(self.lora_route(x), dim=-1, dtype=torch.float32).to(result.dtype)
        a = self.lora_A(self.lora_dropout(x))
        for i in range(self.lora_num):
            result = result + route[..., i : i + 1] * getattr(self, f"lora_B{i}")(a) * self.scaling
        return result


def add_hyper_lora(
    module: nn.Module, targets: Sequence[str], r: int, lora_alpha: float, lora_nums: int, lora_dropout: float = 0.0
) -> int:
    """Replace every nn.Linear whose name ends with one of ``targets`` (the authors' matching rule)."""
    n = 0
    for name, child in list(module.named_modules()):
        if (
            name
            and any(name.endswith(t) for t in targets)
            and isinstance(child, nn.Linear)
            and not isinstance(child, HyperLoRALinear)
        ):
            parent = module.get_submodule(name.rsplit(".", 1)[0]) if "." in name else module
            setattr(parent, name.rsplit(".", 1)[-1], HyperLoRALinear(child, r, lora_alpha, lora_nums, lora_dropout))
            n += 1
    if n == 0:
        raise ValueError(f"no nn.Linear named {list(targets)} found for the LoRA")
    return n


# ------------------------------------------------------------------------------------------------
# Encoders and projectors (models/multimodal_encoder.py)
# ------------------------------------------------------------------------------------------------


def build_mlp(depth: int, hidden_size: int, output_hidden_size: int) -> nn.Sequential:
    modules: list[nn.Module] = [nn.Linear(hidden_size, output_hidden_size)]
    for _ in range(1, depth):
        modules += [nn.GELU(), nn.Linear(output_hidden_size, output_hidden_size)]
    return nn.Sequential(*modules)


class VisualEncoder(nn.Module):
    """``vision_tower`` = CLIPVisionModel; features: hidden state ``select_layer_list[-1]`` (the one Crab feeds
    the LLM), patch tokens only."""

    def __init__(self, clip_config: dict, clip_dir=None, select_layer_list=(14, 22, 23)):
        super().__init__()
        from transformers import CLIPVisionConfig, CLIPVisionModel  # noqa: PLC0415

        if clip_dir:
            self.vision_tower = CLIPVisionModel.from_pretrained(str(clip_dir), local_files_only=True)
        else:
            self.vision_tower = CLIPVisionModel(CLIPVisionConfig(**clip_config))
        self.vision_tower.requires_grad_(False)
        self.select_layer_list = list(select_layer_list)
        n_layers = self.vision_tower.config.num_hidden_layers
        if not -n_layers - 1 <= self.select_layer_list[-1] <= n_layers:
            raise ValueError(
                f"select_layer_list {self.select_layer_list}: CLIP has {n_layers} layers (hidden states 0..{n_layers})"
            )

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        b, t = video.shape[:2]
        out = self.vision_tower(video.reshape(b * t, *video.shape[2:]), output_hidden_states=True)
        feats = out.hidden_states[self.select_layer_list[-1]][:, 1:]
        return feats.reshape(b, t * feats.shape[1], feats.shape[2])


class _Projector(nn.Module):
    def _query(self, qformer: QFormer, ln: nn.LayerNorm, queries: nn.Parameter, feats: torch.Tensor) -> torch.Tensor:
        feats = ln(feats)
        q = queries.expand(feats.shape[0], -1, -1).to(feats.dtype)
        return qformer(q, feats)[:, : queries.shape[1]]


class VLProjector(_Projector):
    def __init__(
        self,
        hidden_size: int,
        d_model: int,
        image_token_nums: int,
        num_query_token: int,
        qformer: QFormerConfig,
        depth: int = 2,
    ):
        super().__init__()
        self.num_query_token = num_query_token
        self.image_token_nums = image_token_nums
        self.visual_ln = nn.LayerNorm(hidden_size)
        self.visual_Qformer = QFormer(qformer)
        self.visual_query_tokens = nn.Parameter(torch.randn(1, num_query_token, qformer.hidden_size) * 0.02)
        self.visual_proj = build_mlp(depth, qformer.hidden_size, d_model)

    def forward(self, visual_feature):  # [b, t*n, d]
        b = visual_feature.shape[0]
        t = visual_feature.shape[1] // self.image_token_nums
        x = visual_feature.reshape(b * t, self.image_token_nums, -1)
        q = self.visual_proj(self._query(self.visual_Qformer, self.visual_ln, self.visual_query_tokens, x))
        return q.reshape(b, t * self.num_query_token, -1)


class AudioEncoder(nn.Module):
    def __init__(self, cfg: BEATsConfig):
        super().__init__()
        self.audio_encoder = BEATs(cfg)
        self.audio_encoder.requires_grad_(False)

    def forward(self, fbank: torch.Tensor) -> torch.Tensor:  # [b, t, L, 128] -> [b, t, n, d]
        b, t = fbank.shape[:2]
        feats = self.audio_encoder.extract_features(fbank.reshape(b * t, *fbank.shape[2:]))
        return feats.reshape(b, t, feats.shape[1], -1)


class ALProjector(_Projector):
    def __init__(self, hidden_size: int, d_model: int, num_query_token: int, qformer: QFormerConfig, depth: int = 2):
        super().__init__()
        self.audio_ln = nn.LayerNorm(hidden_size)
        self.num_query_token = num_query_token
        self.audio_Qformer = QFormer(qformer)
        self.audio_query_tokens = nn.Parameter(torch.randn(1, num_query_token, qformer.hidden_size) * 0.02)
        self.audio_proj = build_mlp(depth, qformer.hidden_size, d_model)

    def forward(self, audio_feature):  # [b, t, n, d]
        b, t, n, d = audio_feature.shape
        q = self._query(self.audio_Qformer, self.audio_ln, self.audio_query_tokens, audio_feature.reshape(b * t, n, d))
        return self.audio_proj(q.reshape(b, t * self.num_query_token, -1))


def read_beats_checkpoint(path) -> tuple[dict, dict[str, torch.Tensor]]:
    """The BEATs release format: ``{"cfg": dict, "model": state_dict}``."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"BEATs checkpoint {p} does not exist or is not a file")
    try:
        ckpt = torch.load(str(p), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001
        raise CheckpointError(f"BEATs checkpoint {p} cannot be read ({type(exc).__name__}: {exc})") from exc
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("cfg"), dict) or not isinstance(ckpt.get("model"), dict):
        raise CheckpointError(
            f"BEATs checkpoint {p} is not {{'cfg': dict, 'model': state_dict}} (the BEATs release "
            "format, e.g. BEATs_iter3_plus_AS2M_finetuned_on_AS2M_cpt2.pt)"
        )
    return ckpt["cfg"], ckpt["model"]


# ------------------------------------------------------------------------------------------------
# Presets
# ------------------------------------------------------------------------------------------------

FULL_CLIP = dict(
    hidden_size=1024,
    intermediate_size=4096,
    num_hidden_layers=24,
    num_attention_heads=16,
    image_size=224,
    patch_size=14,
    projection_dim=768,
)
FULL_LLAMA = dict(
    hidden_size=4096,
    intermediate_size=11008,
    num_hidden_layers=32,
    num_attention_heads=32,
    num_key_value_heads=32,
    vocab_size=32000,
    max_position_embeddings=4096,
    rms_norm_eps=1e-5,
)
# BEATs_iter3_plus_AS2M_finetuned_on_AS2M_cpt2 (its own cfg is read from the file when beats_checkpoint is set)
FULL_BEATS = dict(
    input_patch_size=16,
    embed_dim=512,
    conv_bias=False,
    encoder_layers=12,
    encoder_embed_dim=768,
    encoder_ffn_embed_dim=3072,
    encoder_attention_heads=12,
    activation_fn="gelu",
    layer_norm_first=False,
    deep_norm=True,
    conv_pos=128,
    conv_pos_groups=16,
    relative_position_embedding=True,
    num_buckets=320,
    max_distance=800,
    gru_rel_pos=True,
    finetuned_model=True,
    predictor_class=527,
)
LORA = dict(
    r=8,
    lora_alpha=16,
    lora_dropout=0.05,
    lora_nums=3,
    target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "down_proj", "up_proj"],
)
CRAB_PRESETS = {
    "base": dict(
        clip=FULL_CLIP,
        clip_dir=None,
        select_layer_list=[14, 22, 23],
        beats=FULL_BEATS,
        beats_checkpoint=None,
        qformer=dict(),
        visual_query_tokens=32,
        audio_query_tokens=32,
        llama=FULL_LLAMA,
        llama_dir=None,
        tokenizer_dir=None,
        lora=LORA,
        num_frames=10,
        max_new_tokens=320,
        prompts=DEFAULT_PROMPTS,
        threshold=0.6,
        text_backend="auto",
        class_names=None,
    ),
    # parity tests: the authors' code fixes the CLIP width at 1024 and the BEATs width at 768 (VLProjector /
    # ALProjector hidden sizes), so the tiny model keeps those widths with one layer each
    "tiny": dict(
        clip=dict(
            hidden_size=1024,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=16,
            image_size=28,
            patch_size=14,
            projection_dim=32,
        ),
        clip_dir=None,
        select_layer_list=[1],
        beats=dict(
            FULL_BEATS,
            embed_dim=32,
            encoder_layers=1,
            encoder_ffn_embed_dim=64,
            conv_pos=16,
            num_buckets=32,
            max_distance=64,
            predictor_class=5,
        ),
        beats_checkpoint=None,
        qformer=dict(
            hidden_size=32, num_attention_heads=2, intermediate_size=64, vocab_size=64, max_position_embeddings=32
        ),
        visual_query_tokens=4,
        audio_query_tokens=4,
        llama=dict(
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=4,
            vocab_size=259,
            max_position_embeddings=2048,
        ),
        llama_dir=None,
        tokenizer_dir=None,
        lora=dict(LORA, r=4, lora_alpha=8),
        num_frames=2,
        max_new_tokens=8,
        prompts=DEFAULT_PROMPTS,
        threshold=0.6,
        text_backend="hash",
        class_names=None,
    ),
}
CRAB_PRESETS["full"] = CRAB_PRESETS["base"]


# ------------------------------------------------------------------------------------------------
# The model
# ------------------------------------------------------------------------------------------------


class Crab(ClipModel):
    arch = "crab"
    decode_kwargs = {"keep_waveform": True}  # the runner decodes the waveform for BEATs

    def __init__(
        self,
        clip,
        clip_dir,
        select_layer_list,
        beats,
        beats_checkpoint,
        qformer,
        visual_query_tokens,
        audio_query_tokens,
        llama,
        llama_dir,
        tokenizer_dir,
        lora,
        num_frames,
        max_new_tokens,
        prompts,
        threshold,
        text_backend,
        class_names,
        label_cache_dir=None,
        static_cache=False,
    ):
        super().__init__()
        from transformers import LlamaConfig, LlamaForCausalLM  # noqa: PLC0415

        bad = {m: p for m, p in dict(prompts).items() if m not in MODALITIES or p not in INSTRUCTIONS}
        if bad:
            raise ValueError(f"bad prompts {bad}; keys: a, v, av; values: {', '.join(INSTRUCTIONS)}")
        self.prompts = {**DEFAULT_PROMPTS, **dict(prompts)}
        if llama_dir:
            llm = LlamaForCausalLM.from_pretrained(str(llama_dir), local_files_only=True)
        else:
            llm = LlamaForCausalLM(LlamaConfig(**llama))
        tok_dir = tokenizer_dir or llama_dir
        self.tokenizer = HFTokenizer(tok_dir) if tok_dir else ByteTokenizer()
        # the authors: LoRA first (get_peft_model), then the added tokens, then the multimodal modules
        self.n_lora = add_hyper_lora(
            llm.model,
            lora["target_modules"],
            lora["r"],
            lora["lora_alpha"],
            lora["lora_nums"],
            lora.get("lora_dropout", 0.0),
        )
        self._resize_embeddings(llm, len(self.tokenizer))
        d_model = llm.config.hidden_size
        model = llm.model
        model.visual_encoder = VisualEncoder(clip, clip_dir, select_layer_list)
        vcfg = model.visual_encoder.vision_tower.config
        qcfg = QFormerConfig(**qformer)
        model.vl_projector = VLProjector(
            vcfg.hidden_size,
            d_model,
            (vcfg.image_size // vcfg.patch_size) ** 2,
            visual_query_tokens,
            QFormerConfig(**{**qcfg.__dict__, "encoder_width": vcfg.hidden_size}),
        )
        beats_sd = None
        if beats_checkpoint:
            beats_cfg, beats_sd = read_beats_checkpoint(beats_checkpoint)
            bcfg = BEATsConfig.from_dict(beats_cfg)
        else:
            bcfg = BEATsConfig.from_dict(beats)
        model.audio_encoder = AudioEncoder(bcfg)
        if beats_sd is not None:
            self._load_beats(model.audio_encoder.audio_encoder, beats_sd, beats_checkpoint)
        model.al_projector = ALProjector(
            bcfg.encoder_embed_dim,
            d_model,
            audio_query_tokens,
            QFormerConfig(**{**qcfg.__dict__, "encoder_width": bcfg.encoder_embed_dim}),
        )
        self.model = model
        self.lm_head = llm.lm_head
        object.__setattr__(self, "_llm", llm)  # for generate(); its modules are ours, registered above
        self.num_frames = num_frames
        self.max_new_tokens = max_new_tokens
        self.threshold = threshold
        self.text_backend = text_backend
        self._class_names = class_names
        self._label_cache_dir = label_cache_dir
        self._matcher = None
        self.static_cache = bool(static_cache)  # CUDA: fixed-size KV cache, decoding step compiled

    @property
    def llm(self):
        """The ``transformers`` LlamaForCausalLM (generate); its ``model``/``lm_head`` are this model's."""
        return self._llm

    def train(self, mode: bool = True):
        super().train(mode)
        self._llm.train(mode)
        return self

    @staticmethod
    def _resize_embeddings(llm, n: int) -> None:
        old = llm.get_input_embeddings().weight.shape[0]
        if n == old:
            return
        llm.resize_token_embeddings(n, mean_resizing=False)
        std = getattr(llm.config, "initializer_range", 0.02)
        g = torch.Generator().manual_seed(0)
        with torch.no_grad():  # the added rows: N(0, initializer_range), as transformers 4.37 did for the authors
            for emb in (llm.get_input_embeddings(), llm.get_output_embeddings()):
                w = emb.weight
                if w.shape[0] > old:
                    w[old:] = (torch.randn(w.shape[0] - old, w.shape[1], generator=g) * std).to(w)

    @staticmethod
    def _load_beats(encoder: nn.Module, sd: dict, path) -> None:
        own = encoder.state_dict()
        missing = [k for k in own if k not in sd]
        mismatched = [
            f"{k} checkpoint {list(sd[k].shape)} vs model {list(own[k].shape)}"
            for k in own
            if k in sd and sd[k].shape != own[k].shape
        ]
        unexpected = [k for k in sd if k not in own]
        if missing or mismatched:
            parts = ([f"missing: {', '.join(missing)}"] if missing else []) + (
                [f"shape mismatch: {', '.join(mismatched)}"] if mismatched else []
            )
            raise CheckpointError(f"BEATs checkpoint {path} does not fit its cfg: {'; '.join(parts)}")
        for k in unexpected:  # the authors load BEATs with strict=False
            log.warning("crab: BEATs checkpoint %s: unused key %s", path, k)
        with torch.no_grad():
            for k, v in own.items():
                v.copy_(sd[k].to(v.dtype))

    # ---- weights ------------------------------------------------------------------------------
    def checkpoint_keys(self) -> list[str]:
        """The parameters the authors' Crab checkpoint holds (their save_modules: vl_projector, al_projector,
        lora), one name per tensor (a tied weight only under its first name), without the PEFT prefix."""
        return [k for k, _ in self.named_parameters() if any(p in k for p in CHECKPOINT_PARTS)]

    def checkpoint_state_dict(self) -> dict[str, torch.Tensor]:
        """This model's weights in the layout of the authors' ``finetune_weights.bin``."""
        sd = self.state_dict()
        return {PEFT_PREFIX + k: sd[k] for k in self.checkpoint_keys()}

    @classmethod
    def checkpoint_check_config(cls, cfg):
        """Shapes only: the CLIP and LLaMA configs from their folders' config.json, the BEATs cfg from its file;
        no weights are read but the checkpoint's."""
        from transformers import CLIPVisionConfig, LlamaConfig  # noqa: PLC0415

        out = {**cfg, "clip_dir": None, "llama_dir": None, "tokenizer_dir": None, "beats_checkpoint": None}
        if cfg.get("clip_dir"):
            out["clip"] = CLIPVisionConfig.from_pretrained(str(cfg["clip_dir"]), local_files_only=True).to_dict()
        if cfg.get("llama_dir"):
            out["llama"] = LlamaConfig.from_pretrained(str(cfg["llama_dir"]), local_files_only=True).to_dict()
        if cfg.get("beats_checkpoint"):
            out["beats"] = read_beats_checkpoint(cfg["beats_checkpoint"])[0]
        return out

    def load_checkpoint(self, path, strict: bool = True) -> LoadReport:
        """Load a Crab checkpoint (``finetune_weights.bin``; keys with or without ``base_model.model.``).
        strict: refuse (CheckpointError naming the file and every key, nothing loaded) when a projector or LoRA
        tensor is missing, a shape differs, or the file holds a key this model does not have."""
        sd = read_state_dict(path)
        sd = {(k[len(PEFT_PREFIX) :] if k.startswith(PEFT_PREFIX) else k): v for k, v in sd.items()}
        own = self.state_dict()
        rep = LoadReport(path=str(path))
        rep.missing = [k for k in self.checkpoint_keys() if k not in sd]
        for k, v in sd.items():
            if k not in own:
                rep.unexpected.append(k)
            elif tuple(v.shape) != tuple(own[k].shape):
                rep.mismatched.append((k, tuple(v.shape), tuple(own[k].shape)))
            else:
                rep.loaded.append(k)
        for k in rep.missing:
            log.warning("crab: key missing in checkpoint %s: %s", path, k)
        for k in rep.unexpected:
            log.warning("crab: unexpected key in checkpoint %s: %s", path, k)
        for k, a, b in rep.mismatched:
            log.warning("crab: shape mismatch in checkpoint %s: %s %s vs model %s", path, k, a, b)
        if (strict and (rep.missing or rep.mismatched or rep.unexpected)) or not rep.loaded:
            raise CheckpointError(f"checkpoint {path} does not fit architecture crab: {rep.describe()}")
        if not any(v.is_meta for v in own.values()):  # a skeleton (check_checkpoint) has nothing to fill
            with torch.no_grad():
                for k in rep.loaded:
                    own[k].copy_(sd[k].to(own[k].dtype))
        return rep

    @property
    def matcher(self):
        if self._matcher is None:
            from .crab_parse import ClassMatcher  # noqa: PLC0415
            from .text_embed import default_class_names  # noqa: PLC0415

            names = self._class_names or default_class_names()
            self._matcher = ClassMatcher(
                names, backend=self.text_backend, threshold=self.threshold, cache_dir=self._label_cache_dir
            )
        return self._matcher

    # ---- encoders -----------------------------------------------------------------------------
    @property
    def _dtype(self):
        return self.lm_head.weight.dtype

    def encode_video(self, frames: torch.Tensor) -> torch.Tensor:
        """ImageNet-normalised frames [B, T, 3, H, W] -> [B, num_frames * queries, d_model]."""
        b, t = frames.shape[:2]
        k = min(self.num_frames, t)
        idx = torch.linspace(0, t - 1, k).round().long().tolist()
        x = frames[:, idx].float()
        mean_in = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 1, 3, 1, 1)
        std_in = torch.tensor(IMAGENET_STD, device=x.device).view(1, 1, 3, 1, 1)
        mean_c = torch.tensor(CLIP_MEAN, device=x.device).view(1, 1, 3, 1, 1)
        std_c = torch.tensor(CLIP_STD, device=x.device).view(1, 1, 3, 1, 1)
        x = (x * std_in + mean_in - mean_c) / std_c  # the CLIP image processor's normalisation
        size = self.model.visual_encoder.vision_tower.config.image_size
        if x.shape[-1] != size or x.shape[-2] != size:
            x = F.interpolate(x.flatten(0, 1), size=(size, size), mode="bicubic", align_corners=False)
            x = x.unflatten(0, (b, k))
        feats = self.model.visual_encoder(x.to(self._dtype))
        return self.model.vl_projector(feats)

    @staticmethod
    def audio_fbanks(waveform: torch.Tensor, segments: int = 10) -> torch.Tensor:
        """[B, N] 16 kHz waveforms -> [B, segments, frames, 128]: each 1/segments of the clip (1 s of a 10-s
        clip) as its own BEATs fbank, as the authors' AVE/AVVP data loader does."""
        w = waveform.float().cpu()
        per = w.shape[1] // segments
        if per < int(0.025 * SAMPLE_RATE):
            raise ValueError(f"waveform of {w.shape[1]} samples is too short for {segments} audio segments")
        out = [torch.stack([beats_fbank(row[i * per : (i + 1) * per]) for i in range(segments)]) for row in w]
        return torch.stack(out)

    def encode_audio(self, waveform: torch.Tensor) -> torch.Tensor:
        """[B, N] waveform -> [B, 10 * queries, d_model]."""
        fb = self.audio_fbanks(waveform).to(self.lm_head.weight.device, self._dtype)
        return self.model.al_projector(self.model.audio_encoder(fb))

    def _text_emb(self, ids, b):
        emb = self.llm.get_input_embeddings()
        t = torch.tensor(ids, dtype=torch.long, device=emb.weight.device)
        return emb(t).unsqueeze(0).expand(b, -1, -1)

    def prompt_ids(self, modality: str) -> list[int]:
        return self.tokenizer.encode(self.tokenizer.chat(INSTRUCTIONS[self.prompts[modality]]))

    def build_inputs(self, batch, modality: str) -> torch.Tensor:
        """Prompt embeddings [B, L, H]: the chat prompt with the ``<video>`` / ``<audio>`` token replaced by the
        clip's visual / audio query embeddings (the authors' prepare_multimodal_inputs)."""
        if modality not in MODALITIES:
            raise ValueError(f"unknown modality {modality!r}; allowed: a, v, av")
        ids = self.prompt_ids(modality)
        b = batch["frames"].shape[0]
        slots = {
            self.tokenizer.convert_tokens_to_ids("<video>"): "video",
            self.tokenizer.convert_tokens_to_ids("<audio>"): "audio",
        }
        pieces, start = [], 0
        for i, tid in enumerate(ids):
            if tid in slots:
                if i > start:
                    pieces.append(self._text_emb(ids[start:i], b))
                if slots[tid] == "video":
                    pieces.append(self.encode_video(batch["frames"]))
                else:
                    if "waveform" not in batch:
                        raise ValueError(
                            "Crab needs the clip waveform: decode with keep_waveform=True "
                            "(the batch runner does this for Crab)"
                        )
                    pieces.append(self.encode_audio(batch["waveform"]))
                start = i + 1
        if start < len(ids):
            pieces.append(self._text_emb(ids[start:], b))
        return torch.cat([p.to(self._dtype) for p in pieces], dim=1)

    @torch.no_grad()
    def generate_text(
        self, batch, modality: str, max_new_tokens: int | None = None, min_new_tokens: int | None = None
    ) -> tuple[list[str], torch.Tensor]:
        emb = self.build_inputs(batch, modality)
        mask = torch.ones(emb.shape[:2], dtype=torch.long, device=emb.device)
        kw = dict(
            max_new_tokens=max_new_tokens or self.max_new_tokens,
            do_sample=False,
            pad_token_id=self.tokenizer.pad_token_id,
            eos_token_id=self.tokenizer.eos_token_id,
        )
        if min_new_tokens:
            kw["min_new_tokens"] = min_new_tokens
        if self.static_cache and emb.is_cuda:
            kw["cache_implementation"] = "static"
        out = self.llm.generate(inputs_embeds=emb, attention_mask=mask, **kw)
        return [self.tokenizer.decode(row.tolist()) for row in out], out

    @torch.no_grad()
    def predict(self, batch, modalities=MODALITIES):
        mods = self.check_modalities(modalities)
        res = {}
        for m in mods:
            texts, _ = self.generate_text(batch, m)
            allowed = {"a": ("a",), "v": ("v",), "av": ("a", "v", "av")}[m]
            res[m] = torch.stack([torch.from_numpy(self.matcher.scores(t, allowed)) for t in texts])
        has_a = batch["has_audio"].bool().cpu()
        has_v = batch["has_video"].bool().cpu()
        if "a" in res:
            res["a"][~has_a] = 0.0  # no audio: nothing can be heard
        if "v" in res:
            res["v"][~has_v] = 0.0
        return res


@register("crab", CRAB_PRESETS, model_class=Crab)
def _build_crab(cfg) -> Crab:
    return Crab(**cfg)


__all__ = ["Crab", "CRAB_PRESETS", "HyperLoRALinear", "INSTRUCTIONS", "SPECIAL_TOKENS", "llama2_chat"]
