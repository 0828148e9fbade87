"""notebooks/llamaindex_quickstart.ipynb runs top to bottom offline, so it cannot rot."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "llamaindex_quickstart.ipynb"


def _text_outputs(notebook: nbformat.NotebookNode) -> str:
    texts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            texts.append(output.get("text") or output.get("data", {}).get("text/plain", ""))
    return "\n".join(texts)


def test_quickstart_notebook_executes_and_shows_fallback_and_cost() -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    saved = _text_outputs(notebook)
    # Run from the repository root so the kernel imports this checkout.
    client = NotebookClient(
        notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}
    )
    client.execute()  # raises CellExecutionError on the first failing cell
    fresh = _text_outputs(notebook)
    for expected in (
        "The Eiffel Tower is 330 metres tall",  # query engine, sync
        "Mount Fuji is the highest mountain",  # query engine, async
        "tool multiply",  # the agent used both tools
        "[fallback] openai/gpt-4o-mini",  # the provider failing mid-run was routed around
        "The tools returned 7 and 12.",
        "served by anthropic/claude-haiku-4-5",
        "total ",
        "thinking: Reasoning about: Use multiply on 3 and 4.",  # reasoning on, tool loop done
        "answer: The tool returned: 12",
        "cache write 0 | cache read 3151",  # the second call reads the CachePoint's prefix
    ):
        assert expected in fresh
        assert expected in saved, "saved outputs are stale: re-execute and save the notebook"
