"""Trains the PConv U-Net inpainter: `python -m models.pconv.train --help`.

Two stages as in Liu et al. 2018: stage 1 at lr 2e-4 with BatchNorm training, then a fine-tune
at lr 5e-5 with the encoder BatchNorms frozen. The step is Keras' own compiled train step
(`train_on_batch`; tf.function on TensorFlow, torch on the torch backend) with the inpainting loss
plugged in through `compute_loss`, so one loop serves both backends.

A run directory holds everything: `model.keras` (the plain U-Net, float32, what
`load_inpainting_model` and the pipeline load), `metadata.json` (data, steps, loss terms, VGG
on/off, hardware, last validation), `state/` (weights, optimizer, step, stage, config: what
`--resume` continues from), `validation.csv`, `samples/`, `tensorboard/` and `train.log`.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import hashlib
import json
import logging
import os
import platform
import shutil
import signal
import sys
import threading
import time
import zipfile
from dataclasses import dataclass, field

import numpy as np

logger = logging.getLogger("models.pconv.train")

STAGE_NAMES = {1: "stage 1 (BatchNorm training)", 2: "stage 2 (fine-tune, encoder BatchNorm frozen)"}
CACHE_LIMIT_BYTES = 2 << 30  # --cache auto keeps encoded photos in memory below this total
SAMPLE_COUNT = 6             # validation pairs shown as samples: the first image of each band
METADATA_IN_ARCHIVE = "training_metadata.json"  # copy of metadata.json inside model.keras
RUN_RESULTS = ("model.keras", "metadata.json", "validation.csv")  # what a new run must not overwrite


@dataclass
class TrainConfig:
    """Everything that defines a run; saved in the run directory so `--resume` reuses it."""

    train_data: list[str] = field(default_factory=list)
    val_data: list[str] = field(default_factory=list)
    val_holdout: float = 0.05
    val_images: int = 8
    cache: str = "auto"
    shuffle_buffer: int = 512
    mask_source: str = "generated"
    mask_dir: str | None = None
    mask_hole_color: str = "white"
    hole_ratio_range: tuple[float, float] = (0.01, 0.6)
    image_size: int = 256
    width_multiplier: float = 1.0
    depth: int | None = None
    vgg_weights: str | None = None
    vgg_preprocessing: str = "torch"
    ssim_weight: float = 0.0
    init_weights: str | None = None
    batch_size: int = 8
    stage1_steps: int = 20000
    stage2_steps: int = 5000
    lr_stage1: float = 2e-4
    lr_stage2: float = 5e-5
    mixed_precision: str = "off"
    jit_compile: str = "auto"
    seed: int = 0
    checkpoint_every: int = 500
    val_every: int = 500
    log_every: int = 20

    @property
    def total_steps(self) -> int:
        return self.stage1_steps + self.stage2_steps

    @property
    def model_depth(self) -> int:
        """The paper's 8 levels at 512 px; one fewer per halving, so the bottleneck stays 2x2."""
        if self.depth is not None:
            return self.depth
        return max(1, min(8, self.image_size.bit_length() - 2))

    def stage_at(self, step: int) -> int:
        return 1 if step < self.stage1_steps else 2

    def learning_rate(self, stage: int) -> float:
        return self.lr_stage1 if stage == 1 else self.lr_stage2


# Changing these mid-run would make the saved state describe a different model or optimizer, or
# (val_holdout) move photos already trained on into validation.
FIXED_ON_RESUME = ("image_size", "width_multiplier", "depth", "mixed_precision", "vgg_weights",
                   "vgg_preprocessing", "lr_stage1", "lr_stage2", "seed", "val_holdout")


# ---------------------------------------------------------------------------------------------
# Command line


def build_arg_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m models.pconv.train",
        description=(
            "Train the PConv U-Net inpainter (Liu et al. 2018) on your photos. Stage 1 trains "
            "everything at --lr_stage1; stage 2 fine-tunes at --lr_stage2 with the encoder "
            "BatchNorms frozen. Writes RUN_DIR/model.keras (the inference model: the pipeline and "
            "`python -m models.pconv.evaluate --weights` load it), metadata.json, resumable state/, "
            "TensorBoard logs (tensorboard/), validation.csv, samples/ and train.log."),
        epilog=(
            "Example: python -m models.pconv.train --train_data 'photos/**/*.jpg' "
            "--run_dir runs/my-photos --image_size 256 --batch_size 8 --stage1_steps 20000 "
            "--stage2_steps 5000 --vgg_weights vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5 "
            "--vgg_preprocessing caffe. Stop any time (Ctrl-C or kill): a checkpoint is saved and "
            "--run_dir runs/my-photos --resume continues."),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        argument_default=argparse.SUPPRESS)  # only flags the user typed reach the config
    defaults = TrainConfig()

    def flag(group, name, help_text, **kwargs):
        value = getattr(defaults, name)
        if value is not None and value != []:
            shown = " ".join(map(str, value)) if isinstance(value, (list, tuple)) else value
            help_text += f" (default: {shown})"
        group.add_argument(f"--{name}", help=help_text, **kwargs)

    run = parser.add_argument_group("run")
    run.add_argument("--run_dir", required=True,
                     help="local directory for the model, state, logs and samples of this run (copy "
                          "model.keras to gs:// or elsewhere afterwards)")
    run.add_argument("--resume", action="store_true", default=False,
                     help="continue the run in --run_dir from its last checkpoint: same step count, "
                          "stage, optimizer state and config; schedule, logging and data paths may "
                          "be overridden (data paths only to the same validation files, e.g. after "
                          "moving the data), the model, learning rates and validation split may not")
    run.add_argument("--run_steps", type=int, default=None,
                     help="stop this invocation after this many steps (checkpoint saved; --resume goes on)")
    run.add_argument("--max_minutes", type=float, default=None,
                     help="stop this invocation after this many minutes of wall time (checkpoint saved)")

    data = parser.add_argument_group("data")
    flag(data, "train_data", "training photos: globs or folders of images (JPEG, PNG, GIF, BMP, WebP, "
         "TIFF, HEIC/HEIF, AVIF, JPEG 2000, MPO, PPM/PGM) and/or TFRecord shards with image/encoded "
         "(ImageNet-1k Kaggle format, any of those formats), local or gs:// / any fsspec URI; required "
         "for a new run", nargs="+", metavar="PATTERN")
    flag(data, "val_data", "validation photos, same forms as --train_data; must share no file with it. "
         "When absent, --val_holdout of the training files (by file name hash) are held out instead",
         nargs="+", metavar="PATTERN")
    flag(data, "val_holdout", "fraction of training files held out for validation when --val_data is "
         "absent (at least one file; with image files, two or more), chosen by file name hash: an image "
         "file is held out whole, a TFRecord shard only lends validation its first --val_images records "
         "and trains on the rest (a lone shard too)", type=float)
    flag(data, "val_images", "validation photos; each is scored with one generated mask per hole-ratio "
         "band 0-10%%, ..., 50-60%%", type=int)
    flag(data, "cache", "keep encoded photos in memory after the first pass: auto = when they total "
         "under 2 GiB", choices=["auto", "memory", "none"])
    flag(data, "shuffle_buffer", "photos in the shuffle buffer", type=int)

    masks = parser.add_argument_group("hole masks")
    flag(masks, "mask_source", "generated = random strokes/circles/ellipses; folder = images in "
         "--mask_dir; both = half and half", choices=["generated", "folder", "both"])
    flag(masks, "mask_dir", "folder of mask images (searched recursively, resized to --image_size, "
         "randomly flipped and rotated), e.g. ../shared/data/masks")
    flag(masks, "mask_hole_color", "which colour is the hole in --mask_dir images (white for the NVIDIA "
         "irregular-mask set)", choices=["white", "black"])
    flag(masks, "hole_ratio_range", "hole area / image area range of generated masks",
         nargs=2, type=float, metavar=("LOW", "HIGH"))

    model = parser.add_argument_group("model and loss")
    flag(model, "image_size", "training crop side in pixels; the saved model takes this size "
         "(photos smaller than it are upscaled, never distorted)", type=int)
    flag(model, "width_multiplier", "scales every layer's channel count (1.0 = the paper's widths)",
         type=float)
    flag(model, "depth", "encoder/decoder levels (default: 8 at 512 px, one fewer per halving, so the "
         "bottleneck stays 2x2)", type=int)
    flag(model, "vgg_weights", "VGG16 ImageNet weights in the Keras layout without top (local path or "
         "URI; see --vgg_preprocessing) for the perceptual and style terms; without it the loss has "
         "pixel terms only (logged and saved in metadata)")
    flag(model, "vgg_preprocessing", "input convention of --vgg_weights: torch = torchvision's VGG16 "
         "converted to the Keras layout (RGB, ImageNet mean/std; what the paper used), caffe = Keras' "
         "own vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5 (BGR, 0-255 minus mean)",
         choices=["torch", "caffe"])
    flag(model, "ssim_weight", "weight of an added 1 - SSIM term on the composite (not in the paper; "
         "0 = off); it targets the blotchy fills the pixel terms leave when there is no VGG", type=float)
    flag(model, "init_weights", "start a new run from this .keras model's weights (local path or URI; "
         "same --image_size, --width_multiplier and --depth), e.g. fine-tune the shipped "
         "assets/inpainter/pconv_unet.keras on your own photos; not with --resume, which continues "
         "from the run's own state")

    training = parser.add_argument_group("training")
    flag(training, "batch_size", "photos per step", type=int)
    flag(training, "stage1_steps", "steps of stage 1 (BatchNorm training)", type=int)
    flag(training, "stage2_steps", "steps of stage 2 (fine-tune, encoder BatchNorm frozen), after stage 1",
         type=int)
    flag(training, "lr_stage1", "Adam learning rate of stage 1", type=float)
    flag(training, "lr_stage2", "Adam learning rate of stage 2 (a fresh Adam)", type=float)
    flag(training, "mixed_precision", "off, float16 (GPUs; with loss scaling) or bfloat16",
         choices=["off", "float16", "bfloat16"])
    flag(training, "jit_compile", "XLA / torch.compile for the train step: auto = Keras' choice "
         "(XLA on TensorFlow GPUs, off on CPU and on torch)", choices=["auto", "on", "off"])
    flag(training, "seed", "seed of the photos' order, crops, masks and the validation masks: one seed "
         "gives the same batches on every run, from image files and TFRecord shards alike (a resumed run "
         "draws its own from the step it resumes at)", type=int)

    logs = parser.add_argument_group("checkpoints and logs")
    flag(logs, "checkpoint_every", "save state and model.keras every N steps (and at the end)", type=int)
    flag(logs, "val_every", "validate (L1/PSNR/SSIM per band, TensorBoard samples) every N steps; "
         "0 = never, and no files are held out (so --resume cannot switch it between 0 and not)", type=int)
    flag(logs, "log_every", "log loss terms and steps/s every N steps", type=int)
    return parser


def config_from_args(args: argparse.Namespace, saved: TrainConfig | None) -> TrainConfig:
    """The new run's config (defaults + flags) or the saved one with the allowed overrides."""
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig) if hasattr(args, f.name)}
    if "hole_ratio_range" in given:
        given["hole_ratio_range"] = tuple(given["hole_ratio_range"])
    if saved is None:
        config = TrainConfig(**given)
        if not config.train_data:
            raise SystemExit("--train_data is required for a new run")
        return config
    if given.get("depth") == saved.model_depth:
        given["depth"] = saved.depth  # the depth the run already uses, typed out
    changed = [name for name in FIXED_ON_RESUME if name in given and given[name] != getattr(saved, name)]
    if changed:
        raise SystemExit(f"--resume cannot change {', '.join(changed)}: the saved state was made with "
                         + ", ".join(f"{name}={getattr(saved, name)!r}" for name in changed))
    overrides = {k: v for k, v in given.items() if v != getattr(saved, k)}
    if given.get("mask_source") == "generated" and "mask_dir" not in given:
        overrides["mask_dir"] = None  # back to generated masks: the run's mask folder no longer applies
    if overrides:
        logger.info("resume overrides: %s", overrides)
    return dataclasses.replace(saved, **overrides)


def config_problem(config: TrainConfig) -> str | None:
    """What is wrong with the values of `config`, found before any work (some would otherwise
    fail only after steps were trained, losing them), or None."""
    from models.pconv.unet import MAX_DEPTH

    at_least = {"batch_size": 1, "image_size": 1, "val_images": 1, "shuffle_buffer": 1, "checkpoint_every": 1,
                "log_every": 1, "val_every": 0, "stage1_steps": 0, "stage2_steps": 0}
    for name, low in at_least.items():
        if getattr(config, name) < low:
            return f"--{name} must be at least {low}, got {getattr(config, name)}"
    for name in ("width_multiplier", "lr_stage1", "lr_stage2"):
        if not getattr(config, name) > 0:
            return f"--{name} must be positive, got {getattr(config, name)}"
    if not config.ssim_weight >= 0:
        return f"--ssim_weight must be 0 or more, got {config.ssim_weight}"
    if not 0 < config.val_holdout < 1:
        return f"--val_holdout must lie between 0 and 1, got {config.val_holdout}"
    low, high = config.hole_ratio_range
    if not 0 <= low < high <= 1:
        return f"--hole_ratio_range must satisfy 0 <= LOW < HIGH <= 1, got {low} {high}"
    if config.depth is not None and not 1 <= config.depth <= MAX_DEPTH:
        return f"--depth must be between 1 and {MAX_DEPTH}, got {config.depth}"
    side = 2 ** config.model_depth
    if config.image_size % side:
        return (f"--image_size must be a multiple of 2**depth = {side} (each of the {config.model_depth} "
                f"encoder levels halves it), got {config.image_size}")
    if config.mask_source != "generated" and not config.mask_dir:
        return f"--mask_source {config.mask_source} needs --mask_dir"
    if config.mask_dir and config.mask_source == "generated":
        return "--mask_dir needs --mask_source folder (or both)"
    return None


def check_inputs(config: TrainConfig) -> None:
    """Exits with a message when the mask folder or the starting weights cannot be used; the
    training sources are checked when they are split (`split_train_val`)."""
    from models.uri import ModelFileError

    if config.mask_dir:
        from models.pconv.data import expand_sources, first_decodable_photo

        try:
            masks = expand_sources([config.mask_dir], kinds="images")
        except FileNotFoundError as error:
            raise SystemExit(f"--mask_dir: {error}") from None
        if first_decodable_photo(masks) is None:  # training would wait forever for a first mask
            raise SystemExit(f"--mask_dir: no decodable mask images in {config.mask_dir} "
                             f"({len(masks)} files; see the warnings above)")
    if config.init_weights:
        from models.pconv import load_inpainting_model

        try:  # not only found: a PConv U-Net (its shapes are compared with this run's once it is built)
            load_inpainting_model(config.init_weights)
        except ModelFileError as error:
            raise SystemExit(f"--init_weights: {error}") from None


# ---------------------------------------------------------------------------------------------
# Data


@dataclass(frozen=True)
class DataSplit:
    """Training and validation files, sharing no photo. A TFRecord shard held out for validation is
    in both: validation reads only its first `held_out_records[shard]` records, training the rest."""

    train: list[str]
    val: list[str]
    held_out_records: dict[str, int] = field(default_factory=dict)


def split_train_val(config: TrainConfig, held_out_before: dict[str, int] | None = None) -> DataSplit:
    """Training and validation files, guaranteed disjoint (the seed's validation fallback was not).

    A held-out image file is held out whole; a held-out shard only lends validation its first
    --val_images records (validation scores no more), so training loses no more photos than that.
    held_out_before: file name -> records held out by the run being resumed, which keeps them
    whatever its --val_images is now (its training already read the others).
    """
    from models.pconv.data import expand_sources, is_image_file

    try:
        train = expand_sources(config.train_data)
    except FileNotFoundError as error:
        raise SystemExit(f"--train_data: {error}") from None
    if config.val_every <= 0:
        return DataSplit(train, [])
    if config.val_data:
        try:
            val = expand_sources(config.val_data)
        except FileNotFoundError as error:
            raise SystemExit(f"--val_data: {error}") from None
        shared = sorted(set(map(_file_identity, train)) & set(map(_file_identity, val)))
        if shared:
            raise SystemExit(f"{len(shared)} files are in both --train_data and --val_data "
                             f"(e.g. {shared[0]}): validation must be separate")
        return DataSplit(train, val)
    if len(train) == 1 and is_image_file(train[0]):
        raise SystemExit(f"one training photo ({train[0]}) cannot be split for validation: pass "
                         "--val_data, or --val_every 0 to train without validation")
    # Hash of the file name, not the path: the same files stay held out when the data moves.
    by_hash = sorted(train, key=lambda p: hashlib.sha256(os.path.basename(p).encode()).hexdigest())
    # At least one file left whole for training, bar a lone shard: it lends its first records.
    count = max(1, min(len(train) - 1, round(len(train) * config.val_holdout)))
    val = sorted(by_hash[:count])
    held_out_shards = [path for path in val if not is_image_file(path)]
    held_out = {path: (held_out_before or {}).get(os.path.basename(path), config.val_images)
                for path in held_out_shards}
    if any(records < config.val_images for records in held_out.values()):
        logger.warning("this run holds out only the first %d records of each held-out shard (its --val_images "
                       "when it started): validation scores no others, even with --val_images %d",
                       min(held_out.values()), config.val_images)
    return DataSplit(sorted(by_hash[count:] + held_out_shards), val, held_out)


def _file_identity(path: str) -> str:
    """One name per local file however it is spelled (relative, absolute, via links); URIs as given."""
    from models.uri import is_remote

    return path if is_remote(path) else os.path.realpath(path)


def _saved_data(run_dir: str) -> dict | None:
    """The `data` block of the metadata.json of the run in `run_dir` (None where it has none)."""
    path = os.path.join(run_dir, "metadata.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)["data"]


def _check_same_validation_files(saved_data: dict | None, val_files: list[str]) -> None:
    """A resumed run must validate on the files it validated on before: a split recomputed from
    other sources or settings would hold out photos already trained on, or train on held-out ones."""
    if saved_data is None:
        return
    before = sorted(saved_data["val_file_names"])
    now = sorted(os.path.basename(p) for p in val_files)
    if now != before:
        differing = sorted(set(now) ^ set(before)) or now
        raise SystemExit(f"--resume would validate on other files than this run did ({len(before)} before, "
                         f"{len(now)} now, e.g. {differing[0]}), so validation could see photos already "
                         "trained on: resume with the same --train_data, --val_data, --val_holdout and "
                         "--val_every 0 or not (paths may move, the files may not change)")


def _use_cache(config: TrainConfig, files: list[str]) -> bool:
    from models.pconv.data import total_size_bytes

    if config.cache != "auto":
        return config.cache == "memory"
    return total_size_bytes(files, stop_above=CACHE_LIMIT_BYTES) < CACHE_LIMIT_BYTES


# ---------------------------------------------------------------------------------------------
# Model and training step


def _build_trainer(config: TrainConfig, loss_fn):
    import keras

    from models.pconv import build_pconv_unet

    class InpaintingTrainer(keras.Model):
        """Wraps the U-Net so Keras' compiled train step uses the inpainting loss, which needs the
        mask (an input) besides target and prediction, and reports each loss term."""

        def __init__(self, unet):
            super().__init__(name="pconv_trainer")
            self.unet = unet
            self.term_names = list(_term_names(loss_fn, config.image_size))
            self.term_trackers = [keras.metrics.Mean(name=name) for name in self.term_names]

        def call(self, inputs, training=False):
            return self.unet(inputs, training=training)

        def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
            total, terms = loss_fn(y, y_pred, x[1])
            for name, tracker in zip(self.term_names, self.term_trackers):
                tracker.update_state(terms[name])
            return total

    unet = build_pconv_unet(config.image_size, config.width_multiplier, config.model_depth,
                            name=f"pconv_unet_{config.image_size}")
    return InpaintingTrainer(unet), unet


def _term_names(loss_fn, image_size: int):
    """Names of the loss terms, from one tiny eager call (the set depends on VGG being on)."""
    size = min(image_size, 32)
    image = np.full((1, size, size, 3), 0.5, np.float32)
    mask = np.ones_like(image)
    mask[:, : size // 2] = 0.0
    return loss_fn(image, image, mask)[1].keys()


def _start_stage(trainer, unet, config: TrainConfig, stage: int, optimizer_values=None) -> None:
    """Freezes or unfreezes the encoder BatchNorms and compiles a fresh Adam for `stage`, then
    restores `optimizer_values` (a resumed run) into it."""
    import keras

    from models.pconv import set_encoder_bn_frozen

    set_encoder_bn_frozen(unet, stage == 2)
    jit = {"auto": "auto", "on": True, "off": False}[config.jit_compile]
    trainer.compile(optimizer=keras.optimizers.Adam(config.learning_rate(stage)), jit_compile=jit)
    trainer.optimizer.build(trainer.trainable_variables)
    if optimizer_values is not None:
        variables = trainer.optimizer.variables
        if len(variables) != len(optimizer_values):
            raise SystemExit(f"saved optimizer has {len(optimizer_values)} variables, this model's "
                             f"{len(variables)}: the state does not belong to this model")
        for variable, value in zip(variables, optimizer_values):
            if tuple(variable.shape) != value.shape:
                raise SystemExit(f"saved optimizer variable {variable.path} has shape {value.shape}, "
                                 f"expected {tuple(variable.shape)}")
            variable.assign(value)
    logger.info("%s: lr %g, %d trainable tensors", STAGE_NAMES[stage], config.learning_rate(stage),
                len(trainer.trainable_variables))


def initialise_from(unet, uri: str) -> None:
    """Copies the weights of the `.keras` model at `uri` into `unet`, which must have its shapes."""
    from models.pconv import load_inpainting_model

    source, fetched = load_inpainting_model(uri)
    theirs = [tuple(w.shape) for w in source.weights]
    ours = [tuple(w.shape) for w in unet.weights]
    if theirs != ours:
        if len(theirs) != len(ours):
            difference = f"{len(theirs)} weight tensors, this run's {len(ours)}"
        else:
            index = next(i for i, (a, b) in enumerate(zip(theirs, ours)) if a != b)
            difference = f"{source.weights[index].path} is {theirs[index]}, this run's {ours[index]}"
        config = (read_training_metadata(fetched.path) or {}).get("config")
        flags = ("it was trained with " + " ".join(f"--{name} {config[name]}" for name in
                                                   ("image_size", "width_multiplier", "depth") if config.get(name))
                 if config else "pass the --image_size, --width_multiplier and --depth it was trained with")
        raise SystemExit(f"--init_weights {uri}: its U-Net differs from this run's ({difference}): {flags}")
    unet.set_weights(source.get_weights())
    logger.info("initialised from %s (sha256 %s)", uri, fetched.short_id)


def _describe_init(uri: str | None) -> dict | None:
    """Where a fine-tune started: the file and its digest, and that file's own training steps."""
    if not uri:
        return None
    from models.uri import fetch

    fetched = fetch(uri)
    described = {"uri": uri, "sha256": fetched.sha256}
    metadata = read_training_metadata(fetched.path)
    if metadata:
        described["steps"] = metadata.get("steps")
        described["init_weights"] = metadata.get("init_weights")
    return described


def _learning_rate(trainer) -> float:
    return float(np.asarray(trainer.optimizer.learning_rate))


# ---------------------------------------------------------------------------------------------
# Run directory: state, exported model, metadata


def load_state(run_dir: str) -> tuple[dict, list[np.ndarray]] | None:
    """(state.json contents, optimizer arrays) of the last checkpoint, or None for a fresh run dir."""
    for name in ("state", "state.old"):  # state.old: a crash between the two renames of a save
        path = os.path.join(run_dir, name)
        if os.path.isfile(os.path.join(path, "state.json")):
            with open(os.path.join(path, "state.json")) as f:
                state = json.load(f)
            with np.load(os.path.join(path, "optimizer.npz")) as arrays:
                values = [arrays[f"arr_{i}"] for i in range(len(arrays.files))]
            state["weights_path"] = os.path.join(path, "unet.weights.h5")
            return state, values
    return None


def _save_state(run_dir: str, unet, trainer, step: int, stage: int, config: TrainConfig) -> None:
    """Writes state/ atomically: a crash mid-save leaves the previous checkpoint usable."""
    final, partial, old = (os.path.join(run_dir, n) for n in ("state", "state.tmp", "state.old"))
    shutil.rmtree(partial, ignore_errors=True)
    os.makedirs(partial)
    unet.save_weights(os.path.join(partial, "unet.weights.h5"))
    np.savez(os.path.join(partial, "optimizer.npz"),
             *[np.asarray(variable.numpy()) for variable in trainer.optimizer.variables])
    with open(os.path.join(partial, "state.json"), "w") as f:
        json.dump({"step": step, "stage": stage,
                   "optimizer_iterations": int(np.asarray(trainer.optimizer.iterations.numpy())),
                   "config": dataclasses.asdict(config)}, f, indent=2)
    shutil.rmtree(old, ignore_errors=True)
    if os.path.isdir(final):
        os.replace(final, old)
    os.replace(partial, final)
    shutil.rmtree(old, ignore_errors=True)


def export_model(unet, config: TrainConfig, path: str, metadata: dict) -> None:
    """Saves the plain U-Net as a float32 `.keras` file with `metadata` inside it.

    A mixed-precision model is rebuilt in float32 first, so the shipped file runs in full
    precision everywhere. The metadata rides in the archive as METADATA_IN_ARCHIVE, which Keras
    ignores on load, so the file itself says how it was trained (e.g. without VGG).
    """
    import keras

    from models.pconv import build_pconv_unet

    model = unet
    if unet.dtype_policy.name != "float32":
        previous = keras.config.dtype_policy()
        keras.config.set_dtype_policy("float32")
        try:
            model = build_pconv_unet(config.image_size, config.width_multiplier, config.model_depth,
                                     name=unet.name)
        finally:
            keras.config.set_dtype_policy(previous)
        model.set_weights(unet.get_weights())
    partial = path[: -len(".keras")] + ".partial.keras"
    model.save(partial)
    with zipfile.ZipFile(partial, "a") as archive:
        archive.writestr(METADATA_IN_ARCHIVE, json.dumps(metadata, indent=2))
    os.replace(partial, path)


def read_training_metadata(model_path: str) -> dict | None:
    """The training metadata stored inside a `.keras` file by `export_model`, if any."""
    with zipfile.ZipFile(model_path) as archive:
        if METADATA_IN_ARCHIVE not in archive.namelist():
            return None
        return json.loads(archive.read(METADATA_IN_ARCHIVE))


def describe_hardware() -> dict:
    """Backend, framework versions and the device that trained: provenance for metadata.json."""
    import keras

    info = {"keras_backend": keras.backend.backend(), "keras": keras.__version__,
            "python": platform.python_version(), "platform": platform.platform(),
            "cpu_count": os.cpu_count(), "cpu": _cpu_model()}
    if info["keras_backend"] == "torch":
        import torch

        info["torch"] = torch.__version__
        info["device"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    else:
        import tensorflow as tf

        info["tensorflow"] = tf.__version__
        gpus = tf.config.list_physical_devices("GPU")
        info["device"] = (tf.config.experimental.get_device_details(gpus[0]).get("device_name", "gpu")
                          if gpus else "cpu")
    return info


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


# ---------------------------------------------------------------------------------------------
# Logging: TensorBoard events, samples, progress


class EventWriter:
    """TensorBoard scalars and images through TensorFlow's summary writer.

    The events are written with the core `tf.summary.write` op and the scalars/images plugin
    tags, so they need no `tensorboard` package here (only to view them).
    """

    def __init__(self, log_dir: str):
        import tensorflow as tf
        from tensorflow.core.framework import summary_pb2

        self._tf = tf
        self._writer = tf.summary.create_file_writer(log_dir)
        self._metadata = {
            plugin: summary_pb2.SummaryMetadata(
                plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name=plugin)).SerializeToString()
            for plugin in ("scalars", "images")}

    def scalars(self, step: int, values: dict[str, float]) -> None:
        tf = self._tf
        with self._writer.as_default(step=step):
            for tag, value in values.items():
                tf.summary.write(tag, tf.constant(value, tf.float32), metadata=self._metadata["scalars"])

    def images(self, step: int, tag: str, images: np.ndarray) -> None:
        """`images`: (N, H, W, C) float in [0, 1]."""
        tf = self._tf
        encoded = [tf.io.encode_png(_to_uint8(image)).numpy() for image in images]
        height, width = images.shape[1:3]
        tensor = tf.constant([str(width).encode(), str(height).encode(), *encoded])
        with self._writer.as_default(step=step):
            tf.summary.write(tag, tensor, metadata=self._metadata["images"])

    def resumed_after(self, step: int) -> None:
        """Marks a run resumed from its checkpoint at `step` (or started at 0): TensorBoard then drops
        the events of later steps read before this mark, logged by a run killed before its next
        checkpoint (the SessionLog START that TensorFlow 1's Supervisor wrote on a restart, for the
        same purpose)."""
        from tensorflow.core.util import event_pb2
        from tensorflow.python.ops import summary_ops_v2  # import_event: no public API writes an Event

        event = event_pb2.Event(step=step + 1, wall_time=time.time(),
                                session_log=event_pb2.SessionLog(status=event_pb2.SessionLog.START))
        with self._writer.as_default():
            summary_ops_v2.import_event(self._tf.constant(event.SerializeToString()))

    def flush(self) -> None:
        self._writer.flush()


def _to_uint8(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image, np.float32)
    if image.shape[-1] == 1:
        image = np.repeat(image, 3, axis=-1)
    return np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)


def _save_sample_grid(path: str, columns: dict[str, np.ndarray]) -> None:
    """One PNG: a row per sample, a column per kind (input, mask, output, composite, truth)."""
    from PIL import Image

    rows = [np.concatenate([_to_uint8(kind[i]) for kind in columns.values()], axis=1)
            for i in range(len(next(iter(columns.values()))))]
    Image.fromarray(np.concatenate(rows, axis=0)).save(path)


class Progress:
    """A Keras progress bar of the current loss terms and steps/s on a terminal (on a pipe or file
    the periodic log lines say the same), and the steps/s meter behind both."""

    def __init__(self, total_steps: int, first_step: int, names: list[str]):
        import keras

        self.first_step = first_step
        self.interactive = sys.stdout.isatty()
        self.bar = keras.utils.Progbar(total_steps - first_step, verbose=1 if self.interactive else 2,
                                       stateful_metrics=[*names, "steps/s"], unit_name="step")
        self._window = None

    def restart_rate(self, step: int) -> None:
        """Starts measuring at `step`: called after a step that compiled the train function."""
        self._window = (step, time.perf_counter())

    def steps_per_second(self, step: int) -> float | None:
        """Mean rate since the last call or restart; None when there is nothing to measure yet."""
        if self._window is None or self._window[0] == step:
            return None
        now = time.perf_counter()
        start_step, start_time = self._window
        self._window = (step, now)
        return (step - start_step) / (now - start_time)

    def update(self, step: int, values: dict[str, float]) -> None:
        if self.interactive:
            self.bar.update(step - self.first_step, list(values.items()))


# ---------------------------------------------------------------------------------------------
# Validation


def validate(unet, val, batch_size: int):
    """Per-band metrics of the composite on the validation set, plus the sample columns."""
    import keras

    from models.pconv import composite
    from models.pconv.metrics import BandedScores

    scores = BandedScores()
    outputs, composites = [], []
    for start in range(0, len(val), batch_size):
        images = val.images[start:start + batch_size]
        masks = np.repeat(val.masks[start:start + batch_size], 3, axis=-1)
        # Clipped as the Inpainter does when it writes pixels: the scores are what users get.
        prediction = np.clip(keras.ops.convert_to_numpy(unet.predict_on_batch([images * masks, masks])), 0, 1)
        filled = keras.ops.convert_to_numpy(composite(images, masks, prediction))
        bands = val.bands[start:start + batch_size]
        for band in sorted(set(bands)):
            chosen = [i for i, b in enumerate(bands) if b == band]
            scores.add(band, filled[chosen], images[chosen])
        outputs.append(prediction.astype(np.float32))
        composites.append(filled)
    outputs, composites = np.concatenate(outputs), np.concatenate(composites)
    first_of_band = [val.bands.index(band) for band in sorted(set(val.bands))][:SAMPLE_COUNT]
    masks = val.masks[first_of_band]
    samples = {"input": val.images[first_of_band] * masks, "mask": masks,
               "output": outputs[first_of_band], "composite": composites[first_of_band],
               "ground_truth": val.images[first_of_band]}
    return scores.rows(), samples


def _append_validation_csv(path: str, step: int, rows: list[dict]) -> None:
    new = not os.path.exists(path)
    with open(path, "a") as f:
        if new:
            f.write("step,band,count,l1,psnr,ssim\n")
        for row in rows:
            f.write(f"{step},{row['band']},{row['count']},{row['l1']:.6f},{row['psnr']:.4f},{row['ssim']:.6f}\n")


# ---------------------------------------------------------------------------------------------
# The run


def train(config: TrainConfig, run_dir: str, resume: bool = False, run_steps: int | None = None,
          max_minutes: float | None = None) -> dict:
    """Trains (or resumes) the run in `run_dir`; returns the final metadata. Logs also go to
    `run_dir/train.log`."""
    try:
        os.makedirs(run_dir, exist_ok=True)
    except OSError as error:  # a file of that name, no permission, ...
        raise SystemExit(f"--run_dir: cannot make {run_dir}: {error}") from None
    log_file = logging.FileHandler(os.path.join(run_dir, "train.log"))
    log_file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(log_file)
    try:
        return _train(config, run_dir, resume, run_steps, max_minutes)
    finally:
        logging.getLogger().removeHandler(log_file)
        log_file.close()


def _train(config: TrainConfig, run_dir: str, resume: bool, run_steps: int | None,
           max_minutes: float | None) -> dict:
    import keras
    import tensorflow as tf

    from models.pconv import InpaintingLoss
    from models.pconv import data as pipeline
    from models.pconv.metrics import format_table

    if keras.backend.backend() != "tensorflow":
        tf.config.set_visible_devices([], "GPU")  # tf.data only: leave the GPU to the training backend
    saved = load_state(run_dir) if resume else None
    if resume and saved is None:
        raise SystemExit(f"--resume: no checkpoint in {run_dir}/state")
    step = saved[0]["step"] if saved else 0
    stage = config.stage_at(step)
    # The saved optimizer belongs to the stage of the last step trained; at the stage boundary (or
    # after a schedule change on resume) the next step starts the other stage with a fresh Adam.
    optimizer_values = saved[1] if saved and saved[0]["stage"] == stage else None
    if saved and saved[0]["stage"] > stage:
        logger.warning("the saved state is in stage 2 but step %d lies in stage 1 of the new schedule: "
                       "going back to stage 1 with a fresh optimizer", step)

    policy = {"off": "float32", "float16": "mixed_float16", "bfloat16": "mixed_bfloat16"}[config.mixed_precision]
    keras.config.set_dtype_policy(policy)
    batches = None
    try:
        # A run from before shards lent only their first records saved no held_out_records.
        saved_data = _saved_data(run_dir) if saved else None
        split = split_train_val(config, (saved_data or {}).get("held_out_records"))
        train_files, val_files = split.train, split.val
        _check_same_validation_files(saved_data, val_files)
        if saved and step == config.total_steps and os.path.exists(os.path.join(run_dir, "metadata.json")):
            # Nothing to train: model.keras is left as it is (exported again, its bytes would change).
            logger.info("the run has trained all %d steps of --stage1_steps %d + --stage2_steps %d: "
                        "nothing to do (raise them to train on)", step, config.stage1_steps, config.stage2_steps)
            with open(os.path.join(run_dir, "metadata.json")) as f:
                return json.load(f)
        if saved:
            _forget_logs_after(run_dir, step)
        if pipeline.first_decodable_photo(train_files, split.held_out_records) is None:
            raise SystemExit(f"no decodable training photos in {', '.join(config.train_data)} "
                             f"({len(train_files)} files, all unreadable or corrupt; see the warnings above)")
        cache = _use_cache(config, train_files)
        logger.info("training photos: %d files (%s); validation: %d files%s; cache: %s",
                    len(train_files), ", ".join(config.train_data), len(val_files),
                    "".join(f"; {os.path.basename(shard)} lends validation its first {count} records, "
                            "training reads the rest" for shard, count in split.held_out_records.items()),
                    "memory" if cache else "off")
        masks = pipeline.MaskConfig(config.mask_source, tuple(config.hole_ratio_range), config.mask_dir,
                                    config.mask_hole_color)
        # A different data seed per resume point: a resumed run does not replay the first batches.
        dataset = pipeline.training_dataset(train_files, image_size=config.image_size,
                                            batch_size=config.batch_size, masks=masks,
                                            seed=config.seed * 1_000_003 + step, cache=cache,
                                            shuffle_buffer=config.shuffle_buffer,
                                            held_out_records=split.held_out_records)
        try:
            val = (pipeline.validation_set(val_files, image_size=config.image_size,
                                           image_count=config.val_images, seed=config.seed,
                                           held_out_records=split.held_out_records)
                   if val_files else None)
        except ValueError as error:
            raise SystemExit(f"{error}: see the warnings above") from None

        loss_fn = InpaintingLoss(config.vgg_weights, config.vgg_preprocessing, ssim_weight=config.ssim_weight)
        if not loss_fn.uses_vgg:
            logger.warning("training WITHOUT VGG16: pixel loss terms only (no perceptual/style); "
                           "this is recorded in metadata.json and inside model.keras")
        trainer, unet = _build_trainer(config, loss_fn)
        if saved:
            unet.load_weights(saved[0]["weights_path"])
        elif config.init_weights:
            initialise_from(unet, config.init_weights)
        _start_stage(trainer, unet, config, stage, optimizer_values)
        logger.info("model %s: %d parameters, depth %d, width x%g, %s; backend %s",
                    unet.name, unet.count_params(), config.model_depth, config.width_multiplier, policy,
                    keras.backend.backend())

        hardware = describe_hardware()
        tensorboard = os.path.join(run_dir, "tensorboard")
        # A new run's folder may hold the events of one that stopped before its first checkpoint.
        logged_before = os.path.isdir(tensorboard) and bool(os.listdir(tensorboard))
        events = EventWriter(tensorboard)
        if saved or logged_before:
            events.resumed_after(step)
        os.makedirs(os.path.join(run_dir, "samples"), exist_ok=True)
        metadata = _initial_metadata(run_dir, config, step, split, loss_fn, trainer, hardware)
        last_validation = metadata.get("last_validation")

        started = time.monotonic()
        stop_step = config.total_steps if run_steps is None else min(config.total_steps, step + run_steps)
        progress = Progress(stop_step, step, ["loss", *trainer.term_names])
        rate, compiling = None, True
        batches = iter(dataset) if keras.backend.backend() == "tensorflow" else dataset.as_numpy_iterator()
        logger.info("training from step %d to %d of %d (%s)", step, stop_step, config.total_steps,
                    STAGE_NAMES[stage])
        saved_step = step if saved else None
        values = {}
        with StopRequest() as stop:
            while step < stop_step and not stop.requested:
                if config.stage_at(step) != stage:
                    stage = config.stage_at(step)
                    _start_stage(trainer, unet, config, stage)
                    compiling = True
                inputs, target = next(batches)
                logs = trainer.train_on_batch(inputs, target, return_dict=True)
                step += 1
                if compiling:  # the first step of a train function includes tracing it
                    progress.restart_rate(step)
                    compiling = False
                if not np.isfinite(logs["loss"]):
                    last = (f"the last checkpoint (step {saved_step}) is in {run_dir}/state"
                            if saved_step is not None else "no checkpoint was saved")
                    raise FloatingPointError(f"loss is {logs['loss']} at step {step}; {last}")
                values = {"loss": logs["loss"], **{n: logs[n] for n in trainer.term_names}}
                if step % config.log_every == 0 or step == stop_step:
                    rate = progress.steps_per_second(step) or rate
                    logger.info("step %d/%d stage %d lr %.2g %s%s", step, config.total_steps, stage,
                                _learning_rate(trainer), " ".join(f"{k} {v:.4f}" for k, v in values.items()),
                                f" {rate:.3f} steps/s" if rate else "")
                    events.scalars(step, {f"loss/{k}": v for k, v in values.items()}
                                   | {"learning_rate": _learning_rate(trainer), "stage": stage}
                                   | ({"steps_per_second": rate} if rate else {}))
                progress.update(step, values | ({"steps/s": rate} if rate else {}))
                if val is not None and config.val_every and step % config.val_every == 0:
                    last_validation = _validate_and_log(unet, val, config, step, run_dir, events, format_table)
                if step % config.checkpoint_every == 0 and step < stop_step:
                    metadata = _checkpoint(run_dir, unet, trainer, step, stage, config, metadata,
                                           last_validation, started, rate, values)
                    saved_step = step
                if max_minutes is not None and time.monotonic() - started > max_minutes * 60:
                    logger.info("stopping after %.1f minutes (--max_minutes)", max_minutes)
                    break
            if stop.requested:
                logger.warning("interrupted at step %d: saving a checkpoint", step)
            finished = step >= config.total_steps
            if val is not None and finished and (last_validation is None or last_validation["step"] != step):
                last_validation = _validate_and_log(unet, val, config, step, run_dir, events, format_table)
            metadata = _checkpoint(run_dir, unet, trainer, step, stage, config, metadata, last_validation,
                                   started, rate, values or metadata.get("last_losses"))
        events.flush()
        logger.info("saved %s at step %d/%d (%s)", os.path.join(run_dir, "model.keras"), step,
                    config.total_steps, "done" if finished else "resume with --resume")
        return metadata
    finally:
        # The input pipeline stops here, also after an error: left to the interpreter's exit, its
        # threads could wait forever for the lock Python holds there (a Python step in tf.data).
        batches = None  # noqa: F841
        keras.config.set_dtype_policy("float32")


def _validate_and_log(unet, val, config, step, run_dir, events, format_table) -> dict:
    rows, samples = validate(unet, val, config.batch_size)
    logger.info("validation at step %d (composite vs ground truth, per hole-ratio band):\n%s",
                step, format_table(rows))
    events.scalars(step, {f"val_{metric}/{row['band']}": row[metric]
                          for row in rows for metric in ("l1", "psnr", "ssim")})
    for kind, images in samples.items():
        events.images(step, f"samples/{kind}", images)
    _save_sample_grid(os.path.join(run_dir, "samples", f"step_{step:07d}.png"), samples)
    _append_validation_csv(os.path.join(run_dir, "validation.csv"), step, rows)
    return {"step": step, "bands": rows}


def _forget_logs_after(run_dir: str, step: int) -> None:
    """Drops the validation rows and sample images of steps after `step`, the checkpoint a run
    resumes from: a run killed before its next checkpoint wrote them, and the resumed run validates
    those steps again, with other weights (validation.csv held both sets of rows). TensorBoard's
    are dropped by `EventWriter.resumed_after`."""
    path, dropped_rows = os.path.join(run_dir, "validation.csv"), 0
    if os.path.exists(path):
        with open(path) as f:
            header, *rows = f.read().splitlines(keepends=True)
        kept = [row for row in rows if int(row.split(",", 1)[0]) <= step]
        dropped_rows = len(rows) - len(kept)
        if dropped_rows:
            with open(path, "w") as f:
                f.write(header + "".join(kept))
    samples = os.path.join(run_dir, "samples")
    later = [name for name in (os.listdir(samples) if os.path.isdir(samples) else [])
             if name.startswith("step_") and name.endswith(".png") and int(name[5:-4]) > step]
    for name in later:
        os.remove(os.path.join(samples, name))
    if dropped_rows or later:
        logger.info("resuming at step %d: dropped %d validation.csv rows and %d samples of later steps, "
                    "made after that checkpoint", step, dropped_rows, len(later))


def _initial_metadata(run_dir, config, step, split: DataSplit, loss_fn, trainer, hardware) -> dict:
    """metadata.json of this run; a resumed run keeps `created` and the earlier sessions."""
    from models.uri import fetch

    path = os.path.join(run_dir, "metadata.json")
    previous = {}
    if os.path.exists(path):
        with open(path) as f:
            previous = json.load(f)
    # Per session: a resumed run may change the loss weights (--ssim_weight) part-way.
    session = {"started": _now(), "started_at_step": step, "hardware": hardware,
               "loss_terms": {name: loss_fn.weights[name] for name in trainer.term_names}}
    return {
        "format": "bg-obj-remover pconv training run v1",
        "created": previous.get("created", session["started"]),
        "config": dataclasses.asdict(config),
        "data": {"train_sources": config.train_data, "train_files": len(split.train),
                 "val_sources": config.val_data or ("held out from train_data" if split.val else None),
                 "val_files": len(split.val), "val_file_names": [os.path.basename(p) for p in split.val],
                 # shard -> its first records, held out for validation (training reads the rest)
                 "held_out_records": {os.path.basename(p): n for p, n in split.held_out_records.items()},
                 "masks": {"source": config.mask_source, "dir": config.mask_dir,
                           "hole_color": config.mask_hole_color,
                           "generated_ratio_range": list(config.hole_ratio_range)}},
        "loss": {"vgg": loss_fn.uses_vgg, "vgg_weights": config.vgg_weights,
                 "vgg_sha256": fetch(config.vgg_weights).sha256 if loss_fn.uses_vgg else None,
                 "vgg_preprocessing": config.vgg_preprocessing if loss_fn.uses_vgg else None,
                 "terms": {name: loss_fn.weights[name] for name in trainer.term_names},
                 "note": None if loss_fn.uses_vgg else
                 "trained without VGG16: no perceptual or style loss"},
        "init_weights": previous.get("init_weights") or _describe_init(config.init_weights),
        "hardware": hardware,
        "sessions": previous.get("sessions", []) + [session],
        "last_validation": previous.get("last_validation"),
    }


def _checkpoint(run_dir, unet, trainer, step, stage, config, metadata, last_validation, started,
                steps_per_second, last_losses) -> dict:
    """Saves state/, model.keras and metadata.json; returns the updated metadata."""
    _save_state(run_dir, unet, trainer, step, stage, config)
    session = metadata["sessions"][-1] | {
        "ended_at_step": step, "stage": stage, "wall_seconds": round(time.monotonic() - started, 1),
        "steps_per_second": steps_per_second}
    metadata = metadata | {"steps": step, "total_steps": config.total_steps, "stage": stage,
                           "updated": _now(), "last_losses": last_losses,
                           "last_validation": last_validation,
                           "sessions": metadata["sessions"][:-1] + [session]}
    export_model(unet, config, os.path.join(run_dir, "model.keras"), metadata)
    with open(os.path.join(run_dir, "metadata.json"), "w") as f:
        json.dump(metadata, f, indent=2)
    logger.info("checkpoint at step %d", step)
    return metadata


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


class StopRequest:
    """While training, Ctrl-C or `kill PID` asks the loop to stop at the next step boundary and
    save a checkpoint: stopping mid-step would save an optimizer one update ahead of its step
    count. A second one stops at once, without a checkpoint. Signals are only handled here when
    running on the main thread."""

    def __init__(self):
        self.requested = False
        self._previous = {}

    def __enter__(self) -> "StopRequest":
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._request)
        return self

    def __exit__(self, *exc_info) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _request(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        logger.warning("%s: stopping after this step with a checkpoint (again: stop now, without one)",
                       signal.Signals(signum).name)


def main(argv: list[str] | None = None) -> int:
    from models.uri import is_remote, local_path

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    parser = build_arg_parser()
    args = parser.parse_args(argv)
    if is_remote(args.run_dir):  # it would be written to a local folder named after the URI
        parser.error(f"--run_dir must be a local directory, got {args.run_dir}: train into a local one "
                     "and copy its model.keras to where the pipeline reads it")
    args.run_dir = local_path(args.run_dir)  # a file:// URI made a folder named after it
    if args.resume and hasattr(args, "init_weights"):
        parser.error("--init_weights starts a new run; --resume continues from the run's own state")
    if args.run_steps is not None and args.run_steps < 1:
        parser.error(f"--run_steps must be at least 1, got {args.run_steps}")
    if args.max_minutes is not None and not args.max_minutes > 0:
        parser.error(f"--max_minutes must be positive, got {args.max_minutes}")
    saved = None
    if args.resume:
        state = load_state(args.run_dir)
        if state is None:
            raise SystemExit(f"--resume: no checkpoint in {args.run_dir}/state")
        saved = TrainConfig(**{k: tuple(v) if k == "hole_ratio_range" else v
                               for k, v in state[0]["config"].items()})
    elif load_state(args.run_dir) is not None:
        raise SystemExit(f"{args.run_dir} already holds a run: pass --resume to continue it, "
                         "or choose another --run_dir")
    elif earlier := [name for name in RUN_RESULTS if os.path.exists(os.path.join(args.run_dir, name))]:
        raise SystemExit(f"{args.run_dir} holds {', '.join(earlier)} of an earlier run, but no checkpoint "
                         "(state/) to --resume: a new run would overwrite them and carry that run's history "
                         "into its metadata; move them away or choose another --run_dir")
    config = config_from_args(args, saved)
    problem = config_problem(config)
    if problem:
        parser.error(problem)
    if saved is not None and (step := state[0]["step"]) > config.total_steps:
        raise SystemExit(f"--resume: the run has trained {step} steps, more than the {config.total_steps} of "
                         f"--stage1_steps {config.stage1_steps} + --stage2_steps {config.stage2_steps}: "
                         f"give a schedule of at least {step} steps")
    check_inputs(config)
    train(config, args.run_dir, resume=args.resume, run_steps=args.run_steps, max_minutes=args.max_minutes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
