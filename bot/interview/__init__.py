"""Deciding the rung: the pure decision function, the memory/time/cost estimates, the interview's
questions, and the interview in chat."""
