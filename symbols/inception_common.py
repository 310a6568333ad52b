"""Building blocks shared by SE-Inception-v4 and SE-Inception-ResNet-v2 (TF-slim's released forms).

Each convolution is bias-free and followed by BatchNorm and ReLU (:func:`conv_bn_relu`); branches are
sequences of such units (:func:`conv_stack`) whose outputs are concatenated along the channels.
"""
import mxnet as mx

from symbols.layers import conv_bn, parse_image_shape

MIN_IMAGE_SIZE = 75
"""Smallest input side of both networks: their six 'VALID' 3x3 reductions (stride 2, 1, 2, 1, 2, 2
for Inception-v4's stem, Reduction-A and Reduction-B; the same sizes in Inception-ResNet-v2) take
75 -> 37 -> 35 -> 17 -> 15 -> 7 -> 3 -> 1, and 74 would end at 0."""

SE_WIDTH_DIVISOR = 1
"""The excitation width is C / r exactly (Inception-ResNet-v2: 320 -> 20, 1088 -> 68, 2080 -> 130),
which the reference SE count needs; rounding to multiples of 8 would give 24, 72 and 128."""

DROP_OUT = 0.2
"""Dropout before ``fc1`` (TF-slim's keep probability 0.8)."""


def check_image_shape(image_shape, network):
    """Parse ``image_shape`` and raise ValueError when a side is below :data:`MIN_IMAGE_SIZE`."""
    image_shape = parse_image_shape(image_shape)
    if min(image_shape[1:]) < MIN_IMAGE_SIZE:
        raise ValueError('%s needs inputs of at least %dx%d pixels, got %dx%d: resize smaller '
                         'images (e.g. --image-shape 3,%d,%d; the paper uses 299, the original '
                         'repository 224)' % (network, MIN_IMAGE_SIZE, MIN_IMAGE_SIZE,
                                              image_shape[1], image_shape[2], MIN_IMAGE_SIZE,
                                              MIN_IMAGE_SIZE))
    return image_shape


def conv_bn_relu(data, num_filter, kernel, name, stride=1, pad=None, bn_mom=0.9, workspace=512):
    """Convolution ``{name}`` -> BatchNorm ``{name}_bn`` -> ReLU ``{name}_relu``.

    ``kernel`` is an int or a (height, width) pair; ``pad=None`` is 'SAME' at stride 1, ``pad=0``
    TF-slim's 'VALID'.
    """
    return conv_bn(data, num_filter, kernel, name, name + '_bn', stride=stride, pad=pad,
                   bn_mom=bn_mom, workspace=workspace, act_name=name + '_relu')


def conv_stack(data, layers, name, bn_mom=0.9, workspace=512):
    """A branch of :func:`conv_bn_relu` units named ``{name}_conv1``, ``{name}_conv2``, ...

    Each layer is ``(num_filter, kernel)`` ('SAME', stride 1) or ``(num_filter, kernel, stride,
    pad)``.
    """
    for index, layer in enumerate(layers, start=1):
        num_filter, kernel, stride, pad = tuple(layer) + (1, None)[len(layer) - 2:]
        data = conv_bn_relu(data, num_filter, kernel, '%s_conv%d' % (name, index), stride=stride,
                            pad=pad, bn_mom=bn_mom, workspace=workspace)
    return data


def max_pool(data, name):
    """3x3 max pooling, stride 2, 'VALID'."""
    return mx.sym.Pooling(data=data, kernel=(3, 3), stride=(2, 2), pad=(0, 0), pool_type='max',
                          name=name)


def avg_pool(data, name):
    """3x3 average pooling, stride 1, 'SAME', averaging over the pixels inside the image only."""
    return mx.sym.Pooling(data=data, kernel=(3, 3), stride=(1, 1), pad=(1, 1), pool_type='avg',
                          count_include_pad=False, name=name)


def concat(branches, name):
    """Concatenate branch outputs along the channel axis."""
    return mx.sym.Concat(*branches, dim=1, name=name)


def stem_convs(data, bn_mom=0.9, workspace=512):
    """The first three units of both stems: 3x3/2 (32, VALID), 3x3 (32, VALID), 3x3 (64, SAME)."""
    common = dict(bn_mom=bn_mom, workspace=workspace)
    body = conv_bn_relu(data, 32, 3, 'conv1a', stride=2, pad=0, **common)
    body = conv_bn_relu(body, 32, 3, 'conv2a', pad=0, **common)
    return conv_bn_relu(body, 64, 3, 'conv2b', **common)
