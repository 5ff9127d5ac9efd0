"""The conversation: the platform-neutral engine (`Turn` in, `Reply` out), its message
vocabulary, the outbox that pushes replies to the place that asked, and the project commands."""
