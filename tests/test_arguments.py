"""Argument resolution: every check of the flags happens there, before a run logs or writes anything."""
import re

import pytest

from senet import arguments


def resolve(argv):
    parser = arguments.build_parser(network='se-resnext')
    return arguments.resolve_args(parser.parse_args(['--data-type', 'fashion-mnist'] + argv))


@pytest.mark.parametrize('argv,fragment', [
    (['--cpus', '0'], '--cpus 0: give a positive number of CPU contexts'),
    (['--cpus', '2', '--gpus', '0'], '--cpus 2: give a positive number of CPU contexts, and only '
                                     'without --gpus'),
    (['--gpus', 'zero'], "--gpus 'zero' is not a comma-separated list"),
    (['--cpus', '4', '--batch-size', '2'], '--batch-size 2 is smaller than the 4 devices'),
    (['--gpus', '0,1,2', '--batch-size', '2'], 'smaller than the 3 devices of --gpus 0,1,2'),
    (['--kv-store', 'dist_sync'], '--kv-store dist_sync needs a distributed job: start the '
                                  'trainer through launch.py'),
    (['--optimizer', 'sgdd'], "unknown --optimizer 'sgdd'; choose one of: "),
    (['--keep-last', '-1'], '--keep-last must be 0 (keep every epoch) or positive, got -1'),
    (['--frequent', '0'], '--frequent must be positive, got 0'),
    (['--model-load-epoch', '3'], '--model-load-epoch 3 needs --retrain'),
    (['--retrain'], '--retrain needs --model-load-epoch N'),
    (['--model-load-epoch', '12', '--retrain'], '--model-load-epoch 12 is not before '
                                                '--num-epochs 12'),
    (['--lr-step-epochs', '9,6'], "--lr-step-epochs '9,6' must be increasing positive epochs"),
])
def test_resolve_args_rejects_what_cannot_train(argv, fragment, monkeypatch):
    monkeypatch.delenv('DMLC_ROLE', raising=False)
    with pytest.raises(arguments.UsageError, match=re.escape(fragment)):
        resolve(argv)


def test_dist_kvstore_resolves_inside_a_launched_job(monkeypatch):
    monkeypatch.setenv('DMLC_ROLE', 'worker')
    assert resolve(['--kv-store', 'dist_async']).kv_store == 'dist_async'


def test_resolve_args_does_not_ask_the_machine_for_gpus():
    """Whether the GPUs exist is checked when the run makes its contexts, not here."""
    assert resolve(['--gpus', '0,1']).gpus == '0,1'
    with pytest.raises(arguments.UsageError, match='leave --gpus empty'):
        arguments.make_contexts('0,1')


def test_resolve_data_checks_the_examples_of_each_worker(fmnist_slice):
    args = resolve(['--data-train', fmnist_slice['train'], '--data-val', fmnist_slice['val'],
                    '--num-examples', '200', '--batch-size', '64'])
    assert arguments.resolve_data(args, 1) == (fmnist_slice['train'], fmnist_slice['val'], 3)
    assert arguments.resolve_data(args, 2)[2] == 1
    with pytest.raises(arguments.UsageError, match=re.escape(
            '--batch-size 64 is larger than the 50 training examples per worker')):
        arguments.resolve_data(args, 4)


def test_num_examples_beyond_the_records_is_a_usage_error(fmnist_slice):
    """The iterator would run dry in the middle of the first epoch."""
    args = resolve(['--data-train', fmnist_slice['train'], '--num-examples', '600'])
    with pytest.raises(arguments.UsageError, match=re.escape(
            '--num-examples 600 is more than the 512 records of %s' % fmnist_slice['train'])):
        arguments.resolve_data(args, 1)


def test_resolve_data_of_a_benchmark_needs_no_files(tmp_path):
    args = resolve(['--benchmark', '--data-dir', str(tmp_path / 'none'), '--batch-size', '16'])
    total = arguments.BENCHMARK_WARMUP + arguments.BENCHMARK_BATCHES
    assert arguments.resolve_data(args, 1) == (None, None, total)
    assert arguments.resolve_data(args, 2) == (None, None, total // 2)
    assert not (tmp_path / 'none').exists()
