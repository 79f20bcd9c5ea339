"""``make_report``: what ``itas report`` calls. Reads the runs, validates on new questions when asked, computes
the report, writes the plots, the HTML page and the picked architecture.

Where files go: for one run, ``--out DIR`` or ``<run>/report/``; for several runs with ``--out DIR``, each run's
PNGs in ``DIR/<run>/`` and one ``DIR/report.html`` (all runs, and their fronts compared in
``DIR/comparison.png``); for several runs without ``--out``, each run's own ``<run>/report/``. The picked
architecture is ``pick.yaml`` beside the run's PNGs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from itas.errors import InputError
from itas.report.pick import parse_constraint
from itas.report.source import RunData, load_run, load_study
from itas.report.stats import REPLICATES
from itas.report.summary import RunReport, summarise

FORMATS = ("table", "json", "csv", "markdown")


@dataclass(frozen=True)
class ReportRequest:
    runs: Sequence[str | Path] = ()
    storage: str | None = None
    study: str | None = None
    out: Path | None = None
    picks: Sequence[str] = ()
    validate: int | None = None
    validate_seed: int | None = None
    data_dir: str | Path | None = None
    plots: bool = True
    replicates: int = REPLICATES
    seed: int = 0


@dataclass(frozen=True)
class Report:
    runs: tuple[RunReport, ...]
    files: tuple[Path, ...] = ()
    picked_files: dict = field(default_factory=dict)  # run label -> pick.yaml path


def load_sources(request: ReportRequest) -> list[RunData]:
    runs = [load_run(p) for p in request.runs]
    if request.storage or request.study:
        if not (request.storage and request.study):
            raise InputError("--storage URL and --study NAME go together; give both")
        runs.append(load_study(request.storage, request.study))
    if not runs:
        raise InputError("give one or more results directories (itas report results/<run>), or --storage URL "
                         "--study NAME")
    return _unique_labels(runs)


def _unique_labels(runs: list[RunData]) -> list[RunData]:
    seen: dict[str, int] = {}
    out = []
    for r in runs:
        n = seen.get(r.label, 0)
        seen[r.label] = n + 1
        out.append(r if n == 0 else dataclasses.replace(r, label=f"{r.label}-{n + 1}"))
    return out


async def make_report(request: ReportRequest, *, report: Callable[[str], None] | None = None) -> Report:
    report = report or (lambda _: None)
    constraints = [parse_constraint(p) for p in request.picks]  # bad input fails before anything runs
    if request.validate is not None and request.validate < 1:
        raise InputError(f"--validate {request.validate}: give the number of new questions, at least 1")
    runs = load_sources(request)
    for run in runs:
        if not run.evaluated():
            raise InputError(f"{run.label}: no evaluated trial yet; nothing to report")
    reports = []
    for run in runs:
        validation = None
        if request.validate:
            from itas.report.validate import validate

            trials = _front_and_baselines(run)
            validation = await validate(run, trials, request.validate, seed=request.validate_seed,
                                        data_dir=request.data_dir, report=report)
        reports.append(summarise(run, constraints=constraints, validation=validation,
                                 replicates=request.replicates, seed=request.seed))
    return write_outputs(reports, request, report)


def _front_and_baselines(run: RunData) -> list:
    out, seen = [], set()
    for t in run.front() + run.baselines():
        if t.number not in seen:
            seen.add(t.number)
            out.append(t)
    return out


def out_dirs(reports: Sequence[RunReport], out: Path | None) -> tuple[list[Path | None], Path | None]:
    """Each run's folder for its PNGs and pick, and the folder of the one HTML page (None: one per run)."""
    if len(reports) == 1:
        rr = reports[0]
        folder = out or (rr.run.run_dir / "report" if rr.run.run_dir else None)
        return [folder], folder
    if out is not None:
        return [out / rr.run.label for rr in reports], out
    return [rr.run.run_dir / "report" if rr.run.run_dir else None for rr in reports], None


def write_outputs(reports: list[RunReport], request: ReportRequest, report: Callable[[str], None]) -> Report:
    from itas.report import plots
    from itas.report.render import to_data

    folders, page_dir = out_dirs(reports, request.out)
    all_files: list[Path] = []
    picked: dict[str, Path] = {}
    done = []
    for rr, folder in zip(reports, folders, strict=True):
        files: list[Path] = []
        if folder is None:
            report(f"{rr.run.label}: no results directory, so no plots or pick file; give --out DIR")
        else:
            if request.plots:
                files += plots.write_pngs(rr, folder)
            if rr.picked is not None:
                path = write_pick(rr, folder / "pick.yaml")
                picked[rr.run.label] = path
                files.append(path)
        done.append(dataclasses.replace(rr, files=tuple(str(f) for f in files)))
        all_files += files
    if request.plots:
        if page_dir is not None:
            if len(done) > 1:
                all_files.append(plots.write_comparison_png(done, page_dir / "comparison.png"))
            page = plots.write_html(done, page_dir / "report.html", to_data(done))
            all_files.append(page)
            done = [dataclasses.replace(rr, files=rr.files + (str(page),)) for rr in done]
        else:
            for i, (rr, folder) in enumerate(zip(done, folders, strict=True)):
                if folder is not None:
                    page = plots.write_html([rr], folder / "report.html", to_data([rr]))
                    all_files.append(page)
                    done[i] = dataclasses.replace(rr, files=rr.files + (str(page),))
            if len(done) > 1:
                report("several runs without --out: each run's plots are in its own folder; give --out DIR for "
                       "one page comparing them")
    return Report(runs=tuple(done), files=tuple(all_files), picked_files=picked)


def picked_architecture(rr: RunReport):
    """The picked trial's architecture, named and described after where it came from."""
    from itas.arch.spec import parse_architecture

    t = rr.picked.trial
    if t.architecture is None:
        raise InputError(f"{rr.run.label}: trial {t.number} has no recorded architecture")
    arch = parse_architecture(t.architecture, f"{rr.run.label} trial {t.number}", default_name=f"trial-{t.number}")
    acc = rr.picked.search.accuracy
    what = ", ".join(str(c) for c in rr.constraints)
    description = (f"picked by itas report from {rr.run.label} trial {t.number} ({what}): accuracy {t.accuracy:.3f} "
                   f"[{acc.lo:.3f}, {acc.hi:.3f}] on {len(t.questions)} {rr.run.benchmark} questions, latency p50 "
                   f"{t.latency_p50:.2f} s, cost {t.cost:.4g} {rr.run.cost_unit}/query, {t.calls:.1f} calls/query")
    return dataclasses.replace(arch, name=f"{rr.run.label}-trial-{t.number}", description=description)


def write_pick(rr: RunReport, path: Path) -> Path:
    from itas.fsutil import atomic_write

    arch = picked_architecture(rr)
    where = rr.run.run_dir or rr.run.storage
    header = (f"# {arch.description}\n# from {where}, constraints: {' '.join(str(c) for c in rr.constraints)}\n"
              f"# run it: itas run --arch {path} --benchmark {rr.run.benchmark}\n")
    return atomic_write(path, header + arch.to_yaml(full=True))
