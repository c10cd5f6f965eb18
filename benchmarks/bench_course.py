"""Wall time of each course exercise's solution, run as a student runs it, against the teacher's stated time.

Each ``course/NN_*.md`` page's solution code (the ```python blocks inside its ``{solution}`` directive)
is run as written, in a fresh Python process per exercise, in order, with one run store shared by all
seven (as ``course/teacher.md`` measured them: later exercises load the models earlier ones trained).
The teacher page's "measured time" column is parsed and printed beside the measured wall time, which
includes starting Python and importing torch and the package (measured once apart and printed first).

    PYTHONPATH=. python benchmarks/bench_course.py [--threads 2] [--store DIR] [--only 1 3] [--json PATH]

The store defaults to a new empty folder under the system's temporary directory, so the times are
those of a fresh clone. ``--threads`` sets OMP/MKL threads and ``torch.set_num_threads`` in each
process.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import torch  # noqa: E402
from _common import load_warning, machine_info  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
COURSE = ROOT / "course"

_SOLUTION = re.compile(r"^(`{4,})\{solution\}.*?^\1\s*$", re.S | re.M)
_PYTHON = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def solution_code(page: Path) -> str:
    """The python code of the page's ``{solution}`` directive(s), blocks joined in order."""
    blocks = [code for sol in _SOLUTION.finditer(page.read_text()) for code in _PYTHON.findall(sol.group(0))]
    if not blocks:
        raise ValueError(f"{page.name}: no python block inside a solution directive")
    return "\n".join(blocks)


def stated_seconds(teacher: Path) -> dict[int, tuple[float, str]]:
    """Exercise number → (seconds, the cell as written) from the teacher page's time table: the
    first "N s" or "N min" of the row's last cell."""
    out: dict[int, tuple[float, str]] = {}
    for line in teacher.read_text().splitlines():
        row = re.match(r"^\|\s*(\d+)\s*·.*\|\s*([^|]+?)\s*\|\s*$", line)
        if not row:
            continue
        cell = row.group(2)
        amount = re.search(r"([\d.]+)\s*(min|s)\b", cell)
        if amount:
            out[int(row.group(1))] = (float(amount.group(1)) * (60 if amount.group(2) == "min" else 1), cell)
    return out


def run_exercise(code: str, store: Path, threads: int) -> tuple[float, int, str]:
    """Seconds, exit status and the tail of the output of ``code`` in a fresh process (cwd = the clone)."""
    env = {**os.environ, "CASCAM_STORE": str(store), "OMP_NUM_THREADS": str(threads),
           "MKL_NUM_THREADS": str(threads), "MPLBACKEND": "Agg",
           "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)}
    prelude = f"import torch; torch.set_num_threads({threads})\n"
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", prelude + code], cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    return seconds, done.returncode, (done.stdout + done.stderr)[-2000:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--store", type=Path, default=None, help="run store (default: a new empty folder)")
    parser.add_argument("--only", type=int, nargs="*", default=None, help="exercise numbers (default: all)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    info = machine_info(torch.device("cpu"))
    print("machine:", json.dumps(info))
    if (warning := load_warning(info)) is not None:
        print(warning)
    store = args.store or Path(tempfile.mkdtemp(prefix="bench_course_")) / "runs"
    print(f"store: {store} ({'empty' if not store.exists() else 'existing'}), threads per process: {args.threads}")
    startup, _, _ = run_exercise("import cascam.course, cascam.evaluate, pytorch_grad_cam", store, args.threads)
    print(f"start-up of a fresh process (python, torch, cascam, grad-cam imported; included below): {startup:.1f} s")
    stated = stated_seconds(COURSE / "teacher.md")
    pages = sorted(COURSE.glob("[0-9][0-9]_*.md"))
    rows = []
    print(f"{'exercise':<28} {'measured':>10} {'stated':>10}  ratio  status")
    for page in pages:
        number = int(page.name[:2])
        if args.only and number not in args.only:
            continue
        seconds, status, tail = run_exercise(solution_code(page), store, args.threads)
        want, cell = stated.get(number, (float("nan"), "—"))
        rows.append({"exercise": number, "page": page.name, "seconds": round(seconds, 1), "stated_seconds": want,
                     "stated": cell, "returncode": status})
        print(f"{page.stem:<28} {seconds:>9.1f}s {want:>9.0f}s  {seconds / want:5.2f}  "
              f"{'ok' if status == 0 else 'FAILED'}", flush=True)
        if status != 0:
            print(tail)
    total = sum(r["seconds"] for r in rows)
    print(f"{'all, in order':<28} {total:>9.1f}s ({total / 60:.1f} min)")
    print("load average at the end:", ", ".join(f"{v:.2f}" for v in os.getloadavg()))
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "threads": args.threads, "startup_seconds": startup,
                                         "rows": rows, "total_seconds": total}, indent=2))
    return 0 if all(r["returncode"] == 0 for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
