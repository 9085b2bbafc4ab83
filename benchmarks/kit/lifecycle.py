"""What every benchmark run does around its arms, whatever the family (MuJoCo, Atari, text).

* :func:`start`: the output directory and its ``run.json`` (the flags a ``--resume`` must repeat);
* :func:`stopping`: ``kill`` (SIGTERM) stops the run as Ctrl-C does, and a run that fails removes the
  label stores it left empty (so the same ``--out`` can be used again; a store with labels is kept);
* :func:`finish`: the checkpoints go once the outputs are written;
* :func:`interrupted` / :func:`exit_with`: the command's last line after Ctrl-C, and its exit status.

Imports nothing heavy: the text command parses its flags without torch.
"""

from __future__ import annotations

import shutil
import signal
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

from benchmarks.checks import remove_empty_stores
from benchmarks.kit.checkpoint import atomic_json
from benchmarks.kit.config import RUN_FILE


def start(out: Path, record: dict, resume: bool) -> None:
    """Makes ``out`` and, for a new run, writes ``record`` (the run's flags) and the start time to ``run.json``."""
    out.mkdir(parents=True, exist_ok=True)
    if not resume:
        atomic_json(out / RUN_FILE, {**record, "started": time.time()})


@contextmanager
def stopping(out: Path, seeds: Sequence[int]) -> Iterator[None]:
    """Runs the arms inside: SIGTERM raises ``KeyboardInterrupt`` (as Ctrl-C); on any failure the empty label
    stores ``labels-seed<k>.sqlite`` of ``seeds`` are removed and named on stderr, then the error goes on."""
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        yield
    except BaseException:
        removed = remove_empty_stores(out, [f"labels-seed{s}.sqlite" for s in seeds])
        if removed:  # so that the same --out can be used again
            print(f"prefrl: removed the empty label store(s) {', '.join(removed)} of this failed run", file=sys.stderr)
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)


def finish(out: Path) -> None:
    """Removes the run's checkpoints: its outputs are written, nothing is left to resume."""
    shutil.rmtree(out / "checkpoints", ignore_errors=True)


def interrupted(out: Path) -> str:
    """The line a command prints after Ctrl-C or SIGTERM: what is kept, and how to go on."""
    return (f"\nprefrl: interrupted; the labels gathered so far are kept in {out}/labels-seed*.sqlite; "
            "add --resume (same flags) to continue from the last checkpoints")


def exit_with(code: int, message: str) -> NoReturn:
    """Prints ``message`` to stderr and exits the command with ``code`` (no traceback)."""
    print(message, file=sys.stderr)
    raise SystemExit(code) from None


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")
