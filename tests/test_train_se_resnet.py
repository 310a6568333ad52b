"""train_se_resnet.py end to end on a real Fashion-MNIST slice: both versions learn, and resume."""
import re

import mxnet as mx
import numpy as np
import pytest

import train_se_resnet
from tests.conftest import slice_args

# Depth 8 (one basic unit per stage, 16/32/64 channels), 2 epochs of 8 batches of 64. Adam and a
# low BatchNorm momentum (moving statistics settle within 16 updates) learn in that budget: seeds
# 0, 2, 5 and 6 reached a final validation accuracy of 0.49-0.62 with either version (seed 0:
# 0.55 and 0.54); chance is 0.1.
RECIPE = ['--optimizer', 'adam', '--lr', '0.003', '--bn-mom', '0.3', '--aug-level', '0',
          '--seed', '0']
DEPTH = 8
MIN_ACCURACY = 0.4


def train(fmnist_slice, directory, version, epochs, extra=()):
    args = slice_args(fmnist_slice, directory, depth=DEPTH, epochs=epochs) + RECIPE + \
        ['--version', str(version)] + list(extra)
    assert train_se_resnet.main(args) == 0
    return (directory / 'log' / 'net.log').read_text()


@pytest.fixture(scope='module')
def straight_run(fmnist_slice, tmp_path_factory):
    """version -> directory of an uninterrupted 2-epoch run (trained once per module)."""
    runs = {}

    def run(version):
        if version not in runs:
            directory = tmp_path_factory.mktemp('se-resnet-v%d' % version)
            train(fmnist_slice, directory, version, epochs=2)
            runs[version] = directory
        return runs[version]
    return run


@pytest.mark.parametrize('version', [1, 2])
def test_short_run_learns_and_checkpoints(straight_run, version):
    directory = straight_run(version)
    log = (directory / 'log' / 'net.log').read_text()
    accuracies = [float(v) for v in re.findall(r'Validation-accuracy=([0-9.]+)', log)]
    assert len(accuracies) == 2
    assert accuracies[-1] > MIN_ACCURACY, log
    losses = [float(v) for v in re.findall(r'Train-cross-entropy=([0-9.]+)', log)]
    assert losses[-1] < losses[0]
    for name in ('net-symbol.json', 'net-0001.params', 'net-0001.states', 'net-0002.params',
                 'net-0002.states'):
        assert (directory / 'model' / name).is_file(), name
    sym, arg_params, _ = mx.model.load_checkpoint(str(directory / 'model' / 'net'), 2)
    assert sym.list_outputs() == ['softmax_output']
    # Version 1 projects with a convolution and a BatchNorm; version 2 with a bare convolution
    # and ends with a BatchNorm of its own.
    assert ('stage2_unit1_sc_bn_gamma' in arg_params) == (version == 1)
    assert ('bn1_gamma' in arg_params) == (version == 2)


def test_resume_continues_the_same_run(fmnist_slice, straight_run, tmp_path):
    """Version 2, 1 epoch + resume for 1 == 2 epochs straight (the version survives the resume)."""
    train(fmnist_slice, tmp_path, 2, epochs=1)
    log = train(fmnist_slice, tmp_path, 2, epochs=2, extra=['--model-load-epoch', '1', '--retrain'])
    assert 'resumed from epoch 1' in log
    assert (tmp_path / 'model' / 'net-0002.states').is_file()
    _, args_a, aux_a = mx.model.load_checkpoint(str(straight_run(2) / 'model' / 'net'), 2)
    _, args_b, aux_b = mx.model.load_checkpoint(str(tmp_path / 'model' / 'net'), 2)
    params_a, params_b = {**args_a, **aux_a}, {**args_b, **aux_b}
    assert sorted(params_a) == sorted(params_b)
    for name in params_a:
        a, b = params_a[name].asnumpy(), params_b[name].asnumpy()
        assert np.linalg.norm(a - b) <= 1e-4 * np.linalg.norm(a) + 1e-12, name


def test_version_flag_defaults_to_1_and_is_checked(capsys):
    with pytest.raises(SystemExit) as done:
        train_se_resnet.main(['--help'])
    assert done.value.code == 0
    help_text = ' '.join(capsys.readouterr().out.split())
    assert '--version {1,2}' in help_text
    assert re.search(r'--version \{1,2\} SE-ResNet version: .*\(default: 1\)', help_text)
    with pytest.raises(SystemExit) as done:
        train_se_resnet.main(['--version', '3'])
    assert done.value.code == 2 and 'invalid choice' in capsys.readouterr().err
