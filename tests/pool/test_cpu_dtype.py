"""`{cpu_dtype}` in serve.args: what a vLLM CPU server computes in fastest on the machine it starts on."""

from __future__ import annotations

from itas.pool.config import load_pool
from itas.pool.serving import cpu_dtype, server_command

AVX2 = "processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu sse sse2 ssse3 fma avx avx2 bmi2\n"
AVX512 = "processor\t: 0\nflags\t\t: fpu sse2 avx avx2 avx512f avx512dq avx512bw avx512vl avx512_bf16\n"
AVX512F_ONLY = "flags\t\t: avx avx2 avx512f avx512cd\n"  # Knights Landing: no avx512bw, no oneDNN bf16 matmul


def test_bfloat16_with_avx512_and_float32_without(monkeypatch):
    monkeypatch.delenv("ITAS_CPU_DTYPE", raising=False)
    assert cpu_dtype(AVX512, "x86_64") == "bfloat16"
    assert cpu_dtype(AVX2, "x86_64") == "float32"
    assert cpu_dtype(AVX512F_ONLY, "x86_64") == "float32"


def test_the_models_own_dtype_where_the_cpu_is_not_x86_or_unknown(monkeypatch):
    monkeypatch.delenv("ITAS_CPU_DTYPE", raising=False)
    assert cpu_dtype(AVX2, "aarch64") == "auto"
    assert cpu_dtype("processor\t: 0\n", "x86_64") == "auto"


def test_the_variable_overrides_it_and_the_default_pool_passes_it_to_vllm(monkeypatch):
    monkeypatch.setenv("ITAS_CPU_DTYPE", "float16")
    assert cpu_dtype(AVX512, "x86_64") == "float16"
    for name in ("smollm2", "gemma3"):
        args, _ = server_command(load_pool(None)[name], 4321)
        assert args[args.index("--dtype") + 1] == "float16" and "{cpu_dtype}" not in " ".join(args)


def test_a_server_started_for_another_dtype_is_not_taken_for_this_one(monkeypatch):
    serve = load_pool(None)["smollm2"].serve
    monkeypatch.setenv("ITAS_CPU_DTYPE", "float32")
    as_float32 = serve.spec_hash("smollm2")
    monkeypatch.setenv("ITAS_CPU_DTYPE", "bfloat16")
    assert serve.spec_hash("smollm2") != as_float32
    monkeypatch.setenv("ITAS_CPU_DTYPE", "float32")
    assert serve.spec_hash("smollm2") == as_float32
