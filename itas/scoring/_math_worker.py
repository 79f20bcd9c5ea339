"""A math-verify worker process (standard library plus math-verify; no itas imports).

Reads one JSON request per line on stdin: ``{"gold": ..., "output": ...}``; answers one JSON line on stdout:
``{"ok": bool, "gold": [...], "pred": [...]}`` or ``{"error": "..."}``. math-verify's own signal-based
timeouts are disabled; the parent kills this process when an item takes too long.
"""

import json
import logging
import sys


def main():
    logging.disable(logging.WARNING)  # math-verify warns once that its timeouts are disabled
    from math_verify import parse, verify

    out = sys.stdout
    sys.stdout = sys.stderr  # anything the libraries print must not corrupt the protocol
    out.write(json.dumps({"ready": True}) + "\n")
    out.flush()
    for line in sys.stdin:
        try:
            req = json.loads(line)
            gold = parse("\\boxed{" + req["gold"] + "}", parsing_timeout=None)
            pred = parse(req["output"], parsing_timeout=None)
            ok = bool(gold) and bool(pred) and verify(gold, pred, timeout_seconds=None)
            reply = {"ok": ok, "gold": [str(g) for g in gold[:2]], "pred": [str(p) for p in pred[:2]]}
        except Exception as exc:  # noqa: BLE001
            reply = {"error": f"{type(exc).__name__}: {exc}"[:300]}
        out.write(json.dumps(reply) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
