"""Write the bytecode (``__pycache__``) of the modules the book, the CLI and the tests import.

``make install`` installs with ``pip --no-compile`` (compiling every module of every package, torch's
thousands included, took 108 of the install's 238 s here) and then runs ``python -m cascam.bytecode``,
which imports only what this project uses, with bytecode writing switched on. Where
``PYTHONDONTWRITEBYTECODE`` is set (as on the machines this project is built on), Python would otherwise
compile those modules from source in every process: about 8 s more for each notebook kernel, CLI
call and sweep job (``import cascam.bookkit``: 14.6 s instead of 6.8 s).
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
import time
import warnings

#: Packages the book's kernels, its site build, the CLI and the tests import, beyond ``cascam`` itself.
USED = (
    "papermill", "nbclient", "nbformat", "jupytext", "ipykernel.kernelapp", "ipykernel.ipkernel", "IPython",
    "matplotlib.pyplot", "seaborn", "pytest", "submitit", "quantus", "sklearn.metrics", "scipy.stats", "timm",
    "pytorch_grad_cam", "pytorch_grad_cam.metrics.road", "jupyter_book.cli.main", "myst_nb", "sphinx.application",
    "tqdm.auto",
)


def main() -> int:
    """Import ``cascam``, each of its modules and :data:`USED`, writing their bytecode; print what failed."""
    sys.dont_write_bytecode = False  # PYTHONDONTWRITEBYTECODE is read at start-up; this undoes it
    t0 = time.perf_counter()
    import cascam

    names = [m.name for m in pkgutil.walk_packages(cascam.__path__, "cascam.")] + list(USED)
    failed = []
    with warnings.catch_warnings():  # what a package says on import (tqdm.auto without ipywidgets) is not news here
        warnings.simplefilter("ignore")
        for name in names:
            try:
                importlib.import_module(name)
            except Exception as exc:  # an optional package missing is not an install failure
                failed.append(f"{name} ({type(exc).__name__})")
    print(f"bytecode: {len(names) - len(failed)} modules and what they import, {time.perf_counter() - t0:.0f} s"
          + (f"; not importable: {', '.join(failed)}" if failed else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
