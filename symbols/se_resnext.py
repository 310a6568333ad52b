"""SE-ResNeXt (Hu et al., "Squeeze-and-Excitation Networks", 2018; Xie et al., ResNeXt, 2017).

Post-activation bottleneck units whose 3x3 convolution is grouped and carries the stride, with an SE
block on the last BatchNorm before the residual add. Depths 18 and 34 use basic (two 3x3) units, as
the original SENet.mxnet does. Layer names are those of the original's released SE-ResNeXt-50 model,
so its parameter files load into these graphs.

Small images (height <= 32, e.g. CIFAR-10 and Fashion-MNIST padded to 32x32) get a 3x3 stem and three
stages: depth d with (d - 2) % 9 == 0 uses (d - 2) / 9 bottleneck units per stage with outputs
64/128/256; otherwise (d - 2) % 6 == 0 uses (d - 2) / 6 basic units per stage with outputs 16/32/64.
A widening factor k (``widen_factor``, as in wide residual networks) multiplies those outputs by k;
the 16-channel stem stays.
"""
import mxnet as mx

from symbols.common import (
    SE_REDUCTION,
    SMALL_IMAGE_MAX_SIDE,
    batchnorm,
    classifier_head,
    conv,
    conv_bn,
    data_input,
    grouped_conv,
    parse_image_shape,
    se_block,
)

IMAGENET_UNITS = {
    18: (2, 2, 2, 2),
    34: (3, 4, 6, 3),
    50: (3, 4, 6, 3),
    101: (3, 4, 23, 3),
    152: (3, 8, 36, 3),
    200: (3, 24, 36, 3),
    269: (3, 30, 48, 8),
}
"""Units per stage of the ImageNet networks."""

IMAGENET_BASIC_DEPTHS = (18, 34)
IMAGENET_STEM = 64
IMAGENET_BOTTLENECK_OUTPUTS = (256, 512, 1024, 2048)
IMAGENET_BASIC_OUTPUTS = (64, 128, 256, 512)

SMALL_STEM = 16
SMALL_BOTTLENECK_OUTPUTS = (64, 128, 256)
SMALL_BASIC_OUTPUTS = (16, 32, 64)

BOTTLENECK_WIDTH_RATIO = 2
"""Bottleneck width = output channels / 2, so 32 groups give 32x4d and 64 groups give 64x2d."""


def small_image_depths(max_depth=200):
    """Depths the small-image network accepts, up to ``max_depth``."""
    return [d for d in range(3, max_depth + 1) if (d - 2) % 9 == 0 or (d - 2) % 6 == 0]


def residual_unit(data, num_filter, stride, dim_match, name, bottle_neck=True, num_group=32,
                  bn_mom=0.9, workspace=512, reduction=SE_REDUCTION,
                  width_ratio=BOTTLENECK_WIDTH_RATIO, conv2_to_output=False, sc_kernel=1,
                  preact=False):
    """One SE residual unit of the ResNet family (SE-ResNeXt, SE-ResNet, SENet-154).

    Post-activation (default): conv -> bn -> relu for every convolution, except that the last one
    stops at its BatchNorm; SE on that BatchNorm; add the shortcut; ReLU. Pre-activation
    (``preact``, SE-ResNet version 2): bn -> relu -> conv for every convolution; SE on the last
    convolution; add the shortcut, with no ReLU after the add. Its projection shortcut is a bare
    convolution of the first pre-activation.

    Parameters
    ----------
    data : Symbol
        Input feature map.
    num_filter : int
        Output channels of the unit.
    stride : int
        Stride of the unit (on the bottleneck's 3x3 convolution, or the first 3x3 of a basic unit)
        and of its projection shortcut.
    dim_match : bool
        True when input and output shapes agree, so the shortcut is the identity.
    name : str
        Operator prefix, e.g. ``stage1_unit1``.
    bottle_neck : bool
        Bottleneck (1x1, 3x3, 1x1) or basic (3x3, 3x3) unit.
    num_group : int
        Groups of the bottleneck's 3x3 convolution (ignored by basic units).
    bn_mom, workspace, reduction
        BatchNorm momentum, convolution workspace (MB), SE reduction ratio.
    width_ratio : int
        The bottleneck's first 1x1 convolution has ``num_filter // width_ratio`` outputs: 2 for
        SE-ResNeXt and SENet-154, 4 for SE-ResNet.
    conv2_to_output : bool
        The bottleneck's 3x3 convolution widens to ``num_filter`` channels (SENet-154) instead of
        keeping the bottleneck width.
    sc_kernel : int
        Kernel of the projection shortcut (SENet-154 uses 3 where it downsamples).
    preact : bool
        Pre-activation instead of post-activation unit.
    """
    if bottle_neck:
        width = num_filter // width_ratio
        convs = [(width, 1, 1, 1),
                 (num_filter if conv2_to_output else width, 3, stride, num_group),
                 (num_filter, 1, 1, 1)]
    else:
        convs = [(num_filter, 3, stride, 1), (num_filter, 3, 1, 1)]
    body = preactivated = data
    for index, (filters, kernel, conv_stride, groups) in enumerate(convs, start=1):
        conv_name, bn_name, act_name = ('%s_%s%d' % (name, kind, index)
                                        for kind in ('conv', 'bn', 'relu'))
        in_channels = convs[index - 2][0] if index > 1 else None
        if preact:
            body = batchnorm(body, bn_name, bn_mom=bn_mom)
            body = mx.sym.Activation(data=body, act_type='relu', name=act_name)
            if index == 1:
                preactivated = body
            body = grouped_conv(body, filters, in_channels, kernel, conv_name, stride=conv_stride,
                                num_group=groups, workspace=workspace)
        else:
            body = grouped_conv(body, filters, in_channels, kernel, conv_name, stride=conv_stride,
                                num_group=groups, workspace=workspace)
            body = batchnorm(body, bn_name, bn_mom=bn_mom)
            if index < len(convs):
                body = mx.sym.Activation(data=body, act_type='relu', name=act_name)
    body = se_block(body, num_filter, name, reduction=reduction)
    if dim_match:
        shortcut = data
    elif preact:
        shortcut = conv(preactivated, num_filter, sc_kernel, name + '_sc', stride=stride,
                        workspace=workspace)
    else:
        shortcut = conv_bn(data, num_filter, sc_kernel, name + '_sc', name + '_sc_bn',
                           stride=stride, bn_mom=bn_mom, workspace=workspace)
    out = mx.sym.elemwise_add(body, shortcut, name=name + '_plus')
    if preact:
        return out
    return mx.sym.Activation(data=out, act_type='relu', name=name + '_relu')


def residual_stages(data, units, outputs, in_channels, sc_kernels=None, **unit_options):
    """Stack stages of :func:`residual_unit` named ``stage{s}_unit{u}``.

    The first unit of every stage after the first halves the resolution; a unit projects its
    shortcut only where the shape changes.

    Parameters
    ----------
    data : Symbol
        Output of the stem, with ``in_channels`` channels.
    units, outputs : sequence of int
        Units and output channels of each stage.
    in_channels : int
        Channels of ``data``.
    sc_kernels : sequence of int, optional
        Projection-shortcut kernel of each stage (default 1 everywhere).
    **unit_options
        Passed to every :func:`residual_unit`.
    """
    if sc_kernels is None:
        sc_kernels = (1,) * len(units)
    body = data
    for stage, (num_units, num_filter, sc_kernel) in enumerate(zip(units, outputs, sc_kernels),
                                                               start=1):
        for unit in range(1, num_units + 1):
            first = unit == 1
            stride = 2 if first and stage > 1 else 1
            dim_match = not first or (stage == 1 and in_channels == num_filter)
            body = residual_unit(body, num_filter, stride, dim_match,
                                 'stage%d_unit%d' % (stage, unit), sc_kernel=sc_kernel,
                                 **unit_options)
    return body


def stem(data, num_filter, small, bn_mom=0.9, workspace=512, activate=True):
    """``conv0`` -> ``bn0`` -> ``relu0``: 7x7/2 and a 3x3/2 max-pool ``pool0``, or 3x3/1 when ``small``.

    Without ``activate`` the small-image stem is the bare ``conv0``, as in MXNet's pre-activation
    ResNet (its first unit starts with BatchNorm and ReLU).
    """
    if small:
        if not activate:
            return conv(data, num_filter, 3, 'conv0', workspace=workspace)
        return conv_bn(data, num_filter, 3, 'conv0', 'bn0', act_name='relu0', bn_mom=bn_mom,
                       workspace=workspace)
    body = conv_bn(data, num_filter, 7, 'conv0', 'bn0', stride=2, act_name='relu0',
                   bn_mom=bn_mom, workspace=workspace)
    return mx.sym.Pooling(data=body, kernel=(3, 3), stride=(2, 2), pad=(1, 1), pool_type='max',
                          name='pool0')


def network_plan(num_layers, image_shape, imagenet_units=None, widen_factor=1):
    """Return (units per stage, stage outputs, stem width, bottleneck?, small-image?).

    ``imagenet_units`` is the family's depth table for ImageNet-sized inputs (default: this
    module's ``IMAGENET_UNITS``); small images follow the rule of the module docstring, their stage
    outputs multiplied by ``widen_factor``.
    """
    if imagenet_units is None:
        imagenet_units = IMAGENET_UNITS
    height = image_shape[1]
    small = height <= SMALL_IMAGE_MAX_SIDE
    if not isinstance(widen_factor, int) or widen_factor < 1:
        raise ValueError('widen factor must be a positive integer, got %r' % (widen_factor,))
    if widen_factor != 1 and not small:
        raise ValueError('a widen factor applies to small-image networks (height <= %d), not to '
                         '%dx%d inputs' % (SMALL_IMAGE_MAX_SIDE, height, image_shape[2]))
    if small:
        for period, outputs, bottle_neck in ((9, SMALL_BOTTLENECK_OUTPUTS, True),
                                             (6, SMALL_BASIC_OUTPUTS, False)):
            if num_layers >= 3 and (num_layers - 2) % period == 0:
                return ((num_layers - 2) // period,) * 3, tuple(
                    widen_factor * out for out in outputs), SMALL_STEM, bottle_neck, True
        raise ValueError('depth %d is not supported for %dx%d images: use a depth d with '
                         '(d-2) %% 9 == 0 (bottleneck: 11, 20, 29, 38, ...) or (d-2) %% 6 == 0 '
                         '(basic: 8, 14, 26, 32, ...)' % (num_layers, height, image_shape[2]))
    if num_layers not in imagenet_units:
        raise ValueError('depth %d is not supported for %dx%d images; supported depths: %s'
                         % (num_layers, height, image_shape[2],
                            ', '.join(str(d) for d in sorted(imagenet_units))))
    if num_layers in IMAGENET_BASIC_DEPTHS:
        return imagenet_units[num_layers], IMAGENET_BASIC_OUTPUTS, IMAGENET_STEM, False, False
    return imagenet_units[num_layers], IMAGENET_BOTTLENECK_OUTPUTS, IMAGENET_STEM, True, False


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
    units, outputs, stem_width, bottle_neck, small = network_plan(num_layers, image_shape,
                                                                  widen_factor=widen_factor)
    if bottle_neck:
        for out in outputs:
            width = out // BOTTLENECK_WIDTH_RATIO
            if num_group < 1 or width % num_group:
                raise ValueError('--num-group %d does not divide the bottleneck width %d; use a '
                                 'divisor of %s' % (num_group, width, ', '.join(
                                     str(o // BOTTLENECK_WIDTH_RATIO) for o in outputs)))
    common = dict(bn_mom=bn_mom, workspace=workspace)
    with mx.name.NameManager():
        body = stem(data_input(bn_mom), stem_width, small, **common)
        body = residual_stages(body, units, outputs, stem_width, bottle_neck=bottle_neck,
                               num_group=num_group, reduction=reduction, **common)
        return classifier_head(body, num_classes, drop_out=drop_out)
