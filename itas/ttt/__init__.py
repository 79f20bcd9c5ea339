"""Test-time training: LoRA adapters trained on a task's own demonstrations, in a separate process, cached, and
served through vLLM's runtime LoRA loading.

- ``job``: what a training is asked (``TrainingJob``), what it reports, and how its compute is counted;
- ``store``: the adapter cache in the results directory;
- ``trainer``: training in the serving environment (``train_lora.py``, run by its Python: itas never imports
  torch or peft);
- ``serving``: loading adapters into running vLLM servers;
- ``services``: the trainer, serving and adapter folder the ``ttt`` component uses (swappable in tests).
"""

from itas.ttt.job import TRAIN_COST_FACTOR, Adapter, TrainingJob, TrainingReport, TrainingSequence

__all__ = ["TRAIN_COST_FACTOR", "Adapter", "TrainingJob", "TrainingReport", "TrainingSequence"]
