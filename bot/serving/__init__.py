"""Inference: the model host (base + hot-swapped adapters), the batcher, the OpenAI-compatible
HTTP server and the one client Ladder uses to reach any such server."""
