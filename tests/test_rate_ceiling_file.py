"""perf/rate_ceiling.py's JSON is read by perf/fresh_seeds.py and perf/target_room.py through ``read_ceiling``: a
file that is not that JSON, or was made by other code, is refused with a message naming ``--ceiling``."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def rate_ceiling():
    spec = importlib.util.spec_from_file_location("rate_ceiling", ROOT / "perf" / "rate_ceiling.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GOOD = {"code_version": "abc", "generalist_rule": "predictive@generalist", "scenarios": []}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "No such file"),
        ("{not json", "not perf/rate_ceiling.py's JSON"),
        ("[]", "no scenarios or generalist_rule"),
        (json.dumps({k: v for k, v in GOOD.items() if k != "code_version"}), "made by no code_version"),
        (json.dumps({**GOOD, "code_version": "old"}), "made by old, not this code version \\(abc\\)"),
    ],
)
def test_a_file_that_is_not_this_codes_ceiling_is_refused_by_name(rate_ceiling, tmp_path, content, message):
    path = tmp_path / "ceiling.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(SystemExit, match=message) as err:
        rate_ceiling.read_ceiling(str(path), "abc")
    assert str(err.value).startswith(f"--ceiling {path}")


def test_this_codes_ceiling_is_read(rate_ceiling, tmp_path):
    path = tmp_path / "ceiling.json"
    path.write_text(json.dumps(GOOD))
    assert rate_ceiling.read_ceiling(str(path), "abc") == GOOD
