"""A project with two trained adapters that answer differently, and a running model server:
the world the arena and serving tests share (built once per test module)."""

from __future__ import annotations

import threading

import pytest
from trainfiles import tickets, write_jsonl

from bot.core.config import Settings
from bot.core.store import Store
from bot.serving.host import ModelHost
from bot.serving.http import make_server
from bot.serving.registry import registry_from_store

PROMPT = [{"role": "user", "content": "Classify the intent of this support message.\n\nmy kettle broke"}]


@pytest.fixture(scope="module")
def world(tiny_model_dir, tmp_path_factory):
    """A project with two trained adapters that answer differently, and a running model server."""
    from trainer.config import RecipeConfig
    from trainer.recipe import run

    home = tmp_path_factory.mktemp("arena-home")
    settings = Settings(_env_file=None, home=home, base_model=str(tiny_model_dir), embedder="lexical")
    store = Store(settings.db_path)
    project = store.create_project("arena", "ana")
    for name, answer in (("alpha", "alpha is the answer"), ("beta", "beta beta beta")):
        records = [{**r, "output": answer} for r in tickets(48, seed=len(name))]
        data = write_jsonl(home / f"{name}.jsonl", records)
        out = home / "adapters" / name
        summary = run(RecipeConfig(base_model=str(tiny_model_dir), train_file=data, output_dir=out, max_steps=25,
                                   learning_rate=1e-2, max_length=128, batch_size=8, val_fraction=0.0), lambda e: None)
        store.add_adapter(project["id"], None, name, str(tiny_model_dir), "lora", summary["adapter"], summary["metrics"], "ana")
    lookup, names = registry_from_store(store)
    host = ModelHost(str(tiny_model_dir), lookup, max_adapters=4, names=names)
    server = make_server(host, "127.0.0.1", 0, lora_root=home / "adapters")  # runtime LoRA loading on, as vLLM's tests
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    yield {"settings": settings, "store": store, "project": project, "host": host, "url": url, "server": server}
    server.shutdown()
    store.close()


def ask(client, model, messages=PROMPT, **kw):
    reply = client.chat.completions.create(model=model, messages=messages, max_tokens=8, temperature=0, **kw)
    return reply.choices[0].message.content
