"""Pre-training: ``fcmae`` is ConvNeXt V2's fully convolutional masked autoencoder around any
candidate's network; ``loop`` pre-trains it on a data set's training split without labels."""

from nas.pretrain.fcmae import FCMAE, MaskState, check_fcmae, grid_size

__all__ = ["FCMAE", "MaskState", "check_fcmae", "grid_size"]
