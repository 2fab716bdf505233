"""SegmentationModelHandler inside Beam's RunInference, keyed by image id."""
import pickle

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.ml.inference.base import KeyedModelHandler, PredictionResult, RunInference
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from models.segmentation import Detections, MaskRCNNSegmenter
from tests.segmentation_fixtures import random_images, write_tiny_maskrcnn
from transforms.segment import METRICS_NAMESPACE, SegmentationModelHandler


@pytest.fixture(scope='module')
def tiny_files(tmp_path_factory):
    return write_tiny_maskrcnn(str(tmp_path_factory.mktemp('tiny')))


def _summary(keyed_result):
    """What the test checks per element, in a form assert_that can compare."""
    key, result = keyed_result
    assert isinstance(result, PredictionResult) and isinstance(result.inference, Detections)
    detections = result.inference
    return (key, result.example.shape[:2], detections.image_shape, len(detections) > 0,
            result.model_id)


def test_handler_is_plain_and_picklable_with_batching_from_its_arguments(tiny_files):
    config_path, checkpoint_path = tiny_files
    handler = SegmentationModelHandler(config_path, checkpoint_path, min_batch_size=2,
                                       max_batch_size=8, max_batch_bytes=1 << 20)
    restored = pickle.loads(pickle.dumps(handler))
    kwargs = restored.batch_elements_kwargs()
    assert (kwargs['min_batch_size'], kwargs['max_batch_size']) == (2, 8)
    weight = kwargs['element_size_fn']  # 1 MiB over 8 slots: 128 KiB per slot
    assert weight(('key', np.zeros((10, 20, 3), np.uint8))) == 1
    assert weight(('key', np.zeros((256, 256, 3), np.uint8))) == 2  # 192 KiB
    assert weight(('key', np.zeros((4096, 4096, 3), np.uint8))) == 8  # alone in its batch
    assert restored.get_metrics_namespace() == METRICS_NAMESPACE
    assert not restored.share_model_across_processes() and restored.model_copies() == 1
    shared = SegmentationModelHandler(config_path, checkpoint_path,
                                      share_model_across_processes=True)
    assert shared.share_model_across_processes() and shared.model_copies() == 1
    copies = SegmentationModelHandler(config_path, checkpoint_path, model_copies=2)
    assert copies.share_model_across_processes() and copies.model_copies() == 2
    assert 'max_batch_weight' not in SegmentationModelHandler(
        config_path, checkpoint_path).batch_elements_kwargs()
    with pytest.raises(ValueError, match='no inference_args'):
        handler.validate_inference_args({'threshold': 0.5})


# Shared across processes, Beam hands run_inference a proxy that forwards only method calls:
# the second case checks results and model id make it through that proxy.
@pytest.mark.parametrize('share_model_across_processes', [False, True])
def test_keyed_handler_in_a_test_pipeline_returns_each_images_detections(
        tiny_files, share_model_across_processes):
    config_path, checkpoint_path = tiny_files
    identity = MaskRCNNSegmenter(config_path, checkpoint_path).identity
    sizes = {'a.jpg': (64, 96), 'b.jpg': (128, 80), 'c.jpg': (96, 96)}
    images = dict(zip(sizes, random_images(list(sizes.values()), seed=4)))
    handler = KeyedModelHandler(SegmentationModelHandler(
        config_path, checkpoint_path, device='cpu', min_batch_size=1, max_batch_size=2,
        share_model_across_processes=share_model_across_processes))
    with TestPipeline() as pipeline:
        summaries = (pipeline
                     | beam.Create(sorted(images.items()))
                     | RunInference(handler)
                     | beam.Map(_summary))
        assert_that(summaries, equal_to([
            (key, size, size, True, identity) for key, size in sizes.items()]))
