"""bg-obj-remover: also serves Dataflow's --setup_file (workers install the project from it).

The heavy stack (torch, mmcv with ops, TensorFlow) is pinned in constraints.txt and installed by
`make install` locally, or baked into the GPU SDK container for Dataflow (see Dockerfile); the
light runtime dependencies are listed here so a worker image that lacks them still gets them.
"""
from setuptools import find_packages, setup

setup(
    name="bg-obj-remover",
    version="0.1.0",
    description="Apache Beam pipeline that removes chosen objects from photo archives "
    "(Mask R-CNN segmentation + PConvUNet inpainting).",
    python_requires=">=3.10",
    # assets.inpainter is data only: the shipped checkpoint, the default --inpaint_weights, found
    # beside the code packages (pipeline/options.py) in a checkout and once installed alike.
    packages=find_packages(include=["pipeline", "pipeline.*", "transforms", "transforms.*",
                                    "models", "models.*"]) + ["assets.inpainter"],
    py_modules=["run_pipeline"],
    include_package_data=True,
    package_data={"": ["*.json", "*.md"], "assets.inpainter": ["pconv_unet.keras"]},
    install_requires=[
        "apache-beam>=2.60",
        "numpy",
        "scipy",
        "pillow",
        "pillow-heif",
        "pyarrow",
        "fsspec",
        # fsspec's gs:// file system; it brings aiohttp and requests, which its https:// needs:
        # model files (the default --seg_checkpoint is an https:// URL) are fetched through fsspec.
        "gcsfs",
        "google-crc32c",
        "pycocotools",
        "opencv-python-headless",
        "keras>=3",
    ],
    extras_require={
        "tf": ["tensorflow"],
        "segmentation": ["torch", "mmengine", "mmcv>=2.0.0rc4,<2.2.0", "mmdet>=3,<3.4"],
    },
    entry_points={"console_scripts": ["bg-obj-remover=run_pipeline:main"]},
)
