"""Fashion-MNIST packing (real Debian data), atomicity, RecordIO checks."""
import os

import mxnet as mx
import numpy as np
import pytest

import data


@pytest.fixture(scope='module')
def packed(tmp_path_factory):
    directory = tmp_path_factory.mktemp('fashion-mnist')
    return directory, data.prepare_fashion_mnist(str(directory))


def test_full_set_is_packed_with_all_records(packed):
    _, (train, val) = packed
    assert data.count_records(train) == 60000
    assert data.count_records(val) == 10000
    assert data.rec_is_complete(train) and data.rec_is_complete(val)


def test_records_decode_to_the_padded_idx_images(packed):
    _, (_, val) = packed
    images, labels = data.load_fashion_mnist('val')
    reader = mx.recordio.MXIndexedRecordIO(data.idx_path(val), val, 'r')
    for i in (0, 1, 4321, 9999):
        header, image = mx.recordio.unpack_img(reader.read_idx(i))  # BGR, as cv2 decodes
        assert header.label == labels[i]
        np.testing.assert_array_equal(image[:, :, ::-1], data.to_rgb32(images[i:i + 1])[0])
    reader.close()


def test_packing_happens_once(packed):
    directory, (train, _) = packed
    before = os.stat(train).st_mtime_ns
    assert data.prepare_fashion_mnist(str(directory))[0] == train
    assert os.stat(train).st_mtime_ns == before


def test_interrupted_packing_leaves_nothing_usable(tmp_path, monkeypatch):
    images, labels = data.load_fashion_mnist('val')
    images, labels = data.to_rgb32(images[:300]), labels[:300]
    rec = str(tmp_path / 'val.rec')
    calls = []
    real_pack = mx.recordio.pack_img

    def pack_then_die(*args, **kwargs):
        calls.append(1)
        if len(calls) == 150:
            raise KeyboardInterrupt('simulated interruption')
        return real_pack(*args, **kwargs)

    monkeypatch.setattr(mx.recordio, 'pack_img', pack_then_die)
    with pytest.raises(KeyboardInterrupt):
        data.write_indexed_rec(rec, images, labels)
    assert not data.rec_is_complete(rec)
    assert sorted(os.listdir(tmp_path)) == []
    monkeypatch.setattr(mx.recordio, 'pack_img', real_pack)
    data.write_indexed_rec(rec, images, labels)
    assert data.rec_is_complete(rec) and data.count_records(rec) == 300


def test_truncated_rec_is_not_complete(tmp_path):
    images, labels = data.load_fashion_mnist('val')
    rec = data.write_indexed_rec(str(tmp_path / 'a.rec'), data.to_rgb32(images[:50]), labels[:50])
    with open(rec, 'r+b') as stream:
        stream.truncate(os.path.getsize(rec) // 2)
    assert not data.rec_is_complete(rec)


def test_missing_dataset_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv('FASHION_MNIST_DIR', str(tmp_path))
    with pytest.raises(data.DataError, match='make setup'):
        data.load_fashion_mnist('train')


def test_not_recordio_is_rejected(tmp_path):
    bogus = tmp_path / 'bogus.rec'
    bogus.write_bytes(b'definitely not a record file')
    with pytest.raises(data.DataError, match='not a RecordIO file'):
        data.check_rec(str(bogus), '--data-train')
    with pytest.raises(data.DataError, match='does not exist.*im2rec_prep.sh'):
        data.check_rec(str(tmp_path / 'missing.rec'), '--data-train')


def test_seeded_shuffle_is_reproducible_and_epoch_dependent(fmnist_slice):
    def labels(seed):
        it = data.make_rec_iter(fmnist_slice['train'], (3, 32, 32), 64, train=True,
                                data_type='fashion-mnist', aug_level=1, shuffle=True, seed=seed)
        return np.concatenate([batch.label[0].asnumpy() for batch in it])
    first, again, other = labels(5), labels(5), labels(6)
    np.testing.assert_array_equal(first, again)
    assert (first != other).any()
    _, truth = data.load_fashion_mnist('train')
    np.testing.assert_array_equal(np.sort(first), np.sort(truth[:512]))


def test_fashion_mnist_at_28x28_crops_the_padded_records(fmnist_slice):
    """Validation's center crop is the original image; training crops shift it by at most 2."""
    images, labels = data.load_fashion_mnist('val')
    batch = next(iter(data.make_rec_iter(fmnist_slice['val'], (3, 28, 28), 64)))
    pixels = batch.data[0].asnumpy()
    assert pixels.shape == (64, 3, 28, 28)
    assert (pixels == images[:64, None].astype(np.float32)).all()
    assert (batch.label[0].asnumpy() == labels[:64]).all()
    assert data.augmentation('fashion-mnist', 1, (3, 28, 28))['pad'] == 0
    assert data.augmentation('fashion-mnist', 1, (3, 32, 32))['pad'] == 2
    train = data.make_rec_iter(fmnist_slice['train'], (3, 28, 28), 64, train=True,
                               data_type='fashion-mnist', aug_level=1, seed=3)
    crops = next(iter(train)).data[0].asnumpy()[:, 0]
    padded = np.pad(data.load_fashion_mnist('train')[0][:64], ((0, 0), (2, 2), (2, 2)))
    for crop, image in zip(crops, padded):
        windows = [image[y:y + 28, x:x + 28] for y in range(5) for x in range(5)]
        assert any((crop == w).all() or (crop == w[:, ::-1]).all() for w in windows)
