"""Everything GPU-only, in one call: LoRA and QLoRA (bitsandbytes NF4) training on a 0.5B model
shape on CUDA, against plain Trainer + peft, with MFU and peak memory against the estimator.

The model has Qwen2-0.5B's shape (random weights, SmolLM2's tokenizer and chat template), so
the check needs nothing from the hub. Each method runs `train_throughput.py` (baseline and
Ladder alternating, medians). Prints one JSON document. Run it through benchmarks/gpu_check.sh.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# Qwen2-0.5B's shape; the vocabulary is the tokenizer's (SmolLM2's 49,152 words).
SHAPE = {"model_type": "qwen2", "hidden_size": 896, "num_hidden_layers": 24, "num_attention_heads": 14,
         "num_key_value_heads": 2, "intermediate_size": 4864, "max_position_embeddings": 4096,
         "tie_word_embeddings": True, "rope_theta": 1000000.0}


def require_cuda() -> None:
    import torch

    if not torch.cuda.is_available():
        raise SystemExit("gpu_check: no CUDA GPU here (torch.cuda.is_available() is False); run it on a machine "
                         "with an NVIDIA GPU and a CUDA build of torch")


def build_model(folder: Path) -> Path:
    """Save a random-weight Qwen2-0.5B-shaped model with the default model's tokenizer."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from trainer.catalogue import DEFAULT_BASE
    from trainer.hub import resolve_base_model

    tokenizer_dir, _ = resolve_base_model(DEFAULT_BASE)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = AutoConfig.for_model(**SHAPE, vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id,
                                  eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    template = tokenizer_dir / "chat_template.jinja"
    if template.exists() and not (folder / template.name).exists():
        shutil.copy(template, folder / template.name)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="optimizer steps per run")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each side per method")
    parser.add_argument("--json", action="store_true", help="print JSON (the only output format)")
    args = parser.parse_args()
    require_cuda()
    import torch

    from bot.interview import estimates

    device = torch.cuda.get_device_name(0)
    gpu = next((g for g in estimates.GPUS if g.name.split("-")[0].lower() in device.lower()), None)
    report: dict = {"benchmark": "gpu_check", "device": device, "shape": "qwen2-0.5b (random weights)", "methods": {}}
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = build_model(Path(tmp) / "model")
        config = json.loads((model_dir / "config.json").read_text())
        shape, params = estimates.shape_from_config(config)
        report["params"] = int(params)
        for method in ("lora", "qlora"):
            proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "train_throughput.py"), "--json",
                                   "--model", str(model_dir), "--method", method, "--steps", str(args.steps),
                                   "--repeats", str(args.repeats), "--no-ablations", "--heldout", "10"],
                                  capture_output=True, text=True)
            if proc.returncode != 0:
                sys.stderr.write(proc.stderr[-4000:])
                report["methods"][method] = {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr else "failed"}
                continue
            result = json.loads(proc.stdout[proc.stdout.index("{"):])
            # Training FLOPs ~ 6 x parameters x tokens (forward 2N, backward 4N), the usual MFU convention.
            flops = 6 * params * result["ladder_tokens_per_s"]
            estimate = estimates.estimate_memory(params / 1e9, method, seq_len=160, batch=result["batch"],
                                                 gradient_checkpointing=False, shape=shape)
            result.update({
                "mfu": round(flops / (gpu.bf16_tflops * 1e12), 4) if gpu else None,
                "estimate_gb": estimate.memory_gb,
                "estimate_error": round(estimate.memory_gb / result["ladder_peak_gb"] - 1, 3),
            })
            report["methods"][method] = result
    print(json.dumps(report, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
