"""SelectAndDilate: which instances are removed and what the hole becomes."""
import apache_beam as beam
import numpy as np
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.ml.inference.base import PredictionResult
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from models.segmentation import Detections
from transforms.read import NAMESPACE
from transforms.frames import merged_info
from transforms.records import CLEANED, ERROR, UNCHANGED, ImageInfo
from transforms.select import SelectAndDilate, removed_region


def _detections(masks: np.ndarray, scores) -> Detections:
    count = len(masks)
    return Detections.from_full_masks(masks, boxes=np.zeros((count, 4), np.float32),
                                      scores=np.asarray(scores, np.float32),
                                      label_ids=np.ones(count, np.int32),
                                      labels=["person"] * count)


def _summary(element):
    info, _ = element
    return (info.image_uri, info.status, [x["removed"] for x in info.instances],
            [x["area"] for x in info.instances], info.removed_fraction > 0)


def test_instances_with_empty_masks_are_never_removed():
    empty = np.zeros((1, 8, 8), bool)
    found = np.zeros((2, 8, 8), bool)
    found[0, 2:4, 2:4] = True
    rgb = np.zeros((8, 8, 3), np.uint8)
    elements = [
        (ImageInfo("only-empty.png", "only-empty.png"),
         PredictionResult(rgb, _detections(empty, [0.9]))),
        (ImageInfo("mixed.png", "mixed.png"),
         PredictionResult(rgb, _detections(found, [0.9, 0.95]))),
        (ImageInfo("nothing.png", "nothing.png"),
         PredictionResult(rgb, _detections(np.zeros((0, 8, 8), bool), []))),
    ]
    pipeline = TestPipeline()
    selected = (pipeline | beam.Create(elements)
                | beam.ParDo(SelectAndDilate(None, 0.5, 1)).with_outputs(
                    SelectAndDilate.UNCHANGED, main="holes"))
    assert_that(selected.holes | "Holes" >> beam.Map(_summary),
                equal_to([("mixed.png", None, [True, False], [4, 0], True)]), label="holes")
    assert_that(selected[SelectAndDilate.UNCHANGED] | "Unchanged" >> beam.Map(_summary),
                equal_to([("only-empty.png", UNCHANGED, [False], [0], False),
                          ("nothing.png", UNCHANGED, [], [], False)]), label="unchanged")
    pipeline.run().wait_until_finish()


def test_instances_over_the_whole_image_are_an_error():
    whole = np.ones((1, 6, 6), bool)
    pipeline = TestPipeline()
    selected = (pipeline | beam.Create([(ImageInfo("whole.png", "whole.png"), PredictionResult(
                    np.zeros((6, 6, 3), np.uint8), _detections(whole, [0.9])))])
                | beam.ParDo(SelectAndDilate(None, 0.5, 0)).with_outputs(
                    SelectAndDilate.UNCHANGED, SelectAndDilate.ERROR, main="holes"))
    assert_that(selected[SelectAndDilate.ERROR] | beam.Map(lambda info: (info.image_uri, info.status)),
                equal_to([("whole.png", ERROR)]))
    pipeline.run().wait_until_finish()


def test_the_runs_instance_counts_are_those_of_the_images_written(tmp_path):
    """`instances_removed` and `instances_kept` (the run's summary) count an image's instances once
    it is written: one that failed after they were chosen (here its write) removed nothing."""
    from transforms.write import WriteImage

    rgb = np.zeros((6, 6, 3), np.uint8)
    removed, kept, neither = ({"removed": True, "kept": False}, {"removed": False, "kept": True},
                              {"removed": False, "kept": False})
    infos = [ImageInfo("/in/a.png", "a.png", "PNG", 6, 6, instances=(removed, removed, kept, neither)),
             ImageInfo("/in/b.png", "b.png", "PNG", 6, 6, instances=(kept, neither), status=UNCHANGED),
             ImageInfo("/in/c.png", "c.png", "PNG", 6, 6, instances=(removed, kept))]
    (tmp_path / "images/c.png").mkdir(parents=True)  # where c.png would be written
    pipeline = TestPipeline()
    written = (pipeline | beam.Create([(info, rgb) for info in infos])
               | beam.ParDo(WriteImage(str(tmp_path), copy_unchanged=False))
               | beam.Map(lambda info: (info.relative_path, info.status)))
    assert_that(written, equal_to([("a.png", CLEANED), ("b.png", UNCHANGED), ("c.png", ERROR)]))
    result = pipeline.run()
    result.wait_until_finish()
    counters = result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))["counters"]
    totals = {c.key.metric.name: c.committed for c in counters}
    assert (totals["instances_removed"], totals["instances_kept"]) == (2, 2)


def test_dilation_adds_exactly_the_pixels_within_the_given_euclidean_distance():
    """A disc, not OpenCV's elliptic kernel (which reaches past the radius: 17 pixels instead of 13
    at 2 px); also where the disc is cut by the image border."""
    from transforms.select import dilate

    rng = np.random.default_rng(0)
    mask = rng.random((60, 80)) < 0.004
    mask[0, 0] = mask[59, 40] = True  # at the corner and the border
    ys, xs = np.mgrid[0:60, 0:80]
    for pixels in (1, 2, 5, 9, 30):
        within = np.zeros_like(mask)
        for y, x in zip(*np.nonzero(mask)):
            within |= (ys - y) ** 2 + (xs - x) ** 2 <= pixels ** 2
        np.testing.assert_array_equal(dilate(mask, pixels), within, err_msg=f"{pixels} px")
    np.testing.assert_array_equal(dilate(mask, 0), mask)


def _people_of_areas(areas, size=20) -> np.ndarray:
    """One square person per area, side by side on a size x size image."""
    masks, column = np.zeros((len(areas), size, size), bool), 0
    for index, area in enumerate(areas):
        side = int(area ** 0.5)
        masks[index, :side, column:column + side] = True
        column += side
    return masks


def test_the_largest_chosen_instances_or_those_over_a_share_of_the_image_are_kept_as_subjects():
    detections = _detections(_people_of_areas([4, 36, 9, 1, 49]), [0.9, 0.9, 0.9, 0.9, 0.3])
    chosen = detections.select(None, 0.5)  # the 49-pixel one scores too low to be chosen
    assert chosen.tolist() == [True, True, True, True, False]
    assert detections.subjects(chosen).tolist() == [False] * 5
    assert detections.subjects(chosen, largest=1).tolist() == [False, True, False, False, False]
    assert detections.subjects(chosen, largest=2).tolist() == [False, True, True, False, False]
    assert detections.subjects(chosen, largest=9).tolist() == chosen.tolist()
    # Over 2 % of the 400-pixel image: more than 8 pixels.
    assert detections.subjects(chosen, larger_than=0.02).tolist() == [False, True, True, False, False]
    assert detections.subjects(chosen, largest=1, larger_than=0.005).tolist() == [True, True, True, False, False]


def test_subjects_kept_are_not_removed_and_a_note_says_so():
    detections = _detections(_people_of_areas([4, 36, 9]), [0.9, 0.9, 0.9])
    pipeline = TestPipeline()
    selected = (pipeline | beam.Create([(ImageInfo("tourists.png", "tourists.png"), PredictionResult(
                    np.zeros((20, 20, 3), np.uint8), detections))])
                | beam.ParDo(SelectAndDilate(None, 0.5, 0, keep_largest=1)).with_outputs(
                    SelectAndDilate.UNCHANGED, main="holes"))
    assert_that(selected.holes | beam.Map(lambda element: (
        [x["removed"] for x in element[0].instances], [x["kept"] for x in element[0].instances],
        element[0].notes, int(element[1][1].sum()))),
        equal_to([([True, False, True], [False, True, False],
                   ("1 kept as the photo's subjects (person): --keep_largest / --keep_larger_than",), 13)]))
    pipeline.run().wait_until_finish()


def test_the_hole_grown_by_dilate_stops_at_a_subject_kept():
    masks = np.zeros((2, 12, 12), bool)
    masks[0, 2:10, 1:6] = True  # the subject, the largest
    masks[1, 4:8, 6:9] = True  # a passer-by beside it
    pipeline = TestPipeline()
    holes = (pipeline | beam.Create([(ImageInfo("pair.png", "pair.png"), PredictionResult(
                np.zeros((12, 12, 3), np.uint8), _detections(masks, [0.9, 0.9])))])
             | beam.ParDo(SelectAndDilate(None, 0.5, 2, keep_largest=1)))

    def check(element):
        hole = element[1][1]
        assert not (hole & masks[0]).any() and (hole >= masks[1]).all()
        assert hole[4:8, 9:11].all() and hole[2:4, 6:9].all()  # grown everywhere else
        return True
    assert_that(holes | beam.Map(check), equal_to([True]))
    pipeline.run().wait_until_finish()


def test_a_subjects_pixels_stay_where_removed_instances_overlap_it_and_the_mask_written_says_so():
    masks = np.zeros((3, 12, 12), bool)
    masks[0, 2:10, 1:6] = True  # the subject, the largest
    masks[1, 3:6, 2:5] = True  # the subject found again, within it
    masks[2, 4:8, 4:9] = True  # a passer-by whose mask overlaps the subject's edge
    element = (ImageInfo("pair.png", "pair.png", width=12, height=12),
               PredictionResult(np.zeros((12, 12, 3), np.uint8), _detections(masks, [0.9, 0.9, 0.9])))
    [(info, (_, hole))] = SelectAndDilate(None, 0.5, 0, keep_largest=1).process(element)
    assert [x["kept"] for x in info.instances] == [True, False, False]
    assert [x["removed"] for x in info.instances] == [False, False, True]  # the second removes nothing
    np.testing.assert_array_equal(hole, masks[2] & ~masks[0])
    np.testing.assert_array_equal(removed_region(info), masks[2] & ~masks[0])


def test_a_multi_frame_images_note_counts_the_subjects_kept_in_all_its_frames():
    masks = _people_of_areas([4, 36, 9])
    frames = []
    for frame in range(2):
        element = (ImageInfo("walk.gif", "walk.gif", width=20, height=20, frame=frame, frames=2),
                   PredictionResult(np.zeros((20, 20, 3), np.uint8), _detections(masks, [0.9] * 3)))
        [(info, _)] = SelectAndDilate(None, 0.5, 0, keep_largest=1).process(element)
        assert info.notes == ()
        frames.append(info.replace(status=CLEANED))
    assert merged_info(frames).notes == (
        "2 kept as the photo's subjects (person) in 2 frames: --keep_largest / --keep_larger_than",)
