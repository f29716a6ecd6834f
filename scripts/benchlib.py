"""What the benchmarks share: where results go, and writing them (JSON, Markdown, the README's table)."""

from __future__ import annotations

from pathlib import Path

from distill.io import atomic_write_json, atomic_write_text

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "scripts" / "results"


def update_readme(md: str, marker: str) -> bool:
    """Put `md` into README.md between <!-- marker --> and <!-- /marker -->; False if the markers are absent."""
    readme = ROOT / "README.md"
    text = readme.read_text()
    start, end = f"<!-- {marker} -->", f"<!-- /{marker} -->"
    if start not in text or end not in text:
        return False
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    atomic_write_text(readme, f"{head}{start}\n{md}{end}{tail}")
    return True


def publish(name: str, data: dict, md: str, readme: bool = True) -> None:
    """scripts/results/NAME.json and NAME.md, the table in README.md (between its markers), and on stdout."""
    atomic_write_json(RESULTS / f"{name}.json", data)
    atomic_write_text(RESULTS / f"{name}.md", md)
    if readme and update_readme(md, name):
        print(f"table written into README.md ({name})")
    print(md)
