"""Several devices in one process: the trainer's Module over two CPU contexts (``--cpus 2``).

This is the path ``--gpus 0,1`` takes: the batch is split over the devices, every device computes
its slice's gradients, the kvstore sums them and updates once.
"""
import mxnet as mx
import numpy as np
import pytest

import data
import symbols
import train_se_resnext_w_d
from senet import arguments

BATCH = 64
NET = ['--depth', '11', '--num-group', '2']
TRAINING_SYMBOL = symbols.get_symbol('se-resnext', 10, num_layers=11, image_shape=(3, 32, 32),
                                     num_group=2)


def train_one_batch(fmnist_slice, tmp_path, monkeypatch, *extra):
    """Train one batch through the trainer: (arg params, aux params, the batch, symbol file)."""
    seen = []
    make_rec_iter = data.make_rec_iter

    def record(batches):
        for batch in batches:
            seen.append((batch.data[0].asnumpy(), batch.label[0].asnumpy()))
            yield batch

    def recording_iter(*args, **kwargs):
        batches = make_rec_iter(*args, **kwargs)
        return record(batches) if kwargs.get('train') else batches

    monkeypatch.setattr(data, 'make_rec_iter', recording_iter)
    prefix = tmp_path / 'model' / 'net'
    args = ['--data-type', 'custom', '--data-train', fmnist_slice['train'], '--num-classes', '10',
            '--image-shape', '3,32,32', '--batch-size', str(BATCH), '--num-examples', str(BATCH),
            '--num-epochs', '1', '--aug-level', '0', '--lr', '0.1', '--model-prefix', str(prefix),
            '--log-file', str(tmp_path / 'log' / 'net.log')] + NET + list(extra)
    assert train_se_resnext_w_d.main(args) == 0
    _, arg_params, aux_params = mx.model.load_checkpoint(str(prefix), 1)
    return ({k: v.asnumpy() for k, v in arg_params.items()},
            {k: v.asnumpy() for k, v in aux_params.items()}, seen[0], str(prefix) + '-symbol.json')


def one_context_reference(symbol_path, initial, batch):
    """The update of two devices, computed on one context: each half alone, gradients summed.

    Every device runs BatchNorm over its own half of the batch, so the reference is a one-context
    forward/backward per half (each from the initial parameters and BN statistics), the two
    gradients summed, and one optimizer step with the trainer's settings (NAG, momentum 0.9, lr 0.1,
    wd 1e-4, gradients rescaled by 1/64). BN moving statistics are each device's own; the trainer
    reports their mean over devices, and so does the reference.
    """
    half = BATCH // 2
    # The graph the trainer trains: the checkpoint's symbol file holds the textbook form of the
    # same parameters, whose float32 rounding differs by ~1e-5.
    assert mx.sym.load(symbol_path).list_arguments() == TRAINING_SYMBOL.list_arguments()
    module = mx.mod.Module(TRAINING_SYMBOL, context=mx.cpu())
    module.bind(data_shapes=[('data', (half, 3, 32, 32))], label_shapes=[('softmax_label', (half,))])
    names = module._exec_group.param_names
    grads, stats = [], []
    for part in range(2):
        module.init_params(mx.init.Xavier(), arg_params={k: mx.nd.array(v) for k, v in initial.items()},
                           allow_missing=True, force_init=True)  # BN statistics: mean 0, var 1
        rows = slice(part * half, (part + 1) * half)
        module.forward_backward(mx.io.DataBatch([mx.nd.array(batch[0][rows])],
                                                [mx.nd.array(batch[1][rows])]))
        mx.nd.waitall()
        grads.append({k: g[0].asnumpy() for k, g in zip(names, module._exec_group.grad_arrays)})
        stats.append({k: a[0].asnumpy() for k, a in zip(module._exec_group.aux_names,
                                                       module._exec_group.aux_arrays)})
    optimizer = mx.optimizer.create('nag', learning_rate=0.1, momentum=0.9, wd=1e-4,
                                    rescale_grad=1.0 / BATCH, param_idx2name=dict(enumerate(names)))
    updater = mx.optimizer.get_updater(optimizer)
    updated = {}
    for index, name in enumerate(names):
        weight = mx.nd.array(initial[name])
        updater(index, mx.nd.array(grads[0][name] + grads[1][name]), weight)
        updated[name] = weight.asnumpy()
    return updated, {k: (stats[0][k] + stats[1][k]) / 2 for k in stats[0]}


@pytest.fixture(scope='module')
def initial_run(fmnist_slice, tmp_path_factory):
    """The trainer's initial weights (a run with lr 0), the batch it drew and its symbol file."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        initial, _, batch, symbol_path = train_one_batch(
            fmnist_slice, tmp_path_factory.mktemp('initial'), monkeypatch, '--lr', '0')
    return initial, batch, symbol_path


def relative(a, b):
    return np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30)


@pytest.mark.parametrize('kv_store', ['local', 'device'])
def test_two_contexts_make_the_one_context_update(fmnist_slice, initial_run, tmp_path, monkeypatch,
                                                  kv_store):
    """One batch of 64 over two CPU contexts == the same update computed on one context.

    The comparison is not with one context over the full batch of 64: BatchNorm normalises each
    device's half with that half's statistics, which is a different function of the batch. (Nor
    would a loose tolerance rescue it: at initialisation this network's gradients change by ~2%
    when only the order of the examples in a batch changes, floating-point summation order being
    amplified through BatchNorm of nearly constant channels.) The reference therefore does exactly
    what the two devices do, one half at a time on a single context, and sums the gradients: see
    :func:`one_context_reference`. The initial weights come from the same trainer run with lr 0.
    """
    initial, first_batch, symbol_path = initial_run
    args, aux, batch, _ = train_one_batch(fmnist_slice, tmp_path, monkeypatch,
                                          '--cpus', '2', '--kv-store', kv_store)
    assert all((a == b).all() for a, b in zip(batch, first_batch))  # same data, same order
    expected_args, expected_aux = one_context_reference(symbol_path, initial, batch)

    assert set(args) == set(expected_args) and set(aux) == set(expected_aux)
    for name, expected in expected_args.items():
        assert relative(args[name] - initial[name], expected - initial[name]) <= 1e-5, name
    for name, expected in expected_aux.items():
        assert relative(aux[name], expected) <= 1e-5, name
    assert relative(args['fc1_weight'], initial['fc1_weight']) > 1e-3  # the batch did train


def test_cpus_flag_makes_cpu_contexts_and_rejects_nonsense():
    assert arguments.make_contexts('', 2) == [mx.cpu(0), mx.cpu(1)]
    assert arguments.make_contexts('') == [mx.cpu()]
    for gpus, cpus in (('', 0), ('0', 2)):
        with pytest.raises(arguments.UsageError, match='--cpus'):
            arguments.make_contexts(gpus, cpus)
