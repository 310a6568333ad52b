"""Failures of the operating system during a real training run: each ends with one line naming the
path, the system's reason and what was kept, a non-zero status, and the kept checkpoints load.

The disk is really full (a small tmpfs, mounted where the tests run as root), directories are really
removed or remounted read-only, the ``.rec`` is really cut short under the running iterator, and the
memory is really exhausted (an address-space limit on the trainer's process). The trainer is paused
(SIGSTOP) while the damage is done, so the failure always lands on the same step.

:data:`CATALOGUE` is docs/reliability.md's table of these failures: ``test_catalogue`` checks that the
document shows exactly these rows, and each test checks its line against its row.
"""
import collections
import contextlib
import errno
import glob
import os
import re
import resource
import shutil
import signal
import subprocess
import sys

import mxnet as mx
import pytest

import data
from senet import faults
from tests.conftest import ROOT

TRAINER = 'train_se_resnext_w_d.py'

Failure = collections.namedtuple('Failure', 'situation line kept test')

CATALOGUE = [
    Failure('the disk fills while a checkpoint is written',
            'cannot write <prefix>-symbol.json (No space left on device); last complete '
            'checkpoint: epoch 1 (<prefix>-0001.params); resume with --model-load-epoch 1 --retrain',
            'every complete epoch; the temporary file is removed',
            'test_disk_full_while_saving_a_checkpoint'),
    Failure('the disk fills while the log is written',
            'cannot write <log> (No space left on device); last complete checkpoint: epoch 1 '
            '(<prefix>-0001.params); resume with --model-load-epoch 1 --retrain',
            'every complete epoch; the log up to the full disk',
            'test_disk_full_while_writing_the_log'),
    Failure('the checkpoint directory becomes read-only',
            'cannot write <prefix>-symbol.json (Read-only file system); last complete checkpoint: '
            'epoch 1 (<prefix>-0001.params); resume with --model-load-epoch 1 --retrain',
            'every complete epoch',
            'test_checkpoint_directory_made_read_only'),
    Failure('the checkpoint directory is removed',
            'cannot write <prefix>-symbol.json (No such file or directory); no checkpoint is left: '
            'the checkpoint directory <directory> no longer exists',
            'what was moved away with the directory (complete)',
            'test_checkpoint_directory_removed'),
    Failure('the log directory is removed',
            'cannot write <log> (the log file was removed during the run); last complete '
            'checkpoint: epoch 1 (<prefix>-0001.params); resume with --model-load-epoch 1 --retrain',
            'every complete epoch',
            'test_log_directory_removed'),
    Failure('the training `.rec` is cut short while it is read',
            'cannot read <rec> at batch <n> of epoch 1: --data-train <rec> is truncated: its index '
            'points at byte <n> of <size>; <hint>; last complete checkpoint: epoch 1 '
            '(<prefix>-0001.params); resume with --model-load-epoch 1 --retrain',
            'every complete epoch',
            'test_rec_truncated_under_the_running_iterator'),
    Failure('memory runs out when the network\'s arrays are allocated',
            "out of memory while allocating the network's arrays (Failed to allocate CPU Memory); "
            'lower --batch-size or --image-shape, add --memonger, or free memory; last complete '
            'checkpoint: epoch 1 (<prefix>-0001.params); resume with --model-load-epoch 1 --retrain',
            'every complete epoch',
            'test_out_of_memory_allocating_the_network'),
]
ROWS = {row.test: row for row in CATALOGUE}


def line_pattern(documented):
    """The regular expression of a documented line: ``<...>`` stands for any text."""
    parts = re.split(r'<[^>]+>', documented)
    return re.compile('.+?'.join(re.escape(part) for part in parts))


@pytest.fixture(scope='module')
def recs(tmp_path_factory):
    """A 256-image and a 2048-image indexed .rec of real Fashion-MNIST training images."""
    directory = tmp_path_factory.mktemp('recs')
    images, labels = data.load_fashion_mnist('train')
    images = data.to_rgb32(images[:2048])
    return {'small': data.write_indexed_rec(str(directory / 'small.rec'), images[:256],
                                            labels[:256]),
            'big': data.write_indexed_rec(str(directory / 'big.rec'), images, labels[:2048])}


def trainer_args(rec, prefix, log, epochs=3, batch_size=32, num_examples=64):
    return ['--data-type', 'custom', '--data-train', str(rec), '--num-classes', '10',
            '--image-shape', '3,32,32', '--depth', '11', '--num-group', '2',
            '--batch-size', str(batch_size), '--num-examples', str(num_examples),
            '--num-epochs', str(epochs), '--frequent', '1', '--aug-level', '0', '--lr', '0.05',
            '--model-prefix', str(prefix), '--log-file', str(log)]


class Trainer:
    """The trainer as a child process whose output is read line by line while it runs."""

    def __init__(self, args, limit_memory=None):
        env = dict(os.environ, MALLOC_ARENA_MAX='2')  # fewer reserved arenas: a stable footprint

        def limit():
            if limit_memory:
                resource.setrlimit(resource.RLIMIT_AS, (limit_memory, limit_memory))
        self.proc = subprocess.Popen([sys.executable, '-W', 'ignore', TRAINER] + list(args),
                                     cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, preexec_fn=limit)
        self.output = []

    def pause_after(self, fragment):
        """Read the output until a line holds ``fragment``, then stop the process (SIGSTOP)."""
        for line in self.proc.stdout:
            self.output.append(line)
            if fragment in line:
                self.proc.send_signal(signal.SIGSTOP)
                return
        raise AssertionError('%r never appeared:\n%s%s' % (fragment, ''.join(self.output[-20:]),
                                                            self.proc.stderr.read()))

    def finish(self):
        """Continue the process and wait for it: (exit status, stderr)."""
        self.proc.send_signal(signal.SIGCONT)
        try:
            stdout, stderr = self.proc.communicate(timeout=300)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        self.output.append(stdout)
        return self.proc.returncode, stderr


def assert_one_line(test, status, stderr):
    """The run ended with status 1 and, on stderr, exactly the catalogue's line for ``test``."""
    assert status == faults.EXIT_CODE, stderr
    assert 'Traceback' not in stderr and 'Stack trace' not in stderr, stderr
    errors = [line for line in stderr.splitlines() if 'error' in line.lower()]
    assert len(errors) == 1, stderr
    head = TRAINER + ': error: '
    assert errors[0].startswith(head) and stderr.rstrip().endswith(errors[0]), stderr
    assert line_pattern(ROWS[test].line).fullmatch(errors[0][len(head):]), errors[0]
    return errors[0]


def assert_complete(prefix, epochs):
    """The checkpoints of ``epochs`` under ``prefix`` load and no temporary file is left."""
    assert glob.glob(str(prefix) + '*.tmp-*') == []
    assert sorted(glob.glob(str(prefix) + '-0*.params')) == \
        ['%s-%04d.params' % (prefix, epoch) for epoch in epochs]
    for epoch in epochs:
        _, arg_params, aux_params = mx.model.load_checkpoint(str(prefix), epoch)
        assert 'fc1_weight' in arg_params and aux_params


@contextlib.contextmanager
def tmpfs(directory, size):
    """A tmpfs of ``size`` mounted at ``directory``; the test is skipped (with why) where it
    cannot be mounted."""
    if os.geteuid() != 0:
        pytest.skip('mounting a tmpfs needs root; this test runs where the tests run as root')
    directory.mkdir(parents=True)
    mounted = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=%s' % size, 'tmpfs',
                              str(directory)], capture_output=True, text=True)
    if mounted.returncode:
        pytest.skip('cannot mount a tmpfs at %s: %s' % (directory, mounted.stderr.strip()))
    try:
        yield directory
    finally:
        subprocess.run(['umount', '-l', str(directory)], capture_output=True)


def fill(directory):
    """Write into ``directory`` until its file system is full; returns the filler's path."""
    path = directory / 'filler'
    chunk = b'\0' * 65536
    with open(path, 'wb', buffering=0) as stream:
        while True:
            try:
                stream.write(chunk)
            except OSError as err:
                assert err.errno == errno.ENOSPC
                return path


FIRST_SAVE = '-0001.params"'


def test_disk_full_while_saving_a_checkpoint(recs, tmp_path):
    with tmpfs(tmp_path / 'disk', '8m') as disk:
        prefix, log = disk / 'net', tmp_path / 'net.log'
        run = Trainer(trainer_args(recs['small'], prefix, log))
        run.pause_after(FIRST_SAVE)
        fill(disk)
        assert_one_line('test_disk_full_while_saving_a_checkpoint', *run.finish())
        assert_complete(prefix, [1])
        assert os.listdir(disk) == ['filler'] + sorted(os.path.basename(path) for path in
                                                      glob.glob(str(prefix) + '-*'))


def test_disk_full_while_writing_the_log(recs, tmp_path):
    with tmpfs(tmp_path / 'disk', '1m') as disk:
        prefix, log = tmp_path / 'model' / 'net', disk / 'net.log'
        run = Trainer(trainer_args(recs['small'], prefix, log))
        run.pause_after(FIRST_SAVE)
        # The log's last page still has room: end the log at a page boundary, so that the next
        # line needs a page of the full disk (the trainer appends, O_APPEND, after this line).
        with open(log, 'a') as stream:
            stream.write('-' * (-(os.path.getsize(log) + 1) % 4096) + '\n')
        fill(disk)
        assert_one_line('test_disk_full_while_writing_the_log', *run.finish())
        assert_complete(prefix, [1])
        assert 'Epoch[0] Train-accuracy' in log.read_text()


def test_checkpoint_directory_made_read_only(recs, tmp_path):
    with tmpfs(tmp_path / 'disk', '8m') as disk:
        prefix, log = disk / 'net', tmp_path / 'net.log'
        run = Trainer(trainer_args(recs['small'], prefix, log))
        run.pause_after(FIRST_SAVE)
        subprocess.run(['mount', '-o', 'remount,ro', str(disk)], check=True)
        assert_one_line('test_checkpoint_directory_made_read_only', *run.finish())
        assert_complete(prefix, [1])


def test_checkpoint_directory_removed(recs, tmp_path):
    prefix, log = tmp_path / 'model' / 'net', tmp_path / 'net.log'
    run = Trainer(trainer_args(recs['small'], prefix, log))
    run.pause_after(FIRST_SAVE)
    os.rename(tmp_path / 'model', tmp_path / 'moved')
    line = assert_one_line('test_checkpoint_directory_removed', *run.finish())
    assert str(tmp_path / 'model') in line
    assert_complete(tmp_path / 'moved' / 'net', [1])


def test_log_directory_removed(recs, tmp_path):
    prefix, log = tmp_path / 'model' / 'net', tmp_path / 'log' / 'net.log'
    run = Trainer(trainer_args(recs['small'], prefix, log))
    run.pause_after(FIRST_SAVE)
    shutil.rmtree(tmp_path / 'log')
    line = assert_one_line('test_log_directory_removed', *run.finish())
    assert str(log) in line
    assert_complete(prefix, [1])


def test_rec_truncated_under_the_running_iterator(recs, tmp_path):
    rec = tmp_path / 'train.rec'
    shutil.copy(recs['big'], rec)
    shutil.copy(data.idx_path(recs['big']), data.idx_path(str(rec)))
    prefix, log = tmp_path / 'model' / 'net', tmp_path / 'net.log'
    run = Trainer(trainer_args(rec, prefix, log, batch_size=32, num_examples=256))
    run.pause_after(FIRST_SAVE)
    run.proc.send_signal(signal.SIGCONT)
    run.pause_after('Epoch[1] Batch [0-1]')
    os.truncate(rec, os.path.getsize(rec) // 4)
    line = assert_one_line('test_rec_truncated_under_the_running_iterator', *run.finish())
    assert str(rec) in line
    assert_complete(prefix, [1])


def test_out_of_memory_allocating_the_network(recs, tmp_path):
    """A 2,000-image batch needs more than 4 GB; 3 GB of address space lets MXNet start (its
    libraries and threads take about 2 GB) but not allocate the network's arrays."""
    prefix, log = tmp_path / 'model' / 'net', tmp_path / 'net.log'
    first = Trainer(trainer_args(recs['small'], prefix, log, epochs=1))
    assert first.finish()[0] == 0
    run = Trainer(trainer_args(recs['big'], prefix, log, batch_size=2000, num_examples=2000) +
                  ['--model-load-epoch', '1', '--retrain'], limit_memory=3 << 30)
    assert_one_line('test_out_of_memory_allocating_the_network', *run.finish())
    assert_complete(prefix, [1])
