"""The training recipe itself: QLoRA on CPU (and CUDA when there is one), DoRA, and what to do
when CUDA runs out of memory. Real peft and bitsandbytes on the tiny model."""

from __future__ import annotations

import pytest
import torch
from trainfiles import tickets, write_jsonl

from trainer.config import RecipeConfig, load_config
from trainer.recipe import oom_advice


def test_qlora_trains_on_cpu_with_bitsandbytes(tmp_path, tiny_model_dir):
    from trainer.recipe import load_base, run

    _, model = load_base(tiny_model_dir, "qlora", cuda=False, bf16=False)
    assert getattr(model, "is_loaded_in_4bit", False)
    assert "Linear4bit" in {type(m).__name__ for m in model.modules()}
    data = write_jsonl(tmp_path / "t.jsonl", tickets(40))
    events = []
    config = RecipeConfig(base_model=str(tiny_model_dir), method="qlora", train_file=data, output_dir=tmp_path / "out",
                          max_steps=4, eval_steps=2, max_length=128, batch_size=4)
    summary = run(config, events.append)
    assert summary["config"]["method"] == "qlora" and summary["metrics"]["steps"] == 4
    assert (tmp_path / "out" / "adapter" / "adapter_model.safetensors").exists()
    assert events[0]["event"] == "config" and events[-1]["event"] == "done"
    assert any(e["event"] == "eval" for e in events)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_qlora_on_cuda_uses_bf16_compute(tmp_path, tiny_model_dir):
    from trainer.recipe import load_base, run

    _, model = load_base(tiny_model_dir, "qlora", cuda=True, bf16=torch.cuda.is_bf16_supported())
    assert next(model.parameters()).is_cuda
    data = write_jsonl(tmp_path / "t.jsonl", tickets(40))
    config = RecipeConfig(base_model=str(tiny_model_dir), method="qlora", train_file=data, output_dir=tmp_path / "o",
                          max_steps=4, eval_steps=2, max_length=128)
    assert run(config, lambda e: None)["device"] == "cuda"


def test_dora_is_lora_with_weight_decomposition(tiny_model_dir):
    from trainer.recipe import lora_config

    config = load_config({"base_model": str(tiny_model_dir), "method": "dora", "train_file": "x.jsonl", "output_dir": "o"})
    assert lora_config(config).use_dora and lora_config(config).r == 16


def test_oom_advice_suggests_what_to_change():
    config = load_config({"base_model": "m", "train_file": "d.jsonl", "output_dir": "o", "batch_size": 8, "max_length": 2048})
    advice = oom_advice(config)
    assert advice.startswith("the GPU ran out of memory")
    assert "--method qlora" in advice and "gradient checkpointing" in advice
    assert "batch size 4 with grad_accum 2" in advice and "max_length (1024 tokens)" in advice
