"""The models: segmentation and the PConvUNet inpainter, in plain Python, Keras and torch (no Beam)."""
import os

# The project's root in a checkout, or site-packages once installed: `assets/` lies beside `models/`.
PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The PConvUNet checkpoint shipped with the project (assets/inpainter/MODEL_CARD.md).
SHIPPED_INPAINT_WEIGHTS = os.path.join(PROJECT_ROOT, "assets", "inpainter", "pconv_unet.keras")
