"""A promoted adapter writes `ask`'s answers. On a server that serves only the adapters loaded
into it at runtime (as vLLM does, after a restart too), `ask` loads the promoted adapter the first
time it is missing, and answers."""

from __future__ import annotations

import threading

from bot.arena.promotion import promote
from bot.core.config import Settings
from bot.knowledge.chat import answer_question
from bot.serving.host import ModelHost
from bot.serving.http import make_server
from rag.index import KnowledgeBase


def test_ask_loads_the_promoted_adapter_into_a_server_that_lacks_it(world, tmp_path):
    store, project, home = world["store"], world["project"], world["settings"].home
    host = ModelHost(world["settings"].base_model, lambda name: None, max_adapters=2)  # knows no adapter itself
    server = make_server(host, "127.0.0.1", 0, lora_root=home / "adapters")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        settings = Settings(_env_file=None, home=home, embedder="lexical",
                            inference_url=f"http://127.0.0.1:{server.server_address[1]}/v1")
        doc = tmp_path / "returns.md"
        doc.write_text("# Returns\n\nReturns are accepted within 30 days of delivery, with the receipt.\n")
        for _ in KnowledgeBase(settings, store).ingest(project, [(doc, "returns.md")], "ana").steps():
            pass
        assert promote(settings, store, project, "lora:alpha", "ana", force=True)["outcome"] == "forced"
        assert "arena/alpha" not in host.loaded
        result = answer_question(settings, store, project, "Are returns accepted within 30 days of delivery?")
        assert result["variant"] == "lora+rag:alpha" and "arena/alpha" in host.loaded
        assert result["sources"] and result["answer"] is not None
    finally:
        server.shutdown()
