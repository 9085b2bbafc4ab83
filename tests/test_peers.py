"""benchmarks.peers: the peer comparison's CLI checks its flags before building anything.

The comparison itself builds a second virtualenv with imitation's pins and trains two agents for minutes;
it is a benchmark (docs/peers.md), not a test.
"""

import py_compile
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("flags, message", [(["--steps", "0"], "must be >= 1"),
                                            (["--comparisons", "-5"], "must be >= 1")])
def test_bad_flags_fail_before_any_virtualenv_is_built(tmp_path, flags, message):
    r = subprocess.run([sys.executable, "-m", "benchmarks.peers.run", *flags, "--venv", str(tmp_path / "venv"),
                        "--out", str(tmp_path / "out")], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert r.returncode == 2 and message in r.stderr
    assert not (tmp_path / "venv").exists() and not (tmp_path / "out").exists()


def test_the_peer_script_compiles_and_imports_no_prefrl():
    src = REPO / "benchmarks" / "peers" / "imitation_pc.py"
    py_compile.compile(str(src), doraise=True)
    text = src.read_text()
    assert "import prefrl" not in text and "from prefrl" not in text  # it runs in imitation's own virtualenv
