"""The Q-Former Crab uses (BLIP-2's BERT with learned queries, as in LAVIS ``Qformer.py``), with its parameter
names: ``bert.embeddings`` (word/position embeddings, LayerNorm, ``position_ids`` buffer), ``bert.encoder.layer.N``
(``attention``, ``crossattention`` on every ``cross_attention_freq``-th layer, ``intermediate``/``output`` for
text tokens and ``intermediate_query``/``output_query`` for the queries) and the unused language-model head
``cls.predictions`` (its decoder weight tied to the word embeddings), so checkpoints load key for key.

Our own implementation of the query-only path Crab runs (no text tokens, all-ones masks): the queries are
layer-normalised, then each layer applies self-attention, cross-attention to the encoder features and the
query feed-forward, each with a residual and post-LayerNorm (BERT style).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class QFormerConfig:
    """BERT-base values by default (Crab reads ``google-bert-base-uncased``'s config and sets 2 layers)."""

    hidden_size: int = 768
    num_hidden_layers: int = 2
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    vocab_size: int = 30522
    max_position_embeddings: int = 512
    layer_norm_eps: float = 1e-12
    pad_token_id: int = 0
    encoder_width: int = 1024
    cross_attention_freq: int = 1


class BertSelfAttention(nn.Module):
    def __init__(self, cfg: QFormerConfig, is_cross_attention: bool):
        super().__init__()
        if cfg.hidden_size % cfg.num_attention_heads:
            raise ValueError(
                f"Q-Former hidden size {cfg.hidden_size} is not a multiple of the heads {cfg.num_attention_heads}"
            )
        self.heads = cfg.num_attention_heads
        self.head_size = cfg.hidden_size // cfg.num_attention_heads
        kv_in = cfg.encoder_width if is_cross_attention else cfg.hidden_size
        self.query = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.key = nn.Linear(kv_in, cfg.hidden_size)
        self.value = nn.Linear(kv_in, cfg.hidden_size)

    def _split(self, x):
        return x.view(x.shape[0], x.shape[1], self.heads, self.head_size).transpose(1, 2)

    def forward(self, hidden, context=None):
        ctx = hidden if context is None else context
        q, k, v = self._split(self.query(hidden)), self._split(self.key(ctx)), self._split(self.value(ctx))
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.head_size)
        out = torch.matmul(F.softmax(scores, dim=-1), v)
        return out.transpose(1, 2).reshape(hidden.shape[0], hidden.shape[1], -1)


class BertSelfOutput(nn.Module):
    def __init__(self, cfg: QFormerConfig):
        super().__init__()
        self.dense = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.LayerNorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)

    def forward(self, hidden, residual):
        return self.LayerNorm(self.dense(hidden) + residual)


class BertAttention(nn.Module):
    def __init__(self, cfg: QFormerConfig, is_cross_attention: bool = False):
        super().__init__()
        self.self = BertSelfAttention(cfg, is_cross_attention)
        self.output = BertSelfOutput(cfg)

    def forward(self, hidden, context=None):
        return self.output(self.self(hidden, context), hidden)


class BertIntermediate(nn.Module):
    def __init__(self, cfg: QFormerConfig):
        super().__init__()
        self.dense = nn.Linear(cfg.hidden_size, cfg.intermediate_size)

    def forward(self, hidden):
        return F.gelu(self.dense(hidden))


class BertOutput(nn.Module):
    def __init__(self, cfg: QFormerConfig):
        super().__init__()
        self.dense = nn.Linear(cfg.intermediate_size, cfg.hidden_size)
        self.LayerNorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)

    def forward(self, hidden, residual):
        return self.LayerNorm(self.dense(hidden) + residual)


class BertLayer(nn.Module):
    def __init__(self, cfg: QFormerConfig, layer_num: int):
        super().__init__()
        self.attention = BertAttention(cfg)
        self.has_cross_attention = layer_num % cfg.cross_attention_freq == 0
        if self.has_cross_attention:
            self.crossattention = BertAttention(cfg, is_cross_attention=True)
        self.intermediate = BertIntermediate(cfg)  # text tokens (unused by Crab)
        self.output = BertOutput(cfg)
        self.intermediate_query = BertIntermediate(cfg)
        self.output_query = BertOutput(cfg)

    def forward(self, queries, encoder_hidden):
        x = self.attention(queries)
        if self.has_cross_attention:
            x = self.crossattention(x, encoder_hidden)
        return self.output_query(self.intermediate_query(x), x)


class BertEmbeddings(nn.Module):
    def __init__(self, cfg: QFormerConfig):
        super().__init__()
        self.word_embeddings = nn.Embedding(cfg.vocab_size, cfg.hidden_size, padding_idx=cfg.pad_token_id)
        self.position_embeddings = nn.Embedding(cfg.max_position_embeddings, cfg.hidden_size)
        self.LayerNorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.register_buffer("position_ids", torch.arange(cfg.max_position_embeddings).expand((1, -1)))

    def forward(self, query_embeds):
        return self.LayerNorm(query_embeds)  # queries only: no word or position embedding is added


class BertEncoder(nn.Module):
    def __init__(self, cfg: QFormerConfig):
        super().__init__()
        self.layer = nn.ModuleList([BertLayer(cfg, i) for i in range(cfg.num_hidden_layers)])


class BertModel(nn.Module):
    def __init__(self, cfg: QFormerConfig):
        super().__init__()
        self.embeddings = BertEmbeddings(cfg)
        self.encoder = BertEncoder(cfg)

    def forward(self, query_embeds, encoder_hidden_states):
        x = self.embeddings(query_embeds)
        for layer in self.encoder.layer:
            x = layer(x, encoder_hidden_states)
        return x


class BertPredictionHeadTransform(nn.Module):
    def __init__(self, cfg: QFormerConfig):
        super().__init__()
        self.dense = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.LayerNorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)


class BertLMPredictionHead(nn.Module):
    def __init__(self, cfg: QFormerConfig):
        super().__init__()
        self.transform = BertPredictionHeadTransform(cfg)
        self.decoder = nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)
        self.bias = nn.Parameter(torch.zeros(cfg.vocab_size))
        self.decoder.bias = self.bias


class BertOnlyMLMHead(nn.Module):
    def __init__(self, cfg: QFormerConfig):
        super().__init__()
        self.predictions = BertLMPredictionHead(cfg)


class QFormer(nn.Module):
    """``BertLMHeadModel`` of LAVIS as Crab builds it: ``bert`` + the (unused) ``cls`` head."""

    def __init__(self, cfg: QFormerConfig):
        super().__init__()
        self.config = cfg
        self.bert = BertModel(cfg)
        self.cls = BertOnlyMLMHead(cfg)
        self.cls.predictions.decoder.weight = self.bert.embeddings.word_embeddings.weight  # tied, as in BERT
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, std=0.02)
            if isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.zeros_(m.bias)

    def forward(self, query_embeds, encoder_hidden_states):
        return self.bert(query_embeds, encoder_hidden_states)


__all__ = ["QFormer", "QFormerConfig"]
