"""Batch runner: execute the numbered notebooks with papermill in one profile.

    python -m inversion.reproduce --profile mini            # the whole study
    python -m inversion.reproduce --profile smoke --only 00 01
    python -m inversion.reproduce --list

Each notebook gets its profile's parameters from ``notebooks/profiles/<notebook>.yaml``; the
executed copy and its log go to ``data/runs/<profile>/``; results go to
``figures/<profile>/<notebook>/``; ``figures/<profile>/SUMMARY.md`` gathers status, wall time,
headline metrics and figures of every notebook. A failing notebook does not stop the batch; the
exit status is non-zero and names it.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from pathlib import Path

import yaml

from .paths import figures_dir, repo_root, runs_dir

PROFILES = ("smoke", "mini", "paper")
KERNEL = "inversion"


def notebooks() -> dict[str, Path]:
    """The numbered notebooks, by name without suffix (``00_model_zoo``), in order."""
    folder = repo_root() / "notebooks"
    return {p.stem: p for p in sorted(folder.glob("[0-9][0-9]_*.ipynb"))}


def parameters(notebook: str, profile: str) -> dict:
    """The papermill parameters of a notebook in a profile (``profile`` itself included)."""
    path = repo_root() / "notebooks" / "profiles" / f"{notebook}.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"{notebook} has no profile file {path}")
    table = yaml.safe_load(path.read_text()) or {}
    if profile not in table:
        raise KeyError(f"{path} defines profiles {sorted(table)}, not {profile!r}")
    return {"profile": profile, **(table[profile] or {})}


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


def run_notebook(name: str, path: Path, profile: str, log_dir: Path) -> dict:
    """Execute one notebook; returns its run record (status, seconds, error, code version)."""
    import papermill

    log_dir.mkdir(parents=True, exist_ok=True)
    out = log_dir / f"{name}.ipynb"
    start = time.time()
    record = {"notebook": name, "profile": profile, **code_version()}
    try:
        params = parameters(name, profile)
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
    record["seconds"] = round(time.time() - start, 1)
    return record


def write_summary(profile: str, records: dict[str, dict]) -> Path:
    """``figures/<profile>/SUMMARY.md``: one row per notebook, headline metrics and figure links."""
    root = figures_dir(profile)
    root.mkdir(parents=True, exist_ok=True)
    lines = [f"# Study summary: `{profile}` profile", "",
             "Written by `python -m inversion.reproduce`; do not edit by hand.", "",
             "| notebook | status | wall time | code | headline metrics | figures |",
             "|---|---|---|---|---|---|"]
    total = 0.0
    for name in notebooks():
        run_file = root / name / "run.json"
        record = records.get(name) or (json.loads(run_file.read_text()) if run_file.is_file() else None)
        if record is None:
            lines.append(f"| {name} | not run | | | | |")
            continue
        metrics_file = root / name / "metrics.json"
        headline = json.loads(metrics_file.read_text()).get("headline", {}) if metrics_file.is_file() else {}
        shown = "<br>".join(f"{k}: {_fmt(v)}" for k, v in headline.items())
        figures = " ".join(f"[{p.stem}]({name}/{p.name})" for p in sorted((root / name).glob("*.png")))
        status = record["status"] + (f" ({record['error']})" if record.get("error") else "")
        code = (record.get("commit") or "?") + (" (modified)" if record.get("dirty") else "")
        lines.append(f"| {name} | {status} | {record['seconds']:.0f} s | {code} | {shown} | {figures} |")
        total += record["seconds"]
    lines += ["", f"Total wall time of the notebooks listed: {total / 60:.1f} min.", ""]
    path = root / "SUMMARY.md"
    path.write_text("\n".join(lines))
    return path


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m inversion.reproduce", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="mini", help=f"one of {', '.join(PROFILES)} (default: mini)")
    parser.add_argument("--only", nargs="+", metavar="NB", help="notebook names or prefixes, e.g. 00 01")
    parser.add_argument("--list", action="store_true", help="list the notebooks and exit")
    args = parser.parse_args(argv)
    if args.profile not in PROFILES:
        parser.error(f"unknown profile {args.profile!r}; choose one of {', '.join(PROFILES)}")
    if args.list:
        for name in notebooks():
            print(name)
        return 0
    chosen = select(args.only)
    for name in chosen:  # fail before anything runs if a profile entry is missing
        parameters(name, args.profile)
    ensure_kernel()
    log_dir, records = runs_dir(args.profile), {}
    print(f"Running {len(chosen)} notebook(s) in the {args.profile!r} profile; logs in {log_dir}", flush=True)
    for i, (name, path) in enumerate(chosen.items(), 1):
        print(f"[{i}/{len(chosen)}] {name} ...", flush=True)
        record = run_notebook(name, path, args.profile, log_dir)
        records[name] = record
        out_dir = figures_dir(args.profile) / name
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "run.json").write_text(json.dumps(record, indent=2) + "\n")
        print(f"[{i}/{len(chosen)}] {name}: {record['status']} in {record['seconds']:.0f} s"
              + (f" -- {record['error']} (log: {log_dir / (name + '.log')})" if record.get("error") else ""),
              flush=True)
    summary = write_summary(args.profile, records)
    failed = [n for n, r in records.items() if r["status"] != "ok"]
    print(f"Summary: {summary}")
    if failed:
        print(f"FAILED: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
