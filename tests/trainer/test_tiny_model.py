"""`ladder tiny-model` builds a model that reloads with the Auto classes and generates."""

from __future__ import annotations

import json

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer


def test_tiny_model_reloads_and_generates(tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert model.config.model_type == "llama"
    assert sum(p.numel() for p in model.parameters()) < 1_000_000
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is the refund policy?"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    torch.manual_seed(0)
    out = model.generate(**prompt, max_new_tokens=6, min_new_tokens=6, do_sample=False)
    assert out.shape[1] == prompt["input_ids"].shape[1] + 6


def test_chat_template_marks_assistant_tokens(tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    assert "{% generation %}" in tokenizer.chat_template
    encoded = tokenizer.apply_chat_template(
        [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Reset my password"},
            {"role": "assistant", "content": "Use the reset link."},
        ],
        tokenize=True,
        return_dict=True,
        return_assistant_tokens_mask=True,
    )
    ids, mask = encoded["input_ids"], encoded["assistant_masks"]
    assistant = tokenizer.decode([i for i, m in zip(ids, mask) if m])
    assert assistant == "Use the reset link.<|im_end|>"
    # Round trip: byte-level BPE encodes any text without unknown tokens.
    text = "Ünïcode & emoji 🚀 survive"
    assert tokenizer.decode(tokenizer(text)["input_ids"]) == text


def test_tiny_model_records_its_spec(tiny_model_dir):
    spec = json.loads((tiny_model_dir / "ladder-tiny.json").read_text())
    assert spec["num_hidden_layers"] == 2 and spec["seed"] == 0
