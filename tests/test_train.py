"""End-to-end training on real Fashion-MNIST slices: learning, checkpoints, resume, benchmark."""
import json
import os
import re
import subprocess
import sys
import types

import mxnet as mx
import numpy as np
import pytest

import train_se_resnext_w_d
from senet import arguments, fit, lr_schedule, network, threads
from tests.conftest import ROOT, slice_args

LR_LINE = re.compile(r'Epoch\[(\d+)\] Batch \[(\d+)-(\d+)\].*\tlr=([0-9.e-]+)')


def train(args):
    assert train_se_resnext_w_d.main(args) == 0


def read_log(tmp_path):
    return (tmp_path / 'log' / 'net.log').read_text()


def test_short_run_learns_and_checkpoints(trained_slice_model):
    tmp_path = trained_slice_model
    log = read_log(tmp_path)
    accuracies = [float(v) for v in re.findall(r'Validation-accuracy=([0-9.]+)', log)]
    assert len(accuracies) == 3
    assert max(accuracies) > 0.5, log  # chance is 0.1
    losses = [float(v) for v in re.findall(r'Train-cross-entropy=([0-9.]+)', log)]
    assert losses[-1] < losses[0]
    for name in ('net-symbol.json', 'net-0001.params', 'net-0003.params', 'net-0003.states'):
        assert (tmp_path / 'model' / name).is_file(), name
    assert 'Epoch[2] Time cost=' in log and 'Final validation accuracy' in log
    saved, arg_params, aux_params = mx.model.load_checkpoint(str(tmp_path / 'model' / 'net'), 3)
    assert 'fc1_weight' in arg_params and 'bn0_moving_mean' in aux_params
    # Checkpoints hold the textbook graph (faster inference, quantizable), not the training form.
    ops = {node['name']: node['op'] for node in json.loads(saved.tojson())['nodes']}
    assert ops['stage1_unit1_se_scale'] == 'broadcast_mul'
    assert ops['stage1_unit1_squeeze'] == 'Pooling'


def lr_by_batch(log):
    return {(int(e), int(b)): float(lr) for e, _, b, lr in LR_LINE.findall(log)}


def test_resume_continues_the_same_run(fmnist_slice, tmp_path):
    """2 epochs straight == 1 epoch + resume for 1, in parameters and in every batch's lr."""
    schedule = ['--lr', '0.05', '--warmup-epochs', '0.5', '--lr-step-epochs', '1.5',
                '--aug-level', '0', '--frequent', '1', '--seed', '7']
    straight, split = tmp_path / 'straight', tmp_path / 'split'
    train(slice_args(fmnist_slice, straight, epochs=2) + schedule)
    train(slice_args(fmnist_slice, split, epochs=1) + schedule)
    first_half = read_log(split)
    train(slice_args(fmnist_slice, split, epochs=2) + schedule +
          ['--model-load-epoch', '1', '--retrain'])
    resumed_log = read_log(split)
    assert 'resumed from epoch 1' in resumed_log

    lrs_straight, lrs_split = lr_by_batch(read_log(straight)), lr_by_batch(resumed_log)
    assert len(lrs_straight) == 16 and set(lrs_straight) == set(lrs_split)
    assert lrs_split == lrs_straight
    assert len(set(lrs_straight.values())) > 3  # warm-up and a step inside the run
    assert lr_by_batch(first_half) == {k: v for k, v in lrs_straight.items() if k[0] == 0}

    _, args_a, aux_a = mx.model.load_checkpoint(str(straight / 'model' / 'net'), 2)
    _, args_b, aux_b = mx.model.load_checkpoint(str(split / 'model' / 'net'), 2)
    _, args_1, _ = mx.model.load_checkpoint(str(split / 'model' / 'net'), 1)
    assert set(args_a) == set(args_b) and set(aux_a) == set(aux_b)
    params_a, params_b = {**args_a, **aux_a}, {**args_b, **aux_b}
    for name in params_a:
        a, b = params_a[name].asnumpy(), params_b[name].asnumpy()
        assert np.linalg.norm(a - b) <= 1e-4 * np.linalg.norm(a) + 1e-12, name
    moved = np.linalg.norm(args_a['fc1_weight'].asnumpy() - args_1['fc1_weight'].asnumpy())
    assert moved > 1e-3  # epoch 2 did train


def test_resume_without_states_warns_and_runs(fmnist_slice, tmp_path):
    train(slice_args(fmnist_slice, tmp_path, epochs=1) + ['--aug-level', '0'])
    (tmp_path / 'model' / 'net-0001.states').unlink()
    train(slice_args(fmnist_slice, tmp_path, epochs=2) + ['--model-load-epoch', '1', '--retrain'])
    assert 'momentum restarts from zero' in read_log(tmp_path)
    assert (tmp_path / 'model' / 'net-0002.params').is_file()


def test_benchmark_needs_no_data(tmp_path):
    args = ['--benchmark', '--data-type', 'fashion-mnist', '--data-dir', str(tmp_path / 'none'),
            '--depth', '11', '--num-group', '2', '--batch-size', '16',
            '--model-prefix', str(tmp_path / 'm' / 'b'), '--log-file', str(tmp_path / 'b.log')]
    train(args)
    speed = re.search(r'training ([0-9.]+) img/s', (tmp_path / 'b.log').read_text())
    assert speed and float(speed.group(1)) > 0
    assert not (tmp_path / 'none').exists()


def test_scheduler_steps_and_warmup():
    scheduler = lr_schedule.EpochStepScheduler(0.1, epoch_size=10, step_epochs=[2, 3], factor=0.1,
                                               warmup_epochs=1)
    assert scheduler(1) == pytest.approx(0.01) and scheduler(10) == pytest.approx(0.1)
    assert scheduler(20) == pytest.approx(0.1) and scheduler(21) == pytest.approx(0.01)
    assert scheduler(31) == pytest.approx(0.001)


def test_cosine_schedule_warms_up_then_decays_to_zero():
    scheduler = lr_schedule.CosineScheduler(0.2, epoch_size=10, num_epochs=5, warmup_epochs=1)
    assert scheduler(5) == pytest.approx(0.1) and scheduler(10) == pytest.approx(0.2)
    assert scheduler(30) == pytest.approx(0.1)  # half-way through the 40 updates after warm-up
    assert scheduler(50) == pytest.approx(0.0) and scheduler(60) == pytest.approx(0.0)
    rates = [scheduler(n) for n in range(10, 51)]
    assert all(a > b for a, b in zip(rates, rates[1:]))


def test_cpus_gives_each_context_its_share_of_openmp_threads():
    assert threads.threads_per_context(['--cpus', '2'], cores=2) == 1
    assert threads.threads_per_context(['--depth', '14', '--cpus=4'], cores=16) == 4
    assert threads.threads_per_context(['--cpus', '3'], cores=2) == 1
    assert threads.threads_per_context([], cores=2) == 2
    assert threads.threads_per_context(['--cpus', '2', '--gpus', '0'], cores=2) == 2
    assert threads.threads_per_context(['--cpus', 'two'], cores=2) is None


def test_physical_cores_counts_cores_not_hardware_threads(tmp_path):
    """Two cores of two hardware threads each (logical CPUs 0-3): 2 cores, 1 when the process
    may only run on CPUs 0 and 2 (one core's two threads); without core ids, the allowed CPUs."""
    cpuinfo = tmp_path / 'cpuinfo'
    cpuinfo.write_text('\n\n'.join('processor\t: %d\nphysical id\t: 0\ncore id\t\t: %d\n'
                                    'siblings\t: 4' % (cpu, cpu % 2) for cpu in range(4)))
    assert threads.physical_cores(str(cpuinfo), allowed={0, 1, 2, 3}) == 2
    assert threads.physical_cores(str(cpuinfo), allowed={0, 2}) == 1
    assert threads.physical_cores(str(tmp_path / 'missing'), allowed={0, 1, 2}) == 3
    assert threads.physical_cores() >= 1


def test_a_containers_cpu_quota_caps_the_threads(tmp_path):
    """cgroup v2 ``cpu.max`` and v1 quota/period files: 250000/100000 allows 3 CPUs; no quota
    ('max', -1 or no files) gives None."""
    v2, v1_quota, v1_period = (tmp_path / name for name in ('cpu.max', 'quota', 'period'))
    v2.write_text('250000 100000\n')
    assert threads.cpu_quota([(str(v2),)]) == 3
    v2.write_text('max 100000\n')
    v1_quota.write_text('-1\n')
    v1_period.write_text('100000\n')
    assert threads.cpu_quota([(str(v2),), (str(v1_quota), str(v1_period))]) is None
    v1_quota.write_text('100000\n')
    assert threads.cpu_quota([(str(v2),), (str(v1_quota), str(v1_period))]) == 1
    assert threads.cpu_quota([(str(tmp_path / 'missing'),)]) is None
    assert 1 <= threads.usable_cores() <= threads.physical_cores()


@pytest.mark.parametrize('split', [[], ['--cpus', '2']])
def test_trainer_script_sets_openmp_threads_before_mxnet_loads(tmp_path, split):
    """Unless the user sets OMP_NUM_THREADS, a trainer uses every physical core (MXNet alone would
    take half the logical CPUs), shared out over --cpus contexts."""
    env = {k: v for k, v in os.environ.items() if k != 'OMP_NUM_THREADS'}
    log = tmp_path / 'b.log'
    args = ['--benchmark', '--data-type', 'fashion-mnist', '--depth', '8', '--batch-size', '16',
            '--model-prefix', str(tmp_path / 'm'), '--log-file', str(log)] + split
    result = subprocess.run([sys.executable, os.path.join(ROOT, 'train_se_resnext_w_d.py')] + args,
                            capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr
    expected = threads.threads_per_context(split)
    line = ('2 CPU contexts, each with OMP_NUM_THREADS=%d' if split else
            '1 CPU context with OMP_NUM_THREADS=%d') % expected
    assert line in log.read_text()
    if not split:
        assert expected == threads.usable_cores()


def test_per_data_type_defaults_do_not_overwrite_given_values():
    parser = arguments.build_parser(network='se-resnext')
    args = arguments.resolve_args(parser.parse_args(['--data-type', 'cifar10', '--num-classes', '7',
                                                     '--num-examples', '1000']))
    assert (args.num_classes, args.num_examples, args.depth) == (7, 1000, 29)
    assert max(args.lr_steps) < args.num_epochs
    defaults = arguments.resolve_args(parser.parse_args([]))
    assert (defaults.num_classes, defaults.depth, defaults.image_shape) == (1000, 50, (3, 224, 224))
    assert defaults.data_dir.endswith('imagenet') and defaults.optimizer == 'nag'


@pytest.mark.parametrize('gpus', ['', '0,1'])
def test_cpu_trains_the_fast_graph_and_every_checkpoint_holds_the_textbook_one(gpus):
    """SE-ResNeXt-29 with 8 groups: on the CPU the training graph has the fast SE (and, where oneDNN
    runs AVX-512 kernels, plain-layout boundaries around its narrow grouped convolutions); on GPUs it
    is the textbook graph itself."""
    def ops(sym):
        return {node['op'] for node in json.loads(sym.tojson())['nodes']}
    args = arguments.resolve_args(arguments.build_parser(network='se-resnext').parse_args(
        ['--data-type', 'fashion-mnist', '--depth', '29', '--num-group', '8', '--gpus', gpus]))
    train_sym, saved_sym = network.training_symbols(args)
    assert train_sym.list_arguments() == saved_sym.list_arguments()
    assert 'broadcast_mul' in ops(saved_sym) and 'slice_axis' not in ops(saved_sym)
    fast = {'slice_axis', 'elemwise_mul', '_contrib_AdaptiveAvgPooling2D'}
    if gpus:
        assert ops(train_sym) == ops(saved_sym)
    else:
        assert fast <= ops(train_sym)
    # Fine-tuning (fit.fit with a checkpoint's graph): the same choice, from that graph.
    tuned_train, tuned_saved = network.training_symbols(args, saved_sym)
    assert tuned_saved is saved_sym
    assert tuned_train.tojson() == (saved_sym if gpus else train_sym).tojson()


@pytest.mark.parametrize('kv_type,workers,expected', [
    ('device', 1, dict(distributed=False, sync=False, epoch_size=12, updates_per_batch=1,
                       update_batch=16)),
    ('dist_sync', 2, dict(distributed=True, sync=True, epoch_size=6, updates_per_batch=1,
                          update_batch=32)),
    ('dist_device_sync', 2, dict(distributed=True, sync=True, epoch_size=6, updates_per_batch=1,
                                 update_batch=32)),
    ('dist_async', 2, dict(distributed=True, sync=False, epoch_size=6, updates_per_batch=2,
                           update_batch=16)),
])
def test_run_plan_of_local_and_distributed_jobs(kv_type, workers, expected):
    """Each worker trains its share of an epoch; a synchronous job updates once per global batch,
    an asynchronous one once per worker batch. Either way an epoch's updates cover its examples
    once (12 batches of 16 here), so learning-rate steps land on the same epochs in every job."""
    args = arguments.resolve_args(arguments.build_parser(network='se-resnext').parse_args(
        ['--benchmark', '--data-type', 'fashion-mnist', '--batch-size', '16']))
    kv = types.SimpleNamespace(type=kv_type, num_workers=workers, rank=workers - 1)
    plan = fit.make_plan(args, kv, [mx.cpu()])
    assert {key: getattr(plan, key) for key in expected} == expected
    assert (plan.num_workers, plan.rank, plan.kvstore) == (workers, workers - 1, kv)
    assert plan.train_rec is None and plan.val_rec is None
    assert plan.updates(1, 0) * plan.update_batch == 12 * 16
    assert plan.updates(2, 3) == (2 * plan.epoch_size + 3) * plan.updates_per_batch
