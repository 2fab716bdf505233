"""The TFRecord reader the pipeline and the trainer share: TensorFlow's framing, CRCs checked."""
import io

import pytest
import tensorflow as tf

from models.tfrecord import read_records


def _shard(tmp_path, records) -> bytes:
    path = str(tmp_path / "shard.tfrecord")
    with tf.io.TFRecordWriter(path) as writer:
        for record in records:
            writer.write(record)
    with open(path, "rb") as f:
        return f.read()


def test_reads_back_what_tensorflow_wrote(tmp_path):
    records = [b"", b"one", bytes(range(256)) * 4000]
    assert list(read_records(io.BytesIO(_shard(tmp_path, records)))) == records


@pytest.mark.parametrize("damage, message", [
    (lambda data: data[:-3], "truncated TFRecord file"),                       # the last record cut
    (lambda data: data[:-8] + b"X" + data[-7:], "fails its CRC check"),        # a flipped data byte
    (lambda data: data + b"\xff" * 12, "length fails its CRC check"),          # garbage, huge length
])
def test_a_damaged_shard_gives_its_good_records_then_says_what_is_wrong(tmp_path, damage, message):
    data = damage(_shard(tmp_path, [b"first record", b"second record"]))
    records = read_records(io.BytesIO(data))
    assert next(records) == b"first record"
    with pytest.raises(ValueError, match=message):
        list(records)
