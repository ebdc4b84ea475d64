"""Pre-training: ``fcmae`` is ConvNeXt V2's fully convolutional masked autoencoder around any
candidate's network; ``loop`` pre-trains it on a data set's training split without labels."""

from nas.pretrain.fcmae import FCMAE, MaskState, check_fcmae, patch_grid
from nas.pretrain.loop import PretrainConfig, PretrainResult, build_fcmae, pretrain

__all__ = [
    "FCMAE",
    "MaskState",
    "PretrainConfig",
    "PretrainResult",
    "build_fcmae",
    "check_fcmae",
    "patch_grid",
    "pretrain",
]
