"""Managed serving: itas starts, adopts and stops the model servers of a pool that it manages.

A server runs under ``itas.pool.watchdog`` in its own session, so its whole process group can be stopped and
so that it stops itself when its owner dies and nobody adopts it. Every server is recorded in the state file
(``ITAS_HOME/state/servers.json``). Readiness is checked through the API (``GET /v1/models`` lists the served
model id), not by reading logs. Once ready, a short calibration on the idle server fits the model's latency
model, which is stored with the record.

**LoRA.** A server gets LoRA (``server_command``: ``--enable-lora --max-lora-rank R --max-loras N`` and
``VLLM_ALLOW_RUNTIME_LORA_UPDATING=True``, from the model's ``serve.lora``) only when the run needs adapters of
that model (``lora``: the model names, see ``itas.ttt.lora``), since LoRA slows base generation by 30-40% on the
CPU. The record says whether LoRA is on (``"lora": {"max_rank", "max_loras"}`` or null). A run that needs LoRA
and finds its model's server running without it restarts the server with LoRA when the server is its own to
restart (started by this command, or left by a process that died; for ``itas pool up --lora``, a server of an
earlier ``itas pool up``); otherwise it stops with a one-line error saying what to do. A server with LoRA on is
used as it is by runs that do not need it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from itas.errors import ServingError
from itas.paths import models_dir, serving_python, state_dir
from itas.pool import state
from itas.pool.config import LORA_ENV, ModelSpec, PoolConfig
from itas.pool.latency import LatencyModel, fit

Report = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def expand(value: str, port: int) -> str:
    out = (value.replace("{python}", str(serving_python()))
           .replace("{models_dir}", str(models_dir()))
           .replace("{port}", str(port)))
    return out.replace("{cpu_dtype}", cpu_dtype()) if "{cpu_dtype}" in out else out


def cpu_dtype(cpuinfo: str | None = None, machine: str | None = None) -> str:
    """What a vLLM CPU server should compute in on this machine (``{cpu_dtype}`` in ``serve.args``): bfloat16
    where the CPU has AVX-512 (oneDNN's bfloat16 matrix products), float32 on an x86 CPU without it, where vLLM's
    CPU build cannot make oneDNN's bfloat16 matmul ("Failed to create oneDNN linear, fallback to torch linear")
    and generates 3.6-5x slower (measured on a 2-core AVX2 EPYC, 16 requests at once: SmolLM2 42 against 166 tok/s,
    Gemma 30 against 106); ``auto`` (the model's own) elsewhere. ``ITAS_CPU_DTYPE`` overrides it."""
    if os.environ.get("ITAS_CPU_DTYPE"):
        return os.environ["ITAS_CPU_DTYPE"]
    import platform

    if (machine or platform.machine()) not in ("x86_64", "AMD64", "i686"):
        return "auto"
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return "auto"
    flags = next((line.split(":", 1)[1].split() for line in cpuinfo.splitlines() if line.startswith("flags")), None)
    if flags is None:
        return "auto"
    return "bfloat16" if {"avx512f", "avx512bw"} <= set(flags) else "float32"


# ---- reaping ---------------------------------------------------------------------------------------------
def stop_record(rec: dict, timeout: float = 20.0) -> None:
    """Stop a recorded server's process group (watchdog and server) and wait for it to go."""
    pid = rec.get("pid")
    if not pid or not state.alive(pid, rec.get("pid_start")):
        return
    try:
        os.killpg(pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return
    deadline = time.time() + timeout
    while time.time() < deadline and _group_alive(pid):
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    deadline = time.time() + 5
    while time.time() < deadline and _group_alive(pid):
        time.sleep(0.1)


def _group_alive(pgid: int) -> bool:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pgid, os.WNOHANG)  # reap the watchdog when it is our own child
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a group of zombies only: treat as gone once the leader is reaped or a zombie
    return state.alive(pgid) or _any_member_alive(pgid)


def _any_member_alive(pgid: int) -> bool:
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        if len(fields) > 2 and fields[2] == str(pgid) and fields[0] != "Z":
            return True
    return False


def reap_orphans(keep: Callable[[dict], bool] | None = None, report: Report = _quiet) -> list[dict]:
    """Forget records of servers that are gone, and stop servers whose owner died (unless ``keep`` says the
    caller will adopt them). Returns the records stopped."""
    stopped = []
    with state.locked() as records:
        kept = []
        for rec in records:
            if not state.alive(rec.get("pid"), rec.get("pid_start")):
                continue
            if not state.owner_alive(rec) and not state.hand_over(rec) and not (keep and keep(rec)):
                # its owner died, no other itas process shares it (else that one now owns it), none adopts it
                report(f"stopping orphaned server {rec['model']} on port {rec['port']} (owner pid "
                       f"{rec['owner']['pid']} died)")
                stop_record(rec)
                stopped.append(rec)
                continue
            kept.append(rec)
        records[:] = kept
    return stopped


# ---- starting ----------------------------------------------------------------------------------------------
@dataclass
class RunningPool:
    """Managed servers in use by this process: the endpoints to call, latency models, and what to stop."""

    config: PoolConfig
    latency: dict[str, LatencyModel]
    started: list[dict]  # records this process started or adopted, and owns
    reused: list[dict]  # detached servers (itas pool up) used but not owned
    shared: list[dict] = field(default_factory=list)  # servers another running itas process owns, used too

    def stop(self, report: Report = _quiet) -> None:
        """Stop the servers this process owns, unless another itas process still uses one: that one becomes its
        owner. Servers shared with another owner are left to it."""
        me = state.me()
        mine = {r["id"] for r in self.started} | {r["id"] for r in self.shared}
        to_stop = {r["id"]: r for r in self.started}
        with state.locked() as records:
            for rec in records:
                if rec["id"] not in mine:
                    continue
                rec["users"] = [u for u in rec.get("users") or [] if u != me]
                if rec.get("owner") == me and state.hand_over(rec):
                    report(f"leaving {rec['model']} (port {rec['port']}) running: itas process "
                           f"{rec['owner']['pid']} still uses it")
                    to_stop.pop(rec["id"], None)
                elif rec.get("owner") == me:
                    to_stop[rec["id"]] = rec  # handed over to this process by an owner that left before it
                else:
                    to_stop.pop(rec["id"], None)
            records[:] = [r for r in records if r["id"] not in to_stop]
        for rec in to_stop.values():
            report(f"stopping {rec['model']} (port {rec['port']})")
            stop_record(rec)
        self.started, self.shared = [], []


def start_pool(config: PoolConfig, *, detached: bool = False, report: Report = _quiet,
               calibrate: bool = True, lora: Collection[str] = (),
               cancel: threading.Event | None = None) -> RunningPool:
    """Start (or adopt) the servers of every managed model of ``config``.

    ``detached`` servers (``itas pool up``) have no owner and run until ``itas pool down``; otherwise this
    process owns them, and the caller stops them (``RunningPool.stop``) when it is done. ``lora``: the models
    whose servers must load LoRA adapters (see the module's docstring). ``cancel``: set from another thread (an
    interrupted caller that runs this in a thread), it stops the wait for readiness and the servers this call
    started.
    """
    managed = [m for m in config.models if m.managed]
    wanted = {m.serve.spec_hash(m.name): m for m in managed}
    need_lora = {m.name for m in managed if m.name in set(lora)}
    for m in managed:
        if m.name in need_lora and m.serve.lora_available is None:
            raise ServingError(f"model '{m.name}' needs LoRA adapters (test-time training), but its serve section "
                               f"has no 'lora'; add lora: {{max_rank: 16, max_loras: 4}} under models.{m.name}.serve "
                               f"of {config.source}")
    reap_orphans(keep=lambda r: r.get("spec") in wanted, report=report)
    endpoints: dict[str, list[str]] = {}
    latency: dict[str, LatencyModel] = {}
    started: list[dict] = []
    reused: list[dict] = []
    shared: list[dict] = []
    pending: list[tuple[ModelSpec, dict, subprocess.Popen]] = []
    try:
        with state.locked() as records:
            for m in managed:
                h = m.serve.spec_hash(m.name)
                want = m.name in need_lora
                usable: list[dict] = []
                for rec in [r for r in records if r.get("spec") == h]:
                    if len(usable) >= m.serve.replicas:
                        break
                    if want and not record_has_lora(rec, m):
                        blocker = _not_ours_to_restart(rec, detached)
                        if blocker:
                            raise ServingError(
                                f"model '{m.name}': its server on port {rec['port']} ({blocker}) runs without LoRA, "
                                f"which test-time training needs; {_lora_fix(rec)}")
                        report(f"restarting {m.name} (port {rec['port']}) with LoRA: test-time training needs it")
                        stop_record(rec)
                        records.remove(rec)
                        continue
                    usable.append(rec)
                for rec in usable:
                    if rec.get("owner") == state.me():
                        reused.append(rec)  # already owned by this process (another open pool): not ours to stop
                    elif rec.get("owner") is None and not detached:
                        reused.append(rec)
                        report(f"using {m.name} on port {rec['port']} (started by itas pool up"
                               f"{', with LoRA' if rec.get('lora') else ''})")
                    elif not detached and state.owner_alive(rec):
                        # another running itas process owns it: use it too; the last of us to leave stops it
                        rec["users"] = [*(u for u in rec.get("users") or [] if u != state.me()), state.me()]
                        shared.append(rec)
                        report(f"sharing {m.name} on port {rec['port']} with itas process {rec['owner']['pid']}")
                    else:
                        if rec.get("owner") is not None and not state.owner_alive(rec):
                            report(f"adopting {m.name} on port {rec['port']} (its owner died)")
                        rec["owner"] = None if detached else state.me()
                        (reused if detached else started).append(rec)
                for _ in range(m.serve.replicas - len(usable)):
                    rec, proc = _spawn(m, detached, lora=want)
                    records.append(rec)
                    started.append(rec)
                    pending.append((m, rec, proc))
                    report(f"starting {m.name} on port {rec['port']}{' with LoRA' if rec.get('lora') else ''} "
                           f"(log: {rec['log']})")
        for m, rec, proc in pending:
            _wait_ready(m, rec, proc, report, cancel)
        for rec in started + reused + shared:
            endpoints.setdefault(rec["model"], []).append(rec["url"])
        if calibrate:
            for m in managed:
                if cancel is not None and cancel.is_set():
                    raise Cancelled("start of the pool cancelled")
                first = next(r for r in started + reused + shared if r["model"] == m.name)
                latency[m.name] = _calibrated(m, first, report)
    except BaseException:
        for _, rec, _ in pending:
            stop_record(rec)
        ids = {rec["id"] for _, rec, _ in pending}
        left = {rec["id"] for rec in shared}
        with state.locked() as records:
            records[:] = [r for r in records if r["id"] not in ids]
            for r in records:
                if r["id"] in left:
                    r["users"] = [u for u in r.get("users") or [] if u != state.me()]
        raise
    return RunningPool(config=config.with_endpoints(endpoints), latency=latency, started=started, reused=reused,
                       shared=shared)


def record_has_lora(rec: dict, m: ModelSpec) -> bool:
    """The recorded server loads LoRA adapters at runtime, up to the rank the model's pool entry asks for."""
    on = rec.get("lora")
    wanted = m.serve.lora_available if m.serve else None
    if not isinstance(on, dict) or wanted is None:
        return False
    return int(on.get("max_rank") or 0) >= wanted.max_rank


def _not_ours_to_restart(rec: dict, detached: bool) -> str | None:
    """Why this process may not stop the recorded server to restart it (None: it may)."""
    owner = rec.get("owner")
    if owner is None:
        return None if detached else "started by itas pool up"
    if owner == state.me():
        return "in use by this process"
    if state.owner_alive(rec):
        return f"in use by itas process {owner.get('pid')}"
    users = [u for u in state.users_alive(rec) if u != state.me()]
    if users:
        return f"in use by itas process {users[0].get('pid')}"
    return None


def _lora_fix(rec: dict) -> str:
    if rec.get("owner") is None:
        return ("restart it with LoRA: itas pool down, then itas pool up --lora (or only itas pool down, and this "
                "command starts its own servers)")
    return "run this again once that process has finished, or stop it first"


def server_command(m: ModelSpec, port: int, *, lora: bool = False) -> tuple[list[str], dict[str, str]]:
    """The argument list and the environment variables (added to this process's) of a server of ``m`` on
    ``port``; with ``lora``, the LoRA flags of ``serve.lora`` and runtime adapter loading."""
    args = [expand(a, port) for a in m.serve.args]
    env = {k: expand(v, port) for k, v in m.serve.env}
    if lora:
        spec = m.serve.lora_available
        if spec is None:
            raise ServingError(f"model '{m.name}' has no serve.lora settings, so its server cannot load adapters")
        if m.serve.lora_in_args is None:
            args += ["--enable-lora", "--max-lora-rank", str(spec.max_rank), "--max-loras", str(spec.max_loras)]
        env[LORA_ENV] = "True"
    return args, env


def _lora_record(m: ModelSpec, args: list[str], env: dict[str, str]) -> dict | None:
    """What the record says about LoRA: the settings when the server loads adapters at runtime, else None."""
    spec = m.serve.lora_available if "--enable-lora" in args else None
    if spec is None or str(env.get(LORA_ENV, "")).lower() not in ("1", "true"):
        return None
    return spec.to_dict()


def _spawn(m: ModelSpec, detached: bool, lora: bool = False) -> tuple[dict, subprocess.Popen]:
    py = serving_python()
    if "{python}" in " ".join(m.serve.args) and not py.exists():
        raise ServingError(f"the serving environment is not prepared ({py} is missing); run: itas models prepare")
    port = free_port()
    logs = state_dir() / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    rec_id = uuid.uuid4().hex[:12]
    log = logs / f"{m.name}-{port}-{rec_id}.log"
    args, extra_env = server_command(m, port, lora=lora)
    env = {**os.environ, **extra_env}
    cmd = [sys.executable, "-m", "itas.pool.watchdog", rec_id, str(log), "--", *args]
    proc = subprocess.Popen(cmd, env=env, start_new_session=True, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rec = {
        "id": rec_id, "model": m.name, "served": m.model, "spec": m.serve.spec_hash(m.name), "pid": proc.pid,
        "pid_start": state.process_start_time(proc.pid), "port": port, "url": f"http://127.0.0.1:{port}/v1",
        "log": str(log), "owner": None if detached else state.me(), "started": time.time(), "latency": None,
        "lora": _lora_record(m, args, env),
    }
    return rec, proc


class Cancelled(Exception):
    """``start_pool`` was cancelled through its ``cancel`` event."""


def _wait_ready(m: ModelSpec, rec: dict, proc: subprocess.Popen, report: Report,
                cancel: threading.Event | None = None) -> None:
    deadline = time.time() + m.serve.ready_timeout
    url = rec["url"] + "/models"
    t0 = time.time()
    with httpx.Client(timeout=5.0) as http:
        while time.time() < deadline:
            if cancel is not None and cancel.is_set():
                raise Cancelled(f"start of {m.name} cancelled")
            if proc.poll() is not None:
                raise ServingError(f"the server of '{m.name}' exited with code {proc.returncode} before it was "
                                   f"ready; last lines of {rec['log']}: {_tail(rec['log'])}")
            try:
                r = http.get(url)
                if r.status_code == 200 and any(d.get("id") == m.model for d in r.json().get("data", [])):
                    report(f"{m.name} ready on port {rec['port']} after {time.time() - t0:.0f} s")
                    return
            except (httpx.HTTPError, ValueError):
                pass
            if cancel is not None:
                cancel.wait(1.0)
            else:
                time.sleep(1.0)
    raise ServingError(f"the server of '{m.name}' was not ready after {m.serve.ready_timeout:.0f} s; "
                       f"see {rec['log']}: {_tail(rec['log'])}")


def _tail(path: str, lines: int = 3) -> str:
    try:
        text = Path(path).read_text(errors="replace").strip().splitlines()
    except OSError:
        return "(no log)"
    return " | ".join(t.strip() for t in text[-lines:])[-400:]


# ---- latency calibration ------------------------------------------------------------------------------------
def _calibrated(m: ModelSpec, rec: dict, report: Report) -> LatencyModel:
    """The latency model of the server of ``rec``: measured once per kind of server (its spec, LoRA on or off,
    since LoRA slows generation) and shared by the records of that kind."""
    def same_kind(r: dict) -> bool:
        return r.get("spec") == m.serve.spec_hash(m.name) and bool(r.get("lora")) == bool(rec.get("lora"))

    with state.locked() as records:
        for r in records:
            if same_kind(r) and r.get("latency"):
                return LatencyModel.from_dict(r["latency"])
    lm = calibrate_endpoint(rec["url"], m.model)
    report(f"{m.name}: latency model {lm.ttft_base * 1000:.0f} ms + {lm.ttft_per_prompt_token * 1000:.2f} ms/prompt "
           f"token + {lm.time_per_output_token * 1000:.1f} ms/output token")
    with state.locked() as records:
        for r in records:
            if same_kind(r):
                r["latency"] = lm.to_dict()
    return lm


def calibrate_endpoint(url: str, served_model: str, api_key: str = "EMPTY") -> LatencyModel:
    """Time a few requests, one at a time, on the idle server: prompts of several lengths with one output token
    (time to first token per prompt token), and a fixed-length output (time per output token)."""
    word = "apple "
    probes = [(8, 1), (400, 1), (8, 1), (400, 1), (8, 48), (8, 48)]
    points: list[tuple[int, int, float]] = []
    headers = {"Authorization": f"Bearer {api_key}"}
    with httpx.Client(timeout=120.0, headers=headers) as http:
        for words, out in [(8, 1)] + probes:  # the first is a warm-up
            body = {"model": served_model, "messages": [{"role": "user", "content": (word * words).strip()}],
                    "max_tokens": out, "temperature": 0.0, "ignore_eos": True, "min_tokens": out}
            t0 = time.perf_counter()
            r = http.post(url + "/chat/completions", json=body)
            elapsed = time.perf_counter() - t0
            if r.status_code != 200:
                body.pop("ignore_eos")
                body.pop("min_tokens")
                t0 = time.perf_counter()
                r = http.post(url + "/chat/completions", json=body)
                elapsed = time.perf_counter() - t0
            r.raise_for_status()
            usage = r.json()["usage"]
            points.append((usage["prompt_tokens"], usage["completion_tokens"], elapsed))
    return fit(points[1:])


# ---- status ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EndpointStatus:
    model: str
    url: str
    managed: bool
    answers: bool
    detail: str
    record: dict | None


def pool_status(config: PoolConfig) -> list[EndpointStatus]:
    out = []
    records = state.read()
    with httpx.Client(timeout=3.0) as http:
        for m in config.models:
            if m.managed:
                recs = [r for r in records if r.get("spec") == m.serve.spec_hash(m.name)]
                if not recs:
                    out.append(EndpointStatus(m.name, "-", True, False, "not running (itas pool up starts it)", None))
                for r in recs:
                    ok, detail = _probe(http, r["url"], m.model)
                    owner = "itas pool up" if r.get("owner") is None else f"owner pid {r['owner']['pid']}"
                    lora = (f"LoRA on (rank <= {r['lora'].get('max_rank')})" if isinstance(r.get("lora"), dict)
                            else "LoRA off")
                    out.append(EndpointStatus(m.name, r["url"], True, ok,
                                              f"{detail}; pid {r['pid']}; {owner}; {lora}", r))
            else:
                for e in m.endpoints:
                    ok, detail = _probe(http, e.url, m.model, m.api_key_env)
                    out.append(EndpointStatus(m.name, e.url, False, ok, detail, None))
    return out


def _probe(http: httpx.Client, url: str, served: str, api_key_env: str | None = None) -> tuple[bool, str]:
    headers = {}
    if api_key_env and os.environ.get(api_key_env):
        headers["Authorization"] = f"Bearer {os.environ[api_key_env]}"
    try:
        r = http.get(url + "/models", headers=headers)
    except httpx.HTTPError as exc:
        return False, f"no answer ({type(exc).__name__})"
    if r.status_code != 200:
        return False, f"HTTP {r.status_code}"
    try:
        ids = [d.get("id") for d in r.json().get("data", [])]
    except ValueError:
        return False, "answered, but not with a model list"
    if served not in ids:
        return False, f"answers, but serves {', '.join(map(str, ids)) or 'no model'}, not {served}"
    return True, "answers"


def stop_detached(config: PoolConfig | None, report: Report = _quiet) -> int:
    """``itas pool down``: stop the servers of ``config`` (all recorded servers when None).

    A pool's servers are those with its current serve settings, and those started by ``itas pool up`` for one of
    its models (same name, same served model) before its serve settings changed: after an edit of the pool's
    YAML, or an itas release that changed the embedded default pool, ``itas pool down`` still stops what ``itas
    pool up`` started. A server of an earlier spec that a running search owns is left to it. What is left
    running is named, with the option that stops it."""
    n = 0
    with state.locked() as records:
        kept = []
        for r in records:
            why = _of_pool(r, config)
            if why is None:
                kept.append(r)
                continue
            report(f"stopping {r['model']} on port {r['port']}{why}")
            stop_record(r)
            n += 1
        records[:] = kept
    if config is not None and kept:
        names = ", ".join(f"{r['model']} (port {r['port']})" for r in kept)
        report(f"still running, not of this pool: {names}; `itas pool down --all` stops every server itas started")
    return n


def _of_pool(record: dict, config: PoolConfig | None) -> str | None:
    """Why ``itas pool down`` of ``config`` stops this server ("" for its current spec), or None."""
    if config is None:
        return ""
    for m in config.models:
        if not m.managed or record.get("model") != m.name:
            continue
        if record.get("spec") == m.serve.spec_hash(m.name):
            return ""
        if record.get("served") == m.model and record.get("owner") is None:
            return " (started by `itas pool up` before this pool's serve settings changed)"
    return None


@contextlib.contextmanager
def managed(config: PoolConfig, report: Report = _quiet, calibrate: bool = True,
            lora: Collection[str] = ()) -> Iterator[RunningPool]:
    """Start or adopt the pool's managed servers, and stop the ones this process owns on exit (also on Ctrl-C,
    SIGTERM or an error)."""
    running = start_pool(config, report=report, calibrate=calibrate, lora=lora)
    previous = signal.getsignal(signal.SIGTERM)

    def on_term(signum, frame):
        raise KeyboardInterrupt

    if threading_main():
        signal.signal(signal.SIGTERM, on_term)
    try:
        yield running
    finally:
        running.stop(report)
        if threading_main():
            signal.signal(signal.SIGTERM, previous)


def threading_main() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()
