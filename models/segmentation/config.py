"""Finds the mmdet config to build: a name shipped inside the mmdet package or a local file.

An mmdet config is a Python file and loading it runs its code, so a config fetched from a URI is
refused unless the caller opts in explicitly; the package's own configs and files the user named
on their machine are trusted like any other code they run.
"""
from __future__ import annotations

import difflib
import glob
import importlib.util
import os
from dataclasses import dataclass
from functools import lru_cache

from models.uri import ModelFileError, fetch, is_remote

DEFAULT_CONFIG = 'mask-rcnn_r50_fpn_1x_coco'
DEFAULT_CHECKPOINT_URI = (
    'https://download.openmmlab.com/mmdetection/v2.0/mask_rcnn/mask_rcnn_r50_fpn_1x_coco/'
    'mask_rcnn_r50_fpn_1x_coco_20200205-d4b0c5d6.pth')


@dataclass(frozen=True)
class ConfigSource:
    name: str  # short name for output metadata: the packaged name or the file's stem
    path: str  # local file to hand to mmengine's Config.fromfile


@lru_cache(maxsize=1)
def packaged_configs() -> dict[str, str]:
    """Config name -> file for every config shipped in mmdet's `.mim/configs` (bases excluded)."""
    mmdet_dir = importlib.util.find_spec('mmdet').submodule_search_locations[0]
    root = os.path.join(mmdet_dir, '.mim', 'configs')
    return {
        os.path.splitext(os.path.basename(path))[0]: path
        for path in sorted(glob.glob(os.path.join(root, '**', '*.py'), recursive=True))
        if f'{os.sep}_base_{os.sep}' not in path}


def resolve_config(spec: str, allow_remote_config: bool = False,
                   cache_dir: str | None = None) -> ConfigSource:
    """Maps a config name, local path or (only with `allow_remote_config`) URI to a local file."""
    if is_remote(spec):
        if not allow_remote_config:
            raise ModelFileError(
                f'refusing remote config {spec!r}: an mmdet config is Python code that runs when '
                f'it is loaded. Pass a config name shipped with mmdet or a local file, or '
                f'--allow_remote_config if you trust the source.')
        fetched = fetch(spec, cache_dir, hint='Pass a local copy of the config instead.')
        return ConfigSource(_stem(spec), fetched.path)
    path = os.path.expanduser(spec[len('file://'):] if spec.startswith('file://') else spec)
    if os.path.isfile(path):
        return ConfigSource(_stem(path), path)
    if path.endswith('.py') or os.sep in path:
        raise ModelFileError(f'config file not found: {path!r}')
    configs = packaged_configs()
    if spec in configs:
        return ConfigSource(spec, configs[spec])
    close = difflib.get_close_matches(spec, configs, n=5, cutoff=0.6)
    suggestion = f' Close matches: {", ".join(close)}.' if close else ''
    raise ModelFileError(
        f'unknown config {spec!r}: not a local file and not among the {len(configs)} configs '
        f'shipped with mmdet.{suggestion}')


def _stem(path: str) -> str:
    return os.path.splitext(os.path.basename(path.rstrip('/')))[0]
