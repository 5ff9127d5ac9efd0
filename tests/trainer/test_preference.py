"""A DPO round on scripted votes: real trl DPOTrainer on a real peft adapter of the tiny model.
The loss starts at ln 2 (the policy is its reference), falls, and the saved adapter loads and
prefers the chosen answers more than its parent did."""

from __future__ import annotations

import json
import math

import pytest
from trainfiles import tickets, write_jsonl

from trainer.errors import LadderError
from trainer.preference import PreferenceConfig, check_pairs, run_preference

CHOSEN, REJECTED = "alpha is the answer", "beta beta beta"


def margin(base_dir, adapter_dir, prompts) -> float:
    """Mean log-probability of the chosen answer minus the rejected one, under an adapter."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_dir), adapter_dir).eval()

    def logp(prompt: str, answer: str) -> float:
        head = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                             tokenize=False)
        ids = tokenizer(head + answer, return_tensors="pt").input_ids
        start = len(tokenizer(head).input_ids)
        with torch.no_grad():
            logits = model(ids).logits[0, :-1].log_softmax(-1)
        return float(logits[range(start - 1, ids.shape[1] - 1), ids[0, start:]].sum())

    return sum(logp(p, CHOSEN) - logp(p, REJECTED) for p in prompts) / len(prompts)


def test_pairs_are_checked_before_any_model_loads():
    with pytest.raises(LadderError, match="only 1 preference pair"):
        check_pairs([{"prompt": "a", "chosen": "x", "rejected": "y"}] * 3)  # the same prompt counts once
    with pytest.raises(LadderError, match="pair 2 .* the same answer on both sides"):
        check_pairs([{"prompt": "a", "chosen": "x", "rejected": "y"}, {"prompt": "b", "chosen": "z", "rejected": " z"}])
    with pytest.raises(LadderError, match="pair 1 lacks a prompt"):
        check_pairs([{"prompt": "", "chosen": "x", "rejected": "y"}])


def test_a_queued_round_reads_its_config_and_says_what_is_wrong(tmp_path):
    from trainer.preference import PreferenceConfig, run_job

    good = {"method": "dpo", "base_model": "m", "parent_adapter": "p", "output_dir": str(tmp_path), "max_steps": 3}
    assert PreferenceConfig.from_dict(good).max_steps == 3
    with pytest.raises(LadderError, match="'beta' is invalid: 'high'"):
        PreferenceConfig.from_dict({**good, "beta": "high"})
    with pytest.raises(LadderError, match="'lora_r' is unknown"):
        PreferenceConfig.from_dict({**good, "lora_r": 8})
    with pytest.raises(LadderError, match="'parent_adapter' is missing"):
        PreferenceConfig.from_dict({k: v for k, v in good.items() if k != "parent_adapter"})
    with pytest.raises(LadderError, match="pairs file .* is gone"):
        run_job({**good, "pairs_file": str(tmp_path / "gone.jsonl")}, lambda e: None)
    (tmp_path / "bad.jsonl").write_text('{"prompt": "a"}\nnot json\n')
    with pytest.raises(LadderError, match="line 2 of .* is not JSON"):
        run_job({**good, "pairs_file": str(tmp_path / "bad.jsonl")}, lambda e: None)


def test_a_dpo_round_on_scripted_votes_moves_the_adapter_towards_the_chosen_answers(tiny_model_dir, tmp_path):
    from trainer.config import RecipeConfig
    from trainer.recipe import run

    data = write_jsonl(tmp_path / "sft.jsonl", [{**r, "output": CHOSEN} for r in tickets(48, seed=1)])
    parent = run(RecipeConfig(base_model=str(tiny_model_dir), train_file=data, output_dir=tmp_path / "parent",
                              max_steps=10, learning_rate=1e-2, max_length=128, batch_size=8, val_fraction=0.0),
                 lambda e: None)["adapter"]
    votes = [{"prompt": f"Ticket {i}: my kettle broke", "chosen": CHOSEN, "rejected": REJECTED} for i in range(12)]
    events = []
    summary = run_preference(PreferenceConfig(base_model=str(tiny_model_dir), parent_adapter=parent,
                                              output_dir=str(tmp_path / "round"), max_steps=6, batch_size=4,
                                              learning_rate=1e-3), votes, events.append, minimum=10)
    losses = [e["loss"] for e in events if e["event"] == "progress"]
    assert events[1] == {"event": "start", "step": 0, "total": 6} and events[-1]["event"] == "done"
    assert losses[0] == pytest.approx(math.log(2), abs=0.01)  # the policy starts as its reference
    assert losses[-1] < losses[0] - 0.1 and summary["metrics"]["steps"] == 6
    saved = json.loads((tmp_path / "round" / "ladder.json").read_text())
    assert saved["kind"] == "dpo" and saved["parent_adapter"] == parent and saved["pairs"] == 12
    prompts = [v["prompt"] for v in votes[:4]]
    assert margin(tiny_model_dir, summary["adapter"], prompts) > margin(tiny_model_dir, parent, prompts) + 0.5
