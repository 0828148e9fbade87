"""Print the set-up commands of README.md's "Two commands" section, one per line.

`.ci/run` executes exactly these lines, and tests/test_readme.py checks their shape, so
the README and CI cannot drift apart.

    $ python3 scripts/readme_commands.py
    python3 -m venv .venv && .venv/bin/pip install ... && .venv/bin/llmrouter demo
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_commands(text: str) -> list[str]:
    """The non-comment lines of the first ```bash block under "## Two commands"."""
    section = text.split("\n## Two commands\n", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.DOTALL)
    if block is None:
        raise SystemExit("README.md: no ```bash block under '## Two commands'")
    lines = (line.strip() for line in block.group(1).splitlines())
    return [line for line in lines if line and not line.startswith("#")]


if __name__ == "__main__":
    sys.stdout.write("".join(f"{command}\n" for command in readme_commands(README.read_text())))
