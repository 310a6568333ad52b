"""The network a run trains and the one it checkpoints, built from the parsed flags.

Checkpoints hold the textbook graph (``symbols.textbook_graph``). On the CPU training binds the
default fast forms, which avoid oneDNN's slow paths in MXNet 1.9.1, with the same parameters;
with ``--gpus`` it binds the textbook graph as well, since those paths do not exist there.

With ``--dtype`` or ``--loss-scale`` the trained graph's input and head change
(:func:`with_precision`); the checkpointed graph never does, so checkpoints load everywhere.
"""
import contextlib
import functools
import json
import os
import re

import symbols
from symbols import textbook_graph, training_graph

NETWORK_FLAGS = {'num_layers': 'depth', 'image_shape': 'image_shape', 'num_group': 'num_group',
                 'drop_out': 'drop_out', 'bn_mom': 'bn_mom', 'workspace': 'workspace',
                 'version': 'version', 'widen_factor': 'widen_factor'}
"""Builder keyword -> attribute of the parsed arguments; each network gets those it accepts."""


def build_symbol(args):
    """The symbol of ``args.network`` from the flags its builder accepts (symbols.builder_options)."""
    accepted = symbols.builder_options(args.network)
    kwargs = {key: getattr(args, flag) for key, flag in NETWORK_FLAGS.items()
              if key in accepted and getattr(args, flag, None) is not None}
    return symbols.get_symbol(args.network, args.num_classes, **kwargs)


def training_symbols(args, saved=None):
    """The graph to train and the graph to checkpoint, with the same parameters.

    Parameters
    ----------
    args : argparse.Namespace
        Resolved flags: the network, its options, ``image_shape`` and ``gpus``.
    saved : mx.sym.Symbol, optional
        A textbook graph to use instead of ``args.network``'s (fine-tune.py: a checkpoint's
        network with a new classifier).

    Returns
    -------
    tuple
        (training graph, textbook graph).

    Raises
    ------
    ValueError
        When the builder rejects the flags (an unsupported depth, groups that do not divide...).
    """
    if saved is not None:
        trained = saved if args.gpus else training_graph(saved, (1,) + tuple(args.image_shape))
    else:
        with textbook_graph():
            saved = build_symbol(args)
        trained = saved if args.gpus else build_symbol(args)
    if getattr(args, 'no_wd', False):
        trained = without_decay(trained, [name for name in trained.list_arguments()
                                          if name.endswith('_gamma')])
    dtype, loss_scale = getattr(args, 'dtype', 'float32'), getattr(args, 'loss_scale', 1.0)
    return with_precision(trained, dtype, loss_scale), saved


def without_decay(symbol, names):
    """A copy of ``symbol`` whose parameters ``names`` have weight-decay multiplier 0.

    MXNet's optimizer reads a variable's ``__wd_mult__`` attribute (``Optimizer.set_wd_mult``);
    by default it decays every parameter whose name ends in ``_weight`` or ``_gamma``.
    """
    import mxnet as mx
    graph = json.loads(symbol.tojson())
    wanted = set(names)
    for node in graph['nodes']:
        if node['op'] == 'null' and node['name'] in wanted:
            node.setdefault('attrs', {})['__wd_mult__'] = '0.0'
    return mx.sym.load_json(json.dumps(graph))


RESIDUAL_BN_GAMMA = re.compile(r'^(stage\d+_unit\d+)_bn(\d+)_gamma$')
"""The gammas of a ResNet-family unit's BatchNorms ``stage{s}_unit{u}_bn{k}``; the shortcut's
``_sc_bn`` is not among them."""


def zero_gamma_names(symbol):
    """Gammas of the last BatchNorm of every residual branch of ``symbol`` (``--zero-gamma``).

    In a ResNet-family unit that is the highest-numbered ``stage{s}_unit{u}_bn{k}``: bn3 of a
    bottleneck and bn2 of a basic unit. With it at 0 the branch starts at zero: a post-activation
    unit's BatchNorm then outputs its beta (0), which the SE block scales; a pre-activation unit's
    last convolution (no bias) sees relu(0). The Inception networks have no such BatchNorm (the
    residual branches of Inception-ResNet-v2 end in a 1x1 convolution with a bias): an empty list.
    """
    last = {}
    for name in symbol.list_arguments():
        match = RESIDUAL_BN_GAMMA.match(name)
        if match:
            unit, index = match.group(1), int(match.group(2))
            if index > last.get(unit, (0, None))[0]:
                last[unit] = (index, name)
    return sorted(name for _, name in last.values())


def with_precision(symbol, dtype='float32', loss_scale=1.0):
    """The training graph ``symbol`` trained in ``dtype`` with static loss scale ``loss_scale``.

    float32 with scale 1 returns ``symbol`` itself. Otherwise the head is rebuilt: the SoftmaxOutput
    ``softmax`` gets ``grad_scale=loss_scale`` (the optimizer divides by it again, see
    :func:`senet.fit.optimizer_params`) and takes float32 logits. float16 follows MXNet's recipe for
    Module: the input is cast to float16 in the graph (``data_float16``), so every convolution and
    fully-connected weight is float16 (BatchNorm keeps float32 parameters), and the logits are cast
    back (``fc1_float32``) before the softmax. bfloat16 goes through MXNet's AMP graph pass
    (``mxnet.contrib.amp.convert_symbol``): convolutions and fully-connected layers (with the
    BatchNorms and ReLUs between them) run in bfloat16 through oneDNN on bfloat16 casts of the
    float32 parameters; the SE scale, the residual additions and the softmax stay float32.
    """
    if dtype == 'float32' and loss_scale == 1.0:
        return symbol
    import mxnet as mx
    nodes = json.loads(symbol.tojson())['nodes']
    head = [node for node in nodes if node['name'] == 'softmax' and node['op'] == 'SoftmaxOutput']
    if len(head) != 1:
        raise ValueError('the network does not end in a SoftmaxOutput named softmax')
    logits_node = nodes[head[0]['inputs'][0][0]]
    logits = symbol.get_internals()[logits_node['name'] if logits_node['op'] == 'null'
                                    else logits_node['name'] + '_output']
    if dtype == 'float16':
        data = mx.sym.Cast(mx.sym.Variable('data'), dtype='float16', name='data_float16')
        logits = mx.sym.Cast(logits(data=data), dtype='float32', name='%s_float32'
                             % logits_node['name'])
    attrs = dict(head[0].get('attrs', {}))
    if loss_scale != 1.0:
        attrs['grad_scale'] = repr(float(loss_scale))
    out = mx.sym.SoftmaxOutput(data=logits, label=mx.sym.Variable('softmax_label'), name='softmax',
                               **attrs)
    if dtype == 'bfloat16':
        from mxnet.contrib import amp
        out = amp.convert_symbol(out, target_dtype='bfloat16', cast_optional_params=False,
                                 data_names=['data', 'softmax_label'])
    return out


@contextlib.contextmanager
def _quiet_stderr():
    """Send file descriptor 2 (where MXNet's C++ side logs) to /dev/null for the block."""
    saved = os.dup(2)
    try:
        with open(os.devnull, 'w') as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


@functools.lru_cache(maxsize=None)
def bfloat16_runs_on_cpu():
    """Whether this CPU trains a bfloat16 convolution through MXNet's oneDNN.

    MXNet 1.9.1's oneDNN (v2.4) has bfloat16 convolutions for AVX-512 CPUs only; elsewhere binding
    one fails ("could not create a primitive descriptor iterator"). The probe trains one step of a
    tiny convolution, BatchNorm and fully-connected graph through :func:`with_precision`, with the
    C++ log silenced, so the answer is what training would meet.
    """
    import mxnet as mx
    net = mx.sym.Convolution(mx.sym.Variable('data'), num_filter=8, kernel=(3, 3), pad=(1, 1),
                             name='conv0')
    net = mx.sym.Activation(mx.sym.BatchNorm(net, name='bn0'), act_type='relu')
    net = mx.sym.FullyConnected(net, num_hidden=2, name='fc1')
    net = mx.sym.SoftmaxOutput(net, mx.sym.Variable('softmax_label'), name='softmax')
    try:
        with _quiet_stderr():
            executor = with_precision(net, 'bfloat16').simple_bind(
                mx.cpu(), data=(2, 3, 8, 8), softmax_label=(2,))
            executor.forward(is_train=True)
            executor.backward()
            mx.nd.waitall()
    except mx.base.MXNetError:
        return False
    return True
