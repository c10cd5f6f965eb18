"""The book runner: execute the jupytext notebooks with papermill under a profile, then build the site.

``cascam book --profile default`` reads ``profiles/default.yaml``, executes every notebook of
``_toc.yml`` into ``book/_build/pages/`` (never into the sources), and runs ``jupyter-book build``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from .config import CascadeConfig, ConfigError, parse_overrides, read_yaml
from .verdicts import VERDICTS

__all__ = [
    "build_book", "copy_static_pages", "load_profile", "notebook_order", "repo_root", "strip_solutions", "PAGES_DIR",
    "load_results", "verdict_summary", "findings_markdown", "page_findings",
]

#: Where executed notebooks go, relative to the repository root.
PAGES_DIR = Path("book") / "_build" / "pages"


def repo_root() -> Path:
    """The folder holding ``_config.yml`` (``$CASCAM_BOOK_ROOT`` or the repository of this package)."""
    env = os.environ.get("CASCAM_BOOK_ROOT")
    root = Path(env) if env else Path(__file__).resolve().parents[1]
    if not (root / "_config.yml").exists():
        raise FileNotFoundError(f"book: no _config.yml in {root}; run from a clone of cascam-book")
    return root


def load_profile(name: str, root: Path | None = None) -> dict[str, Any]:
    """``profiles/<name>.yaml``: ``parameters`` (for every notebook) and ``notebooks.<name>`` (per notebook)."""
    root = root or repo_root()
    path = root / "profiles" / f"{name}.yaml"
    if not path.exists():
        known = sorted(p.stem for p in (root / "profiles").glob("*.yaml"))
        raise ConfigError(f"--profile: unknown profile {name!r}; choose one of {', '.join(known)}")
    profile = read_yaml(path, "--profile") or {}
    if not isinstance(profile, dict):
        raise ConfigError(f"--profile: {path} must hold a mapping (parameters:, notebooks:)")
    profile.setdefault("parameters", {})
    profile.setdefault("notebooks", {})
    return profile


def notebook_order(root: Path | None = None) -> list[str]:
    """Notebook names in execution order: every page of ``_toc.yml`` that has a ``notebooks/<page>.py``
    source, the landing page (``index``) last because it summarises the others."""
    root = root or repo_root()
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    entries = [toc["root"]]

    def walk(node):
        for part in node.get("parts", []):
            walk(part)
        for ch in node.get("chapters", []) + node.get("sections", []):
            if "file" in ch:
                entries.append(ch["file"])
            walk(ch)

    walk(toc)
    names = [Path(e).name for e in entries if (root / "notebooks" / f"{Path(e).name}.py").exists()]
    return [n for n in names if n != "index"] + (["index"] if "index" in names else [])


class _UndeclaredFilter:
    """Drops papermill's "Passed unknown parameter" warning for configuration fields (passed on purpose)."""

    def __init__(self, names: set[str]) -> None:
        self.names = names

    def filter(self, record) -> bool:
        message = record.getMessage()
        return not (message.startswith("Passed unknown parameter:") and message.split(":", 1)[1].strip() in self.names)


def _quiet_undeclared(names: set[str]) -> None:
    import logging

    logger = logging.getLogger("papermill")
    if not any(isinstance(f, _UndeclaredFilter) for f in logger.filters):
        logger.addFilter(_UndeclaredFilter(names))


def _declared_parameters(nb) -> set[str]:
    import ast

    for cell in nb.cells:
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            tree = ast.parse(cell.source)
            names = set()
            for node in tree.body:
                targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
                names.update(t.id for t in targets if isinstance(t, ast.Name))
            return names
    raise ConfigError("book: a notebook has no cell tagged 'parameters'")


def _run_with_cell(nbformat, profile: str, params: dict[str, Any]):
    rows = "\n".join(f"| `{k}` | `{v!r}` |" for k, v in sorted(params.items()))
    text = (
        ":::{admonition} This page was run with\n:class: dropdown note\n\n"
        f"profile **{profile}**, on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n\n"
        f"| parameter | value |\n|---|---|\n{rows}\n:::\n"
    )
    return nbformat.v4.new_markdown_cell(text)


#: Cell tags that already decide how a code cell shows (Jupyter Book's hide/remove tags).
_VISIBILITY_TAGS = {"hide-input", "hide-output", "hide-cell", "remove-input", "remove-output", "remove-cell"}


def _prepare(executed_path: Path, profile: str, params: dict[str, Any]) -> None:
    """Make the executed page read as a page: hide the parameters cell and papermill's injected cell,
    fold every other code cell (``hide-input``, unless the source chose another visibility tag or
    ``show-input``), put the "Findings of this build" box (the page's recorded claims with their
    verdicts, :func:`cascam.bookkit.findings_markdown`) under the title, and the folded "this page
    was run with" box at the end of the page."""
    import nbformat

    nb = nbformat.read(executed_path, as_version=4)
    for cell in nb.cells:
        tags = set(cell.get("metadata", {}).get("tags", []))
        if "parameters" in tags or "injected-parameters" in tags:
            tags |= {"remove-cell"}
        elif cell.cell_type == "code" and not (tags & _VISIBILITY_TAGS) and "show-input" not in tags:
            tags |= {"hide-input"}
        if tags:
            cell.metadata["tags"] = sorted(tags)
    nb.cells.append(_run_with_cell(nbformat, profile, params))
    box = findings_markdown(Path(executed_path).stem)
    if box:  # findings first: right under the page's title and introduction
        at = next((i + 1 for i, c in enumerate(nb.cells) if c.cell_type == "markdown" and c.source.lstrip().startswith("# ")), 0)
        nb.cells.insert(at, nbformat.v4.new_markdown_cell(box))
    nbformat.write(nb, executed_path)


def execute_notebook(name: str, profile_name: str, params: dict[str, Any], root: Path, log) -> Path:
    """Execute ``notebooks/<name>.py`` with ``params`` into ``book/_build/pages/<name>.ipynb``."""
    import jupytext
    import nbformat
    import papermill as pm

    src = root / "notebooks" / f"{name}.py"
    if not src.exists():
        raise FileNotFoundError(f"book: notebook source missing: {src}")
    nb = jupytext.read(src)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    declared = _declared_parameters(nb)
    # A page receives the parameters its cell declares, plus every field of the cascade's configuration
    # the profile sets (a page builds its runs with config_from_params(globals())), so a new engine
    # option set in a profile reaches every page without editing each parameters cell.
    config_fields = {f.name for f in dataclasses.fields(CascadeConfig)}
    use = {k: v for k, v in params.items() if k in declared or k in config_fields}
    _quiet_undeclared(config_fields)
    pages = root / PAGES_DIR
    pages.mkdir(parents=True, exist_ok=True)
    staged = pages / f".{name}.input.ipynb"
    nbformat.write(nb, staged)
    out = pages / f"{name}.ipynb"
    try:
        pm.execute_notebook(
            str(staged),
            str(out),
            parameters=use,
            kernel_name="python3",
            language="python",
            progress_bar=False,
            cwd=str(root),
        )
    except pm.PapermillExecutionError as exc:
        raise RuntimeError(
            f"book: notebook {name!r} failed in cell {exc.exec_count} ({exc.ename}: {exc.evalue}); "
            f"the executed copy with the traceback is {out}"
        ) from None
    finally:
        staged.unlink(missing_ok=True)
    _prepare(out, profile_name, {**use})
    return out


RESULT_COLUMNS = ["item", "profile", "ours", "paper", "claim", "verdict", "evidence_text", "reason", "page", "anchor",
                  "evidence"]


def load_results() -> pd.DataFrame:
    """All recorded results, ordered Figure 1–8 then Table 5–13 (records of an older format, without a
    verdict, are read as ``not testable``)."""
    d = repo_root() / PAGES_DIR / "results"
    rows = [json.loads(p.read_text()) for p in sorted(d.glob("*.json"))] if d.exists() else []
    for row in rows:
        if row.get("verdict") not in VERDICTS:
            row.update(verdict="not testable", evidence_text="", reason="recorded by an older build without a verdict")
    frame = pd.DataFrame(rows, columns=RESULT_COLUMNS)

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


def findings_markdown(page: str) -> str | None:
    """The page's findings as a MyST "Findings" box, one line per claim the page recorded: the item,
    this build's numbers, the verdict and its evidence (difference, interval, images and seeds).
    None when the page recorded no claim. ``cascam book`` puts it under the page's title."""
    results = load_results()
    mine = results[results["page"] == page] if len(results) else results
    setting = page_findings(page)
    if not len(mine) and not setting:
        return None
    lines, details = [f"- {text}" for text in setting], []
    for _, r in mine.iterrows():
        evidence = r["evidence_text"] if isinstance(r["evidence_text"], str) and r["evidence_text"] else r["reason"]
        parts = evidence.split(" | ") if isinstance(evidence, str) and evidence else []
        head = f"- **{r['item']}** — {r['ours']}. The paper's claim ({r['claim']}): **{r['verdict']}**"
        if len(parts) > 4:  # many comparisons: how they came out here, the list folded below the box
            lines.append(head + " — " + evidence_brief(r.get("evidence"), evidence, where="")
                         + " (listed below).")
            details += [f":::{{admonition}} {r['item']}: all {len(parts)} comparisons\n:class: dropdown\n"]
            details += [f"- {p}" for p in parts] + [":::"]
            continue
        lines.append(head + (f" — {parts[0]}." if len(parts) == 1 else ":" if parts else "."))
        lines += [f"  - {p}" for p in parts] if len(parts) > 1 else []
    body = "\n".join(lines) + ("\n\n" + "\n".join(details) if details else "")
    return "::::{admonition} Findings of this build\n:class: tip\n\n" + body + "\n::::\n"


def page_findings(page: str) -> list[str]:
    """The lines ``page`` recorded with :func:`cascam.bookkit.record_finding`, in recording order."""
    d = repo_root() / PAGES_DIR / "findings"
    rows = [json.loads(p.read_text()) for p in d.glob(f"{page}__*.json")] if d.exists() else []
    return [r["text"] for r in sorted(rows, key=lambda r: r.get("order", 0)) if r.get("page") == page]


def evidence_brief(evidence: Any, text: Any, reason: Any = "", limit: int = 4,
                   where: str = "; the list is on the page") -> str:
    """The evidence of one status line for the landing page's table (HTML): each comparison on its own
    line, or, beyond ``limit`` comparisons, how many there are and how each came out (its own
    interval read by the verdict rule), followed by ``where`` (where the list can be read)."""
    text = text if isinstance(text, str) and text else (reason if isinstance(reason, str) else "")
    parts = text.split(" | ") if text else []
    if len(parts) <= limit or not isinstance(evidence, list) or len(evidence) != len(parts):
        return "<br>".join(parts)
    from .verdicts import verdict_of_interval

    each = [verdict_of_interval(e["low"], e["high"], e.get("claimed", "greater")) for e in evidence]
    counts = ", ".join(f"{each.count(w)} {w}" for w in VERDICTS if each.count(w))
    sample = parts[0].rsplit("; ", 1)[-1]
    return f"{len(parts)} paired comparisons ({sample} each): {counts}{where}"


def verdict_summary(results: pd.DataFrame) -> str:
    """"4 held, 1 contradicted, 6 inconclusive, 9 not testable" — the landing page's summary line."""
    counts = results["verdict"].value_counts() if len(results) else pd.Series(dtype=int)
    return ", ".join(f"{int(counts.get(w, 0))} {w}" for w in VERDICTS)


def clear_results(root: Path, page: str) -> int:
    """Remove the reproduction-status lines that ``page`` recorded in an earlier build, so a line the
    page does not record this time (another profile, another data source) cannot linger on the
    landing page under the new build. Returns how many were removed."""
    removed = 0
    for path in (root / PAGES_DIR / "results").glob("*.json"):
        try:
            recorded_by = json.loads(path.read_text()).get("page")
        except (OSError, ValueError):
            recorded_by = page  # unreadable: drop it too
        if recorded_by == page:
            path.unlink(missing_ok=True)
            removed += 1
    for path in (root / PAGES_DIR / "findings").glob(f"{page}__*.json"):  # the page's setting lines
        path.unlink(missing_ok=True)
        removed += 1
    return removed


def build_book(
    profile: str = "default",
    overrides: list[str] | dict[str, Any] | None = None,
    only: list[str] | None = None,
    build: bool = True,
    solutions: bool = True,
) -> Path:
    """Execute the book's notebooks under ``profile`` (with ``overrides``) and build the HTML site.

    Returns the path of the site's ``index.html``. ``only`` restricts execution to some notebooks
    (the site is still built from whatever pages exist). ``solutions=False`` builds the course's
    pages without their ``solution`` directives (:func:`strip_solutions`), to hand out the questions.
    """
    from tqdm import tqdm

    root = repo_root()
    prof = load_profile(profile, root)
    extra = parse_overrides(overrides) if isinstance(overrides, list) else dict(overrides or {})
    order = notebook_order(root)
    if only:
        unknown = sorted(set(only) - set(order))
        if unknown:
            raise ConfigError(f"--only: unknown notebook(s) {', '.join(unknown)}; choose from {', '.join(order)}")
        order = [n for n in order if n in only]
    os.environ.setdefault("CASCAM_STORE", str(root / "runs"))
    timings = {}
    bar = tqdm(order, desc=f"book ({profile})", unit="notebook")
    for name in bar:
        bar.set_postfix(notebook=name)
        params = {"profile": profile, **prof["parameters"], **prof["notebooks"].get(name, {}), **extra}
        t0 = time.perf_counter()
        clear_results(root, name)
        execute_notebook(name, profile, params, root, bar.write)
        timings[name] = round(time.perf_counter() - t0, 1)
        bar.write(f"  {name}: {timings[name]} s")
    (root / PAGES_DIR / "timings.json").write_text(json.dumps({"profile": profile, "seconds": timings}, indent=2))
    site = root / "book" / "_build" / "html" / "index.html"
    if build:
        missing = [n for n in notebook_order(root) if not (root / PAGES_DIR / f"{n}.ipynb").exists()]
        if missing:
            raise RuntimeError(f"book: pages not executed yet: {', '.join(missing)}; run without --only first")
        copy_static_pages(root, root / PAGES_DIR, solutions=solutions)
        stage_mathjax(root / PAGES_DIR)
        jb = Path(sys.executable).with_name("jupyter-book")
        cmd = [
            str(jb) if jb.exists() else "jupyter-book", "build", str(root / PAGES_DIR),
            "--config", str(root / "_config.yml"), "--toc", str(root / "_toc.yml"),
            "--path-output", str(root / "book"), "-q",
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        # Sphinx's warnings (a duplicate or undefined label, a missing image) are kept for the reader
        # and the site tests: book/_build/build.log.
        (root / "book" / "_build" / "build.log").write_text(proc.stdout + proc.stderr)
        if proc.returncode != 0 or not site.exists():
            raise RuntimeError(f"book: jupyter-book build failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        dedupe_inline_scripts(site.parent)
    return site


def copy_static_pages(root: Path, pages: Path, *, solutions: bool = True) -> list[Path]:
    """Put the static pages beside the executed ones: ``book/*.md`` into ``pages``, the book's style
    sheet ``book/_static/*.css`` into ``pages/_static`` (Jupyter Book adds it to every page), the
    course's ``course/*.md`` into ``pages/course`` (without their solutions when ``solutions`` is
    False). Returns the paths written."""
    written = []
    for sheet in sorted((root / "book" / "_static").glob("*.css")):
        (pages / "_static").mkdir(parents=True, exist_ok=True)
        shutil.copy(sheet, pages / "_static" / sheet.name)
        written.append(pages / "_static" / sheet.name)
    for page in sorted((root / "book").glob("*.md")):
        shutil.copy(page, pages / page.name)
        written.append(pages / page.name)
    course = sorted((root / "course").glob("*.md"))
    if course:
        (pages / "course").mkdir(parents=True, exist_ok=True)
    for page in course:
        text = page.read_text()
        (pages / "course" / page.name).write_text(text if solutions else strip_solutions(text))
        written.append(pages / "course" / page.name)
    return written


def strip_solutions(text: str) -> str:
    """``text`` (MyST markdown) without its sphinx-exercise ``solution`` directives.

    A solution opens with a fence of backticks or colons followed by ``{solution}`` and closes with
    a line holding the same character at least as many times; everything in between (nested
    fences included) goes. A solution left open raises ValueError rather than leak or eat the page.
    """
    import re

    out, fence, lines = [], None, text.splitlines(keepends=True)
    for number, line in enumerate(lines, start=1):
        if fence is None:
            m = re.match(r"^\s*(`{3,}|:{3,})\{solution\}", line)
            if m:
                fence, opened = m.group(1), number
                continue
            out.append(line)
        elif re.fullmatch(rf"\s*{re.escape(fence[0])}{{{len(fence)},}}\s*", line):
            fence = None
    if fence is not None:
        raise ValueError(f"strip_solutions: the solution opened on line {opened} is never closed")
    return "".join(out)


#: The parts of MathJax 3's ``es5`` folder that ``tex-chtml.js`` loads (the component itself, TeX
#: extensions it autoloads, the CommonHTML fonts, the menu and the accessibility extensions).
MATHJAX_PARTS = ("tex-chtml.js", "input/tex", "output/chtml", "ui", "a11y")


def stage_mathjax(pages: Path) -> Path:
    """Copy MathJax 3 from the installed ``django-static-mathjax`` package into
    ``pages/mathjax_static/mathjax``, which Sphinx copies to the site's ``_static/mathjax``
    (``_config.yml``: ``html_static_path``, ``mathjax_path``), so that the site renders maths with no
    internet. Not under the pages' ``_static``: Jupyter Book adds every script found there to every
    page. Returns the folder. Raises ConfigError when the package is missing."""
    from importlib import resources
    from importlib.util import find_spec

    if find_spec("mathjax") is None:
        raise ConfigError("book: MathJax is not installed; install the book's dependencies "
                          "(pip install -c constraints.txt -e '.[book]', or `make install`)")
    src = resources.files("mathjax") / "static" / "mathjax" / "es5"
    dest = Path(pages) / "mathjax_static" / "mathjax"
    for part in MATHJAX_PARTS:
        origin, target = Path(str(src / part)), dest / part
        if origin.is_dir():
            shutil.copytree(origin, target, dirs_exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, target)
    return dest


def dedupe_inline_scripts(html_dir: Path) -> int:
    """Drop repeated identical inline ``<script>`` lines from the built pages; returns how many.

    sphinx-thebe (pulled in by Jupyter Book 1.x) registers its configuration script twice, so every
    page declares ``const THEBE_JS_URL`` twice and the browser reports a SyntaxError on load.
    """
    removed = 0
    for page in Path(html_dir).rglob("*.html"):
        lines, seen, out = page.read_text().splitlines(keepends=True), set(), []
        for line in lines:
            key = line.strip()
            if key.startswith("<script>") and key.endswith("</script>"):
                if key in seen:
                    removed += 1
                    continue
                seen.add(key)
            out.append(line)
        if len(out) != len(lines):
            page.write_text("".join(out))
    return removed
