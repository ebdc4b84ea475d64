"""Test-only fault injection inside Ray worker processes (never imported by ``nas``).

A driver passes ``runtime_env={"worker_process_setup_hook": "tests.fault_hook.install",
"env_vars": {"NAS_TEST_FAULTS": '{"24": "oom", "20": "die"}'}}``; every worker process then wraps
``nas.models.build.build_model`` so that a candidate whose first stage width is a key gets a forward
pre-hook that, in a training step (grad enabled, ``model.training``, a batch larger than the 2
images that measurement's saved-bytes probe uses), does:

- ``oom``: a real allocation that fails (``torch.empty`` of 2**60 bytes: the CPU allocator raises);
- ``raise``: ``RuntimeError("injected fault ...")``;
- ``die``: ``os._exit(17)``, the worker process dies (as on a segfault or the kernel's OOM killer).

Measurement (eval / no grad / batch 2) is untouched, so the fault hits the training step.
"""

from __future__ import annotations

import json
import os

ENV = "NAS_TEST_FAULTS"


def faults() -> dict[int, str]:
    return {int(k): v for k, v in json.loads(os.environ.get(ENV) or "{}").items()}


def install() -> None:
    import torch

    import nas.models.build

    table = faults()
    if not table or getattr(nas.models.build.build_model, "_fault_hook", False):
        return
    original = nas.models.build.build_model

    def build_model(candidate, *args, **kwargs):
        model = original(candidate, *args, **kwargs)
        kind = table.get(int(candidate.widths[0]))
        if kind is None:
            return model

        def pre_hook(module, inputs):
            if not (module.training and torch.is_grad_enabled() and inputs[0].shape[0] > 2):
                return None
            if kind == "oom":
                torch.empty(2**60, dtype=torch.uint8)  # the allocator fails: a real CPU OOM
            elif kind == "raise":
                raise RuntimeError(f"injected fault for width {candidate.widths[0]}")
            elif kind == "die":
                os._exit(17)
            return None

        model.register_forward_pre_hook(pre_hook)
        return model

    build_model._fault_hook = True
    nas.models.build.build_model = build_model
