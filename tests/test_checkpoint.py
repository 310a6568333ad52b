"""checkpoint.Checkpointer: what a run writes, prunes and names as its last good checkpoint."""
import os

import mxnet as mx
import numpy as np
import pytest

from senet import checkpoint


@pytest.fixture
def trained():
    """(module, symbol): a 4-input, 3-class classifier with optimizer states."""
    net = mx.sym.SoftmaxOutput(mx.sym.FullyConnected(mx.sym.Variable('data'), num_hidden=3,
                                                     name='fc1'), name='softmax')
    mod = mx.mod.Module(net, context=mx.cpu())
    mod.bind(data_shapes=[('data', (2, 4))], label_shapes=[('softmax_label', (2,))])
    mod.init_params(mx.init.Xavier())
    mod.init_optimizer(optimizer='sgd', optimizer_params=dict(momentum=0.9))
    mod.forward_backward(mx.io.DataBatch([mx.nd.ones((2, 4))], [mx.nd.array([0, 2])]))
    mod.update()
    return mod, net


def test_keeps_the_newest_epochs_and_names_the_last_good(trained, tmp_path):
    mod, net = trained
    prefix = str(tmp_path / 'model' / 'net')
    saver = checkpoint.Checkpointer(prefix, net, keep_last=2)
    saver.prepare()
    assert saver.last_good() == 'none saved yet'
    paths = [saver.save(mod, epoch) for epoch in (1, 2, 3)]
    assert paths[-1] == prefix + '-0003.params'
    assert checkpoint.saved_epochs(prefix) == [2, 3]
    assert sorted(os.listdir(tmp_path / 'model')) == [
        'net-0002.params', 'net-0002.states', 'net-0003.params', 'net-0003.states',
        'net-symbol.json']
    assert saver.last_good() == '%s-0003.params (resume with --model-load-epoch 3 --retrain)' \
        % prefix
    symbol, arg_params, _ = mx.model.load_checkpoint(prefix, 3)
    assert symbol.tojson() == net.tojson()
    current = mod.get_params()[0]
    for name, value in arg_params.items():
        np.testing.assert_array_equal(value.asnumpy(), current[name].asnumpy())


def test_a_partial_checkpoint_lasts_until_the_next_epoch(trained, tmp_path):
    mod, net = trained
    prefix = str(tmp_path / 'net')
    saver = checkpoint.Checkpointer(prefix, net)
    saver.save(mod, 1)
    assert saver.save_partial(mod, 1, 5) == prefix + '-0001-partial.params'
    assert checkpoint.saved_partial(prefix) == (1, 5)
    assert checkpoint.resume_point(prefix, -1) == (1, 5, prefix + '-0001-partial.params',
                                                   prefix + '-0001-partial.states')
    assert saver.last_good().startswith(prefix + '-0001.params ')  # complete epochs only
    saver.save(mod, 2)
    assert checkpoint.saved_partial(prefix) is None
    assert checkpoint.resume_point(prefix, -1)[:2] == (2, 0)


def test_only_rank_0_writes_and_without_states_when_told(trained, tmp_path):
    mod, net = trained
    other_rank = checkpoint.Checkpointer(str(tmp_path / 'a' / 'net'), net, rank=1)
    other_rank.prepare()
    assert other_rank.save(mod, 1) is None and other_rank.save_partial(mod, 1, 2) is None
    assert os.listdir(tmp_path / 'a') == []
    no_states = checkpoint.Checkpointer(str(tmp_path / 'b' / 'net'), net, save_states=False)
    no_states.prepare()
    no_states.save(mod, 1)
    assert sorted(os.listdir(tmp_path / 'b')) == ['net-0001.params', 'net-symbol.json']


def test_prepare_makes_the_directory_and_clears_dead_temporaries(trained, tmp_path):
    _, net = trained
    prefix = tmp_path / 'deep' / 'model' / 'net'
    checkpoint.Checkpointer(str(prefix), net).prepare()
    dead = tmp_path / 'deep' / 'model' / 'net-0001.params.tmp-999999999'
    alive = tmp_path / 'deep' / 'model' / ('net-0001.params.tmp-%d' % os.getppid())
    dead.write_bytes(b'x')
    alive.write_bytes(b'x')
    checkpoint.Checkpointer(str(prefix), net).prepare()
    assert not dead.exists() and alive.exists()
    blocker = tmp_path / 'file'
    blocker.write_text('not a directory')
    with pytest.raises(checkpoint.CheckpointError, match='cannot create the checkpoint directory'):
        checkpoint.Checkpointer(str(blocker / 'net'), net).prepare()
