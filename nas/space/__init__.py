"""The design-space language: YAML -> ``Space`` -> flat params -> ``Candidate``.

``candidate`` holds the Candidate (the one object that travels down the pipeline); ``expr`` the
safe expressions of ``derive:`` and ``vars:``; ``dims`` one dimension and the value checks per
key; ``space`` sampling (numpy) and define-by-run suggestion (Optuna); ``parse`` the YAML file.
"""

from nas.errors import SpaceError
from nas.space.candidate import Candidate, CandidateError, load_candidate
from nas.space.dims import Dim
from nas.space.parse import load_space, parse_space
from nas.space.space import Sample, Space

__all__ = [
    "Candidate",
    "CandidateError",
    "Dim",
    "Sample",
    "Space",
    "SpaceError",
    "load_candidate",
    "load_space",
    "parse_space",
]
