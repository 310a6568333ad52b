"""SENet-154 (Hu et al., "Squeeze-and-Excitation Networks", 2018), the ILSVRC 2017 winning model.

An SE-ResNeXt-152 variant with 64 groups: post-activation bottleneck units [3, 8, 36, 3] with
outputs 256/512/1024/2048, each a 1x1 convolution to half the output width, a 3x3 convolution with
64 groups widening to the full output width (and carrying the stride), a 1x1 convolution, SE on its
BatchNorm, the residual add and ReLU. The stem is three 3x3 convolutions (64/2, 64, 128) with
BatchNorm and ReLU, then a 3x3/2 max-pool; projection shortcuts are 3x3 where they downsample
(stages 2-4) and 1x1 in stage 1; dropout (default 0.2) before ``fc1``. This follows the authors'
released Caffe model, including its ceil-mode max-pool, as GluonCV's ``senet_154`` does
(``stem_pool='pad'`` gives timm's ``senet154``, which pads it by 1 and rounds down); deviation:
layer names follow this repository's scheme (``conv0_1``..``conv0_3`` for the stem,
``stage{s}_unit{u}_*`` as in SE-ResNeXt).

The depth is fixed (``num_layers`` is 154 or None); any input of at least 32x32 works through the
global pool. Train it with ``train_se_resnext_w_d.py --network senet-154 --drop-out 0.2`` (that
trainer's ``--drop-out`` defaults to 0; ``--num-group`` does not apply, and ``--depth`` only as 154).
"""
import mxnet as mx

from symbols import resnet_family
from symbols.layers import (
    SE_REDUCTION,
    check_fixed_depth,
    classifier_head,
    data_input,
    parse_image_shape,
)

DEPTH = 154
"""The one depth: 3 stem convolutions, 3 per unit in 50 units, and ``fc1``."""

UNITS = (3, 8, 36, 3)
"""Units per stage."""

OUTPUTS = (256, 512, 1024, 2048)
"""Output channels of each stage's units."""

NUM_GROUP = 64
"""Groups of every 3x3 bottleneck convolution."""

BOTTLENECK_WIDTH_RATIO = 2
"""The first 1x1 convolution of a unit has half its output channels."""

SHORTCUT_KERNELS = (1, 3, 3, 3)
"""Kernel of each stage's projection shortcut: 3x3 where it also downsamples."""

STEM = ((64, 2), (64, 1), (128, 1))
"""Output channels and stride of the three 3x3 stem convolutions."""

DROP_OUT = 0.2
"""Dropout before ``fc1`` in the released model."""

MIN_IMAGE_SIZE = 32
"""Smallest input side: 32x32 leaves 1x1 after the last stage."""


def get_symbol(num_classes, num_layers=None, image_shape=(3, 224, 224), drop_out=DROP_OUT,
               bn_mom=0.9, workspace=512, reduction=SE_REDUCTION, stem_pool='ceil'):
    """Build SENet-154 ending in a SoftmaxOutput named ``softmax``.

    Parameters
    ----------
    num_classes : int
        Outputs of ``fc1``.
    num_layers : int or None
        Depth: ``DEPTH`` (154) or None; any other raises ValueError.
    image_shape : tuple or str
        (C, H, W) or ``'C,H,W'``; 224x224 for ImageNet, at least ``MIN_IMAGE_SIZE`` (32).
    drop_out : float
        Dropout probability before ``fc1``.
    bn_mom : float
        Momentum of every BatchNorm's moving statistics.
    workspace : int
        Convolution workspace in MB.
    reduction : int
        SE reduction ratio.
    stem_pool : str
        The stem's 3x3/2 max-pool: ``'ceil'`` rounds up without padding (the authors' Caffe model,
        GluonCV's ``senet_154``, timm's ``legacy_senet154``); ``'pad'`` pads by 1 and rounds down
        (timm's ``senet154``).
    """
    check_fixed_depth('senet-154', num_layers, DEPTH)
    image_shape = parse_image_shape(image_shape)
    if min(image_shape[1:]) < MIN_IMAGE_SIZE:
        raise ValueError('senet-154 needs inputs of at least %dx%d, got %dx%d'
                         % ((MIN_IMAGE_SIZE, MIN_IMAGE_SIZE) + tuple(image_shape[1:])))
    spec = resnet_family.UnitSpec(True, NUM_GROUP, BOTTLENECK_WIDTH_RATIO, conv2_to_output=True)
    common = dict(bn_mom=bn_mom, workspace=workspace)
    with mx.name.NameManager():
        body = resnet_family.deep_stem(data_input(bn_mom), STEM, pool=stem_pool, **common)
        body = resnet_family.residual_stages(body, UNITS, OUTPUTS, STEM[-1][0], spec,
                                             sc_kernels=SHORTCUT_KERNELS, reduction=reduction,
                                             **common)
        return classifier_head(body, num_classes, drop_out=drop_out)
