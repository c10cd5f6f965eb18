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


def test_data_synthetic_writes_pngs(tmp_path, capsys):
    assert main(["data", "synthetic", "--out", str(tmp_path / "syn"), "--n", "4", "--size", "32"]) == 0
    assert len(list((tmp_path / "syn" / "images").glob("*.png"))) == 4


def _run(store: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "CASCAM_STORE": str(store), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([CLI, "run", "--set", "K=3", *TINY, *extra], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_killed_run_resumes_to_the_uninterrupted_result(tmp_path, sig):
    reference = _run(tmp_path / "ref")
    assert reference.wait(timeout=600) == 0, reference.stderr.read()[-2000:]
    proc = _run(tmp_path / "killed")
    deadline = time.time() + 600
    first = None
    while time.time() < deadline and proc.poll() is None:
        done = list((tmp_path / "killed").glob("*/iter_01/stats.json"))
        if done:
            first = done[0]
            break
        time.sleep(0.2)
    assert first is not None, "iteration 1 never finished"
    proc.send_signal(sig)
    proc.wait(timeout=120)
    run_dir = first.parents[1]
    assert not load_record(run_dir, K=3).is_complete
    # whatever the kill interrupted is at most a hidden temporary file; every file a reader trusts is whole
    for path in run_dir.rglob("*"):
        if path.is_file() and not path.name.startswith("."):
            if path.suffix == ".pt":
                torch.load(path, weights_only=True)
            elif path.suffix == ".json":
                import json

                json.loads(path.read_text())
    resumed = _run(tmp_path / "killed")
    out, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err[-2000:]
    ref_dir = next((tmp_path / "ref").iterdir())
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
