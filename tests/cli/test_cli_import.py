"""``itas --help`` answers at once: the CLI module loads no heavy library."""

from __future__ import annotations

import subprocess
import sys


def test_importing_the_cli_loads_no_heavy_library():
    code = ("import sys, itas.cli; heavy = [m for m in ('torch', 'vllm', 'transformers', 'datasets', 'optuna', "
            "'pandas', 'openai') if m in sys.modules]; print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_help_lists_the_commands():
    out = subprocess.run([sys.executable, "-m", "itas", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    for cmd in ("pool", "models"):
        assert cmd in out.stdout


def test_a_bad_pool_file_is_one_line_and_exit_2(tmp_path):
    bad = tmp_path / "pool.yaml"
    bad.write_text("models:\n  a: {model: x, endpoint: []}\n")
    out = subprocess.run([sys.executable, "-m", "itas", "pool", "status", "--pool", str(bad)],
                         capture_output=True, text=True)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr
    assert str(bad) in lines[0] and "models.a.endpoint" in lines[0] and "endpoints" in lines[0]
