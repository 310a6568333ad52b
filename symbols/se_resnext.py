"""SE-ResNeXt (Hu et al., "Squeeze-and-Excitation Networks", 2018; Xie et al., ResNeXt, 2017).

Post-activation bottleneck units whose 3x3 convolution is grouped and carries the stride, with an SE
block on the last BatchNorm before the residual add (:mod:`symbols.resnet_family`). Deviation from
the papers: depths 18 and 34 use basic (two 3x3) units, as the original SENet.mxnet does, so they
have no groups. Layer names are those of the original's released SE-ResNeXt-50 model, so its
parameter files load into these graphs.

Small images (height <= 32) take depth d with (d - 2) % 9 == 0 (bottleneck units, outputs
64/128/256) or (d - 2) % 6 == 0 (basic units, outputs 16/32/64), widened by ``widen_factor``.
"""
import mxnet as mx

from symbols import resnet_family
from symbols.layers import SE_REDUCTION, classifier_head, data_input, parse_image_shape

IMAGENET_UNITS = resnet_family.IMAGENET_UNITS
"""Units per stage of the ImageNet networks: every depth of the family (18 to 269)."""

BOTTLENECK_WIDTH_RATIO = 2
"""Bottleneck width = output channels / 2, so 32 groups give 32x4d and 64 groups give 64x2d."""


def check_num_group(num_group, outputs):
    """Raise ValueError unless ``num_group`` divides the bottleneck width of every stage."""
    for out in outputs:
        width = out // BOTTLENECK_WIDTH_RATIO
        if num_group < 1 or width % num_group:
            raise ValueError('--num-group %d does not divide the bottleneck width %d; use a '
                             'divisor of %s' % (num_group, width, ', '.join(
                                 str(o // BOTTLENECK_WIDTH_RATIO) for o in outputs)))


def get_symbol(num_classes, num_layers=50, image_shape=(3, 224, 224), num_group=32, drop_out=0.0,
               bn_mom=0.9, workspace=512, reduction=SE_REDUCTION, widen_factor=1):
    """Build SE-ResNeXt ending in a SoftmaxOutput named ``softmax``.

    Parameters
    ----------
    num_classes : int
        Outputs of ``fc1``.
    num_layers : int
        Depth: 18, 34, 50, 101, 152, 200, 269 for ImageNet-sized inputs; see the module docstring
        for small images.
    image_shape : tuple or str
        (C, H, W) or ``'C,H,W'``; heights <= 32 select the small-image network.
    num_group : int
        Groups (cardinality) of each bottleneck's 3x3 convolution; must divide every stage's width.
    drop_out : float
        Dropout probability before ``fc1``.
    bn_mom : float
        Momentum of every BatchNorm's moving statistics.
    workspace : int
        Convolution workspace in MB.
    reduction : int
        SE reduction ratio.
    widen_factor : int
        Multiplies the stage outputs of a small-image network (1: 16/32/64 or 64/128/256).
    """
    image_shape = parse_image_shape(image_shape)
    plan = resnet_family.network_plan(num_layers, image_shape, IMAGENET_UNITS, widen_factor)
    if plan.bottle_neck:
        check_num_group(num_group, plan.outputs)
    spec = resnet_family.UnitSpec(plan.bottle_neck, num_group, BOTTLENECK_WIDTH_RATIO)
    common = dict(bn_mom=bn_mom, workspace=workspace)
    with mx.name.NameManager():
        body = resnet_family.stem(data_input(bn_mom), plan.stem_width, plan.small, **common)
        body = resnet_family.residual_stages(body, plan.units, plan.outputs, plan.stem_width,
                                             spec, reduction=reduction, **common)
        return classifier_head(body, num_classes, drop_out=drop_out)
