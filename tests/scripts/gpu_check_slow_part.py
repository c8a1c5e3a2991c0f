"""Run by tests/test_gpu_check.py: the GPU check's loop (``gpu_check.run_check``, signal handling included)
over three fake parts: a quick one that records two figures, a slow one that records a figure, starts
a worker, writes both process ids to ``<dir>/slow.pid`` and sleeps, and one that would come after it.

    python tests/scripts/gpu_check_slow_part.py DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks import gpu_check  # noqa: E402

MACHINE = {"gpus": [], "torch": "x", "cuda": None, "python": "3", "cpu": "test", "cpu_count": 2}
RECORD = "from benchmarks.results import Results; r = Results('fake', {path!r}); "


def python(code: str) -> list[str]:
    return [sys.executable, "-c", f"import sys; sys.path.insert(0, {str(gpu_check.KIT_ROOT)!r}); {code}"]


def main(folder: Path) -> int:
    quick_json, slow_json, pids = folder / "quick.json", folder / "slow.json", folder / "slow.pid"
    slow = (
        RECORD.format(path=str(slow_json)) + "r.add('first window', 7.0, 'images/s'); "
        "import os, subprocess, time; "
        "worker = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)']); "
        f"open({str(pids)!r} + '.tmp', 'w').write(f'{{os.getpid()}} {{worker.pid}}'); "
        f"os.replace({str(pids)!r} + '.tmp', {str(pids)!r}); time.sleep(120)"
    )
    parts = [
        gpu_check.Part("quick part", lambda _: python(RECORD.format(path=str(quick_json))
                       + "r.add('speed', 12.0, 'x', '>= 10x', True); r.add('memory', 300.0, 'MiB')"),
                       0.2, 0, quick_json),
        gpu_check.Part("slow part", lambda _: python(slow), 0.6, 0, slow_json),
        gpu_check.Part("later part", lambda _: python("print('ran')"), 0.2, 0),
    ]  # fmt: skip
    return gpu_check.run_check(parts, MACHINE, gpu_check.Budget(300.0), folder / "gpu_check.md")


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
