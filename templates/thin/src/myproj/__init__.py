"""myproj: its own data, net and model, trained by trainlab (a pinned dependency)."""

from pathlib import Path

CONF = Path(__file__).resolve().parents[2] / "conf"  # the project's configs (an editable install)
