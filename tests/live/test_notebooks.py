"""The notebooks run top to bottom on demo data (nbclient), in a scratch directory, and are committed clean."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))


def test_there_are_the_four_notebooks():
    assert [p.name for p in NOTEBOOKS] == ["01_quickstart.ipynb", "02_hotspots.ipynb", "03_workload.ipynb",
                                           "04_official_boundaries.ipynb", "04_patrol_coverage.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_committed_without_outputs_and_offline(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{path.name}: clear outputs before committing"
        # no shared reference folder, no downloads: the notebooks run on what the package ships
        assert "shared" not in cell.source and not re.search(r"https?://", cell.source), path.name


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_executes(path, tmp_path):
    work = tmp_path / path.stem
    work.mkdir()
    shutil.copy(path, work / path.name)
    nb = nbformat.read(work / path.name, as_version=4)
    # Each cell gets 60 s; the notebooks assert their own results, so a wrong answer fails here too.
    client = NotebookClient(nb, timeout=60, kernel_name="python3", resources={"metadata": {"path": str(work)}})
    client.execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    # what they wrote went to the scratch directory, not the repository
    assert not any(p.name.endswith((".sqlite", ".gpkg", ".html", ".csv")) for p in path.parent.iterdir())
