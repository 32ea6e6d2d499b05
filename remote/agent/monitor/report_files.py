"""What every report on the box is made of: report.html (one page, its pictures inside),
summary.png and figures.json. The drift report and the shadow report draw their own
pictures; the page, the PNG and the embedding are here, once.

matplotlib draws with its file-only backend; it is imported inside the functions, as
every package of the monitor's environment.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any

HTML = "report.html"
SUMMARY_PNG = "summary.png"
FIGURES_JSON = "figures.json"
DPI = 90
STYLE = (
    "body{font-family:sans-serif;max-width:980px;margin:2em auto}"
    "td,th{padding:2px 10px;text-align:left}.drift{color:#c0392b;font-weight:bold}"
    "img{max-width:100%}"
)


def use_file_backend() -> None:
    import matplotlib

    matplotlib.use("Agg")


def png(figure: Any) -> bytes:
    """The figure as PNG bytes; the figure is closed."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    plt.close(figure)
    return buffer.getvalue()


def img(data: bytes, alt: str) -> str:
    """An <img> with the PNG inside it: the page is one file."""
    encoded = base64.b64encode(data).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{encoded}">'


def page(title: str, parts: list[str]) -> str:
    head = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title>",
        f"<style>{STYLE}</style></head><body>",
    ]
    return "\n".join([*head, *parts, "</body></html>"])


def write(out_dir: Path, report_html: str, summary: bytes, figures: dict[str, Any]) -> list[Path]:
    """Write the three files into `out_dir`; return their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / HTML, out_dir / SUMMARY_PNG, out_dir / FIGURES_JSON]
    paths[0].write_text(report_html, encoding="utf-8")
    paths[1].write_bytes(summary)
    paths[2].write_text(json.dumps(figures, indent=1, allow_nan=False), encoding="utf-8")
    return paths
