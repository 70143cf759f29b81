"""LEAP (Zhou et al., ECCV 2024) as the authors built it: MM-Pyramid encoder + LEAP decoder.

Module and parameter names, shapes and the forward computation follow the authors' ``AVVPNet``
(repository ``jasongief/LEAP``: ``main_network_temporal_add_label.py``, ``nets/MPAM.py``,
``nets/Transformer.py``), so the authors' checkpoint (``MMPyr_LEAP_pretrained.pt``, a plain
``state_dict``) loads strictly. This is our own code; the parity test
(``tests/models_zoo/test_leap_parity.py``) checks key names, shapes and a forward pass recorded from
the authors' code.

Inputs, per 10-second clip (what the authors' data loader gives the network):

* ``audio`` [B, 10, 128]: one VGGish embedding per second;
* ``video_s`` [B, 80, 2048]: ResNet-152 features of 8 frames per second;
* ``video_st`` [B, 10, 512]: R(2+1)D-18 clip features, one per second;
* ``label`` [B, 25, 300] (optional): GloVe embeddings of the 25 LLP class names; by default the
  model's own ``label_text`` (read from the authors' ``llp_label_glove_embeddings.pt``).

They are read from precomputed per-video ``.npy`` files, laid out as the authors (and AVVP-ECCV20)
store them: ``<feature_root>/vggish/<video_id>.npy``, ``<feature_root>/res152/<video_id>.npy``,
``<feature_root>/r2plus1d_18/<video_id>.npy`` (each folder can be given on its own).

Outputs (``predict_segments``): clip-level probabilities ``a`` and ``v`` [B, 25] (sigmoid of the label
queries after the decoder), ``av = a + v - a*v`` (the authors' event rule ``a OR v`` on probabilities;
their own ``global`` output is the same rule on the 0.5-thresholded values and is returned too), and
per-second probabilities ``a_seg`` / ``v_seg`` [B, 10, 25] (sigmoid of the head-averaged attention
scores of the last decoder layer). Classes are the 25 LLP event classes (``LLP_CLASSES``); see
``models_zoo/data/llp_to_vggsound.csv`` for how they are proposed as VGGSound classes.
"""

from __future__ import annotations

import copy
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .base import MODALITIES, ClipModel, LoadReport, load_checkpoint, register

log = logging.getLogger(__name__)

# The LLP (Look, Listen and Parse) event classes in the authors' logit order (dataloader_leap_add_label.py).
LLP_CLASSES = (
    "Speech",
    "Car",
    "Cheering",
    "Dog",
    "Cat",
    "Frying_(food)",
    "Basketball_bounce",
    "Fire_alarm",
    "Chainsaw",
    "Cello",
    "Banjo",
    "Singing",
    "Chicken_rooster",
    "Violin_fiddle",
    "Vacuum_cleaner",
    "Baby_laughter",
    "Accordion",
    "Lawn_mower",
    "Motorcycle",
    "Helicopter",
    "Acoustic_guitar",
    "Telephone_bell_ringing",
    "Baby_cry_infant_cry",
    "Blender",
    "Clapping",
)
NUM_SEGMENTS = 10
# name -> (folder of the authors' layout, shape per clip)
FEATURES = {
    "audio": ("vggish", (NUM_SEGMENTS, 128)),
    "video_s": ("res152", (8 * NUM_SEGMENTS, 2048)),
    "video_st": ("r2plus1d_18", (NUM_SEGMENTS, 512)),
}
DEFAULT_CLASS_MAP = Path(__file__).with_name("data") / "llp_to_vggsound.csv"


# ------------------------------------------------------------------------------------------------
# Building blocks (names as in nets/Transformer.py and nets/MPAM.py)
# ------------------------------------------------------------------------------------------------


def _clones(module: nn.Module, n: int) -> nn.ModuleList:
    return nn.ModuleList([copy.deepcopy(module) for _ in range(n)])


def _band_mask(n_q: int, n_k: int, half: int, device) -> torch.Tensor:
    """True where key j is within `half` steps of query i (the authors' local-attention window)."""
    i = torch.arange(n_q, device=device)[:, None]
    j = torch.arange(n_k, device=device)[None, :]
    return (j - i).abs() <= half


class MultiHeadAttention(nn.Module):
    """4 linears (q, k, v, out); ``masksize`` != 1 restricts each step to a window of +-masksize/2 steps.
    ``raw_scores=True`` (the decoder's VanillaMultiHeadAttention) returns the scaled scores before the
    softmax as the attention output, as the authors do; otherwise the softmax weights. ``layer_norm`` is
    unused, as in the original, but part of the state dict."""

    def __init__(self, h: int, d_model: int, masksize: int = 1, dropout: float = 0.1, raw_scores: bool = False):
        super().__init__()
        if d_model % h:
            raise ValueError(f"d_model {d_model} is not a multiple of the number of heads {h}")
        self.d_k = d_model // h
        self.h = h
        self.linears = _clones(nn.Linear(d_model, d_model), 4)
        self.masksize = masksize
        self.layer_norm = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(p=dropout)
        self.raw_scores = raw_scores

    def forward(self, query, key, value):
        b = query.size(0)
        q, k, v = [
            lin(x).view(b, -1, self.h, self.d_k).transpose(1, 2) for lin, x in zip(self.linears, (query, key, value))
        ]
        scores = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(self.d_k)
        if not self.raw_scores and self.masksize != 1:
            keep = _band_mask(scores.shape[-2], scores.shape[-1], int(self.masksize / 2), scores.device)
            scores = scores.masked_fill(~keep, -1e9)
        p_attn = self.dropout(F.softmax(scores, dim=-1))
        x = torch.matmul(p_attn, v).transpose(1, 2).contiguous().view(b, -1, self.h * self.d_k)
        return self.linears[-1](x), (scores if self.raw_scores else p_attn)


class PositionwiseFeedForward(nn.Module):
    def __init__(self, d_model: int, d_ff: int, dropout: float = 0.1):
        super().__init__()
        self.w_1 = nn.Linear(d_model, d_ff)
        self.w_2 = nn.Linear(d_ff, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        return self.w_2(self.dropout(F.relu(self.w_1(x))))


class SublayerConnection(nn.Module):
    """x + dropout(sublayer(LayerNorm(x)))."""

    def __init__(self, size: int, dropout: float):
        super().__init__()
        self.norm = nn.LayerNorm(size)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x, sublayer):
        return x + self.dropout(sublayer(self.norm(x)))


class TransformerLayer(nn.Module):
    """Pre-norm attention (only the query is normalised) then feed-forward."""

    def __init__(self, size: int, self_attn: nn.Module, feed_forward: nn.Module, dropout: float):
        super().__init__()
        self.self_attn = self_attn
        self.feed_forward = feed_forward
        self.sublayer = _clones(SublayerConnection(size, dropout), 2)
        self.size = size

    def forward(self, q, k, v):
        q = self.sublayer[0](q, lambda x: self.self_attn(x, k, v)[0])
        return self.sublayer[1](q, self.feed_forward)


class VanillaTransformerLayer(TransformerLayer):
    """The decoder layer: as TransformerLayer, and also returns the attention scores of the updated
    (not normalised) query against the keys, which the authors read as per-second evidence."""

    def forward(self, q, k, v):
        q = self.sublayer[0](q, lambda x: self.self_attn(x, k, v)[0])
        attn = self.self_attn(q, k, v)[1]
        return self.sublayer[1](q, self.feed_forward), attn


class SelfAttentionBlock(nn.Module):
    def __init__(self, attention_layer: nn.Module):
        super().__init__()
        self.layer = attention_layer
        self.size = attention_layer.size

    def forward(self, feature):
        return self.layer(feature, feature, feature)


class CrossAttentionBlock(nn.Module):
    def __init__(self, attention_layer: nn.Module):
        super().__init__()
        self.layer = attention_layer
        self.size = attention_layer.size

    def forward(self, video, audio):
        return self.layer(video, audio, audio), self.layer(audio, video, video)


class IntegrateAttentionBlock(nn.Module):
    """Self-attention per modality + cross-modal attention, mixed by sigmoid gates."""

    def __init__(self, v_layer, a_layer, cross_layer, num_inputs: int):
        super().__init__()
        self.vsablock = SelfAttentionBlock(v_layer)
        self.asablock = SelfAttentionBlock(a_layer)
        self.cmablock = CrossAttentionBlock(cross_layer)
        self.lv1 = nn.Linear(num_inputs * 2, num_inputs)
        self.lv2 = nn.Linear(num_inputs * 2, num_inputs)
        self.la1 = nn.Linear(num_inputs * 2, num_inputs)
        self.la2 = nn.Linear(num_inputs * 2, num_inputs)

    def forward(self, video, audio):
        v_sa = self.vsablock(video)
        a_sa = self.asablock(audio)
        v_cma, a_cma = self.cmablock(video, audio)
        v_sq = torch.cat((v_sa, v_cma), -1)
        a_sq = torch.cat((a_sa, a_cma), -1)
        v_out = torch.sigmoid(self.lv1(v_sq)) * v_sa + torch.sigmoid(self.lv2(v_sq)) * v_cma
        a_out = torch.sigmoid(self.la1(a_sq)) * a_sa + torch.sigmoid(self.la2(a_sq)) * a_cma
        return v_out, a_out


class TemporalBlock(nn.Module):
    """Dilated temporal convolution with a residual; ``conv1``/``conv2`` are also reachable as ``net``
    (so both names are in the state dict, as in the original)."""

    def __init__(self, n_inputs: int, n_outputs: int, kernel_size: int, stride: int, dilation: int):
        super().__init__()
        self.conv1 = nn.Conv1d(n_inputs, n_outputs, kernel_size, stride=stride, padding=dilation, dilation=dilation)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv1d(n_outputs, n_outputs, 1)
        self.net = nn.Sequential(self.conv1, self.relu1, self.conv2)
        self.downsample = nn.Conv1d(n_inputs, n_outputs, 1) if n_inputs != n_outputs else None
        self.relu = nn.ReLU()

    def forward(self, x):
        res = x if self.downsample is None else self.downsample(x)
        return self.relu(self.net(x) + res)


class SemanticCaptureModule(nn.Module):
    def __init__(self, num_inputs, ffn_dim, num_channels, kernel_size=3, dropout=0.2, nhead=8):
        super().__init__()
        self.multiheadattn = MultiHeadAttention(nhead, num_inputs)  # unused (template), in the state dict
        self.feedforward = PositionwiseFeedForward(num_inputs, ffn_dim, dropout=dropout)
        v_layers, a_layers, msa_layers = [], [], []
        for i in range(len(num_channels)):
            dilation = 2**i
            n_in = num_inputs if i == 0 else num_channels[i - 1]
            v_layers.append(TemporalBlock(n_in, num_channels[i], kernel_size, stride=1, dilation=dilation))
            a_layers.append(TemporalBlock(n_in, num_channels[i], kernel_size, stride=1, dilation=dilation))

            def local_layer(dilation=dilation):
                return TransformerLayer(
                    num_inputs,
                    MultiHeadAttention(nhead, num_inputs, masksize=dilation * 2),
                    copy.deepcopy(self.feedforward),
                    dropout,
                )

            msa_layers.append(IntegrateAttentionBlock(local_layer(), local_layer(), local_layer(), num_inputs))
        self.vnetwork = nn.Sequential(*v_layers)
        self.anetwork = nn.Sequential(*a_layers)
        self.msa = nn.Sequential(*msa_layers)

    def forward(self, v, a):
        v_stages, a_stages = [], []
        for i in range(len(self.vnetwork)):
            v_msa, a_msa = self.msa[i](v, a)
            v = self.vnetwork[i](v_msa.transpose(1, 2).contiguous()).transpose(1, 2).contiguous()
            a = self.anetwork[i](a_msa.transpose(1, 2).contiguous()).transpose(1, 2).contiguous()
            v_stages.append(v)
            a_stages.append(a)
        v_stack = torch.stack(v_stages, dim=2)  # [B, T, levels, D]
        a_stack = torch.stack(a_stages, dim=2)
        return (
            v_stack.reshape(-1, v_stack.size(2), v_stack.size(3)),
            a_stack.reshape(-1, a_stack.size(2), a_stack.size(3)),
        )


class SemanticFusionModule(nn.Module):
    def __init__(self, num_inputs, ffn_dim, dropout=0.2, nhead=8, num_segments=NUM_SEGMENTS):
        super().__init__()
        self.num_inputs = num_inputs
        self.num_segments = num_segments
        self.multiheadattn = MultiHeadAttention(nhead, num_inputs)  # unused (template), in the state dict
        self.feedforward = PositionwiseFeedForward(num_inputs, ffn_dim, dropout=dropout)
        self.vadaptiveinteraction = TransformerLayer(
            num_inputs, copy.deepcopy(self.multiheadattn), copy.deepcopy(self.feedforward), dropout
        )
        self.aadaptiveinteraction = TransformerLayer(
            num_inputs, copy.deepcopy(self.multiheadattn), copy.deepcopy(self.feedforward), dropout
        )
        self.vselectfusion = nn.Linear(num_inputs, 1)
        self.aselectfusion = nn.Linear(num_inputs, 1)

    def forward(self, v_stage, a_stage):
        v_int = self.vadaptiveinteraction(v_stage, v_stage, v_stage)  # [B*T, levels, D]
        a_int = self.aadaptiveinteraction(a_stage, a_stage, a_stage)
        v_w = torch.sigmoid(self.vselectfusion(v_int))  # [B*T, levels, 1]
        a_w = torch.sigmoid(self.aselectfusion(a_int))
        v_out = torch.bmm(v_int.transpose(1, 2).contiguous(), v_w).view(-1, self.num_segments, self.num_inputs)
        a_out = torch.bmm(a_int.transpose(1, 2).contiguous(), a_w).view(-1, self.num_segments, self.num_inputs)
        return v_out, a_out


class MultimodalPyramidAttentionalModule(nn.Module):
    """The MM-Pyramid encoder."""

    def __init__(self, num_inputs, ffn_dim, num_channels, kernel_size=3, dropout=0.2, nhead=8):
        super().__init__()
        self.capture = SemanticCaptureModule(num_inputs, ffn_dim, num_channels, kernel_size, dropout, nhead)
        self.fusion = SemanticFusionModule(num_inputs, ffn_dim, dropout, nhead)

    def forward(self, video, audio):
        return self.fusion(*self.capture(video, audio))


class AVLTransformer(nn.Module):
    """The LEAP decoder: label queries attend to the visual and to the audio segments, layer by layer."""

    def __init__(self, num_inputs, ffn_dim, lv_layer_num=2, la_layer_num=2, dropout=0.2, nhead=8):
        super().__init__()
        if lv_layer_num != la_layer_num:  # the authors build both stacks with lv_layer_num layers
            raise ValueError(f"lv_layer_num ({lv_layer_num}) and la_layer_num ({la_layer_num}) must be equal")
        self.multiheadattn = MultiHeadAttention(nhead, num_inputs, raw_scores=True)
        self.feedforward = PositionwiseFeedForward(num_inputs, ffn_dim, dropout=dropout)

        def layer():
            return VanillaTransformerLayer(
                num_inputs, copy.deepcopy(self.multiheadattn), copy.deepcopy(self.feedforward), dropout
            )

        self.lv_cma_network = nn.Sequential(*[layer() for _ in range(lv_layer_num)])
        self.la_cma_network = nn.Sequential(*[layer() for _ in range(lv_layer_num)])

    def forward(self, v, a, label):
        lv, la = label, label
        lv_attn = la_attn = None
        for lv_layer, la_layer in zip(self.lv_cma_network, self.la_cma_network):
            lv, lv_attn = lv_layer(lv, v, v)
            la, la_attn = la_layer(la, a, a)
        return lv, lv_attn, la, la_attn


# ------------------------------------------------------------------------------------------------
# Inputs
# ------------------------------------------------------------------------------------------------


class FeatureFileError(ValueError):
    """A feature file is missing or has the wrong shape; the message names the file and the expected shape."""


class LLPFeatureFiles:
    """Reads one clip's precomputed features from per-video ``.npy`` files (the authors' layout).
    Picklable, so it can run in a decode pool; call it as ``loader(video_id, media_path)``."""

    def __init__(self, audio_dir, video_dir, st_dir):
        self.dirs = {"audio": Path(audio_dir), "video_s": Path(video_dir), "video_st": Path(st_dir)}

    @classmethod
    def from_config(cls, feature_root=None, audio_dir=None, video_dir=None, st_dir=None) -> "LLPFeatureFiles | None":
        if feature_root is None and not (audio_dir and video_dir and st_dir):
            if audio_dir or video_dir or st_dir:
                raise ValueError(
                    "LEAP features: give feature_root, or all three of audio_dir (VGGish), "
                    "video_dir (ResNet-152) and st_dir (R(2+1)D)"
                )
            return None
        root = Path(feature_root) if feature_root is not None else None
        dirs = [
            d if d else root / FEATURES[k][0]
            for k, d in (("audio", audio_dir), ("video_s", video_dir), ("video_st", st_dir))
        ]
        missing = [str(d) for d in dirs if not Path(d).is_dir()]
        if missing:
            raise ValueError(
                f"LEAP feature folder(s) not found: {', '.join(missing)} (expected the authors' "
                "layout <feature_root>/vggish, res152, r2plus1d_18 with one <video_id>.npy each)"
            )
        return cls(*dirs)

    def __call__(self, video_id: str, path: str | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, folder in self.dirs.items():
            f = folder / f"{video_id}.npy"
            expected = FEATURES[key][1]
            if not f.is_file():
                raise FeatureFileError(f"{f}: feature file not found (LEAP needs {key} {list(expected)} per clip)")
            try:
                arr = np.load(f, allow_pickle=False)
            except (OSError, ValueError) as exc:
                raise FeatureFileError(f"{f}: not a readable .npy array ({exc})") from None
            if tuple(arr.shape) != expected:
                raise FeatureFileError(f"{f}: {key} features have shape {list(arr.shape)}, expected {list(expected)}")
            out[key] = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))
        out["has_audio"] = out["has_video"] = True
        return out


def collate_features(items) -> dict[str, torch.Tensor]:
    """Stack per-clip feature dicts (from LLPFeatureFiles) into a LEAP batch."""
    if not items:
        raise ValueError("collate needs at least one clip")
    batch = {k: torch.stack([it[k] for it in items]) for k in FEATURES}
    batch["has_audio"] = torch.tensor([bool(it.get("has_audio", True)) for it in items])
    batch["has_video"] = torch.tensor([bool(it.get("has_video", True)) for it in items])
    return batch


def load_label_embeddings(path, num_classes: int, dim: int) -> torch.Tensor:
    """The authors' label-embedding file: a dict {class name: tensor[dim]} (``torch.save``), used in its
    stored order (``llp_label_glove_embeddings.pt``: 25 GloVe 300-d vectors)."""
    p = Path(path)
    try:
        obj = torch.load(str(p), map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ValueError(f"label embedding file {p} not found") from None
    except Exception as exc:  # noqa: BLE001 - any unreadable file
        raise ValueError(f"label embedding file {p} cannot be read ({type(exc).__name__}: {exc})") from None
    if isinstance(obj, dict):
        rows = [torch.as_tensor(v).reshape(-1) for v in obj.values()]
        emb = torch.stack(rows) if rows else torch.zeros(0, dim)
    elif torch.is_tensor(obj):
        emb = obj
    else:
        raise ValueError(f"label embedding file {p} holds {type(obj).__name__}; expected a dict of tensors")
    if tuple(emb.shape) != (num_classes, dim):
        raise ValueError(
            f"label embedding file {p} holds {list(emb.shape)}, expected [{num_classes}, {dim}] "
            f"(one {dim}-d vector per class)"
        )
    return emb.float()


# ------------------------------------------------------------------------------------------------
# The model
# ------------------------------------------------------------------------------------------------

LEAP_PRESETS = {
    # the authors' defaults (main_leap.py / run_leap_test.sh)
    "base": dict(
        mmp_head=8,
        avl_head=8,
        hid_dim=512,
        ffn_dim=512,
        levels=4,
        label_dim=300,
        lv_layer_num=2,
        la_layer_num=2,
        label_embeddings=None,
        class_names=None,
        class_map="default",
        feature_root=None,
        audio_dir=None,
        video_dir=None,
        st_dir=None,
    ),
    # parity tests: the same network with fewer/smaller parts (the width stays 512: the authors fix it)
    "tiny": dict(
        mmp_head=4,
        avl_head=4,
        hid_dim=512,
        ffn_dim=64,
        levels=2,
        label_dim=300,
        lv_layer_num=2,
        la_layer_num=2,
        label_embeddings=None,
        class_names=None,
        class_map="default",
        feature_root=None,
        audio_dir=None,
        video_dir=None,
        st_dir=None,
    ),
}
LEAP_PRESETS["full"] = LEAP_PRESETS["base"]


class LEAP(ClipModel):
    """``AVVPNet``: ``fc_a``, ``fc_v``, ``fc_st``, ``fc_fusion``, ``MMP`` (encoder), ``fc_l``, ``AVL``
    (decoder), ``fc_la``, ``fc_lv`` -- the authors' state dict, key for key."""

    arch = "leap"
    reads_media = False  # inputs are feature files looked up by video id

    def __init__(
        self,
        mmp_head=8,
        avl_head=8,
        hid_dim=512,
        ffn_dim=512,
        levels=4,
        label_dim=300,
        lv_layer_num=2,
        la_layer_num=2,
        label_embeddings=None,
        class_names=None,
        class_map="default",
        feature_root=None,
        audio_dir=None,
        video_dir=None,
        st_dir=None,
    ):
        super().__init__()
        if hid_dim != 512:
            raise ValueError(
                f"LEAP hid_dim must be 512 (the authors' input projections are fixed at 512), got {hid_dim}"
            )
        names = list(class_names) if class_names is not None else list(LLP_CLASSES)
        self.class_names = names
        self.num_classes = len(names)
        self.fc_a = nn.Linear(128, 512)
        self.fc_v = nn.Linear(2048, 512)
        self.fc_st = nn.Linear(512, 512)
        self.fc_fusion = nn.Linear(1024, 512)
        self.MMP = MultimodalPyramidAttentionalModule(hid_dim, ffn_dim, [hid_dim] * levels, nhead=mmp_head)
        self.fc_l = nn.Linear(label_dim, 512)
        self.AVL = AVLTransformer(hid_dim, ffn_dim, lv_layer_num, la_layer_num, nhead=avl_head)
        self.fc_la = nn.Linear(512, 1)
        self.fc_lv = nn.Linear(512, 1)
        if label_embeddings:
            emb = load_label_embeddings(label_embeddings, self.num_classes, label_dim)
        else:
            log.warning(
                "LEAP: no label_embeddings file given; using seeded random label vectors (the authors' "
                "checkpoint needs their GloVe file glove/6B/300d/llp_label_glove_embeddings.pt)"
            )
            emb = torch.randn(self.num_classes, label_dim, generator=torch.Generator().manual_seed(0))
        self.register_buffer("label_text", emb, persistent=False)
        from .classmap import load_class_map  # noqa: PLC0415

        self.class_map = (
            load_class_map(DEFAULT_CLASS_MAP if class_map == "default" else class_map, names) if class_map else None
        )
        self._features = LLPFeatureFiles.from_config(feature_root, audio_dir, video_dir, st_dir)

    # ---- inputs --------------------------------------------------------------------------------
    def input_loader(self):
        """The per-clip loader the batch runner uses instead of decoding media."""
        if self._features is None:
            raise ValueError(
                "LEAP reads precomputed features, not media: set feature_root (the authors' layout "
                "<root>/vggish, res152, r2plus1d_18 with <video_id>.npy files) or audio_dir, "
                "video_dir and st_dir in the config"
            )
        return self._features

    @staticmethod
    def collate_inputs(items):
        return collate_features(items)

    # ---- weights -------------------------------------------------------------------------------
    @classmethod
    def checkpoint_check_config(cls, cfg):
        # inputs (feature folders, label vectors) may live on another host; they do not shape the weights
        return {
            **cfg,
            "feature_root": None,
            "audio_dir": None,
            "video_dir": None,
            "st_dir": None,
            "label_embeddings": None,
        }

    def load_checkpoint(self, path, strict: bool = True) -> LoadReport:
        """Strict load of the authors' checkpoint (``torch.save(model.state_dict())``, optionally with a
        DataParallel ``module.`` prefix): every missing, unexpected or mismatched key refuses the file."""
        return load_checkpoint(self, path, strict=strict, refuse_unexpected=strict, arch="leap")

    # ---- forward -------------------------------------------------------------------------------
    def forward(self, audio, visual, visual_st, label):
        """The authors' forward: returns (global_prob, a_prob, v_prob, a_frame_prob, v_frame_prob, a_o,
        v_o, la_f, lv_f) with the same shapes and meaning."""
        f_l = self.fc_l(label)
        f_a = self.fc_a(audio)
        vid_s = self.fc_v(visual).transpose(1, 2).unsqueeze(-1)  # [B, 512, 80, 1]
        vid_s = F.avg_pool2d(vid_s, (8, 1)).squeeze(-1).transpose(1, 2)  # [B, 10, 512]
        f_v = self.fc_fusion(torch.cat((vid_s, self.fc_st(visual_st)), dim=-1))
        v_o, a_o = self.MMP(f_v, f_a)
        lv_f, lv_attn, la_f, la_attn = self.AVL(v_o, a_o, f_l)
        v_prob = torch.sigmoid(self.fc_lv(lv_f).squeeze(-1))
        a_prob = torch.sigmoid(self.fc_la(la_f).squeeze(-1))
        a_bin = (a_prob >= 0.5).float()
        v_bin = (v_prob >= 0.5).float()
        global_prob = a_bin + v_bin - a_bin * v_bin
        v_frame_prob = torch.sigmoid(lv_attn.mean(dim=1).transpose(1, 2).contiguous())  # [B, 10, C]
        a_frame_prob = torch.sigmoid(la_attn.mean(dim=1).transpose(1, 2).contiguous())
        return global_prob, a_prob, v_prob, a_frame_prob, v_frame_prob, a_o, v_o, la_f, lv_f

    def _check_batch(self, batch) -> None:
        for key, (_, shape) in FEATURES.items():
            if key not in batch:
                raise ValueError(
                    f"LEAP batch is missing '{key}' (needs audio [B, 10, 128], video_s [B, 80, 2048], "
                    "video_st [B, 10, 512]; read them with LLPFeatureFiles)"
                )
            if tuple(batch[key].shape[1:]) != shape:
                raise ValueError(
                    f"LEAP batch '{key}' has shape {list(batch[key].shape)}, expected [B, {', '.join(map(str, shape))}]"
                )

    @torch.no_grad()
    def predict_segments(self, batch) -> dict[str, torch.Tensor]:
        self._check_batch(batch)
        dtype = self.fc_a.weight.dtype
        audio = batch["audio"].to(dtype)
        b = audio.shape[0]
        label = batch.get("label")
        if label is None:
            label = self.label_text.to(dtype).unsqueeze(0).expand(b, -1, -1)
        glob, a, v, a_seg, v_seg, *_ = self(
            audio, batch["video_s"].to(dtype), batch["video_st"].to(dtype), label.to(dtype)
        )
        return {"a": a, "v": v, "av": a + v - a * v, "global": glob, "a_seg": a_seg, "v_seg": v_seg}

    @torch.no_grad()
    def predict(self, batch, modalities=MODALITIES):
        mods = self.check_modalities(modalities)
        out = self.predict_segments(batch)
        return {m: out[m] for m in mods}


@register("leap", LEAP_PRESETS, model_class=LEAP)
def _build_leap(cfg) -> LEAP:
    return LEAP(**cfg)


__all__ = [
    "LEAP",
    "LEAP_PRESETS",
    "LLP_CLASSES",
    "LLPFeatureFiles",
    "FeatureFileError",
    "collate_features",
    "load_label_embeddings",
]
