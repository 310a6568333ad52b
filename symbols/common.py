"""Building blocks shared by every network family: BatchNorm, convolution, SE block, head.

All operators are named explicitly so that a graph's names never depend on what else was built in
the process (the released SE-ResNeXt model's names are reproduced exactly).
"""
import contextlib
import contextvars
import functools
import json

import mxnet as mx

BN_EPS = 2e-5
"""BatchNorm epsilon of the original repository and of MXNet's ResNet example."""

SE_REDUCTION = 16
"""The SE paper's reduction ratio r: the excitation bottleneck has about C / r units."""

SMALL_IMAGE_MAX_SIDE = 32
"""Inputs whose height is at most this get a family's small-image (CIFAR-style) network."""

SE_DIVISOR = 8
"""Excitation widths are C / r rounded to a multiple of this, at least this (timm's rule): it only
changes layers of fewer than 128 channels, and gives the reference counts of SE-ResNeXt-18/34."""


def se_width(num_filter, reduction=SE_REDUCTION, divisor=SE_DIVISOR):
    """Units of the excitation bottleneck for ``num_filter`` channels."""
    if reduction <= 0:
        raise ValueError('SE reduction must be positive, got %r' % (reduction,))
    target = num_filter / reduction
    width = max(divisor, int(target + divisor / 2) // divisor * divisor)
    return width + divisor if width < 0.9 * target else width


def parse_image_shape(image_shape):
    """Return ``image_shape`` as a tuple of three ints; accepts ``'3,224,224'`` or a sequence."""
    if isinstance(image_shape, str):
        image_shape = [part for part in image_shape.split(',') if part.strip()]
    try:
        shape = tuple(int(dim) for dim in image_shape)
    except (TypeError, ValueError):
        raise ValueError('image_shape %r is not of the form C,H,W (e.g. 3,224,224)'
                         % (image_shape,)) from None
    if len(shape) != 3 or min(shape) <= 0:
        raise ValueError('image_shape %r is not of the form C,H,W (e.g. 3,224,224)' % (shape,))
    return shape


def batchnorm(data, name, bn_mom=0.9, fix_gamma=False):
    """BatchNorm with the project's constants."""
    return mx.sym.BatchNorm(data=data, fix_gamma=fix_gamma, eps=BN_EPS, momentum=bn_mom, name=name)


def _pair(value):
    """``3`` -> ``(3, 3)``; a (height, width) pair is returned as a tuple."""
    if isinstance(value, int):
        return (value, value)
    height, width = value
    return (int(height), int(width))


def conv(data, num_filter, kernel, name, stride=1, pad=None, num_group=1, workspace=512,
         no_bias=True):
    """Convolution, bias-free unless ``no_bias=False``.

    ``kernel``, ``stride`` and ``pad`` are an int (square) or a (height, width) pair, so factorized
    1x7 / 7x1 convolutions are ``kernel=(1, 7)``; ``pad`` defaults to 'same' for odd kernels.
    """
    kernel = _pair(kernel)
    pad = (kernel[0] // 2, kernel[1] // 2) if pad is None else _pair(pad)
    return mx.sym.Convolution(data=data, num_filter=num_filter, kernel=kernel,
                              stride=_pair(stride), pad=pad, num_group=num_group,
                              no_bias=no_bias, workspace=workspace, name=name)


GROUPED_CONV_IMPLS = ('auto', 'grouped')
"""How :func:`grouped_conv` builds a grouped convolution; both compute the same function with the
same ``{name}_weight`` parameter.

``grouped``: MXNet's ``Convolution`` with ``num_group``, the textbook graph.
``auto``: the same convolution between two :func:`plain_layout` boundaries when a group's channels
are not a multiple of ``CHANNEL_BLOCK``. oneDNN then stores the convolution's output, and the
gradient it sends back, in a layout blocked by the group width (4 or 8 channels), while the
BatchNorms around it work in blocks of 16: a BatchNorm whose data and gradient layouts differ runs
oneDNN's reference kernel, which took 3.5 s of SE-ResNeXt-50's 5.3 s training step (batch 16,
224x224) on this project's CPU. With the boundaries every BatchNorm runs a vectorised kernel."""

CHANNEL_BLOCK = 16
"""Channel block of oneDNN's AVX-512 layouts."""

_GROUPED_CONV_IMPL = contextvars.ContextVar('grouped_conv_impl', default='auto')


@contextlib.contextmanager
def grouped_conv_implementation(impl):
    """Build :func:`grouped_conv` with ``impl`` (one of GROUPED_CONV_IMPLS) inside the block."""
    if impl not in GROUPED_CONV_IMPLS:
        raise ValueError('unknown grouped convolution implementation %r; choose one of: %s'
                         % (impl, ', '.join(GROUPED_CONV_IMPLS)))
    token = _GROUPED_CONV_IMPL.set(impl)
    try:
        yield
    finally:
        _GROUPED_CONV_IMPL.reset(token)


def plain_layout(data, name):
    """``data`` itself, with both it and its gradient in MXNet's plain NCHW layout.

    A full-range ``slice_axis``: it and its backward run outside oneDNN, so MXNet hands them plain
    arrays and they return plain arrays (a ``reshape``'s backward keeps oneDNN's layout)."""
    return mx.sym.slice_axis(data=data, axis=1, begin=0, end=None, name=name)


def grouped_conv(data, num_filter, in_channels, kernel, name, stride=1, num_group=1, workspace=512):
    """Bias-free 'same' convolution of ``in_channels`` inputs (may be None if ``num_group`` is 1)
    in ``num_group`` groups: :func:`conv`, under the 'auto' implementation (GROUPED_CONV_IMPLS)
    between plain-layout boundaries where a group's width is not a multiple of CHANNEL_BLOCK."""
    def make(data):
        return conv(data, num_filter, kernel, name, stride=stride, num_group=num_group,
                    workspace=workspace)
    if _GROUPED_CONV_IMPL.get() == 'grouped' or not _is_narrow(in_channels, num_group):
        return make(data)
    return _between_plain_layouts(make, data, name)


def _between_plain_layouts(make, data, name):
    """``make(data)`` (the operator ``name``) with its input and output :func:`plain_layout`."""
    return plain_layout(make(plain_layout(data, name + '_plain_input')), name + '_plain_output')


def _is_narrow(in_channels, num_group):
    """A grouped convolution whose groups are not a multiple of CHANNEL_BLOCK channels wide."""
    return num_group > 1 and (in_channels // num_group) % CHANNEL_BLOCK != 0


def conv_bn(data, num_filter, kernel, conv_name, bn_name, stride=1, pad=None, num_group=1,
            bn_mom=0.9, workspace=512, act_name=None):
    """Convolution -> BatchNorm, followed by ReLU when ``act_name`` is given."""
    out = conv(data, num_filter, kernel, conv_name, stride=stride, pad=pad, num_group=num_group,
               workspace=workspace)
    out = batchnorm(out, bn_name, bn_mom=bn_mom)
    if act_name is not None:
        out = mx.sym.Activation(data=out, act_type='relu', name=act_name)
    return out


SE_IMPLS = ('fast', 'broadcast')
"""Formulations of the SE block; both compute the same function with the same parameters.

``broadcast``: Pooling -> Flatten -> FCs -> ``broadcast_mul(data, reshape(gate))``, the textbook graph.
``fast``: the same with three changes that matter on MXNet 1.9.1's CPU build, where the textbook
graph trains slowly:

* the squeeze is ``contrib.AdaptiveAvgPooling2D``: oneDNN runs the global average Pooling's backward
  with its reference kernel when the gradient arrives in another layout than the input (2 s and
  more per call on a 128x64x32x32 batch);
* the gate is spread over the pixels by a per-sample outer product with ones (``batch_dot``) and
  applied with ``elemwise_mul``: the gate's gradient then is a matrix-vector product instead of
  ``broadcast_mul``'s slow generic reduction;
* ``data`` is reshaped to itself once, which converts oneDNN's blocked layout to the plain one a
  single time instead of once for every non-oneDNN operator that reads it.

Both accept any batch and image size."""

_SE_IMPL = contextvars.ContextVar('se_impl', default='fast')


@contextlib.contextmanager
def se_implementation(impl):
    """Build SE blocks with formulation ``impl`` (one of SE_IMPLS) inside the ``with`` block."""
    if impl not in SE_IMPLS:
        raise ValueError('unknown SE implementation %r; choose one of: %s'
                         % (impl, ', '.join(SE_IMPLS)))
    token = _SE_IMPL.set(impl)
    try:
        yield
    finally:
        _SE_IMPL.reset(token)


@contextlib.contextmanager
def textbook_graph():
    """Build the textbook forms inside the block: ``broadcast`` SE blocks and MXNet's grouped
    convolutions. Same parameters and function as the default (training) forms; it is the graph
    checkpoints and shipped symbol files hold: shorter to run forward, fused whole by oneDNN for
    inference, and the one INT8 quantization accepts."""
    with se_implementation('broadcast'), grouped_conv_implementation('grouped'):
        yield


def se_block(data, num_filter, name, reduction=SE_REDUCTION, divisor=SE_DIVISOR, impl=None):
    """Squeeze-and-Excitation (Hu et al. 2018): rescale the channels of ``data`` by learned gates.

    global average pool -> FC(se_width(num_filter, reduction, divisor)) -> ReLU -> FC(num_filter) ->
    sigmoid -> channel-wise product with ``data``. The FC layers carry biases. Names follow the original's
    released model: ``{name}_squeeze``, ``{name}_excitation1``, ``{name}_excitation2``.

    Parameters
    ----------
    data : Symbol
        Feature map of shape (N, num_filter, H, W).
    num_filter : int
        Number of channels of ``data``.
    name : str
        Prefix of the block's operators, e.g. ``stage1_unit1``.
    reduction : int
        Ratio between ``num_filter`` and the width of the excitation bottleneck.
    divisor : int
        The bottleneck width is rounded to a multiple of this (1: the nearest integer to
        num_filter / reduction).
    impl : str or None
        One of SE_IMPLS; None takes the one set by :func:`se_implementation` (default 'fast').
    """
    impl = _SE_IMPL.get() if impl is None else impl
    if impl not in SE_IMPLS:
        raise ValueError('unknown SE implementation %r; choose one of: %s'
                         % (impl, ', '.join(SE_IMPLS)))
    if impl == 'fast':
        data, squeeze = _fast_squeeze(data, name)
    else:
        squeeze = mx.sym.Pooling(data=data, global_pool=True, kernel=(1, 1), pool_type='avg',
                                 name=name + '_squeeze')
    squeeze = mx.sym.Flatten(data=squeeze, name=name + '_flatten')
    excitation = mx.sym.FullyConnected(data=squeeze,
                                       num_hidden=se_width(num_filter, reduction, divisor),
                                       name=name + '_excitation1')
    excitation = mx.sym.Activation(data=excitation, act_type='relu',
                                   name=name + '_excitation1_relu')
    excitation = mx.sym.FullyConnected(data=excitation, num_hidden=num_filter,
                                       name=name + '_excitation2')
    excitation = mx.sym.Activation(data=excitation, act_type='sigmoid',
                                   name=name + '_excitation2_sigmoid')
    if impl == 'fast':
        return _se_scale_fast(data, excitation, name)
    gate = mx.sym.reshape(data=excitation, shape=(-1, num_filter, 1, 1), name=name + '_se_gate')
    return mx.sym.broadcast_mul(data, gate, name=name + '_se_scale')


def _fast_squeeze(data, name):
    """(``data`` reshaped to itself, its ``AdaptiveAvgPooling2D`` squeeze) of the 'fast' SE block
    ``name``: the reshape converts oneDNN's blocked layout to the plain one once for all readers."""
    data = mx.sym.reshape(data=data, shape=(0, 0, 0, 0), name=name + '_se_input')
    return data, mx.sym.contrib.AdaptiveAvgPooling2D(data=data, output_size=1,
                                                     name=name + '_squeeze')


def _se_scale_fast(data, gate, name):
    """``data`` (N, C, H, W) times ``gate`` (N, C) per channel, as ``elemwise_mul`` with the gate
    spread over the pixels by ``batch_dot(gate (N, C, 1), ones (N, 1, H*W))``."""
    gate = mx.sym.reshape(data=gate, shape=(0, 0, 1), name=name + '_se_gate')
    # Ones of shape (N, 1, H*W), taken from the data so that any batch and image size works; no
    # gradient flows back through them.
    pixels = mx.sym.BlockGrad(data=data, name=name + '_se_pixels_nograd')
    pixels = mx.sym.slice_axis(data=pixels, axis=1, begin=0, end=1, name=name + '_se_pixels')
    pixels = mx.sym.reshape(data=pixels, shape=(0, 1, -1), name=name + '_se_pixels_flat')
    ones = mx.sym.ones_like(data=pixels, name=name + '_se_ones')
    gate = mx.sym.batch_dot(gate, ones, name=name + '_se_gate_map')
    gate = mx.sym.reshape_like(gate, data, name=name + '_se_gate_like')
    return mx.sym.elemwise_mul(data, gate, name=name + '_se_scale')


def _symbol_creator(op):
    """The ``mx.sym`` function that makes operator ``op`` (as a graph's JSON names it)."""
    if op.startswith('_contrib_'):
        return getattr(mx.sym.contrib, op[len('_contrib_'):])
    return getattr(mx.sym, op, None) or getattr(mx.sym._internal, op)  # pylint: disable=W0212


def _recreate(op, name, attrs, other_inputs, *data):
    """Operator ``op`` named ``name`` with the JSON attributes ``attrs`` (``__x__`` ones as the
    node's attributes) on ``data`` (its first input, if it has any) and ``other_inputs``."""
    user = {key: value for key, value in attrs.items() if key.startswith('__')}
    params = {key: value for key, value in attrs.items() if key not in user}
    return _symbol_creator(op)(*data, *other_inputs, name=name, attr=user or None, **params)


def training_graph(symbol, data_shape):
    """The training form of a textbook-graph ``symbol`` (a checkpoint's, see :func:`textbook_graph`).

    Returns the same graph with every SE block in the 'fast' formulation and every narrow grouped
    convolution between plain-layout boundaries, node for node what the builders make by default:
    the same parameters and the same function. An SE block is a global average ``Pooling`` named
    ``{block}_squeeze`` and a ``broadcast_mul`` of that pooling's input (this project's graphs and
    the original repository's released model); anything else is kept as it is, so a graph already
    in the training form comes back unchanged. ``data_shape`` is the shape of the input ``data``,
    from which the convolutions' input channels are inferred.
    """
    graph = json.loads(symbol.tojson())
    nodes = graph['nodes']
    arg_shapes, _, _ = symbol.infer_shape_partial(data=tuple(data_shape))
    shapes = dict(zip(symbol.list_arguments(), arg_shapes))
    squeezes = {tuple(node['inputs'][0][:2]): index for index, node in enumerate(nodes)
                if node['op'] == 'Pooling' and node['name'].endswith('_squeeze')
                and node.get('attrs', {}).get('global_pool') == 'True'
                and node.get('attrs', {}).get('pool_type') == 'avg'}
    scales = {index: squeezes[tuple(node['inputs'][0][:2])] for index, node in enumerate(nodes)
              if node['op'] == 'broadcast_mul' and tuple(node['inputs'][0][:2]) in squeezes}
    blocks = {squeeze: nodes[squeeze]['name'][:-len('_squeeze')] for squeeze in scales.values()}
    outputs, se_inputs = [], {}
    for index, node in enumerate(nodes):
        name, op, attrs = node['name'], node['op'], dict(node.get('attrs', {}))
        inputs = [outputs[source][output] for source, output, _ in node['inputs']]
        if op == 'null':
            out = mx.sym.var(name)
            if attrs:
                out._set_attr(**attrs)  # pylint: disable=protected-access
        elif index in blocks:
            se_inputs[index], out = _fast_squeeze(inputs[0], blocks[index])
        elif index in scales:
            gate_node = nodes[node['inputs'][1][0]]
            gate = (outputs[gate_node['inputs'][0][0]][gate_node['inputs'][0][1]]
                    if gate_node['op'] == 'Reshape' else
                    mx.sym.reshape(data=inputs[1], shape=(0, 0), name=name + '_gate'))
            out = _se_scale_fast(se_inputs[scales[index]], gate, blocks[scales[index]])
        else:
            groups = int(attrs.get('num_group', 1))
            weight = (shapes.get(nodes[node['inputs'][1][0]]['name']) if op == 'Convolution'
                      and len(node['inputs']) > 1 else None) or (0, 0)
            narrow = op == 'Convolution' and _is_narrow(groups * weight[1], groups)
            make = functools.partial(_recreate, op, name, attrs, inputs[1:])
            if narrow and inputs[0].name != name + '_plain_input':
                out = _between_plain_layouts(make, inputs[0], name)
            else:
                out = make(*inputs[:1])
        outputs.append(out)
    heads = [outputs[source][output] for source, output, _ in graph['heads']]
    return heads[0] if len(heads) == 1 else mx.sym.Group(heads)


def classifier_head(data, num_classes, drop_out=0.0, pool_name='pool1'):
    """Global average pool -> flatten -> dropout -> ``fc1`` -> ``softmax`` (SoftmaxOutput)."""
    pool = mx.sym.Pooling(data=data, global_pool=True, kernel=(1, 1), pool_type='avg',
                          name=pool_name)
    flat = mx.sym.Flatten(data=pool, name='flatten1')
    if drop_out > 0:
        flat = mx.sym.Dropout(data=flat, p=drop_out, name='dp1')
    fc1 = mx.sym.FullyConnected(data=flat, num_hidden=num_classes, name='fc1')
    return mx.sym.SoftmaxOutput(data=fc1, name='softmax')


def data_input(bn_mom=0.9):
    """The ``data`` variable followed by ``bn_data`` (fix_gamma), so networks take raw 0-255 pixels."""
    data = mx.sym.Variable(name='data')
    return batchnorm(data, 'bn_data', bn_mom=bn_mom, fix_gamma=True)
