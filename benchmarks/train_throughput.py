"""Training throughput: Ladder's recipe against a plain transformers Trainer + peft LoRA baseline.

Same model, same data, same number of optimizer steps, same LoRA (r=16, alpha=32, all linear
layers), same batch size and learning rate, in one run. The baseline pads each batch to its
longest example and does not pack; Ladder packs examples into max_length blocks (no padding)
and uses fused kernels where the device has them. Both compute loss on the answers only.

Each side runs in its own subprocess so peak memory is its own. tokens/s counts real
(non-padding) tokens. Prints one JSON document with ladder_tokens_per_s, baseline_tokens_per_s,
ratio (Ladder / baseline), peak memory and the device.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# A realistic small architecture for GPU runs (random weights): Qwen2-0.5B's shape.
PRESETS = {
    "qwen2-0.5b": {"model_type": "qwen2", "hidden_size": 896, "num_hidden_layers": 24, "num_attention_heads": 14,
                   "num_key_value_heads": 2, "intermediate_size": 4864, "vocab_size": 151936,
                   "max_position_embeddings": 4096, "tie_word_embeddings": True},
}


def write_data(path: Path, n: int, seed: int = 0) -> Path:
    """Support-ticket answers of varied length, so padding waste is realistic."""
    rng = random.Random(seed)
    words = ("order parcel refund invoice password account delivery courier warehouse battery screen "
             "charger router kettle warranty replacement exchange billing subscription").split()
    with path.open("w") as out:
        for i in range(n):
            question = " ".join(rng.choice(words) for _ in range(rng.randint(8, 60)))
            answer = " ".join(rng.choice(words) for _ in range(rng.randint(4, 120)))
            out.write(json.dumps({"prompt": f"Ticket {i}: {question}?", "completion": answer + "."}) + "\n")
    return path


def build_model(model_config: str | None, folder: Path) -> Path:
    """Return a model folder: the tiny model, or random weights in a preset/config shape."""
    from trainer.tiny import build_tiny_model

    build_tiny_model(folder / "tiny")
    if not model_config:
        return folder / "tiny"
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    spec = PRESETS.get(model_config) or json.loads(Path(model_config).read_text())
    spec = dict(spec)
    config = AutoConfig.for_model(spec.pop("model_type"), **spec)
    model = AutoModelForCausalLM.from_config(config)
    target = folder / "shaped"
    model.save_pretrained(target)
    AutoTokenizer.from_pretrained(folder / "tiny").save_pretrained(target)
    return target


def peak_memory_mb(device: str) -> float:
    import torch

    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 1e6
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3  # kB on Linux


def run_ladder(args) -> dict:
    import torch

    from trainer.config import RecipeConfig
    from trainer.recipe import run

    config = RecipeConfig(base_model=args.model, train_file=args.data, output_dir=Path(args.out), max_steps=args.steps,
                          batch_size=args.batch, max_length=args.max_length, learning_rate=2e-4, eval_steps=10**6,
                          val_fraction=0.0, packing=True)  # no validation: time training only, like the baseline
    summary = run(config, lambda event: None)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    m = summary["metrics"]
    return {"tokens": m["train_tokens"], "seconds": m["train_runtime_s"], "peak_memory_mb": peak_memory_mb(device),
            "device": device}


def run_baseline(args) -> dict:
    """Plain Trainer + peft LoRA, padding to the longest in the batch, no packing."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer, Trainer, TrainerCallback, TrainingArguments

    tokenizer = AutoTokenizer.from_pretrained(args.model)
    cuda = torch.cuda.is_available()
    bf16 = cuda and torch.cuda.is_bf16_supported()
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.bfloat16 if bf16 else torch.float32)
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, target_modules="all-linear",
                                             task_type="CAUSAL_LM"))
    rows = [json.loads(line) for line in Path(args.data).read_text().splitlines()]

    def encode(row):
        prompt = tokenizer.apply_chat_template([{"role": "user", "content": row["prompt"]}], add_generation_prompt=True,
                                               tokenize=True, return_dict=True)["input_ids"]
        full = tokenizer.apply_chat_template([{"role": "user", "content": row["prompt"]},
                                              {"role": "assistant", "content": row["completion"]}],
                                             tokenize=True, return_dict=True)["input_ids"][: args.max_length]
        return {"input_ids": full, "labels": [-100] * len(prompt) + full[len(prompt):]}

    dataset = Dataset.from_list([encode(r) for r in rows])
    pad = tokenizer.pad_token_id
    counted = {"tokens": 0}

    def collate(batch):
        longest = max(len(b["input_ids"]) for b in batch)
        ids = torch.full((len(batch), longest), pad)
        labels = torch.full((len(batch), longest), -100)
        mask = torch.zeros((len(batch), longest), dtype=torch.long)
        for i, b in enumerate(batch):
            n = len(b["input_ids"])
            ids[i, :n] = torch.tensor(b["input_ids"])
            labels[i, :n] = torch.tensor(b["labels"])
            mask[i, :n] = 1
        counted["tokens"] += int(mask.sum())
        return {"input_ids": ids, "labels": labels, "attention_mask": mask}

    class Clock(TrainerCallback):
        def on_train_begin(self, *a, **k):
            counted["tokens"] = 0
            counted["start"] = time.perf_counter()

        def on_train_end(self, *a, **k):
            counted["seconds"] = time.perf_counter() - counted["start"]

    trainer = Trainer(
        model=model,
        args=TrainingArguments(output_dir=args.out, max_steps=args.steps, per_device_train_batch_size=args.batch,
                               learning_rate=2e-4, report_to=[], save_strategy="no", logging_steps=10**6,
                               bf16=bf16, use_cpu=not cuda, disable_tqdm=True, remove_unused_columns=False,
                               dataloader_num_workers=0, seed=42),
        train_dataset=dataset, data_collator=collate, callbacks=[Clock()],
    )
    trainer.train()
    device = "cuda" if cuda else "cpu"
    return {"tokens": counted["tokens"], "seconds": counted["seconds"], "peak_memory_mb": peak_memory_mb(device),
            "device": device}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30, help="optimizer steps on each side")
    parser.add_argument("--batch", type=int, default=8, help="sequences (or packed blocks) per step")
    parser.add_argument("--max-length", type=int, default=512, help="tokens per sequence or packed block")
    parser.add_argument("--examples", type=int, default=600, help="synthetic examples")
    parser.add_argument("--model-config", help="a preset (qwen2-0.5b) or a config.json for a random-weight model")
    parser.add_argument("--json", action="store_true", help="print JSON (the only output format)")
    parser.add_argument("--side", choices=["ladder", "baseline"], help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:  # a child process: run one side and report
        print(json.dumps(run_ladder(args) if args.side == "ladder" else run_baseline(args)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = build_model(args.model_config, tmp)
        data = write_data(tmp / "data.jsonl", args.examples)
        results = {}
        for side in ("baseline", "ladder"):
            proc = subprocess.run(
                [sys.executable, __file__, "--side", side, "--model", str(model), "--data", str(data),
                 "--out", str(tmp / side), "--steps", str(args.steps), "--batch", str(args.batch),
                 "--max-length", str(args.max_length)],
                capture_output=True, text=True,
            )
            if proc.returncode != 0:
                sys.stderr.write(proc.stderr[-3000:])
                raise SystemExit(f"{side} run failed")
            results[side] = json.loads(proc.stdout.strip().splitlines()[-1])
    ladder, baseline = results["ladder"], results["baseline"]
    ladder_rate = ladder["tokens"] / ladder["seconds"]
    baseline_rate = baseline["tokens"] / baseline["seconds"]
    print(json.dumps({
        "benchmark": "train_throughput",
        "model": args.model_config or "tiny",
        "steps": args.steps,
        "batch": args.batch,
        "max_length": args.max_length,
        "ladder_tokens_per_s": round(ladder_rate, 1),
        "baseline_tokens_per_s": round(baseline_rate, 1),
        "ratio": round(ladder_rate / baseline_rate, 3),
        "ladder_tokens": ladder["tokens"],
        "baseline_tokens": baseline["tokens"],
        "ladder_peak_memory_mb": round(ladder["peak_memory_mb"], 1),
        "baseline_peak_memory_mb": round(baseline["peak_memory_mb"], 1),
        "device": ladder["device"],
        "targets": {"ratio_cpu": 1.0, "ratio_gpu": 1.3},
    }, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
