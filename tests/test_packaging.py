"""Packaging: what a wheel carries (configs, the scenarios' traces with their licence, py.typed, LICENSE) and that
the code finds its files through the package, not through the checkout's layout."""

from __future__ import annotations

from pathlib import Path

import pytest

import scaling_env
from scaling_env import scenarios as scenarios_module
from scaling_env import traces
from scaling_env.config import TraceWorkload
from scaling_env.resources import config_dir, configs_root, packaged_traces_dir
from scaling_env.scenarios import list_scenarios, load_scenario, read_scenario_file, scenario_names

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def scenario_traces() -> dict[str, str]:
    """trace file name -> scenario, for every shipped scenario that replays a trace"""
    out = {}
    for name in scenario_names():
        _, env = read_scenario_file(config_dir("scenarios") / f"{name}.yaml")
        shape = env["workload"]["shape"]
        if shape.get("kind") == "trace" and shape.get("path"):
            out[shape["path"]] = name
    return out


def test_every_package_folder_is_listed_in_pyproject():
    listed = set(PYPROJECT["tool"]["setuptools"]["packages"])
    found = {
        ".".join(p.parent.relative_to(ROOT).parts)
        for top in ("scaling_env", "agents")
        for p in (ROOT / top).rglob("__init__.py")
    }
    assert found | {"scaling_env.configs"} == listed
    assert PYPROJECT["tool"]["setuptools"]["package-dir"] == {"scaling_env.configs": "configs"}


def test_configs_are_found_through_the_package():
    assert configs_root().resolve() == (ROOT / "configs").resolve()  # the editable install maps the source folder
    assert scenarios_module.SCENARIO_DIR == config_dir("scenarios")
    for kind in ("scenarios", "policies", "train", "env"):
        assert any(config_dir(kind).glob("*.yaml")), kind
    with pytest.raises(ValueError, match="unknown config kind"):
        config_dir("nope")


def test_the_scenarios_traces_are_shipped_with_their_licence_and_nothing_else():
    needed = scenario_traces()
    assert set(needed) == {"aws_elb_request_count_5min.csv", "twitter_amzn_mentions_5min.csv"}
    shipped = {p.name for p in packaged_traces_dir().iterdir()}
    assert shipped == {*needed, "README.md"}
    notice = (packaged_traces_dir() / "README.md").read_text()
    assert "Permission is hereby granted" in notice and "Copyright 2014-2024 Numenta Inc." in notice
    for file, scenario in needed.items():
        assert file in notice and scenario in notice
    assert "scaling_env/data/traces/README.md" in PYPROJECT["project"]["license-files"]


def test_trace_scenarios_load_with_no_traces_folder_but_the_package(tmp_path, monkeypatch):
    """A fresh machine: no ../shared, no $SCALING_ENV_TRACES, nothing in the working directory."""
    monkeypatch.delenv("SCALING_ENV_TRACES", raising=False)
    monkeypatch.chdir(tmp_path)
    original = traces.trace_dirs
    monkeypatch.setattr(traces, "trace_dirs", lambda d=None: [p for p in original(d) if "shared" not in p.parts])
    for file, name in scenario_traces().items():
        sc = load_scenario(name)
        assert isinstance(sc.config.workload.shape, TraceWorkload)
        assert Path(sc.config.workload.shape.path) == (packaged_traces_dir() / file).resolve()
    notes = {name: note for name, _, note in list_scenarios()}
    assert "NOT FOUND" not in " ".join(notes.values())


def test_a_users_traces_folder_comes_before_the_packaged_traces(tmp_path):
    (tmp_path / "aws_elb_request_count_5min.csv").write_text("timestamp,requests\n0,5\n300,7\n600,9\n")
    sc = load_scenario("noisy_trace", traces_dir=tmp_path)
    assert sc.config.workload.shape.path == str((tmp_path / "aws_elb_request_count_5min.csv").resolve())


def test_the_shared_folder_beside_the_checkout_is_searched_only_from_a_checkout(tmp_path, monkeypatch):
    dirs = traces.trace_dirs()
    assert ROOT.parent / "shared" / "traces" in dirs  # a checkout
    fake = tmp_path / "site-packages" / "scaling_env"
    fake.mkdir(parents=True)
    monkeypatch.setattr(traces, "__file__", str(fake / "traces.py"))
    assert not any("shared" in p.parts for p in traces.trace_dirs())


def test_license_version_and_typing_markers():
    project = PYPROJECT["project"]
    assert project["license"] == "MIT" and "LICENSE" in project["license-files"]
    assert "MIT License" in (ROOT / "LICENSE").read_text()
    assert (ROOT / "scaling_env" / "py.typed").is_file() and (ROOT / "agents" / "py.typed").is_file()
    assert (ROOT / "CHANGELOG.md").is_file() and project["version"] in (ROOT / "CHANGELOG.md").read_text()
    assert scaling_env.__version__ == project["version"]
    assert {"build/", "dist/"} <= set((ROOT / ".gitignore").read_text().split())
    assert any(c.startswith("License ::") for c in project["classifiers"]) is False  # the SPDX string says it
    assert "Typing :: Typed" in project["classifiers"]
