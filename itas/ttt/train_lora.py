"""Train one LoRA adapter for test-time training. Run by the serving environment's Python (torch, transformers,
peft), as a separate process; itas never imports this file.

    python train_lora.py --job job.json --out ADAPTER_DIR [--merge-into MERGED_DIR] [--dtype float32|bfloat16]

The job (written by ``itas.ttt.job.TrainingJob.to_json``): ``weights`` (the base model's folder), ``sequences``
(each a chat ``messages`` list and the ``answer`` the model should give), ``steps``, ``rank``, ``alpha``,
``learning_rate``, ``seed``, ``max_length``, ``target_modules``.

Each sequence is the chat template applied to its messages with the generation prompt, followed by the answer
as the template closes an assistant turn (so the end-of-turn token is learnt: the adapter learns to stop). The
loss is on the answer tokens only. Sequences longer than ``max_length`` are left out. One sequence per step
(batching gains nothing on a few CPU cores), in a seeded order that goes through all of them before repeating;
AdamW, the learning rate warmed up over the first tenth of the steps then decayed linearly; gradients clipped
at norm 1.

Writes the peft adapter (``adapter_config.json``, ``adapter_model.safetensors``: vLLM serves the folder as it
is) and ``training.json``: tokens forwarded over all steps, answer tokens, steps, seconds (the whole process,
imports and loading included), sequences used and dropped, the final loss. Exit status: 0 done, 2 bad job,
3 torch/transformers/peft cannot be imported, 4 no sequence fits ``max_length``.
"""

from __future__ import annotations

import time

T0 = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import sys  # noqa: E402


def encode(tokenizer, sequences: list[dict], max_length: int) -> tuple[list[tuple[list[int], list[int]]], int]:
    """(input ids, labels) of every sequence that fits, and how many did not."""
    out, dropped = [], 0
    for seq in sequences:
        messages = seq["messages"]
        prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        full = tokenizer.apply_chat_template(messages + [{"role": "assistant", "content": seq["answer"]}],
                                             tokenize=False)
        if full.startswith(prompt):
            completion = full[len(prompt):].rstrip("\n")
        else:  # a template that rewrites earlier turns: the answer and the end-of-sequence token
            completion = seq["answer"] + (tokenizer.eos_token or "")
        prompt_ids = tokenizer(prompt, add_special_tokens=False).input_ids
        answer_ids = tokenizer(completion, add_special_tokens=False).input_ids
        ids = prompt_ids + answer_ids
        if len(ids) > max_length:
            dropped += 1
            continue
        out.append((ids, [-100] * len(prompt_ids) + answer_ids))
    return out, dropped


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Train one LoRA adapter for itas's test-time training.")
    ap.add_argument("--job", required=True, help="the job JSON file")
    ap.add_argument("--out", required=True, help="the folder to write the adapter into")
    ap.add_argument("--merge-into", help="also save the base model with the adapter merged, to serve at full speed")
    ap.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    args = ap.parse_args(argv)
    try:
        with open(args.job, encoding="utf-8") as f:
            job = json.load(f)
        for key in ("weights", "sequences", "steps", "rank", "alpha", "learning_rate", "seed", "max_length",
                    "target_modules"):
            job[key]  # noqa: B018 - presence check
    except (OSError, ValueError, KeyError) as exc:
        print(f"bad job file {args.job}: {exc!r}", file=sys.stderr)
        return 2
    try:
        import torch
        from peft import LoraConfig, get_peft_model
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as exc:
        print(f"cannot import {exc.name}: {exc}", file=sys.stderr)
        return 3

    torch.set_num_threads(int(os.environ.get("ITAS_TTT_THREADS") or os.cpu_count() or 1))
    torch.manual_seed(job["seed"])
    tokenizer = AutoTokenizer.from_pretrained(job["weights"])
    examples, dropped = encode(tokenizer, job["sequences"], job["max_length"])
    if not examples:
        print(f"no training sequence fits max_length {job['max_length']} ({dropped} dropped)", file=sys.stderr)
        return 4
    dtype = torch.bfloat16 if args.dtype == "bfloat16" else torch.float32
    model = AutoModelForCausalLM.from_pretrained(job["weights"], dtype=dtype)
    config = LoraConfig(r=job["rank"], lora_alpha=job["alpha"], lora_dropout=0.0, bias="none",
                        target_modules=list(job["target_modules"]), task_type="CAUSAL_LM")
    model = get_peft_model(model, config)
    params = [p for p in model.parameters() if p.requires_grad]
    steps = int(job["steps"])
    warmup = max(1, steps // 10)

    def lr_factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (steps - step) / max(1, steps - warmup))

    optimizer = torch.optim.AdamW(params, lr=job["learning_rate"], weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
    rng = random.Random(job["seed"])
    order: list[int] = []
    tokens = loss_tokens = 0
    losses: list[float] = []
    print(f"{len(examples)} sequences ({dropped} too long), {steps} steps, rank {job['rank']}, "
          f"lr {job['learning_rate']}, {torch.get_num_threads()} threads; loaded in {time.perf_counter() - T0:.1f} s",
          flush=True)
    model.train()
    for step in range(steps):
        if not order:
            order = list(range(len(examples)))
            rng.shuffle(order)
        ids, labels = examples[order.pop()]
        out = model(input_ids=torch.tensor([ids]), labels=torch.tensor([labels]))
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        tokens += len(ids)
        loss_tokens += sum(1 for x in labels if x != -100)
        losses.append(float(out.loss.item()))
        if step % 10 == 0 or step == steps - 1:
            print(f"step {step + 1}/{steps} loss {losses[-1]:.4f} ({time.perf_counter() - T0:.0f} s)", flush=True)
    model.save_pretrained(args.out)
    tail = losses[-10:]
    report = {"tokens": tokens, "loss_tokens": loss_tokens, "steps": steps,
              "seconds": round(time.perf_counter() - T0, 3), "sequences": len(examples), "dropped": dropped,
              "final_loss": round(sum(tail) / len(tail), 5), "losses": [round(x, 4) for x in losses[::10]]}
    tmp = os.path.join(args.out, "training.json.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(report, f, indent=1)
    os.replace(tmp, os.path.join(args.out, "training.json"))
    print(f"done: {json.dumps(report)}", flush=True)
    if args.merge_into:
        merged = model.merge_and_unload()
        merged.save_pretrained(args.merge_into)
        tokenizer.save_pretrained(args.merge_into)
        print(f"merged model written to {args.merge_into}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
