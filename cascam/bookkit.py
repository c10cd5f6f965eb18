"""Small helpers the book's notebooks share: configuration from parameters, runs from the store,
numbered figures and tables with downloadable CSVs, the paper's values, and the results summary.

Heavy computation lives elsewhere in the package; this module only presents.
"""

from __future__ import annotations

import base64
import io
import json
import os
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from .config import CascadeConfig

__all__ = [
    "config_from_params",
    "paper_values",
    "show_figure",
    "show_table",
    "record_result",
    "load_results",
    "pages_dir",
    "store",
]


def pages_dir() -> Path:
    """Where executed pages (and their results files) live: ``book/_build/pages`` of the repository."""
    from .book import PAGES_DIR, repo_root

    try:
        root = repo_root()
    except FileNotFoundError:
        root = Path.cwd()
    d = root / PAGES_DIR
    d.mkdir(parents=True, exist_ok=True)
    return d


def store():
    """The run store the book uses (``$CASCAM_STORE``, set by ``cascam book`` to ``runs/``)."""
    from .store import RunStore

    return RunStore(os.environ.get("CASCAM_STORE", "runs"))


def config_from_params(**params: Any) -> CascadeConfig:
    """A validated :class:`CascadeConfig` from notebook parameters (unknown names ignored).

    Notebook parameters are checked exactly as the CLI's: a bad value raises ConfigError naming it.
    """
    from dataclasses import fields

    names = {f.name for f in fields(CascadeConfig)}
    values = {k: v for k, v in params.items() if k in names}
    if isinstance(values.get("explainer"), list):
        values["explainer"] = tuple(values["explainer"])
    return CascadeConfig.from_dict(values)


def paper_values() -> dict:
    """The paper's published numbers (``cascam/resources/paper_values.yaml``)."""
    text = resources.files("cascam").joinpath("resources/paper_values.yaml").read_text()
    return yaml.safe_load(text)


def show_figure(fig, number: int | str, caption: str, name: str | None = None) -> Path:
    """Display ``fig`` with the caption "Figure N. …" and save it as PNG next to the pages."""
    import matplotlib.pyplot as plt
    from IPython.display import Image, Markdown, display

    name = name or f"figure{number}"
    out = pages_dir() / "figures" / f"{name}.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110, bbox_inches="tight")
    plt.close(fig)
    display(Image(filename=str(out)))
    display(Markdown(f"**Figure {number}.** {caption}"))
    return out


def _csv_link(frame: pd.DataFrame, filename: str) -> str:
    data = base64.b64encode(frame.to_csv(index=True).encode()).decode()
    return f'<a download="{filename}" href="data:text/csv;base64,{data}">Download {filename}</a>'


def show_table(frame: pd.DataFrame, number: int | str, caption: str, name: str | None = None, floatfmt: str = "{:.4f}"):
    """Display ``frame`` under the caption "Table N. …", with a link to download it as CSV."""
    from IPython.display import HTML, Markdown, display

    name = name or f"table{number}"
    out = pages_dir() / "tables" / f"{name}.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out)
    display(Markdown(f"**Table {number}.** {caption}"))
    styled = frame.to_html(float_format=lambda v: floatfmt.format(v), na_rep="—", classes="cascam-table", border=0)
    display(HTML(styled + "<p>" + _csv_link(frame, f"{name}.csv") + "</p>"))
    return out


def record_result(item: str, *, profile: str, ours: str, paper: str, claim: str, held: bool | None, page: str) -> None:
    """Save one line of the landing page's reproduction-status table (``results/<item>.json``)."""
    d = pages_dir() / "results"
    d.mkdir(parents=True, exist_ok=True)
    row = {"item": item, "profile": profile, "ours": ours, "paper": paper, "claim": claim, "held": held, "page": page}
    (d / f"{item.replace(' ', '_')}.json").write_text(json.dumps(row, indent=2))


def load_results() -> pd.DataFrame:
    """All recorded results, ordered Figure 1–8 then Table 5–13."""
    d = pages_dir() / "results"
    rows = [json.loads(p.read_text()) for p in sorted(d.glob("*.json"))] if d.exists() else []
    frame = pd.DataFrame(rows, columns=["item", "profile", "ours", "paper", "claim", "held", "page"])

    def order(item: str) -> tuple[int, float]:
        kind, _, num = item.partition(" ")
        try:
            n = float(num.split("–")[0])
        except ValueError:
            n = 99.0
        return (0 if kind == "Figure" else 1, n)

    if len(frame):
        frame = frame.iloc[sorted(range(len(frame)), key=lambda i: order(frame["item"].iloc[i]))]
    return frame.reset_index(drop=True)


def figure_to_png_bytes(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
