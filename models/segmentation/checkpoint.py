"""Reads detector weights from an mmengine/mmdet checkpoint without running code from the file.

A `.pth` is a pickle: loading one with `weights_only=False` lets its author run anything on our
workers. torch's weights-only unpickler refuses every global that is not allow-listed, so we add
only the plain-data types that real mmengine checkpoints carry besides tensors (the message hub's
`HistoryBuffer` of numpy arrays) and keep nothing but the state dict and the meta.

A `HistoryBuffer` pickles its statistics methods as `getattr(HistoryBuffer, 'min')`. Allowing the
builtin `getattr` would let a crafted file reach any attribute of any allowed object, so the name
is bound to a stand-in that only returns those registered methods.
"""
from __future__ import annotations

import pickle
import re
from collections import OrderedDict

import numpy as np
import torch
from mmengine.logging.history_buffer import HistoryBuffer

from models.uri import ModelFileError

_NUMPY_DTYPE_CLASSES = [type(np.dtype(kind)) for kind in (
    np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64,
    np.float16, np.float32, np.float64, np.complex64, np.complex128, np.str_, np.bytes_,
    np.object_)]

def _history_buffer_statistic(owner, name: str):
    """Stands in for `getattr` while unpickling: only public methods of `HistoryBuffer`."""
    if owner is HistoryBuffer and not name.startswith('_') and hasattr(HistoryBuffer, name):
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(
        f'checkpoint looks up attribute {name!r} of {owner!r}; only HistoryBuffer methods may '
        f'be looked up')


# Plain-data globals found in mmengine checkpoints. numpy 1.x pickles its array/scalar
# constructors under `numpy.core`, numpy 2 under `numpy._core`: both spellings are listed so
# checkpoints written by either load.
MMENGINE_CHECKPOINT_GLOBALS = [
    HistoryBuffer,
    (_history_buffer_statistic, 'builtins.getattr'),
    np.ndarray,
    np.dtype,
    *_NUMPY_DTYPE_CLASSES,
    (np._core.multiarray._reconstruct, 'numpy._core.multiarray._reconstruct'),
    (np._core.multiarray._reconstruct, 'numpy.core.multiarray._reconstruct'),
    (np._core.multiarray.scalar, 'numpy._core.multiarray.scalar'),
    (np._core.multiarray.scalar, 'numpy.core.multiarray.scalar'),
]

# torch's wording for a global outside the allow-list, and for one from a blocked module (os...).
_REFUSED_GLOBAL = re.compile(r'GLOBAL (\S+) (?:was not an allowed global|whose module)')
_TORCH_BOILERPLATE = ('Weights only load failed', 'Check the documentation', 'Please file an issue')


def load_checkpoint_weights(path: str) -> tuple[OrderedDict[str, torch.Tensor], dict]:
    """Returns (state_dict, meta) of the checkpoint at local `path`.

    Accepts mmengine/mmdet checkpoints (`{'meta': ..., 'state_dict': ...}`) and bare state dicts.
    Raises ModelFileError for unreadable files and for pickles that reference anything outside
    the allow-list, naming the refused global; nothing from the file is executed.
    """
    try:
        with torch.serialization.safe_globals(MMENGINE_CHECKPOINT_GLOBALS):
            loaded = torch.load(path, map_location='cpu', weights_only=True)
    except OSError as error:
        raise ModelFileError(f'cannot read checkpoint {path!r}: {_first_line(error)}') from None
    except pickle.UnpicklingError as error:
        reason = _unpickler_reason(error)
        refused = _REFUSED_GLOBAL.search(reason)
        if refused:
            raise ModelFileError(
                f'refusing to load checkpoint {path!r}: its pickle references '
                f'{refused.group(1)!r}, which is not a tensor or mmengine data type, and loading '
                f'it could run code from the file. Re-save the weights as a plain state dict '
                f'(torch.save(model.state_dict(), ...)) from a source you trust.') from None
        raise _unreadable(path, error, reason) from None
    except Exception as error:  # noqa: BLE001 - garbage makes the unpickler fail in any way
        raise _unreadable(path, error, _first_line(error)) from None
    return _split_state_dict_and_meta(path, loaded)


def _unreadable(path: str, error: Exception, reason: str) -> ModelFileError:
    """The error for a file torch cannot load: what it starts with where that is neither a zip
    (torch's format since 1.6) nor a pickle (the legacy format), else why torch stopped."""
    with open(path, 'rb') as f:
        head = f.read(16)
    if not head.startswith((b'PK', b'\x80')):
        # torch's own word on a format it knows (safetensors) says more than an opcode's
        known_format = f' ({reason})' if isinstance(error, RuntimeError) else ''
        return ModelFileError(
            f'{path!r} is not a PyTorch checkpoint: it starts with {head!r}{known_format}')
    if isinstance(error, pickle.UnpicklingError):
        return ModelFileError(
            f'cannot load checkpoint {path!r}: {reason}. Either it is not a PyTorch checkpoint '
            f'or it holds objects that weights-only loading refuses; nothing in it was executed.')
    return ModelFileError(f'{path!r} is not a readable PyTorch checkpoint (corrupt or '
                          f'truncated?): {reason}')


def _split_state_dict_and_meta(path: str, loaded) -> tuple[OrderedDict[str, torch.Tensor], dict]:
    if isinstance(loaded, dict) and isinstance(loaded.get('state_dict'), dict):
        state_dict, meta = loaded['state_dict'], loaded.get('meta') or {}
    elif isinstance(loaded, dict) and loaded and all(
            isinstance(value, torch.Tensor) for value in loaded.values()):
        state_dict, meta = loaded, {}
    else:
        raise ModelFileError(
            f'{path!r} holds no model weights: expected an mmengine checkpoint with a '
            f'"state_dict" entry or a bare state dict, got {type(loaded).__name__}')
    # Weights saved from a DataParallel/DistributedDataParallel wrapper carry a `module.` prefix;
    # mmengine strips it when loading, so do we.
    return OrderedDict(
        (re.sub(r'^module\.', '', name), tensor) for name, tensor in state_dict.items()), meta


def _unpickler_reason(error: pickle.UnpicklingError) -> str:
    """The weights-only unpickler's own reason, without torch's advice to turn safety off."""
    _, marker, reason = str(error).partition('WeightsUnpickler error:')
    lines = [line.strip() for line in (reason if marker else str(error)).splitlines()]
    lines = [line for line in lines if line and not line.startswith(_TORCH_BOILERPLATE)]
    return lines[0] if lines else type(error).__name__


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return f'{type(error).__name__}: {lines[0]}' if lines else type(error).__name__
