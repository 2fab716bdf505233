"""The pipeline's own options; every standard Beam option (runner, Dataflow, ...) passes through."""
from __future__ import annotations

from apache_beam.options.pipeline_options import PipelineOptions

from models import SHIPPED_INPAINT_WEIGHTS
from transforms.decode import DEFAULT_MAX_PIXELS

DEFAULT_CLASSES, DEFAULT_MIN_SCORE = "person", "0.5"
DEFAULT_SEG_CONFIG = "mask-rcnn_r50_fpn_1x_coco"
DEFAULT_SEG_CHECKPOINT = ("https://download.openmmlab.com/mmdetection/v2.0/mask_rcnn/"
                          "mask_rcnn_r50_fpn_1x_coco/mask_rcnn_r50_fpn_1x_coco_20200205-d4b0c5d6.pth")


class RemoverOptions(PipelineOptions):
    @classmethod
    def _add_argparse_args(cls, parser):
        source = parser.add_argument_group("input and output")
        source.add_argument("--input", help="File pattern of images, local or gs:// ('**' recurses). "
                            "Outputs keep the path relative to the pattern's fixed prefix.")
        source.add_argument("--input_tfrecords", help="Shard pattern of tf.train.Example TFRecords "
                            "(alternative to --input); outputs are <id>.png.")
        source.add_argument("--tfrecord_image_key", default="image/encoded",
                            help="Feature holding the encoded image bytes (default image/encoded).")
        source.add_argument("--tfrecord_id_key", default="image/filename",
                            help="Feature holding the image id; absent -> <shard>-<offset>.")
        source.add_argument("--output", help="Output root: images/ and metadata/ are written under it.")
        source.add_argument("--skip_existing", action="store_true",
                            help="Do not process images whose output image already exists.")
        source.add_argument("--write_masks", action="store_true",
                            help="Also write each image's removed region (before --dilate) as "
                            "<output>/masks/<relative path>.png, 255 = removed: the layout --masks "
                            "reads, to correct a mask by hand and run the image again in masks mode.")
        source.add_argument("--max_image_pixels", type=int, default=DEFAULT_MAX_PIXELS,
                            help="Refuse images declaring more pixels than this, before decoding "
                            f"(default {DEFAULT_MAX_PIXELS:,}).")

        select = parser.add_argument_group("what to remove")
        select.add_argument("--classes", default=DEFAULT_CLASSES,
                            help="Class names or ids, comma-separated, or 'all' (default "
                            "person), or 'all,-person' (every class but those after a '-'): COCO "
                            "names, category ids and supercategories (vehicle, animal, ...), or "
                            "those of the classes the checkpoint was trained on.")
        select.add_argument("--min_score", default=DEFAULT_MIN_SCORE,
                            help="Minimum detection score of a removed instance (default 0.5), and "
                            "for some classes their own: '0.5,car=0.8,animal=0.7' (a class's own "
                            "wins over its supercategory's).")
        select.add_argument("--keep_largest", type=int, default=0,
                            help="Of the instances chosen in each image, keep the N largest (by mask "
                            "area) as the photo's subjects: 1 removes the people behind the one "
                            "you photographed (default 0: remove every one).")
        select.add_argument("--keep_larger_than", type=float, default=None,
                            help="Keep every chosen instance whose mask covers more than this share "
                            "of the image (above 0 and below 1, e.g. 0.05): those near the camera, "
                            "the subjects.")
        select.add_argument("--dilate", type=int, default=9,
                            help="Grow the removed region by this many pixels (default 9; 0 = none).")

        models = parser.add_argument_group("models")
        models.add_argument("--segmenter", choices=("mmdet", "masks"), default="mmdet",
                            help="mmdet: Mask R-CNN; masks: read <masks>/<relative path>.png per "
                            "image (nonzero = remove), no segmentation model needed.")
        models.add_argument("--masks", help="Root folder of user masks for --segmenter masks.")
        models.add_argument("--seg_config", default=DEFAULT_SEG_CONFIG,
                            help="mmdet config shipped in the mmdet package, by name or mmdet:: path "
                            "(mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py), or a local path.")
        models.add_argument("--allow_remote_config", action="store_true",
                            help="Allow --seg_config to be a remote URI (configs are executed as "
                            "Python: only for sources you trust).")
        models.add_argument("--seg_checkpoint", default=DEFAULT_SEG_CHECKPOINT,
                            help="Mask R-CNN checkpoint: local path, gs:// or https://.")
        models.add_argument("--inpaint_weights", default=SHIPPED_INPAINT_WEIGHTS,
                            help="PConvUNet .keras weights: local path, gs:// or https:// "
                            "(default: the checkpoint shipped in assets/inpainter/).")
        models.add_argument("--inpaint_strategy", choices=("crop", "resize"), default="crop",
                            help="crop: inpaint a context window around each hole at model size; "
                            "resize: the whole image at model size.")
        # Literals, not models.pconv's constants: importing it would load Keras to parse flags.
        models.add_argument("--inpaint_self_ensemble", type=int, choices=(1, 2, 4), default=2,
                            help="average each fill with those of the mirrored image: 2 = left-right, "
                            "4 = also up-down; cleaner fills for 2x or 4x the inpainting work "
                            "(default 2).")
        models.add_argument("--inpaint_blend", choices=("poisson", "none"), default="poisson",
                            help="poisson: blend each fill into the photo across the hole's edge, so "
                            "no seam shows; none: paste the model's fill as is (default poisson).")
        models.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                            help="Where both models run.")
        models.add_argument("--seg_batch_size", type=int, default=4,
                            help="Images per Mask R-CNN batch (default 4).")
        models.add_argument("--inpaint_batch_size", type=int, default=8,
                            help="Windows per PConvUNet call at model size (default 8; a quarter "
                            "as many on canvases of twice its side).")
        models.add_argument("--max_batch_megabytes", type=int, default=512,
                            help="Upper bound on the pixels of one model batch, whatever the counts "
                            "(default 512 MB).")
        models.add_argument("--seg_cpu_threads", type=int, default=None,
                            help="torch CPU threads per Mask R-CNN process (default: the usable "
                            "CPUs divided among --direct_num_workers processes).")
        models.add_argument("--model_copies", type=int, default=None,
                            help="Copies of each model per worker machine (1 on a GPU worker).")
        parser.add_argument("--report", action="store_true",
                            help="Also write report/index.html next to the outputs: counts, errors and "
                                 "before/after thumbnails of up to 1,000 images.")
