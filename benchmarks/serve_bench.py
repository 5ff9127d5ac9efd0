"""Model server benchmark: adapter switch time, memory per resident adapter, and a 4-variant
compare served as one batch against the sum of four sequential answers, in the same run.

Adapters are random-weight LoRA adapters (r=16, all linear layers) on the tiny model, or on a
random-weight realistic shape with --model-config for GPU runs. Prints one JSON document;
compare_ratio = batched time / sequential sum (lower is better; well under 1 on a GPU).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from train_throughput import build_model  # noqa: E402


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def make_adapters(model_dir: Path, folder: Path, count: int) -> list[Path]:
    """Save `count` random LoRA adapters (non-zero B, so each changes the model)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    paths = []
    for n in range(count):
        model = AutoModelForCausalLM.from_pretrained(model_dir)
        peft = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules="all-linear",
                                                init_lora_weights=False, task_type="CAUSAL_LM"))
        path = folder / f"adapter{n}"
        peft.save_pretrained(path)
        paths.append(path)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-config", help="a preset (qwen2-0.5b) or a config.json for a random-weight model")
    parser.add_argument("--max-tokens", type=int, default=32, help="tokens generated per answer")
    parser.add_argument("--rounds", type=int, default=5, help="compare rounds to time")
    parser.add_argument("--json", action="store_true", help="print JSON (the only output format)")
    args = parser.parse_args()

    import torch

    from bot.serving.client import InferenceClient
    from bot.serving.host import AdapterRef, ModelHost
    from bot.serving.http import make_server

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model_dir = build_model(args.model_config, tmp)
        paths = make_adapters(model_dir, tmp, 4)
        refs = {f"bench/a{n}": AdapterRef(f"bench/a{n}", p, None) for n, p in enumerate(paths)}
        host = ModelHost(str(model_dir), refs.get, max_adapters=8, names=lambda: sorted(refs))
        cuda = host.device == "cuda"

        # Memory per extra resident adapter: load three more after the first.
        host.activate("bench/a0")
        before = torch.cuda.memory_allocated() / 1e6 if cuda else rss_mb()
        for name in ("bench/a1", "bench/a2", "bench/a3"):
            host.activate(name)
        after = torch.cuda.memory_allocated() / 1e6 if cuda else rss_mb()
        adapter_mb = sum(f.stat().st_size for f in paths[0].iterdir()) / 1e6

        # Switch time between resident adapters.
        switches = []
        for n in range(200):
            start = time.perf_counter()
            host.activate(f"bench/a{n % 4}")
            switches.append((time.perf_counter() - start) * 1000)

        server = make_server(host, "127.0.0.1", 0)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        client = InferenceClient(f"http://127.0.0.1:{server.server_address[1]}/v1", "base")
        messages = [{"role": "user", "content": "Where is my parcel? It was due on Monday."}]
        variants = ["base", "bench/a0", "bench/a1", "bench/a2"]
        params = {"max_tokens": args.max_tokens, "temperature": 0}
        client.complete(messages, "base", **params)  # warm up
        sequential, batched = [], []
        for _ in range(args.rounds):
            start = time.perf_counter()
            for v in variants:
                client.complete(messages, v, **params)
            sequential.append(time.perf_counter() - start)
            start = time.perf_counter()
            with ThreadPoolExecutor(len(variants)) as pool:
                list(pool.map(lambda v: client.complete(messages, v, **params), variants))
            batched.append(time.perf_counter() - start)
        server.shutdown()
    seq, bat = statistics.median(sequential), statistics.median(batched)
    print(json.dumps({
        "benchmark": "serve",
        "model": args.model_config or "tiny",
        "device": "cuda" if cuda else "cpu",
        "switch_p50_ms": round(statistics.median(switches), 3),
        "switch_p95_ms": round(sorted(switches)[int(0.95 * len(switches))], 3),
        "memory_per_adapter_mb": round((after - before) / 3, 2),
        "adapter_file_mb": round(adapter_mb, 2),
        "compare_4_sequential_s": round(seq, 3),
        "compare_4_batched_s": round(bat, 3),
        "compare_ratio": round(bat / seq, 3),
        "max_tokens": args.max_tokens,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3, 1),
        "targets": {"switch_ms": 5, "compare_ratio_gpu": "well under 1"},
    }, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
