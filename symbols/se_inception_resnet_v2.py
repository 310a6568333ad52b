"""SE-Inception-ResNet-v2 (Hu et al., "Squeeze-and-Excitation Networks", 2018; Szegedy et al.,
"Inception-v4, Inception-ResNet and the Impact of Residual Connections on Learning", 2016).

Inception-ResNet-v2 as released in TF-slim: stem to 35x35x320 (Mixed_5b), 10 x block35 (residual
scaled by 0.17), Reduction-A (Mixed_6a) to 1088 channels, 20 x block17 (0.10), Reduction-B
(Mixed_7a) to 2080, 10 x block8 (0.20; the last one without the ReLU after the add), a 1x1
convolution to 1536 channels, global average pool, dropout, ``fc1``. Every convolution is bias-free
with BatchNorm and ReLU except the linear 1x1 "up" convolution that ends each residual branch, which
has a bias and neither BatchNorm nor ReLU. BatchNorm has a learned scale (TF-slim's has only an
offset), as in the PyTorch ports whose count (55,843,464 for 1000 classes) this backbone matches.

SE sits on the residual branch of all 40 blocks, as in the paper: after the up convolution, before
the scaling and the add. (The original SENet.mxnet put it after the add, which rescales the identity
path as well.) Its width is C / 16 exactly (20, 68, 130).

Inputs: 299x299 (the paper; 8x8 before the pool) or 224x224 (the original repository's default;
5x5), any side of at least ``MIN_IMAGE_SIZE`` (75; 1x1 before the pool).

Names: stem ``conv1a``, ``conv2a``, ``conv2b``, ``pool3a``, ``conv3b``, ``conv4a``, ``pool5a`` (TF-slim's
scopes), ``mixed_5b``, ``block35_{1-10}``, ``mixed_6a``, ``block17_{1-20}``, ``mixed_7a``,
``block8_{1-10}``, ``conv7b``. Inside a block, branch ``i`` has ``{block}_b{i}_conv{j}`` (+ ``_bn``,
``_relu``), the branches meet in ``{block}_concat``; a residual block continues with ``{block}_up``,
the SE block (``{block}_excitation1``/``_excitation2``/``_se_scale``), ``{block}_residual_scale``,
``{block}_plus`` and ``{block}_relu``.
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
    conv,
    data_input,
    se_block,
)

RESIDUAL_STAGES = {
    'block35': (10, 320, 0.17),
    'block17': (20, 1088, 0.10),
    'block8': (10, 2080, 0.20),
}
"""Residual stage -> (blocks, channels, scale of the residual branch before the add)."""

DEPTH = 176
"""The one depth: the longest chain of convolutions (stem 8, 4 in each of the 40 residual blocks
with their up convolution, 3 in each reduction, ``conv7b``) and ``fc1``: 8 + 160 + 6 + 1 + 1."""

MIN_IMAGE_SIZE = inception_common.MIN_IMAGE_SIZE
"""Smallest input side (75): the stem's and reductions' 'VALID' stride-2 convolutions end at 1x1."""

FINAL_CHANNELS = 1536
"""Output of the 1x1 convolution ``conv7b`` before the global pool."""


def stem(data, **common):
    """299x299x3 -> 35x35x320 (224 -> 25x25)."""
    body = stem_convs(data, **common)
    body = max_pool(body, 'pool3a')
    body = conv_bn_relu(body, 80, 1, 'conv3b', **common)
    body = conv_bn_relu(body, 192, 3, 'conv4a', pad=0, **common)
    body = max_pool(body, 'pool5a')
    return concat([
        conv_stack(body, [(96, 1)], 'mixed_5b_b0', **common),
        conv_stack(body, [(48, 1), (64, 5)], 'mixed_5b_b1', **common),
        conv_stack(body, [(64, 1), (96, 3), (96, 3)], 'mixed_5b_b2', **common),
        conv_stack(avg_pool(body, 'mixed_5b_b3_pool'), [(64, 1)], 'mixed_5b_b3', **common),
    ], 'mixed_5b_concat')


def block35_branches(data, name, **common):
    """The 35x35 block's branches: 32 + 32 + 64 = 128 channels."""
    return [
        conv_stack(data, [(32, 1)], name + '_b0', **common),
        conv_stack(data, [(32, 1), (32, 3)], name + '_b1', **common),
        conv_stack(data, [(32, 1), (48, 3), (64, 3)], name + '_b2', **common),
    ]


def block17_branches(data, name, **common):
    """The 17x17 block's branches: 192 + 192 = 384 channels."""
    return [
        conv_stack(data, [(192, 1)], name + '_b0', **common),
        conv_stack(data, [(128, 1), (160, (1, 7)), (192, (7, 1))], name + '_b1', **common),
    ]


def block8_branches(data, name, **common):
    """The 8x8 block's branches: 192 + 256 = 448 channels."""
    return [
        conv_stack(data, [(192, 1)], name + '_b0', **common),
        conv_stack(data, [(192, 1), (224, (1, 3)), (256, (3, 1))], name + '_b1', **common),
    ]


BRANCHES = {'block35': block35_branches, 'block17': block17_branches, 'block8': block8_branches}


def reduction_a(data, name, **common):
    """35x35x320 -> 17x17x1088 (TF-slim's Mixed_6a)."""
    return concat([
        conv_stack(data, [(384, 3, 2, 0)], name + '_b0', **common),
        conv_stack(data, [(256, 1), (256, 3), (384, 3, 2, 0)], name + '_b1', **common),
        max_pool(data, name + '_b2_pool'),
    ], name + '_concat')


def reduction_b(data, name, **common):
    """17x17x1088 -> 8x8x2080 (TF-slim's Mixed_7a)."""
    return concat([
        conv_stack(data, [(256, 1), (384, 3, 2, 0)], name + '_b0', **common),
        conv_stack(data, [(256, 1), (288, 3, 2, 0)], name + '_b1', **common),
        conv_stack(data, [(256, 1), (288, 3), (320, 3, 2, 0)], name + '_b2', **common),
        max_pool(data, name + '_b3_pool'),
    ], name + '_concat')


def residual_block(data, kind, name, num_filter, scale, activate=True, reduction=SE_REDUCTION,
                   bn_mom=0.9, workspace=512):
    """``data + scale * SE(up(concat(branches)))``, then ReLU when ``activate``.

    Parameters
    ----------
    data : Symbol
        Block input with ``num_filter`` channels.
    kind : str
        'block35', 'block17' or 'block8': which branches.
    name : str
        Operator prefix, e.g. ``block35_1``.
    num_filter : int
        Channels of the input and of the up convolution.
    scale : float
        Factor of the residual branch before the add.
    activate : bool
        ReLU after the add (False only for the last block8).
    reduction : int
        SE reduction ratio.
    """
    branches = BRANCHES[kind](data, name, bn_mom=bn_mom, workspace=workspace)
    residual = conv(concat(branches, name + '_concat'), num_filter, 1, name + '_up', pad=0,
                    workspace=workspace, no_bias=False)
    residual = se_block(residual, num_filter, name, reduction=reduction, divisor=SE_WIDTH_DIVISOR)
    residual = mx.sym._internal._mul_scalar(residual, scalar=scale, name=name + '_residual_scale')
    out = mx.sym.elemwise_add(data, residual, name=name + '_plus')
    if activate:
        out = mx.sym.Activation(data=out, act_type='relu', name=name + '_relu')
    return out


def get_symbol(num_classes, num_layers=None, image_shape=(3, 224, 224), drop_out=DROP_OUT,
               bn_mom=0.9, workspace=512, reduction=SE_REDUCTION):
    """Build SE-Inception-ResNet-v2 ending in a SoftmaxOutput named ``softmax``.

    Parameters
    ----------
    num_classes : int
        Outputs of ``fc1``.
    num_layers : int or None
        Depth: ``DEPTH`` (176) or None; any other raises ValueError.
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
    check_fixed_depth('se-inception-resnet-v2', num_layers, DEPTH)
    check_image_shape(image_shape, 'se-inception-resnet-v2')
    common = dict(bn_mom=bn_mom, workspace=workspace)

    def residual_stage(body, kind, last_relu=True):
        repeats, num_filter, scale = RESIDUAL_STAGES[kind]
        for index in range(1, repeats + 1):
            body = residual_block(body, kind, '%s_%d' % (kind, index), num_filter, scale,
                                  activate=last_relu or index < repeats, reduction=reduction,
                                  **common)
        return body

    with mx.name.NameManager():
        body = stem(data_input(bn_mom), **common)
        body = residual_stage(body, 'block35')
        body = reduction_a(body, 'mixed_6a', **common)
        body = residual_stage(body, 'block17')
        body = reduction_b(body, 'mixed_7a', **common)
        body = residual_stage(body, 'block8', last_relu=False)
        body = conv_bn_relu(body, FINAL_CHANNELS, 1, 'conv7b', **common)
        return classifier_head(body, num_classes, drop_out=drop_out)
