"""A BERT encoder in plain torch, for sentence embeddings that start in a fraction of a second.

all-MiniLM-L6-v2 (the default embedder) is a 6-layer BERT. Loading it through transformers'
AutoModel imports its modelling stack (about 3 s on two cores, on top of torch), which is most
of a cold `ladder rag ask`; this reads the same safetensors and tokenizer.json and computes the
same hidden states (to float rounding; tests/rag compares them with transformers'). Only the
architecture it implements is accepted (`supports`); anything else goes through transformers.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np


def supports(folder: Path) -> bool:
    """True when `folder` holds a plain BERT (absolute positions, GELU) with a tokenizer.json."""
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        return False
    return (config.get("model_type") == "bert" and config.get("hidden_act") == "gelu"
            and config.get("position_embedding_type", "absolute") == "absolute"
            and (folder / "tokenizer.json").is_file() and (folder / "model.safetensors").is_file())


class BertEncoder:
    """Token ids to last hidden states, with the weights of a BertModel checkpoint."""

    def __init__(self, folder: Path, max_length: int):
        import torch
        from safetensors.torch import load_file
        from tokenizers import Tokenizer

        self.config = json.loads((folder / "config.json").read_text())
        weights = load_file(str(folder / "model.safetensors"))
        self.w = {k.removeprefix("bert."): v.float() for k, v in weights.items()}
        self.layers = int(self.config["num_hidden_layers"])
        self.heads = int(self.config["num_attention_heads"])
        self.hidden = int(self.config["hidden_size"])
        self.eps = float(self.config.get("layer_norm_eps", 1e-12))
        self.max_length = min(max_length, int(self.config.get("max_position_embeddings", 512)))
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.enable_truncation(self.max_length)
        self.tokenizer.enable_padding(pad_id=int(self.config.get("pad_token_id", 0)))
        self.torch = torch

    def _norm(self, x, name: str):
        return self.torch.nn.functional.layer_norm(x, (self.hidden,), self.w[f"{name}.weight"], self.w[f"{name}.bias"],
                                                   self.eps)

    def _linear(self, x, name: str):
        return self.torch.nn.functional.linear(x, self.w[f"{name}.weight"], self.w[f"{name}.bias"])

    def tokenize(self, texts: list[str]):
        """Return (input ids, attention mask) as tensors, padded to the longest text."""
        encoded = self.tokenizer.encode_batch(texts)
        ids = self.torch.tensor([e.ids for e in encoded], dtype=self.torch.long)
        mask = self.torch.tensor([e.attention_mask for e in encoded], dtype=self.torch.long)
        return ids, mask

    def forward(self, ids, mask):
        """Return the last hidden states, [batch, tokens, hidden]."""
        torch, F = self.torch, self.torch.nn.functional
        batch, length = ids.shape
        positions = torch.arange(length).unsqueeze(0)
        x = (self.w["embeddings.word_embeddings.weight"][ids]
             + self.w["embeddings.position_embeddings.weight"][positions]
             + self.w["embeddings.token_type_embeddings.weight"][torch.zeros_like(ids)])
        x = self._norm(x, "embeddings.LayerNorm")
        bias = (1.0 - mask[:, None, None, :].to(x.dtype)) * torch.finfo(x.dtype).min
        size = self.hidden // self.heads
        for n in range(self.layers):
            p = f"encoder.layer.{n}"

            def split(t):
                return t.view(batch, length, self.heads, size).transpose(1, 2)

            q = split(self._linear(x, f"{p}.attention.self.query"))
            k = split(self._linear(x, f"{p}.attention.self.key"))
            v = split(self._linear(x, f"{p}.attention.self.value"))
            context = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=1 / math.sqrt(size))
            context = context.transpose(1, 2).reshape(batch, length, self.hidden)
            x = self._norm(self._linear(context, f"{p}.attention.output.dense") + x, f"{p}.attention.output.LayerNorm")
            inner = F.gelu(self._linear(x, f"{p}.intermediate.dense"))
            x = self._norm(self._linear(inner, f"{p}.output.dense") + x, f"{p}.output.LayerNorm")
        return x

    def mean_pooled(self, texts: list[str], normalize: bool = True) -> np.ndarray:
        """Return the mean of each text's token states (padding left out), L2-normalised."""
        torch = self.torch
        ids, mask = self.tokenize(texts)
        with torch.inference_mode():
            hidden = self.forward(ids, mask)
            m = mask.unsqueeze(-1).to(hidden.dtype)
            vectors = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
            if normalize:
                vectors = torch.nn.functional.normalize(vectors, p=2, dim=1)
        return vectors.numpy().astype(np.float32)
