"""Shared fixtures: a fake provider server per test module, and offline guards."""

from __future__ import annotations

import os

# No test may reach a real provider: clear keys and base URLs the developer's shell may hold.
for _name in list(os.environ):
    if _name.endswith(("_API_KEY", "_BASE_URL")) and _name.split("_")[0] in {
        "OPENAI",
        "ANTHROPIC",
        "OPENROUTER",
        "GROQ",
        "OLLAMA",
        "TOGETHER",
        "DEEPSEEK",
        "MISTRAL",
        "FIREWORKS",
    }:
        del os.environ[_name]
