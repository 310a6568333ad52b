"""Distributed training through launch.py: real scheduler, server and worker processes on 127.0.0.1.

Every job runs under a timeout with a marker in its environment; afterwards no process carrying the
marker may be alive (the launcher must have stopped and reaped them all), and any that is, is killed.
"""
import os
import re
import signal
import subprocess
import sys
import time
import uuid

import mxnet as mx
import pytest

import data
import launch
from senet import fit
from tests.conftest import ROOT

MARKER = 'SENET_LAUNCH_TEST'
JOB_TIMEOUT = 150
TRAIN_EXAMPLES = 1024

SMALL_NET = ['--depth', '8', '--num-group', '1', '--bn-mom', '0.5', '--aug-level', '0']
"""Basic-block SE-ResNeXt-8 (16/32/64 channels): learns from 1,024 images in one epoch. A fast
BatchNorm momentum lets the moving statistics that validation uses catch up within the epoch."""


def marked_processes(token):
    """Pids of the live processes whose environment holds MARKER=token."""
    needle = ('%s=%s' % (MARKER, token)).encode()
    found = []
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            with open('/proc/%s/environ' % entry, 'rb') as stream:
                if needle in stream.read().split(b'\0'):
                    found.append(int(entry))
        except OSError:
            continue
    return found


def kill_marked(token):
    """SIGKILL every process carrying the marker; returns the pids that were still alive."""
    pids = marked_processes(token)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return pids


def run_launcher(args, timeout=JOB_TIMEOUT):
    """Run launch.py with ``args``; returns (exit status, stdout, stderr, seconds, leftover pids).
    The launcher picks its workers' thread counts: an ``OMP_NUM_THREADS`` of the test run (make
    test sets 1 for its two pytest workers) is not passed on."""
    token = uuid.uuid4().hex
    env = {key: value for key, value in os.environ.items() if key != 'OMP_NUM_THREADS'}
    env[MARKER] = token
    start = time.monotonic()
    proc = subprocess.Popen([sys.executable, '-W', 'ignore', os.path.join(ROOT, 'launch.py'),
                             '--timeout', str(timeout - 20), '--grace', '5'] + list(args),
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
        leftovers = kill_marked(token)
    return proc.returncode, out, err, time.monotonic() - start, leftovers


def trainer_flags(train_rec, val_rec, tmp_path, kv_store, *extra):
    return ['--kv-store', kv_store, '--data-type', 'custom', '--data-train', train_rec,
            '--data-val', val_rec, '--num-classes', '10', '--image-shape', '3,32,32',
            '--num-epochs', '1', '--frequent', '8', '--model-prefix', str(tmp_path / 'model' / 'net'),
            '--log-file', str(tmp_path / 'log' / 'net.log')] + SMALL_NET + list(extra)


def trainer_command(*args):
    return [sys.executable, '-W', 'ignore', os.path.join(ROOT, 'train_se_resnext_w_d.py')] + \
        trainer_flags(*args)


def by_worker(pattern, log):
    """{rank: match groups} of the lines ``[worker r/2] <pattern>``."""
    return {int(rank): rest for rank, *rest in
            re.findall(r'\[worker (\d)/2\] ' + pattern, log)}


@pytest.fixture(scope='module')
def fmnist_1k(tmp_path_factory):
    """The first 1,024 Fashion-MNIST training images as an indexed .rec."""
    images, labels = data.load_fashion_mnist('train')
    path = tmp_path_factory.mktemp('fmnist-1k') / 'train.rec'
    return data.write_indexed_rec(str(path), data.to_rgb32(images[:TRAIN_EXAMPLES]),
                                  labels[:TRAIN_EXAMPLES])


def test_dist_sync_two_workers_agree_and_learn(fmnist_1k, fmnist_slice, tmp_path, monkeypatch):
    """1 scheduler, 1 server, 2 workers, one epoch: same final weights on both, well above chance."""
    command = trainer_command(fmnist_1k, fmnist_slice['val'], tmp_path, 'dist_sync',
                              '--batch-size', '16', '--lr', '0.1')
    status, out, err, seconds, leftovers = run_launcher(['-n', '2', '-s', '1', '--launcher',
                                                         'local'] + command)
    assert status == 0, err[-3000:]
    assert not leftovers
    assert 'all 2 workers exited with status 0' in err
    log = (tmp_path / 'log' / 'net.log').read_text()
    monkeypatch.delenv('OMP_NUM_THREADS', raising=False)  # as run_launcher runs the launcher
    threads = re.findall(r'1 CPU context with OMP_NUM_THREADS=(\d+)', log)
    assert threads == [launch.local_threads('worker', 2)['OMP_NUM_THREADS']] * 2, log

    digests = by_worker(r'Epoch\[0\] Parameters sha256=([0-9a-f]{64})', log)
    assert set(digests) == {0, 1}, log
    _, arg_params, _ = mx.model.load_checkpoint(str(tmp_path / 'model' / 'net'), 1)
    assert digests[0] == digests[1] == [fit.params_digest(arg_params)]
    assert not (tmp_path / 'model' / 'net-0001.states').exists()  # states live on the servers

    # each worker read its own half: same weights, different data, different training metrics
    losses = by_worker(r'Epoch\[0\] Train-cross-entropy=([0-9.]+)', log)
    assert set(losses) == {0, 1} and losses[0] != losses[1]
    # 32 batches of 16 each: half of the 1,024 examples, the epoch of one worker
    assert by_worker(r'Epoch\[0\] Batch \[24-(\d+)\]', log) == {0: ['32'], 1: ['32']}

    finals = by_worker(r'Final validation accuracy ([0-9.]+) on (\d+) images', log)
    assert set(finals) == {0, 1}
    assert sum(int(count) for _, count in finals.values()) == 256  # validation sharded too
    accuracy = sum(float(acc) for acc, _ in finals.values()) / 2
    assert accuracy > 0.4, log  # chance is 0.1


def test_dist_async_resumes_and_completes(fmnist_slice, tmp_path):
    """A dist_async job resumes epoch 1 of a one-process run: its weights and lr position.

    The servers cannot take the optimizer states from a worker, so momentum restarts, with a
    warning on every worker.
    """
    import train_se_resnext_w_d
    schedule = ['--batch-size', '16', '--lr', '0.05']
    assert train_se_resnext_w_d.main(trainer_flags(fmnist_slice['train'], fmnist_slice['val'],
                                                   tmp_path, 'device', *schedule)) == 0
    command = trainer_command(fmnist_slice['train'], fmnist_slice['val'], tmp_path, 'dist_async',
                              *schedule, '--num-epochs', '2', '--model-load-epoch', '1', '--retrain')
    status, out, err, seconds, leftovers = run_launcher(['-n', '2', '-s', '1'] + command)
    assert status == 0, err[-3000:]
    assert not leftovers
    log = (tmp_path / 'log' / 'net.log').read_text()
    resumed = by_worker(r'--kv-store dist_async keeps optimizer states on the servers, which cannot '
                        r'load them: resumed from epoch (\d)', log)
    assert resumed == {0: ['1'], 1: ['1']}, log
    assert set(by_worker(r'Final validation accuracy ([0-9.]+)', log)) == {0, 1}
    assert not re.search(r'\[worker \d/2\] Epoch\[0\]', log)  # epoch 1 was not trained again
    prefix = str(tmp_path / 'model' / 'net')
    _, epoch1, _ = mx.model.load_checkpoint(prefix, 1)
    _, epoch2, _ = mx.model.load_checkpoint(prefix, 2)
    moved = (epoch2['fc1_weight'] - epoch1['fc1_weight']).norm() / epoch1['fc1_weight'].norm()
    assert 1e-3 < moved.asscalar() < 1  # trained on from the checkpoint, not from scratch


CRASHING_WORKER = '''
import os
import mxnet as mx
kv = mx.kv.create('dist_sync')
if kv.rank == 1:
    os._exit(3)
kv._barrier()  # rank 0 waits here for a peer that is gone: only the launcher can end this
'''


def test_a_crashed_worker_fails_the_job_and_nothing_is_left(tmp_path):
    status, out, err, seconds, leftovers = run_launcher(
        ['-n', '2', '-s', '1', sys.executable, '-W', 'ignore', '-c', CRASHING_WORKER])
    assert status == 3, err
    assert re.search(r'worker \d \(pid \d+\) exited with status 3: stopping the job', err), err
    assert seconds < JOB_TIMEOUT - 20  # ended by the crash, not by --timeout
    assert not leftovers


FAKE_SSH = '''#!/bin/sh
# Test double for ssh: drop the options and the host, run the remote command here.
while [ $# -gt 0 ]; do
    case "$1" in
        -tt) shift ;;
        -o|-p) shift 2 ;;
        *) break ;;
    esac
done
shift
exec sh -c "$*"
'''

BARRIER_JOB = '''
import mxnet as mx
kv = mx.kv.create('dist_sync')
kv._barrier()
print('rank %d of %d host %s' % (kv.rank, kv.num_workers, __import__('os').environ['DMLC_NODE_HOST']))
'''


def test_ssh_launcher_runs_the_roles_through_ssh(tmp_path):
    """-H hosts: the scheduler here, servers and workers through `ssh HOST 'cd DIR && exec env ...'`."""
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    (bin_dir / 'ssh').write_text(FAKE_SSH)
    (bin_dir / 'ssh').chmod(0o755)
    hosts = tmp_path / 'hosts'
    hosts.write_text('# loopback twice, as two "machines"\n127.0.0.1\n127.0.0.1:22\n')
    script = tmp_path / 'job.py'
    script.write_text(BARRIER_JOB)
    old_path = os.environ['PATH']
    os.environ['PATH'] = '%s:%s' % (bin_dir, old_path)
    try:
        status, out, err, seconds, leftovers = run_launcher(
            ['-n', '2', '-s', '1', '-H', str(hosts), '--env', 'DMLC_INTERFACE=lo',
             '--workdir', str(tmp_path), sys.executable, '-W', 'ignore', 'job.py'])
    finally:
        os.environ['PATH'] = old_path
    assert status == 0, err
    assert not leftovers
    assert sorted(re.findall(r'rank (\d) of 2 host 127.0.0.1', out)) == ['0', '1'], out
    assert 'started worker 1 on 127.0.0.1' in err


def test_ssh_command_quotes_environment_and_directory(tmp_path):
    workdir = tmp_path / 'a dir'
    workdir.mkdir()
    argv = launch.ssh_argv('node7', '2222', {'DMLC_ROLE': 'worker', 'NOTE': "it's two words"},
                           [sys.executable, '-c', 'import os; print(os.getcwd()); '
                                                  'print(os.environ["NOTE"])'], str(workdir))
    assert argv[:-1] == ['ssh', '-tt', '-o', 'BatchMode=yes', '-o', 'LogLevel=ERROR', '-p', '2222',
                         'node7']
    result = subprocess.run(['sh', '-c', argv[-1]], capture_output=True, text=True, timeout=30)
    assert result.stdout.splitlines() == [str(workdir), "it's two words"]


def test_local_jobs_share_the_cores_out(monkeypatch):
    """Workers on this machine split its physical cores, the scheduler and servers get one
    thread each, and a user's OMP_NUM_THREADS is left alone."""
    monkeypatch.delenv('OMP_NUM_THREADS', raising=False)
    monkeypatch.setattr(launch.threads, 'usable_cores', lambda: 8)
    assert launch.local_threads('worker', 2) == {'OMP_NUM_THREADS': '4'}
    assert launch.local_threads('worker', 16) == {'OMP_NUM_THREADS': '1'}
    assert launch.local_threads('server', 2) == launch.local_threads('scheduler', 2) == {
        'OMP_NUM_THREADS': '1'}
    monkeypatch.setenv('OMP_NUM_THREADS', '3')
    assert launch.local_threads('worker', 2) == {}


def test_hostfile_parsing(tmp_path):
    hosts = tmp_path / 'hosts'
    hosts.write_text('10.0.0.1\n\n# comment\nnode2:2222  # trailing comment\n')
    assert launch.parse_hostfile(str(hosts)) == [('10.0.0.1', '22'), ('node2', '2222')]
    hosts.write_text('node2:ssh\n')
    with pytest.raises(launch.LaunchError, match='host:port'):
        launch.parse_hostfile(str(hosts))
