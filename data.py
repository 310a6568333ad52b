"""Data sets and ImageRecordIter construction for the trainers.

Data types (``--data-type``):

* ``imagenet``: ``train_480_q90.rec`` (aug-level 2/3) or ``train_256_q90.rec`` (aug-level 1) and
  ``val_256_q90.rec`` in ``--data-dir``; 1000 classes, 224x224 crops.
* ``cifar10``: ``train.rec`` and ``val.rec``; 32x32, padded by 4, random crop and mirror.
* ``fashion-mnist``: the built-in data set, read from Debian's ``dataset-fashion-mnist`` IDX files
  and packed once into ``train.rec``/``val.rec`` (+ ``.idx``) in ``--data-dir``: 28x28 gray images
  padded to 32x32 with zeros and repeated into 3 channels, stored as lossless PNG.
* ``custom``: any RecordIO set given by ``--data-train``/``--data-val``.
"""
import gzip
import json
import logging
import os
import struct

import numpy as np
import tqdm

DATA_TYPES = {
    'imagenet': dict(num_classes=1000, num_examples=1281167, image_shape=(3, 224, 224),
                     train='train_480_q90.rec', val='val_256_q90.rec'),
    'cifar10': dict(num_classes=10, num_examples=50000, image_shape=(3, 32, 32),
                    train='train.rec', val='val.rec'),
    'fashion-mnist': dict(num_classes=10, num_examples=60000, image_shape=(3, 32, 32),
                          train='train.rec', val='val.rec'),
    'custom': dict(num_classes=None, num_examples=None, image_shape=None, train=None, val=None),
}
"""Per data type: classes, training examples, input shape and the file names in ``--data-dir``."""

IMAGENET_LOW_AUG_TRAIN = 'train_256_q90.rec'
"""ImageNet training file for ``--aug-level 1`` (the original uses the 480-pixel set otherwise)."""

FASHION_MNIST_DIRS = (
    '/usr/share/datasets/fashion-mnist',
    os.path.join(os.path.dirname(os.path.abspath(__file__)), '.cache', 'dataset-fashion-mnist',
                 'usr', 'share', 'datasets', 'fashion-mnist'),
)
"""Where Debian's package puts the IDX files; the second is ``make setup``'s extraction without root."""

FASHION_MNIST_FILES = {
    'train': ('train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz'),
    'val': ('t10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz'),
}
FASHION_MNIST_CLASSES = ('T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt',
                         'Sneaker', 'Bag', 'Ankle boot')
FASHION_MNIST_PAD = 2
"""28x28 images are padded by 2 zero pixels on each side to the 32x32 small-image input."""
FASHION_MNIST_SIDE = 28 + 2 * FASHION_MNIST_PAD


PROGRESS_MIN_IMAGES = 5000
"""Packing shows a progress bar (on stderr) for at least this many images."""


class DataError(Exception):
    """A data set that is missing or unusable; the message says what to do."""


def fashion_mnist_dir():
    """Directory holding the Fashion-MNIST IDX files (``$FASHION_MNIST_DIR`` overrides)."""
    candidates = [os.environ['FASHION_MNIST_DIR']] if os.environ.get('FASHION_MNIST_DIR') \
        else FASHION_MNIST_DIRS
    for directory in candidates:
        if all(os.path.isfile(os.path.join(directory, name))
               for pair in FASHION_MNIST_FILES.values() for name in pair):
            return directory
    raise DataError('Fashion-MNIST IDX files not found in %s; run `make setup` (installs Debian '
                    'package dataset-fashion-mnist)' % ' or '.join(candidates))


def read_idx(path):
    """Read a (gzipped) IDX file into a uint8 numpy array."""
    opener = gzip.open if path.endswith('.gz') else open
    with opener(path, 'rb') as stream:
        raw = stream.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError('%s is not an unsigned-byte IDX file' % path)
    ndim = raw[3]
    dims = struct.unpack('>' + 'I' * ndim, raw[4:4 + 4 * ndim])
    body = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise DataError('%s is truncated: %d bytes for shape %s' % (path, body.size, dims))
    return body.reshape(dims)


def load_fashion_mnist(split):
    """Return (images N x 28 x 28 uint8, labels N uint8) of ``split`` ('train' or 'val')."""
    directory = fashion_mnist_dir()
    images_name, labels_name = FASHION_MNIST_FILES[split]
    images = read_idx(os.path.join(directory, images_name))
    labels = read_idx(os.path.join(directory, labels_name))
    if len(images) != len(labels):
        raise DataError('Fashion-MNIST %s: %d images but %d labels' % (split, len(images),
                                                                        len(labels)))
    return images, labels


def to_rgb32(images):
    """Pad 28x28 gray images to 32x32 with zeros and repeat them into 3 channels (N, 32, 32, 3)."""
    pad = FASHION_MNIST_PAD
    padded = np.pad(images, ((0, 0), (pad, pad), (pad, pad)), mode='constant')
    return np.repeat(padded[:, :, :, None], 3, axis=3)


def _manifest_path(rec_path):
    return rec_path + '.done'


def rec_is_complete(rec_path):
    """True when ``rec_path`` and its ``.idx`` were written completely by :func:`write_indexed_rec`."""
    try:
        with open(_manifest_path(rec_path)) as stream:
            manifest = json.load(stream)
        return (os.path.getsize(rec_path) == manifest['rec_bytes']
                and os.path.getsize(idx_path(rec_path)) == manifest['idx_bytes'])
    except (OSError, ValueError, KeyError):
        return False


def idx_path(rec_path):
    """The ``.idx`` file that indexes ``rec_path``."""
    return os.path.splitext(rec_path)[0] + '.idx'


def write_indexed_rec(rec_path, images, labels, encoding='.png', quality=95):
    """Write images (N, H, W, 3 uint8, RGB) and labels into an indexed RecordIO file, atomically.

    Records go to temporary files that are renamed into place only once complete, and a manifest
    ``<rec>.done`` recording both sizes is written last: an interrupted run leaves nothing that
    :func:`rec_is_complete` accepts.
    """
    import mxnet as mx
    rec_path = os.path.abspath(rec_path)
    os.makedirs(os.path.dirname(rec_path), exist_ok=True)
    for stale in (_manifest_path(rec_path),):
        if os.path.exists(stale):
            os.remove(stale)
    suffix = '.tmp-%d' % os.getpid()
    tmp_rec, tmp_idx = rec_path + suffix, idx_path(rec_path) + suffix
    writer = mx.recordio.MXIndexedRecordIO(tmp_idx, tmp_rec, 'w')
    total = len(images)
    progress = tqdm.tqdm(total=total, desc='packing %s' % os.path.basename(rec_path),
                         unit='img', mininterval=1.0, disable=total < PROGRESS_MIN_IMAGES)
    try:
        for i, (image, label) in enumerate(zip(images, labels)):
            header = mx.recordio.IRHeader(0, float(label), i, 0)
            # pack_img expects BGR like cv2.imwrite; flip RGB so decoders return RGB again.
            writer.write_idx(i, mx.recordio.pack_img(header, image[:, :, ::-1], quality=quality,
                                                     img_fmt=encoding))
            progress.update()
        writer.close()
        os.replace(tmp_idx, idx_path(rec_path))
        os.replace(tmp_rec, rec_path)
    finally:
        progress.close()
        writer.close()
        for tmp in (tmp_rec, tmp_idx):
            if os.path.exists(tmp):
                os.remove(tmp)
    manifest = dict(images=total, rec_bytes=os.path.getsize(rec_path),
                    idx_bytes=os.path.getsize(idx_path(rec_path)))
    tmp_manifest = _manifest_path(rec_path) + suffix
    with open(tmp_manifest, 'w') as stream:
        json.dump(manifest, stream)
    os.replace(tmp_manifest, _manifest_path(rec_path))
    return rec_path


def prepare_fashion_mnist(data_dir):
    """Pack Fashion-MNIST into ``data_dir``/train.rec and val.rec once; return their paths."""
    paths = {}
    for split in ('train', 'val'):
        rec_path = os.path.join(data_dir, DATA_TYPES['fashion-mnist'][split])
        if not rec_is_complete(rec_path):
            images, labels = load_fashion_mnist(split)
            logging.info('packing Fashion-MNIST %s (%d images) into %s', split, len(images),
                         rec_path)
            try:
                write_indexed_rec(rec_path, to_rgb32(images), labels)
            except OSError as err:
                raise DataError('cannot write %s (%s); choose a writable --data-dir'
                                % (rec_path, err.strerror or err)) from None
        paths[split] = rec_path
    return paths['train'], paths['val']


def count_records(rec_path):
    """Number of records of an indexed ``.rec`` (lines of its ``.idx``), or None without one."""
    path = idx_path(rec_path)
    if not os.path.isfile(path):
        return None
    with open(path) as stream:
        return sum(1 for line in stream if line.strip())


def check_rec(path, flag):
    """Raise DataError unless ``path`` is a readable RecordIO file."""
    hint = ('make it with im2rec_prep.sh (image folder -> .lst/.rec) or point %s at an existing '
            'file' % flag)
    if not path:
        raise DataError('%s is required with --data-type custom; %s' % (flag, hint))
    if not os.path.isfile(path):
        raise DataError('%s %s does not exist; %s' % (flag, path, hint))
    try:
        with open(path, 'rb') as stream:
            if read_record_end(stream, 0) is None:
                raise DataError('%s %s is not a RecordIO file (bad magic number); %s'
                                % (flag, path, hint))
            check_rec_tail(stream, path, flag, hint)
    except OSError as err:
        raise DataError('%s %s cannot be read (%s)' % (flag, path, err.strerror)) from None


RECORDIO_MAGIC = struct.pack('<I', 0xced7230a)
RECORDIO_LENGTH_MASK = (1 << 29) - 1
"""A record starts with the magic word and a word whose low 29 bits are the payload length."""


def read_record_end(stream, offset):
    """End offset of the record starting at ``offset`` (payload padded to 4), or None if none does."""
    stream.seek(offset)
    head = stream.read(8)
    if len(head) < 8 or head[:4] != RECORDIO_MAGIC:
        return None
    length = struct.unpack('<I', head[4:])[0] & RECORDIO_LENGTH_MASK
    return offset + 8 + (length + 3) // 4 * 4


def check_rec_tail(stream, path, flag, hint):
    """Raise DataError if the last record is cut short, or if the ``.idx`` points elsewhere.

    With an ``.idx``, its last offset must start a record that ends inside the file; without one,
    every record header is walked (seeks only).
    """
    size = os.fstat(stream.fileno()).st_size
    index = idx_path(path)
    if os.path.isfile(index):
        try:
            with open(index) as lines:
                offsets = [int(line.split('\t')[1]) for line in lines if line.strip()]
        except (ValueError, IndexError):
            raise DataError('%s is not a RecordIO index (lines of "index<TAB>offset"); delete '
                            'it or rebuild it with im2rec_prep.sh' % index) from None
        for offset in (offsets[:1] + offsets[-1:]):
            end = read_record_end(stream, offset)
            if end is None and offset + 8 > size and _index_fits_until(stream, offsets, size):
                # The index agrees with the file up to its end: the file lost its tail.
                raise DataError('%s %s is truncated: its index points at byte %d of %d; %s'
                                % (flag, path, offset, size, hint))
            if end is None:
                raise DataError('%s does not match %s (offset %d is not a record): the index '
                                'belongs to another file; delete it or rebuild both with '
                                'im2rec_prep.sh' % (index, path, offset))
            if end > size:
                raise DataError('%s %s is truncated: its last record ends at byte %d of %d; %s'
                                % (flag, path, end, size, hint))
        return
    offset = 0
    while offset < size:
        end = read_record_end(stream, offset)
        if end is None or end > size:
            raise DataError('%s %s is truncated or corrupt at byte %d of %d; %s'
                            % (flag, path, offset, size, hint))
        offset = end


def _index_fits_until(stream, offsets, size):
    """Whether the last offset of ``offsets`` inside a file of ``size`` bytes starts a record."""
    inside = [start for start in offsets if start + 8 <= size]
    return bool(inside) and read_record_end(stream, inside[-1]) is not None


def resolve_rec_files(data_type, data_dir, aug_level=2, data_train=None, data_val=None):
    """Return the (train, val) ``.rec`` paths for a data type, packing Fashion-MNIST if needed."""
    if data_type not in DATA_TYPES:
        raise DataError('unknown --data-type %r; choose one of: %s'
                        % (data_type, ', '.join(sorted(DATA_TYPES))))
    if data_train or data_val or data_type == 'custom':
        train, val = data_train, data_val
    elif data_type == 'fashion-mnist':
        train, val = prepare_fashion_mnist(data_dir)
    else:
        spec = DATA_TYPES[data_type]
        train_name = spec['train']
        if data_type == 'imagenet' and aug_level == 1:
            train_name = IMAGENET_LOW_AUG_TRAIN
        if not os.path.isdir(data_dir):
            raise DataError('--data-dir %s does not exist; it should hold %s and %s for '
                            '--data-type %s (make them with im2rec_prep.sh)'
                            % (data_dir, train_name, spec['val'], data_type))
        train = os.path.join(data_dir, train_name)
        val = os.path.join(data_dir, spec['val'])
    check_rec(train, '--data-train')
    if val:
        check_rec(val, '--data-val')
    return train, val


INCEPTION_AUGMENTATION = dict(random_resized_crop=True, min_random_area=0.08, max_random_area=1.0,
                              min_aspect_ratio=3.0 / 4.0, max_aspect_ratio=4.0 / 3.0,
                              brightness=0.4, contrast=0.4, saturation=0.4, pca_noise=0.1,
                              rand_mirror=True)
"""``--aug-level 4``: the Inception-style training augmentation of GluonCV's and timm's ImageNet
recipes. A crop of 8-100 % of the image's area with aspect ratio 3/4-4/3, resized to the input size;
a mirror; brightness, contrast and saturation jitter of +-40 %; AlexNet's PCA lighting noise 0.1."""


def augmentation(data_type, aug_level, image_shape=None):
    """ImageRecordIter keyword arguments for training-time augmentation.

    ImageNet follows the original's levels: 1 random crop + mirror; 2 adds scale 0.533-1, aspect
    ratio 0.25 and HSV jitter 36/50/50; 3 adds rotation 10 and shear 0.1. Level 4 is the
    Inception-style recipe (:data:`INCEPTION_AUGMENTATION`), for ImageNet and custom data.
    Small-image sets use a padded random crop + mirror at every level >= 1. Level 0 turns
    augmentation off.

    Fashion-MNIST's records are 32x32 (28x28 padded by 2): at the default 32x32 ``image_shape`` a
    crop of the records padded by 2 more; at 28x28 a crop of the records themselves, the same
    shifts of up to 2 pixels (and validation's center crop is the original image).
    """
    if aug_level <= 0:
        return {}
    if data_type == 'fashion-mnist':
        side = FASHION_MNIST_SIDE if image_shape is None else min(image_shape[1:])
        pad = max(0, FASHION_MNIST_PAD - (FASHION_MNIST_SIDE - side) // 2)
        return dict(pad=pad, fill_value=0, rand_crop=True, rand_mirror=True)
    if data_type == 'cifar10':
        return dict(pad=4, fill_value=127, rand_crop=True, rand_mirror=True)
    if aug_level >= 4:
        return dict(INCEPTION_AUGMENTATION)
    aug = dict(rand_crop=True, rand_mirror=True)
    if data_type == 'imagenet':
        aug['fill_value'] = 127
        if aug_level >= 2:
            aug.update(max_random_scale=1.0, min_random_scale=0.533, max_aspect_ratio=0.25,
                       random_h=36, random_s=50, random_l=50)
        if aug_level >= 3:
            aug.update(max_rotate_angle=10, max_shear_ratio=0.1)
    return aug


DEFAULT_THREADS = 4
"""Decoding threads when the caller names none (the trainers pass ``--data-nthreads``)."""


def decoding_threads(requested, processors=None):
    """Threads MXNet 1.9.1's ImageRecordIter really decodes with when asked for ``requested``.

    Its parser assumes two hardware threads per core and caps the request at half the
    ``processors`` it may run on, minus one, but at least 1 (``iter_image_recordio_2.cc``): 1 on a
    machine with 2 or 3 processors, 3 on 8, 31 on 64.
    """
    if processors is None:
        processors = len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') \
            else (os.cpu_count() or 1)
    return min(requested, max(processors // 2 - 1, 1))


def rec_iter_params(rec_path, image_shape, batch_size, train=False, data_type='custom', aug_level=0,
                    shuffle=False, seed=0, num_parts=1, part_index=0, threads=None):
    """The ImageRecordIter keyword arguments of :func:`make_rec_iter`."""
    kwargs = dict(path_imgrec=rec_path, data_shape=tuple(image_shape), batch_size=batch_size,
                  label_width=1, data_name='data', label_name='softmax_label',
                  shuffle=shuffle, seed=seed, num_parts=num_parts, part_index=part_index,
                  preprocess_threads=threads or min(DEFAULT_THREADS, os.cpu_count() or 1),
                  round_batch=True)
    if os.path.isfile(idx_path(rec_path)):
        kwargs['path_imgidx'] = idx_path(rec_path)
    if train:
        kwargs.update(augmentation(data_type, aug_level, image_shape))
        kwargs['seed_aug'] = seed
    return kwargs


def make_rec_iter(rec_path, image_shape, batch_size, train=False, data_type='custom', aug_level=0,
                  shuffle=False, seed=0, num_parts=1, part_index=0, threads=None):
    """An ImageRecordIter over ``rec_path`` yielding ``data`` and ``softmax_label``.

    ``threads`` decode and augment (ImageRecordIter's ``preprocess_threads``; MXNet lowers it to the
    machine's processors); the keyword arguments given to ImageRecordIter are kept as the
    iterator's ``params``. Build a fresh iterator per epoch and per evaluation: after ``reset()``
    MXNet 1.9.1 reports a wrong ``pad`` and alternates the epoch length (docs/reliability.md).
    """
    import mxnet as mx
    kwargs = rec_iter_params(rec_path, image_shape, batch_size, train=train, data_type=data_type,
                             aug_level=aug_level, shuffle=shuffle, seed=seed, num_parts=num_parts,
                             part_index=part_index, threads=threads)
    iterator = mx.io.ImageRecordIter(**kwargs)
    iterator.params = kwargs
    return iterator
