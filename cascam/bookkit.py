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

from .book import evidence_brief, findings_markdown, load_results, verdict_summary
from .config import CascadeConfig
from .verdicts import Verdict

__all__ = [
    "config_from_params",
    "paper_values",
    "show_figure",
    "show_table",
    "record_result",
    "record_finding",
    "load_results",
    "evidence_brief",
    "verdict_summary",
    "findings_markdown",
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


def show_figure(fig, number: int | str, caption: str, name: str | None = None) -> None:
    """Display ``fig`` as a numbered figure, "Figure N. …", and save it as ``figures/<name>.png`` next to
    the pages. Returns nothing, so a call that ends a cell prints nothing.

    The output is one bundle of two renderings of the same figure:

    - ``text/markdown``: a MyST ``{figure}`` directive with the label ``figure-N`` (``name:``), which the
      book renders (``nb_render_markdown_format: myst`` and the markdown-first priority in
      ``_config.yml``), so that the figure is a Sphinx target: ``{ref}`figure-2``` links to it from any
      page, and its HTML id is ``figure-2``;
    - ``text/html``: the PNG inline and its caption, which Jupyter shows when a reader opens the
      executed notebook (Jupyter prefers HTML to Markdown).
    """
    import matplotlib.pyplot as plt
    from IPython.display import display

    name = name or f"figure{number}"
    out = pages_dir() / "figures" / f"{name}.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110, bbox_inches="tight")
    plt.close(fig)
    display(figure_bundle(out, number, caption), raw=True)


def figure_bundle(png: Path, number: int | str, caption: str) -> dict:
    """The display bundle of :func:`show_figure`: a MyST ``{figure}`` directive labelled
    ``figure-N`` that points at ``figures/<png name>`` (relative to the pages, where the book's
    notebooks are), and an HTML fallback with the image inline."""
    import html

    label = anchor_id("figure", number)
    text = f"**Figure {number}.** {caption}"
    myst = f":::{{figure}} figures/{png.name}\n:name: {label}\n:width: 100%\n\n{text}\n:::\n"
    data = base64.b64encode(png.read_bytes()).decode()
    fallback = (f'<figure id="{label}"><img src="data:image/png;base64,{data}" style="max-width:100%"/>'
                f"<figcaption><b>Figure {html.escape(str(number))}.</b> {html.escape(caption)}</figcaption></figure>")
    return {"text/markdown": myst, "text/html": fallback, "text/plain": f"Figure {number}. {caption}"}


def caption_bundle(kind: str, number: int | str, caption: str) -> dict:
    """A table's caption, "Table N. …", as a display bundle: in ``text/markdown`` preceded by the MyST
    label ``(table-N)=``, which makes it a Sphinx target (``{ref}`Table 5 <table-5>```) with the HTML id
    ``table-N``; in ``text/html`` the caption alone, for Jupyter."""
    import html

    label = anchor_id(kind, number)
    word = kind.capitalize()
    return {
        "text/markdown": f"({label})=\n**{word} {number}.** {caption}\n",
        "text/html": f'<p id="{label}"><b>{word} {html.escape(str(number))}.</b> {html.escape(caption)}</p>',
        "text/plain": f"{word} {number}. {caption}",
    }


def anchor_id(kind: str, number: int | str) -> str:
    """The label (and HTML id) of a numbered figure or table on its page: ``figure-2``, ``table-5``,
    ``table-5b``, ``table-6-8-grid`` for "6–8 grid" (the landing page links to ``<page>.html#<id>``).

    Spelled as docutils spells an id (lower-case ASCII letters, digits and single hyphens), so that the
    Sphinx label and the id it gives the element are the same string.

    Example:
        >>> anchor_id("table", "6–8 grid"), anchor_id("figure", "S4")
        ('table-6-8-grid', 'figure-s4')
    """
    from docutils.nodes import make_id

    return make_id(f"{kind}-{number}".replace("–", "-").replace("—", "-"))


def _csv_link(frame: pd.DataFrame, filename: str) -> str:
    data = base64.b64encode(frame.to_csv(index=True).encode()).decode()
    return f'<a download="{filename}" href="data:text/csv;base64,{data}">Download {filename}</a>'


def format_number(value: Any) -> str:
    """A number as a reader wants it: 3 significant digits (``0.245``, ``12.3``, ``16.0``), whole
    numbers with thousands separators from 1,000 on (``3,954``), an exponent only below 0.0001, no
    ``-0`` (a value that rounds to zero is ``0``), ``—`` for a missing value.

    Example:
        >>> [format_number(v) for v in (0.24512, 16.0, 3954.2349, -0.00001, float("nan"), 0.00123, 999.7)]
        ['0.245', '16.0', '3,954', '-1.0e-05', '—', '0.00123', '1,000']
        >>> format_number(-0.0000)
        '0'
    """
    import math
    import numbers

    if isinstance(value, bool) or not isinstance(value, numbers.Number):
        return "—" if value is None else str(value)
    v = float(value)
    if math.isnan(v):
        return "—"
    if math.isinf(v):
        return "∞" if v > 0 else "−∞"
    if v == 0:
        return "0"
    if abs(v) >= 999.5:
        return f"{v:,.0f}"
    if abs(v) < 1e-4:
        return f"{v:.1e}"
    text = f"{v:.{max(0, 2 - math.floor(math.log10(abs(v))))}f}"
    return "0" if float(text) == 0 else text


def interval_text(mean: float, low: float, high: float, *, scale: float = 1.0, unit: str = "") -> str:
    """A mean with its interval as a table cell: ``"72.0 % [68.6, 75.4]"`` (``scale=100, unit=" %"``) or
    ``"0.629 [0.612, 0.645]"``; numbers by :func:`format_number`.

    Example:
        >>> interval_text(0.72, 0.686, 0.754, scale=100, unit=" %")
        '72.0 % [68.6, 75.4]'
        >>> interval_text(0.6291, 0.6123, 0.6449)
        '0.629 [0.612, 0.645]'
    """
    m, lo, hi = (format_number(scale * v) for v in (mean, low, high))
    return f"{m}{unit} [{lo}, {hi}]"


#: Code names of metrics and statistics → the words a table header shows (the CSV keeps the code names).
READABLE = {
    "average_precision_trapezoid": "AP (authors')", "average_precision": "AP (step)", "iou": "IoU",
    "iou_top15": "IoU top 15 %", "pointing_game": "pointing game", "energy_in_gt": "energy on animal",
    "top15_energy": "top-15 % energy", "top15_precision": "top-15 % precision", "artifact_energy": "box energy",
    "artifact_pointing": "box pointing", "ci_low": "95 % low", "ci_high": "95 % high", "mean_diff": "mean diff.",
    "sd_diff": "sd diff.", "mean_baseline": "baseline mean", "d_paired": "d (paired)", "d_pooled": "d (pooled)",
    "p_value": "p", "PointingGame": "pointing game", "Top15Energy": "top-15 % energy", "valid_accuracy_own": "accuracy (own masked)", "valid_accuracy_original": "accuracy (original)",
    "valid_accuracy_clean": "accuracy (box-free)", "mask_probe_accuracy": "mask probe", "seconds_per_image": "s / image",
}


def readable(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with code names in its headers and index replaced by :data:`READABLE` words (other
    underscores by spaces), and known code names among its text values (a ``metric`` column)
    replaced too; numbers unchanged."""

    def word(v):
        return READABLE.get(v, v.replace("_", " ")) if isinstance(v, str) else v

    out = frame.rename(columns=word, index=word)
    if isinstance(out.columns, pd.MultiIndex):
        out.columns = out.columns.set_levels([lvl.map(word) for lvl in out.columns.levels])
    out.index = out.index.set_names([word(n) for n in out.index.names])
    if isinstance(out.index, pd.MultiIndex):
        out.index = out.index.set_levels([lvl.map(word) if lvl.dtype == object else lvl for lvl in out.index.levels])
    for col in out.columns:  # label columns (method, metric, ...): only the known code names
        if pd.api.types.is_string_dtype(out[col]) or out[col].dtype == object:
            out[col] = out[col].map(lambda v: READABLE.get(v, v) if isinstance(v, str) else v)
    return out


def show_table(
    frame: pd.DataFrame, number: int | str, caption: str, name: str | None = None, floatfmt: str | None = None,
    data: pd.DataFrame | None = None,
) -> None:
    """Display ``frame`` under the caption "Table N. …" (labelled ``table-N``: :func:`caption_bundle`), with a link to
    download it as CSV (also saved as ``tables/<name>.csv``, with the code names). Headers read as
    words (:func:`readable`), a plain 0..n−1 index is not shown, and numbers are shown by
    :func:`format_number` unless ``floatfmt`` (e.g. ``"{:.1f}"``) is given. ``data``: the numbers
    behind a table whose cells are text (``"72.0 % [68.6, 75.4]"``), saved and offered as the CSV
    instead of ``frame``. Returns nothing."""
    from IPython.display import HTML, display

    name = name or f"table{number}"
    out = pages_dir() / "tables" / f"{name}.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    csv = frame if data is None else data
    csv.to_csv(out)
    display(caption_bundle("table", number, caption), raw=True)
    fmt = format_number if floatfmt is None else (lambda v: floatfmt.format(v))
    shown = readable(frame)
    # A plain 0..n−1 index says nothing; a named one (pandas makes "iteration" 1..K a RangeIndex too) is shown.
    plain = isinstance(frame.index, pd.RangeIndex) and frame.index.name is None and frame.index.start == 0
    if plain:
        shown = shown.reset_index(drop=True)
    styled = shown.to_html(float_format=fmt, na_rep="—", classes="cascam-table", border=0, index=not plain)
    display(HTML(styled + "<p>" + _csv_link(csv, f"{name}.csv") + "</p>"))


def record_result(
    item: str, *, profile: str, ours: str, paper: str, claim: str, verdict: Verdict, page: str, anchor: str | None = None
) -> None:
    """Save one line of the landing page's reproduction-status table (``results/<item>.json``).

    ``verdict`` is the claim's :class:`~cascam.verdicts.Verdict` (held / contradicted / inconclusive /
    not testable, from the paired 95 % interval of the difference); the record carries its word, its
    evidence (difference, interval, number of images and of seeds) and that evidence as one line.
    ``anchor`` is the figure's or table's label on ``page`` (the landing page links to it).
    """
    if not isinstance(verdict, Verdict):
        raise TypeError(f"record_result: verdict must be a cascam.verdicts.Verdict; got {type(verdict).__name__}")
    d = pages_dir() / "results"
    d.mkdir(parents=True, exist_ok=True)
    row = {"item": item, "profile": profile, "ours": ours, "paper": paper, "claim": claim, "page": page,
           "anchor": anchor, **verdict.to_dict(), "evidence_text": verdict.text()}
    (d / f"{item.replace(' ', '_')}.json").write_text(json.dumps(row, indent=2, default=float))


def record_finding(page: str, key: str, text: str) -> None:
    """Save one line of ``page``'s "Findings of this build" box that is not one of the paper's claims: a
    measured property of the setting (the benchmark's geometry, the baseline's operating point), with
    its interval and sample size in ``text`` (Markdown). Lines show in the order they were recorded,
    above the page's claims; they do not go to the landing page. ``key`` names the line (recording the
    same key again replaces it)."""
    import time

    d = pages_dir() / "findings"
    d.mkdir(parents=True, exist_ok=True)
    row = {"page": page, "key": key, "text": text, "order": time.time_ns()}
    (d / f"{page}__{key}.json").write_text(json.dumps(row, indent=2))


def figure_to_png_bytes(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
