"""SE-Inception-v4 (Hu et al., "Squeeze-and-Excitation Networks", 2018; Szegedy et al.,
"Inception-v4, Inception-ResNet and the Impact of Residual Connections on Learning", 2016).

Inception-v4 as released in TF-slim: every convolution bias-free, followed by BatchNorm and ReLU;
stem, 4 x Inception-A, Reduction-A, 7 x Inception-B, Reduction-B, 3 x Inception-C, global average
pool, dropout, ``fc1``. An SE block rescales the output of every Inception-A/B/C module (14 in all);
the stem and the reductions have none. Deviations from the paper: none in the layers; BatchNorm has
a learned scale (TF-slim's has only an offset), as in the PyTorch ports whose parameter count
(42,679,816 for 1000 classes) this backbone matches.

Inputs: 299x299 (the paper; 8x8 before the pool) or 224x224 (the original repository's default;
5x5), any side of at least ``MIN_IMAGE_SIZE`` (75; 1x1 before the pool). Smaller images, such as the
32x32 Fashion-MNIST and CIFAR-10 records, must be resized to at least that size.

Names: ``conv1a``, ``conv2a``, ``conv2b``, ``mixed_3a``, ``mixed_4a``, ``mixed_5a`` (stem, TF-slim's
scopes), ``inception_a{1-4}``, ``reduction_a``, ``inception_b{1-7}``, ``reduction_b``,
``inception_c{1-3}``; inside a block, branch ``i`` has ``{block}_b{i}_conv{j}`` (+ ``_bn``, ``_relu``)
and ``{block}_b{i}_pool``, the branches meet in ``{block}_concat``, and the SE block is
``{block}_excitation1``/``_excitation2``/``_se_scale``.
"""
import mxnet as mx

from symbols import inception_common
from symbols.inception_common import (
    DROP_OUT,
    SE_WIDTH_DIVISOR,
    avg_pool,
    check_image_shape,
    concat,
    conv_bn_relu,
    conv_stack,
    max_pool,
    stem_convs,
)
from symbols.layers import (
    SE_REDUCTION,
    check_fixed_depth,
    classifier_head,
    data_input,
    se_block,
)

DEPTH = 76
"""The one depth: the longest chain of convolutions (stem 9, Inception-A 3, Reduction-A 3,
Inception-B 5, Reduction-B 4, Inception-C 4) and ``fc1``: 9 + 4x3 + 3 + 7x5 + 4 + 3x4 + 1."""

MIN_IMAGE_SIZE = inception_common.MIN_IMAGE_SIZE
"""Smallest input side (75): the stem's and reductions' 'VALID' stride-2 convolutions end at 1x1."""

NUM_BLOCKS = {'a': 4, 'b': 7, 'c': 3}
"""Inception-A, -B and -C modules of Inception-v4."""

BLOCK_CHANNELS = {'a': 384, 'b': 1024, 'c': 1536}
"""Output channels of each Inception module kind (the width of its SE block)."""


def stem(data, **common):
    """299x299x3 -> 35x35x384 (224 -> 25x25)."""
    body = stem_convs(data, **common)
    body = concat([max_pool(body, 'mixed_3a_b0_pool'),
                   conv_stack(body, [(96, 3, 2, 0)], 'mixed_3a_b1', **common)], 'mixed_3a_concat')
    body = concat([conv_stack(body, [(64, 1), (96, 3, 1, 0)], 'mixed_4a_b0', **common),
                   conv_stack(body, [(64, 1), (64, (1, 7)), (64, (7, 1)), (96, 3, 1, 0)],
                              'mixed_4a_b1', **common)], 'mixed_4a_concat')
    return concat([conv_stack(body, [(192, 3, 2, 0)], 'mixed_5a_b0', **common),
                   max_pool(body, 'mixed_5a_b1_pool')], 'mixed_5a_concat')


def inception_a(data, name, **common):
    """35x35x384 -> 35x35x384."""
    return concat([
        conv_stack(data, [(96, 1)], name + '_b0', **common),
        conv_stack(data, [(64, 1), (96, 3)], name + '_b1', **common),
        conv_stack(data, [(64, 1), (96, 3), (96, 3)], name + '_b2', **common),
        conv_stack(avg_pool(data, name + '_b3_pool'), [(96, 1)], name + '_b3', **common),
    ], name + '_concat')


def reduction_a(data, name, **common):
    """35x35x384 -> 17x17x1024."""
    return concat([
        conv_stack(data, [(384, 3, 2, 0)], name + '_b0', **common),
        conv_stack(data, [(192, 1), (224, 3), (256, 3, 2, 0)], name + '_b1', **common),
        max_pool(data, name + '_b2_pool'),
    ], name + '_concat')


def inception_b(data, name, **common):
    """17x17x1024 -> 17x17x1024."""
    return concat([
        conv_stack(data, [(384, 1)], name + '_b0', **common),
        conv_stack(data, [(192, 1), (224, (1, 7)), (256, (7, 1))], name + '_b1', **common),
        conv_stack(data, [(192, 1), (192, (7, 1)), (224, (1, 7)), (224, (7, 1)), (256, (1, 7))],
                   name + '_b2', **common),
        conv_stack(avg_pool(data, name + '_b3_pool'), [(128, 1)], name + '_b3', **common),
    ], name + '_concat')


def reduction_b(data, name, **common):
    """17x17x1024 -> 8x8x1536."""
    return concat([
        conv_stack(data, [(192, 1), (192, 3, 2, 0)], name + '_b0', **common),
        conv_stack(data, [(256, 1), (256, (1, 7)), (320, (7, 1)), (320, 3, 2, 0)], name + '_b1',
                   **common),
        max_pool(data, name + '_b2_pool'),
    ], name + '_concat')


def inception_c(data, name, **common):
    """8x8x1536 -> 8x8x1536; branches 1 and 2 end in parallel 1x3 and 3x1 convolutions."""
    branch1 = conv_stack(data, [(384, 1)], name + '_b1', **common)
    branch2 = conv_stack(data, [(384, 1), (448, (3, 1)), (512, (1, 3))], name + '_b2', **common)
    return concat([
        conv_stack(data, [(256, 1)], name + '_b0', **common),
        conv_bn_relu(branch1, 256, (1, 3), name + '_b1_conv2a', **common),
        conv_bn_relu(branch1, 256, (3, 1), name + '_b1_conv2b', **common),
        conv_bn_relu(branch2, 256, (1, 3), name + '_b2_conv4a', **common),
        conv_bn_relu(branch2, 256, (3, 1), name + '_b2_conv4b', **common),
        conv_stack(avg_pool(data, name + '_b3_pool'), [(256, 1)], name + '_b3', **common),
    ], name + '_concat')


INCEPTION_MODULES = {'a': inception_a, 'b': inception_b, 'c': inception_c}


def get_symbol(num_classes, num_layers=None, image_shape=(3, 224, 224), drop_out=DROP_OUT,
               bn_mom=0.9, workspace=512, reduction=SE_REDUCTION):
    """Build SE-Inception-v4 ending in a SoftmaxOutput named ``softmax``.

    Parameters
    ----------
    num_classes : int
        Outputs of ``fc1``.
    num_layers : int or None
        Depth: ``DEPTH`` (76) or None; any other raises ValueError.
    image_shape : tuple or str
        (C, H, W) or ``'C,H,W'``; H and W at least ``MIN_IMAGE_SIZE`` (75). 299 or 224 for ImageNet.
    drop_out : float
        Dropout probability before ``fc1``.
    bn_mom : float
        Momentum of every BatchNorm's moving statistics.
    workspace : int
        Convolution workspace in MB.
    reduction : int
        SE reduction ratio.
    """
    check_fixed_depth('se-inception-v4', num_layers, DEPTH)
    check_image_shape(image_shape, 'se-inception-v4')
    common = dict(bn_mom=bn_mom, workspace=workspace)

    def se_modules(body, kind):
        for index in range(1, NUM_BLOCKS[kind] + 1):
            name = 'inception_%s%d' % (kind, index)
            body = INCEPTION_MODULES[kind](body, name, **common)
            body = se_block(body, BLOCK_CHANNELS[kind], name, reduction=reduction,
                            divisor=SE_WIDTH_DIVISOR)
        return body

    with mx.name.NameManager():
        body = stem(data_input(bn_mom), **common)
        body = se_modules(body, 'a')
        body = reduction_a(body, 'reduction_a', **common)
        body = se_modules(body, 'b')
        body = reduction_b(body, 'reduction_b', **common)
        body = se_modules(body, 'c')
        return classifier_head(body, num_classes, drop_out=drop_out)
