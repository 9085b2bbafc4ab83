"""tools.text_hits: the sparse-task screen counts scoring completions and differing groups per temperature."""

import pytest

from tools import text_hits


def test_counts_per_temperature_with_the_tiny_model(capsys):
    rows = text_hits.main(["--model", "tiny", "--task", "length", "--temperatures", "1", "0.5", "--rollouts", "2",
                           "--batch-size", "4", "--group-size", "2", "--max-new-tokens", "4", "--threads", "1"])
    assert [r["temperature"] for r in rows] == [1.0, 0.5]
    for r in rows:
        assert r["completions"] == 8 and r["groups"] == 4
        assert 0.0 <= r["hit_rate"] <= 1.0 and 0 <= r["groups_differing"] <= 4
    assert "groups of 2 differ" in capsys.readouterr().out


@pytest.mark.parametrize("flags", [["--temperatures", "0"], ["--batch-size", "6", "--group-size", "4"]])
def test_bad_flags_are_refused(flags):
    with pytest.raises(SystemExit):
        text_hits.main(["--model", "tiny", *flags])
