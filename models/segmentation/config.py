"""Finds the mmdet config to build: one shipped inside the mmdet package, a local file or a URI.

An mmdet config is a Python file and loading it runs its code, so a config fetched from a URI is
refused unless the caller opts in explicitly; the package's own configs and files the user named
on their machine are trusted like any other code they run. A remote config comes with the
configs it inherits from by relative `_base_` paths, fetched from beside it.
"""
from __future__ import annotations

import difflib
import glob
import hashlib
import importlib.util
import os
import posixpath
import shutil
from dataclasses import dataclass
from functools import lru_cache

from models.uri import DEFAULT_CACHE_DIR, ModelFileError, fetch, is_remote, local_path

DEFAULT_CONFIG = 'mask-rcnn_r50_fpn_1x_coco'
DEFAULT_CHECKPOINT_URI = (
    'https://download.openmmlab.com/mmdetection/v2.0/mask_rcnn/mask_rcnn_r50_fpn_1x_coco/'
    'mask_rcnn_r50_fpn_1x_coco_20200205-d4b0c5d6.pth')


@dataclass(frozen=True)
class ConfigSource:
    name: str  # short name for output metadata: the packaged name or the file's stem
    path: str  # local file to hand to mmengine's Config.fromfile


# How mmengine names a config inside an installed package, as `_base_` and the mmdet docs do.
PACKAGED_PREFIX = 'mmdet::'


def packaged_configs_root() -> str:
    """mmdet's `.mim/configs`: what `mmdet::` paths are relative to."""
    mmdet_dir = importlib.util.find_spec('mmdet').submodule_search_locations[0]
    return os.path.join(mmdet_dir, '.mim', 'configs')


@lru_cache(maxsize=1)
def packaged_configs() -> dict[str, str]:
    """Config name -> file for every config shipped in mmdet's `.mim/configs` (bases excluded)."""
    root = packaged_configs_root()
    return {
        os.path.splitext(os.path.basename(path))[0]: path
        for path in sorted(glob.glob(os.path.join(root, '**', '*.py'), recursive=True))
        if f'{os.sep}_base_{os.sep}' not in path}


def resolve_config(spec: str, allow_remote_config: bool = False,
                   cache_dir: str | None = None) -> ConfigSource:
    """Maps a config name, `mmdet::` path, local path or (only with `allow_remote_config`) URI
    to a local file."""
    if is_remote(spec):
        if not allow_remote_config:
            raise ModelFileError(
                f'refusing remote config {spec!r}: an mmdet config is Python code that runs when '
                f'it is loaded. Pass a config name shipped with mmdet or a local file, or '
                f'--allow_remote_config if you trust the source.')
        return ConfigSource(_stem(spec), _fetch_with_bases(spec, cache_dir or DEFAULT_CACHE_DIR))
    if spec.startswith(PACKAGED_PREFIX):
        path = os.path.join(packaged_configs_root(), spec[len(PACKAGED_PREFIX):])
        if not os.path.isfile(path):
            raise ModelFileError(
                f'{spec!r}: mmdet ships no such config.{_close_matches(_stem(spec))}')
        return ConfigSource(_stem(path), path)
    path = local_path(spec)
    if os.path.isfile(path):
        return ConfigSource(_stem(path), path)
    if path.endswith('.py') or os.sep in path:
        packaged = packaged_configs().get(_stem(path))
        hint = (f' (mmdet ships a config of that name: pass {_stem(path)!r} or '
                f'{PACKAGED_PREFIX + os.path.relpath(packaged, packaged_configs_root())!r})'
                if packaged else '')
        raise ModelFileError(f'config file not found: {path!r}{hint}')
    configs = packaged_configs()
    if spec in configs:
        return ConfigSource(spec, configs[spec])
    raise ModelFileError(
        f'unknown config {spec!r}: not a local file and not among the {len(configs)} configs '
        f'shipped with mmdet.{_close_matches(spec)}')


def load_config(source: ConfigSource):
    """mmengine's `Config` of `source`; ModelFileError, naming the file, where it cannot be read
    (a syntax error, a missing `_base_`, not a .py/.yaml/.json file) or defines no model."""
    from mmengine.config import Config

    try:
        cfg = Config.fromfile(source.path)
    except Exception as error:  # noqa: BLE001 - a config can fail in any way its code can
        raise ModelFileError(f'cannot load config {source.path!r}: '
                             f'{type(error).__name__}: {error}') from None
    if not isinstance(cfg.get('model'), dict):
        raise ModelFileError(f'config {source.path!r} defines no model (its `model = dict(...)`)')
    return cfg


def _fetch_with_bases(uri: str, cache_dir: str) -> str:
    """The remote config at `uri`, downloaded with the configs it inherits from by relative
    `_base_` paths, each placed where that path finds it (as beside a local file)."""
    scheme, _, location = uri.partition('://')
    staged = {}  # path below the scheme -> fetched local copy
    pending = [posixpath.normpath(location)]
    while pending:
        remote = pending.pop()
        if remote in staged:
            continue
        fetched = fetch(f'{scheme}://{remote}', cache_dir, hint='Pass a local copy of the config '
                        'and the configs it inherits from instead.')
        staged[remote] = fetched
        pending.extend(posixpath.normpath(posixpath.join(posixpath.dirname(remote), base))
                       for base in _bases(fetched.path) if _is_relative(base))
    if len(staged) == 1:
        return staged[posixpath.normpath(location)].path
    # Copied into a folder named by the files' paths and contents: each version is laid out
    # once and never changes, so processes loading it at once cannot clash.
    version = hashlib.sha256(repr(sorted(
        (remote, fetched.sha256) for remote, fetched in staged.items())).encode()).hexdigest()
    root = os.path.join(cache_dir, 'configs', version[:16])
    for remote, fetched in staged.items():
        target = os.path.join(root, *remote.lstrip('/').split('/'))
        if not os.path.isfile(target):
            os.makedirs(os.path.dirname(target), exist_ok=True)
            partial = f'{target}.{os.getpid()}.part'
            shutil.copyfile(fetched.path, partial)
            os.replace(partial, target)
    return os.path.join(root, *posixpath.normpath(location).lstrip('/').split('/'))


def _bases(path: str) -> list[str]:
    """The `_base_` entries of config file `path`, as mmengine reads them."""
    from mmengine.config import Config

    try:
        return Config._get_base_files(path)
    except Exception as error:  # noqa: BLE001
        raise ModelFileError(f'cannot read the _base_ of config {path!r}: '
                             f'{type(error).__name__}: {error}') from None


def _is_relative(base: str) -> bool:
    """Whether mmengine looks for `_base_` entry `base` beside the config: not in a package
    (`mmdet::...`) nor at an absolute path."""
    return '::' not in base and not os.path.isabs(base)


def _close_matches(name: str) -> str:
    close = difflib.get_close_matches(name, packaged_configs(), n=5, cutoff=0.6)
    return f' Close matches: {", ".join(close)}.' if close else ''


def _stem(path: str) -> str:
    return os.path.splitext(os.path.basename(path.rstrip('/')))[0]
