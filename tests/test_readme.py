"""The README's commands: CI runs its test command as written, and the Python example is the one tested."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _fenced_after(text: str, marker: str) -> str:
    """The body of the first fenced block after ``marker``."""
    after = text.split(marker, 1)[1]
    return after.split("```", 2)[1].split("\n", 1)[1].rstrip("\n")


def test_ci_runs_the_readme_test_command_as_written():
    readme = (ROOT / "README.md").read_text()
    command = _fenced_after(readme, "<!-- ci:test-command -->")
    assert "\n" not in command and "pytest" in command
    ci = (ROOT / ".ci" / "run").read_text()
    body = ci.split("readme_test_command() {\n", 1)[1].split("\n}", 1)[0]
    assert body.strip() == command  # the same command, word for word
    assert "readme_test_command 2>&1" in ci  # and it is the one CI runs


def test_ci_treats_no_tests_as_a_failure():
    ci = (ROOT / ".ci" / "run").read_text()
    assert '"$rc" -eq 5' in ci and "passed' \"$log\"" in ci
