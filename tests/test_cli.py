"""The command line: clear one-line errors with exit status 2, and a killed run that resumes to the
same result as an uninterrupted one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from cascam.cli import main
from cascam.hooks import PAUSE_ENV
from cascam.store import load_record

CLI = str(Path(sys.executable).with_name("cascam"))
TINY = ["--set", "n_images=96", "--set", "image_size=32", "--set", "epochs=2", "--set", "min_epochs=1",
        "--set", "batch_size=32", "--set", "device=cpu", "--set", "progress=false", "--no-validity"]


@pytest.mark.parametrize(
    "args,needle",
    [
        (["run", "--set", "theta=-1"], "theta: masking strength must be > 0; got -1"),
        (["run", "--set", "K=0"], "K: must be an integer in [1, 100]; got 0"),
        (["run", "--set", "topk=150"], "topk: percent of pixels kept must be in (0, 100]; got 150"),
        (["run", "--set", "explainer=magic"], "explainer: unknown value 'magic'"),
        (["run", "--set", "tehta=0.3"], "unknown parameter(s): tehta"),
        (["run", "missing.yaml"], "config: file not found: missing.yaml"),
        (["run", "--set", "batch_size=0"], "batch_size: must be an integer ≥ 1; got 0"),
    ],
)
def test_bad_parameters_exit_2_with_one_line(args, needle, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert needle in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_help_lists_every_parameter(capsys):
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    out = capsys.readouterr().out
    for name in ("theta", "topk", "lam", "explainer", "threshold", "fill", "arch", "explain_on", "combine"):
        assert name in out


def test_run_help_lists_every_config_field_with_its_default_and_documentation(capsys):
    """The parameters' help is generated from CascadeConfig: every dataclass field appears as
    name=default, and each is named in the class's documentation (none falls under "Other")."""
    from dataclasses import fields

    from cascam.config import CascadeConfig
    from cascam.masking import FILLS

    with pytest.raises(SystemExit):
        main(["run", "--help"])
    out = capsys.readouterr().out
    for f in fields(CascadeConfig):
        assert f" {f.name}=" in out, f.name
    assert "\nOther\n" not in out
    assert " mask_dilate=0" in out and " ebayes_standardize=max (" in out
    assert f"fill=multiply ({'|'.join(FILLS)})" in out


def test_data_synthetic_writes_pngs(tmp_path, capsys):
    assert main(["data", "synthetic", "--out", str(tmp_path / "syn"), "--n", "4", "--size", "32"]) == 0
    assert len(list((tmp_path / "syn" / "images").glob("*.png"))) == 4


def _run(store: Path, *extra: str, env: dict | None = None) -> subprocess.Popen:
    env = {**os.environ, "CASCAM_STORE": str(store), "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.Popen([CLI, "run", "--set", "K=3", *TINY, *extra], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_for_pause(proc: subprocess.Popen, flag: Path, timeout: float = 600) -> None:
    """Wait until the run has saved the iteration and stopped at the pause point (it then waits there,
    however fast the machine, until ``flag`` is removed or the process is signalled)."""
    deadline = time.monotonic() + timeout
    while not flag.exists():
        if proc.poll() is not None:
            raise AssertionError(f"the run ended before its pause point: {proc.stderr.read()[-2000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("the run never reached its pause point")
        time.sleep(0.05)


def test_pause_point_holds_the_run_until_released(tmp_path):
    flag = tmp_path / "paused"
    proc = _run(tmp_path / "runs", "--set", "K=2", env={PAUSE_ENV: f"1:{flag}"})
    wait_for_pause(proc, flag)
    assert int(flag.read_text()) == proc.pid
    (run_dir,) = [p.parent for p in (tmp_path / "runs").glob("*/iter_01")]
    record = load_record(run_dir, K=2)
    assert record.iterations_done() == [1] and proc.poll() is None  # held after iteration 1, before 2
    flag.unlink()
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-2000:]
    assert load_record(run_dir, K=2).is_complete


@pytest.fixture(scope="module")
def uninterrupted_run(tmp_path_factory) -> Path:
    """The store of one uninterrupted run of the configuration the kill tests interrupt (made once)."""
    store = tmp_path_factory.mktemp("ref")
    reference = _run(store)
    assert reference.wait(timeout=600) == 0, reference.stderr.read()[-2000:]
    return store


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_killed_run_resumes_to_the_uninterrupted_result(tmp_path, sig, uninterrupted_run):
    flag = tmp_path / "paused"
    proc = _run(tmp_path / "killed", env={PAUSE_ENV: f"1:{flag}"})
    wait_for_pause(proc, flag)  # iteration 1 is saved, iteration 2 has not started
    proc.send_signal(sig)
    proc.communicate(timeout=120)  # drains its pipes while it exits
    assert proc.returncode != 0
    (run_dir,) = [p.parent for p in (tmp_path / "killed").glob("*/iter_01")]
    assert not load_record(run_dir, K=3).is_complete
    # whatever the kill interrupted is at most a hidden temporary file; every file a reader trusts is whole
    for path in run_dir.rglob("*"):
        if path.is_file() and not path.name.startswith("."):
            if path.suffix == ".pt":
                torch.load(path, weights_only=True)
            elif path.suffix == ".json":
                import json

                json.loads(path.read_text())
    assert load_record(run_dir, K=3).iterations_done() == [1]
    resumed = _run(tmp_path / "killed")  # without the pause point
    out, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err[-2000:]
    (ref_dir,) = [p.parent for p in uninterrupted_run.glob("*/config.yaml")]  # the run, not the data cache
    assert ref_dir.name == run_dir.name
    ref, res = load_record(ref_dir, K=3), load_record(run_dir, K=3)
    assert res.is_complete
    for k in (1, 2, 3):
        a, b = ref.load_state(k), res.load_state(k)
        assert all(torch.equal(a[n], b[n]) for n in a)
    def metrics(path: Path) -> str:  # the metrics part of the report (timings differ between runs)
        return path.read_text().split("validation images", 1)[1]

    assert metrics(run_dir / "report.txt") == metrics(ref_dir / "report.txt")


def test_explain_writes_overlays_for_image_files(tmp_path, capsys):
    from cascam import CascadeConfig, run_cascade

    cfg = CascadeConfig(n_images=96, image_size=32, K=2, epochs=1, min_epochs=0, batch_size=32, device="cpu", progress=False)
    run = run_cascade(cfg, tmp_path / "runs")
    assert main(["data", "synthetic", "--out", str(tmp_path / "syn"), "--n", "2", "--size", "48"]) == 0
    images = sorted(str(p) for p in (tmp_path / "syn" / "images").glob("*.png"))
    assert main(["explain", "--run", str(run.record.dir), *images, "--out", str(tmp_path / "ov"), "--label", "dog"]) == 0
    assert len(list((tmp_path / "ov").glob("*_cascam.png"))) == 2
    assert main(["explain", "--run", str(run.record.dir), str(tmp_path / "missing.png")]) == 2
    assert "image: file not found" in capsys.readouterr().err


@pytest.mark.parametrize(
    "command,name,text,where",
    [
        ("run", "bad.yaml", "theta: 0.3\nK: [1, 2\n", "line 3, column 1"),
        ("sweep", "grid.yaml", "grid:\n  theta: [0.1, 0.3\n", "line 3, column 1"),
        ("run", "tab.yaml", "K: 3\n\ttheta: 0.3\n", "line 2, column 1"),
    ],
)
def test_malformed_yaml_is_one_line_naming_file_line_and_column(tmp_path, capsys, command, name, text, where):
    path = tmp_path / name
    path.write_text(text)
    assert main([command, str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"cannot parse {path}, {where}" in err


def test_malformed_profile_names_file_line_and_column(tmp_path):
    from cascam.book import load_profile
    from cascam.config import ConfigError

    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "broken.yaml").write_text("parameters:\n  K: 3\n  theta: {0.3\n")
    with pytest.raises(ConfigError, match=r"--profile: cannot parse .*broken\.yaml, line 4, column 1"):
        load_profile("broken", root=tmp_path)


class _RunsACommand:
    """A pickle that, if unpickled, would create a file (what a malicious checkpoint does)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_checkpoint_that_is_not_a_state_dict_is_refused_in_one_line(tmp_path, capsys):
    import pickle

    from cascam import CascadeConfig, run_cascade

    cfg = CascadeConfig(n_images=96, image_size=32, K=1, epochs=1, min_epochs=0, batch_size=32, device="cpu",
                        progress=False)
    run = run_cascade(cfg, tmp_path / "runs")
    model_pt = run.record.iteration_dir(1) / "model.pt"
    marker = tmp_path / "pwned"
    with model_pt.open("wb") as fh:
        pickle.dump(_RunsACommand(marker), fh)
    image = tmp_path / "x.png"
    from PIL import Image

    Image.new("RGB", (32, 32), (120, 80, 40)).save(image)
    capsys.readouterr()
    assert main(["explain", "--run", str(run.record.dir), str(image), "--out", str(tmp_path / "ov")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"{model_pt} is not a model state dict" in err
    assert not marker.exists() and not (tmp_path / "ov").exists()
    # a checkpoint holding something other than tensors is refused the same way
    torch.save({"weight": [1, 2, 3]}, model_pt)
    assert main(["explain", "--run", str(run.record.dir), str(image)]) == 2
    assert "is not a model state dict" in capsys.readouterr().err


def test_explain_takes_folders_and_writes_maps_overlays_and_a_table(tmp_path, capsys):
    import numpy as np
    import pandas as pd
    from PIL import Image

    from cascam import CascadeConfig, run_cascade
    from cascam.data.images import read_images

    cfg = CascadeConfig(n_images=96, image_size=32, K=2, epochs=1, min_epochs=0, batch_size=32, device="cpu", progress=False)
    run = run_cascade(cfg, tmp_path / "runs")
    assert main(["data", "synthetic", "--out", str(tmp_path / "syn"), "--n", "3", "--size", "48"]) == 0
    folder = tmp_path / "syn" / "images"
    (folder / "notes.txt").write_text("not an image; skipped in a folder")
    out = tmp_path / "ex"
    assert main(["explain", "--run", str(run.record.dir), str(folder), "--out", str(out), "--batch-size", "2"]) == 0
    table = pd.read_csv(out / "explain.csv")
    files = sorted(folder.glob("*.png"))
    assert list(table["image"]) == [str(p) for p in files]
    assert set(table.columns) >= {"predicted", "probability", "explained", "peak_row", "peak_col"}
    assert table["probability"].between(0.5, 1).all() and (table["predicted"] == table["explained"]).all()
    images, names = read_images(files, size=32)
    want = run.explain(images).numpy()
    for i, name in enumerate(names):
        m = np.load(out / f"{name}_cascam.npy")
        np.testing.assert_allclose(m, want[i], atol=1e-6)  # batches of 2 vs 3: float rounding only
        assert divmod(int(m.argmax()), 32) == (table["peak_row"][i], table["peak_col"][i])
        with Image.open(out / f"{name}_cascam.png") as im:
            assert im.size == (48, 48)  # the overlay is drawn on the image at its own size
    capsys.readouterr()
    empty = tmp_path / "empty"
    empty.mkdir()
    (tmp_path / "bad.png").write_text("not a png")
    for args, needle in [
        ([str(tmp_path / "nofolder")], "images: no such file or folder:"),
        ([str(empty)], "images: no image files in folder"),
        ([str(tmp_path / "bad.png")], "image: cannot read"),
        ([str(folder / "notes.txt")], "image: cannot read"),
    ]:
        assert main(["explain", "--run", str(run.record.dir), *args, "--out", str(tmp_path / "none")]) == 2
        err = capsys.readouterr().err
        assert needle in err and err.count("\n") == 1 and "Traceback" not in err, err
    assert not (tmp_path / "none").exists()
