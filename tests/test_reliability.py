"""Fault injection: SIGKILL mid-epoch and mid-checkpoint, SIGTERM, non-finite loss, bad files.

Every run is deterministic (fixed seed, no random augmentation, per-epoch seeded shuffling), so a
resumed run must end with the parameters of the uninterrupted one.
"""
import hashlib
import os
import signal
import subprocess
import sys

import mxnet as mx
import numpy as np
import pytest

import data
from senet import checkpoint
from tests.conftest import ROOT, run_script, slice_args

DETERMINISTIC = ['--aug-level', '0', '--frequent', '1', '--seed', '3', '--lr', '0.05']
TRAINER = os.path.join(ROOT, 'train_se_resnext_w_d.py')


def args_for(fmnist_slice, directory, epochs=2):
    return slice_args(fmnist_slice, directory, epochs=epochs) + DETERMINISTIC


def assert_same_params(prefix_a, prefix_b, epoch):
    _, args_a, aux_a = mx.model.load_checkpoint(prefix_a, epoch)
    _, args_b, aux_b = mx.model.load_checkpoint(prefix_b, epoch)
    params_a, params_b = {**args_a, **aux_a}, {**args_b, **aux_b}
    assert set(params_a) == set(params_b)
    for name, value in params_a.items():
        a, b = value.asnumpy(), params_b[name].asnumpy()
        assert np.linalg.norm(a - b) <= 1e-4 * np.linalg.norm(a) + 1e-12, name


def start(args, env=None):
    return subprocess.Popen([sys.executable, '-W', 'ignore', TRAINER] + args, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=dict(os.environ, **(env or {})), start_new_session=True)


def wait_for_line(proc, fragment, timeout=300):
    """Read the process's output until a line contains ``fragment``; returns the lines read."""
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if fragment in line:
            return lines
    proc.wait(timeout=timeout)
    raise AssertionError('%r never appeared:\n%s' % (fragment, ''.join(lines[-20:])))


def finish(proc, timeout=300):
    try:
        output = proc.communicate(timeout=timeout)[0]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return output


@pytest.fixture(scope='module')
def straight(fmnist_slice, tmp_path_factory):
    """An uninterrupted deterministic 2-epoch run: its checkpoint prefix."""
    directory = tmp_path_factory.mktemp('straight')
    result = run_script('train_se_resnext_w_d.py', args_for(fmnist_slice, directory))
    assert result.returncode == 0, result.stderr
    return str(directory / 'model' / 'net')


def resume_newest(fmnist_slice, directory):
    result = run_script('train_se_resnext_w_d.py', args_for(fmnist_slice, directory) +
                        ['--model-load-epoch', '-1', '--retrain'])
    assert result.returncode == 0, result.stderr
    return result


def test_sigkill_in_second_epoch_then_resume(fmnist_slice, straight, tmp_path):
    proc = start(args_for(fmnist_slice, tmp_path))
    wait_for_line(proc, 'Epoch[1] Batch [2-3]')
    os.killpg(proc.pid, signal.SIGKILL)
    finish(proc)
    assert proc.returncode == -signal.SIGKILL
    prefix = str(tmp_path / 'model' / 'net')
    assert checkpoint.saved_epochs(prefix) == [1]
    result = resume_newest(fmnist_slice, tmp_path)
    assert 'resuming from %s-0001.params' % prefix in result.stdout
    assert_same_params(straight, prefix, 2)


def test_sigkill_while_writing_a_checkpoint(fmnist_slice, straight, tmp_path):
    proc = start(args_for(fmnist_slice, tmp_path), env={checkpoint.FAULT_ENV: '2'})
    finish(proc)
    assert proc.returncode == -signal.SIGKILL  # killed itself inside the epoch-2 params write
    prefix = str(tmp_path / 'model' / 'net')
    assert checkpoint.saved_epochs(prefix) == [1]
    assert os.path.isfile(prefix + '-0002.states')  # written before the params, as designed
    mx.model.load_checkpoint(prefix, 1)  # the previous checkpoint is whole
    resume_newest(fmnist_slice, tmp_path)
    assert_same_params(straight, prefix, 2)
    assert not [name for name in os.listdir(tmp_path / 'model') if '.tmp-' in name]


@pytest.mark.parametrize('signum', [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_at_a_batch_and_resumes_exactly(fmnist_slice, straight, tmp_path, signum):
    proc = start(args_for(fmnist_slice, tmp_path))
    wait_for_line(proc, 'Epoch[1] Batch [1-2]')
    proc.send_signal(signum)
    output = finish(proc)
    assert proc.returncode == 128 + signum, output
    assert 'stopped by %s at epoch 1, batch' % signal.Signals(signum).name in output
    assert 'Traceback' not in output
    prefix = str(tmp_path / 'model' / 'net')
    assert checkpoint.saved_partial(prefix) is not None
    result = resume_newest(fmnist_slice, tmp_path)
    assert 'resuming from %s-0001-partial.params' % prefix in result.stdout
    assert_same_params(straight, prefix, 2)
    assert checkpoint.saved_partial(prefix) is None  # superseded by the complete epoch 2


def test_nonfinite_loss_stops_and_keeps_the_last_checkpoint(fmnist_slice, tmp_path):
    first = run_script('train_se_resnext_w_d.py', args_for(fmnist_slice, tmp_path, epochs=1))
    assert first.returncode == 0, first.stderr
    params = tmp_path / 'model' / 'net-0001.params'
    digest = hashlib.sha256(params.read_bytes()).hexdigest()
    result = run_script('train_se_resnext_w_d.py', args_for(fmnist_slice, tmp_path, epochs=3) +
                        ['--model-load-epoch', '1', '--retrain', '--lr', '1e30'])
    assert result.returncode == 3, result.stdout[-2000:]
    assert 'Traceback' not in result.stdout + result.stderr
    assert 'non-finite loss at epoch 1, batch' in result.stdout
    assert 'net-0001.params (resume with --model-load-epoch 1 --retrain)' in result.stdout
    assert hashlib.sha256(params.read_bytes()).hexdigest() == digest
    assert checkpoint.saved_epochs(str(tmp_path / 'model' / 'net')) == [1]


def test_save_period_and_keep_last(fmnist_slice, tmp_path):
    args = slice_args(fmnist_slice, tmp_path, epochs=5) + [
        '--aug-level', '0', '--num-examples', '128', '--save-period', '2', '--keep-last', '1']
    result = run_script('train_se_resnext_w_d.py', args)
    assert result.returncode == 0, result.stderr
    prefix = str(tmp_path / 'model' / 'net')
    assert checkpoint.saved_epochs(prefix) == [5]
    assert sorted(os.listdir(tmp_path / 'model')) == ['net-0005.params', 'net-0005.states',
                                                      'net-symbol.json']


# --- bad files: one line naming the problem and the fix, non-zero exit, no traceback ---

def one_line_error(result):
    assert result.returncode != 0
    assert 'Traceback' not in result.stdout + result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if 'error' in line]
    assert len(errors) == 1, result.stderr
    return errors[0]


def custom_args(train_rec, tmp_path, *extra):
    return ['--data-type', 'custom', '--data-train', str(train_rec), '--num-classes', '10',
            '--image-shape', '3,32,32', '--depth', '11', '--num-group', '2', '--batch-size', '32',
            '--num-epochs', '1', '--model-prefix', str(tmp_path / 'm' / 'net'),
            '--log-file', str(tmp_path / 'net.log')] + list(extra)


@pytest.fixture
def small_rec(tmp_path):
    images, labels = data.load_fashion_mnist('val')
    return data.write_indexed_rec(str(tmp_path / 'small.rec'), data.to_rgb32(images[:64]),
                                  labels[:64])


def test_truncated_rec(small_rec, tmp_path):
    with open(small_rec, 'r+b') as stream:
        stream.truncate(os.path.getsize(small_rec) - 100)
    error = one_line_error(run_script('train_se_resnext_w_d.py', custom_args(small_rec, tmp_path)))
    assert 'is truncated' in error and 'im2rec_prep.sh' in error


def test_truncated_rec_without_index(small_rec, tmp_path):
    os.remove(data.idx_path(small_rec))
    with open(small_rec, 'r+b') as stream:
        stream.truncate(os.path.getsize(small_rec) - 100)
    error = one_line_error(run_script('train_se_resnext_w_d.py',
                                      custom_args(small_rec, tmp_path, '--num-examples', '64')))
    assert 'truncated or corrupt' in error


def test_index_of_another_file(small_rec, tmp_path):
    images, labels = data.load_fashion_mnist('train')
    other = data.write_indexed_rec(str(tmp_path / 'other.rec'), data.to_rgb32(images[:200]),
                                   labels[:200])
    os.replace(data.idx_path(other), data.idx_path(small_rec))
    error = one_line_error(run_script('train_se_resnext_w_d.py', custom_args(small_rec, tmp_path)))
    assert 'small.idx does not match' in error


def test_label_beyond_num_classes(small_rec, tmp_path):
    args = custom_args(small_rec, tmp_path)
    args[args.index('--num-classes') + 1] = '5'
    error = one_line_error(run_script('train_se_resnext_w_d.py', args))
    assert 'holds label' in error and '--num-classes is 5' in error


def test_truncated_params(fmnist_slice, tmp_path):
    assert run_script('train_se_resnext_w_d.py', args_for(fmnist_slice, tmp_path, 1)).returncode == 0
    params = tmp_path / 'model' / 'net-0001.params'
    params.write_bytes(params.read_bytes()[:1000])
    result = run_script('train_se_resnext_w_d.py', args_for(fmnist_slice, tmp_path, 2) +
                        ['--model-load-epoch', '1', '--retrain'])
    assert 'not a readable params file' in one_line_error(result)


def test_params_of_another_depth(fmnist_slice, tmp_path):
    assert run_script('train_se_resnext_w_d.py', args_for(fmnist_slice, tmp_path, 1)).returncode == 0
    args = args_for(fmnist_slice, tmp_path, 2) + ['--model-load-epoch', '1', '--retrain']
    args[args.index('--depth') + 1] = '20'
    error = one_line_error(run_script('train_se_resnext_w_d.py', args))
    assert 'does not fit this network' in error and '--depth' in error


def test_model_prefix_under_a_file(small_rec, tmp_path):
    blocker = tmp_path / 'file'
    blocker.write_text('not a directory')
    args = custom_args(small_rec, tmp_path, '--model-prefix', str(blocker / 'net'))
    error = one_line_error(run_script('train_se_resnext_w_d.py', args))
    assert 'cannot create the checkpoint directory' in error


def test_batch_smaller_than_devices(small_rec, tmp_path):
    args = custom_args(small_rec, tmp_path, '--cpus', '4', '--batch-size', '2')
    error = one_line_error(run_script('train_se_resnext_w_d.py', args))
    assert 'smaller than the 4 devices' in error
