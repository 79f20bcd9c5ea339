"""A sandbox for model-written code: see :mod:`itas.sandbox.sandbox` for the isolation it gives.

    from itas.sandbox import default_sandbox
    default_sandbox().run_python("print(1 + 1)").stdout   # '2\\n'
"""

from itas.sandbox.sandbox import (
    INNER_SCRATCH,
    MODES,
    Limits,
    RunResult,
    Sandbox,
    SandboxError,
    default_sandbox,
)

__all__ = ["INNER_SCRATCH", "MODES", "Limits", "RunResult", "Sandbox", "SandboxError", "default_sandbox"]
