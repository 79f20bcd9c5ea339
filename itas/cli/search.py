"""``itas search``: Bayesian optimisation of inference-time architectures within a compute budget."""

from __future__ import annotations

from pathlib import Path

import typer

from itas.cli._common import console, note, run_async


def search(
    benchmark: str | None = typer.Option(None, "--benchmark", "-b", help="Benchmark name (itas benchmarks list) or a "
                                         "JSONL file (with --resume: the search's own)."),
    budget: int | None = typer.Option(None, "--budget", "-n", help="Completed trials, the single-call baselines "
                                      "included (with --resume: the search's own unless given, to extend it)."),
    space: str | None = typer.Option(None, "--space", help="Search space YAML, or a shipped one: default, gsm8k, "
                                        "math, code, archon, beyond-archon."),
    pool: Path | None = typer.Option(None, "--pool", help="Pool YAML (default: the embedded default pool)."),
    subset: int = typer.Option(20, "--subset", min=1, help="Questions every trial is scored on (seeded)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the subset and of the sampler."),
    sampler: str = typer.Option("tpe", "--sampler", help="tpe (multivariate TPE) or random."),
    jobs: int | None = typer.Option(None, "--jobs", "-j", min=1, show_default="auto",
                                    help="Trials evaluated at once (auto: enough to fill the servers' batch, at "
                                         "least 2, at most a quarter of the budget)."),
    max_spend: float | None = typer.Option(None, "--max-spend", min=0,
                                              help="Stop cleanly once this much was spent (USD, or tokens)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the projected calls, tokens and cost, and stop."),
    enqueue: list[str] = typer.Option([], "--enqueue", help="Architecture YAML to evaluate first (repeatable)."),
    out: Path | None = typer.Option(None, "--out", help="Results directory (default results/<benchmark>-<time>)."),
    resume: Path | None = typer.Option(None, "--resume", help="Continue the search in this results directory."),
    storage: str | None = typer.Option(None, "--storage", help="Optuna storage URL (default: study.db in the "
                                          "results directory)."),
    cache: Path | None = typer.Option(None, "--cache", help="Call cache file (default: in the results directory)."),
    data_dir: Path | None = typer.Option(None, "--data-dir", help="Local benchmark data (or ITAS_DATA_DIR)."),
    timeout: float = typer.Option(600.0, "--timeout", min=1, help="Seconds before a model call times out."),
    staged: bool = typer.Option(False, "--staged", help="Staged evaluation: score a sampled architecture on a "
                                "quarter, then half of the subset, and stop it once it cannot reach the front "
                                "(a resume keeps it)."),
) -> None:
    """Search a space of architectures for the Pareto front of accuracy, latency and cost."""
    from itas.errors import InputError
    from itas.search.runner import Progress, SearchRequest, run_search

    if out is not None and resume is not None and Path(out) != Path(resume):
        raise InputError("give either --out DIR or --resume DIR, not both")
    if resume is None and (benchmark is None or budget is None):
        missing = " and ".join(o for o, v in (("--benchmark NAME", benchmark), ("--budget N", budget)) if v is None)
        raise InputError(f"give {missing} for a new search, or --resume DIR to continue one")
    request = SearchRequest(benchmark=benchmark, budget=budget, out=out, resume=resume, space=space,
                            pool=str(pool) if pool else None, subset=subset, seed=seed, sampler=sampler, jobs=jobs,
                            max_spend=max_spend, dry_run=dry_run, enqueue=list(enqueue), storage=storage,
                            cache=str(cache) if cache else None, data_dir=str(data_dir) if data_dir else None,
                            timeout=timeout, staged=staged)
    progress = Progress()
    with _Display(progress) as display:
        outcome = run_async(run_search(request, report=display.log, progress=progress))
    if outcome.stopped == "dry-run":
        p = outcome.projection
        console.print(f"dry run: {p['trials']} trials x {p['questions']} questions -> at most {p['calls']:,} calls, "
                      f"{p['tokens']:,} tokens, cost {p['cost']:,.4g} ({p['feasible_share']:.0%} of sampled "
                      f"architectures feasible)")
        return
    _print_front(outcome)


class _Display:
    """A live panel (trials, calls in flight, tokens, spend, the current front) on a terminal; plain lines
    otherwise."""

    def __init__(self, progress):
        self.progress = progress
        self.live = None

    def __enter__(self):
        if console.is_terminal:
            from rich.live import Live

            self.live = Live(self._render(), console=console, refresh_per_second=2, get_renderable=self._render,
                             transient=False)
            self.live.__enter__()
        return self

    def __exit__(self, *exc):
        if self.live is not None:
            self.live.__exit__(*exc)

    def log(self, message: str) -> None:
        if self.live is not None:
            self.live.console.print(f"[dim]{message}[/dim]", highlight=False)
        else:
            note(message)

    def _render(self):
        from rich.console import Group
        from rich.progress_bar import ProgressBar
        from rich.table import Table

        p = self.progress
        s = p.pool_stats
        head = Table.grid(padding=(0, 2))
        head.add_row(ProgressBar(total=max(1, p.budget), completed=p.counted, width=30),
                     f"trials {p.counted}/{p.budget}", f"running {p.running}", f"infeasible {p.infeasible}",
                     f"duplicates {p.duplicates}", f"failed {p.failed}",
                     *([f"stopped early {p.stopped}"] if p.stopped else []))
        if s is not None:
            head.add_row("", f"calls in flight {s.in_flight}", f"sent {s.calls_sent:,}", f"cached {s.cache_hits:,}",
                         f"tokens {s.prompt_tokens + s.completion_tokens:,}", f"spend {p.spent:,.4g} {p.cost_unit}")
        front = Table(title="current front", show_edge=False)
        for col in ("trial", "accuracy", "latency s", "cost/query"):
            front.add_column(col, justify="right")
        for n, acc, lat, cost in sorted(p.front, key=lambda r: -r[1])[:6]:
            front.add_row(str(n), f"{acc:.3f}", f"{lat:.2f}", f"{cost:,.4g}")
        return Group(head, front)


def _print_front(outcome) -> None:
    from rich.table import Table

    table = Table(title=f"Pareto front ({len(outcome.front)} of {outcome.counted} trials) — {outcome.run_dir}")
    for col in ("trial", "accuracy", "latency p50 (s)", "cost/query", "calls/query", "architecture"):
        table.add_column(col, justify="right" if col != "architecture" else "left")
    for t in sorted(outcome.front, key=lambda t: -t.values[0]):
        m = t.user_attrs.get("metrics", {})
        table.add_row(str(t.number), f"{t.values[0]:.3f}", f"{t.values[1]:.2f}", f"{t.values[2]:,.4g}",
                      f"{m.get('calls_per_query', 0):.1f}", t.user_attrs.get("description", ""))
    console.print(table)
    if outcome.stopped != "budget":
        console.print(f"stopped: {outcome.stopped}")
    console.print(f"results: {outcome.run_dir} (itas report {outcome.run_dir})")


def register(app: typer.Typer) -> None:
    app.command("search")(search)
