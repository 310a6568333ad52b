"""The ResNet family's core, shared by SE-ResNeXt, SE-ResNet and SENet-154: stems, SE residual units,
stages and the depth plan.

Units follow He et al., "Deep Residual Learning for Image Recognition" (2016): post-activation
(:func:`residual_unit`) with basic (two 3x3) or bottleneck (1x1, 3x3, 1x1) convolutions, or
pre-activation (:func:`preact_residual_unit`; He et al., "Identity Mappings in Deep Residual
Networks", 2016). The bottleneck's 3x3 convolution may be grouped (Xie et al., ResNeXt, 2017).
Each unit carries the SE block of Hu et al. (2018) on its residual branch before the add.
Deviation from ResNet as published: by default a bottleneck's stride sits on its 3x3 convolution
rather than the first 1x1, as in MXNet's ResNet example and in ResNeXt (``UnitSpec.stride_in_1x1``
moves it to the 1x1, as in the authors' Caffe models). A unit projects its shortcut (ResNet's
option B) only where the shape changes. The stem's 3x3/2 max-pool pads by 1 and rounds down
(MXNet's and PyTorch's ResNets) or, as the authors' Caffe models do, rounds up without padding
(:data:`STEM_POOLS`).

Depths (:data:`IMAGENET_UNITS`) are those of MXNet's ResNet example, 269 included. Small images
(height <= 32, e.g. CIFAR-10 and Fashion-MNIST padded to 32x32) get the CIFAR layout of the two
ResNet papers, a 3x3 stem and three stages: depth d with (d - 2) % 9 == 0 uses (d - 2) / 9
bottleneck units per stage with outputs 64/128/256; otherwise (d - 2) % 6 == 0 uses (d - 2) / 6
basic units per stage with outputs 16/32/64. A widening factor k (as in Zagoruyko and Komodakis'
wide residual networks, 2016) multiplies those outputs by k; the 16-channel stem stays.
"""
from typing import NamedTuple, Optional

import mxnet as mx

from symbols.layers import (
    SE_REDUCTION,
    SMALL_IMAGE_MAX_SIDE,
    batchnorm,
    conv,
    conv_bn,
    grouped_conv,
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
"""Units per stage of the ImageNet networks, by depth."""

IMAGENET_BASIC_DEPTHS = (18, 34)
"""ImageNet depths built from basic units; the others use bottleneck units."""

IMAGENET_STEM = 64
IMAGENET_BOTTLENECK_OUTPUTS = (256, 512, 1024, 2048)
IMAGENET_BASIC_OUTPUTS = (64, 128, 256, 512)

BOTTLENECK_EXPANSION = 4
"""A bottleneck unit's output channels over its ``planes`` (ResNet's expansion)."""

RESNEXT_BASE_PLANES = 64
"""ResNeXt's base width is the width of one group at 64 planes (stage 1): a bottleneck of
``planes`` has ``floor(planes * base_width / 64)`` channels per group."""

STEM_POOLS = {
    'pad': dict(pad=(1, 1)),
    'ceil': dict(pooling_convention='full'),
}
"""The stem's 3x3/2 max-pool ``pool0``: ``'pad'`` pads by 1 and rounds the output size down
(MXNet's and PyTorch's ResNets, GluonCV, timm's ResNet); ``'ceil'`` has no padding and rounds up
(the authors' Caffe models, timm's ``legacy_*``). Both give 56x56 from 112x112, shifted by one
pixel."""

SMALL_STEM = 16
SMALL_BOTTLENECK_OUTPUTS = (64, 128, 256)
SMALL_BASIC_OUTPUTS = (16, 32, 64)
SMALL_PERIODS = ((9, SMALL_BOTTLENECK_OUTPUTS, True), (6, SMALL_BASIC_OUTPUTS, False))
"""Small-image rule: (layers per unit and stage, stage outputs, bottleneck?), tried in order."""


class NetworkPlan(NamedTuple):
    """What a depth and an input size make of a family's network (:func:`network_plan`)."""

    units: tuple[int, ...]
    """Units per stage."""
    outputs: tuple[int, ...]
    """Output channels of each stage."""
    stem_width: int
    """Output channels of the stem."""
    bottle_neck: bool
    """Bottleneck (True) or basic units."""
    small: bool
    """The small-image layout (3x3 stem, three stages)."""


class UnitSpec(NamedTuple):
    """The convolutions of a family's residual units, apart from each unit's width and stride."""

    bottle_neck: bool
    """Bottleneck (1x1, 3x3, 1x1) or basic (3x3, 3x3) unit."""
    num_group: int = 1
    """Groups of the bottleneck's 3x3 convolution (basic units have none)."""
    width_ratio: int = 4
    """The bottleneck's first 1x1 convolution has ``num_filter // width_ratio`` outputs: 2 for
    SE-ResNeXt and SENet-154, 4 for SE-ResNet."""
    conv2_to_output: bool = False
    """The bottleneck's 3x3 convolution widens to the unit's output channels (SENet-154) instead of
    keeping the bottleneck width."""
    stride_in_1x1: bool = False
    """The bottleneck's stride sits on its first 1x1 convolution (ResNet as published, the
    authors' Caffe SE-ResNets) instead of its 3x3 convolution."""
    base_width: Optional[int] = None
    """ResNeXt's width of one group at 64 planes: the bottleneck has
    ``floor(planes * base_width / 64) * num_group`` channels, ``planes = num_filter / 4``
    (:data:`RESNEXT_BASE_PLANES`); None: ``num_filter // width_ratio``."""

    def bottleneck_width(self, num_filter):
        """Channels of the first 1x1 convolution of a bottleneck unit with ``num_filter`` outputs
        (and of its 3x3 convolution, unless ``conv2_to_output``)."""
        if self.base_width is None:
            return num_filter // self.width_ratio
        planes = num_filter // BOTTLENECK_EXPANSION
        return planes * self.base_width // RESNEXT_BASE_PLANES * self.num_group

    def convs(self, num_filter, stride):
        """(output channels, kernel, stride, groups) of each convolution of a unit with
        ``num_filter`` outputs and ``stride`` (on the bottleneck's 3x3 or first 1x1 convolution,
        or the first 3x3 of a basic unit)."""
        if not self.bottle_neck:
            return [(num_filter, 3, stride, 1), (num_filter, 3, 1, 1)]
        width = self.bottleneck_width(num_filter)
        stride_1x1, stride_3x3 = (stride, 1) if self.stride_in_1x1 else (1, stride)
        return [(width, 1, stride_1x1, 1),
                (num_filter if self.conv2_to_output else width, 3, stride_3x3, self.num_group),
                (num_filter, 1, 1, 1)]


def network_plan(num_layers, image_shape, imagenet_units, widen_factor=1):
    """The :class:`NetworkPlan` of depth ``num_layers`` for inputs of ``image_shape`` (C, H, W).

    ``imagenet_units`` is the family's depth table for ImageNet-sized inputs (a subset of
    :data:`IMAGENET_UNITS`); small images follow the rule of the module docstring, their stage
    outputs multiplied by ``widen_factor``. An unsupported depth raises ValueError naming the
    supported ones.
    """
    height = image_shape[1]
    small = height <= SMALL_IMAGE_MAX_SIDE
    if not isinstance(widen_factor, int) or widen_factor < 1:
        raise ValueError('widen factor must be a positive integer, got %r' % (widen_factor,))
    if widen_factor != 1 and not small:
        raise ValueError('a widen factor applies to small-image networks (height <= %d), not to '
                         '%dx%d inputs' % (SMALL_IMAGE_MAX_SIDE, height, image_shape[2]))
    if small:
        return _small_image_plan(num_layers, image_shape, widen_factor)
    if num_layers not in imagenet_units:
        raise ValueError('depth %d is not supported for %dx%d images; supported depths: %s'
                         % (num_layers, height, image_shape[2],
                            ', '.join(str(d) for d in sorted(imagenet_units))))
    basic = num_layers in IMAGENET_BASIC_DEPTHS
    return NetworkPlan(imagenet_units[num_layers],
                       IMAGENET_BASIC_OUTPUTS if basic else IMAGENET_BOTTLENECK_OUTPUTS,
                       IMAGENET_STEM, not basic, False)


def _small_image_plan(num_layers, image_shape, widen_factor):
    """The :class:`NetworkPlan` of a small-image depth (:data:`SMALL_PERIODS`), or ValueError."""
    for period, outputs, bottle_neck in SMALL_PERIODS:
        if num_layers >= 3 and (num_layers - 2) % period == 0:
            return NetworkPlan(((num_layers - 2) // period,) * 3,
                               tuple(widen_factor * out for out in outputs), SMALL_STEM,
                               bottle_neck, True)
    raise ValueError('depth %d is not supported for %dx%d images: use a depth d with '
                     '(d-2) %% 9 == 0 (bottleneck: 11, 20, 29, 38, ...) or (d-2) %% 6 == 0 '
                     '(basic: 8, 14, 26, 32, ...)' % (num_layers, image_shape[1], image_shape[2]))


def check_stem_pool(pool, small=False):
    """Raise ValueError unless ``pool`` is one of :data:`STEM_POOLS`, and unless it is ``'pad'``
    where the network is ``small`` (the small-image stem has no pool)."""
    if pool not in STEM_POOLS:
        raise ValueError('stem pool %r is not supported; choose one of: %s'
                         % (pool, ', '.join(STEM_POOLS)))
    if small and pool != 'pad':
        raise ValueError('stem pool %r applies to ImageNet-sized inputs: the small-image stem '
                         '(height <= %d) has no max-pool' % (pool, SMALL_IMAGE_MAX_SIDE))


def stem_pool(data, pool):
    """The stem's 3x3/2 max-pool ``pool0`` in mode ``pool`` (:data:`STEM_POOLS`)."""
    check_stem_pool(pool)
    return mx.sym.Pooling(data=data, kernel=(3, 3), stride=(2, 2), pool_type='max', name='pool0',
                          **STEM_POOLS[pool])


def stem(data, num_filter, small, bn_mom=0.9, workspace=512, activate=True, pool='pad'):
    """``conv0`` -> ``bn0`` -> ``relu0``: 7x7/2 and a 3x3/2 max-pool ``pool0`` in mode ``pool``
    (:data:`STEM_POOLS`), or 3x3/1 when ``small``.

    Without ``activate`` the small-image stem is the bare ``conv0``, as in MXNet's pre-activation
    ResNet (its first unit starts with BatchNorm and ReLU). The small-image stem has no pool:
    there ``pool`` must be ``'pad'``, the default.
    """
    check_stem_pool(pool, small)
    if small:
        if not activate:
            return conv(data, num_filter, 3, 'conv0', workspace=workspace)
        return conv_bn(data, num_filter, 3, 'conv0', 'bn0', act_name='relu0', bn_mom=bn_mom,
                       workspace=workspace)
    body = conv_bn(data, num_filter, 7, 'conv0', 'bn0', stride=2, act_name='relu0',
                   bn_mom=bn_mom, workspace=workspace)
    return stem_pool(body, pool)


def deep_stem(data, convs, bn_mom=0.9, workspace=512, pool='ceil'):
    """SENet-154's stem: 3x3 ``conv0_{i}`` -> ``bn0_{i}`` -> ``relu0_{i}`` for each (output
    channels, stride) of ``convs``, then a 3x3/2 max-pool ``pool0`` in mode ``pool``
    (:data:`STEM_POOLS`; ``'ceil'`` as in the authors' released Caffe model)."""
    body = data
    for index, (num_filter, stride) in enumerate(convs, start=1):
        body = conv_bn(body, num_filter, 3, 'conv0_%d' % index, 'bn0_%d' % index, stride=stride,
                       act_name='relu0_%d' % index, bn_mom=bn_mom, workspace=workspace)
    return stem_pool(body, pool)


def _layer_names(name, index):
    """(convolution, BatchNorm, ReLU) names of the ``index``-th convolution of unit ``name``."""
    return tuple('%s_%s%d' % (name, kind, index) for kind in ('conv', 'bn', 'relu'))


def residual_unit(data, num_filter, stride, dim_match, name, spec, sc_kernel=1,
                  reduction=SE_REDUCTION, bn_mom=0.9, workspace=512):
    """Post-activation SE unit: conv -> bn -> relu for every convolution of ``spec``, except that
    the last one stops at its BatchNorm; SE on that BatchNorm; add the shortcut (a convolution and
    BatchNorm ``{name}_sc``/``{name}_sc_bn`` where the shape changes); ReLU ``{name}_relu``.

    Parameters
    ----------
    data : Symbol
        Input feature map.
    num_filter : int
        Output channels of the unit.
    stride : int
        Stride of the unit (on the bottleneck's 3x3 or first 1x1 convolution, as ``spec`` says,
        or the first 3x3 of a basic unit) and of its projection shortcut.
    dim_match : bool
        True when input and output shapes agree, so the shortcut is the identity.
    name : str
        Operator prefix, e.g. ``stage1_unit1``.
    spec : UnitSpec
        The unit's convolutions.
    sc_kernel : int
        Kernel of the projection shortcut (SENet-154 uses 3 where it downsamples).
    reduction, bn_mom, workspace
        SE reduction ratio, BatchNorm momentum, convolution workspace (MB).
    """
    convs = spec.convs(num_filter, stride)
    body = data
    for index, (filters, kernel, conv_stride, groups) in enumerate(convs, start=1):
        conv_name, bn_name, act_name = _layer_names(name, index)
        in_channels = convs[index - 2][0] if index > 1 else None
        body = grouped_conv(body, filters, in_channels, kernel, conv_name, stride=conv_stride,
                            num_group=groups, workspace=workspace)
        body = batchnorm(body, bn_name, bn_mom=bn_mom)
        if index < len(convs):
            body = mx.sym.Activation(data=body, act_type='relu', name=act_name)
    body = se_block(body, num_filter, name, reduction=reduction)
    if dim_match:
        shortcut = data
    else:
        shortcut = conv_bn(data, num_filter, sc_kernel, name + '_sc', name + '_sc_bn',
                           stride=stride, bn_mom=bn_mom, workspace=workspace)
    out = mx.sym.elemwise_add(body, shortcut, name=name + '_plus')
    return mx.sym.Activation(data=out, act_type='relu', name=name + '_relu')


def preact_residual_unit(data, num_filter, stride, dim_match, name, spec, sc_kernel=1,
                         reduction=SE_REDUCTION, bn_mom=0.9, workspace=512):
    """Pre-activation SE unit: bn -> relu -> conv for every convolution of ``spec``; SE on the
    last convolution; add the shortcut, with no ReLU after the add ``{name}_plus``. Where the shape
    changes the shortcut is a bare convolution ``{name}_sc`` of the first pre-activation.

    Parameters are those of :func:`residual_unit`.
    """
    convs = spec.convs(num_filter, stride)
    body = preactivated = data
    for index, (filters, kernel, conv_stride, groups) in enumerate(convs, start=1):
        conv_name, bn_name, act_name = _layer_names(name, index)
        in_channels = convs[index - 2][0] if index > 1 else None
        body = batchnorm(body, bn_name, bn_mom=bn_mom)
        body = mx.sym.Activation(data=body, act_type='relu', name=act_name)
        if index == 1:
            preactivated = body
        body = grouped_conv(body, filters, in_channels, kernel, conv_name, stride=conv_stride,
                            num_group=groups, workspace=workspace)
    body = se_block(body, num_filter, name, reduction=reduction)
    if dim_match:
        shortcut = data
    else:
        shortcut = conv(preactivated, num_filter, sc_kernel, name + '_sc', stride=stride,
                        workspace=workspace)
    return mx.sym.elemwise_add(body, shortcut, name=name + '_plus')


def residual_stages(data, units, outputs, in_channels, spec, unit=residual_unit,
                    sc_kernels=None, **unit_options):
    """Stack stages of ``unit`` (:func:`residual_unit` or :func:`preact_residual_unit`) named
    ``stage{s}_unit{u}``.

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
    spec : UnitSpec
        The convolutions of every unit.
    unit : callable
        The unit builder.
    sc_kernels : sequence of int, optional
        Projection-shortcut kernel of each stage (default 1 everywhere).
    **unit_options
        ``reduction``, ``bn_mom``, ``workspace``: passed to every unit.
    """
    if sc_kernels is None:
        sc_kernels = (1,) * len(units)
    body = data
    for stage, (num_units, num_filter, sc_kernel) in enumerate(zip(units, outputs, sc_kernels),
                                                               start=1):
        for index in range(1, num_units + 1):
            first = index == 1
            stride = 2 if first and stage > 1 else 1
            dim_match = not first or (stage == 1 and in_channels == num_filter)
            body = unit(body, num_filter, stride, dim_match, 'stage%d_unit%d' % (stage, index),
                        spec, sc_kernel=sc_kernel, **unit_options)
    return body
