"""Writing results: metrics.json, figures without dates, tables, image grids (known inputs)."""
import json
import math

import matplotlib
import numpy as np
import pandas as pd
import pytest
import torch

from inversion import paths, report

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


@pytest.fixture
def results(tmp_path, monkeypatch):
    monkeypatch.setenv("INVERSION_FIGURES", str(tmp_path / "figures"))
    return tmp_path / "figures"


def test_figures_root_follows_the_environment(results, monkeypatch):
    assert paths.figures_dir("smoke") == results.resolve() / "smoke"
    monkeypatch.delenv("INVERSION_FIGURES")
    assert paths.figures_dir("mini") == paths.repo_root() / "figures" / "mini"


def test_plain_rounds_and_converts():
    value = {"a": np.float32(0.123456789), "b": torch.tensor([1.0, 2.5]), "c": np.int64(3),
             "d": (np.float64("nan"), float("inf"), 0.0), 4: np.arange(2), "e": 1234567.891}
    plain = report._plain(value)
    assert math.isnan(plain["d"][0])
    plain["d"][0] = None
    assert plain == {"a": 0.123457, "b": [1.0, 2.5], "c": 3, "d": [None, float("inf"), 0], "4": [0, 1], "e": 1234570.0}
    assert isinstance(report._plain(np.int64(3)), int)
    assert json.dumps(report._plain(value), allow_nan=True)


def test_metrics_merge_and_rewrite(results):
    r = report.Report("07_test", "smoke")
    r.metrics(headline={"acc": np.float64(0.5)}, table={"x": 1})
    r.metrics(headline={"psnr": 20.0}, extra=[1, 2])
    saved = json.loads((results / "smoke" / "07_test" / "metrics.json").read_text())
    assert saved == {"notebook": "07_test", "profile": "smoke", "headline": {"acc": 0.5, "psnr": 20.0},
                     "table": {"x": 1}, "extra": [1, 2]}


def test_figure_bytes_do_not_depend_on_the_time(results):
    r = report.Report("07_test", "smoke")
    sizes = []
    for _ in range(2):
        fig, ax = plt.subplots(figsize=(2, 2))
        ax.plot([0, 1], [1, 0])
        png = r.figure(fig, "fig_line", dpi=50)
        plt.close(fig)
        sizes.append(png.read_bytes())
    assert sizes[0] == sizes[1], "regenerating an unchanged figure must change no byte of its PNG"
    assert (results / "smoke" / "07_test" / "fig_line.pdf").is_file()


def test_table_writes_csv(results):
    r = report.Report("07_test", "smoke")
    path = r.table(pd.DataFrame({"psnr": [12.345678]}, index=["cnn"]), "table_x")
    assert path.read_text().splitlines() == [",psnr", "cnn,12.35"]


def test_image_grid_keeps_values_and_pads():
    images = torch.zeros(3, 3, 2, 2)
    images[1] = 0.5
    images[2] = 2.0                                  # out of range: clamped, not rescaled
    grid = report.image_grid(images, nrow=3, padding=1, pad_value=1.0)
    assert grid.shape == (4, 10, 3)                  # 1 + 2 + 1 rows; 1 + 3 * (2 + 1) columns
    assert grid[1, 1, 0] == 0.0 and grid[1, 4, 0] == 0.5 and grid[1, 7, 0] == 1.0
    assert (grid[0] == 1.0).all(), "padding has pad_value"


def test_targets_from_dicts_and_tuples(results):
    r = report.Report("07_test", "smoke")
    frame = r.targets([
        {"target": "cnn accuracy >= 0.9", "measured": 0.912345, "met": np.bool_(True), "threshold": 0.9},
        ("psnr after layer2 >= 20 dB", "18.55 dB", False),
    ])
    assert list(frame.index) == ["cnn accuracy >= 0.9", "psnr after layer2 >= 20 dB"]
    assert frame.index.name == "target" and list(frame.columns) == ["measured", "met", "threshold"]
    assert frame["met"].tolist() == [True, False] and type(frame["met"].iloc[0]) in (bool, np.bool_)
    csv = (results / "smoke" / "07_test" / "table_targets.csv").read_text().splitlines()
    # a column of text and numbers keeps its numbers in full; a column of numbers gets 4 digits
    assert csv == ["target,measured,met,threshold", "cnn accuracy >= 0.9,0.912345,True,0.9",
                   "psnr after layer2 >= 20 dB,18.55 dB,False,"]


def test_targets_name_and_bad_rows(results):
    r = report.Report("07_test", "smoke")
    r.targets([("a", 0.123456, True), ("b", 2.0, np.False_)], name="table_zoo_targets")
    assert ((results / "smoke" / "07_test" / "table_zoo_targets.csv").read_text().splitlines()
            == ["target,measured,met", "a,0.1235,True", "b,2,False"])
    with pytest.raises(ValueError, match="lacks"):
        r.targets([{"target": "a", "measured": 1}])
    with pytest.raises(ValueError, match="met must be"):
        r.targets([{"target": "a", "measured": 1, "met": None}])
    with pytest.raises(ValueError):
        r.targets([("a", 1)])                            # a tuple needs all three fields


def test_written_atomically_replaces_only_on_success(tmp_path):
    target = tmp_path / "sub" / "state.pt"
    with paths.written_atomically(target) as tmp:
        assert tmp.parent == target.parent and tmp != target
        tmp.write_text("first")
    assert target.read_text() == "first"
    with pytest.raises(RuntimeError):
        with paths.written_atomically(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("stopped mid-write")
    assert target.read_text() == "first", "a failed write leaves the previous file"
    assert sorted(p.name for p in target.parent.iterdir()) == ["state.pt"], "no temporary file is left"
