"""`llmrouter costs`: the spend report from a SQLite ledger, time windows, the optional plot."""

from __future__ import annotations

import sys
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from llmrouter_integrations.cli import main
from llmrouter_integrations.cli.costs import parse_since
from llmrouter_integrations.costs.ledger import CostLedger, LedgerEntry
from llmrouter_integrations.state.ledger_sqlite import SQLiteLedgerStore

NOV_1 = datetime(2026, 11, 1, tzinfo=timezone.utc).timestamp()
DAY = 86_400


@pytest.fixture
def ledger_file(tmp_path: Path) -> Path:
    path = tmp_path / "costs.db"
    ledger = CostLedger(SQLiteLedgerStore(path))
    rows = [
        (NOV_1 + 60, "openai", "gpt-4o-mini", "alice", "0.75"),
        (NOV_1 + DAY + 60, "anthropic", "claude-haiku-4-5", "bob", "1.50"),
        (NOV_1 + 2 * DAY + 60, "openai", "gpt-4o-mini", "alice", "0.25"),
    ]
    for when, provider, model, user, cost in rows:
        ledger.record(
            LedgerEntry(
                time=when,
                deployment=f"{provider}/{model}",
                provider=provider,
                model=model,
                input_tokens=1_000,
                output_tokens=100,
                user=user,
                cost=Decimal(cost),
            )
        )
    ledger.close()
    return path


def test_prints_the_report_by_provider(
    ledger_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["costs", "--ledger", str(ledger_file)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("LLM spend by provider, all time")
    assert "Total spend     $2.5000 over 3 requests" in out
    rows = {
        line.split()[0]: line.split()
        for line in out.splitlines()
        if line.startswith(("openai", "anthropic"))
    }
    assert rows["anthropic"][1] == "1" and "$1.5000" in rows["anthropic"]
    assert rows["openai"][1] == "2" and "$1.0000" in rows["openai"]


def test_groups_and_time_windows(ledger_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{ledger_file}"
    assert main(["costs", "--ledger", url, "--by", "user", "--since", "2026-11-02"]) == 0
    out = capsys.readouterr().out
    assert "LLM spend by user, since 2026-11-02 00:00 UTC" in out
    assert "Total spend     $1.7500 over 2 requests" in out
    assert main(["costs", "--ledger", url, "--by", "day", "--until", "2026-11-02T00:00Z"]) == 0
    out = capsys.readouterr().out
    assert "2026-11-01" in out and "2026-11-02 " not in out.split("---")[-1]
    assert "Total spend     $0.7500 over 1 request" in out


def test_relative_and_absolute_times() -> None:
    now = NOV_1 + 10 * DAY
    assert parse_since("7d", now) == now - 7 * DAY
    assert parse_since("24h", now) == now - DAY
    assert parse_since("30m", now) == now - 1_800
    assert parse_since("2w", now) == now - 14 * DAY
    assert parse_since("2026-11-01") == NOV_1
    assert parse_since("2026-11-01T02:00+02:00") == NOV_1
    with pytest.raises(ValueError, match="7d, 24h"):
        parse_since("last tuesday")


def test_bad_since_is_a_usage_error(ledger_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["costs", "--ledger", str(ledger_file), "--since", "yesterday-ish"])
    assert exit_info.value.code == 2
    assert "cannot read 'yesterday-ish'" in capsys.readouterr().err


def test_missing_ledger_says_how_to_make_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.db"
    assert main(["costs", "--ledger", str(missing)]) == 1
    assert "no ledger at" in capsys.readouterr().err
    assert not missing.exists()  # reading never creates an empty ledger


def test_plot_draws_a_png(
    ledger_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "spend.png"
    assert main(["costs", "--ledger", str(ledger_file), "--plot", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"wrote {out}" in capsys.readouterr().out


def test_plot_without_matplotlib_explains_the_extra(
    ledger_file: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import fails as if not installed
    assert main(["costs", "--ledger", str(ledger_file), "--plot", str(tmp_path / "x.png")]) == 2
    captured = capsys.readouterr()
    assert "pip install 'llmrouter_integrations[plot]'" in captured.err
    assert "Total spend" in captured.out  # the report itself still printed
