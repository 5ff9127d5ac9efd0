"""Datasets, the dataset doctor, the LoRA/QLoRA recipe, jobs and adapters. Never imports `bot`."""

from trainer.tiny import TinyModelSpec, build_tiny_model

__all__ = ["TinyModelSpec", "build_tiny_model"]
