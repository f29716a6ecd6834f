"""distill.cli: progress bars in logs, --help defaults, and the import-time noise filters."""

from __future__ import annotations

import io
import logging
import sys
from dataclasses import dataclass, field

from distill.cli import _help, build_parser, progress_bar


def test_progress_bars_in_a_log_are_whole_lines(monkeypatch):
    log = io.StringIO()  # not a terminal
    monkeypatch.setattr(sys, "stderr", log)
    for _ in progress_bar(range(1000), desc="work"):
        pass
    text = log.getvalue()
    assert "\r" not in text and text.endswith("\n")
    lines = text.splitlines()
    assert 1 <= len(lines) <= 3 and lines[-1].startswith("work: 100%"), lines
    log.truncate(0)
    for _ in progress_bar(range(10), disable=True):
        pass
    assert log.getvalue() == ""


def test_help_shows_defaults_of_zero():
    @dataclass
    class Flags:
        seed: int = field(default=0, metadata=_help("random seed"))
        p: float = field(default=0.0, metadata=_help("a probability"))
        name: str | None = field(default=None, metadata=_help("a name"))
        on: bool = field(default=False, metadata=_help("a switch"))

    text = " ".join(build_parser(Flags, "prog").format_help().split())
    assert "random seed (default: 0)" in text and "a probability (default: 0.0)" in text
    assert "a name (default" not in text and "a switch (default" not in text


def test_only_the_known_torchao_and_pytree_messages_are_dropped(caplog):
    import distill  # noqa: F401 - installs the filters

    with caplog.at_level(logging.WARNING):
        logging.getLogger("torchao").warning("Failed to load /x/torchao/_C_mxfp8.so: Could not load this library")
        logging.getLogger("torchao").warning("Failed to load /x/torchao/_C_cutlass_90a.abi3.so: no")
        logging.getLogger("torch.utils._pytree").warning(
            "%s is an Enum subclass and is now natively supported by torch.compile as an opaque value type.", "E")
        logging.getLogger("torchao").warning("something else")
    assert [r.getMessage() for r in caplog.records] == ["something else"]
