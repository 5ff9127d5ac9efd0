"""The RAG rung in chat: `rag add|status|forget|reindex` and `ask` (the service is `rag/`)."""
