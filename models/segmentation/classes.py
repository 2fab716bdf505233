"""The classes a detector predicts, the ids the metadata reports for them, and `--classes`.

A model trained on COCO's 80 classes reports COCO category ids (1..90, skipping the ids retired
before release), so the output joins against any COCO tool. A model fine-tuned on its own classes
(named in its checkpoint's `dataset_meta`, as mmengine saves them, or in its config's dataset
`metainfo`) reports each class's 1-based position in its own list, as COCO-format annotation
files made for a custom dataset usually number them.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass

import numpy as np

from models.segmentation.coco import COCO_CATEGORY_IDS, COCO_CLASSES, COCO_SUPERCATEGORIES


def normalise_class_name(name: str) -> str:
    """Lower case, single spaces; `_` counts as a space so shell users can write `traffic_light`."""
    return ' '.join(name.replace('_', ' ').lower().split())


@dataclass(frozen=True)
class DetectorClasses:
    """`names[i]` and `ids[i]` are what the metadata reports for the detector's label `i`."""
    names: tuple[str, ...]
    ids: tuple[int, ...]
    is_coco: bool

    @classmethod
    def from_names(cls, names) -> DetectorClasses:
        """COCO's table when `names` are COCO's 80 in mmdet's order (older mmdet spelt some with
        underscores), else the names as given with ids 1..N. Raises ValueError for names that are
        not distinct strings."""
        names = tuple(names)
        if not names or not all(isinstance(name, str) and name.strip() for name in names):
            raise ValueError(f'class names must be non-empty strings, got {names!r}')
        normalised = [normalise_class_name(name) for name in names]
        if tuple(normalised) == COCO_CLASSES:
            return COCO_DETECTOR_CLASSES
        repeated = sorted({name for name in normalised if normalised.count(name) > 1})
        if repeated:
            raise ValueError(f'class names must be distinct, but {", ".join(map(repr, repeated))} '
                             f'appear more than once')
        return cls(names, tuple(range(1, len(names) + 1)), is_coco=False)

    def ids_of_labels(self, labels: np.ndarray) -> np.ndarray:
        """Reported ids of mmdet's contiguous labels 0..N-1."""
        return np.asarray(self.ids, np.int32)[labels]

    def parse(self, spec: str) -> frozenset[int] | None:
        """Parses `--classes`: comma-separated names or ids of these classes (of a COCO model, also
        its supercategories: `vehicle` is its eight classes), or `all` (None); `all` followed by
        classes each after a `-` is every class but those (`all,-person`).

        Fails on the first bad entry with the close matches, so a typo stops the job before any
        image is read rather than silently removing nothing.
        """
        entries = [entry.strip() for entry in spec.split(',')]
        if not spec.strip():
            raise ValueError(f'{spec!r} names no class; give {self._kind} names or ids, '
                             f'comma-separated, or "all"')
        if any(not entry.lstrip('-').strip() for entry in entries):
            raise ValueError(f'{spec!r} has an empty entry; give {self._kind} names or '
                             f'ids, comma-separated, or "all"')
        if [entry.lower() for entry in entries] == ['all']:
            return None
        left_out = [entry[1:].strip() for entry in entries if entry.startswith('-')]
        if entries[0].lower() == 'all' and len(left_out) == len(entries) - 1:
            a_class_named_all = 'all' in (normalise_class_name(name) for name in self.names)
            if not a_class_named_all and any(entry.lower() == 'all' for entry in left_out):
                raise ValueError(f'{spec!r} leaves no class to remove')
            excluded = {class_id for entry in left_out for class_id in self._class_ids(entry)}
            if excluded >= set(self.ids):
                raise ValueError(f'{spec!r} leaves no class to remove')
            return frozenset(self.ids) - excluded
        if left_out and not any(entry.lower() == 'all' for entry in entries):
            raise ValueError(f'{spec!r}: a "-" leaves a class out of "all", which comes first: '
                             f'"all,{",".join("-" + entry for entry in left_out)}"')
        if any(entry.lower() == 'all' or entry.startswith('-') for entry in entries):
            raise ValueError(f'{spec!r}: "all" cannot be combined with other classes, only followed '
                             f'by classes to leave out, each after a "-" ("all,-person")')
        return frozenset(class_id for entry in entries for class_id in self._class_ids(entry))

    def parse_min_scores(self, entries: list[tuple[str, float]]) -> dict[int, float]:
        """The ids of `--min_score`'s per-class entries (`(name or id, score)`, a COCO
        supercategory standing for its classes) and the score each needs.

        A class's own entry wins over its supercategory's whatever their order (`vehicle=0.7,
        car=0.9`: cars need 0.9), as the more precise one; two entries of one kind for a class
        (`car=0.8,3=0.9`) are refused rather than one silently dropped.
        """
        from_supercategories, own = {}, {}  # class id -> (entry, score)
        for entry, score in entries:
            entry = entry.strip()
            given = own if self._supercategory(entry) is None else from_supercategories
            for class_id in self._class_ids(entry):
                if class_id in given:
                    raise ValueError(f'{given[class_id][0]!r} and {entry!r} both give '
                                     f'{self.names[self.ids.index(class_id)]!r} a score')
                given[class_id] = entry, score
        return {class_id: score for class_id, (_, score) in {**from_supercategories, **own}.items()}

    @property
    def _kind(self) -> str:
        return 'COCO class' if self.is_coco else 'class'

    def _supercategory(self, entry: str) -> tuple[str, ...] | None:
        """The classes of COCO supercategory `entry`; None for a class (`person` is both: a class)."""
        name = normalise_class_name(entry)
        if not self.is_coco or name in COCO_CLASSES:
            return None
        return COCO_SUPERCATEGORIES.get(name)

    def _class_ids(self, entry: str) -> tuple[int, ...]:
        if classes := self._supercategory(entry):
            return tuple(self._class_id(name) for name in classes)
        return (self._class_id(entry),)

    def _class_id(self, entry: str) -> int:
        if entry.isdigit():
            class_id = int(entry)
            if class_id in self.ids:
                return class_id
            if self.is_coco:
                unused = sorted(set(range(1, 91)) - set(COCO_CATEGORY_IDS))
                raise ValueError(
                    f'unknown COCO category id {class_id}: ids run from 1 to 90 and '
                    f'{", ".join(map(str, unused))} are not used')
            raise ValueError(f'unknown class id {class_id}: the model\'s {len(self.ids)} classes '
                             f'have ids 1 to {len(self.ids)} ({self._listing()})')
        id_by_name = {normalise_class_name(name): class_id
                      for name, class_id in zip(self.names, self.ids)}
        name = normalise_class_name(entry)
        if name in id_by_name:
            return id_by_name[name]
        known = [*id_by_name, *(COCO_SUPERCATEGORIES if self.is_coco else ())]
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
        if close:
            raise ValueError(f'unknown {self._kind} {entry!r}; did you mean '
                             f'{" or ".join(repr(c) for c in close)}?')
        raise ValueError(f'unknown {self._kind} {entry!r}; the model\'s classes are: '
                         f'{self._listing()}')

    def _listing(self) -> str:
        return ', '.join(f'{class_id} {name}' if not self.is_coco else name
                         for class_id, name in zip(self.ids, self.names))


COCO_DETECTOR_CLASSES = DetectorClasses(COCO_CLASSES, COCO_CATEGORY_IDS, is_coco=True)



def split_min_scores(spec: str) -> tuple[float, list[tuple[str, float]]]:
    """`--min_score`: the score every class needs (a bare number, 0.5 where none is given) and the
    classes that need their own (`car=0.8`), e.g. `0.5,car=0.8,animal=0.7`. Raises ValueError for
    a score outside [0, 1], or that is not a number, or a second bare number."""
    default, entries = None, []
    for entry in (entry.strip() for entry in spec.split(',')):
        name, equals, value = entry.rpartition('=')
        try:
            score = float(value)
        except ValueError:
            raise ValueError(f'{entry!r} is not a score, nor CLASS=SCORE') from None
        if not 0.0 <= score <= 1.0:
            raise ValueError(f'{entry!r}: a score lies within [0, 1]')
        if equals and not name.strip():
            raise ValueError(f'{entry!r} names no class')
        if not equals and default is not None:
            raise ValueError(f'{spec!r} gives two scores for every class, {default} and {score}')
        if equals:
            entries.append((name.strip(), score))
        else:
            default = score
    return (0.5 if default is None else default), entries
