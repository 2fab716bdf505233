"""MaskRCNNSegmenter, checkpoint/config loading and the COCO class helpers.

Weights are random (nothing can be downloaded here): parity tests compare our batched path
with mmdet's own per-image `inference_detector` on the same random model.
"""
import hashlib
import os
import uuid

import fsspec
import numpy as np
import pytest
import torch

from models.segmentation import (COCO_CATEGORY_IDS, COCO_CLASSES, COCO_DETECTOR_CLASSES,
                                 DEFAULT_CONFIG, Detections, DetectorClasses, MaskRCNNSegmenter)
from models.segmentation.checkpoint import load_checkpoint_weights
from models.segmentation.config import load_config, packaged_configs, resolve_config
from models.segmentation.maskrcnn import MIN_RESIZED_SIDE, _crop_to_image
from models.uri import ModelFileError
from tests.segmentation_fixtures import (TINY_CONFIG_NAME, build_random_maskrcnn, random_images,
                                         write_random_maskrcnn_checkpoint, write_tiny_maskrcnn)

SEED_CONFIG = 'mask-rcnn_r50-caffe_fpn_ms-poly-3x_coco'
CUSTOM_CLASSES = ('cat', 'Road_Sign', 'car')


@pytest.fixture(scope='module')
def tiny_files(tmp_path_factory):
    return write_tiny_maskrcnn(str(tmp_path_factory.mktemp('tiny')))


@pytest.fixture(scope='module')
def custom_files(tmp_path_factory):
    """The tiny model fine-tuned, as it were, on three classes of its own."""
    return write_tiny_maskrcnn(str(tmp_path_factory.mktemp('custom')), classes=CUSTOM_CLASSES)


@pytest.fixture(scope='module')
def tiny_segmenter(tiny_files):
    config_path, checkpoint_path = tiny_files
    return MaskRCNNSegmenter(config_path, checkpoint_path, device='cpu')


# --- COCO classes and --classes parsing -------------------------------------------------------

def test_coco_classes_are_mmdets_in_its_order():
    from mmdet.datasets import CocoDataset

    assert COCO_CLASSES == CocoDataset.METAINFO['classes']


def test_category_ids_are_the_80_used_coco_ids_in_order():
    assert len(COCO_CATEGORY_IDS) == len(COCO_CLASSES) == 80
    assert list(COCO_CATEGORY_IDS) == sorted(set(COCO_CATEGORY_IDS))
    assert COCO_CATEGORY_IDS[0] == 1 and COCO_CATEGORY_IDS[-1] == 90
    assert COCO_CATEGORY_IDS[COCO_CLASSES.index('stop sign')] == 13
    assert COCO_CATEGORY_IDS[COCO_CLASSES.index('toothbrush')] == 90


def test_parse_classes_accepts_names_ids_and_all():
    assert COCO_DETECTOR_CLASSES.parse('all') is None
    assert COCO_DETECTOR_CLASSES.parse(' ALL ') is None
    assert COCO_DETECTOR_CLASSES.parse('person') == frozenset({1})
    assert COCO_DETECTOR_CLASSES.parse(' Person , CAR,traffic light ') == frozenset({1, 3, 10})
    assert COCO_DETECTOR_CLASSES.parse('traffic_light,13') == frozenset({10, 13})
    assert COCO_DETECTOR_CLASSES.parse('1,1,person') == frozenset({1})


def test_parse_classes_takes_cocos_supercategories_for_their_classes():
    from models.segmentation.coco import COCO_SUPERCATEGORIES

    assert sum(map(len, COCO_SUPERCATEGORIES.values())) == 80
    assert set(COCO_CLASSES) == {name for names in COCO_SUPERCATEGORIES.values() for name in names}
    assert COCO_SUPERCATEGORIES['vehicle'] == ('bicycle', 'car', 'motorcycle', 'airplane', 'bus', 'train', 'truck', 'boat')
    assert COCO_SUPERCATEGORIES['indoor'][-1] == 'toothbrush' and COCO_SUPERCATEGORIES['outdoor'][-1] == 'bench'
    assert COCO_DETECTOR_CLASSES.parse('vehicle') == frozenset(range(2, 10))
    assert COCO_DETECTOR_CLASSES.parse('person,Animal,cup') == frozenset({1, *range(16, 26), 47})
    with pytest.raises(ValueError, match=r"unknown COCO class 'vehicles'.*'vehicle'"):
        COCO_DETECTOR_CLASSES.parse('vehicles')
    custom = DetectorClasses.from_names(['vehicle', 'sign'])  # a model's own classes: no supercategories
    assert custom.parse('vehicle') == frozenset({1})
    with pytest.raises(ValueError, match="unknown class 'animal'"):
        custom.parse('animal')


def test_parse_classes_takes_all_but_some():
    assert COCO_DETECTOR_CLASSES.parse('all,-person') == frozenset(COCO_CATEGORY_IDS) - {1}
    assert COCO_DETECTOR_CLASSES.parse('ALL, -person, - vehicle') == frozenset(COCO_CATEGORY_IDS) - set(range(1, 10))
    for spec, suggestion in [('-person', 'all,-person'), ('person,-car, - dog', 'all,-car,-dog')]:
        with pytest.raises(ValueError, match=f'a "-" leaves a class out of "all", which comes first: "{suggestion}"'):
            COCO_DETECTOR_CLASSES.parse(spec)
    with pytest.raises(ValueError, match="'All,-ALL' leaves no class to remove"):
        COCO_DETECTOR_CLASSES.parse('All,-ALL')
    # A model's own class named "all" is left out by name: "all" alone is every class; one with a
    # comma in its name is chosen by its id.
    own = DetectorClasses.from_names(['all', 'pole, wooden'])
    assert own.parse('all,-all') == own.parse('2') == frozenset({2}) and own.parse('all') is None
    with pytest.raises(ValueError, match='only followed by classes to leave out'):
        COCO_DETECTOR_CLASSES.parse('all,-person,car')
    with pytest.raises(ValueError, match="unknown COCO class 'persn'"):
        COCO_DETECTOR_CLASSES.parse('all,-persn')
    with pytest.raises(ValueError, match='empty entry'):
        COCO_DETECTOR_CLASSES.parse('all,-')
    with pytest.raises(ValueError, match='leaves no class'):
        DetectorClasses.from_names(['sign', 'pole']).parse('all,-sign,-2')


def test_parse_classes_lists_close_matches_for_a_misspelt_name():
    with pytest.raises(ValueError, match=r"unknown COCO class 'persn'.*'person'"):
        COCO_DETECTOR_CLASSES.parse('car,persn')
    with pytest.raises(ValueError, match=r"'teddy bear'"):
        COCO_DETECTOR_CLASSES.parse('tedy bear')


def test_parse_classes_rejects_unknown_ids_empty_entries_and_mixed_all():
    with pytest.raises(ValueError, match=r'unknown COCO category id 12\b'):
        COCO_DETECTOR_CLASSES.parse('1,12')
    with pytest.raises(ValueError, match=r'unknown COCO category id 91\b'):
        COCO_DETECTOR_CLASSES.parse('91')
    with pytest.raises(ValueError, match='empty entry'):
        COCO_DETECTOR_CLASSES.parse('person,,car')
    with pytest.raises(ValueError, match="' ' names no class; give COCO class names or ids"):
        COCO_DETECTOR_CLASSES.parse(' ')
    with pytest.raises(ValueError, match='cannot be combined'):
        COCO_DETECTOR_CLASSES.parse('all,person')


def test_custom_classes_are_named_and_numbered_from_1_in_their_own_order():
    classes = DetectorClasses.from_names(CUSTOM_CLASSES)
    assert not classes.is_coco and classes.names == CUSTOM_CLASSES and classes.ids == (1, 2, 3)
    assert classes.parse('car, road sign') == classes.parse('3,ROAD_SIGN') == frozenset({2, 3})
    assert classes.parse('all') is None
    with pytest.raises(ValueError, match=r"unknown class 'cst'; did you mean 'cat'"):
        classes.parse('cst')
    with pytest.raises(ValueError, match=r"unknown class 'person'.*1 cat, 2 Road_Sign, 3 car"):
        classes.parse('person')
    with pytest.raises(ValueError, match=r'unknown class id 4: .* ids 1 to 3'):
        classes.parse('4')
    with pytest.raises(ValueError, match="'car' appear more than once"):
        DetectorClasses.from_names(('car', 'Car'))
    # mmdet 2 spelt COCO's names with underscores: still COCO, reported with COCO's ids.
    old_spelling = [name.replace(' ', '_') for name in COCO_CLASSES]
    assert DetectorClasses.from_names(old_spelling) is COCO_DETECTOR_CLASSES


def test_detections_select_filters_by_score_and_class():
    count = 4
    detections = Detections.from_full_masks(
        np.zeros((count, 5, 6), bool), boxes=np.zeros((count, 4), np.float32),
        scores=np.array([0.9, 0.4, 0.6, 0.5], np.float32),
        label_ids=np.array([1, 1, 3, 18], np.int32), labels=['person', 'person', 'car', 'dog'])
    assert detections.select(None, 0.5).tolist() == [True, False, True, True]
    assert detections.select(frozenset({1, 18}), 0.5).tolist() == [True, False, False, True]
    assert detections.select(frozenset(), 0.0).tolist() == [False] * count
    with pytest.raises(ValueError, match='instance count'):
        Detections.from_full_masks(np.zeros((2, 5, 6), bool), boxes=np.zeros((1, 4), np.float32),
                                   scores=np.zeros(1, np.float32), label_ids=np.ones(1, np.int32),
                                   labels=['person'])


def test_detections_hold_each_mask_as_a_crop_and_expand_it_on_request():
    masks = np.zeros((3, 6, 8), bool)
    masks[0, 1:3, 2:5] = True
    masks[0, 4, 7] = True
    masks[1, 5, 0] = True
    fields = dict(boxes=np.zeros((3, 4), np.float32), scores=np.ones(3, np.float32),
                  label_ids=np.ones(3, np.int32), labels=['a'] * 3)
    detections = Detections.from_full_masks(masks, **fields)
    assert detections.image_shape == (6, 8)
    assert [crop.shape for crop in detections.masks] == [(4, 6), (1, 1), (0, 0)]
    assert detections.mask_offsets.tolist() == [[1, 2], [5, 0], [0, 0]]
    for index in range(3):
        np.testing.assert_array_equal(detections.full_mask(index), masks[index])
    np.testing.assert_array_equal(detections.union(np.array([True, True, False])),
                                  masks[0] | masks[1])
    assert detections.areas().tolist() == [7, 1, 0]
    assert detections.nonempty().tolist() == [True, True, False]
    with pytest.raises(ValueError, match=r'mask 1 .* is not a bool crop inside the \(6, 8\)'):
        Detections.from_crops([((0, 0), np.ones((2, 2), bool)), ((5, 7), np.ones((2, 1), bool)),
                               ((0, 0), np.ones((1, 1), bool))], image_shape=(6, 8), **fields)


# --- configs ------------------------------------------------------------------------------------

def test_packaged_config_names_resolve_to_files_inside_mmdet():
    for name in (DEFAULT_CONFIG, SEED_CONFIG):
        source = resolve_config(name)
        assert source.name == name
        assert source.path == packaged_configs()[name] and os.path.isfile(source.path)
        assert f'{os.sep}.mim{os.sep}configs{os.sep}' in source.path


def test_unknown_config_name_suggests_packaged_names():
    with pytest.raises(ModelFileError, match='mask-rcnn_r50_fpn_1x_coco'):
        resolve_config('mask-rcnn_r50_fpn_1x_cocoo')
    with pytest.raises(ModelFileError, match='config file not found'):
        resolve_config('/nonexistent/dir/config.py')


def test_packaged_configs_are_also_found_by_their_mmdet_path():
    path = packaged_configs()[DEFAULT_CONFIG]
    assert resolve_config(f'mmdet::mask_rcnn/{DEFAULT_CONFIG}.py').path == path
    with pytest.raises(ModelFileError, match='mmdet ships no such config. Close matches: '
                                             'mask-rcnn_r50_fpn_1x_coco'):
        resolve_config('mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_cocoo.py')
    # A packaged config's file name is not a local file: the error says how to pass it.
    with pytest.raises(ModelFileError, match=rf"not found: '{DEFAULT_CONFIG}.py' \(mmdet ships a "
                                             rf"config of that name: pass '{DEFAULT_CONFIG}' or "
                                             rf"'mmdet::mask_rcnn/{DEFAULT_CONFIG}.py'\)"):
        resolve_config(f'{DEFAULT_CONFIG}.py')


def test_a_config_that_cannot_be_loaded_is_named_in_the_error(tmp_path, tiny_files):
    # mmengine's own errors (a SyntaxError, a FileNotFoundError of the base, an AttributeError
    # for a config without `model`) reached the user without the config's name.
    configs = {'unclosed.py': 'model = dict(\n', 'no_base.py': "_base_ = './gone.py'\n",
               'no_model.py': 'x = 1\n', 'weights.pth': tiny_files[1]}
    for name, content in configs.items():
        path = tmp_path / name
        if name.endswith('.pth'):
            path.symlink_to(content)
        else:
            path.write_text(content)
        with pytest.raises(ModelFileError, match=f"config '{path}'"):
            load_config(resolve_config(str(path)))
    unknown_type = tmp_path / 'unknown_type.py'
    unknown_type.write_text(f"_base_ = {tiny_files[0]!r}\nmodel = dict(type='NoSuchDetector')\n")
    with pytest.raises(ModelFileError, match="cannot build the config's model 'NoSuchDetector'"):
        MaskRCNNSegmenter(str(unknown_type), tiny_files[1])
    # Parts mmdet reads only once the model is built: their absence was a bare AttributeError.
    no_threshold = tmp_path / 'no_threshold.py'
    no_threshold.write_text(f"_base_ = {tiny_files[0]!r}\nmodel = dict(test_cfg=dict(rcnn=dict(_delete_=True, "
                            "score_thr=0.05, nms=dict(type='nms', iou_threshold=0.5), max_per_img=10)))\n")
    with pytest.raises(ModelFileError, match='config sets no test_cfg.rcnn.mask_thr_binary'):
        MaskRCNNSegmenter(str(no_threshold), tiny_files[1])
    no_pipeline = tmp_path / 'no_pipeline.py'
    no_pipeline.write_text(f"_base_ = {tiny_files[0]!r}\ntest_dataloader = None\n")
    with pytest.raises(ModelFileError, match=f"config '{no_pipeline}' gives no test pipeline .*AttributeError"):
        MaskRCNNSegmenter(str(no_pipeline), tiny_files[1])


def test_a_remote_config_comes_with_the_bases_it_inherits_from_beside_it(tiny_files, tmp_path):
    folder = f'memory://segmentation-tests/{uuid.uuid4().hex}'
    memory = fsspec.filesystem('memory')
    with open(tiny_files[0], 'rb') as f:
        memory.pipe(f'{folder}/shared/tiny.py', f.read())
    memory.pipe(f'{folder}/shared/smaller.py',
                b"_base_ = './tiny.py'\nmodel = dict(test_cfg=dict(rcnn=dict(max_per_img=7)))\n")
    memory.pipe(f'{folder}/project/mine.py', b"_base_ = ['../shared/smaller.py']\n"
                                             b"model = dict(test_cfg=dict(rpn=dict(nms_pre=99)))\n")
    source = resolve_config(f'{folder}/project/mine.py', allow_remote_config=True,
                            cache_dir=str(tmp_path))
    cfg = load_config(source)
    assert source.name == 'mine'
    assert cfg.model.test_cfg.rpn.nms_pre == 99 and cfg.model.test_cfg.rcnn.max_per_img == 7
    assert cfg.model.backbone.depth == 18  # from tiny.py, two levels up
    memory.pipe(f'{folder}/shared/smaller.py', b"_base_ = './tiny.py'\n")
    again = resolve_config(f'{folder}/project/mine.py', allow_remote_config=True,
                           cache_dir=str(tmp_path))
    assert load_config(again).model.test_cfg.rcnn.max_per_img == 30, 'a changed base is fetched'


def test_remote_config_is_refused_unless_explicitly_allowed(tiny_files, tmp_path):
    uri = f'memory://segmentation-tests/{uuid.uuid4().hex}/{TINY_CONFIG_NAME}.py'
    with open(tiny_files[0], 'rb') as f:
        fsspec.filesystem('memory').pipe(uri, f.read())
    with pytest.raises(ModelFileError, match='refusing remote config .* or --allow_remote_config if you trust'):
        resolve_config(uri, cache_dir=str(tmp_path))
    assert not list(tmp_path.iterdir()), 'a refused config must not even be downloaded'
    source = resolve_config(uri, allow_remote_config=True, cache_dir=str(tmp_path))
    assert source.name == TINY_CONFIG_NAME
    with open(source.path, 'rb') as fetched, open(tiny_files[0], 'rb') as original:
        assert fetched.read() == original.read()


# --- checkpoints ----------------------------------------------------------------------------------

def test_mmengine_checkpoint_loads_with_its_message_hub_and_exact_weights(tiny_files):
    config_path, checkpoint_path = tiny_files
    raw = torch.serialization.get_unsafe_globals_in_checkpoint(checkpoint_path)
    assert 'mmengine.logging.history_buffer.HistoryBuffer' in raw, \
        'the fixture must exercise the mmengine types weights-only loading has to allow'
    state_dict, meta = load_checkpoint_weights(checkpoint_path)
    assert meta['dataset_meta']['classes'] == COCO_CLASSES
    expected = build_random_maskrcnn(config_path, seed=0).state_dict()
    assert state_dict.keys() == expected.keys()
    assert all(torch.equal(state_dict[name], expected[name]) for name in expected)


def test_bare_and_data_parallel_state_dicts_load(tmp_path):
    weights = {'module.backbone.conv1.weight': torch.ones(2, 3)}
    torch.save(weights, tmp_path / 'bare.pth')
    torch.save({'state_dict': weights, 'meta': {'epoch': 3}}, tmp_path / 'wrapped.pth')
    bare, bare_meta = load_checkpoint_weights(str(tmp_path / 'bare.pth'))
    wrapped, wrapped_meta = load_checkpoint_weights(str(tmp_path / 'wrapped.pth'))
    assert list(bare) == list(wrapped) == ['backbone.conv1.weight']
    assert torch.equal(bare['backbone.conv1.weight'], torch.ones(2, 3))
    assert bare_meta == {} and wrapped_meta == {'epoch': 3}


class _CreatesMarkerWhenUnpickled:
    """A pickle payload: unpickling calls os.system, which creates the marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f'touch {self.marker}',)


def test_checkpoint_with_code_in_its_pickle_is_refused_without_running_it(tmp_path):
    marker = tmp_path / 'payload-ran'
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {'w': torch.zeros(1)}, 'meta': _CreatesMarkerWhenUnpickled(marker)},
               path)
    assert f'{os.system.__module__}.system' in \
        torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
    with pytest.raises(ModelFileError, match=r"refusing to load checkpoint.*'posix\.system'"):
        load_checkpoint_weights(str(path))
    with pytest.raises(ModelFileError, match='refusing to load checkpoint'):
        MaskRCNNSegmenter(DEFAULT_CONFIG, str(path))
    assert not marker.exists()


class _LooksUpNdarrayTofile:
    """`getattr(np.ndarray, 'tofile')`: a file-writing method reached through allowed names."""

    def __reduce__(self):
        return getattr, (np.ndarray, 'tofile')


def test_getattr_in_a_checkpoint_reaches_only_history_buffer_methods(tmp_path):
    path = tmp_path / 'getattr.pth'
    torch.save({'state_dict': {'w': torch.zeros(1)}, 'meta': _LooksUpNdarrayTofile()}, path)
    with pytest.raises(ModelFileError, match="cannot load checkpoint.*'tofile'.*nothing in it"):
        load_checkpoint_weights(str(path))


def test_corrupt_and_truncated_checkpoints_fail_clearly(tmp_path, tiny_files):
    garbage = tmp_path / 'garbage.pth'
    garbage.write_bytes(np.random.default_rng(0).bytes(4096))
    truncated = tmp_path / 'truncated.pth'
    with open(tiny_files[1], 'rb') as f:
        truncated.write_bytes(f.read(50_000))
    empty = tmp_path / 'empty.pth'
    empty.write_bytes(b'')
    for path in (garbage, truncated, empty):
        with pytest.raises(ModelFileError, match=str(path)):
            load_checkpoint_weights(str(path))


def test_a_file_that_is_no_checkpoint_at_all_says_what_it_starts_with(tmp_path):
    # Text whose first bytes are pickle opcodes made the unpickler raise a bare KeyError (`101`
    # was all the launcher said), IndexError or struct.error.
    for name, content in (('notes.pth', b'hello world\n'),
                          ('error-page.pth', b'<!DOCTYPE html><html>Access denied</html>'),
                          ('lfs-pointer.pth', b'version https://git-lfs.github.com/spec/v1\n')):
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(ModelFileError, match=rf"'{path}' is not a PyTorch checkpoint: it "
                                                 rf"starts with b'{content[:8].decode()}"):
            load_checkpoint_weights(str(path))


def test_unreachable_checkpoint_uri_says_how_to_pass_a_local_file(tmp_path):
    with pytest.raises(ModelFileError, match='pass its local path') as raised:
        MaskRCNNSegmenter(DEFAULT_CONFIG, 'memory://segmentation-tests/missing/model.pth',
                          cache_dir=str(tmp_path))
    assert 'model zoo' in str(raised.value)


def test_checkpoint_that_does_not_fit_the_config_is_refused(tmp_path, tiny_files):
    config_path, checkpoint_path = tiny_files
    state_dict, meta = load_checkpoint_weights(checkpoint_path)
    del state_dict['roi_head.mask_head.conv_logits.weight']
    torch.save({'state_dict': state_dict, 'meta': meta}, tmp_path / 'partial.pth')
    with pytest.raises(ModelFileError, match=r'1 weights missing.*conv_logits\.weight'):
        MaskRCNNSegmenter(config_path, str(tmp_path / 'partial.pth'))
    # A deeper backbone's checkpoint (a third block in layer4, as ResNet-34 has over ResNet-18)
    # would otherwise load its first blocks into the shallower network and ignore the rest.
    deeper, _ = load_checkpoint_weights(checkpoint_path)
    for name in [name for name in deeper if name.startswith('backbone.layer4.1.')]:
        deeper[name.replace('layer4.1.', 'layer4.2.')] = deeper[name].clone()
    torch.save(deeper, tmp_path / 'deeper.pth')
    with pytest.raises(ModelFileError,
                       match=r'config has no place for, e.g. backbone\.layer4\.2\.'):
        MaskRCNNSegmenter(config_path, str(tmp_path / 'deeper.pth'))
    reshaped, _ = load_checkpoint_weights(checkpoint_path)
    reshaped['roi_head.bbox_head.fc_cls.weight'] = torch.zeros(4, 128)
    torch.save(reshaped, tmp_path / 'reshaped.pth')
    with pytest.raises(ModelFileError, match=r'1 weights of another shape, e.g. '
                                             r'roi_head\.bbox_head\.fc_cls\.weight is \(4, 128\), '
                                             r'not \(81, 128\)'):
        MaskRCNNSegmenter(config_path, str(tmp_path / 'reshaped.pth'))
    torch.save({'state_dict': state_dict, 'meta': {'dataset_meta': {'classes': ('a', 'b')}}},
               tmp_path / 'two_classes.pth')
    with pytest.raises(ModelFileError, match=r"names 2 classes \('a', 'b'\) but config "
                                             r"'tiny_maskrcnn' predicts 80.*num_classes=2"):
        MaskRCNNSegmenter(config_path, str(tmp_path / 'two_classes.pth'))


def test_custom_classes_come_from_the_checkpoint(custom_files, tiny_files):
    config_path, checkpoint_path = custom_files
    segmenter = MaskRCNNSegmenter(config_path, checkpoint_path)
    assert segmenter.classes == DetectorClasses.from_names(CUSTOM_CLASSES)
    found = [detections for detections in segmenter.segment(random_images([(96, 128)] * 2))]
    labels = [label for detections in found for label in detections.labels]
    label_ids = np.concatenate([detections.label_ids for detections in found])
    assert labels and set(labels) <= set(CUSTOM_CLASSES)
    assert label_ids.tolist() == [CUSTOM_CLASSES.index(label) + 1 for label in labels]
    # Three-class weights under the 80-class config, and the other way round: refused by name.
    with pytest.raises(ModelFileError, match=r"names 3 classes \('cat', 'Road_Sign', 'car'\)"):
        MaskRCNNSegmenter(tiny_files[0], checkpoint_path)
    with pytest.raises(ModelFileError, match=r"names 80 classes \('person',.*predicts 3"):
        MaskRCNNSegmenter(config_path, tiny_files[1])


def test_custom_classes_without_names_in_the_checkpoint_come_from_the_config(custom_files,
                                                                             tmp_path):
    config_path, checkpoint_path = custom_files
    state_dict, _ = load_checkpoint_weights(checkpoint_path)
    torch.save(state_dict, tmp_path / 'bare.pth')
    with pytest.raises(ModelFileError, match=r'predicts 3 classes, but neither .* names them'):
        MaskRCNNSegmenter(config_path, str(tmp_path / 'bare.pth'))
    named = tmp_path / 'named_config.py'
    named.write_text(f"_base_ = {config_path!r}\ntest_dataloader = dict(dataset=dict("
                     f"metainfo=dict(classes={CUSTOM_CLASSES!r})))\n")
    segmenter = MaskRCNNSegmenter(str(named), str(tmp_path / 'bare.pth'))
    assert segmenter.classes.names == CUSTOM_CLASSES


def test_a_negative_mask_threshold_is_refused(tiny_files, tmp_path):
    # mmdet then returns probabilities scaled to 0..255 for display, not masks.
    config_path, checkpoint_path = tiny_files
    display = tmp_path / 'display_config.py'
    display.write_text(f"_base_ = {config_path!r}\n"
                       f"model = dict(test_cfg=dict(rcnn=dict(mask_thr_binary=-1)))\n")
    with pytest.raises(ModelFileError, match='mask_thr_binary=-1'):
        MaskRCNNSegmenter(str(display), checkpoint_path)


def test_checkpoint_from_an_fsspec_uri_is_cached_and_named_by_sha256(tmp_path, tiny_files,
                                                                     tiny_segmenter):
    config_path, checkpoint_path = tiny_files
    with open(checkpoint_path, 'rb') as f:
        payload = f.read()
    uri = f'memory://segmentation-tests/{uuid.uuid4().hex}/weights.pth'
    fsspec.filesystem('memory').pipe(uri, payload)
    remote = MaskRCNNSegmenter(config_path, uri, cache_dir=str(tmp_path))
    sha256 = hashlib.sha256(payload).hexdigest()
    assert remote.identity == f'{TINY_CONFIG_NAME}@{sha256[:12]}' == tiny_segmenter.identity
    assert remote.get_identity() == remote.identity
    cached = [os.path.join(root, name) for root, _, names in os.walk(tmp_path) for name in names]
    assert [os.path.basename(path) for path in cached] == ['weights.pth']
    image = random_images([(64, 80)], seed=5)
    _assert_same_detections(remote.segment(image)[0], tiny_segmenter.segment(image)[0])


# --- inference ------------------------------------------------------------------------------------

def _assert_same_detections(ours: Detections, theirs: Detections, atol=1e-4):
    assert len(ours) > 0, 'a comparison of empty results would prove nothing'
    np.testing.assert_array_equal(ours.label_ids, theirs.label_ids)
    np.testing.assert_allclose(ours.boxes, theirs.boxes, atol=atol)
    np.testing.assert_allclose(ours.scores, theirs.scores, atol=atol)
    assert ours.image_shape == theirs.image_shape
    for index in range(len(ours)):
        np.testing.assert_array_equal(ours.full_mask(index), theirs.full_mask(index))


@pytest.fixture(scope='module')
def mmdet_reference(tiny_files):
    """mmdet's own per-image `inference_detector` on the tiny model's weights."""
    from mmdet.apis import inference_detector, init_detector

    config_path, _ = tiny_files
    model = init_detector(config_path, checkpoint=None, device='cpu')
    model.load_state_dict(build_random_maskrcnn(config_path, seed=0).state_dict())

    def detect(image: np.ndarray) -> Detections:
        # mmdet's ndarray path takes BGR; ours takes RGB.
        instances = inference_detector(model, image[..., ::-1].copy()).pred_instances
        labels = instances.labels.numpy()
        return Detections.from_full_masks(
            instances.masks.numpy(), boxes=instances.bboxes.numpy(),
            scores=instances.scores.numpy(), label_ids=np.asarray(COCO_CATEGORY_IDS)[labels],
            labels=[COCO_CLASSES[label] for label in labels])
    return detect


def test_batch_of_three_equals_mmdet_inference_detector_per_image(tiny_segmenter, mmdet_reference):
    images = random_images([(120, 160)] * 3, seed=7)
    batched = tiny_segmenter.segment(images)
    assert len(batched) == 3
    for ours, image in zip(batched, images):
        _assert_same_detections(ours, mmdet_reference(image))
        assert ours.image_shape == (120, 160)
        assert all(crop.dtype == bool for crop in ours.masks)
        assert ours.boxes.dtype == np.float32 and ours.scores.dtype == np.float32
        assert ours.label_ids.dtype == np.int32
        assert ours.labels == [COCO_CLASSES[COCO_CATEGORY_IDS.index(i)] for i in ours.label_ids]


def test_mixed_size_batch_equals_mmdet_inference_detector_per_image(tiny_segmenter,
                                                                    mmdet_reference):
    # Landscape, portrait, tiny and elongated images, and two that pad to the same shape; the
    # tiny config resizes each to fit 320x320, so they pad to different shapes in one batch.
    sizes = [(48, 160), (240, 320), (17, 3), (96, 256), (400, 120), (240, 318)]
    images = random_images(sizes, seed=1)
    batched = tiny_segmenter.segment(images)
    for (height, width), ours, image in zip(sizes, batched, images):
        assert ours.image_shape == (height, width)
        _assert_same_detections(ours, mmdet_reference(image))
    # Beam groups images as it likes: the order within a batch must not matter either.
    for ours, again in zip(batched[::-1], tiny_segmenter.segment(images[::-1])):
        _assert_same_detections(ours, again)


def test_box_crops_equal_mmdets_full_size_masks_on_cpu_and_as_pasted_on_gpu(
        tiny_files, tiny_segmenter, monkeypatch):
    from mmdet.models.roi_heads.mask_heads import fcn_mask_head

    # Without our pasting, the head gives mmdet's (N, H, W) masks, cropped as they come back.
    config_path, checkpoint_path = tiny_files
    full_size = MaskRCNNSegmenter(config_path, checkpoint_path)
    del full_size._model.roi_head.mask_head._predict_by_feat_single
    # Up to 6x the tiny model's test scale, so boxes span many pixels per mask-head pixel;
    # 2x2000 is padded to the model's aspect limit and cropped back.
    sizes = [(120, 160), (480, 640), (2000, 1500), (2, 2000)]
    images = random_images(sizes, seed=2)
    ours = tiny_segmenter.segment(images)
    on_cpu = full_size.segment(images)
    # On GPU mmdet samples each mask over the whole image, not around its box.
    paste = fcn_mask_head._do_paste_mask
    monkeypatch.setattr(fcn_mask_head, '_do_paste_mask',
                        lambda *args, skip_empty: paste(*args, skip_empty=False))
    as_on_gpu = full_size.segment(images)
    for found, cpu, gpu in zip(ours, on_cpu, as_on_gpu):
        _assert_same_detections(found, cpu)
        _assert_same_detections(found, gpu)
        # Each crop is mmdet's paste region: the box and a pixel each side, within the image.
        for crop, (top, left), (x0, y0, x1, y1) in zip(found.masks, found.mask_offsets,
                                                       found.boxes):
            assert top >= np.floor(y0) - 1 and left >= np.floor(x0) - 1
            assert top + crop.shape[0] <= np.ceil(y1) + 1
            assert left + crop.shape[1] <= np.ceil(x1) + 1


def test_candidate_score_threshold_sets_the_floor_for_min_score(tiny_files, tiny_segmenter):
    config_path, checkpoint_path = tiny_files
    strict = MaskRCNNSegmenter(config_path, checkpoint_path, candidate_score_threshold=0.5)
    image = random_images([(64, 96)], seed=6)
    [everything] = tiny_segmenter.segment(image)
    [confident] = strict.segment(image)
    assert everything.scores.min() < 0.5 <= confident.scores.min()
    assert len(confident) == everything.select(None, 0.5).sum() > 0


def test_a_candidate_scoring_exactly_the_threshold_is_kept_as_min_score_keeps_it(tiny_files,
                                                                               tiny_segmenter):
    # mmdet keeps candidates scoring above its score_thr; `--min_score` keeps those at it too.
    image = random_images([(64, 96)], seed=6)
    [everything] = tiny_segmenter.segment(image)
    threshold = float(np.sort(everything.scores)[len(everything) // 2])
    at_threshold = MaskRCNNSegmenter(*tiny_files, candidate_score_threshold=threshold)
    [kept] = at_threshold.segment(image)
    assert threshold in kept.scores
    assert len(kept) == everything.select(None, threshold).sum()


def test_segment_rejects_images_that_are_not_rgb_uint8(tiny_segmenter):
    assert tiny_segmenter.segment([]) == []
    for bad in (np.zeros((8, 8, 3), np.float32), np.zeros((8, 8), np.uint8),
                np.zeros((8, 8, 4), np.uint8), np.zeros((0, 8, 3), np.uint8)):
        with pytest.raises(ValueError, match='RGB uint8'):
            tiny_segmenter.segment([np.zeros((8, 8, 3), np.uint8), bad])


def test_default_packaged_config_runs_with_random_weights(tmp_path):
    checkpoint = write_random_maskrcnn_checkpoint(str(tmp_path / 'r50.pth'), DEFAULT_CONFIG)
    segmenter = MaskRCNNSegmenter(DEFAULT_CONFIG, checkpoint, device='cpu')
    assert segmenter.identity.startswith(f'{DEFAULT_CONFIG}@')
    # A wide strip: resized to 200x1333 rather than 800x1066, a third of the pixels.
    [result] = segmenter.segment(random_images([(48, 320)], seed=3))
    assert len(result) > 0
    assert result.image_shape == (48, 320) and result.nonempty().any()
    assert set(result.label_ids.tolist()) <= set(COCO_CATEGORY_IDS)
    # The seed's caffe-style config has the same weights layout and must load them too.
    seed_config = MaskRCNNSegmenter(SEED_CONFIG, checkpoint, device='cpu')
    assert seed_config.identity == f'{SEED_CONFIG}@{segmenter.identity.split("@")[1]}'


def test_elongated_images_are_padded_and_their_detections_cropped_back(tiny_segmenter):
    from tests.segmentation_fixtures import TINY_TEST_SCALE
    # The tiny config resizes to fit 320x320: 2x2000 would scale its short side to 0.32 pixels.
    assert tiny_segmenter._max_aspect == max(TINY_TEST_SCALE) / MIN_RESIZED_SIDE
    sizes = [(2, 2000), (2000, 2), (64, 96)]
    results = tiny_segmenter.segment(random_images(sizes, seed=7))
    for (height, width), found in zip(sizes, results):
        assert len(found) > 0
        assert found.image_shape == (height, width)
        assert (found.boxes >= 0).all()
        assert (found.boxes[:, [0, 2]] <= width).all() and (found.boxes[:, [1, 3]] <= height).all()
        assert ((found.boxes[:, 2] > found.boxes[:, 0]) & (found.boxes[:, 3] > found.boxes[:, 1])).all()


def test_default_config_segments_a_2x10000_strip(tmp_path):
    checkpoint = write_random_maskrcnn_checkpoint(str(tmp_path / 'r50.pth'), DEFAULT_CONFIG)
    segmenter = MaskRCNNSegmenter(DEFAULT_CONFIG, checkpoint, device='cpu')
    assert segmenter._max_aspect == 1333 / MIN_RESIZED_SIDE
    [found] = segmenter.segment(random_images([(2, 10000)], seed=8))
    assert found.image_shape == (2, 10000)


def test_crop_to_image_drops_instances_wholly_in_the_padding():
    masks = np.zeros((3, 8, 10), bool)
    masks[0, :2, :4] = True   # inside the 2x10 original
    masks[1, 1:6, 5:9] = True  # straddles the edge: cropped
    masks[2, 4:8, :] = True   # only in the padding
    boxes = np.array([[0, 0, 4, 2], [5, 1, 9, 6], [0, 4, 10, 8]], np.float32)
    padded = Detections.from_full_masks(
        masks, boxes=boxes, scores=np.array([0.9, 0.8, 0.7], np.float32),
        label_ids=np.array([1, 2, 3], np.int32), labels=['a', 'b', 'c'])
    cropped = _crop_to_image(padded, 2, 10)
    assert cropped.labels == ['a', 'b'] and cropped.label_ids.tolist() == [1, 2]
    assert cropped.image_shape == (2, 10)
    for index in range(2):
        np.testing.assert_array_equal(cropped.full_mask(index), masks[index, :2, :])
    np.testing.assert_array_equal(cropped.boxes, [[0, 0, 4, 2], [5, 1, 9, 2]])
    assert _crop_to_image(cropped, 2, 10) is cropped


def test_min_score_gives_every_class_a_score_and_some_their_own():
    from models.segmentation.classes import split_min_scores

    assert split_min_scores('0.6') == (0.6, [])
    assert split_min_scores(' car=0.8 , 0.4,animal = 0.7') == (0.4, [('car', 0.8), ('animal', 0.7)])
    assert split_min_scores('car=0.9') == (0.5, [('car', 0.9)])
    assert COCO_DETECTOR_CLASSES.parse_min_scores([('car', 0.8), ('Animal ', 0.7), ('1', 0.2)]) == {
        3: 0.8, **{class_id: 0.7 for class_id in range(16, 26)}, 1: 0.2}
    for spec, message in [('1.5', 'within'), ('car=-1', 'within'), ('high', 'not a score'),
                          ('=0.3', 'names no class'), ('0.5,0.6', 'two scores')]:
        with pytest.raises(ValueError, match=message):
            split_min_scores(spec)
    with pytest.raises(ValueError, match="unknown COCO class 'cra'"):
        COCO_DETECTOR_CLASSES.parse_min_scores([('cra', 0.8)])


def test_a_classes_own_min_score_wins_over_its_supercategorys_and_two_of_one_kind_are_refused():
    vehicles = {class_id: 0.7 for class_id in range(2, 10)}
    for entries in ([('vehicle', 0.7), ('car', 0.9)], [('car', 0.9), ('vehicle', 0.7)]):
        assert COCO_DETECTOR_CLASSES.parse_min_scores(entries) == {**vehicles, 3: 0.9}
    assert COCO_DETECTOR_CLASSES.parse_min_scores([('1', 0.8)]) == {1: 0.8}  # person: a class too
    for entries, message in [([('car', 0.8), ('3', 0.2)], "'car' and '3' both give 'car' a score"),
                             ([('person', 0.8), ('Person', 0.9)], "'person' and 'Person' both give"),
                             ([('vehicle', 0.7), ('vehicle', 0.6)], "'vehicle' and 'vehicle' both give 'bicycle'")]:
        with pytest.raises(ValueError, match=message):
            COCO_DETECTOR_CLASSES.parse_min_scores(entries)


def test_detections_select_takes_a_class_its_own_score():
    masks = np.ones((3, 4, 4), bool)
    detections = Detections.from_full_masks(masks, boxes=np.zeros((3, 4), np.float32),
                                            scores=np.array([0.6, 0.6, 0.9], np.float32),
                                            label_ids=np.array([1, 3, 3], np.int32), labels=['person', 'car', 'car'])
    assert detections.select(None, 0.5).tolist() == [True, True, True]
    assert detections.select(None, 0.5, {3: 0.8}).tolist() == [True, False, True]
    assert detections.select(frozenset({3}), 0.5, {1: 0.1}).tolist() == [False, True, True]
