"""Serving benchmark on the default model: a 4-variant compare in one mixed-adapter batch, a
held-out eval batched across examples, adapter switching and resident memory.

Three LoRA adapters (r=16, all linear layers, random non-zero weights so each changes the
answers) are saved on the base model and served by Ladder's `ModelHost`, in this process. With
greedy decoding throughout, and each figure the median of `--rounds` interleaved repeats:

- compare_ratio: the four variants of a compare (base, rag, lora, lora+rag; rag's prompt
  carries retrieved passages) generated as one batch, against the same four generated one
  after another. Goal <= 0.4.
- eval_ratio: tokens/s of `--examples` held-out tickets answered as one batch per variant (base
  and an adapter), against one generate per example. Goal >= 3; `same_outputs` says whether
  the batched answers equal the one-by-one answers.
- switch_ms: making a resident adapter the active one (no reload). Goal < 5 ms.
- resident_overhead: the memory the three adapters add once resident, over their size on disk,
  minus one. Goal <= 0.10 (resident within base + adapters + 10%).

    python benchmarks/serve_bench.py --json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

HELDOUT = ROOT / "examples" / "larkspur" / "heldout.jsonl"
PASSAGES = ("Returns are accepted within 30 days of delivery, in the original packaging, with the order number. "
            "Refunds go back to the original payment method within 5 working days of the return arriving. "
            "Express delivery costs 6.50 and arrives in 2 working days; standard delivery is free over 40.")


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def make_adapters(model_dir: Path, folder: Path, count: int) -> list[Path]:
    """Save `count` LoRA adapters with random, small, non-zero weights."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    paths = []
    for n in range(count):
        torch.manual_seed(n)
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
        peft = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules="all-linear",
                                                init_lora_weights=False, task_type="CAUSAL_LM"))
        with torch.no_grad():
            for name, param in peft.named_parameters():
                if "lora_B" in name:
                    param.mul_(0.05)  # a nudge, not noise: answers change but stay language
        path = folder / f"adapter{n}"
        peft.save_pretrained(path)
        paths.append(path)
    return paths


def prompts(limit: int) -> list[list[dict[str, str]]]:
    rows = [json.loads(line)["messages"] for line in HELDOUT.read_text().splitlines() if line.strip()]
    return [[m for m in messages if m["role"] != "assistant"] for messages in rows[:limit]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="base model (default: Ladder's default, smollm2-135m)")
    parser.add_argument("--max-tokens", type=int, default=24, help="tokens generated per answer")
    parser.add_argument("--examples", type=int, default=8, help="held-out tickets in the eval measurement")
    parser.add_argument("--rounds", type=int, default=3, help="repeats of each measurement (median reported)")
    parser.add_argument("--json", action="store_true", help="print JSON (the only output format)")
    args = parser.parse_args()

    import torch

    from bot.serving.host import AdapterRef, GenRequest, ModelHost
    from trainer.catalogue import DEFAULT_BASE
    from trainer.hub import resolve_base_model

    model = args.model or DEFAULT_BASE
    model_dir, _ = resolve_base_model(model)
    with tempfile.TemporaryDirectory() as tmp:
        paths = make_adapters(model_dir, Path(tmp), 3)
        refs = {f"bench/a{n}": AdapterRef(f"bench/a{n}", p, None, id=n + 1) for n, p in enumerate(paths)}
        host = ModelHost(str(model_dir), refs.get, max_adapters=4, names=lambda: sorted(refs))
        cuda = host.device == "cuda"
        generate = host.generate

        def ask(variant: str, messages) -> GenRequest:
            return GenRequest(variant, messages, max_tokens=args.max_tokens, temperature=0.0)

        generate([ask("base", prompts(1)[0])])  # warm up: first-call allocations and kernels
        # Resident memory: the adapters loaded (and used once) after the base alone.
        before = torch.cuda.memory_allocated() / 1e6 if cuda else rss_mb()
        for name in refs:
            generate([ask(name, prompts(1)[0])])
        after = torch.cuda.memory_allocated() / 1e6 if cuda else rss_mb()
        adapter_mb = sum(sum(f.stat().st_size for f in p.iterdir() if f.suffix == ".safetensors") for p in paths) / 1e6

        switches = []
        for n in range(200):
            start = time.perf_counter()
            host.activate(f"bench/a{n % 3}")
            switches.append((time.perf_counter() - start) * 1000)

        question = [{"role": "user", "content": "How long do I have to send a broken kettle back?"}]
        with_passages = [{"role": "system", "content": f"Answer from these passages:\n{PASSAGES}"}, *question]
        compare = [ask("base", question), ask("base", with_passages), ask("bench/a0", question),
                   ask("bench/a0", with_passages)]
        tickets = prompts(args.examples)
        sequential, batched, one_by_one, together, same = [], [], [], [], True
        for _ in range(args.rounds):
            start = time.perf_counter()
            for request in compare:
                generate([request])
            sequential.append(time.perf_counter() - start)
            start = time.perf_counter()
            generate(compare)
            batched.append(time.perf_counter() - start)

            for variant in ("base", "bench/a1"):
                start = time.perf_counter()
                singles = [generate([ask(variant, t)])[0] for t in tickets]
                one_by_one.append(sum(r.completion_tokens for r in singles) / (time.perf_counter() - start))
                start = time.perf_counter()
                batch = generate([ask(variant, t) for t in tickets])
                together.append(sum(r.completion_tokens for r in batch) / (time.perf_counter() - start))
                same = same and [r.text for r in batch] == [r.text for r in singles]
            print(f"round: compare {sequential[-1]:.2f}s one by one, {batched[-1]:.2f}s batched; eval "
                  f"{one_by_one[-1]:.1f} against {together[-1]:.1f} tokens/s", file=sys.stderr)

    seq, bat = statistics.median(sequential), statistics.median(batched)
    print(json.dumps({
        "benchmark": "serve",
        "model": model,
        "device": "cuda" if cuda else "cpu",
        "compare_4_sequential_s": round(seq, 3),
        "compare_4_batched_s": round(bat, 3),
        "compare_ratio": round(bat / seq, 3),
        "eval_one_by_one_tokens_per_s": round(statistics.median(one_by_one), 1),
        "eval_batched_tokens_per_s": round(statistics.median(together), 1),
        "eval_ratio": round(statistics.median(together) / statistics.median(one_by_one), 2),
        "same_outputs": same,
        "switch_ms": round(statistics.median(switches), 3),
        "switch_p95_ms": round(sorted(switches)[int(0.95 * len(switches))], 3),
        "adapters_on_disk_mb": round(adapter_mb, 1),
        "adapters_resident_mb": round(after - before, 1),
        "resident_overhead": round((after - before) / adapter_mb - 1, 3),
        "max_tokens": args.max_tokens,
        "examples": args.examples,
        "rounds": args.rounds,
        "targets": {"compare_ratio": 0.4, "eval_ratio": 3.0, "switch_ms": 5, "resident_overhead": 0.10},
    }, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
