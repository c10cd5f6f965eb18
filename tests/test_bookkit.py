"""What the pages show: numbers formatted for people, and status records that carry a verdict."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cascam.bookkit import format_number, load_results, record_result, verdict_summary
from cascam.verdicts import not_testable, paired_verdict


@pytest.mark.parametrize(
    "value,text",
    [(0.24512, "0.245"), (16.0, "16.0"), (3954.2349, "3,954"), (-0.0, "0"), (-0.00001, "-1.0e-05"),
     (float("nan"), "—"), (0.001234, "0.00123"), (999.7, "1,000"), (12.345, "12.3"), (-0.5, "-0.500"), ("CasCAM", "CasCAM")],
)
def test_format_number(value, text):
    assert format_number(value) == text


def test_a_status_record_carries_the_verdict_and_its_evidence(tmp_path, monkeypatch):
    (tmp_path / "_config.yml").write_text("title: test\n")
    monkeypatch.setenv("CASCAM_BOOK_ROOT", str(tmp_path))
    b = np.zeros(30)
    held = paired_verdict(b + 0.2, b, metric="pointing game", compared="CasCAM − CAM")
    record_result("Table 5", profile="smoke", ours="x", paper="y", claim="z", verdict=held, page="04_table5", anchor="table-5")
    record_result("Figure 1", profile="smoke", ours="x", paper="y", claim="z", verdict=not_testable("one image"),
                  page="01_method", anchor="figure-1")
    (stored,) = [json.loads(p.read_text()) for p in tmp_path.rglob("Table_5.json")]
    assert stored["verdict"] == "held" and stored["anchor"] == "table-5"
    ev = stored["evidence"][0]
    assert (ev["difference"], ev["n_images"], ev["n_seeds"]) == (pytest.approx(0.2), 30, 1)
    results = load_results()
    assert results["item"].tolist() == ["Figure 1", "Table 5"]
    assert results.set_index("item").loc["Figure 1", "reason"] == "one image"
    assert verdict_summary(results) == "1 held, 0 contradicted, 0 inconclusive, 1 not testable"
    with pytest.raises(TypeError, match="verdict must be"):
        record_result("Table 6", profile="smoke", ours="x", paper="y", claim="z", verdict=True, page="05_parameters")


def test_prepare_folds_code_and_puts_findings_under_the_title(tmp_path, monkeypatch):
    import nbformat

    from cascam.book import PAGES_DIR, _prepare

    (tmp_path / "_config.yml").write_text("title: test\n")
    monkeypatch.setenv("CASCAM_BOOK_ROOT", str(tmp_path))
    record_result("Table 5", profile="smoke", ours="PG 20 %", paper="y", claim="CasCAM is best", page="04_table5",
                  verdict=paired_verdict(np.ones(20), np.zeros(20), metric="pointing game", compared="CasCAM − CAM"))
    v4 = nbformat.v4
    nb = v4.new_notebook(cells=[
        v4.new_markdown_cell("# Table 5\n\nWhat the page shows."),
        v4.new_code_cell("profile = 'smoke'", metadata={"tags": ["parameters"]}),
        v4.new_code_cell("x = 1"),
        v4.new_code_cell("plumbing()", metadata={"tags": ["remove-input"]}),
        v4.new_markdown_cell("## Discussion"),
    ])
    path = tmp_path / PAGES_DIR / "04_table5.ipynb"
    nbformat.write(nb, path)
    _prepare(path, "smoke", {"profile": "smoke"})
    cells = nbformat.read(path, as_version=4).cells
    assert cells[0].source.startswith("# Table 5")
    assert cells[1].cell_type == "markdown" and "Findings of this build" in cells[1].source
    assert "**Table 5** — PG 20 %" in cells[1].source and "**held**" in cells[1].source and "20 images" in cells[1].source
    tags = [c.metadata.get("tags", []) for c in cells if c.cell_type == "code"]
    assert tags == [["parameters", "remove-cell"], ["hide-input"], ["remove-input"]]
    assert "This page was run with" in cells[-1].source and ":class: dropdown" in cells[-1].source


def test_a_long_evidence_list_is_counted_on_the_landing_page_and_a_short_one_listed():
    from cascam.book import evidence_brief

    ev = [{"low": 0.1, "high": 0.2, "claimed": "greater"}, {"low": -0.3, "high": -0.1, "claimed": "greater"},
          {"low": -0.1, "high": 0.1, "claimed": "greater"}, {"low": -0.1, "high": 0.1, "claimed": "greater"},
          {"low": -0.2, "high": -0.1, "claimed": "less"}]
    parts = [f"A − B, m{i}: +0.1 [0, 0.2]; 100 images, 1 seed" for i in range(5)]
    brief = evidence_brief(ev, " | ".join(parts), "")
    assert brief.startswith("5 paired comparisons (100 images, 1 seed each)")
    assert "2 held, 1 contradicted, 2 inconclusive" in brief
    assert evidence_brief(ev[:2], " | ".join(parts[:2]), "") == "<br>".join(parts[:2])
    assert evidence_brief(None, "", "qualitative figure") == "qualitative figure"


def test_a_named_index_is_shown_and_a_plain_one_is_not(tmp_path, monkeypatch):
    """pandas turns set_index("iteration") over 1..K into a RangeIndex: it must still be shown."""
    import pandas as pd
    from IPython.core.interactiveshell import InteractiveShell  # noqa: F401  (IPython is installed)

    from cascam import bookkit

    monkeypatch.setenv("CASCAM_BOOK_ROOT", str(tmp_path))
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj, **kw: shown.append(getattr(obj, "data", obj)))
    named = pd.DataFrame({"iteration": [1, 2, 3], "epochs_run": [6, 6, 5]}).set_index("iteration")
    bookkit.show_table(named, "T1", "named")
    assert "<th>iteration</th>" in shown[-1]
    bookkit.show_table(pd.DataFrame({"epochs_run": [6, 6, 5]}), "T2", "plain")
    assert "<th>0</th>" not in shown[-1] and "<tbody>" in shown[-1]


def test_figures_and_table_captions_are_myst_targets_with_a_jupyter_fallback(tmp_path, monkeypatch):
    """show_figure's Markdown is a MyST {figure} directive labelled figure-N pointing at the saved PNG;
    show_table's caption carries the label (table-N)=; both also carry HTML for Jupyter."""
    import base64

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    from cascam import bookkit

    (tmp_path / "_config.yml").write_text("title: test\n")
    monkeypatch.setenv("CASCAM_BOOK_ROOT", str(tmp_path))
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj, **kw: shown.append((obj, kw)))
    fig, ax = plt.subplots()
    ax.plot([0, 1])
    bookkit.show_figure(fig, "2b", "Two *cats*.", name="figure2b")
    (bundle, kw), = shown
    assert kw == {"raw": True}
    png = tmp_path / "book" / "_build" / "pages" / "figures" / "figure2b.png"
    assert png.exists()
    assert bundle["text/markdown"].splitlines()[:2] == [":::{figure} figures/figure2b.png", ":name: figure-2b"]
    assert "**Figure 2b.** Two *cats*." in bundle["text/markdown"] and bundle["text/markdown"].rstrip().endswith(":::")
    assert base64.b64encode(png.read_bytes()).decode() in bundle["text/html"]
    shown.clear()
    bookkit.show_table(pd.DataFrame({"a": [1.0]}), 5, "The headline.")
    caption = shown[0][0]
    assert caption["text/markdown"] == "(table-5)=\n**Table 5.** The headline.\n"
    assert 'id="table-5"' in caption["text/html"]


def test_the_book_renders_markdown_outputs_as_myst_and_prefers_them():
    """The labels above only become Sphinx targets if the book parses displayed Markdown as MyST and
    picks it over the HTML fallback."""
    import yaml

    from cascam.book import repo_root

    config = yaml.safe_load((repo_root() / "_config.yml").read_text())["sphinx"]["config"]
    assert config["nb_render_markdown_format"] == "myst"
    (builder, mime, rank), = config["nb_mime_priority_overrides"]
    assert (builder, mime) == ("html", "text/markdown") and rank < 30  # myst-nb ranks text/html 30


def test_the_findings_box_folds_a_long_list_of_comparisons(tmp_path, monkeypatch):
    from cascam.book import findings_markdown
    from cascam.verdicts import all_of

    (tmp_path / "_config.yml").write_text("title: test\n")
    monkeypatch.setenv("CASCAM_BOOK_ROOT", str(tmp_path))
    b = np.zeros(30)
    many = all_of(paired_verdict(b + d, b, metric=f"m{i}", compared="A − B") for i, d in enumerate([0.2] * 3 + [-0.2] * 3))
    record_result("Grid", profile="smoke", ours="x", paper="y", claim="z", verdict=many, page="05_parameters")
    record_result("Table 6", profile="smoke", ours="x", paper="y", claim="z",
                  verdict=paired_verdict(b + 0.2, b, metric="pg", compared="A − B"), page="05_parameters")
    md = findings_markdown("05_parameters")
    assert md.startswith("::::{admonition} Findings of this build") and md.rstrip().endswith("::::")
    assert "6 paired comparisons (30 images, 1 seed each): 3 held, 3 contradicted (listed below)." in md
    assert ":::{admonition} Grid: all 6 comparisons\n:class: dropdown" in md
    assert md.count("- A − B, m") == 6  # every comparison still on the page, in the folded box
    assert "**Table 6** — x. The paper's claim (z): **held** — A − B, pg: +0.2" in md


def test_setting_findings_lead_the_box_in_order_and_leave_the_landing_page(tmp_path, monkeypatch):
    from cascam.book import PAGES_DIR, clear_results, findings_markdown
    from cascam.bookkit import record_finding

    (tmp_path / "_config.yml").write_text("title: test\n")
    monkeypatch.setenv("CASCAM_BOOK_ROOT", str(tmp_path))
    assert findings_markdown("02_benchmark") is None
    record_finding("02_benchmark", "geometry", "Animal share 0.52")
    record_finding("02_benchmark", "operating_point", "CAM on the animal 63.5 % [59.0, 68.0]")
    record_finding("02_benchmark", "geometry", "Animal share 0.53")  # the same key again replaces the line
    record_finding("04_table5", "other", "not this page's")
    box = findings_markdown("02_benchmark")
    assert box.count("\n- ") == 2 and "0.52" not in box and "not this page's" not in box
    assert box.index("CAM on the animal") < box.index("Animal share 0.53")  # recording order
    assert len(load_results()) == 0  # setting lines are not claims: nothing for the landing page
    assert clear_results(tmp_path, "02_benchmark") == 2
    assert findings_markdown("02_benchmark") is None and (tmp_path / PAGES_DIR / "findings" / "04_table5__other.json").exists()


def test_interval_text_and_the_seeded_mean_interval():
    from cascam.bookkit import interval_text
    from cascam.verdicts import mean_interval

    assert interval_text(0.72, 0.686, 0.754, scale=100, unit=" %") == "72.0 % [68.6, 75.4]"
    rng = np.random.default_rng(0)
    one = rng.normal(0.5, 0.1, 400)
    m, lo, hi = mean_interval(one)
    assert m == pytest.approx(one.mean()) and lo < m < hi and hi - lo == pytest.approx(2 * 1.96 * 0.1 / 20, rel=0.2)
    # Three seeds whose means differ: the mean is the mean of the seed means, and the interval widens
    # beyond the within-seed sampling because seeds are resampled too.
    values = np.concatenate([one, one + 0.2, one + 0.4])
    seeds = np.repeat([0, 1, 2], 400)
    m3, lo3, hi3 = mean_interval(values, seeds)
    assert m3 == pytest.approx(one.mean() + 0.2)
    assert hi3 - lo3 > 5 * (hi - lo)
