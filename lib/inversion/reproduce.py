"""Batch runner: execute the numbered notebooks with papermill in one profile.

    python -m inversion.reproduce --profile mini            # the whole study
    python -m inversion.reproduce --profile smoke --only 00 01
    python -m inversion.reproduce --profile paper --set 01:steps_per_stage=2 --set gan.steps=4
    python -m inversion.reproduce --profile mini --html     # executed copies -> data/html/mini/
    python -m inversion.reproduce --list

Each notebook gets its profile's parameters from ``notebooks/profiles/<notebook>.yaml`` (see
:func:`parameters` for the format; ``--set`` overrides single values for one run, without touching
the yaml); the raw executed copy and its
log go to ``data/runs/<profile>/``; results go to ``figures/<profile>/<notebook>/``, together with
a readable executed copy ``<notebook>.ipynb`` (outputs included, progress bars collapsed to their
last line, the commit it ran from in a first cell and in its metadata); ``figures/<profile>/
SUMMARY.md`` gathers status, wall time, peak memory, headline metrics, figures and a link to the
executed copy of every notebook, then each notebook's targets table. A failing notebook does not stop the batch; the exit status is
non-zero and names it.
"""
from __future__ import annotations

import argparse
import copy
import csv
import json
import os
import re
import sys
import tempfile
import time
import traceback
from pathlib import Path

import yaml

from .paths import data_dir, figures_dir, repo_root, runs_dir

PROFILES = ("smoke", "mini", "paper")
KERNEL = "inversion"
TARGETS_TABLE = "table_targets.csv"   # what Report.targets writes by default; copied into SUMMARY.md
EXECUTED_COPY_LIMIT = 1_500_000   # bytes: an executed copy must stay small enough to commit and render


def notebooks() -> dict[str, Path]:
    """The numbered notebooks, by name without suffix (``00_model_zoo``), in order."""
    folder = repo_root() / "notebooks"
    return {p.stem: p for p in sorted(folder.glob("[0-9][0-9]_*.ipynb"))}


class Replace(dict):
    """A dict-valued parameter written ``!replace {...}`` in a profile file: it replaces mini's
    value as a whole instead of being merged into it key by key."""


class _ProfileLoader(yaml.SafeLoader):
    pass


_ProfileLoader.add_constructor("!replace", lambda loader, node: Replace(loader.construct_mapping(node, deep=True)))


def _merge(base: dict, over: dict, where: str, top: bool = True) -> dict:
    """``base`` with ``over`` merged in: dicts key by key (unless ``Replace``), anything else replaced.
    A top-level key ``base`` lacks is an error (every profile has mini's parameters and no others);
    inside a dict-valued parameter a profile may add keys (a recipe field mini leaves at its default)."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        if top and key not in base:
            raise KeyError(f"{where}: {key!r} is not a parameter of the mini profile")
        if isinstance(value, dict) and isinstance(base.get(key), dict) and not isinstance(value, Replace):
            out[key] = _merge(base[key], value, f"{where}.{key}", top=False)
        else:
            out[key] = dict(value) if isinstance(value, Replace) else copy.deepcopy(value)
    return out


def profile_file(name: str) -> dict:
    """The raw contents of ``notebooks/profiles/<name>.yaml`` (a notebook's or a shared recipe's)."""
    path = repo_root() / "notebooks" / "profiles" / f"{name}.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"{name} has no profile file {path}")
    return yaml.load(path.read_text(), Loader=_ProfileLoader) or {}


def shared_recipe(name: str, profile: str) -> dict:
    """A shared recipe file (``notebooks/profiles/<name>.yaml``, e.g. ``feedforward``) in one profile:
    ``mini`` in full, ``smoke`` and ``paper`` merged onto it."""
    table = profile_file(name)
    if profile not in PROFILES or "mini" not in table:
        raise KeyError(f"{name}.yaml defines profiles {sorted(table)}; asked for {profile!r}")
    return _merge(table["mini"], table.get(profile) or {}, f"{name}/{profile}") if profile != "mini" \
        else copy.deepcopy(table["mini"])


def parameters(notebook: str, profile: str, overrides: dict | None = None) -> dict:
    """The papermill parameters of a notebook in a profile (``profile`` itself included).

    The profile file holds ``mini`` in full and ``smoke`` / ``paper`` as overrides merged onto it
    (dicts key by key; ``!replace {...}`` replaces a dict whole), so a value differs between
    profiles only where the file says so. ``include: {recipe: [keys]}`` takes those keys from a
    shared recipe file (:func:`shared_recipe`), their one home: the notebooks that reuse each other's
    cached generators read the same recipe. ``overrides`` replaces single values for one run; a
    dotted key (``"gan.steps"``) reaches into a dict-valued parameter. Overriding a key the profile
    does not have is an error (a typo would otherwise be ignored silently).
    """
    table = profile_file(notebook)
    if profile not in PROFILES or "mini" not in table:
        raise KeyError(f"{notebook}.yaml defines profiles {sorted(set(table) & set(PROFILES))}, "
                       f"not {profile!r}")
    params = {}
    for recipe, keys in (table.get("include") or {}).items():
        shared = shared_recipe(recipe, profile)
        params.update({key: shared[key] for key in keys})
    own = shared_recipe(notebook, profile)
    if set(own) & set(params):
        raise KeyError(f"{notebook}.yaml redefines {sorted(set(own) & set(params))} of its include")
    params = {"profile": profile, **params, **own}
    for key, value in (overrides or {}).items():
        *parents, leaf = key.split(".")
        target = params
        for part in parents:
            if not isinstance(target.get(part), dict):
                raise KeyError(f"{notebook}/{profile}: {key!r} names no dict parameter {part!r}")
            target = target[part]
        if leaf not in target:
            raise KeyError(f"{notebook}/{profile} has no parameter {key!r}; it has {', '.join(sorted(target))}")
        target[leaf] = value
    return params


def fill_from_profile(notebook: str, profile: str, **values) -> tuple:
    """``values`` in order, each ``None`` replaced by the notebook's parameter in ``profile``.

    A notebook's parameters cell leaves a shared recipe ``None`` (its one home is the shared
    recipe file; the batch runner passes its value); a notebook opened by hand reads it here:
    ``gan, probe = fill_from_profile("02_feedforward_inversion", profile, gan=gan, probe=probe)``.
    """
    params = parameters(notebook, profile) if any(v is None for v in values.values()) else {}
    return tuple(params[key] if value is None else value for key, value in values.items())


def parse_overrides(items: list[str], chosen: list[str]) -> dict[str, dict]:
    """``--set [NB:]key=value`` items -> ``{notebook: {key: value}}``; values are read as YAML.

    Without ``NB:`` the value goes to every chosen notebook whose profile has the key (at least
    one must); ``NB`` is a notebook name or prefix (``01``).
    """
    out: dict[str, dict] = {name: {} for name in chosen}
    for item in items:
        target, sep, assignment = item.partition(":") if re.match(r"^[0-9][^=]*:", item) else ("", "", item)
        key, eq, raw = assignment.partition("=")
        if not eq or not key:
            raise SystemExit(f"error: --set wants [NB:]key=value, got {item!r}")
        value = yaml.safe_load(raw)
        names = [n for n in chosen if n == target or n.startswith(target)] if target else list(chosen)
        if target and not names:
            raise SystemExit(f"error: --set {item!r}: no chosen notebook matches {target!r}")
        hits = 0
        for name in names:
            try:
                parameters(name, "mini", {key: value})  # every profile has the same keys
            except KeyError:
                if target:
                    raise SystemExit(f"error: --set {item!r}: {name} has no parameter {key!r}") from None
                continue
            out[name][key] = value
            hits += 1
        if not hits:
            raise SystemExit(f"error: --set {item!r}: no chosen notebook has a parameter {key!r}")
    return {name: values for name, values in out.items() if values}


def select(only: list[str] | None) -> dict[str, Path]:
    """Resolve ``--only`` prefixes (``00``, ``01_pii``) to notebooks; unknown ones are an error."""
    available = notebooks()
    if not only:
        return available
    chosen, unknown = {}, []
    for prefix in only:
        hits = {k: v for k, v in available.items() if k == prefix or k.startswith(prefix)}
        if not hits:
            unknown.append(prefix)
        chosen.update(hits)
    if unknown:
        raise SystemExit(f"error: no notebook matches {', '.join(unknown)}; available: {', '.join(available)}")
    return dict(sorted(chosen.items()))


def ensure_kernel(name: str = KERNEL) -> str:
    """Make sure the study's Jupyter kernel exists (installed into this environment if missing)."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        KernelSpecManager().get_kernel_spec(name)
    except NoSuchKernel:
        from ipykernel.kernelspec import install

        install(kernel_name=name, display_name="Python (inversion study)", prefix=sys.prefix)
    return name


def code_version() -> dict:
    """The git commit the study runs from, and whether the code (lib/, notebooks/) differs from it.

    Recorded in every run so that committed figures can be traced to the code that wrote them.
    """
    import subprocess

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=repo_root(), capture_output=True, text=True).stdout.strip()

    try:
        commit = git("rev-parse", "--short=12", "HEAD")
        dirty = bool(git("status", "--porcelain", "--", "lib", "notebooks"))
    except OSError:  # git not installed
        return {"commit": None, "dirty": None}
    return {"commit": commit or None, "dirty": dirty if commit else None}


def host() -> dict:
    """The machine a run was timed on: CPU model, cores this process may use, the CPU's bfloat16
    units (``avx512_bf16``, ``amx_bf16``: what bf16 autocast runs on) and the GPU, if any.

    Wall times of the same code differ by 2x between hosts (an AMX CPU runs bf16 convolutions and
    matmuls much faster than one with AVX-512 BF16 alone), so every run and benchmark records it.
    """
    import platform

    model, flags = None, set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = (part.strip() for part in line.partition(":"))
            if key == "model name" and model is None:
                model = value
            elif key == "flags" and not flags:
                flags = set(value.split())
    except OSError:   # not Linux
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    out = {"cpu": model or platform.processor() or platform.machine(), "cores": cores,
           "bf16_units": [f for f in ("avx512_bf16", "amx_bf16") if f in flags]}
    try:
        import torch

        if torch.cuda.is_available():
            out["gpu"] = torch.cuda.get_device_name()
    except ImportError:
        pass
    return out


def describe_host(info: dict) -> str:
    """One line for :func:`host`'s record, e.g. ``Intel(R) Xeon(R) Processor, 2 cores, bf16 units: amx_bf16``."""
    units = ", ".join(info.get("bf16_units") or []) or "none"
    gpu = f", GPU {info['gpu']}" if info.get("gpu") else ""
    return f"{info.get('cpu') or '?'}, {info.get('cores', '?')} cores, bf16 units: {units}{gpu}"


# Runs inside every notebook's kernel (an IPython startup file; it changes no result): after each
# cell, the kernel's peak memory so far goes to $INVERSION_RUN_STATS -- RSS of the kernel and of its largest finished child
# process (the zoo trains in worker processes), and torch.cuda.max_memory_allocated once CUDA is used.
_STATS_STARTUP = """
def _inversion_run_stats(*_):
    import json, os, sys
    stats = {}
    try:
        import resource
        stats["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        stats["children_max_rss_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    except (ImportError, OSError):
        pass
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        stats["cuda_max_allocated_mb"] = max(torch.cuda.max_memory_allocated(d)
                                             for d in range(torch.cuda.device_count())) / 2**20
    path = os.environ.get("INVERSION_RUN_STATS")
    if path:
        with open(path + ".tmp", "w") as f:
            json.dump(stats, f)
        os.replace(path + ".tmp", path)

get_ipython().events.register("post_run_cell", _inversion_run_stats)

import warnings as _warnings   # tqdm.auto's advice to install ipywidgets: text bars are what we want
_warnings.filterwarnings("ignore", message="IProgress not found")
"""


def _kernel_environment(folder: Path, stats_file: Path) -> dict[str, str]:
    """Environment variables of the kernel: it records its peak memory into ``stats_file``, and
    shows figures inline whatever ``MPLBACKEND`` the caller has (the tests set ``Agg``)."""
    startup = folder / "profile_default" / "startup"
    startup.mkdir(parents=True, exist_ok=True)
    (startup / "00-inversion-run-stats.py").write_text(_STATS_STARTUP)
    return {"IPYTHONDIR": str(folder), "INVERSION_RUN_STATS": str(stats_file),
            "MPLBACKEND": "module://matplotlib_inline.backend_inline"}


def run_notebook(name: str, path: Path, profile: str, log_dir: Path, overrides: dict | None = None,
                 publish: bool = True) -> dict:
    """Execute one notebook; returns its run record (status, seconds, error, code version, memory).

    The raw executed copy and the log go to ``log_dir``; with ``publish`` the readable executed
    copy goes to ``figures/<profile>/<name>/<name>.ipynb`` (see :func:`executed_copy`).
    """
    import papermill

    log_dir.mkdir(parents=True, exist_ok=True)
    out = log_dir / f"{name}.ipynb"
    start = time.time()
    record = {"notebook": name, "profile": profile, **code_version(), "host": host()}
    if overrides:
        record["overrides"] = overrides
    with tempfile.TemporaryDirectory(prefix="inversion-ipython-") as tmp:
        stats_file = Path(tmp) / "stats.json"
        kernel_env = _kernel_environment(Path(tmp), stats_file)
        saved = {k: os.environ.get(k) for k in kernel_env}
        os.environ.update(kernel_env)  # the kernel inherits them
        try:
            params = parameters(name, profile, overrides)
            with open(log_dir / f"{name}.log", "w") as log:
                papermill.execute_notebook(
                    str(path), str(out), parameters=params, kernel_name=KERNEL, cwd=str(path.parent),
                    progress_bar={"desc": name, "leave": False}, stdout_file=log, stderr_file=log,
                    request_save_on_cell_execute=True)
            record["status"] = "ok"
        except Exception as error:  # papermill raises PapermillExecutionError with the cell's traceback
            record["status"] = "failed"
            record["error"] = f"{type(error).__name__}: {str(error).strip().splitlines()[-1] if str(error).strip() else ''}"
            with open(log_dir / f"{name}.log", "a") as log:
                log.write("\n" + "".join(traceback.format_exception(error)))
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        record["seconds"] = round(time.time() - start, 1)
        if stats_file.is_file():
            record["memory"] = {k: round(v, 1) for k, v in json.loads(stats_file.read_text()).items()}
    if publish and out.is_file():
        dest = figures_dir(profile) / name / f"{name}.ipynb"
        record["executed_bytes"] = write_executed_copy(out, dest, record)
    return record


_CARRIAGE_RETURN = re.compile(r"[^\n]*\r(?=[^\n])")   # text a later \r on the same line overwrites


def collapse_progress(text: str) -> str:
    """Keep what a terminal would show of stream text: each line as its last ``\r`` left it.

    tqdm redraws its bar with ``\r``; a finished bar collapses to its final line (with the
    loop's total time and rate), and bars cleared on close (``leave=False``) disappear.
    """
    text = _CARRIAGE_RETURN.sub("", text.replace("\r\n", "\n"))
    lines = [line.rsplit("\r", 1)[-1] for line in text.split("\n")]
    kept = [line for line in lines[:-1] if line.strip()] + [lines[-1]]
    return "\n".join(kept) if kept != [""] else ""


_WIDGET = "application/vnd.jupyter.widget-view+json"


def _encode_smallest(image, scale: float = 1.0) -> tuple[str, str]:
    """(mime type, base64) of ``image`` scaled by ``scale``: PNG or JPEG, whichever is smaller."""
    import base64
    import io

    from PIL import Image

    if scale != 1.0:
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(size, Image.LANCZOS)
    png, jpeg = io.BytesIO(), io.BytesIO()
    image.save(png, format="PNG", optimize=True)
    image.save(jpeg, format="JPEG", quality=85, optimize=True)
    best = min((png, "image/png"), (jpeg, "image/jpeg"), key=lambda pair: pair[0].tell())
    return best[1], base64.b64encode(best[0].getvalue()).decode("ascii")


def fit_inline_images(nb, limit: int = EXECUTED_COPY_LIMIT, max_rounds: int = 40) -> int:
    """Shrink the largest inline images of ``nb`` (in place) until the notebook fits in ``limit`` bytes.

    Each round scales the currently largest image by 0.8 (PNG or JPEG, whichever is smaller). Only
    the copy shown in the notebook changes; the PNG/PDF files beside it keep full resolution.
    Returns the notebook's final size in bytes.
    """
    import base64
    import io

    import nbformat
    from PIL import Image

    size = len(nbformat.writes(nb).encode())
    originals: dict[int, tuple] = {}   # id(data) -> (image, scale): always rescale from the original
    for _ in range(max_rounds):
        if size <= limit:
            break
        images = [o["data"] for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
                  if {"image/png", "image/jpeg"} & set(o.get("data", {}))]
        if not images:
            break
        data = max(images, key=lambda d: len(d.get("image/png") or d.get("image/jpeg")))
        mime = "image/png" if "image/png" in data else "image/jpeg"
        if id(data) not in originals:
            image = Image.open(io.BytesIO(base64.b64decode(data[mime])))
            if image.mode != "RGB":   # flatten transparency onto white, as a page would show it
                rgba = image.convert("RGBA")
                image = Image.new("RGB", rgba.size, "white")
                image.paste(rgba, mask=rgba.getchannel("A"))
            originals[id(data)] = (image, 1.0)
        image, scale = originals[id(data)]
        scale *= 0.8
        originals[id(data)] = (image, scale)
        new_mime, encoded = _encode_smallest(image, scale)
        data.pop(mime)
        data[new_mime] = encoded
        size = len(nbformat.writes(nb).encode())
    return size


def executed_copy(nb, record: dict):
    """A readable executed notebook: progress output collapsed, run provenance on top.

    Stream outputs keep only their final progress lines; widget outputs (which need a live
    kernel) are dropped; papermill's per-cell timestamps are dropped (durations stay); the first
    cell and ``metadata.inversion`` name the profile, the commit and whether the code differed.
    """
    import nbformat

    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        merged = []   # consecutive pieces of one stream become one output, as a terminal shows them
        for output in cell.get("outputs", []):
            previous = merged[-1] if merged else None
            if (output.get("output_type") == "stream" and previous is not None
                    and previous.get("output_type") == "stream" and previous.get("name") == output.get("name")):
                previous["text"] = previous.get("text", "") + output.get("text", "")
            else:
                merged.append(output)
        outputs = []
        for output in merged:
            if output.get("output_type") == "stream":
                output["text"] = collapse_progress(output.get("text", ""))
                if not output["text"].strip():
                    continue
            elif output.get("output_type") in ("display_data", "execute_result"):
                data = output.get("data", {})
                if _WIDGET in data:
                    data.pop(_WIDGET)
                    if set(data) <= {"text/plain"}:
                        continue
            outputs.append(output)
        cell["outputs"] = outputs
        meta = cell.get("metadata", {}).get("papermill")
        if meta:
            for key in ("start_time", "end_time"):
                meta.pop(key, None)
    provenance = {k: record.get(k) for k in ("profile", "commit", "dirty", "status", "seconds")}
    if record.get("overrides"):
        provenance["overrides"] = record["overrides"]
    nb.metadata["inversion"] = provenance
    for key in ("start_time", "end_time"):
        nb.metadata.get("papermill", {}).pop(key, None)
    code = (record.get("commit") or "an unknown commit") + (" with modified code" if record.get("dirty") else "")
    note = (f"*Executed copy, written by `python -m inversion.reproduce --profile {record['profile']}`"
            f" from commit `{code}`: {record.get('status')} in {record.get('seconds', 0):.0f} s."
            + (f" Parameters overridden for this run: `{json.dumps(record['overrides'])}`." if record.get("overrides") else "")
            + f" The source, without outputs, is `notebooks/{record['notebook']}.ipynb`; figures at full"
            " resolution are the PNG/PDF files beside this notebook.*")
    banner = nbformat.v4.new_markdown_cell(note)
    banner.metadata["tags"] = ["executed-copy-note"]
    banner["id"] = "executed-copy-note"   # a fixed id: re-running changes no bytes here
    nb.cells.insert(0, banner)
    return nb


def write_executed_copy(raw: Path, dest: Path, record: dict) -> int:
    """Write :func:`executed_copy` of the papermill output ``raw`` to ``dest``; returns its size.

    Inline images are shrunk until the copy fits :data:`EXECUTED_COPY_LIMIT`
    (:func:`fit_inline_images`); a warning says so if that is not enough.
    """
    import nbformat

    nb = executed_copy(nbformat.read(raw, as_version=4), record)
    fit_inline_images(nb)
    dest.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, dest)
    size = dest.stat().st_size
    if size > EXECUTED_COPY_LIMIT:
        print(f"warning: {dest} is {size / 1e6:.2f} MB, over the {EXECUTED_COPY_LIMIT / 1e6:.1f} MB "
              "an executed copy should take (fewer or smaller inline figures)", file=sys.stderr)
    return size


def render_html(profile: str, out_dir: Path | None = None) -> list[Path]:
    """Render every executed copy of ``profile`` to one self-contained HTML file under ``data/html/``.

    Images are embedded (no files beside the HTML), so a page can be mailed or archived alone.
    """
    from nbconvert import HTMLExporter
    import nbformat

    out_dir = out_dir or data_dir() / "html" / profile
    out_dir.mkdir(parents=True, exist_ok=True)
    exporter = HTMLExporter(embed_images=True)
    written = []
    for name in notebooks():
        executed = figures_dir(profile) / name / f"{name}.ipynb"
        if not executed.is_file():
            continue
        body, _ = exporter.from_notebook_node(nbformat.read(executed, as_version=4))
        path = out_dir / f"{name}.html"
        path.write_text(body, encoding="utf-8")
        written.append(path)
    if not written:
        raise FileNotFoundError(f"no executed notebooks in {figures_dir(profile)}: run the {profile} profile first")
    return written


def write_summary(profile: str, records: dict[str, dict]) -> Path:
    """``figures/<profile>/SUMMARY.md``: one row per notebook, headline metrics and figure links.

    The notebook's name links its executed copy when there is one. After the table comes one
    section per notebook that wrote a targets table (``table_targets.csv``, see ``Report.targets``).
    """
    root = figures_dir(profile)
    root.mkdir(parents=True, exist_ok=True)
    lines = [f"# Study summary: `{profile}` profile", "",
             "Written by `python -m inversion.reproduce`; do not edit by hand. Each notebook's name links "
             "its executed copy (outputs included).", "",
             "| notebook | status | wall time | peak memory | code | headline metrics | figures |",
             "|---|---|---|---|---|---|---|"]
    shown_records = []
    for name in notebooks():
        run_file = root / name / "run.json"
        record = records.get(name) or (json.loads(run_file.read_text()) if run_file.is_file() else None)
        if record is None:
            lines.append(f"| {name} | not run | | | | | |")
            continue
        metrics_file = root / name / "metrics.json"
        headline = json.loads(metrics_file.read_text()).get("headline", {}) if metrics_file.is_file() else {}
        shown = "<br>".join(f"{k}: {_fmt(v)}" for k, v in headline.items())
        figures = " ".join(f"[{p.stem}]({name}/{p.name})" for p in sorted((root / name).glob("*.png")))
        status = record["status"] + (f" ({record['error']})" if record.get("error") else "")
        code = (record.get("commit") or "?") + (" (modified)" if record.get("dirty") else "")
        title = f"[{name}]({name}/{name}.ipynb)" if (root / name / f"{name}.ipynb").is_file() else name
        lines.append(f"| {title} | {status} | {record['seconds']:.0f} s | {peak_memory(record)} | {code} "
                     f"| {shown} | {figures} |")
        shown_records.append(record)
    total = sum(r["seconds"] for r in shown_records)
    lines += ["", f"Total wall time of the notebooks listed: {total / 60:.1f} min.", ""]
    hosts = sorted({describe_host(r["host"]) for r in shown_records if r.get("host")})
    unknown = sum(not r.get("host") for r in shown_records)
    if hosts:   # wall times depend on the machine: say which one(s) they were measured on
        older = f" ({unknown} older row(s) do not record theirs)" if unknown else ""
        lines += [f"Measured on: {'; '.join(hosts)}{older}.", ""]
    for name in notebooks():
        lines += targets_section(root / name / TARGETS_TABLE, name)
    path = root / "SUMMARY.md"
    path.write_text("\n".join(lines))
    return path


def targets_section(table: Path, name: str) -> list[str]:
    """SUMMARY.md lines for a notebook's targets table (written by ``Report.targets``); none without one.

    ``met`` is shown as met / MISSED; cells keep the CSV's text (numbers as the table wrote them).
    """
    if not table.is_file():
        return []
    with table.open(newline="", encoding="utf-8") as f:
        content = list(csv.reader(f))
    if len(content) < 2:
        return []
    header, *rows = content
    met = header.index("met") if "met" in header else None

    def cell(i: int | None, text: str) -> str:
        if i == met:
            text = {"True": "met", "False": "MISSED"}.get(text, text)
        return text.replace("|", "\\|").replace("\n", " ")

    n_met = sum(r[met] == "True" for r in rows) if met is not None else None
    count = f" ({n_met} of {len(rows)} met)" if n_met is not None else ""
    lines = [f"## Targets of [{name}]({name}/{table.name}){count}", "",
             "| " + " | ".join(cell(None, h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(i, t) for i, t in enumerate(r)) + " |" for r in rows]
    return lines + [""]


def peak_memory(record: dict) -> str:
    """The run's peak memory as text: CUDA allocations when a GPU was used, else the largest RSS.

    RSS is the kernel's or, when larger, that of its largest worker process (zoo training).
    """
    memory = record.get("memory") or {}
    parts = []
    if memory.get("cuda_max_allocated_mb"):
        parts.append(f"{memory['cuda_max_allocated_mb'] / 1024:.2f} GiB cuda")
    rss = max(memory.get("max_rss_mb", 0), memory.get("children_max_rss_mb", 0))
    if rss:
        parts.append(f"{rss / 1024:.2f} GiB RSS")
    return ", ".join(parts)


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def run_batch(profile: str, chosen: dict[str, Path], overrides: dict[str, dict] | None = None) -> dict[str, dict]:
    """Run ``chosen`` notebooks in order; writes each ``run.json`` and the profile's SUMMARY.md."""
    overrides = overrides or {}
    for name in chosen:  # fail before anything runs if a profile entry or an override is wrong
        parameters(name, profile, overrides.get(name))
    ensure_kernel()
    log_dir, records = runs_dir(profile), {}
    print(f"Running {len(chosen)} notebook(s) in the {profile!r} profile; logs in {log_dir}", flush=True)
    for i, (name, path) in enumerate(chosen.items(), 1):
        print(f"[{i}/{len(chosen)}] {name} ...", flush=True)
        record = run_notebook(name, path, profile, log_dir, overrides.get(name))
        records[name] = record
        out_dir = figures_dir(profile) / name
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "run.json").write_text(json.dumps(record, indent=2) + "\n")
        memory = peak_memory(record)
        print(f"[{i}/{len(chosen)}] {name}: {record['status']} in {record['seconds']:.0f} s"
              + (f", peak {memory}" if memory else "")
              + (f" -- {record['error']} (log: {log_dir / (name + '.log')})" if record.get("error") else ""),
              flush=True)
    summary = write_summary(profile, records)
    print(f"Summary: {summary}")
    return records


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m inversion.reproduce", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="mini", help=f"one of {', '.join(PROFILES)} (default: mini)")
    parser.add_argument("--only", nargs="+", metavar="NB", help="notebook names or prefixes, e.g. 00 01")
    parser.add_argument("--set", action="append", default=[], metavar="[NB:]KEY=VALUE", dest="overrides",
                        help="override one parameter for this run (value read as YAML; KEY may be dotted, "
                             "e.g. gan.steps=4; without NB: every chosen notebook that has KEY); repeatable")
    parser.add_argument("--html", action="store_true",
                        help="render the profile's executed notebooks to self-contained HTML under "
                             "data/html/<profile>/ and exit (runs nothing)")
    parser.add_argument("--list", action="store_true", help="list the notebooks and exit")
    args = parser.parse_args(argv)
    if args.profile not in PROFILES:
        parser.error(f"unknown profile {args.profile!r}; choose one of {', '.join(PROFILES)}")
    if args.list:
        for name in notebooks():
            print(name)
        return 0
    if args.html:
        for path in render_html(args.profile):
            print(path)
        return 0
    chosen = select(args.only)
    return exit_status(run_batch(args.profile, chosen, parse_overrides(args.overrides, list(chosen))))


def exit_status(records: dict[str, dict]) -> int:
    """0 when every notebook of a batch ran; else 1, after naming the failed ones on stderr."""
    failed = [n for n, r in records.items() if r["status"] != "ok"]
    if failed:
        print(f"FAILED: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
