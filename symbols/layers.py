"""Layers shared by every network family: convolution, BatchNorm, the SE block, input and head.

The SE block is that of Hu et al., "Squeeze-and-Excitation Networks" (2018), with biases in its two
FC layers as in the original SENet.mxnet. Deviation: its bottleneck width is C / r rounded to a
multiple of 8 (timm's rule, :func:`se_width`), which only changes layers of fewer than 128 channels;
the Inceptions ask for C / r exactly.

Every operator is named explicitly, so a graph's names never depend on what else was built in the
process (the original's released SE-ResNeXt model's names are reproduced exactly).

:func:`se_block` and :func:`grouped_conv` build the textbook graph or, by default, the CPU training
form of :mod:`symbols.cpu_fast`; each asks that module which form is current
(:func:`symbols.cpu_fast.textbook_graph` selects the textbook one).
"""
import mxnet as mx

from symbols import cpu_fast

BN_EPS = 2e-5
"""BatchNorm epsilon of the original repository and of MXNet's ResNet example."""

SE_REDUCTION = 16
"""The SE paper's reduction ratio r: the excitation bottleneck has about C / r units."""

SE_DIVISOR = 8
"""Excitation widths are C / r rounded to a multiple of this, at least this (timm's rule): it only
changes layers of fewer than 128 channels, and gives the reference counts of SE-ResNeXt-18/34."""

SMALL_IMAGE_MAX_SIDE = 32
"""Inputs whose height is at most this get a family's small-image (CIFAR-style) network."""


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


def check_fixed_depth(network, num_layers, depth):
    """Raise ValueError unless ``num_layers`` is None or ``depth``, the one depth of ``network``.

    A fixed depth counts, as ResNet-50's 50 does, the convolutions and fully connected layers on
    the network's longest path from ``data`` to ``fc1``, SE layers excepted.
    """
    if num_layers is not None and num_layers != depth:
        raise ValueError('depth %r is not supported: %s has the fixed depth %d (leave the depth '
                         'unset or give %d)' % (num_layers, network, depth, depth))


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


def grouped_conv(data, num_filter, in_channels, kernel, name, stride=1, num_group=1, workspace=512):
    """Bias-free 'same' convolution of ``in_channels`` inputs (may be None if ``num_group`` is 1)
    in ``num_group`` groups: :func:`conv`, in the CPU training form between plain-layout boundaries
    where :func:`symbols.cpu_fast.needs_plain_layout` says so."""
    def make(data):
        return conv(data, num_filter, kernel, name, stride=stride, num_group=num_group,
                    workspace=workspace)
    if cpu_fast.needs_plain_layout(in_channels, num_group):
        return cpu_fast.between_plain_layouts(make, data, name)
    return make(data)


def conv_bn(data, num_filter, kernel, conv_name, bn_name, stride=1, pad=None, num_group=1,
            bn_mom=0.9, workspace=512, act_name=None):
    """Convolution -> BatchNorm, followed by ReLU when ``act_name`` is given."""
    out = conv(data, num_filter, kernel, conv_name, stride=stride, pad=pad, num_group=num_group,
               workspace=workspace)
    out = batchnorm(out, bn_name, bn_mom=bn_mom)
    if act_name is not None:
        out = mx.sym.Activation(data=out, act_type='relu', name=act_name)
    return out


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
        'broadcast' (the textbook squeeze and product) or 'fast' (those of
        :mod:`symbols.cpu_fast`), see ``cpu_fast.SE_IMPLS``; None takes the current one
        (:func:`symbols.cpu_fast.se_form`, 'fast' unless set otherwise).
    """
    fast = cpu_fast.se_form(impl) == 'fast'
    if fast:
        data, squeeze = cpu_fast.fast_squeeze(data, name)
    else:
        squeeze = mx.sym.Pooling(data=data, global_pool=True, kernel=(1, 1), pool_type='avg',
                                 name=name + '_squeeze')
    gate = _excitation(squeeze, num_filter, se_width(num_filter, reduction, divisor), name)
    if fast:
        return cpu_fast.fast_se_scale(data, gate, name)
    gate = mx.sym.reshape(data=gate, shape=(-1, num_filter, 1, 1), name=name + '_se_gate')
    return mx.sym.broadcast_mul(data, gate, name=name + '_se_scale')


def _excitation(squeeze, num_filter, width, name):
    """Gates (N, num_filter) of the SE block ``name`` from its squeeze: FC -> ReLU -> FC -> sigmoid."""
    squeeze = mx.sym.Flatten(data=squeeze, name=name + '_flatten')
    excitation = mx.sym.FullyConnected(data=squeeze, num_hidden=width, name=name + '_excitation1')
    excitation = mx.sym.Activation(data=excitation, act_type='relu',
                                   name=name + '_excitation1_relu')
    excitation = mx.sym.FullyConnected(data=excitation, num_hidden=num_filter,
                                       name=name + '_excitation2')
    return mx.sym.Activation(data=excitation, act_type='sigmoid',
                             name=name + '_excitation2_sigmoid')


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
