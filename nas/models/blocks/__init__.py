"""Building blocks of the design space: ConvNeXt (V2), RepLKNet and Container, with shared parts.

Every block maps an NCHW tensor to one of the same shape and takes plain keyword options.
Re-parameterisable depthwise convs merge through ``reparameterize_modules``.
"""

from nas.models.blocks.container import ContainerBlock
from nas.models.blocks.convnext import ConvNeXtBlock
from nas.models.blocks.grn import GRN
from nas.models.blocks.mixer import ATTENTION_MIXERS, DW_MIXERS, MIXERS, AffinityMixer
from nas.models.blocks.norm import NORMS, DropPath, LayerNorm2d, LayerScale, make_norm2d
from nas.models.blocks.reparam import RepDWConv, fuse_conv_bn, reparameterize_modules
from nas.models.blocks.replk import ConvFFN, RepLKBlock, conv_bn

__all__ = [
    "ATTENTION_MIXERS",
    "DW_MIXERS",
    "GRN",
    "MIXERS",
    "NORMS",
    "AffinityMixer",
    "ContainerBlock",
    "ConvFFN",
    "ConvNeXtBlock",
    "DropPath",
    "LayerNorm2d",
    "LayerScale",
    "RepDWConv",
    "RepLKBlock",
    "conv_bn",
    "fuse_conv_bn",
    "make_norm2d",
    "reparameterize_modules",
]
