"""Reading what a report wrote: PNG headers, the figures and data embedded in the HTML page."""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path

PNGS = ["front_accuracy_latency.png", "front_accuracy_cost.png", "front_latency_cost.png", "accuracy_vs_cost.png",
        "progress.png"]


def png_size(path: Path) -> tuple[int, int]:
    raw = path.read_bytes()
    assert raw[:8] == b"\x89PNG\r\n\x1a\n" and raw[12:16] == b"IHDR"
    return struct.unpack(">II", raw[16:24])


def plotly_traces(page: str) -> list[dict]:
    """Every trace of every figure in the page (the JSON given to Plotly.newPlot)."""
    decoder = json.JSONDecoder()
    traces = []
    for m in re.finditer(r'Plotly\.newPlot\(\s*"[^"]+",\s*', page):
        data, _ = decoder.raw_decode(page, m.end())
        traces += data
    return traces


def report_json(page: str) -> dict:
    m = re.search(r'<script type="application/json" id="itas-report">(.*?)</script>', page, re.S)
    return json.loads(m.group(1))
