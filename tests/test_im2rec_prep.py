"""im2rec_prep.sh on a real folder of Fashion-MNIST PNG files, and a short training run on its output."""
import os
import re
import subprocess
import sys

import cv2
import mxnet as mx
import numpy as np
import pytest

import data
from tests.conftest import ROOT, run_script

PER_CLASS = 30
CLASSES = ('Bag', 'Sandal', 'Trouser')


@pytest.fixture(scope='module')
def image_folder(tmp_path_factory):
    """90 real test images of three classes, written as 28x28 gray PNG files in class folders."""
    root = tmp_path_factory.mktemp('images')
    images, labels = data.load_fashion_mnist('val')
    for name in CLASSES:
        label = data.FASHION_MNIST_CLASSES.index(name)
        folder = root / name
        folder.mkdir()
        for i, index in enumerate(np.flatnonzero(labels == label)[:PER_CLASS]):
            assert cv2.imwrite(str(folder / ('%03d.png' % i)), images[index])
    return root


def prep(root, prefix, *extra):
    env = dict(os.environ, PYTHON=sys.executable)
    return subprocess.run(['bash', os.path.join(ROOT, 'im2rec_prep.sh'), str(root), str(prefix)]
                          + list(extra), capture_output=True, text=True, timeout=300, env=env)


def test_folder_to_rec_and_training(image_folder, tmp_path):
    prefix = tmp_path / 'out' / 'fm3'
    result = prep(image_folder, prefix, '--resize', '32', '--train-ratio', '0.8')
    assert result.returncode == 0, result.stderr
    classes = (tmp_path / 'out' / 'fm3_classes.txt').read_text().splitlines()
    assert classes == ['%d %s' % (i, name) for i, name in enumerate(sorted(CLASSES))]
    counts = {}
    for split in ('train', 'val'):
        lst = (tmp_path / 'out' / ('fm3_%s.lst' % split)).read_text().splitlines()
        counts[split] = len(lst)
        rec = str(prefix) + '_%s.rec' % split
        assert data.count_records(rec) == len(lst)
        reader = mx.recordio.MXIndexedRecordIO(data.idx_path(rec), rec, 'r')
        header, image = mx.recordio.unpack_img(reader.read_idx(int(lst[0].split('\t')[0])))
        reader.close()
        assert image.shape == (32, 32, 3)
        assert header.label == float(lst[0].split('\t')[1])
    assert counts == {'train': 72, 'val': 18}

    train = run_script('train_se_resnext_w_d.py', [
        '--data-type', 'custom', '--data-train', str(prefix) + '_train.rec',
        '--data-val', str(prefix) + '_val.rec', '--num-classes', '3', '--image-shape', '3,32,32',
        '--depth', '11', '--num-group', '2', '--batch-size', '24', '--num-epochs', '2',
        '--lr', '0.05', '--model-prefix', str(tmp_path / 'm' / 'net'),
        '--log-file', str(tmp_path / 'net.log')])
    assert train.returncode == 0, train.stderr
    log = (tmp_path / 'net.log').read_text()
    assert len(re.findall(r'Validation-accuracy=', log)) == 2
    assert re.search(r'Final validation accuracy [0-9.]+ on 18 images', log), log


def test_missing_folder_is_one_line(tmp_path):
    result = prep(tmp_path / 'nowhere', tmp_path / 'out' / 'x')
    assert result.returncode == 2
    assert result.stderr.strip().count('\n') == 0
    assert 'does not exist' in result.stderr


def test_folder_without_images_is_one_line(tmp_path):
    (tmp_path / 'empty' / 'classA').mkdir(parents=True)
    result = prep(tmp_path / 'empty', tmp_path / 'out' / 'x')
    assert result.returncode != 0
    assert 'no class sub-folders with images' in result.stderr, result.stderr
