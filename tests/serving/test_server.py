"""The OpenAI-compatible model server: the official client, hot swap and the LRU cap, batching,
failures mid-stream, clients that hang up, usage and finish reasons, and re-trained adapters.
Real peft adapters and a real HTTP server."""

from __future__ import annotations

import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import openai
import pytest
from arenaworld import PROMPT, ask

from bot.serving.host import ModelHost


def test_openai_client_lists_models_and_completes(world):
    client = openai.OpenAI(base_url=world["url"], api_key="not-needed")
    assert {m.id for m in client.models.list().data} == {"base", "arena/alpha", "arena/beta"}
    reply = client.chat.completions.create(model="arena/alpha", messages=PROMPT, max_tokens=8, temperature=0)
    assert reply.choices[0].message.content.startswith("alpha")
    assert reply.usage.completion_tokens > 0 and reply.usage.prompt_tokens > 10
    pieces = [chunk.choices[0].delta.content or "" for chunk in client.chat.completions.create(
        model="arena/beta", messages=PROMPT, max_tokens=8, temperature=0, stream=True)]
    assert "".join(pieces).startswith("beta beta")
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="arena/gamma", messages=PROMPT, max_tokens=4)
    assert "'arena/gamma' is not served here" in str(missing.value)
    with pytest.raises(openai.BadRequestError, match="max_tokens must be between 1 and 8192"):
        client.chat.completions.create(model="base", messages=PROMPT, max_tokens=0)
    with pytest.raises(openai.BadRequestError, match="frequency_penalty and presence_penalty must be in"):
        client.chat.completions.create(model="base", messages=PROMPT, max_tokens=4, frequency_penalty=3)
    steady = client.chat.completions.create(model="arena/beta", messages=PROMPT, max_tokens=8, temperature=0,
                                            frequency_penalty=2).choices[0].message.content
    assert not steady.startswith("beta beta beta")  # the answer's own repeats are penalised


def test_hot_swap_two_adapters_and_base_give_different_answers(world):
    client = openai.OpenAI(base_url=world["url"], api_key="x")
    answers = {m: ask(client, m) for m in ("arena/alpha", "base", "arena/beta", "arena/alpha")}
    assert answers["arena/alpha"].startswith("alpha") and answers["arena/beta"].startswith("beta")
    assert answers["base"] != answers["arena/alpha"] and not answers["base"].startswith(("alpha", "beta"))
    # Concurrent requests share one mixed-adapter batch and give the same answers as one by one.
    with ThreadPoolExecutor(3) as pool:
        together = list(pool.map(lambda m: ask(client, m), ["base", "arena/alpha", "arena/beta"]))
    assert together == [answers["base"], answers["arena/alpha"], answers["arena/beta"]]


def test_lru_cap_unloads_the_least_recent_adapter(world, tiny_model_dir):
    host = ModelHost(str(tiny_model_dir), world["host"].registry, max_adapters=1, names=world["host"].names)
    host.activate("arena/alpha")
    host.activate("arena/beta")
    assert [ref.name for ref in host.resident.values()] == ["arena/beta"]
    from bot.serving.host import GenRequest

    [alpha] = host.generate([GenRequest("arena/alpha", PROMPT, max_tokens=6, temperature=0)])
    assert alpha.text.startswith("alpha") and [ref.name for ref in host.resident.values()] == ["arena/alpha"]


def test_switching_between_resident_adapters_sets_every_layer_as_peft_would(world, tiny_model_dir):
    from peft.tuners.tuners_utils import BaseTunerLayer

    from bot.serving.host import GenRequest

    host = ModelHost(str(tiny_model_dir), world["host"].registry, max_adapters=2, names=world["host"].names)
    for name in ("arena/alpha", "arena/beta", "arena/alpha", "arena/beta"):
        host.activate(name)
        key = next(k for k, ref in host.resident.items() if ref.name == name)
        layers = [m for m in host.model.modules() if isinstance(m, BaseTunerLayer)]
        assert layers and all(m.active_adapters == [key] for m in layers) and host.model.active_adapter == key
    [beta] = host.generate([GenRequest("arena/beta", PROMPT, max_tokens=6, temperature=0)])
    [alpha] = host.generate([GenRequest("arena/alpha", PROMPT, max_tokens=6, temperature=0)])
    assert beta.text.startswith("beta") and alpha.text.startswith("alpha")


class Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)


@pytest.fixture
def server_log():
    handler = Records()
    logger = logging.getLogger("ladder.serving")
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    yield handler.records
    logger.removeHandler(handler)
    logger.setLevel(level)


def timed_answer(url: str, model: str = "base", max_tokens: int = 4) -> float:
    started = time.perf_counter()
    reply = httpx.post(f"{url}/chat/completions", json={"model": model, "messages": PROMPT, "max_tokens": max_tokens,
                                                         "min_tokens": max_tokens, "temperature": 0}, timeout=60)
    assert reply.status_code == 200, reply.text
    return time.perf_counter() - started


def test_generation_failing_mid_stream_sends_an_error_event_and_frees_the_server(world, server_log):
    host = world["host"]
    base = host.model.get_base_model() if hasattr(host.model, "get_base_model") else host.model
    calls = {"n": 0}

    def fail_on_the_fifth_token(module, args):
        calls["n"] += 1
        if calls["n"] == 5:
            raise RuntimeError("the GPU fell off the bus")

    hook = base.model.layers[0].register_forward_pre_hook(fail_on_the_fifth_token)
    try:
        with httpx.stream("POST", f"{world['url']}/chat/completions", timeout=30, json={
                "model": "base", "messages": PROMPT, "max_tokens": 50, "min_tokens": 50, "stream": True}) as response:
            assert response.status_code == 200
            events = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
    finally:
        hook.remove()
    contents = [json.loads(e) for e in events if e != "[DONE]"]
    assert any(c.get("choices") and c["choices"][0]["delta"].get("content") for c in contents)  # it had started
    error = contents[-1]["error"]
    assert error["type"] == "server_error" and "incident" in error["message"]
    assert "[DONE]" not in events and not any('"status"' in e or "500" in e for e in events)
    assert timed_answer(world["url"]) < 5  # the lock was released: the next request is served at once
    failures = [r for r in server_log if "failed" in r.getMessage()]
    assert len(failures) == 1 and "GPU fell off" in str(failures[0].exc_info[1])  # the cause is in the log


def test_a_client_that_disconnects_stops_the_generation(world, server_log):
    url = world["url"]
    started = time.perf_counter()
    tenth = timed_answer(url, max_tokens=400)  # the time for a tenth of the abandoned answer
    body = {"model": "base", "messages": PROMPT, "max_tokens": 4000, "min_tokens": 4000, "stream": True}
    with httpx.stream("POST", f"{url}/chat/completions", json=body, timeout=30) as response:
        for line in response.iter_lines():
            if '"content"' in line and '"content": ""' not in line:
                break  # got some text; now hang up mid-stream
    # Served before the abandoned 4,000 tokens would have finished (~10x the 400-token answer).
    assert timed_answer(url) < 3 * tenth
    deadline = time.time() + 10  # the server notices the hang-up on its own thread
    while time.time() < deadline and not any("left a stream" in r.getMessage() or "disconnected" in r.getMessage()
                                             for r in server_log):
        time.sleep(0.02)
    left = [r for r in server_log if "left a stream" in r.getMessage() or "disconnected" in r.getMessage()]
    assert len(left) == 1 and left[0].exc_info is None  # one line, no traceback
    assert not any(r.exc_info for r in server_log if r.created > started)


def test_usage_in_streams_and_the_finish_reason(world):
    client = openai.OpenAI(base_url=world["url"], api_key="x")
    chunks = list(client.chat.completions.create(model="base", messages=PROMPT, max_tokens=5, extra_body={"min_tokens": 5},
                                                 temperature=0, stream=True, stream_options={"include_usage": True}))
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["length"]  # stopped by max_tokens
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 5
    assert chunks[-1].usage.prompt_tokens > 10
    plain = list(client.chat.completions.create(model="base", messages=PROMPT, max_tokens=5, stream=True))
    assert all(c.usage is None for c in plain)
    # A stop string ends the answer early, with finish_reason "stop", and is never shown.
    full = ask(client, "arena/beta")
    assert full.startswith("beta beta")
    stopped = list(client.chat.completions.create(model="arena/beta", messages=PROMPT, max_tokens=8, temperature=0,
                                                  stream=True, stop=[" beta"]))
    text = "".join(c.choices[0].delta.content or "" for c in stopped if c.choices)
    assert text == "beta" and [c.choices[0].finish_reason for c in stopped if c.choices][-1] == "stop"


def test_a_retrained_adapter_never_serves_stale_weights(world):
    store, host = world["store"], world["host"]
    alpha, beta = (store.adapter(world["project"]["id"], n) for n in ("alpha", "beta"))
    project = store.get_project("stale") or store.create_project("stale", "ana")
    store.add_adapter(project["id"], None, "gamma", alpha["base_model"], "lora", alpha["path"], {}, "ana")
    client = openai.OpenAI(base_url=world["url"], api_key="x")
    assert ask(client, "stale/gamma").startswith("alpha") and ask(client, "gamma").startswith("alpha")
    assert [ref.name for ref in host.resident.values()].count("stale/gamma") == 1  # NAME and PROJECT/NAME: one load
    # Deleted, then trained again under the same name (here: other weights in another folder).
    store.delete_adapter(project["id"], "gamma", "ana")
    with pytest.raises(openai.NotFoundError):
        ask(client, "stale/gamma")
    store.add_adapter(project["id"], None, "gamma", beta["base_model"], "lora", beta["path"], {}, "ana")
    assert ask(client, "stale/gamma").startswith("beta")
    assert [ref.name for ref in host.resident.values()].count("stale/gamma") == 1  # the old load was dropped


def test_adapters_register_at_runtime_as_with_vllm(world, tmp_path):
    from bot.serving.client import InferenceClient

    client = InferenceClient(world["url"], "base")
    alpha = world["store"].adapter(world["project"]["id"], "alpha")
    health = httpx.get(world["url"].removesuffix("/v1") + "/healthz").json()
    assert health["status"] == "ok" and health["precision"] == world["host"].precision in {"bf16", "fp32"}
    client.register_adapter("elsewhere/gamma", alpha["path"])  # POST /v1/load_lora_adapter
    openai_client = openai.OpenAI(base_url=world["url"], api_key="x")
    assert "elsewhere/gamma" in {m.id for m in openai_client.models.list().data}
    assert ask(openai_client, "elsewhere/gamma").startswith("alpha")
    empty = world["settings"].home / "adapters" / "empty"
    empty.mkdir(exist_ok=True)
    refused = httpx.post(world["url"] + "/load_lora_adapter", json={"lora_name": "x/y", "lora_path": str(empty)})
    assert refused.status_code == 400 and "no adapter_config.json" in refused.text
    again = httpx.post(world["url"] + "/load_lora_adapter", json={"lora_name": "elsewhere/gamma",
                                                                   "lora_path": alpha["path"]})
    assert again.status_code == 400 and "already been loaded" in again.text  # as vLLM answers
    # Registering a name again (a re-trained adapter) replaces the weights it serves.
    beta = world["store"].adapter(world["project"]["id"], "beta")
    client.register_adapter("elsewhere/gamma", beta["path"])
    assert ask(openai_client, "elsewhere/gamma").startswith("beta")
    assert client.unregister_adapter("elsewhere/gamma") is True  # POST /v1/unload_lora_adapter
    assert client.unregister_adapter("elsewhere/gamma") is False
    with pytest.raises(openai.NotFoundError):
        ask(openai_client, "elsewhere/gamma")


def test_a_runtime_adapter_whose_files_are_deleted_is_not_served_from_memory(world, tmp_path):
    import shutil

    from bot.serving.client import InferenceClient

    alpha = world["store"].adapter(world["project"]["id"], "alpha")
    copy = shutil.copytree(alpha["path"], world["settings"].home / "adapters" / "copy" / "adapter")
    InferenceClient(world["url"], "base").register_adapter("gone/copy", str(copy))
    openai_client = openai.OpenAI(base_url=world["url"], api_key="x")
    assert ask(openai_client, "gone/copy").startswith("alpha")
    shutil.rmtree(copy)
    with pytest.raises(openai.NotFoundError):
        ask(openai_client, "gone/copy")
    assert "gone/copy" not in world["host"].loaded


def test_a_finished_job_is_registered_with_the_inference_server_and_reloaded_when_lost(world, home, tmp_path,
                                                                                        tiny_model_dir, monkeypatch):
    from trainfiles import tickets, write_jsonl

    from bot.arena.battles import Arena
    from bot.core.config import Settings
    from bot.core.store import Store
    from bot.serving.client import InferenceClient
    from bot.training.jobs import Worker, enqueue, plan_job

    settings = Settings(_env_file=None, home=home, inference_url=world["url"])
    monkeypatch.setattr(world["server"], "lora_root", home / "adapters")  # the server shares this job's home
    store = Store(settings.db_path)
    project = store.create_project("remote", "ana")
    data = write_jsonl(tmp_path / "t.jsonl", tickets(160))
    plan = plan_job(settings, store, project, data, str(tiny_model_dir), name="served-v1",
                    overrides={"max_length": 128, "max_steps": 3, "eval_steps": 3})
    final = Worker(settings, store).run_one(enqueue(settings, store, plan, "ana"))
    assert final["status"] == "succeeded"
    # The server (here the embedded one; vLLM in production) was told about it by the worker.
    assert "remote/served-v1" in world["host"].loaded
    # A restarted vLLM forgets runtime adapters: the arena loads it again on first use.
    httpx.post(world["url"] + "/unload_lora_adapter", json={"lora_name": "remote/served-v1"})
    arena = Arena(settings, store, InferenceClient(world["url"], "base"))
    [answer] = arena.answer(project, ["lora:served-v1"], "my kettle broke")
    assert answer.completion_tokens > 0 and "remote/served-v1" in world["host"].loaded
    # Deleting the adapter tells the server to stop serving it.
    from typer.testing import CliRunner

    from bot.cli import app

    deleted = CliRunner().invoke(app, ["adapters", "delete", "--project", "remote", "served-v1"],
                                 env={"LADDER_HOME": str(home), "LADDER_INFERENCE_URL": world["url"]})
    assert deleted.exit_code == 0, deleted.output
    assert "remote/served-v1" not in world["host"].loaded
    store.close()


def test_frequency_and_presence_penalties_count_the_answer_not_the_prompt():
    import torch

    from bot.serving.host import AnswerPenalty, GenRequest

    scores = torch.zeros(2, 6)
    ids = torch.tensor([[4, 4, 1, 1, 2], [5, 4, 3, 3, 3]])  # 2 prompt tokens, then the answer so far
    out = AnswerPenalty(2, frequency=0.5, presence=1.0)(ids, scores.clone())
    assert out[0].tolist() == [0.0, -2.0, -1.5, 0.0, 0.0, 0.0]  # token 1 twice, 2 once; 4 is only in the prompt
    assert out[1].tolist() == [0.0, 0.0, 0.0, -2.5, 0.0, 0.0]
    plain = GenRequest("base", [], temperature=0.0).sampling_kwargs(2)
    assert "logits_processor" not in plain and plain["do_sample"] is False
    penalised = GenRequest("base", [], temperature=0.0, frequency_penalty=0.5)
    assert penalised.sampling != GenRequest("base", [], temperature=0.0).sampling  # never batched together
    assert isinstance(penalised.sampling_kwargs(2)["logits_processor"][0], AnswerPenalty)


def test_an_evaluation_goes_out_in_full_batches_of_one_variant_and_comes_back_in_order(world, monkeypatch):
    from bot.arena.battles import Arena
    from bot.serving.client import InferenceClient

    host = world["host"]
    batches: list[list[str]] = []
    generate = host.generate

    def observed(requests):  # the real generate, with the batches it was given written down
        batches.append([r.model for r in requests])
        return generate(requests)

    monkeypatch.setattr(host, "generate", observed)
    arena = Arena(world["settings"], world["store"], InferenceClient(world["url"], "base"))
    items = [{"prompt": f"Classify the intent of this support message.\n\nmy {'old ' * (i % 7)}kettle broke",
              "max_tokens": 6} for i in range(40)]
    answered = dict(arena.answer_each(world["project"], "lora:alpha", items, workers=32))
    assert sorted(answered) == list(range(40))  # every item, by its index
    assert all(a.text.startswith("alpha") and a.variant == "lora:alpha" for a in answered.values())
    # Two equal waves (20 and 20, not 32 and a straggler of 8), each generated as one batch of the
    # one adapter; a wave's requests open their connections one by one, so a slow machine may
    # split one in two.
    assert sum(len(b) for b in batches) == 40 and len(batches) <= 3 and max(len(b) for b in batches) == 20, batches
    assert {m for b in batches for m in b} == {"arena/alpha"}


def test_generation_precision_is_chosen_and_reported():
    from bot.core.errors import LadderError
    from bot.serving.host import generation_bf16
    from trainer.recipe import cpu_has_fast_bf16

    assert generation_bf16("bf16") is True and generation_bf16("fp32") is False
    assert generation_bf16("auto") is cpu_has_fast_bf16()
    with pytest.raises(LadderError, match="use auto, bf16 or fp32"):
        generation_bf16("fp8")


def test_a_big_batch_of_one_adapter_runs_merged_and_the_base_weights_come_back_exactly(world, monkeypatch):
    import torch

    from bot.serving.host import MERGE_ROWS, GenRequest

    host = world["host"]
    monkeypatch.setattr(host, "autocast", True)  # merging is for bf16 batches on a CPU (whatever this one has)
    key = host.ensure("arena/alpha")
    [base_alone] = host.generate([GenRequest("base", PROMPT, max_tokens=6, temperature=0)])
    layer = next(m for m in host.model.modules() if hasattr(m, "lora_A") and key in m.lora_A)
    original = layer.base_layer.weight.detach().clone()
    expected = original + layer.scaling[key] * (layer.lora_B[key].weight @ layer.lora_A[key].weight).detach()

    merged = host.generate([GenRequest("arena/alpha", PROMPT, max_tokens=6, temperature=0)] * MERGE_ROWS)
    assert host.merged == key and {r.text for r in merged} == {merged[0].text} and merged[0].text.startswith("alpha")
    assert torch.allclose(layer.base_layer.weight, expected, atol=1e-6)  # merged = base + scale * B @ A
    # A small batch, base answers and a mixed batch all run unmerged, on the base's own weights.
    [alone] = host.generate([GenRequest("arena/alpha", PROMPT, max_tokens=6, temperature=0)])
    assert host.merged is None and alone.text == merged[0].text
    assert torch.equal(layer.base_layer.weight, original)  # the base's own weights, not a subtraction
    host.generate([GenRequest("arena/alpha", PROMPT, max_tokens=6, temperature=0)] * MERGE_ROWS)
    mixed = host.generate([GenRequest("base", PROMPT, max_tokens=6, temperature=0),
                           GenRequest("arena/beta", PROMPT, max_tokens=6, temperature=0)])
    assert host.merged is None and mixed[0].text == base_alone.text and mixed[1].text.startswith("beta")
    assert torch.equal(layer.base_layer.weight, original)


def test_runtime_adapters_load_only_from_the_adapters_folder_as_safetensors(world, tmp_path):
    import shutil

    root = world["settings"].home / "adapters"
    alpha = Path(world["store"].adapter(world["project"]["id"], "alpha")["path"])

    def load(path) -> httpx.Response:
        return httpx.post(world["url"] + "/load_lora_adapter", json={"lora_name": "probe/x", "lora_path": str(path)})

    outside = shutil.copytree(alpha, tmp_path / "outside")
    assert load(outside).status_code == 400 and "outside Ladder's adapters folder" in load(outside).text
    assert "may not contain '..'" in load(root / "alpha" / ".." / "alpha" / "adapter").text
    (root / "link").symlink_to(outside, target_is_directory=True)
    assert "goes through a symbolic link" in load(root / "link").text
    pickled = shutil.copytree(alpha, root / "pickled")
    (pickled / "adapter_model.safetensors").rename(pickled / "adapter_model.bin")
    assert "only safetensors weights are loaded" in load(pickled).text
    assert "probe/x" not in world["host"].loaded
    relative = load("alpha/adapter")  # a path relative to the adapters folder
    assert relative.status_code == 200 and "probe/x" in world["host"].loaded
    httpx.post(world["url"] + "/unload_lora_adapter", json={"lora_name": "probe/x"})


def test_runtime_loading_is_off_unless_allowed_and_a_key_guards_every_route(tiny_model_dir, tmp_path):
    import threading

    from bot.serving.client import InferenceClient
    from bot.serving.http import make_server

    host = ModelHost(str(tiny_model_dir), lambda name: None)
    server = make_server(host, "127.0.0.1", 0, api_key="s3cret")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        assert httpx.get(url + "/healthz").status_code == 200  # probes need no key
        assert httpx.get(url + "/v1/models").status_code == 401
        wrong = {"Authorization": "Bearer guess"}
        assert httpx.post(url + "/v1/chat/completions", headers=wrong, json={"model": "base"}).status_code == 401
        client = openai.OpenAI(base_url=url + "/v1", api_key="s3cret")
        assert client.chat.completions.create(model="base", messages=PROMPT, max_tokens=2).choices
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=url + "/v1", api_key="guess").models.list()
        off = httpx.post(url + "/v1/load_lora_adapter", headers={"Authorization": "Bearer s3cret"},
                         json={"lora_name": "a/b", "lora_path": str(tmp_path)})
        assert off.status_code == 404 and "LADDER_ALLOW_RUNTIME_LORA_UPDATING=true" in off.text
        # The worker's registration call takes that as "served by name": no error.
        InferenceClient(url + "/v1", "base", "s3cret").register_adapter("a/b", str(tmp_path))
    finally:
        server.shutdown()


def test_serve_models_refuses_to_listen_beyond_loopback_without_a_key(home, monkeypatch):
    from typer.testing import CliRunner

    from bot.cli import app

    monkeypatch.delenv("LADDER_INFERENCE_API_KEY", raising=False)
    result = CliRunner().invoke(app, ["serve", "models", "--host", "0.0.0.0", "--port", "0"])
    assert result.exit_code != 0
    assert "no API key" in str(result.exception) and "LADDER_INFERENCE_API_KEY" in str(result.exception)


def test_a_bf16_batch_computes_the_prompts_shared_start_once(world, monkeypatch):
    import bot.serving.host as host_module
    from bot.serving.host import AUTOCAST_ROWS, PREFIX_TOKENS, GenRequest, shared_prefix

    host = world["host"]
    monkeypatch.setattr(host, "autocast", True)  # sharing is for bf16 batches (whatever this CPU has)
    system = {"role": "system", "content": " ".join(f"rule {i}: answer briefly." for i in range(30))}
    requests = [GenRequest(model, [system, {"role": "user", "content": f"question number {i}" + " please" * i}],
                           max_tokens=6, temperature=0)
                for model in ("arena/alpha", "base") for i in range(AUTOCAST_ROWS)]
    seen: list[int] = []
    embed = host.model.get_input_embeddings()
    hook = embed.register_forward_hook(lambda module, args, output: seen.append(args[0].numel()))
    try:
        runs = {}
        for name, least in (("shared", PREFIX_TOKENS), ("whole", 10**9)):
            monkeypatch.setattr(host_module, "PREFIX_TOKENS", least)
            seen.clear()
            runs[name] = host.generate(requests[:AUTOCAST_ROWS]) + host.generate(requests[AUTOCAST_ROWS:])
            runs[name + "_tokens"] = sum(seen)
    finally:
        hook.remove()
    prompts = [host._prompt_ids(r.messages) for r in requests[:AUTOCAST_ROWS]]
    shared, width = shared_prefix(prompts), max(len(p) for p in prompts)
    assert shared >= PREFIX_TOKENS
    # Prefill reads the shared start once per batch instead of once per row.
    assert runs["whole_tokens"] - runs["shared_tokens"] == 2 * (AUTOCAST_ROWS - 1) * shared
    assert all(r.text.startswith("alpha") for r in runs["shared"][:AUTOCAST_ROWS])  # the adapter answers
    assert [r.text for r in runs["shared"]] == [r.text for r in runs["whole"]]
    assert [r.prompt_tokens for r in runs["shared"]] == [len(p) for p in prompts] + [
        len(host._prompt_ids(r.messages)) for r in requests[AUTOCAST_ROWS:]]
    assert width > shared and shared_prefix([[1, 2, 3], [1, 2, 3]]) == 2  # each row keeps a token of its own


def test_base_answers_never_import_the_trainer_or_peft(tiny_model_dir):
    import subprocess
    import sys

    script = ("import sys\nfrom bot.serving.host import GenRequest, ModelHost\n"
              f"host = ModelHost({str(tiny_model_dir)!r}, lambda name: None)\n"
              "[answer] = host.generate([GenRequest('base', [{'role': 'user', 'content': 'hi'}], max_tokens=3, min_tokens=3)])\n"
              "print(answer.completion_tokens, sorted(m for m in ('peft', 'bitsandbytes', 'transformers.trainer')"
              " if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split(maxsplit=1) == ["3", "[]\n"]  # about 3 s of a command's start saved
