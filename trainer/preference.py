"""A preference round: DPO (trl's `DPOTrainer`) on the team's blind votes, starting from an
adapter, saved as a new adapter that serves like any other.

Setup: the base model with the parent adapter, trainable (the policy), and a second copy with
the parent merged in (the reference, frozen: DPO keeps the policy near what the votes were cast
on, not near the bare base). Train: one pass over the pairs, `beta` setting how far the policy
may move. Save: the adapter, and `ladder.json` with the resolved config and the losses.
"""

from __future__ import annotations

import json
import time
from dataclasses import MISSING, asdict, dataclass, field, fields
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
    pairs_file: str | None = field(default=None, metadata={"help": "JSONL of {prompt, chosen, rejected} (a queued job's pairs)."})
    min_pairs: int = field(default=MIN_PAIRS, metadata={"help": "Fewest distinct-prompt pairs the round accepts; fewer teach noise."})

    def to_json_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "PreferenceConfig":
        """Return the config a queued job saved (its `method: dpo` key aside); raise LadderError
        naming a setting that is unknown, missing or of the wrong type."""
        known = {f.name: f for f in fields(cls)}
        values = {k: v for k, v in data.items() if k != "method"}
        for key in values:
            if key not in known:
                raise LadderError(f"preference setting {key!r} is unknown; the settings are {', '.join(known)}")
        for name, spec in known.items():
            if name not in values:
                if spec.default is MISSING:
                    raise LadderError(f"preference setting {name!r} is missing ({spec.metadata['help']})")
                continue
            value, kind = values[name], {"int": int, "float": (int, float), "str": str}[str(spec.type).split(" ")[0]]
            if not ((value is None and "None" in str(spec.type)) or (isinstance(value, kind) and not isinstance(value, bool))):
                raise LadderError(f"preference setting {name!r} is invalid: {value!r} ({spec.metadata['help']})")
        return cls(**values)


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
            pair = {"prompt": row["prompt"], "chosen": row["chosen"], "rejected": row["rejected"]}
            if row.get("messages"):  # the conversation the answers followed (system prompt, few-shot turns)
                pair["messages"] = row["messages"]
            pairs.append(pair)
    if len(pairs) < minimum:
        raise LadderError(f"only {len(pairs)} preference pair(s) with distinct prompts; a preference round needs at "
                          f"least {minimum}: collect more blind votes (`compare`), ties and 'both bad' do not count")
    return pairs


def read_pairs(path: str | Path) -> list[dict[str, Any]]:
    """Return the rows of a JSONL pairs file; raise LadderError for a missing file or a bad line."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError:
        raise LadderError(f"the preference pairs file {path} is gone; queue the round again (`train --from-votes`)") from None
    rows = []
    for number, line in enumerate(lines, 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                raise LadderError(f"line {number} of {path} is not JSON; export the votes again") from None
    return rows


def run_job(data: dict[str, Any], on_event: Callable[[dict], None]) -> dict[str, Any]:
    """Run the round a queued job describes (`python -m trainer.run` with `method: dpo`)."""
    config = PreferenceConfig.from_dict(data)
    if not config.pairs_file:
        raise LadderError("a queued preference round needs its pairs_file; queue it with `train --from-votes`")
    return run_preference(config, read_pairs(config.pairs_file), on_event, config.min_pairs)


def run_preference(config: PreferenceConfig, rows: list[dict[str, Any]], on_event: Callable[[dict], None],
                   minimum: int = MIN_PAIRS) -> dict[str, Any]:
    """Train a DPO round on `rows` ({prompt, chosen, rejected}) and return its summary (also
    written to `output_dir/ladder.json`). Its events are the SFT recipe's (start, progress with
    step/total/loss, done with the metrics), so a worker follows it like any job. Raises
    LadderError for bad pairs or folders."""
    import torch
    from datasets import Dataset
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback, set_seed
    from trl import DPOConfig, DPOTrainer

    from trainer.hub import resolve_base_model
    from trainer.recipe import plot_losses

    # ---- setup -------------------------------------------------------------------------------
    pairs = check_pairs(rows, minimum)
    on_event({"event": "config", "config": config.to_json_dict(), "pairs": len(pairs)})
    if not Path(config.parent_adapter).is_dir():
        raise LadderError(f"the parent adapter folder {config.parent_adapter} does not exist; train it first")
    model_dir, revision = resolve_base_model(config.base_model)
    set_seed(config.seed)
    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    base = AutoModelForCausalLM.from_pretrained(model_dir, local_files_only=True, dtype=torch.float32)
    policy = PeftModel.from_pretrained(base, config.parent_adapter, is_trainable=True)
    reference = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(model_dir, local_files_only=True, dtype=torch.float32),
        config.parent_adapter).merge_and_unload().eval()
    data = Dataset.from_list([{"prompt": p.get("messages") or [{"role": "user", "content": p["prompt"]}],
                               "chosen": [{"role": "assistant", "content": p["chosen"]}],
                               "rejected": [{"role": "assistant", "content": p["rejected"]}]} for p in pairs])

    # ---- train -------------------------------------------------------------------------------
    out = Path(config.output_dir)
    losses: list[list[float]] = []  # [step, loss]
    accuracies: list[float] = []

    class Report(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            on_event({"event": "start", "step": 0, "total": state.max_steps})

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                losses.append([state.global_step, round(float(logs["loss"]), 5)])
                if logs.get("rewards/accuracies") is not None:
                    accuracies.append(float(logs["rewards/accuracies"]))
                on_event({"event": "progress", "step": state.global_step, "total": state.max_steps,
                          "loss": float(logs["loss"]), "accuracy": logs.get("rewards/accuracies")})

    args = DPOConfig(output_dir=str(out / "checkpoints"), max_steps=config.max_steps,
                     per_device_train_batch_size=config.batch_size, learning_rate=config.learning_rate,
                     beta=config.beta, max_length=config.max_length, logging_steps=1, save_strategy="no",
                     report_to=[], seed=config.seed, use_cpu=not torch.cuda.is_available(), disable_tqdm=True)
    trainer = DPOTrainer(model=policy, ref_model=reference, args=args, train_dataset=data,
                         processing_class=tokenizer, callbacks=[Report()])
    started = time.time()
    trainer.train()
    seconds = time.time() - started

    # ---- save --------------------------------------------------------------------------------
    adapter = out / "adapter"
    policy.save_pretrained(adapter)
    metrics = {"train_loss": losses, "val_loss": [], "first_train_loss": losses[0][1] if losses else None,
               "final_train_loss": losses[-1][1] if losses else None, "steps": len(losses),
               "train_runtime_s": round(seconds, 1),
               # the share of pairs in the last steps whose chosen answer the policy now prefers
               "reward_accuracy": round(sum(accuracies[-5:]) / len(accuracies[-5:]), 4) if accuracies else None}
    summary = {"adapter": str(adapter), "config": config.to_json_dict(), "pairs": len(pairs), "metrics": metrics,
               "base_model": {"id": config.base_model, "path": str(model_dir), "revision": revision},
               "kind": "dpo", "parent_adapter": config.parent_adapter}
    (out / "ladder.json").write_text(json.dumps(summary, indent=2, sort_keys=True), encoding="utf-8")
    plot_losses(metrics, out / "loss.png", title=f"DPO round on {Path(config.base_model).name}")
    on_event({"event": "done", "metrics": metrics, "adapter": str(adapter)})
    return summary
