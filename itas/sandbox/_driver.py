"""The test driver: runs inside the sandbox as the unprivileged user (standard library only).

Usage: ``python -I -B _driver.py JOB_JSON_PATH``. It reads the job, deletes the job file (so the code under test
cannot read the result nonce from disk), then runs one of three modes and writes one line per event to file
descriptor 3, each prefixed by the nonce:

Times (``t``) and per-item limits are in CPU seconds of the process (``ITIMER_PROF``).

- ``script``: execute ``setup``; one event ``{"setup": true/false}``.
- ``asserts``: execute ``setup``, then each snippet of ``tests`` separately, each under its own time limit;
  one event per test ``{"i": i, "ok": ...}`` (up to the first failure with ``stop_on_failure``).
- ``calls``: execute ``setup``, then call ``entry_point`` on each of ``inputs`` (JSON argument lists, deep-copied)
  under its own time limit; record the outputs (``expected`` is null) or compare them with ``expected`` (EvalPlus
  rules: exact equality, or closeness with ``atol`` for floats; ``find_zero`` is checked by its polynomial).
  Large expected outputs come as digests, or (holding floats) are recomputed by ``reference_setup``.

The code under test shares the process with the driver: this guards against accidents (exceptions, ``exit()``,
endless loops, printing garbage), not against code that deliberately forges results; the sandbox around the
process is what protects the machine.
"""

import copy
import json
import math
import os
import signal
import sys
import time


class TimeLimit(BaseException):
    """Raised by the alarm when one item exceeds its time limit (a BaseException: ``except Exception`` in the
    code under test does not swallow it)."""


def _alarm(signum, frame):  # SIGPROF: the item used up its CPU time
    raise TimeLimit()


def _short(exc):
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return text[:300]


# ---- values: a JSON encoding that keeps tuples, sets, dicts with any keys, bytes, inf and nan -------------------

def encode(x, depth=0):
    if depth > 100:
        return {"__t": "repr", "v": "<too deep>"}
    if x is None or isinstance(x, (bool, str)):
        return x
    if isinstance(x, int):
        if x.bit_length() > 4000:  # JSON readers refuse long decimal strings
            return {"__t": "int", "v": hex(x)}
        return x
    if isinstance(x, float):
        if math.isnan(x) or math.isinf(x):
            return {"__t": "float", "v": repr(x)}
        return x
    if isinstance(x, list):
        return [encode(i, depth + 1) for i in x]
    if isinstance(x, tuple):
        return {"__t": "tuple", "v": [encode(i, depth + 1) for i in x]}
    if isinstance(x, (set, frozenset)):
        return {"__t": "set", "v": [encode(i, depth + 1) for i in x]}
    if isinstance(x, dict):
        return {"__t": "dict", "v": [[encode(k, depth + 1), encode(v, depth + 1)] for k, v in x.items()]}
    if isinstance(x, (bytes, bytearray)):
        return {"__t": "bytes", "v": bytes(x).hex()}
    if isinstance(x, complex):
        return {"__t": "complex", "v": [x.real, x.imag]}
    return {"__t": "repr", "v": repr(x)[:10000]}


class Opaque:
    def __init__(self, text):
        self.text = text

    def __eq__(self, other):
        return isinstance(other, Opaque) and other.text == self.text

    def __hash__(self):
        return hash(self.text)


class Digest:
    """A large expected output, kept as the digest of its canonical encoding."""

    def __init__(self, value):
        self.value = value


def _canonical(e):
    if isinstance(e, list):
        return [_canonical(i) for i in e]
    if isinstance(e, dict):
        v = e.get("v")
        if e.get("__t") in ("set", "dict"):
            items = [_canonical(i) for i in v]
            return {"__t": e["__t"], "v": sorted(items, key=lambda i: json.dumps(i, sort_keys=True))}
        if e.get("__t") == "tuple":
            return {"__t": "tuple", "v": _canonical(v)}
    return e


def _has_float(e):
    if isinstance(e, float):
        return True
    if isinstance(e, list):
        return any(_has_float(i) for i in e)
    if isinstance(e, dict):
        return e.get("__t") in ("float", "complex") or _has_float(e.get("v"))
    return False


def digest(encoded):
    import hashlib

    text = json.dumps(_canonical(encoded), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def record(value, big=65536):
    """How an output is kept as the expected one: its encoding; if large, a digest of it (when exact
    comparison is enough) or a note to recompute it from the reference solution (when it holds floats)."""
    encoded = encode(value)
    text = json.dumps(encoded)
    if len(text) > big:
        if _has_float(encoded):
            return {"__t": "recompute"}
        return {"__t": "digest", "v": digest(encoded)}
    return encoded


class Recompute:
    """An expected output too large to keep: the reference solution computes it again."""


def decode(x):
    if isinstance(x, list):
        return [decode(i) for i in x]
    if isinstance(x, dict):
        t, v = x.get("__t"), x.get("v")
        if t == "tuple":
            return tuple(decode(i) for i in v)
        if t == "set":
            return {decode(i) for i in v}
        if t == "dict":
            return {decode(k): decode(val) for k, val in v}
        if t == "bytes":
            return bytes.fromhex(v)
        if t == "float":
            return float(v)
        if t == "int":
            return int(v, 16)
        if t == "digest":
            return Digest(v)
        if t == "recompute":
            return Recompute()
        if t == "complex":
            return complex(v[0], v[1])
        return Opaque(v)
    return x


def _is_floats(x):
    if isinstance(x, float):
        return True
    if isinstance(x, (list, tuple)) and x:
        return all(isinstance(i, float) for i in x)
    return False


def _close(out, exp, atol, rtol=1e-07):
    if isinstance(exp, (list, tuple)):
        if not isinstance(out, (list, tuple)) or len(out) != len(exp):
            return False
        return all(_close(o, e, atol, rtol) for o, e in zip(out, exp, strict=True))
    if isinstance(exp, (int, float)) and isinstance(out, (int, float)):
        if math.isnan(exp) or math.isnan(out):
            return math.isnan(exp) and math.isnan(out)
        if math.isinf(exp) or math.isinf(out):
            return exp == out
        return abs(out - exp) <= atol + rtol * abs(exp)
    return out == exp


def _poly(xs, x):
    return sum(coeff * math.pow(x, i) for i, coeff in enumerate(xs))


def matches(out, exp, atol, oracle, args):
    """EvalPlus's comparison of an output with the expected one."""
    if oracle == "find_zero":
        return abs(_poly(*args, out)) <= atol
    if isinstance(exp, Digest):
        return digest(encode(out)) == exp.value
    if isinstance(out, (list, tuple, set, frozenset, dict)):
        out = decode(encode(out))  # normalise unencodable members the way the expected output was
    elif not isinstance(out, (type(None), bool, int, float, str, bytes, complex)):
        out = decode(encode(out))
    try:
        exact = out == exp
    except Exception:  # noqa: BLE001
        exact = False
    if atol == 0 and _is_floats(exp):
        atol = 1e-6
    if not exact and atol != 0:
        if type(out) is not type(exp):
            return False
        return _close(out, exp, atol)
    return bool(exact)


# ---- running -------------------------------------------------------------------------------------------------


def main():
    job_path = sys.argv[1]
    with open(job_path, encoding="utf-8") as f:
        job = json.load(f)
    os.unlink(job_path)
    nonce = job.pop("nonce")
    out = os.fdopen(3, "w", encoding="utf-8")
    signal.signal(signal.SIGPROF, _alarm)
    if hasattr(sys, "set_int_max_str_digits"):
        sys.set_int_max_str_digits(0)  # reference solutions build huge numbers

    def report(event):
        out.write(nonce + " " + json.dumps(event) + "\n")
        out.flush()

    def timed(fn, limit):
        # CPU time, not wall time: a loaded machine slows the program down but does not make it time out
        # (the sandbox's wall-clock limit stops programs that sleep or wait)
        start = time.process_time()
        signal.setitimer(signal.ITIMER_PROF, max(limit, 0.001))
        try:
            value = fn()
        finally:
            signal.setitimer(signal.ITIMER_PROF, 0)
        return value, time.process_time() - start

    namespace = {"__name__": "__sandbox__", "__builtins__": __builtins__}
    setup_limit = job.get("setup_limit") or 3600.0
    start = time.process_time()
    try:
        code = compile(job["setup"], "<candidate>", "exec")
        timed(lambda: exec(code, namespace), setup_limit)
    except TimeLimit:
        report({"setup": False, "timeout": True, "error": "time limit", "t": time.process_time() - start})
        return 0
    except BaseException as exc:  # noqa: BLE001 - SystemExit and KeyboardInterrupt are failures too
        report({"setup": False, "error": _short(exc), "t": time.process_time() - start})
        return 0
    report({"setup": True, "t": time.process_time() - start})
    mode = job["mode"]
    limits = job.get("limits") or []
    default_limit = job.get("item_limit") or 3600.0

    stop = bool(job.get("stop_on_failure"))

    def limit_of(i):
        return limits[i] if i < len(limits) else default_limit

    if mode == "asserts":
        for i, test in enumerate(job["tests"]):
            try:
                test_code = compile(test, f"<test {i}>", "exec")
                _, t = timed(lambda test_code=test_code: exec(test_code, namespace), limit_of(i))
                report({"i": i, "ok": True, "t": t})
            except TimeLimit:
                report({"i": i, "ok": False, "timeout": True, "error": "time limit"})
                if stop:
                    break
            except BaseException as exc:  # noqa: BLE001
                report({"i": i, "ok": False, "error": _short(exc)})
                if stop:
                    break
    elif mode == "calls":
        fn = namespace.get(job["entry_point"])
        if not callable(fn):
            report({"error": f"no function named {job['entry_point']!r}"})
            return 0
        expected = job.get("expected")
        atol = job.get("atol") or 0
        oracle = job.get("oracle")
        reference_fn = None
        if job.get("reference_setup"):
            reference_ns = {"__name__": "__reference__", "__builtins__": __builtins__}
            exec(compile(job["reference_setup"], "<reference>", "exec"), reference_ns)
            reference_fn = reference_ns.get(job["entry_point"])
        for i, args in enumerate(job["inputs"]):
            try:
                call_args = copy.deepcopy(args)
                value, t = timed(lambda call_args=call_args: fn(*call_args), limit_of(i))
                if expected is None:
                    report({"i": i, "ok": True, "t": t, "out": record(value)})
                else:
                    exp = decode(expected[i])
                    if isinstance(exp, Recompute):
                        if reference_fn is None:
                            raise RuntimeError("expected output not recorded")
                        exp = decode(encode(reference_fn(*copy.deepcopy(args))))
                    ok = matches(value, exp, atol, oracle, copy.deepcopy(args))
                    report({"i": i, "ok": bool(ok), "t": t})
                    if stop and not ok:
                        break
            except TimeLimit:
                report({"i": i, "ok": False, "timeout": True, "error": "time limit"})
                if stop:
                    break
            except BaseException as exc:  # noqa: BLE001
                report({"i": i, "ok": False, "error": _short(exc)})
                if stop:
                    break
    report({"done": True})
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    os._exit(code)
