"""The course (issue 18): every exercise's solution function runs on a tiny configuration and its
answer lies in the range that configuration honestly gives (at 32 px and one epoch the models are
near chance, so the ranges check what holds by construction — shares in [0, 1], Top-k keeps about
k %, ω₁ of λ, the probe at k = 1 is chance, an interval holds its estimate — not the course-size
answers the pages state); the new-shortcut data is what it says; and the questions-only build holds
no solution text."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import torch

from cascam import course
from cascam.book import copy_static_pages, strip_solutions

ROOT = Path(__file__).resolve().parents[1]
TINY = {"n_images": 96, "image_size": 32, "K": 2, "epochs": 1, "min_epochs": 0, "patience": 0, "batch_size": 32}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The tiny configuration and one store shared by the module (the exercises share runs, as in class)."""
    return course.course_config(**TINY), str(tmp_path_factory.mktemp("course") / "runs")


def _share(x) -> bool:
    return 0.0 <= x <= 1.0


def test_course_size_is_the_stated_size():
    cfg = course.course_config()
    assert (cfg.n_images, cfg.image_size, cfg.K, cfg.device) == (400, 48, 3, "cpu")
    assert course.course_config(K=2).K == 2


def test_find_shortcut(tiny):
    r = course.find_shortcut(*tiny)
    assert all(_share(r[k]) for k in ("accuracy", "box_free_accuracy", "box_peak_share", "animal_peak_share"))
    assert r["chance"] == pytest.approx(0.5, abs=0.07)
    assert 0.03 <= r["box_area_share"] <= 0.07  # a 7-px box on 32 px: 49/1024 ≈ 0.048


def test_peel(tiny):
    frame = course.peel(*tiny, thetas=(0.01, 3.0))
    assert len(frame) == 2 * TINY["K"]
    first = frame[frame.k == 1]
    assert first["box_left"].tolist() == pytest.approx([1.0, 1.0])  # x^(1) is the original
    assert first["box_peak_share"].nunique() == 1  # model 1 is shared by both θ
    assert frame["box_left"].between(0.0, 1.3).all()  # MinMax may brighten a little
    assert frame[["box_peak_share", "animal_peak_share", "accuracy_own"]].map(_share).all().all()


def test_thresholds(tiny):
    t = course.thresholds(*tiny)
    assert list(t.index) == ["Top-5 %", "Top-10 %", "Top-20 %", "EbayesThresh"]
    kept = t["kept"]
    assert kept["Top-5 %"] <= kept["Top-10 %"] <= kept["Top-20 %"]
    for name, pct in (("Top-5 %", 5), ("Top-10 %", 10), ("Top-20 %", 20)):
        assert kept[name] <= pct / 100 + 0.01  # ties and a clipped negative part keep at most k %
    assert t[["box_kept", "animal_kept", "mass_on_box"]].map(_share).all().all()


def test_combination(tiny):
    t = course.combination(*tiny)
    assert len(t) == 4
    w = dict(zip(t["lam"], t["weight_model1"], strict=False))
    assert w[0.0] == pytest.approx(1 / TINY["K"])
    assert w[0.5] == pytest.approx(1 / (1 + math.exp(-0.5)))
    assert t[["pointing_game", "energy_in_gt", "artifact_energy"]].map(_share).all().all()


def test_leaks(tiny):
    t = course.leaks(*tiny)
    assert list(t["iteration"]) == list(range(1, TINY["K"] + 1))
    assert t.loc[0, "mask_probe_accuracy"] == t.loc[0, "chance"]  # nothing masked before model 1
    assert t["mask_probe_accuracy"].map(_share).all()


def test_honest_evaluation(tiny):
    t = course.honest_evaluation(*tiny)
    assert list(t.index) == ["pointing_game", "energy_in_gt", "artifact_energy"]
    for metric, row in t.iterrows():
        assert row["low"] <= row["difference"] <= row["high"], metric
        assert row["difference"] == pytest.approx(row["CasCAM"] - row["FullGrad"], abs=1e-9)
        crosses = row["low"] <= 0 <= row["high"]
        assert (row["verdict"] == "inconclusive") == crosses, metric
    assert (t["n_images"] == t["n_images"].iloc[0]).all()


@pytest.mark.parametrize("kind", course.SHORTCUT_KINDS)
def test_shortcut_data(kind):
    d = course.shortcut_data(12, size=32, seed=0, kind=kind)
    art = d.artifact_masks
    assert art.any() and not (art & d.object_masks).any()
    outside = ~art[:, None].expand(-1, 3, -1, -1)
    assert torch.equal(d.images[outside], d.clean_images[outside])  # only the artifact differs
    cats, dogs = d.labels == 0, d.labels == 1
    assert cats.any() and dogs.any()
    # the artifact tells the class: its pixels differ on average between cats and dogs
    inside = [d.images[i][:, art[i]].float().mean(1) for i in range(len(d))]
    cat_mean = torch.stack([v for v, c in zip(inside, cats, strict=True) if c]).mean(0)
    dog_mean = torch.stack([v for v, c in zip(inside, cats, strict=True) if not c]).mean(0)
    if kind == "border":
        assert (cat_mean - dog_mean).abs().max() > 100  # red against blue
    else:  # same colours, different stripes: the pattern, not the mean, tells the class
        rows = [d.images[i][:, art[i]].float() for i in range(len(d))]
        assert all(r.numel() for r in rows)
    with pytest.raises(ValueError, match="kind"):
        course.shortcut_data(4, size=32, kind="sticker")


def test_own_shortcut(tiny):
    r = course.own_shortcut("border", *tiny)
    assert Path(r["store"]).name == "own-border"
    for key in ("accuracy", "box_free_accuracy", "artifact_peak_share_model1", "cam_pointing_game",
                "cam_artifact_energy", "cascam_pointing_game", "cascam_artifact_energy"):
        assert _share(r[key]), key


# --------------------------------------------------------------------------------------------------
# The pages and the questions-only build.

PAGES = sorted((ROOT / "course").glob("*.md"))


def _solution_bodies(text: str) -> list[str]:
    """The non-blank lines inside each solution directive of a page."""
    bodies, inside = [], None
    for line in text.splitlines():
        m = re.match(r"^(`{3,}|:{3,})\{solution\}", line)
        if inside is None and m:
            inside, body = m.group(1), []
        elif inside is not None and re.fullmatch(rf"{re.escape(inside[0])}{{{len(inside)},}}\s*", line):
            bodies.append(body)
            inside = None
        elif inside is not None and line.strip() and not line.startswith(":class:"):
            body.append(line.strip())
    return bodies


def test_every_exercise_has_a_folded_solution_and_is_in_the_toc():
    toc = (ROOT / "_toc.yml").read_text()
    exercises = [p for p in PAGES if re.match(r"\d\d_", p.name)]
    assert 6 <= len(exercises) <= 8
    for page in exercises:
        text = page.read_text()
        assert f"course/{page.stem}" in toc, page.name
        labels = re.findall(r"^:label: (\S+)", text, re.M)
        assert labels, page.name
        for label in labels:
            assert re.search(rf"^(`{{3,}}|:{{3,}})\{{solution\}} {re.escape(label)}$", text, re.M), label
        assert _solution_bodies(text), page.name
        assert ":class: dropdown" in text
        assert "cascam.course" in text  # the solution is a call of the package's function
    assert "sphinx_exercise" in (ROOT / "_config.yml").read_text()


def test_questions_only_pages_hold_no_solution_text(tmp_path):
    pages = tmp_path / "pages"
    pages.mkdir()
    written = copy_static_pages(ROOT, pages, solutions=False)
    copied = {p.name: p.read_text() for p in written if p.parent.name == "course"}
    assert set(copied) == {p.name for p in PAGES}
    for page in PAGES:
        original, stripped = page.read_text(), copied[page.name]
        assert "{solution" not in stripped
        for body in _solution_bodies(original):
            for line in body:  # every solution line (fences aside) is gone from the questions
                if len(line) > 20 and not re.fullmatch(r"[`:]{3,}\w*", line):
                    assert line not in stripped, (page.name, line)
        if "{exercise}" in original:
            assert stripped.count("{exercise}") == original.count("{exercise}")
    with_solutions = copy_static_pages(ROOT, tmp_path, solutions=True)
    assert any("{solution}" in p.read_text() for p in with_solutions)


def test_strip_solutions_handles_nesting_and_refuses_an_open_solution():
    text = ("before\n````{exercise}\n:label: a\nQ\n````\n\n````{solution} a\n:class: dropdown\n"
            "```python\nsecret()\n```\nanswer 42\n````\nafter\n:::{solution} a\nother secret\n:::\nend\n")
    out = strip_solutions(text)
    assert "secret" not in out and "answer 42" not in out
    assert out.startswith("before\n````{exercise}") and "after\n" in out and out.endswith("end\n")
    with pytest.raises(ValueError, match="never closed"):
        strip_solutions("````{solution} a\nsecret\n")


@pytest.mark.book
def test_questions_only_site_holds_no_solution_text(tmp_path):
    """jupyter-book builds the course part alone (the Course part of _toc.yml) twice: with solutions,
    each exercise page has a folded solution; without (what `cascam book --no-solutions` copies), the
    HTML holds the exercises and hints but no line of any solution."""
    import shutil
    import subprocess
    import sys

    import yaml

    part = next(p for p in yaml.safe_load((ROOT / "_toc.yml").read_text())["parts"] if p["caption"] == "Course")
    files = [f for ch in part["chapters"] for f in [ch["file"], *(s["file"] for s in ch.get("sections", []))]]
    toc = tmp_path / "toc.yml"
    toc.write_text(yaml.safe_dump({"format": "jb-book", "root": files[0], "chapters": [{"file": f} for f in files[1:]]}))
    jb = Path(sys.executable).with_name("jupyter-book")
    html = {}
    for solutions in (True, False):
        src = tmp_path / f"src-{solutions}"
        src.mkdir()
        copy_static_pages(ROOT, src, solutions=solutions)
        shutil.rmtree(src / "book", ignore_errors=True)
        proc = subprocess.run([str(jb) if jb.exists() else "jupyter-book", "build", str(src), "--config",
                               str(ROOT / "_config.yml"), "--toc", str(toc), "--path-output", str(tmp_path / f"out-{solutions}")],
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        site = tmp_path / f"out-{solutions}" / "_build" / "html" / "course"
        html[solutions] = {p.stem: p.read_text() for p in site.glob("*.html")}
    for page in (p for p in PAGES if re.match(r"\d\d_", p.name)):
        full, questions = html[True][page.stem], html[False][page.stem]
        assert 'class="solution dropdown admonition"' in full, page.name
        assert 'class="exercise admonition"' in questions and "solution" not in questions.lower().replace(
            "sphinx_exercise", ""), page.name
        assert "Measured at the course size" in full and "Measured at the course size" not in questions


def test_the_course_benchmark_finds_every_solution_and_every_stated_time():
    """benchmarks/bench_course.py times each solution's code against the teacher page's time: both must parse."""
    import importlib.util
    import sys

    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        spec = importlib.util.spec_from_file_location("bench_course", ROOT / "benchmarks" / "bench_course.py")
        bench = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(bench)
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    exercises = [p for p in PAGES if re.match(r"\d\d_", p.name)]
    for page in exercises:
        code = bench.solution_code(page)
        assert "from cascam.course import" in code, page.name
        compile(code, page.name, "exec")
    stated = bench.stated_seconds(ROOT / "course" / "teacher.md")
    assert sorted(stated) == [int(p.name[:2]) for p in exercises]
    assert all(seconds > 0 for seconds, _ in stated.values())
