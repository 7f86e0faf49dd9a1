"""The batch runner and the notebooks' parameter contract (no notebook is executed here)."""
import ast
import json

import nbformat
import pytest

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
    table = reproduce.profile_file(name)
    assert set(table) - {"include"} == set(reproduce.PROFILES)
    shared = {key for keys in (table.get("include") or {}).values() for key in keys}
    for profile in reproduce.PROFILES:
        params = reproduce.parameters(name, profile)
        assert set(params) == set(defaults), f"{name}/{profile}: keys differ from the parameters cell"
        assert params["profile"] == profile
    mini = reproduce.parameters(name, "mini")
    left_to_recipe = sorted(k for k, v in defaults.items() if v is None and k in shared)
    assert {k: v for k, v in mini.items() if k not in left_to_recipe} == \
        {k: v for k, v in defaults.items() if k not in left_to_recipe}, f"{name}: cell defaults differ from mini yaml"
    if left_to_recipe:   # the notebook fills them in itself when opened by hand
        source = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
        call = source[source.index("reproduce.fill_from_profile("):]
        call = call[:call.index(")")]
        assert f'"{name}"' in call and all(f"{k}={k}" in call for k in left_to_recipe), call
    assert nb.metadata.get("kernelspec", {}).get("name") == reproduce.KERNEL, "set the kernelspec (see CONTRIBUTING.md)"
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), "commit notebooks stripped"


def test_profiles_are_overrides_of_mini_with_replace_and_include(tmp_path, monkeypatch):
    folder = tmp_path / "notebooks" / "profiles"
    folder.mkdir(parents=True)
    (folder / "recipe.yaml").write_text("mini:\n  gan: {steps: 10, lr: 0.1}\n  seeds: [0, 1]\n"
                                        "smoke:\n  gan: {steps: 2}\npaper:\n  gan: !replace {steps: 99}\n")
    (folder / "99_x.yaml").write_text("include:\n  recipe: [gan]\nmini:\n  n: 5\n  opt: {a: 1, b: 2}\n"
                                      "smoke:\n  opt: {b: 3, c: 4}\npaper: {}\n")
    (folder / "98_bad.yaml").write_text("mini:\n  n: 5\nsmoke:\n  m: 1\npaper: {}\n")
    monkeypatch.setattr(reproduce, "repo_root", lambda: tmp_path)
    assert reproduce.parameters("99_x", "mini") == {"profile": "mini", "gan": {"steps": 10, "lr": 0.1}, "n": 5,
                                                    "opt": {"a": 1, "b": 2}}
    smoke = reproduce.parameters("99_x", "smoke")
    assert smoke["gan"] == {"steps": 2, "lr": 0.1} and smoke["opt"] == {"a": 1, "b": 3, "c": 4}
    assert reproduce.parameters("99_x", "paper")["gan"] == {"steps": 99}    # !replace: mini's lr is gone
    assert reproduce.fill_from_profile("99_x", "smoke", gan=None, n=7) == ({"steps": 2, "lr": 0.1}, 7)
    with pytest.raises(KeyError, match="'m' is not a parameter of the mini profile"):
        reproduce.parameters("98_bad", "smoke")
    with pytest.raises(KeyError, match="not 'huge'"):
        reproduce.parameters("99_x", "huge")


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
    (out / "00_model_zoo.ipynb").write_text("{}")
    records = {"00_model_zoo": {"status": "ok", "seconds": 12.0, "commit": "abc123", "dirty": True,
                                "memory": {"max_rss_mb": 1536.0, "children_max_rss_mb": 512.0}}}
    text = reproduce.write_summary("smoke", records).read_text()
    assert ("| [00_model_zoo](00_model_zoo/00_model_zoo.ipynb) | ok | 12 s | 1.50 GiB RSS | abc123 (modified) "
            "| cnn acc: 0.912 | [fig_a](00_model_zoo/fig_a.png) |" in text)
    for other in set(NOTEBOOKS) - {"00_model_zoo"}:
        assert f"| {other} | not run |" in text


def test_summary_names_the_machines_the_times_were_measured_on(tmp_path, monkeypatch):
    monkeypatch.setattr(reproduce, "figures_dir", lambda profile: tmp_path / profile)
    amx = {"cpu": "Xeon X", "cores": 2, "bf16_units": ["avx512_bf16", "amx_bf16"]}
    records = {"00_model_zoo": {"status": "ok", "seconds": 1.0, "host": amx},
               "01_pii_across_architectures": {"status": "ok", "seconds": 2.0, "host": dict(amx)},
               "02_feedforward_inversion": {"status": "ok", "seconds": 3.0}}
    text = reproduce.write_summary("smoke", records).read_text()
    assert ("Measured on: Xeon X, 2 cores, bf16 units: avx512_bf16, amx_bf16 "
            "(1 older row(s) do not record theirs).") in text
    assert reproduce.describe_host({"cpu": "EPYC", "cores": 2, "bf16_units": []}) == "EPYC, 2 cores, bf16 units: none"
    here = reproduce.host()
    assert here["cpu"] and here["cores"] >= 1 and set(here["bf16_units"]) <= {"avx512_bf16", "amx_bf16"}


def test_peak_memory_prefers_cuda_and_the_largest_process():
    assert reproduce.peak_memory({}) == ""
    assert reproduce.peak_memory({"memory": {"max_rss_mb": 100.0, "children_max_rss_mb": 2048.0}}) == "2.00 GiB RSS"
    assert (reproduce.peak_memory({"memory": {"cuda_max_allocated_mb": 512.0, "max_rss_mb": 1024.0}})
            == "0.50 GiB cuda, 1.00 GiB RSS")


def test_source_notebooks_have_no_outputs():
    for name, path in NOTEBOOKS.items():
        nb = nbformat.read(path, as_version=4)
        with_outputs = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"
                        and (c.get("outputs") or c.get("execution_count") is not None)]
        assert not with_outputs, f"{name}: cells {with_outputs} have outputs; commit sources stripped"


def test_overrides_reach_nested_keys_and_reject_typos():
    name = "02_feedforward_inversion"
    params = reproduce.parameters(name, "paper", {"gan.steps": 3, "n_eval": 7})
    assert params["gan"]["steps"] == 3 and params["n_eval"] == 7
    assert params["gan"]["batch_size"] == reproduce.parameters(name, "paper")["gan"]["batch_size"]
    assert reproduce.parameters(name, "paper")["gan"]["steps"] == 100000, "overrides must not leak"
    with pytest.raises(KeyError, match="no parameter 'gan.stepz'"):
        reproduce.parameters(name, "paper", {"gan.stepz": 3})
    with pytest.raises(KeyError, match="no dict parameter"):
        reproduce.parameters(name, "paper", {"n_eval.x": 3})


def test_parse_overrides_targets_notebooks():
    chosen = list(NOTEBOOKS)
    out = reproduce.parse_overrides(["01:steps_per_stage=2", "gan.steps=4", "seed=1"], chosen)
    assert out["01_pii_across_architectures"] == {"steps_per_stage": 2, "seed": 1}
    assert out["02_feedforward_inversion"] == {"gan.steps": 4, "seed": 1}
    assert "steps_per_stage" not in out.get("05_zero_shot_inversion", {})
    assert reproduce.parse_overrides(["01:classes=[1, 2]"], chosen)["01_pii_across_architectures"] == {"classes": [1, 2]}
    for bad, message in [("nokey", "wants"), ("01:nothere=1", "has no parameter"), ("zzz=1", "no chosen notebook has"),
                         ("99:seed=1", "no chosen notebook matches")]:
        with pytest.raises(SystemExit, match=message):
            reproduce.parse_overrides([bad], chosen)


@pytest.mark.parametrize("text, shown", [
    ("plain\n", "plain\n"),
    ("a\n\r 10%|#  | 1/10\r 50%|## | 5/10\r100%|###| 10/10 [00:01, 9it/s]\n", "a\n100%|###| 10/10 [00:01, 9it/s]\n"),
    ("\r  0%|  |\r         \r", ""),                   # a bar cleared on close (leave=False)
    ("x\r\ny\n", "x\ny\n"),                           # Windows line ends are line ends
    ("bar 1/2\rbar 2/2\ndone\n", "bar 2/2\ndone\n"),
])
def test_collapse_progress(text, shown):
    assert reproduce.collapse_progress(text) == shown


def _png(array) -> str:
    import base64
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _executed_notebook():
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("for _ in tqdm(range(3)): pass")
    cell.outputs = [nbformat.v4.new_output("stream", name="stderr", text="  0%|   | 0/3\r"),
                    nbformat.v4.new_output("stream", name="stderr", text=" 67%|## | 2/3\r"),
                    nbformat.v4.new_output("stream", name="stderr", text="100%|###| 3/3\n"),
                    nbformat.v4.new_output("stream", name="stdout", text="result 1\n"),
                    nbformat.v4.new_output("display_data", data={
                        "application/vnd.jupyter.widget-view+json": {"model_id": "x"}, "text/plain": "w"})]
    cell.metadata["papermill"] = {"start_time": "t0", "end_time": "t1", "duration": 1.5}
    nb.cells = [nbformat.v4.new_markdown_cell("# title"), cell]
    return nb


def test_executed_copy_collapses_progress_and_records_provenance():
    record = {"notebook": "00_model_zoo", "profile": "smoke", "commit": "abc123def456", "dirty": False,
              "status": "ok", "seconds": 12.3, "overrides": {"seed": 1}}
    source = _executed_notebook()
    nb = reproduce.executed_copy(source, record)
    assert source.cells[1].outputs[0].text == "  0%|   | 0/3\r", "the input notebook is left alone"
    banner, title, cell = nb.cells
    assert "executed-copy-note" in banner.metadata["tags"] and "abc123def456" in banner.source
    assert "--profile smoke" in banner.source and '{"seed": 1}' in banner.source
    assert title.source == "# title"
    assert [(o.output_type, o.get("text")) for o in cell.outputs] == [
        ("stream", "100%|###| 3/3\n"), ("stream", "result 1\n")]
    assert cell.metadata["papermill"] == {"duration": 1.5}
    assert nb.metadata["inversion"] == {"profile": "smoke", "commit": "abc123def456", "dirty": False,
                                        "status": "ok", "seconds": 12.3, "overrides": {"seed": 1}}
    nbformat.validate(nb)


def test_fit_inline_images_shrinks_the_largest_until_it_fits():
    import numpy as np

    rng = np.random.default_rng(0)
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("show()")
    noisy = rng.integers(0, 256, (300, 300, 3), dtype=np.uint8)     # ~270 kB as PNG
    flat = np.full((50, 50, 3), 200, dtype=np.uint8)                 # a few hundred bytes
    cell.outputs = [nbformat.v4.new_output("display_data", data={"image/png": _png(noisy), "text/plain": "a"}),
                    nbformat.v4.new_output("display_data", data={"image/png": _png(flat), "text/plain": "b"})]
    nb.cells = [cell]
    before = len(nbformat.writes(nb).encode())
    assert before > 300_000
    assert reproduce.fit_inline_images(nb, limit=10**7) == before, "a notebook within the limit is untouched"
    size = reproduce.fit_inline_images(nb, limit=150_000)
    assert size <= 150_000 and size == len(nbformat.writes(nb).encode())
    big, small = (o.data for o in nb.cells[0].outputs)
    assert small["image/png"] == _png(flat), "only the largest image is shrunk"
    assert {"image/png", "image/jpeg"} & set(big) and big["text/plain"] == "a"


def test_render_html_embeds_the_executed_copy(tmp_path, monkeypatch):
    monkeypatch.setattr(reproduce, "figures_dir", lambda profile: tmp_path / "figures" / profile)
    import numpy as np

    nb = _executed_notebook()
    nb.cells[1].outputs.append(nbformat.v4.new_output(
        "display_data", data={"image/png": _png(np.zeros((8, 8, 3), dtype=np.uint8)), "text/plain": "fig"}))
    dest = tmp_path / "figures" / "smoke" / "00_model_zoo" / "00_model_zoo.ipynb"
    dest.parent.mkdir(parents=True)
    nbformat.write(nb, dest)
    (written,) = reproduce.render_html("smoke", tmp_path / "html")
    html = written.read_text()
    assert written.name == "00_model_zoo.html" and "data:image/png;base64," in html and "result 1" in html
    with pytest.raises(FileNotFoundError, match="run the mini profile first"):
        reproduce.render_html("mini", tmp_path / "html")


def test_code_version_names_the_commit():
    version = reproduce.code_version()
    assert set(version) == {"commit", "dirty"}
    if version["commit"] is not None:  # a git checkout (CI clones one)
        assert len(version["commit"]) == 12 and isinstance(version["dirty"], bool)


def _paper_dry():
    import importlib.util

    spec = importlib.util.spec_from_file_location("paper_dry", repo_root() / "scripts" / "paper_dry.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", sorted(NOTEBOOKS))
def test_paper_dry_cuts_are_valid_overrides(name):
    dry = _paper_dry()
    paper = {k: v for k, v in reproduce.parameters(name, "paper").items() if k != "profile"}
    cut = dry.cuts(paper, "cpu", 2)
    params = reproduce.parameters(name, "paper", cut)   # raises on a key the profile lacks

    def walk(values, prefix=""):
        for key, value in values.items():
            if isinstance(value, dict):
                yield from walk(value, f"{prefix}{key}.")
            else:
                yield f"{prefix}{key}", value

    for key, value in walk(params):
        leaf = key.rsplit(".", 1)[-1]
        if isinstance(value, int) and not isinstance(value, bool) and (leaf == "steps" or leaf.endswith("_steps")):
            assert value <= dry.STEPS, f"{name}: {key}={value} is not cut"
        if leaf == "device":
            assert value == "cpu"
    for key, value in walk(paper):
        if isinstance(value, str) and key.rsplit(".", 1)[-1] != "device":
            assert dict(walk(params))[key] == value, f"{name}: {key} (a model or code path) must not change"


def test_paper_dry_cut_rules():
    dry = _paper_dry()
    cut = dry.cuts({"gan": {"steps": 100000, "batch_size": 64, "lr": 0.1}, "opt_record": [10, 100, 2000],
                    "n_pool": 10000, "classes": [1, 9, 130], "ablation_other": ["no_zoom", "centering"],
                    "stages": 7, "threads": 8, "train_missing": True, "objectives": {"a": "cnn"}}, "cuda", 2)
    assert cut == {"gan.steps": 2, "gan.batch_size": 4, "opt_record": [1, 2], "n_pool": 100, "classes": [1, 9],
                   "ablation_other": ["no_zoom"], "threads": 2}
    widths = {"gan": {"g_widths": [1024, 64, 32], "steps": 2}, "width_mult": 2.0, "g_width": 1024, "d_width": 32,
              "n_dis": 2}
    assert dry.cuts(widths, "cpu", 2) == {"gan.g_widths": [64, 4, 4], "width_mult": 0.125, "g_width": 64, "d_width": 4}
    assert dry.cuts(widths, "cuda", 2) == {}   # a GPU dry run keeps the paper's widths
    assert "1 its" not in dry.slowest_loop("")
    log = ("SNGAN: 100%|##| 2/2 [00:04<00:00,  2.00s/it]\nlatent search:  50%|#| 1/2 [00:10<00:10,  0.10it/s]\r")
    assert dry.slowest_loop(log) == "latent search: 0.1 it/s (1 its in 10 s)"


def test_summary_includes_targets_tables(tmp_path, monkeypatch):
    monkeypatch.setattr(reproduce, "figures_dir", lambda profile: tmp_path / profile)
    out = tmp_path / "smoke" / "05_zero_shot_inversion"
    out.mkdir(parents=True)
    (out / "table_targets.csv").write_text("target,measured,met\n>= 20 dB,18.55 dB,False\na | b,3,True\n")
    records = {"05_zero_shot_inversion": {"status": "ok", "seconds": 60.0, "commit": "abc123"}}
    lines = reproduce.write_summary("smoke", records).read_text().splitlines()
    start = lines.index("## Targets of [05_zero_shot_inversion](05_zero_shot_inversion/table_targets.csv) (1 of 2 met)")
    assert lines[start + 2:start + 6] == ["| target | measured | met |", "|---|---|---|",
                                          "| >= 20 dB | 18.55 dB | MISSED |", "| a \\| b | 3 | met |"]
    assert "| 05_zero_shot_inversion | ok | 60 s |" in "\n".join(lines), "the notebook table stays"
    assert sum(line.startswith("## Targets of") for line in lines) == 1, "no section without a targets CSV"


def test_exit_status_names_the_failed_notebooks(capsys):
    assert reproduce.exit_status({"01_a": {"status": "ok"}, "02_b": {"status": "ok"}}) == 0
    assert reproduce.exit_status({"01_a": {"status": "ok"}, "02_b": {"status": "failed"}}) == 1
    assert "FAILED: 02_b" in capsys.readouterr().err
