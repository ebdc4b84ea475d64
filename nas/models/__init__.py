"""Models: Candidate -> ``nn.Module``.

``blocks/`` holds the layers and block styles (GRN, re-param conv, mixers, ConvNeXt / RepLK /
Container blocks); ``parts`` the stems, transitions, heads and stages every macro shares;
``plain`` and ``revcol`` the two macros; ``build`` the entry points ``build_model`` and
``reparameterize``.
"""

from nas.models.build import build_model, reparameterize

__all__ = ["build_model", "reparameterize"]
