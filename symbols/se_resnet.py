"""SE-ResNet (Hu et al., "Squeeze-and-Excitation Networks", 2018; He et al., ResNet, 2016).

Two versions (``version``):

1. Post-activation (default; the paper's and the authors' released models): SE-ResNeXt's unit with
   one group and a bottleneck of a quarter of the output width; SE on the last BatchNorm, ReLU after
   the residual add.
2. Pre-activation (He et al., "Identity Mappings", 2016; the original SENet.mxnet repository's
   choice): bn -> relu -> conv units with SE on the last convolution, no ReLU after the add, and a
   final ``bn1`` -> ``relu1`` before the pool. The projection shortcut ``_sc`` is a convolution of
   the unit's first pre-activation, without BatchNorm.

The authors' released Caffe SE-ResNets put a bottleneck's stride on its first 1x1 convolution
(``stride_in_1x1``) and round their stem's max-pool up without padding (``stem_pool='ceil'``); the
defaults are those of timm's ``seresnet*`` and MXNet's ResNet example.

Both versions use basic (two 3x3) units at depths 18 and 34 and project a shortcut only where the
shape changes (deviation: the original's version 2 also projected the first unit of ResNet-18/34,
64 to 64 channels). Depths, stems, small-image rule and layer names are those of
:mod:`symbols.resnet_family`, without depth 269: small images (height <= 32) take depth d with
(d - 2) % 9 == 0 (bottleneck, outputs 64/128/256) or (d - 2) % 6 == 0 (basic, outputs 16/32/64).
"""
import mxnet as mx

from symbols import resnet_family
from symbols.layers import SE_REDUCTION, batchnorm, classifier_head, data_input, parse_image_shape

IMAGENET_UNITS = {depth: units for depth, units in resnet_family.IMAGENET_UNITS.items()
                  if depth in (18, 34, 50, 101, 152, 200)}
"""Units per stage of the ImageNet networks: the family's table without depth 269."""

BOTTLENECK_WIDTH_RATIO = 4
"""Bottleneck width = output channels / 4 (ResNet's expansion)."""

UNITS = {1: resnet_family.residual_unit, 2: resnet_family.preact_residual_unit}
"""Version -> its residual unit: 1 post-activation (the paper), 2 pre-activation (the original
repository)."""

VERSIONS = tuple(sorted(UNITS))


def get_symbol(num_classes, num_layers=50, image_shape=(3, 224, 224), version=1, drop_out=0.0,
               bn_mom=0.9, workspace=512, reduction=SE_REDUCTION, widen_factor=1,
               stride_in_1x1=False, stem_pool='pad'):
    """Build SE-ResNet ending in a SoftmaxOutput named ``softmax``.

    Parameters
    ----------
    num_classes : int
        Outputs of ``fc1``.
    num_layers : int
        Depth: 18, 34, 50, 101, 152, 200 for ImageNet-sized inputs; see the module docstring for
        small images.
    image_shape : tuple or str
        (C, H, W) or ``'C,H,W'``; heights <= 32 select the small-image network.
    version : int
        1 post-activation (the paper), 2 pre-activation (the original repository).
    drop_out : float
        Dropout probability before ``fc1``.
    bn_mom : float
        Momentum of every BatchNorm's moving statistics.
    workspace : int
        Convolution workspace in MB.
    reduction : int
        SE reduction ratio.
    widen_factor : int
        Multiplies the stage outputs of a small-image network.
    stride_in_1x1 : bool
        Put a bottleneck unit's stride on its first 1x1 convolution (ResNet as published, the
        authors' Caffe models) instead of its 3x3 convolution (timm, MXNet's ResNet example).
        Bottleneck units only.
    stem_pool : str
        The stem's 3x3/2 max-pool: ``'pad'`` pads by 1 and rounds down (timm's ResNet);
        ``'ceil'`` rounds up without padding (the authors' Caffe models, timm's ``legacy_*``).
        ImageNet-sized inputs only: the small-image stem has no pool.
    """
    if version not in VERSIONS:
        raise ValueError('se-resnet version %r is not supported; choose one of: %s'
                         % (version, ', '.join(map(str, VERSIONS))))
    image_shape = parse_image_shape(image_shape)
    plan = resnet_family.network_plan(num_layers, image_shape, IMAGENET_UNITS, widen_factor)
    if stride_in_1x1 and not plan.bottle_neck:
        raise ValueError('stride_in_1x1 applies to bottleneck units; depth %d has basic units'
                         % num_layers)
    preact = version == 2
    spec = resnet_family.UnitSpec(plan.bottle_neck, 1, BOTTLENECK_WIDTH_RATIO,
                                  stride_in_1x1=stride_in_1x1)
    common = dict(bn_mom=bn_mom, workspace=workspace)
    with mx.name.NameManager():
        body = resnet_family.stem(data_input(bn_mom), plan.stem_width, plan.small,
                                  activate=not (preact and plan.small), pool=stem_pool,
                                  **common)
        body = resnet_family.residual_stages(body, plan.units, plan.outputs, plan.stem_width,
                                             spec, unit=UNITS[version], reduction=reduction,
                                             **common)
        if preact:
            body = batchnorm(body, 'bn1', bn_mom=bn_mom)
            body = mx.sym.Activation(data=body, act_type='relu', name='relu1')
        return classifier_head(body, num_classes, drop_out=drop_out)
