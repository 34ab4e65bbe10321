"""The notebooks in notebooks/: each runs top to bottom with the test budget, and is stored without outputs.

Each notebook is executed by nbclient in a fresh kernel (the ``python3`` kernel, which resolves to this
interpreter's ipykernel) with ``SCALING_ENV_NOTEBOOK_BUDGET=test`` and a temporary working directory, so that the
run folders and plots they write stay out of the repository. A failing cell raises ``CellExecutionError`` (with
the cell and its traceback) and fails the test.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = ("01_environment_tour", "02_rule_policies", "03_ppo_agent")
BUDGET_VARIABLE = "SCALING_ENV_NOTEBOOK_BUDGET"


def read(name: str) -> nbformat.NotebookNode:
    return nbformat.read(NOTEBOOK_DIR / f"{name}.ipynb", as_version=4)


def test_the_notebooks_are_the_documented_ones():
    assert sorted(p.stem for p in NOTEBOOK_DIR.glob("*.ipynb")) == list(NOTEBOOKS)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_is_stored_without_outputs(name):
    nb = read(name)
    nbformat.validate(nb)
    dirty = [
        i
        for i, cell in enumerate(nb.cells)
        if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None)
    ]
    assert not dirty, (
        f"{name}.ipynb: cells {dirty} hold outputs or execution counts; clear them before committing "
        "(Jupyter: Edit > Clear Outputs of All Cells)"
    )


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_with_the_test_budget(name, tmp_path, monkeypatch):
    monkeypatch.setenv(BUDGET_VARIABLE, "test")
    nb = read(name)
    # a last cell reports the kernel's interpreter: it must be this one (the venv's), not another Python
    nb.cells.append(nbformat.v4.new_code_cell("import sys; print(sys.prefix)"))
    before = sorted(NOTEBOOK_DIR.iterdir())
    client = NotebookClient(nb, kernel_name="python3", timeout=300, resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    assert sorted(NOTEBOOK_DIR.iterdir()) == before, "the notebook wrote files beside itself, not in its working dir"

    assert nb.cells[-1].outputs[0]["text"].strip() == sys.prefix
    figures = [out for cell in nb.cells for out in cell.get("outputs", []) if "image/png" in out.get("data", {})]
    assert figures, f"{name}.ipynb drew no figure"
