"""scripts/gpu_check.sh: the one command a lent GPU machine runs. Here it runs its CPU fallback:
every way trains and learns, and the table lands in the doc between its markers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from gpu_check import BEGIN, END, WAYS, write_into  # noqa: E402


def test_the_table_replaces_its_part_of_the_doc_and_nothing_else(tmp_path: Path) -> None:
    doc = tmp_path / "speed.md"
    doc.write_text("# Speed\n\nkept above\n")
    write_into(doc, "first table\n")
    assert doc.read_text() == f"# Speed\n\nkept above\n\n{BEGIN}\nfirst table\n{END}\n"
    with doc.open("a") as f:
        f.write("\nkept below\n")
    write_into(doc, "second table\n")
    text = doc.read_text()
    assert text.count(BEGIN) == 1 and "first table" not in text and "second table" in text
    assert text.startswith("# Speed\n\nkept above\n") and text.endswith("kept below\n")
    assert not list(tmp_path.glob(".*part"))  # written whole, by a rename
    missing = tmp_path / "new.md"
    write_into(missing, "table\n")
    assert missing.read_text() == f"\n{BEGIN}\ntable\n{END}\n"


@pytest.mark.slow
def test_the_gpu_check_runs_its_cpu_fallback_and_every_way_learns(tmp_path: Path) -> None:
    doc = tmp_path / "speed.md"
    doc.write_text((ROOT / "docs" / "speed.md").read_text())
    before = doc.read_text().split(BEGIN)[0]
    measured = tmp_path / "gpu_check.json"
    args = ["--cpu", "--images", "400", "--epochs", "2", "--batch", "32", "--workers", "2"]
    done = subprocess.run(
        [str(ROOT / "scripts" / "gpu_check.sh"), *args, "--doc", str(doc), "--json", str(measured)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHON": sys.executable},
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(measured.read_text())
    assert found["device"].startswith("CPU (")
    rows = {r["way"]: r for r in found["rows"]}
    assert list(rows) == list(WAYS)
    assert all(r["epoch_s"] > 0 for r in rows.values())
    for way, (overrides, _) in WAYS.items():
        if overrides is not None:  # trainlab's ways: each learned the ten colours
            assert rows[way]["acc"] > 0.5, (way, rows[way])
    text = doc.read_text()
    assert text.startswith(before)  # the rest of the doc is kept
    block = text.split(BEGIN)[1].split(END)[0]
    assert found["device"] in block and "| bf16-mixed + compile |" in block
    assert "scripts/gpu_check.py --cpu --images 400" in block
