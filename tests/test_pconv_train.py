"""PConv training: tiny runs that checkpoint and resume, the CLI, validation split and metrics."""
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from models.pconv import load_inpainting_model
from models.pconv import metrics
from models.pconv import train

TINY = ["--image_size", "32", "--width_multiplier", "0.125", "--batch_size", "2", "--val_images", "1",
        "--val_every", "2", "--checkpoint_every", "2", "--log_every", "1"]


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for i in range(4):
        # Smooth colour ramps plus noise: something a U-Net can start to learn in a few steps.
        ramp = np.linspace(0, 1, 48)[None, :, None] * rng.uniform(0.3, 1.0, 3) + rng.uniform(0, 0.3, 3)
        image = np.clip(np.broadcast_to(ramp, (40, 48, 3)) + rng.normal(0, 0.05, (40, 48, 3)), 0, 1)
        Image.fromarray((image * 255).astype(np.uint8)).save(folder / f"photo{i}.jpg")
    return str(folder)


@pytest.fixture(scope="module")
def resumed_run(photos, tmp_path_factory):
    """Run 1 stops after 3 of 2 + 2 steps (inside stage 2); run 2 resumes and finishes."""
    run_dir = str(tmp_path_factory.mktemp("run"))
    train.main(["--train_data", photos, "--run_dir", run_dir, "--stage1_steps", "2", "--stage2_steps", "2",
                "--run_steps", "3", *TINY])
    with open(os.path.join(run_dir, "state", "state.json")) as f:
        first = json.load(f)
    train.main(["--run_dir", run_dir, "--resume"])
    return run_dir, first


def test_second_run_resumes_where_the_first_stopped(resumed_run):
    run_dir, first = resumed_run
    assert (first["step"], first["stage"], first["optimizer_iterations"]) == (3, 2, 1)
    with open(os.path.join(run_dir, "state", "state.json")) as f:
        final = json.load(f)
    # 3 steps + 1 resumed step, still in stage 2 with the same (restored, not fresh) Adam.
    assert (final["step"], final["stage"], final["optimizer_iterations"]) == (4, 2, 2)
    with open(os.path.join(run_dir, "metadata.json")) as f:
        metadata = json.load(f)
    assert metadata["steps"] == 4 and metadata["total_steps"] == 4
    assert metadata["last_losses"] and all(math.isfinite(v) for v in metadata["last_losses"].values())
    assert set(metadata["last_losses"]) == {"loss", "valid", "hole", "tv"}
    assert metadata["loss"]["vgg"] is False and "without VGG16" in metadata["loss"]["note"]
    assert [s["started_at_step"] for s in metadata["sessions"]] == [0, 3]
    assert metadata["sessions"][1]["loss_terms"] == {"valid": 1.0, "hole": 6.0, "tv": 0.1}
    assert metadata["data"]["val_files"] == 1 and metadata["data"]["train_files"] == 3


def test_run_dir_holds_a_loadable_model_with_its_metadata(resumed_run):
    run_dir, _ = resumed_run
    model_path = os.path.join(run_dir, "model.keras")
    model, fetched = load_inpainting_model(model_path)
    assert [tuple(t.shape[1:]) for t in model.inputs] == [(32, 32, 3), (32, 32, 3)]
    assert train.read_training_metadata(model_path)["steps"] == 4
    images = np.full((1, 32, 32, 3), 0.5, np.float32)
    assert np.all(np.isfinite(model.predict_on_batch([images, np.ones_like(images)])))

    with open(os.path.join(run_dir, "validation.csv")) as f:
        lines = f.read().splitlines()
    assert lines[0] == "step,band,count,l1,psnr,ssim"
    assert {line.split(",")[0] for line in lines[1:]} == {"2", "4"}  # every 2 steps, across both runs
    assert len(lines) == 1 + 2 * 6
    assert sorted(os.listdir(os.path.join(run_dir, "samples"))) == ["step_0000002.png", "step_0000004.png"]
    assert os.listdir(os.path.join(run_dir, "tensorboard"))


def test_resume_refuses_to_change_the_model_and_new_runs_refuse_a_used_dir(resumed_run, photos):
    run_dir, _ = resumed_run
    with pytest.raises(SystemExit, match="image_size"):
        train.main(["--run_dir", run_dir, "--resume", "--image_size", "64"])
    with pytest.raises(SystemExit, match="--resume"):
        train.main(["--train_data", photos, "--run_dir", run_dir])


def test_resuming_a_finished_run_changes_nothing_and_a_schedule_below_its_steps_is_refused(resumed_run, tmp_path):
    """model.keras exported again would change its bytes (its sha256, the pipeline's identity of
    the model) for no training; a schedule shorter than the steps trained ended at once."""
    run_dir = tmp_path / "run"
    shutil.copytree(resumed_run[0], run_dir)
    before = {name: (run_dir / name).read_bytes() for name in ("model.keras", "metadata.json")}
    assert train.main(["--run_dir", str(run_dir), "--resume"]) == 0
    assert {name: (run_dir / name).read_bytes() for name in before} == before
    with pytest.raises(SystemExit, match=r"^--resume: the run has trained 4 steps, more than the 3 of "
                                         r"--stage1_steps 2 \+ --stage2_steps 1: give a schedule of at least 4 steps$"):
        train.main(["--run_dir", str(run_dir), "--resume", "--stage2_steps", "1"])
    assert {name: (run_dir / name).read_bytes() for name in before} == before


def test_a_new_run_refuses_an_earlier_runs_results_without_its_state(resumed_run, photos, tmp_path):
    """A folder whose state/ was deleted: a new run overwrote its model.keras and listed the old run's
    sessions, init weights and last validation as its own in metadata.json."""
    run_dir = tmp_path / "run"
    shutil.copytree(resumed_run[0], run_dir, ignore=shutil.ignore_patterns("state"))
    with pytest.raises(SystemExit, match=f"^{run_dir} holds model.keras, metadata.json, validation.csv of an "
                                         "earlier run, but no checkpoint"):
        train.main(["--train_data", photos, "--run_dir", str(run_dir), "--stage1_steps", "1", "--stage2_steps", "0",
                    *TINY])
    with open(run_dir / "metadata.json") as f:
        assert json.load(f)["steps"] == 4  # untouched


def test_resume_drops_the_validation_rows_and_samples_made_after_its_checkpoint(resumed_run, tmp_path):
    """A run killed after validating at step 6 but before checkpointing there: the resumed run
    validates step 6 again, and validation.csv (and TensorBoard) held both sets of rows."""
    run_dir = tmp_path / "run"
    shutil.copytree(resumed_run[0], run_dir)
    with open(run_dir / "validation.csv", "a") as f:
        f.write("".join(f"6,{band},1,0.1,20.0,0.9\n" for band in ("00-10", "10-20")))
    (run_dir / "samples" / "step_0000006.png").write_bytes(b"from the killed run")
    # Resumed at its checkpoint (step 4), one step more; the last step validates.
    train.main(["--run_dir", str(run_dir), "--resume", "--stage2_steps", "3"])
    with open(run_dir / "validation.csv") as f:
        steps = [line.split(",")[0] for line in f.read().splitlines()[1:]]
    assert steps == ["2"] * 6 + ["4"] * 6 + ["5"] * 6
    assert sorted(os.listdir(run_dir / "samples")) == ["step_0000002.png", "step_0000004.png", "step_0000005.png"]
    # TensorBoard drops the killed run's events of steps after 4 on reading this mark.
    import tensorflow as tf
    from tensorflow.core.util import event_pb2

    newest = max(os.listdir(run_dir / "tensorboard"))
    events = [event_pb2.Event.FromString(record.numpy())
              for record in tf.data.TFRecordDataset(str(run_dir / "tensorboard" / newest))]
    marks = [(event.step, event.session_log.status) for event in events if event.HasField("session_log")]
    assert marks == [(5, event_pb2.SessionLog.START)]


def test_a_new_run_marks_its_log_where_a_run_stopped_before_its_first_checkpoint_logged(photos, tmp_path):
    """That run's events would show beside the new run's in TensorBoard: the mark drops them."""
    import tensorflow as tf
    from tensorflow.core.util import event_pb2

    run_dir = tmp_path / "run"
    (run_dir / "tensorboard").mkdir(parents=True)
    (run_dir / "tensorboard" / "events.out.tfevents.1.dead").write_bytes(b"")
    train.main(["--train_data", photos, "--run_dir", str(run_dir), "--stage1_steps", "1", "--stage2_steps", "0",
                *TINY])
    newest = max(os.listdir(run_dir / "tensorboard"))  # the dead run's name sorts first (its time: 1)
    events = [event_pb2.Event.FromString(record.numpy())
              for record in tf.data.TFRecordDataset(str(run_dir / "tensorboard" / newest))]
    assert [(event.step, event.session_log.status) for event in events if event.HasField("session_log")] == [
        (1, event_pb2.SessionLog.START)]


def test_a_new_run_can_start_from_another_models_weights(resumed_run, photos, tmp_path):
    import keras

    source_path = os.path.join(resumed_run[0], "model.keras")
    source, fetched = load_inpainting_model(source_path)
    run_dir = str(tmp_path / "finetune")
    # No steps: the exported model is exactly the starting point, and records where it came from.
    train.main(["--train_data", photos, "--run_dir", run_dir, "--init_weights", source_path,
                "--ssim_weight", "1.5", "--stage1_steps", "0", "--stage2_steps", "0", *TINY])
    model, _ = load_inpainting_model(os.path.join(run_dir, "model.keras"))
    for theirs, ours in zip(source.weights, model.weights):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(theirs), keras.ops.convert_to_numpy(ours))
    with open(os.path.join(run_dir, "metadata.json")) as f:
        metadata = json.load(f)
    assert metadata["init_weights"]["sha256"] == fetched.sha256
    assert metadata["init_weights"]["steps"] == 4
    assert metadata["loss"]["terms"] == {"valid": 1.0, "hole": 6.0, "tv": 0.1, "ssim": 1.5}

    # Same tensor count and input size: the message names a differing tensor and, from the
    # metadata inside the file, the flags that do fit it.
    with pytest.raises(SystemExit, match="--init_weights .* differs from this run's .*is .*, this run's .*: "
                                         "it was trained with --image_size 32 --width_multiplier 0.125$"):
        train.main(["--train_data", photos, "--run_dir", str(tmp_path / "wider"), "--init_weights",
                    source_path, "--stage1_steps", "1", "--stage2_steps", "0",
                    *TINY, "--width_multiplier", "0.25"])


def test_help_explains_every_flag():
    parser = train.build_arg_parser()
    flags = [action for action in parser._actions if action.option_strings and action.dest != "help"]
    assert len(flags) > 25
    undocumented = [action.option_strings[0] for action in flags if len(action.help or "") < 15]
    assert not undocumented
    assert "(default: 2e-04)" in parser.format_help() or "(default: 0.0002)" in parser.format_help()


def test_validation_files_never_overlap_training_files(photos):
    config = train.TrainConfig(train_data=[photos], val_holdout=0.5)
    split = train.split_train_val(config)
    train_files, val_files = split.train, split.val
    assert len(val_files) == 2 and not set(train_files) & set(val_files)
    assert len(train_files) + len(val_files) == 4 and split.held_out_records == {}
    assert train.split_train_val(config) == split  # deterministic
    with pytest.raises(SystemExit, match="both"):
        train.split_train_val(train.TrainConfig(train_data=[photos], val_data=[os.path.join(photos, "photo1.jpg")]))
    single = train.TrainConfig(train_data=[os.path.join(photos, "photo0.jpg")])
    with pytest.raises(SystemExit, match="one training photo .* cannot be split for validation: pass --val_data"):
        train.split_train_val(single)


@pytest.fixture(scope="module")
def shards(photos, tmp_path_factory):
    """Four TFRecord shards of three photos each (the `photos` ones, again and again)."""
    import tensorflow as tf

    folder = tmp_path_factory.mktemp("shards")
    encoded = [open(os.path.join(photos, name), "rb").read() for name in sorted(os.listdir(photos))]
    for index in range(4):
        with tf.io.TFRecordWriter(str(folder / f"train-{index:05d}-of-00004")) as writer:
            for photo in range(3):
                feature = tf.train.Feature(bytes_list=tf.train.BytesList(value=[encoded[(index + photo) % 4]]))
                writer.write(tf.train.Example(features=tf.train.Features(
                    feature={"image/encoded": feature})).SerializeToString())
    return str(folder)


def test_a_held_out_shard_lends_validation_only_its_first_records(shards, tmp_path):
    """With 4 shards, --val_holdout held out a whole one (a quarter of the photos) for the 8 photos
    validation scores; now training reads that shard too, after its first --val_images records."""
    split = train.split_train_val(train.TrainConfig(train_data=[shards], val_images=2))
    [held] = split.val
    assert split.train == sorted(os.path.join(shards, name) for name in os.listdir(shards))
    assert split.held_out_records == {held: 2}

    run_dir = str(tmp_path / "run")
    train.main(["--train_data", shards, "--run_dir", run_dir, "--stage1_steps", "1", "--stage2_steps", "1",
                "--run_steps", "1", *TINY, "--val_images", "2", "--val_every", "1"])
    with open(os.path.join(run_dir, "metadata.json")) as f:
        recorded = json.load(f)["data"]
    assert recorded["held_out_records"] == {os.path.basename(held): 2}
    assert (recorded["train_files"], recorded["val_files"]) == (4, 1)
    # A resume keeps the records held out (its training read the others), whatever --val_images is now.
    train.main(["--run_dir", run_dir, "--resume", "--val_images", "3"])
    with open(os.path.join(run_dir, "metadata.json")) as f:
        assert json.load(f)["data"]["held_out_records"] == {os.path.basename(held): 2}
    with open(os.path.join(run_dir, "validation.csv")) as f:
        counts = {line.split(",")[2] for line in f.read().splitlines()[1:]}
    assert counts == {"2"}, "validation scored the 2 held-out photos, not a third one trained on"


def test_a_lone_shard_lends_validation_its_first_records(shards):
    lone = os.path.join(shards, "train-00000-of-00004")
    split = train.split_train_val(train.TrainConfig(train_data=[lone], val_images=2))
    assert (split.train, split.val, split.held_out_records) == ([lone], [lone], {lone: 2})


def test_default_depth_keeps_a_two_pixel_bottleneck():
    assert train.TrainConfig(image_size=512).model_depth == 8
    assert train.TrainConfig(image_size=256).model_depth == 7
    assert train.TrainConfig(image_size=32).model_depth == 4


def test_validation_metrics_agree_with_skimage():
    rng = np.random.default_rng(42)
    truth = rng.uniform(0, 1, (37, 45, 3))
    pred = np.clip(truth + rng.normal(0, 0.08, truth.shape), 0, 1)
    assert metrics.psnr(pred, truth)[0] == pytest.approx(peak_signal_noise_ratio(truth, pred, data_range=1.0), rel=1e-9)
    assert metrics.ssim(pred, truth)[0] == pytest.approx(
        structural_similarity(pred, truth, channel_axis=-1, data_range=1.0), abs=1e-9)
    assert metrics.l1_error(pred, truth)[0] == pytest.approx(np.abs(pred - truth).mean())

    batch = np.stack([truth, pred])
    np.testing.assert_allclose(metrics.ssim(batch, batch[::-1]), [metrics.ssim(truth, pred)[0]] * 2)
    scores = metrics.BandedScores()
    scores.add("20-30", batch, batch[::-1])
    (row,) = scores.rows()
    assert row["count"] == 2 and row["psnr"] == pytest.approx(metrics.psnr(pred, truth)[0])


def test_vgg_loss_terms_train_and_are_recorded(photos, tmp_path):
    import keras

    # Random weights in the Keras VGG16 layout: exercises the perceptual/style path, not its quality.
    vgg_path = str(tmp_path / "vgg16_random.weights.h5")
    keras.applications.VGG16(weights=None, include_top=False, input_shape=(None, None, 3)).save_weights(vgg_path)
    run_dir = str(tmp_path / "run")
    train.main(["--train_data", photos, "--run_dir", run_dir, "--vgg_weights", vgg_path,
                "--vgg_preprocessing", "caffe", "--stage1_steps", "1", "--stage2_steps", "0",
                *TINY, "--val_every", "0"])
    with open(os.path.join(run_dir, "metadata.json")) as f:
        metadata = json.load(f)
    assert metadata["loss"]["vgg"] is True and metadata["loss"]["vgg_preprocessing"] == "caffe"
    assert len(metadata["loss"]["vgg_sha256"]) == 64
    assert set(metadata["last_losses"]) == {"loss", "valid", "hole", "perceptual", "style_out", "style_comp", "tv"}
    assert all(math.isfinite(v) for v in metadata["last_losses"].values())
    assert metadata["data"]["val_files"] == 0 and metadata["data"]["train_files"] == 4


def test_torch_backend_trains_and_tensorflow_resumes_its_state(photos, tmp_path):
    run_dir = str(tmp_path / "run")
    environment = dict(os.environ, KERAS_BACKEND="torch")
    result = subprocess.run(
        [sys.executable, "-m", "models.pconv.train", "--train_data", photos, "--run_dir", run_dir,
         "--stage1_steps", "1", "--stage2_steps", "2", "--run_steps", "2", "--ssim_weight", "1", *TINY],
        env=environment, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    with open(os.path.join(run_dir, "metadata.json")) as f:
        assert json.load(f)["hardware"]["keras_backend"] == "torch"

    train.main(["--run_dir", run_dir, "--resume"])  # this process runs the TensorFlow backend
    with open(os.path.join(run_dir, "state", "state.json")) as f:
        state = json.load(f)
    assert (state["step"], state["stage"], state["optimizer_iterations"]) == (3, 2, 2)
    with open(os.path.join(run_dir, "metadata.json")) as f:
        sessions = json.load(f)["sessions"]
    assert [s["hardware"]["keras_backend"] for s in sessions] == ["torch", "tensorflow"]


def test_training_photos_that_all_fail_to_decode_stop_the_run_with_a_reason(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("a.jpg", "b.jpg"):
        (photos / name).write_bytes(b"\xff\xd8\xff\xe0 truncated")
    # A subprocess with a timeout: the defect was an endless wait for a first batch.
    result = subprocess.run(
        [sys.executable, "-m", "models.pconv.train", "--train_data", str(photos), "--run_dir",
         str(tmp_path / "run"), "--stage1_steps", "1", "--stage2_steps", "0", *TINY, "--val_every", "0"],
        capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "no decodable training photos in " + str(photos) in result.stderr
    assert "a.jpg" in result.stderr and "b.jpg" in result.stderr


def test_resume_keeps_the_validation_split(resumed_run, photos, tmp_path):
    run_dir = str(tmp_path / "run")
    shutil.copytree(resumed_run[0], run_dir)  # the fixture's run stays as the other tests expect
    with pytest.raises(SystemExit, match="val_holdout"):
        train.main(["--run_dir", run_dir, "--resume", "--val_holdout", "0.5"])
    with pytest.raises(SystemExit, match="validate on other files"):  # its file would be trained on
        train.main(["--run_dir", run_dir, "--resume", "--val_every", "0"])
    with open(os.path.join(run_dir, "metadata.json")) as f:
        [held_out] = json.load(f)["data"]["val_file_names"]
    trained = [os.path.join(photos, name) for name in sorted(os.listdir(photos)) if name != held_out]
    with pytest.raises(SystemExit, match="validate on other files"):  # would hold out a trained one
        train.main(["--run_dir", run_dir, "--resume", "--train_data", *trained])
    moved = shutil.copytree(photos, tmp_path / "moved")
    train.main(["--run_dir", run_dir, "--resume", "--train_data", str(moved)])  # same files, new place

    unvalidated = str(tmp_path / "unvalidated")
    train.main(["--train_data", photos, "--run_dir", unvalidated, "--stage1_steps", "2", "--stage2_steps", "0",
                "--run_steps", "1", *TINY, "--val_every", "0"])
    with pytest.raises(SystemExit, match="validate on other files"):  # would hold out a trained photo
        train.main(["--run_dir", unvalidated, "--resume", "--val_every", "2"])


def test_a_stop_signal_mid_step_saves_exactly_the_updates_applied(photos, tmp_path, monkeypatch):
    build = train._build_trainer

    def build_with_a_kill_after_the_second_update(config, loss_fn):
        trainer, unet = build(config, loss_fn)
        apply_update, calls = trainer.train_on_batch, []

        def train_on_batch(*args, **kwargs):
            logs = apply_update(*args, **kwargs)
            calls.append(1)
            if len(calls) == 2:  # the signal lands after the update, before the loop counts it
                signal.raise_signal(signal.SIGTERM)
            return logs

        trainer.train_on_batch = train_on_batch
        return trainer, unet

    monkeypatch.setattr(train, "_build_trainer", build_with_a_kill_after_the_second_update)
    handler = signal.getsignal(signal.SIGTERM)
    run_dir = str(tmp_path / "run")
    train.main(["--train_data", photos, "--run_dir", run_dir, "--stage1_steps", "5", "--stage2_steps", "0",
                *TINY, "--val_every", "0", "--checkpoint_every", "100"])
    with open(os.path.join(run_dir, "state", "state.json")) as f:
        state = json.load(f)
    assert (state["step"], state["optimizer_iterations"]) == (2, 2)
    assert signal.getsignal(signal.SIGTERM) is handler, "the handler is only ours while training"


@pytest.mark.parametrize("flags, message", [
    (["--checkpoint_every", "0"], "--checkpoint_every must be at least 1"),
    (["--log_every", "0"], "--log_every must be at least 1"),
    (["--val_images", "0"], "--val_images must be at least 1"),
    (["--batch_size", "0"], "--batch_size must be at least 1"),
    (["--image_size", "100"], "--image_size must be a multiple of 2[*][*]depth = 32"),
    (["--width_multiplier", "0"], "--width_multiplier must be positive"),
    (["--hole_ratio_range", "0.5", "0.2"], "--hole_ratio_range must satisfy"),
    (["--mask_source", "folder"], "--mask_source folder needs --mask_dir"),
    (["--mask_dir", "masks"], "--mask_dir needs --mask_source folder"),
    (["--run_steps", "0"], "--run_steps must be at least 1"),
])
def test_flag_values_are_checked_before_any_work(photos, tmp_path, capsys, flags, message):
    run_dir = tmp_path / "run"
    with pytest.raises(SystemExit) as exited:
        train.main(["--train_data", photos, "--run_dir", str(run_dir), "--stage1_steps", "2", "--stage2_steps", "0",
                    *TINY, *flags])
    assert exited.value.code == 2
    error = capsys.readouterr().err.splitlines()[-1]
    assert error.startswith("python -m models.pconv.train: error: ")
    assert re.search(message, error), error
    assert not run_dir.exists(), "nothing was started"


def test_a_remote_run_dir_is_refused_before_any_work(photos, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exited:
        train.main(["--train_data", photos, "--run_dir", "gs://bucket/runs/x", *TINY])
    assert exited.value.code == 2
    assert "--run_dir must be a local directory, got gs://bucket/runs/x" in capsys.readouterr().err
    assert not os.listdir(tmp_path), "no local folder named after the URI"


def test_file_uris_name_local_data_and_run_folders(photos, tmp_path, monkeypatch):
    """--train_data file://... found no photos, and --run_dir file://... made ./file:/... ."""
    monkeypatch.chdir(tmp_path)
    train.main(["--train_data", f"file://{photos}", "--run_dir", f"file://{tmp_path}/run",
                "--stage1_steps", "0", "--stage2_steps", "0", *TINY])
    assert os.listdir(tmp_path) == ["run"]
    with open(tmp_path / "run" / "metadata.json") as f:
        assert json.load(f)["data"]["train_files"] == 3


def test_missing_files_are_reported_before_any_work(photos, tmp_path):
    run = ["--run_dir", str(tmp_path / "run"), *TINY]
    with pytest.raises(SystemExit, match="--train_data: no images or tfrecords found for .*nothing"):
        train.main(["--train_data", str(tmp_path / "nothing*.jpg"), *run])
    (tmp_path / "no-masks").mkdir()
    for mask_dir in (tmp_path / "absent", tmp_path / "no-masks"):
        with pytest.raises(SystemExit, match="--mask_dir: no images found"):
            train.main(["--train_data", photos, "--mask_source", "folder", "--mask_dir", str(mask_dir), *run])
    (tmp_path / "broken-masks").mkdir()
    (tmp_path / "broken-masks" / "m.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(SystemExit, match="--mask_dir: no decodable mask images in .*broken-masks"):
        train.main(["--train_data", photos, "--mask_source", "folder", "--mask_dir", str(tmp_path / "broken-masks"),
                    *run])
    with pytest.raises(SystemExit, match="--init_weights: model file not found"):
        train.main(["--train_data", photos, "--init_weights", str(tmp_path / "absent.keras"), *run])
    # Found but no model: refused before the run folder is made, not with a traceback after the data split.
    (tmp_path / "broken.keras").write_bytes(b"PK not a zip")
    for not_a_model, why in ((os.path.join(photos, "photo0.jpg"), "must be a .keras file"),
                             (tmp_path / "broken.keras", "cannot load inpainting model")):
        with pytest.raises(SystemExit, match=f"--init_weights: .*{why}"):
            train.main(["--train_data", photos, "--init_weights", str(not_a_model),
                        "--run_dir", str(tmp_path / "fine-tune"), *TINY])
    assert not (tmp_path / "fine-tune").exists()
    (tmp_path / "a-file").write_text("")
    with pytest.raises(SystemExit, match="^--run_dir: cannot make .*a-file: .*File exists"):
        train.main(["--train_data", photos, "--run_dir", str(tmp_path / "a-file"), *TINY])


def test_one_file_spelled_two_ways_is_still_shared(photos, monkeypatch):
    monkeypatch.chdir(photos)
    config = train.TrainConfig(train_data=[photos], val_data=["photo1.jpg"])
    with pytest.raises(SystemExit, match="1 files are in both"):
        train.split_train_val(config)


def test_resume_takes_the_depth_it_uses_and_no_other_start(resumed_run, capsys):
    run_dir, _ = resumed_run
    config = train.config_from_args(train.build_arg_parser().parse_args(
        ["--run_dir", run_dir, "--resume", "--depth", "4"]), train.TrainConfig(image_size=32))
    assert config.model_depth == 4
    with pytest.raises(SystemExit, match="depth"):
        train.config_from_args(train.build_arg_parser().parse_args(
            ["--run_dir", run_dir, "--resume", "--depth", "3"]), train.TrainConfig(image_size=32))
    with pytest.raises(SystemExit) as exited:
        train.main(["--run_dir", run_dir, "--resume", "--init_weights", os.path.join(run_dir, "model.keras")])
    assert exited.value.code == 2 and "--init_weights starts a new run" in capsys.readouterr().err
