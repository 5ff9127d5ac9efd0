"""Platforms: thin renderers over the engine (the terminal now; Slack and Discord later). Only
this folder may import a chat platform's SDK."""
