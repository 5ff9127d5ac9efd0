"""A preference round: DPO (trl's `DPOTrainer`) on the team's blind votes, starting from an
adapter, saved as a new adapter that serves like any other.

Setup: the base model with the parent adapter, trainable (the policy), and a second copy with
the parent merged in (the reference, frozen: DPO keeps the policy near what the votes were cast
on, not near the bare base). Train: one pass over the pairs, `beta` setting how far the policy
may move. Save: the adapter, and `ladder.json` with the resolved config and the losses.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from trainer.errors import LadderError

MIN_PAIRS = 100  # fewer pairs than this teach noise: DPO needs a few hundred preferences to move a model


@dataclass
class PreferenceConfig:
    """One DPO round. Each default says its unit and trade-off."""

    base_model: str = field(metadata={"help": "The base model's folder (the parent adapter's base)."})
    parent_adapter: str = field(metadata={"help": "Folder of the adapter the round starts from."})
    output_dir: str = field(metadata={"help": "Where the new adapter is written."})
    max_steps: int = field(default=30, metadata={"help": "Optimizer steps; more fits the votes closer, and overfits them sooner."})
    batch_size: int = field(default=4, metadata={"help": "Pairs per step; larger is steadier and slower per step."})
    learning_rate: float = field(default=5e-5, metadata={"help": "Step size; DPO wants 10-100x less than SFT, or it unlearns the task."})
    beta: float = field(default=0.1, metadata={"help": "How far from the parent the policy may move: lower moves further."})
    max_length: int = field(default=512, metadata={"help": "Tokens of prompt plus answer kept per pair; longer costs memory."})
    seed: int = field(default=0, metadata={"help": "Seed for shuffling and initialisation."})

    def to_json_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_pairs(rows: list[dict[str, Any]], minimum: int = MIN_PAIRS) -> list[dict[str, str]]:
    """Return the pairs fit for DPO, each prompt once (its first pair), or raise LadderError
    naming the problem: too few pairs, or a pair whose two answers are the same."""
    for number, row in enumerate(rows, 1):
        if not all(isinstance(row.get(k), str) and row[k].strip() for k in ("prompt", "chosen", "rejected")):
            raise LadderError(f"preference pair {number} lacks a prompt, chosen or rejected text; export the votes "
                              "again with `ladder export-preferences`")
        if row["chosen"].strip() == row["rejected"].strip():
            raise LadderError(f"preference pair {number} ({row['prompt'][:40]!r}) has the same answer on both sides: "
                              "it teaches nothing; leave it out")
    seen: set[str] = set()
    pairs = []
    for row in rows:
        if row["prompt"] not in seen:
            seen.add(row["prompt"])
            pairs.append({"prompt": row["prompt"], "chosen": row["chosen"], "rejected": row["rejected"]})
    if len(pairs) < minimum:
        raise LadderError(f"only {len(pairs)} preference pair(s) with distinct prompts; a preference round needs at "
                          f"least {minimum}: collect more blind votes (`compare`), ties and 'both bad' do not count")
    return pairs


def run_preference(config: PreferenceConfig, rows: list[dict[str, Any]], on_event: Callable[[dict], None],
                   minimum: int = MIN_PAIRS) -> dict[str, Any]:
    """Train a DPO round on `rows` ({prompt, chosen, rejected}) and return its summary (also
    written to `output_dir/ladder.json`). Raises LadderError for bad pairs or folders."""
    import torch
    from datasets import Dataset
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback, set_seed
    from trl import DPOConfig, DPOTrainer

    # ---- setup -------------------------------------------------------------------------------
    pairs = check_pairs(rows, minimum)
    on_event({"event": "config", "config": config.to_json_dict(), "pairs": len(pairs)})
    for folder, what in ((config.base_model, "base model"), (config.parent_adapter, "parent adapter")):
        if not Path(folder).is_dir():
            raise LadderError(f"the {what} folder {folder} does not exist; train or pull it first")
    set_seed(config.seed)
    tokenizer = AutoTokenizer.from_pretrained(config.base_model, local_files_only=True)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    base = AutoModelForCausalLM.from_pretrained(config.base_model, local_files_only=True, dtype=torch.float32)
    policy = PeftModel.from_pretrained(base, config.parent_adapter, is_trainable=True)
    reference = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(config.base_model, local_files_only=True, dtype=torch.float32),
        config.parent_adapter).merge_and_unload().eval()
    data = Dataset.from_list([{"prompt": [{"role": "user", "content": p["prompt"]}],
                               "chosen": [{"role": "assistant", "content": p["chosen"]}],
                               "rejected": [{"role": "assistant", "content": p["rejected"]}]} for p in pairs])

    # ---- train -------------------------------------------------------------------------------
    out = Path(config.output_dir)
    losses: list[float] = []

    class Report(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                losses.append(float(logs["loss"]))
                on_event({"event": "step", "step": state.global_step, "max_steps": state.max_steps,
                          "loss": float(logs["loss"]), "accuracy": logs.get("rewards/accuracies")})

    args = DPOConfig(output_dir=str(out / "checkpoints"), max_steps=config.max_steps,
                     per_device_train_batch_size=config.batch_size, learning_rate=config.learning_rate,
                     beta=config.beta, max_length=config.max_length, logging_steps=1, save_strategy="no",
                     report_to=[], seed=config.seed, use_cpu=not torch.cuda.is_available(), disable_tqdm=True)
    trainer = DPOTrainer(model=policy, ref_model=reference, args=args, train_dataset=data,
                         processing_class=tokenizer, callbacks=[Report()])
    trainer.train()

    # ---- save --------------------------------------------------------------------------------
    adapter = out / "adapter"
    policy.save_pretrained(adapter)
    summary = {"adapter": str(adapter), "config": config.to_json_dict(), "pairs": len(pairs),
               "metrics": {"first_loss": losses[0] if losses else None, "final_loss": losses[-1] if losses else None,
                           "steps": len(losses)},
               "kind": "dpo", "parent_adapter": config.parent_adapter}
    (out / "ladder.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    on_event({"event": "done", "summary": summary})
    return summary
