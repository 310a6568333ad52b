"""Shared fixtures: small real Fashion-MNIST slices, a way to run the trainers as processes, the
original SENet.mxnet's released SE-ResNeXt-50 graph, and parameter counting."""
import os
import subprocess
import sys

import numpy as np
import pytest

import data

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(os.path.dirname(ROOT), 'shared')
RELEASED_JSON = os.path.join(SHARED, 'compat', 'se-resnext-imagenet-50-0-symbol.json')

SLICE_TRAIN = 512
SLICE_VAL = 256


@pytest.fixture(scope='session')
def fmnist_slice(tmp_path_factory):
    """First 512 training and 256 test images of the real Fashion-MNIST as indexed .rec files."""
    directory = tmp_path_factory.mktemp('fmnist-slice')
    paths = {}
    for split, count in (('train', SLICE_TRAIN), ('val', SLICE_VAL)):
        images, labels = data.load_fashion_mnist(split)
        paths[split] = data.write_indexed_rec(str(directory / (split + '.rec')),
                                              data.to_rgb32(images[:count]), labels[:count])
    return paths


@pytest.fixture(scope='session')
def released_json():
    """Path of the original SENet.mxnet's released SE-ResNeXt-50 symbol JSON (64 groups, its own
    operator names); tests that need it skip where it is not beside this checkout."""
    if not os.path.isfile(RELEASED_JSON):
        pytest.skip('the released SE-ResNeXt-50 symbol JSON is not at %s' % RELEASED_JSON)
    return RELEASED_JSON


def trainable_parameters(sym, image_shape=(3, 224, 224)):
    """Name -> number of values of each trainable argument of ``sym`` for ``image_shape`` inputs,
    without ``bn_data_*`` (the input BatchNorm, which peer models such as timm's do not have)."""
    shapes, _, _ = sym.infer_shape(data=(1,) + tuple(image_shape))
    return {name: int(np.prod(shape)) for name, shape in zip(sym.list_arguments(), shapes)
            if name not in ('data', 'softmax_label') and not name.startswith('bn_data')}


def parameter_count(sym, image_shape=(3, 224, 224)):
    """Trainable parameters of ``sym`` as tests/counts.py pins them (:func:`trainable_parameters`)."""
    return sum(trainable_parameters(sym, image_shape).values())


def slice_args(fmnist_slice, tmp_path, depth=11, num_group=2, batch_size=64, epochs=2):
    """Trainer arguments for a small SE-ResNeXt on the slice, checkpoints under ``tmp_path``."""
    return ['--data-type', 'custom', '--data-train', fmnist_slice['train'],
            '--data-val', fmnist_slice['val'], '--num-classes', '10', '--image-shape', '3,32,32',
            '--depth', str(depth), '--num-group', str(num_group), '--batch-size', str(batch_size),
            '--num-epochs', str(epochs), '--model-prefix', str(tmp_path / 'model' / 'net'),
            '--log-file', str(tmp_path / 'log' / 'net.log')]


def run_script(script, args, timeout=600, cwd=ROOT):
    """Run a repository script with the test interpreter; returns the CompletedProcess."""
    return subprocess.run([sys.executable, '-W', 'ignore', os.path.join(ROOT, script)] + list(args),
                          capture_output=True, text=True, timeout=timeout, cwd=cwd)


@pytest.fixture(scope='session')
def trained_slice_model(fmnist_slice, tmp_path_factory):
    """A small SE-ResNeXt trained 3 epochs on the slice: (directory holding model/ and log/)."""
    import train_se_resnext_w_d
    directory = tmp_path_factory.mktemp('trained')
    args = slice_args(fmnist_slice, directory, epochs=3) + ['--lr', '0.05', '--aug-level', '1']
    assert train_se_resnext_w_d.main(args) == 0
    return directory


def assert_every_parameter_has_a_gradient(exe):
    """Each parameter of a bound executor got a finite gradient of its own shape, non-zero except
    ``bn_data_gamma`` (fix_gamma=True: gamma stays 1, its gradient is zero)."""
    for name, grad in exe.grad_dict.items():
        if name in ('data', 'softmax_label'):
            continue
        assert grad.shape == exe.arg_dict[name].shape, name
        values = grad.asnumpy()
        assert np.isfinite(values).all(), name
        if name != 'bn_data_gamma':
            assert np.abs(values).max() > 0, name
