"""The analyses' section of the report (lpqlc/report.py includes it when ``lpqlc analyse`` has run)."""

from __future__ import annotations

import re

from lpqlc.config import PipelineConfig
from lpqlc.storage import exists, read_bytes

__all__ = ["default_out", "report_section"]


def default_out(cfg: PipelineConfig) -> str:
    """Where ``lpqlc analyse`` writes by default: ``<storage.url>/analysis``."""
    return f"{cfg.storage.url.rstrip('/')}/analysis"


def report_section(cfg: PipelineConfig, out: str | None = None) -> list[str]:
    """Markdown lines: what the analyses under ``out`` (default :func:`default_out`) wrote and skipped;
    empty when they have not run."""
    out = (out or default_out(cfg)).rstrip("/")
    url = f"{out}/analysis.md"
    store = cfg.store
    if not exists(url, store):
        return []
    text = read_bytes(url, store).decode("utf-8")
    ran = [h for h in re.findall(r"^## (.+)$", text, flags=re.M) if not h.endswith(": skipped")]
    skipped = re.findall(r"^## (\w+): skipped\n\n(.+)$", text, flags=re.M)
    lines = ["", "## Analyses (`lpqlc analyse`)", "", f"Full tables, figures and maps: [{url}]({url})", ""]
    lines += [f"- {h}" for h in ran]
    lines += [f"- skipped {name}: {why}" for name, why in skipped]
    return [*lines, ""]
