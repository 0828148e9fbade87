"""The `llmrouter` command line: demo, chat, models, costs, fake-server."""

from .main import main

__all__ = ["main"]
