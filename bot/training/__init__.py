"""LoRA jobs: the queue and worker (`jobs`), and training in chat (`chat`)."""
