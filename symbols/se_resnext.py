"""SE-ResNeXt (Hu et al., "Squeeze-and-Excitation Networks", 2018; Xie et al., ResNeXt, 2017).

Post-activation bottleneck units whose 3x3 convolution is grouped and carries the stride, with an SE
block on the last BatchNorm before the residual add (:mod:`symbols.resnet_family`). Deviation from
the papers: depths 18 and 34 use basic (two 3x3) units, as the original SENet.mxnet does, so they
have no groups. Layer names are those of the original's released SE-ResNeXt-50 model, so its
parameter files load into these graphs.

The bottleneck is half the output wide by default (32 groups: 32x4d; 64 groups: the original's
64x2d); ``base_width`` gives ResNeXt's rule instead (64 groups of base width 4: 64x4d). Depth 26
(two bottleneck units per stage) is timm's ``legacy_seresnext26_32x4d``; ``stem_pool='ceil'``
builds the stem pool of the authors' Caffe models.

Small images (height <= 32) take depth d with (d - 2) % 9 == 0 (bottleneck units, outputs
64/128/256) or (d - 2) % 6 == 0 (basic units, outputs 16/32/64), widened by ``widen_factor``.
"""
import mxnet as mx

from symbols import resnet_family
from symbols.layers import SE_REDUCTION, classifier_head, data_input, parse_image_shape

IMAGENET_UNITS = {**resnet_family.IMAGENET_UNITS, 26: (2, 2, 2, 2)}
"""Units per stage of the ImageNet networks: every depth of the family (18 to 269), and 26 (timm's
``legacy_seresnext26_32x4d``)."""

BOTTLENECK_WIDTH_RATIO = 2
"""Bottleneck width = output channels / 2 (without ``base_width``), so 32 groups give 32x4d and 64
groups give 64x2d."""


def unit_spec(bottle_neck, num_group, base_width=None):
    """The :class:`~symbols.resnet_family.UnitSpec` of SE-ResNeXt's units."""
    return resnet_family.UnitSpec(bottle_neck, num_group, BOTTLENECK_WIDTH_RATIO,
                                  base_width=base_width)


def check_num_group(num_group, outputs, base_width=None):
    """Raise ValueError unless ``num_group`` groups fit the bottleneck of every stage.

    Without ``base_width`` the groups must divide every stage's bottleneck width (output / 2);
    with it, every group must get at least one channel (``floor(planes * base_width / 64) >= 1``).
    """
    if num_group < 1:
        raise ValueError('--num-group must be positive, got %d' % num_group)
    spec = unit_spec(True, num_group, base_width)
    widths = [spec.bottleneck_width(out) for out in outputs]
    if base_width is None:
        for width in widths:
            if width % num_group:
                raise ValueError('--num-group %d does not divide the bottleneck width %d; use a '
                                 'divisor of %s' % (num_group, width,
                                                    ', '.join(str(w) for w in widths)))
        return
    planes = outputs[0] // resnet_family.BOTTLENECK_EXPANSION
    if base_width < 1 or widths[0] == 0:
        smallest = -(-resnet_family.RESNEXT_BASE_PLANES // planes)
        raise ValueError('base width %r leaves the groups of the first stage (%d planes) no '
                         'channel: floor(%d * base_width / %d) must be at least 1; use a base '
                         'width of at least %d' % (base_width, planes, planes,
                                                   resnet_family.RESNEXT_BASE_PLANES, smallest))


def get_symbol(num_classes, num_layers=50, image_shape=(3, 224, 224), num_group=32, drop_out=0.0,
               bn_mom=0.9, workspace=512, reduction=SE_REDUCTION, widen_factor=1, base_width=None,
               stem_pool='pad'):
    """Build SE-ResNeXt ending in a SoftmaxOutput named ``softmax``.

    Parameters
    ----------
    num_classes : int
        Outputs of ``fc1``.
    num_layers : int
        Depth: 18, 26, 34, 50, 101, 152, 200, 269 for ImageNet-sized inputs; see the module
        docstring for small images.
    image_shape : tuple or str
        (C, H, W) or ``'C,H,W'``; heights <= 32 select the small-image network.
    num_group : int
        Groups (cardinality) of each bottleneck's 3x3 convolution; must divide every stage's width
        (without ``base_width``).
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
    base_width : int or None
        None: each bottleneck is half its unit's output wide (32 groups: 32x4d). An int: ResNeXt's
        rule, as GluonCV and timm build it: ``floor(planes * base_width / 64) * num_group``
        channels with ``planes`` = output / 4, so 64 groups of base width 4 are 64x4d (256 channels
        in stage 1) and 32 of base width 8 are 32x8d. Bottleneck units only.
    stem_pool : str
        The stem's 3x3/2 max-pool: ``'pad'`` pads by 1 and rounds down (GluonCV, timm's ResNet);
        ``'ceil'`` rounds up without padding (the authors' Caffe models, timm's ``legacy_*``).
        ImageNet-sized inputs only: the small-image stem has no pool.
    """
    image_shape = parse_image_shape(image_shape)
    plan = resnet_family.network_plan(num_layers, image_shape, IMAGENET_UNITS, widen_factor)
    if plan.bottle_neck:
        check_num_group(num_group, plan.outputs, base_width)
    elif base_width is not None:
        raise ValueError('base width applies to bottleneck units; depth %d has basic units'
                         % num_layers)
    spec = unit_spec(plan.bottle_neck, num_group, base_width)
    common = dict(bn_mom=bn_mom, workspace=workspace)
    with mx.name.NameManager():
        body = resnet_family.stem(data_input(bn_mom), plan.stem_width, plan.small,
                                  pool=stem_pool, **common)
        body = resnet_family.residual_stages(body, plan.units, plan.outputs, plan.stem_width,
                                             spec, reduction=reduction, **common)
        return classifier_head(body, num_classes, drop_out=drop_out)
