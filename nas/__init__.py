"""nas: a design-space explorer for modern convolutional networks.

RevCol columns, RepLKNet large kernels with structural re-parameterization, Container affinity
mixing and ConvNeXt V2's GRN as axes of one YAML design space. Public API::

    import nas
    space = nas.load_space("spaces/quickstart.yaml")
    candidate = nas.load_candidate("spaces/presets/convnextv2_tiny.yaml")
    model = nas.build_model(candidate)          # training form
    deploy = nas.reparameterize(model)          # deploy copy, re-param branches merged

The package is laid out as the pipeline (see docs/layout.md): ``space`` ->
``models`` -> ``measure`` -> ``train`` -> ``campaign`` -> ``report``, with ``bench`` and ``cli``
on top. Heavy modules (torch) are imported on first use, so the CLI starts fast.
"""

from __future__ import annotations

from nas.lazy import lazy_exports

__version__ = "0.1.0"

_LAZY = {
    "Candidate": "nas.space.candidate",
    "CandidateError": "nas.space.candidate",
    "load_candidate": "nas.space.candidate",
    "Space": "nas.space.space",
    "Sample": "nas.space.space",
    "load_space": "nas.space.parse",
    "SpaceError": "nas.errors",
    "UserError": "nas.errors",
    "build_model": "nas.models.build",
    "reparameterize": "nas.models.build",
    "load_weights": "nas.models.weights",
}
__all__ = sorted(_LAZY)
__getattr__ = lazy_exports(__name__, _LAZY)
