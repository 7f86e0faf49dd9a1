"""The smoke profile of every numbered notebook, executed through the batch runner."""
import json
import time

import nbformat
import pytest

from inversion import reproduce
from inversion.paths import figures_dir, runs_dir


@pytest.mark.notebooks
@pytest.mark.parametrize("name", sorted(reproduce.notebooks()))
def test_notebook_smoke(name):
    reproduce.ensure_kernel()
    start = time.time()
    record = reproduce.run_notebook(name, reproduce.notebooks()[name], "smoke", runs_dir("smoke"))
    log = (runs_dir("smoke") / f"{name}.log").read_text()
    assert record["status"] == "ok", f"{name} failed: {record.get('error')}\n{log[-3000:]}"
    metrics_file = figures_dir("smoke") / name / "metrics.json"
    assert metrics_file.is_file() and metrics_file.stat().st_mtime >= start - 1
    metrics = json.loads(metrics_file.read_text())
    assert metrics["profile"] == "smoke" and metrics["headline"], "metrics.json needs headline numbers"
    assert list((figures_dir("smoke") / name).glob("*.png")), "the notebook wrote no figure"
    executed = figures_dir("smoke") / name / f"{name}.ipynb"
    assert executed.is_file() and executed.stat().st_mtime >= start - 1, "the runner wrote no executed copy"
    assert executed.stat().st_size == record["executed_bytes"] <= reproduce.EXECUTED_COPY_LIMIT
    nb = nbformat.read(executed, as_version=4)
    assert nb.metadata["inversion"]["commit"] == record["commit"] and nb.metadata["inversion"]["profile"] == "smoke"
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert any({"image/png", "image/jpeg"} & set(o.get("data", {})) for o in outputs), "no figure shown inline"
    streams = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    assert "\r" not in streams, "progress bars are collapsed to their last line"
