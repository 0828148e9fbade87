"""notebooks/llamaindex_quickstart.ipynb runs top to bottom offline, so it cannot rot."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "llamaindex_quickstart.ipynb"


def _text_outputs(notebook: nbformat.NotebookNode) -> str:
    # A cell's stdout arrives in as many stream outputs as the kernel made flushes: on a
    # busy machine a flush can fall inside one print() (between "thinking:" and the rest).
    # Jupyter shows consecutive stream outputs as one text, and so does this.
    texts = []
    for cell in notebook.cells:
        stream = ""
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream":
                stream += output.get("text", "")
                continue
            texts.append(stream)
            stream = ""
            texts.append(output.get("data", {}).get("text/plain", ""))
        texts.append(stream)
    return "\n".join(texts)


def test_a_print_split_across_two_flushes_reads_as_one_line() -> None:
    # What the kernel sent once under load: one print() in two stream messages.
    cell = nbformat.v4.new_code_cell(
        "print('thinking:', reply)",
        outputs=[
            nbformat.v4.new_output("stream", name="stdout", text="thinking:"),
            nbformat.v4.new_output("stream", name="stdout", text=" Reasoning about: it.\n"),
        ],
    )
    notebook = nbformat.v4.new_notebook(cells=[cell])
    assert "thinking: Reasoning about: it." in _text_outputs(notebook)


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
