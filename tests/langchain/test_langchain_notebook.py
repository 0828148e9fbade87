"""notebooks/langchain_quickstart.ipynb runs top to bottom offline, so it cannot rot."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "langchain_quickstart.ipynb"
# To refresh the saved outputs after editing the notebook:
#   python -c "import nbformat, nbclient; p='notebooks/langchain_quickstart.ipynb'; \
#     nb=nbformat.read(p, 4); nbclient.NotebookClient(nb, kernel_name='python3').execute(); \
#     nbformat.write(nb, p)"


def _text_outputs(notebook: nbformat.NotebookNode) -> str:
    texts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            texts.append(output.get("text") or output.get("data", {}).get("text/plain", ""))
    return "\n".join(texts)


def test_quickstart_notebook_executes_and_shows_fallback_and_cost() -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    saved = _text_outputs(notebook)
    client = NotebookClient(
        notebook,
        timeout=120,
        kernel_name="python3",
        resources={"metadata": {"path": str(ROOT)}},
        # A cell's printed output comes on its own channel after the cell's reply; nbclient
        # waits 4 s for it by default and then drops it silently (seen on a loaded machine).
        iopub_timeout=60,
        raise_on_iopub_timeout=True,
    )
    client.execute()  # raises CellExecutionError on the first failing cell
    fresh = _text_outputs(notebook)
    for expected in (
        "served by openai/gpt-4o-mini",  # a plain call
        "Echo: Explain rainbows to a child.",  # the chain
        "finish_reason: stop",  # streaming, with usage on the last chunk
        "calls celsius_to_fahrenheit({'celsius': 21})",  # the agent used both tools
        "answer: fahrenheit=69.8",
        "failed first: openai/gpt-4o-mini OverloadedError 503",  # fallback
        "served by anthropic/claude-haiku-4-5",
        "[llmrouter.fallback] openai/gpt-4o-mini -> anthropic/claude-haiku-4-5",
        "Successful Requests: 6",  # the cost handler
        "anthropic: 6 requests",  # the breaker keeps the failed OpenAI out of rotation
        "signed blocks kept: ['thinking']",  # the thinking agent's tool loop
        "reasoning: Reasoning about: How warm is 'Paris'?",
        "answer: The tool returned: 21",
        "{'cache_creation': 3151}",  # the first call writes the prompt cache
        "{'cache_read': 3151}",  # the second reads it
    ):
        assert expected in fresh
        assert expected in saved, "saved outputs are stale: re-execute and save the notebook"
