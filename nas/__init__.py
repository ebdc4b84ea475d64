"""nas: a design-space explorer for modern convolutional networks.

RevCol columns, RepLKNet large kernels with structural re-parameterization, Container affinity
mixing and ConvNeXt V2's GRN as axes of one YAML design space. Public API::

    import nas
    space = nas.load_space("spaces/quickstart.yaml")
    candidate = nas.load_candidate("spaces/presets/convnextv2_tiny.yaml")
    model = nas.build_model(candidate)          # training form
    deploy = nas.reparameterize(model)          # deploy copy, re-param branches merged

Heavy modules (torch) are imported on first use, so the CLI starts fast.
"""

from __future__ import annotations

from importlib import import_module

__version__ = "0.1.0"

_LAZY = {
    "Candidate": "nas.candidate",
    "CandidateError": "nas.candidate",
    "load_candidate": "nas.candidate",
    "Space": "nas.space",
    "Sample": "nas.space",
    "load_space": "nas.space",
    "SpaceError": "nas.errors",
    "UserError": "nas.errors",
    "build_model": "nas.model",
    "reparameterize": "nas.model",
}
__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'nas' has no attribute {name!r}")
