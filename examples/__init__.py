"""The sample project, Larkspur Kitchen: a handbook, a ticket-triage dataset, questions and facts."""

from pathlib import Path

SAMPLE = Path(__file__).parent / "larkspur"
