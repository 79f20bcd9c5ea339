"""The catalogue of bad input: each case runs the real command line (``python -m itas ...``) and must end with
exit code 2, exactly one line on stderr that names the offending key or value and says what would be valid, no
traceback, no call to the model server, and an existing results directory unchanged (byte for byte).

Kinds (at least two cases each): malformed YAML, unknown keys, wrong types, impossible constraints, an empty
space, a missing model, a missing endpoint, an unreachable server, unknown benchmarks and missing data, bad
numbers on the command line (budget, subset, jobs, timeout), results directories that are not this search's,
read-only results directories, bad --pool, --enqueue, --sampler, --arch (itas run) and --predictions files.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.fake_openai import FakeOpenAI
from tests.reliability.helpers import REPO, dir_hash, itas_env, pool_file, write_yaml

GOOD_SPACE = {"stages": [{"generate": {"models": ["smollm2", "gemma3"], "count": [1, 2], "samples": [1, 2]}},
                         {"vote": {"optional": True}}]}
GOOD_ARCH = {"name": "two", "layers": [[{"type": "generator", "model": "smollm2", "samples": 2}]]}


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Ctx:
    root: Path
    data_dir: Path
    server: FakeOpenAI
    existing: Path  # a results directory of a finished search: never changed by any case
    pool: Path
    space: Path
    env: dict

    def file(self, name: str, text: str) -> Path:
        path = self.root / "inputs" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    def made(self, name: str) -> Path:
        path = self.root / name
        path.mkdir(exist_ok=True)
        return path

    def yaml(self, name: str, data) -> Path:
        return write_yaml(self.root / "inputs" / name, data)

    def search(self, *extra, **opts) -> list:
        """``itas search`` with good defaults; keyword options replace them (``out=None`` drops --out)."""
        args = {"benchmark": "gsm8k", "budget": "3", "subset": "2", "space": self.space, "pool": self.pool,
                "data_dir": self.data_dir, "out": self.root / "new-run"}
        args.update(opts)
        argv = ["search"]
        for k, v in args.items():
            if v is not None:
                argv += [f"--{k.replace('_', '-')}", str(v)]
        return argv + [str(x) for x in extra]

    def run(self, arch, *extra, pool=None) -> list:
        return ["run", "--arch", str(arch), "--benchmark", "gsm8k", "--limit", "2", "--pool", str(pool or self.pool),
                "--data-dir", str(self.data_dir), "--out", str(self.root / "new-run-out"), *map(str, extra)]


@pytest.fixture(scope="module")
def ctx(tmp_path_factory, data_dir):
    root = tmp_path_factory.mktemp("bad-input")
    server = FakeOpenAI().start()
    try:
        env = itas_env(root / "state")
        pool = pool_file(root / "pool.yaml", {"smollm2": server.url, "gemma3": server.url})
        space = write_yaml(root / "space.yaml", GOOD_SPACE)
        existing = root / "existing"
        out = subprocess.run([sys.executable, "-m", "itas", "search", "--benchmark", "gsm8k", "--budget", "2",
                              "--subset", "2", "--space", str(space), "--pool", str(pool), "--out", str(existing),
                              "--data-dir", str(data_dir)], capture_output=True, text=True, env=env, cwd=REPO,
                             timeout=300)
        assert out.returncode == 0, out.stderr
        arch = write_yaml(root / "arch.yaml", GOOD_ARCH)
        out = subprocess.run([sys.executable, "-m", "itas", "run", "--arch", str(arch), "--benchmark", "gsm8k",
                              "--limit", "2", "--pool", str(pool), "--out", str(root / "a-run"), "--data-dir",
                              str(data_dir)], capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
        assert out.returncode == 0, out.stderr
        yield Ctx(root=root, data_dir=data_dir, server=server, existing=existing, pool=pool, space=space, env=env)
    finally:
        server.stop()


# ---- read-only directories ------------------------------------------------------------------------------------
def read_only(path: Path, argv: list[str]) -> list[str]:
    """``argv`` run with ``path`` read-only: a read-only bind mount in a mount namespace of its own when root
    (root ignores permission bits), permission bits otherwise."""
    if os.geteuid() == 0:
        return ["unshare", "--mount", "sh", "-c", 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && '
                'exec "$@"', str(path), *argv]
    path.chmod(0o555)
    return argv


@pytest.fixture(scope="module")
def can_make_read_only(tmp_path_factory):
    probe = tmp_path_factory.mktemp("ro-probe")
    if os.geteuid() == 0:
        r = subprocess.run(read_only(probe, ["touch", str(probe / "x")]), capture_output=True, text=True)
        if "Read-only file system" not in r.stderr:
            pytest.skip(f"cannot make a read-only bind mount here: {r.stderr.strip()[:200]}")


# ---- the catalogue ---------------------------------------------------------------------------------------------
# id -> (argv builder, fragments that the one error line must contain: the offending value, and what is valid)
CASES = {
    # malformed YAML
    "yaml-pool": (lambda c: c.search(pool=c.file("pool-bad.yaml", "models: {smollm2: [")),
                  ["pool-bad.yaml", "malformed YAML", "line"]),
    "yaml-space": (lambda c: c.search(space=c.file("space-bad.yaml", "stages:\n  - generate: {models: [smollm2\n")),
                   ["space-bad.yaml", "malformed YAML", "line"]),
    "yaml-arch": (lambda c: c.run(c.file("arch-bad.yaml", "layers:\n  - [{type: generator, model: smollm2\n")),
                  ["arch-bad.yaml", "malformed YAML", "line"]),
    "yaml-tabs": (lambda c: c.search(pool=c.file("pool-tabs.yaml", "models:\n\tsmollm2: {model: x}\n")),
                  ["pool-tabs.yaml", "malformed YAML", "line 2"]),
    # unknown keys
    "key-pool": (lambda c: c.search(pool=c.yaml("pool-key.yaml", {"models": {"smollm2": {
        "model": "fake-a", "endpoints": [c.server.url], "max_concurrancy": 4}}})),
        ["models.smollm2.max_concurrancy", "unknown key", "did you mean 'max_concurrency'"]),
    "key-space-stage": (lambda c: c.search(space=c.yaml("space-key.yaml", {"stages": [
        {"generate": {"modles": ["smollm2"]}}]})), ["stages[0].generate.modles", "did you mean 'models'"]),
    "key-space-top": (lambda c: c.search(space=c.yaml("space-top.yaml", {**GOOD_SPACE, "constraint": {
        "max_calls_per_query": 4}})), ["constraint", "did you mean 'constraints'"]),
    "key-arch-type": (lambda c: c.run(c.yaml("arch-type.yaml", {"layers": [[{"type": "fuzer", "model": "smollm2"}]]})),
                      ["fuzer", "did you mean", "fuser"]),
    # wrong types
    "type-pool-int": (lambda c: c.search(pool=c.yaml("pool-type.yaml", {"models": {"smollm2": {
        "model": "fake-a", "endpoints": [c.server.url], "max_concurrency": "many"}}})),
        ["models.smollm2.max_concurrency", "expected an integer", "'many'"]),
    "type-space-samples": (lambda c: c.search(space=c.yaml("space-type.yaml", {"stages": [
        {"generate": {"models": ["smollm2"], "samples": ["three"]}}]})),
        ["stages[0].generate.samples", "expected an integer", "'three'"]),
    "type-space-stages": (lambda c: c.search(space=c.yaml("space-map.yaml", {"stages": {"generate": {
        "models": ["smollm2"]}}})), ["stages", "expected a list", "a mapping"]),
    "type-arch-samples": (lambda c: c.run(c.yaml("arch-samples.yaml", {"layers": [[
        {"type": "generator", "model": "smollm2", "samples": "two"}]]})), ["samples", "expected an integer", "'two'"]),
    # impossible constraints
    "constraint-zero-calls": (lambda c: c.search(space=c.yaml("space-c0.yaml", {
        **GOOD_SPACE, "constraints": {"max_calls_per_query": 0}})),
        ["constraints.max_calls_per_query", "0 is too small", "at least 1"]),
    "constraint-negative-tokens": (lambda c: c.search(space=c.yaml("space-cneg.yaml", {
        **GOOD_SPACE, "constraints": {"max_tokens_per_query": -100}})),
        ["constraints.max_tokens_per_query", "-100", "at least 1"]),
    "constraint-count-over-models": (lambda c: c.search(space=c.yaml("space-count.yaml", {"stages": [
        {"generate": {"models": ["smollm2", "gemma3"], "count": [3]}}]})),
        ["stages[0].generate.count", "3 is out of range", "between 1 and 2"]),
    # an empty space
    "empty-stages": (lambda c: c.search(space=c.yaml("space-empty.yaml", {"stages": []})),
                     ["stages", "at least 1 item"]),
    "empty-file": (lambda c: c.search(space=c.file("space-nothing.yaml", "# nothing yet\n")),
                   ["space-nothing.yaml", "expected a mapping, got nothing"]),
    "empty-models": (lambda c: c.search(space=c.yaml("space-nomodels.yaml", {"stages": [{"generate": {"models": []}}]})),
                     ["stages[0].generate.models", "at least 1 item"]),
    # a model that is not in the pool
    "model-space": (lambda c: c.search(space=c.yaml("space-llama.yaml", {"stages": [
        {"generate": {"models": ["smollm2", "llama"]}}]})), ["'llama' is not in the pool", "gemma3, smollm2"]),
    "model-enqueue": (lambda c: c.search("--enqueue", c.yaml("enq-llama.yaml", {"layers": [[
        {"type": "generator", "model": "llama"}]]})), ["llama", "gemma3, smollm2"]),
    "model-arch": (lambda c: c.run(c.yaml("arch-smollm3.yaml", {"layers": [[
        {"type": "generator", "model": "smollm3"}]]})), ["smollm3", "did you mean 'smollm2'"]),
    # a model with no endpoint
    "endpoint-none": (lambda c: c.search(pool=c.yaml("pool-noep.yaml", {"models": {"smollm2": {"model": "a"},
                                                                                    "gemma3": {"model": "b"}}})),
                      ["models.smollm2", "needs 'endpoints'", "or 'serve'"]),
    "endpoint-empty-list": (lambda c: c.search(pool=c.yaml("pool-eplist.yaml", {"models": {
        "smollm2": {"model": "a", "endpoints": []}}})), ["models.smollm2.endpoints", "at least 1 item"]),
    "endpoint-not-a-url": (lambda c: c.search(pool=c.yaml("pool-url.yaml", {"models": {
        "smollm2": {"model": "a", "endpoints": ["localhost:8000"]}}})),
        ["models.smollm2.endpoints[0].url", "'localhost:8000'", "http://127.0.0.1:8000/v1"]),
    # an unreachable server
    "unreachable-search": (lambda c: c.search(pool=pool_file(c.root / "inputs" / "pool-closed.yaml", {
        "smollm2": f"http://127.0.0.1:{closed_port()}/v1", "gemma3": c.server.url})),
        ["model 'smollm2'", "no server answers at http://127.0.0.1:", "models.smollm2.endpoints"]),
    "unreachable-second-model": (lambda c: c.search(pool=pool_file(c.root / "inputs" / "pool-closed2.yaml", {
        "smollm2": c.server.url, "gemma3": f"http://127.0.0.1:{closed_port()}/v1"})),
        ["model 'gemma3'", "no server answers", "models.gemma3.endpoints"]),
    "unreachable-run": (lambda c: c.run(c.yaml("arch-good.yaml", GOOD_ARCH), pool=pool_file(
        c.root / "inputs" / "pool-closed3.yaml", {"smollm2": f"http://127.0.0.1:{closed_port()}/v1"})),
        ["model 'smollm2'", "no server answers", "models.smollm2.endpoints"]),
    # unknown benchmark, missing data
    "benchmark-unknown": (lambda c: c.search(benchmark="gsm9k"), ["unknown benchmark 'gsm9k'", "did you mean 'gsm8k'"]),
    "benchmark-missing-file": (lambda c: c.search(benchmark=c.root / "inputs" / "nowhere.jsonl"),
                               ["nowhere.jsonl", "does not exist"]),
    "benchmark-bad-jsonl": (lambda c: c.search(benchmark=c.file("qs.jsonl", '{"question": "1+1?", "answer": "2"}\n'
                                                                           '{"question": "2+2?", "answer": \n')),
                            ["qs.jsonl:2", "malformed JSON"]),
    # numbers on the command line
    "budget-text": (lambda c: c.search(budget="many"), ["'--budget'", "valid integer"]),
    "budget-fraction": (lambda c: c.search(budget="2.5"), ["'--budget'", "valid integer"]),
    "budget-zero": (lambda c: c.search(budget="0"), ["--budget 0", "at least 1"]),
    "budget-below-baselines": (lambda c: c.search(budget="1"), ["--budget 1", "2 single-call baselines",
                                                                 "--budget 2 or more"]),
    "cli-subset-zero": (lambda c: c.search(subset="0"), ["'--subset'", "greater than or equal to 1"]),
    "cli-jobs-negative": (lambda c: c.search(jobs="-2"), ["'--jobs'", "greater than or equal to 1"]),
    "cli-timeout-zero": (lambda c: c.search(timeout="0"), ["'--timeout'", "greater than or equal to 1"]),
    "cli-option-misspelt": (lambda c: c.search("--bugdet", "3"), ["No such option: --bugdet", "--budget"]),
    # results directories that are not this search's
    "dir-another-search": (lambda c: c.search(out=c.existing, subset="3"),
                           ["holds another search (different subset)", "--resume"]),
    "dir-resume-not-a-run": (lambda c: c.search(out=None, resume=c.root / "inputs"),
                         ["inputs: not a search results directory", "config.json"]),
    "dir-resume-an-itas-run-output": (lambda c: c.search(out=None, resume=c.root / "a-run"),
                                      ["a-run: not a search results directory"]),
    "dir-out-not-empty": (lambda c: c.search(out=c.file("notes.txt", "mine").parent),
                          ["exists and is not an itas search directory", "empty or new --out"]),
    "dir-out-is-a-file": (lambda c: c.search(out=c.pool), ["pool.yaml is a file, not a directory"]),
    "cli-out-and-resume-differ": (lambda c: c.search(out=c.root / "x", resume=c.existing),
                              ["either --out DIR or --resume DIR"]),
    "cli-new-search-without-budget": (lambda c: c.search(budget=None),
                                      ["give --budget N for a new search, or --resume DIR"]),
    "cli-new-search-without-benchmark": (lambda c: c.search(benchmark=None, budget=None),
                                         ["give --benchmark NAME and --budget N for a new search"]),
    "dir-resume-another-benchmark": (lambda c: c.search(out=None, resume=c.existing, benchmark="math"),
                                     ["--benchmark math:", "is a search on gsm8k", "leave --benchmark out"]),
    # read-only results directories
    "readonly-resume": (lambda c: read_only(c.existing, [
        sys.executable, "-m", "itas", *c.search(out=None, resume=c.existing, budget="3")]),
        ["existing: the results directory is not writable", "--resume the copy"]),
    "readonly-parent": (lambda c: read_only(c.made("ro-parent"), [
        sys.executable, "-m", "itas", *c.search(out=c.root / "ro-parent" / "sub" / "run")]),
        ["ro-parent, where it would be made, is not writable"]),
    # bad --pool, --enqueue, --sampler, --arch, --model-map, --cache, --predictions
    "file-pool-missing": (lambda c: c.search(pool=c.root / "inputs" / "no-pool.yaml"), ["no-pool.yaml", "file not found"]),
    "file-pool-directory": (lambda c: c.search(pool=c.root), ["is a directory, expected a YAML file"]),
    "file-enqueue-missing": (lambda c: c.search("--enqueue", c.root / "inputs" / "no-arch.yaml"),
                        ["no-arch.yaml", "file not found"]),
    "file-enqueue-not-an-arch": (lambda c: c.search("--enqueue", c.yaml("enq-list.yaml", [1, 2])),
                            ["enq-list.yaml", "expected a mapping", "a list"]),
    "sampler-unknown": (lambda c: c.search(sampler="cmaes"), ["--sampler 'cmaes'", "allowed: tpe, random"]),
    "sampler-empty": (lambda c: c.search(sampler=""), ["--sampler ''", "allowed: tpe, random"]),
    "arch-missing": (lambda c: c.run(c.root / "inputs" / "no-such-arch.yaml"), ["no-such-arch"]),
    "arch-no-layers": (lambda c: c.run(c.yaml("arch-nolayers.yaml", {"name": "x", "layers": []})),
                       ["layers", "at least 1 item"]),
    "arch-model-map-malformed": (lambda c: c.run(c.yaml("arch-good.yaml", GOOD_ARCH), "--model-map", "smollm2"),
                            ["--model-map 'smollm2'", "NAME=POOL_MODEL"]),
    "file-cache-not-a-database": (lambda c: c.search(cache=c.file("cache.sqlite", "not sqlite at all\n" * 100)),
                             ["cache.sqlite", "call cache", "move it away"]),
    "predictions-missing": (lambda c: ["benchmarks", "score", "gsm8k", "--predictions", str(c.root / "p.jsonl"),
                                       "--data-dir", str(c.data_dir)], ["p.jsonl", "not found"]),
    "predictions-malformed": (lambda c: ["benchmarks", "score", "gsm8k", "--predictions",
                                         str(c.file("p1.jsonl", '{"id": "x", "output": "1"\n')),
                                         "--data-dir", str(c.data_dir)], ["p1.jsonl:1", "malformed JSON"]),
    "predictions-missing-key": (lambda c: ["benchmarks", "score", "gsm8k", "--predictions",
                                           str(c.file("p2.jsonl", '{"id": "x"}\n')), "--data-dir", str(c.data_dir)],
                                ["p2.jsonl:1", "missing key 'output'"]),
    "predictions-unknown-id": (lambda c: ["benchmarks", "score", "gsm8k", "--predictions",
                                          str(c.file("p3.jsonl", '{"id": "nope", "output": "1"}\n')),
                                          "--data-dir", str(c.data_dir)], ["p3.jsonl:1", "no question 'nope'"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_clear_line_and_exit_2(ctx, case, request):
    build, fragments = CASES[case]
    if case.startswith("readonly"):
        request.getfixturevalue("can_make_read_only")
    argv = build(ctx)
    if argv[0] != "unshare" and argv[0] != sys.executable:
        argv = [sys.executable, "-m", "itas", *argv]
    digest = dir_hash(ctx.existing)
    calls = ctx.server.count
    made = [ctx.root / "new-run", ctx.root / "new-run-out"]  # where a case that got too far would write
    try:
        out = subprocess.run(argv, capture_output=True, text=True, env=ctx.env, cwd=REPO, timeout=120)
        left = [p.name for p in made if p.exists()]
    finally:
        for p in (ctx.existing, ctx.root / "ro-parent"):
            if p.exists():
                p.chmod(0o755)
        for p in made:
            shutil.rmtree(p, ignore_errors=True)
    lines = [x for x in out.stderr.splitlines() if x.strip()]
    assert out.returncode == 2, out.stderr + out.stdout
    assert "Traceback" not in out.stderr
    assert len(lines) == 1, out.stderr
    line = lines[0]
    assert line.startswith("error: ")
    for fragment in fragments:
        assert fragment in line, f"{fragment!r} not in: {line}"
    assert dir_hash(ctx.existing) == digest
    assert ctx.server.count == calls  # no call was made
    assert left == []  # nothing was made for a start that failed


def test_the_catalogue_covers_every_kind_twice():
    kinds = {}
    for case in CASES:
        kinds.setdefault(case.split("-")[0], []).append(case)
    assert len(CASES) >= 30
    assert all(len(v) >= 2 for v in kinds.values()), {k: v for k, v in kinds.items() if len(v) < 2}


def test_existing_directory_still_resumes_after_the_catalogue(ctx):
    """The results directory every case was pointed at is intact: it resumes and finishes a larger budget."""
    out = subprocess.run([sys.executable, "-m", "itas", "search", "--benchmark", "gsm8k", "--budget", "3",
                          "--resume", str(ctx.existing), "--data-dir", str(ctx.data_dir)], capture_output=True,
                         text=True, env=ctx.env, cwd=REPO, timeout=300)
    assert out.returncode == 0, out.stderr
    shutil.rmtree(ctx.root / "inputs", ignore_errors=True)
    assert yaml.safe_load((ctx.existing / "config.json").read_text())["budget"] == 3
