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


def test_the_answer_only_loss_equals_the_full_logits_loss(tiny_model_dir):
    """Projecting only the answer positions through the output layer is a speed-up, not a change:
    the loss (and so the gradient) is the model's own mean cross-entropy over answer tokens."""
    from transformers import AutoModelForCausalLM, TrainingArguments

    from trainer.recipe import AnswerLossTrainer

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    ids = torch.randint(3, model.config.vocab_size, (3, 12))
    labels = ids.clone()
    labels[0, :7], labels[1, :4], labels[2, :10] = -100, -100, -100  # answers start at different places
    mask = torch.ones_like(ids)
    mask[2, -1:] = 0
    labels[2, -1:] = -100  # a padded position is never a label
    trainer = AnswerLossTrainer(model=model, args=TrainingArguments(output_dir="unused", use_cpu=True, report_to=[]))
    ours = trainer.compute_loss(model, {"input_ids": ids, "attention_mask": mask, "labels": labels})
    reference = model(input_ids=ids, attention_mask=mask, labels=labels).loss
    assert ours.item() == pytest.approx(reference.item(), rel=1e-5)
    counted = trainer.compute_loss(model, {"input_ids": ids, "attention_mask": mask, "labels": labels},
                                   num_items_in_batch=torch.tensor(2 * int((labels[:, 1:] != -100).sum())))
    assert counted.item() == pytest.approx(reference.item() / 2, rel=1e-5)  # summed over a batch twice as big


def test_validation_runs_five_times_and_at_the_last_step_with_the_precision_recorded(tmp_path, tiny_model_dir):
    from trainer.recipe import cpu_has_fast_bf16, run

    data = write_jsonl(tmp_path / "t.jsonl", tickets(60))
    config = RecipeConfig(base_model=str(tiny_model_dir), train_file=data, output_dir=tmp_path / "out", max_steps=7,
                          max_length=128)
    summary = run(config, lambda e: None)
    assert [step for step, _ in summary["metrics"]["val_loss"]] == [2, 4, 6, 7]  # every ceil(7 / 5) steps, and 7
    assert summary["dataset"]["optimizer_steps"] == 7 and summary["dataset"]["eval_steps"] == 2
    assert summary["dataset"]["precision"] == ("bf16" if cpu_has_fast_bf16() else "fp32")
    assert summary["config"]["packing"] is False and summary["config"]["batch_size"] == 4


def test_a_cpu_batch_runs_as_micro_batches_with_the_device_choices_in_ladder_json(tmp_path, tiny_model_dir):
    import json

    from trainer.recipe import CPU_MICRO_BATCH, cpu_has_fast_bf16, load_base, micro_batch_for, run

    assert [micro_batch_for(b, cuda=False) for b in (1, 2, 3, 4, 6, 8, 9, 12)] == [1, 2, 3, 4, 3, 4, 3, 4]
    assert micro_batch_for(8, cuda=True) == 8 and CPU_MICRO_BATCH == 4
    data = write_jsonl(tmp_path / "t.jsonl", tickets(60))
    summaries = {}
    for batch, accum in ((8, 1), (4, 2)):  # the same 8 sequences per update, split two ways
        config = RecipeConfig(base_model=str(tiny_model_dir), train_file=data, output_dir=tmp_path / f"b{batch}",
                              max_steps=3, max_length=128, batch_size=batch, grad_accum=accum, val_fraction=0.0)
        summaries[batch] = run(config, lambda e: None)
    choices = json.loads((tmp_path / "b8" / "ladder.json").read_text())["choices"]
    fast = cpu_has_fast_bf16()
    assert choices == {"device": "cpu", "bf16_autocast": fast, "precision": "bf16" if fast else "fp32",
                       "attention": "eager", "frozen_linear_dtype": "bfloat16" if fast else "float32",
                       "adapter_sum_fp32": fast,
                       "micro_batch": 4, "grad_accum": 2, "answer_only_logits": True}
    assert summaries[4]["choices"]["micro_batch"] == 4 and summaries[4]["choices"]["grad_accum"] == 2
    # Trainer sums the answer-token loss over the whole update, so the split does not change it.
    assert summaries[8]["metrics"]["final_train_loss"] == pytest.approx(summaries[4]["metrics"]["final_train_loss"],
                                                                        rel=1e-3)
    # bf16-stored frozen linears keep the tied embedding/output layer and the norms in fp32.
    _, model = load_base(tiny_model_dir, "lora", cuda=False, bf16=True)
    dtypes = {name: p.dtype for name, p in model.named_parameters()}
    assert dtypes["model.embed_tokens.weight"] == torch.float32
    assert all(d == torch.bfloat16 for n, d in dtypes.items() if n.endswith("proj.weight"))
    assert all(d == torch.float32 for n, d in dtypes.items() if "norm" in n)


def test_under_bf16_autocast_a_small_adapter_update_is_added_in_fp32(tmp_path, tiny_model_dir):
    from peft.tuners.lora.layer import Linear

    from trainer.recipe import add_adapter_outputs_in_fp32, attach_adapter, load_base

    _, model = load_base(tiny_model_dir, "lora", cuda=False, bf16=True)
    model = attach_adapter(model, RecipeConfig(base_model=str(tiny_model_dir), train_file=tmp_path / "t.jsonl",
                                               output_dir=tmp_path / "o"))
    layer = next(m for m in model.modules() if type(m) is Linear)
    name = layer.active_adapters[0]
    torch.manual_seed(0)
    with torch.no_grad():
        layer.lora_B[name].weight.normal_(std=1e-4)  # an adapter a few steps in: its update is small
    x = torch.randn(2, 5, layer.in_features)
    with torch.no_grad():
        update = layer.lora_B[name](layer.lora_A[name](x)) * layer.scaling[name]  # fp32, no autocast
        with torch.autocast("cpu", dtype=torch.bfloat16):
            base = layer.base_layer(x).float()
            plain = layer(x).float()
            assert add_adapter_outputs_in_fp32(model) > 0
            summed = layer(x)
    assert summed.dtype == torch.float32
    # the update arrives whole (up to its own bf16 matmuls)
    assert (summed - base - update).norm() < 0.05 * update.norm()
    # peft's bf16 sum rounds most of it away: what the fix is for
    assert (plain - base - update).norm() > 0.3 * update.norm()


def test_a_resume_on_another_base_model_is_refused(tmp_path, tiny_model_dir):
    import json

    from trainer.errors import LadderError
    from trainer.recipe import check_same_base

    checkpoint = tmp_path / "checkpoint-10"
    checkpoint.mkdir()
    (checkpoint / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(tiny_model_dir)}))
    check_same_base(checkpoint, tiny_model_dir)  # the same base resumes
    with pytest.raises(LadderError, match="checkpoints were trained on .*; resume it on that base model"):
        check_same_base(checkpoint, tmp_path / "another-model")
