"""The batch runner and the notebooks' parameter contract (no notebook is executed here)."""
import ast
import json

import nbformat
import pytest
import yaml

from inversion import reproduce
from inversion.paths import repo_root

NOTEBOOKS = reproduce.notebooks()


def parameters_cell(path):
    nb = nbformat.read(path, as_version=4)
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, f"{path.name} needs exactly one cell tagged 'parameters'"
    values = {}
    for node in ast.parse(cells[0].source).body:
        assert isinstance(node, ast.Assign) and len(node.targets) == 1, \
            f"{path.name}: the parameters cell holds plain assignments only"
        values[node.targets[0].id] = ast.literal_eval(node.value)  # raises on anything not plain
    return nb, values


def test_notebooks_exist():
    assert "00_model_zoo" in NOTEBOOKS


@pytest.mark.parametrize("name", sorted(NOTEBOOKS))
def test_parameters_cell_matches_profiles(name):
    nb, defaults = parameters_cell(NOTEBOOKS[name])
    assert defaults.get("profile") == "mini", "notebook defaults are the mini profile"
    table = yaml.safe_load((repo_root() / "notebooks" / "profiles" / f"{name}.yaml").read_text())
    assert set(table) == set(reproduce.PROFILES)
    for profile in reproduce.PROFILES:
        params = reproduce.parameters(name, profile)
        assert set(params) == set(defaults), f"{name}/{profile}: keys differ from the parameters cell"
        assert params["profile"] == profile
    assert reproduce.parameters(name, "mini") == defaults, f"{name}: cell defaults differ from mini yaml"
    assert nb.metadata.get("kernelspec", {}).get("name") == reproduce.KERNEL, "set the kernelspec (see CONTRIBUTING.md)"
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), "commit notebooks stripped"


def test_select_resolves_prefixes_and_rejects_unknown():
    assert list(reproduce.select(["00"])) == ["00_model_zoo"]
    assert list(reproduce.select(None)) == list(NOTEBOOKS)
    with pytest.raises(SystemExit, match="no notebook matches 77"):
        reproduce.select(["00", "77"])


def test_unknown_profile_fails_before_running(capsys):
    with pytest.raises(SystemExit) as info:
        reproduce.main(["--profile", "huge"])
    assert info.value.code == 2
    assert "unknown profile 'huge'" in capsys.readouterr().err


def test_list(capsys):
    assert reproduce.main(["--list"]) == 0
    assert "00_model_zoo" in capsys.readouterr().out


def test_summary_rows(tmp_path, monkeypatch):
    monkeypatch.setattr(reproduce, "figures_dir", lambda profile: tmp_path / profile)
    out = tmp_path / "smoke" / "00_model_zoo"
    out.mkdir(parents=True)
    (out / "metrics.json").write_text(json.dumps({"headline": {"cnn acc": 0.912345}}))
    (out / "fig_a.png").write_bytes(b"")
    records = {"00_model_zoo": {"status": "ok", "seconds": 12.0, "commit": "abc123", "dirty": True}}
    text = reproduce.write_summary("smoke", records).read_text()
    assert ("| 00_model_zoo | ok | 12 s | abc123 (modified) | cnn acc: 0.912 | [fig_a](00_model_zoo/fig_a.png) |"
            in text)
    for other in set(NOTEBOOKS) - {"00_model_zoo"}:
        assert f"| {other} | not run |" in text


def test_code_version_names_the_commit():
    version = reproduce.code_version()
    assert set(version) == {"commit", "dirty"}
    if version["commit"] is not None:  # a git checkout (CI clones one)
        assert len(version["commit"]) == 12 and isinstance(version["dirty"], bool)
