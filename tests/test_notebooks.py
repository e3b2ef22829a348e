"""The notebooks run, top to bottom, on the shipped data with their small budgets (nbclient;
in the test extra). Each executes in a fresh kernel from the repository root."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"


def _execute(name: str):
    why = "nbclient, nbformat and ipykernel (the test extra: pip install -e '.[test]')"
    nbformat = pytest.importorskip("nbformat", reason=why)
    nbclient = pytest.importorskip("nbclient", reason=why)
    pytest.importorskip("ipykernel", reason=why)
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    env_before = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env_before]))
    try:
        client = nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                                         resources={"metadata": {"path": str(ROOT)}})
        client.execute()
    finally:
        if env_before is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = env_before
    return notebook


def _outputs(notebook) -> str:
    text = []
    for cell in notebook.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                raise AssertionError(f"{out['ename']}: {out['evalue']}")
            text.append(out.get("text", ""))
            text.extend(str(v) for v in out.get("data", {}).values())
    return "\n".join(text)


def test_the_walkthrough_runs_from_data_to_a_plan():
    out = _outputs(_execute("walkthrough.ipynb"))
    assert "whoop-u01" in out
    assert "seed_rule" in out and "delta_performance" in out  # the evaluation table
    assert "7-day plan for whoop-u01" in out  # the plan page, inline


def test_the_policy_inspection_runs():
    nb = _execute("policy_inspection.ipynb")
    out = _outputs(nb)
    assert "fidelity on held-out athletes" in out
    assert any("image/png" in o.get("data", {}) for c in nb.cells
               for o in c.get("outputs", []))  # the heatmap
