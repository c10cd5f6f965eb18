"""The book end to end: the smoke profile executes every notebook and builds the site (in a copy of
the book's sources, so a developer's own build is untouched); the HTML holds figures 1–8 and tables
5–13 as real images and numbers; headless Chromium renders the landing page without console errors.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.book


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("book")
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy(ROOT / name, work / name)
    for folder in ("notebooks", "profiles", "course"):
        shutil.copytree(ROOT / folder, work / folder)
    (work / "book").mkdir()
    shutil.copy(ROOT / "book" / "rerun.md", work / "book" / "rerun.md")
    shutil.copytree(ROOT / "book" / "records", work / "book" / "records")  # page 09's recorded study
    env = {**os.environ, "CASCAM_BOOK_ROOT": str(work), "CASCAM_STORE": str(work / "runs"), "MPLBACKEND": "Agg"}
    cli = Path(sys.executable).with_name("cascam")
    proc = subprocess.run([str(cli), "book", "--profile", "smoke"], env=env, capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "site:" in proc.stdout
    return work / "book" / "_build" / "html"


def _html(site: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in sorted(site.glob("*.html")))


def test_every_figure_and_table_is_on_the_site(site):
    html = _html(site)
    for n in range(1, 9):
        assert re.search(rf"<strong>Figure {n}\.</strong>", html), f"Figure {n} caption missing"
    for n in range(5, 14):
        assert re.search(rf"<strong>Table {n}\.</strong>", html), f"Table {n} caption missing"


def test_figures_are_real_images(site):
    from PIL import Image

    pages = list(site.glob("*.html"))
    srcs = {src for p in pages for src in re.findall(r'<img[^>]+src="([^"]+\.png)"', p.read_text(errors="replace"))}
    assert len(srcs) >= 8
    for src in srcs:
        path = (site / src).resolve()
        assert path.exists(), src
        with Image.open(path) as im:
            im.load()
            assert im.size[0] > 50 and im.size[1] > 50


def test_tables_hold_numbers_not_nan(site):
    html = _html(site)
    tables = re.findall(r'<table class="dataframe cascam-table">(.*?)</table>', html, re.S)
    assert len(tables) >= 9
    for t in tables:
        cells = re.findall(r"<td>(.*?)</td>", t, re.S)
        assert cells, "an empty table"
        assert not any(re.match(r"-?(nan|inf)\b", c.strip().lower()) for c in cells), "a NaN in a table"
        # A number, a percentage, or a number with its interval ("0.245 [0.21, 0.28]", "42.0 % [37.1, 46.9]").
        number = r"[-−]?\d[\d,]*(\.\d+)?(e-?\d+)?( ?%)?( \[[-−]?[\d.]+, [-−]?[\d.]+\])?"  # − as well as -
        assert any(re.fullmatch(number, c.strip()) for c in cells), "no numbers in a table"


def test_landing_page_has_the_reproduction_status_table(site):
    index = (site / "index.html").read_text()
    assert "Reproduction status" in index
    for item in ("Table 5", "Table 6", "Figure 1", "Table 13"):
        assert item in index
    assert "This page was run with" in index


def test_landing_page_gives_verdicts_with_evidence_and_links_to_anchors(site):
    from cascam.verdicts import VERDICTS

    index = (site / "index.html").read_text()
    summary = re.search(r"Summary of this build</strong> \(profile [^)]*\):\s*(.*?)\.", index)
    assert summary, "no summary line"
    counts = dict((w, int(n)) for n, w in re.findall(r"(\d+) (held|contradicted|inconclusive|not testable)", summary.group(1)))
    assert set(counts) == set(VERDICTS)
    rows = re.findall(r"<tr>\s*<td>(.*?)</td>(.*?)</tr>", index, re.S)
    rows = [r for r in rows if "href=" in r[0]]
    assert sum(counts.values()) == len(rows) > 0
    for link, rest in rows:
        assert any(f"<td><strong>{w}</strong></td>" in rest for w in VERDICTS), f"no verdict word in {link}"
    # every link with an anchor points at an id that exists on its page
    for page, anchor in re.findall(r'href="([0-9a-z_]+\.html)#([^"]+)"', index):
        assert f'id="{anchor}"' in (site / page).read_text(), f"{page}#{anchor} does not exist"
    for n in range(1, 9):
        assert re.search(rf'href="[0-9a-z_]+\.html#figure-{n}"', index), f"no link to Figure {n}"
    for n in (5, 6, 7, 8, 9, 10, 11, 12, 13):
        assert re.search(rf'href="[0-9a-z_]+\.html#table-{n}"', index), f"no link to Table {n}"


def test_every_paper_figure_and_table_is_a_sphinx_label(site):
    """figure-1..8 and table-5..13 are in the site's Sphinx inventory (so `{ref}` resolves them), each on
    the page the landing page links to; figures are real <figure> elements made by the {figure}
    directive; no MyST syntax is left unparsed on any page."""
    from sphinx.util.inventory import InventoryFile

    with open(site / "objects.inv", "rb") as fh:
        labels = InventoryFile.load(fh, "", lambda base, uri: uri)["std:label"]
    index = (site / "index.html").read_text()
    for name in [f"figure-{n}" for n in range(1, 9)] + [f"table-{n}" for n in range(5, 14)]:
        assert name in labels, f"{name} is not a Sphinx label"
        uri = labels[name][2]
        assert uri.endswith(f"#{name}"), uri
        assert f'href="{uri}"' in index, f"the landing page does not link to {uri}"
        if name.startswith("figure"):
            page = (site / uri.split("#")[0]).read_text()
            assert re.search(rf'<figure[^>]*id="{name}"', page), f"{name} is not a <figure>"
    log = (site.parent / "build.log").read_text().lower()  # Sphinx's warnings: labels unique, {ref}s found
    for warning in ("duplicate label", "duplicate explicit target name", "undefined label", "image file not readable"):
        assert warning not in log, [line for line in log.splitlines() if warning in line][:3]
    rerun = (site / "rerun.html").read_text()  # book/rerun.md cross-references with {ref}
    assert f'href="{labels["figure-2"][2]}"' in rerun and f'href="{labels["table-5"][2]}"' in rerun
    for page in site.glob("*.html"):
        text = page.read_text(errors="replace")
        assert ":::{figure}" not in text and ")=\n<strong>" not in text, f"unparsed MyST on {page.name}"


def _outputs(page: Path) -> str:
    """The text of a page's cell outputs (what a reader sees below the folded code), tags removed."""
    import html as html_lib

    text = page.read_text(errors="replace")
    blocks = re.split(r'<div class="cell_output docutils container">', text)[1:]
    outputs = [re.split(r'<div class="cell[ "]', b, maxsplit=1)[0] for b in blocks]
    return html_lib.unescape(re.sub(r"<[^>]+>", "", "\n".join(outputs)))


@pytest.mark.parametrize("needle", ["PosixPath(", "tensor(", "array(", "<Figure size", "dict_keys("])
def test_no_raw_python_output_on_any_page(site, needle):
    pages = sorted(site.glob("[0-9]*.html")) + [site / "index.html"]
    assert all(_outputs(p) for p in pages[:-1]), "a page without outputs: the check would be empty"
    for page in pages:
        assert needle not in _outputs(page), f"{page.name} shows raw Python output ({needle!r})"


def test_findings_come_first(site):
    from cascam.verdicts import VERDICTS

    for name in ("03_qualitative", "04_table5", "05_parameters", "06_cost", "07_limitations", "08_shortcuts"):
        page = (site / f"{name}.html").read_text()
        box = page.find("Findings of this build")
        first_output = min(i for i in (page.find('class="cell_output'), page.find("<table")) if i >= 0)
        assert 0 <= box < first_output, f"{name}: the findings box is not above the first figure or table"
        assert any(f"<strong>{w}</strong>" in page[box:first_output] for w in VERDICTS), name


def test_the_benchmark_page_opens_with_its_setting_findings(site):
    page = (site / "02_benchmark.html").read_text()
    box = page.find("Findings of this build")
    first_output = min(i for i in (page.find('class="cell_output'), page.find("<table")) if i >= 0)
    assert 0 <= box < first_output
    for line in ("Geometry", "operating point", "Validity"):
        assert line in page[box:first_output], line


def test_parameter_tables_say_which_runs_and_seeds_they_stand_on(site):
    text = _outputs(site / "05_parameters.html")
    # smoke: Table 6 and λ read Table 5's run (k_seeds), Tables 7–8 the grid over two seeds (grid_seeds)
    assert re.search(r"Table 6\..*?Table 5[’']s runs: its CasCAM row is K = 2 here", text, re.S)  # MyST curls quotes
    assert re.search(r"Table 7\..*?16 validation images × 2 seeds", text, re.S)
    assert re.search(r"Table 7b\..*?the runs of Table 6", text, re.S)


def test_code_is_folded_on_every_page(site):
    for page in sorted(site.glob("[0-9]*.html")) + [site / "index.html"]:
        cells = re.findall(r'<div class="cell((?: tag_[^" ]+)*) docutils container">', page.read_text(errors="replace"))
        unfolded = [c for c in cells if not re.search(r"tag_(hide|remove)-(input|cell)", c)]
        assert len(unfolded) <= 1, f"{page.name}: {len(unfolded)} code cells shown unfolded"
        if page.name != "index.html":
            assert any("tag_hide-input" in c for c in cells), f"{page.name}: no folded code cell at all"


def test_no_page_loads_a_script_from_another_host(site):
    for page in sorted(site.glob("*.html")):
        srcs = re.findall(r'<script[^>]+src="([^"]+)"', page.read_text(errors="replace"))
        remote = [s for s in srcs if re.match(r"(https?:)?//", s)]
        assert not remote, f"{page.name} loads {remote}"
    assert (site / "_static" / "mathjax" / "tex-chtml.js").is_file()
    # the pages with maths load the copy served from the site
    with_maths = [p.name for p in site.glob("*.html") if "_static/mathjax/tex-chtml.js" in p.read_text(errors="replace")]
    assert "01_method.html" in with_maths


def test_parameters_cell_is_hidden_but_values_are_shown(site):
    page = (site / "04_table5.html").read_text()
    assert "This page was run with" in page
    assert "injected-parameters" not in page
    assert "n_eval = 200" not in page  # the source's parameters cell is removed from the page


def test_csv_downloads_are_offered(site):
    page = (site / "04_table5.html").read_text()
    assert 'download="table5.csv"' in page


@pytest.mark.chromium
def test_landing_page_renders_in_headless_chromium(site, tmp_path):
    shot = tmp_path / "index.png"
    profile = tmp_path / "chrome-profile"
    cmd = [
        "chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={profile}", "--window-size=1280,1600", "--enable-logging=stderr", "--v=0",
        f"--screenshot={shot}", (site / "index.html").as_uri(),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert shot.exists() and shot.stat().st_size > 10_000, proc.stderr[-2000:]
    console_errors = [line for line in proc.stderr.splitlines() if "CONSOLE" in line and ("Error" in line or "error" in line)]
    assert not console_errors, console_errors
    out = ROOT / "book" / "_build"
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy(shot, out / "smoke-index-screenshot.png")


def test_duplicate_inline_scripts_are_removed(tmp_path):
    from cascam.book import dedupe_inline_scripts

    page = tmp_path / "p.html"
    script = '    <script>const THEBE_JS_URL = "x";</script>\n'
    page.write_text("<head>\n" + script + "<script src='a.js'></script>\n" + script + "</head>\n")
    assert dedupe_inline_scripts(tmp_path) == 1
    assert page.read_text().count("THEBE_JS_URL") == 1 and "a.js" in page.read_text()


def test_a_page_rerun_drops_the_status_lines_it_recorded_before(tmp_path):
    import json

    from cascam.book import PAGES_DIR, clear_results

    results = tmp_path / PAGES_DIR / "results"
    results.mkdir(parents=True)
    for item, page in (("Table_3", "03_qualitative"), ("Figure_2", "03_qualitative"), ("Table_5", "04_table5")):
        (results / f"{item}.json").write_text(json.dumps({"item": item, "page": page, "profile": "default"}))
    (results / "broken.json").write_text("{not json")
    assert clear_results(tmp_path, "03_qualitative") == 3
    assert sorted(p.name for p in results.glob("*.json")) == ["Table_5.json"]
