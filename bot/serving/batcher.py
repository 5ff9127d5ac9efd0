"""Micro-batching: concurrent requests that arrive within a few milliseconds share one
`generate` call, even across adapters, so a 4-variant compare costs about one answer."""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future

from bot.serving.host import GenRequest, GenResult, ModelHost


class Batcher:
    """Collects concurrent requests and runs each group as one generate call.

    A batch closes when `window_ms` pass with no new request (a burst keeps it open, up to five
    windows after its first request) or when it holds `max_batch` requests: 60 ms costs a lone
    request next to nothing against seconds of generation, and lets a burst of concurrent
    requests (an evaluation's wave) share one batch. Requests that arrive while a batch
    generates wait for the next one.
    """

    def __init__(self, host: ModelHost, window_ms: float = 60.0, max_batch: int = 32):
        self.host = host
        self.window = window_ms / 1000
        self.max_batch = max_batch
        self.pending: queue.Queue = queue.Queue()
        threading.Thread(target=self._loop, daemon=True).start()

    def submit(self, request: GenRequest) -> GenResult:
        """Return the result of `request`, generated together with whatever arrives with it."""
        future: Future = Future()
        self.pending.put((request, future))
        return future.result()

    def _loop(self) -> None:
        while True:
            batch = [self.pending.get()]
            opened = time.monotonic()
            while len(batch) < self.max_batch:
                remaining = min(self.window, opened + 5 * self.window - time.monotonic())
                if remaining <= 0:
                    break
                try:
                    batch.append(self.pending.get(timeout=remaining))
                except queue.Empty:
                    break
            groups: dict[tuple, list] = {}
            for request, future in batch:
                groups.setdefault(request.sampling, []).append((request, future))
            for group in groups.values():
                try:
                    results = self.host.generate([r for r, _ in group])
                except Exception as exc:  # each caller gets the error of its own batch
                    for _, future in group:
                        future.set_exception(exc)
                    continue
                for (_, future), result in zip(group, results, strict=True):
                    future.set_result(result)


