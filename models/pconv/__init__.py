"""PConvUNet (Liu et al. 2018) in Keras 3: layer, U-Net, loss and full-resolution inference."""
from models.runtime import import_keras_quietly

import_keras_quietly()  # before any module of the package imports it

from models.pconv.inpainter import Inpainter, load_inpainting_model
from models.pconv.layers import PartialConv2D
from models.pconv.loss import InpaintingLoss
from models.pconv.unet import build_pconv_unet, composite, set_encoder_bn_frozen

__all__ = ["Inpainter", "InpaintingLoss", "PartialConv2D", "build_pconv_unet", "composite",
           "load_inpainting_model", "set_encoder_bn_frozen"]
