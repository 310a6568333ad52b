"""The residual builders' source-model keywords: the stem pool, the stride on the first 1x1
convolution, ResNeXt's base width, and depth 26. Their defaults leave the graphs as they were
(tests/test_graph_identity.py); here each keyword changes what it says and nothing else."""
import json

import mxnet as mx
import numpy as np
import pytest

import symbols
from symbols import resnet_family
from tests.conftest import parameter_count
from tests.counts import PARAMETER_COUNTS


def internal_shape(sym, name, side=224):
    """Output shape of the operator ``name`` for a (1, 3, side, side) input."""
    return sym.get_internals()[name + '_output'].infer_shape(data=(1, 3, side, side))[1][0]


def argument_shapes(sym, side=224):
    shapes, _, _ = sym.infer_shape(data=(1, 3, side, side))
    return dict(zip(sym.list_arguments(), shapes))


def convolution_strides(sym):
    """{convolution name: stride} of a graph."""
    return {node['name']: node['attrs']['stride'] for node in json.loads(sym.tojson())['nodes']
            if node['op'] == 'Convolution'}


# ------------------------------------------------------------------------------------------------
# Stem pool.

def max_pool_reference(image, pad, ceil):
    """3x3/2 max-pool of a 2-D array, padded by ``pad`` (with -inf), rounding up when ``ceil``."""
    padded = np.pad(image, pad, constant_values=-np.inf)
    span = padded.shape[0] - 3
    size = (-(-span // 2) if ceil else span // 2) + 1
    return np.array([[padded[2 * i:2 * i + 3, 2 * j:2 * j + 3].max() for j in range(size)]
                     for i in range(size)])


@pytest.mark.parametrize('side', [6, 7])
@pytest.mark.parametrize('mode,pad,ceil', [('pad', 1, False), ('ceil', 0, True)])
def test_stem_pool_modes_compute_their_windows(side, mode, pad, ceil):
    """'pad' starts its windows one pixel before the image and rounds down; 'ceil' starts them on
    the image and rounds up (keeping a last, partial window)."""
    image = np.random.RandomState(side).uniform(-1, 1, (side, side)).astype(np.float32)
    pooled = resnet_family.stem_pool(mx.sym.Variable('data'), mode)
    out = pooled.eval(ctx=mx.cpu(), data=mx.nd.array(image.reshape(1, 1, side, side)))[0]
    np.testing.assert_array_equal(out.asnumpy()[0, 0], max_pool_reference(image, pad, ceil))


@pytest.mark.parametrize('network,kwargs,default', [
    ('se-resnext', dict(num_layers=50), 'pad'),
    ('se-resnet', dict(num_layers=50), 'pad'),
    ('senet-154', {}, 'ceil'),
])
def test_stem_pool_keyword(network, kwargs, default):
    """Each builder's default is its old pool; the other mode changes pool0 and nothing else: 56x56
    either way from 224x224, but 57 against 56 from 225x225 (113x113 after the stem's stride)."""
    graphs = {mode: symbols.get_symbol(network, 10, stem_pool=mode, **kwargs)
              for mode in resnet_family.STEM_POOLS}
    assert graphs[default].tojson() == symbols.get_symbol(network, 10, **kwargs).tojson()
    assert internal_shape(graphs['pad'], 'pool0')[2:] == (56, 56)
    assert internal_shape(graphs['ceil'], 'pool0')[2:] == (56, 56)
    assert internal_shape(graphs['pad'], 'pool0', side=225)[2:] == (57, 57)
    assert internal_shape(graphs['ceil'], 'pool0', side=225)[2:] == (56, 56)
    attrs = {mode: graph.attr_dict()['pool0'] for mode, graph in graphs.items()}
    assert attrs['pad']['pad'] == '(1, 1)' and 'pooling_convention' not in attrs['pad']
    assert attrs['ceil']['pooling_convention'] == 'full' and 'pad' not in attrs['ceil']
    for mode in ('pad', 'ceil'):
        del attrs[mode]['pad' if mode == 'pad' else 'pooling_convention']
    assert attrs['pad'] == attrs['ceil']
    assert argument_shapes(graphs['pad']) == argument_shapes(graphs['ceil'])


def test_stem_pool_refuses_unknown_modes_and_small_images():
    with pytest.raises(ValueError, match="stem pool 'floor' is not supported; choose one of: "
                                         "pad, ceil"):
        symbols.get_symbol('se-resnext', 10, stem_pool='floor')
    with pytest.raises(ValueError, match='small-image stem .* has no max-pool'):
        symbols.get_symbol('se-resnet', 10, num_layers=20, image_shape='3,32,32',
                           stem_pool='ceil')


# ------------------------------------------------------------------------------------------------
# Stride on the bottleneck's first 1x1 convolution.

@pytest.mark.parametrize('version', [1, 2])
def test_stride_in_1x1_moves_the_stride_and_nothing_else(version):
    default = symbols.get_symbol('se-resnet', 10, num_layers=50, version=version)
    caffe = symbols.get_symbol('se-resnet', 10, num_layers=50, version=version, stride_in_1x1=True)
    assert argument_shapes(caffe) == argument_shapes(default)
    strides, caffe_strides = convolution_strides(default), convolution_strides(caffe)
    moved = sorted(name for name in strides if strides[name] != caffe_strides[name])
    assert moved == ['stage%d_unit1_conv%d' % (stage, conv) for stage in (2, 3, 4)
                     for conv in (1, 2)]
    for stage, side in ((2, 28), (3, 14), (4, 7)):
        unit = 'stage%d_unit1_' % stage
        assert caffe_strides[unit + 'conv1'] == '(2, 2)' and caffe_strides[unit + 'conv2'] == '(1, 1)'
        assert internal_shape(caffe, unit + 'conv1')[2:] == (side, side)
        assert internal_shape(default, unit + 'conv1')[2:] == (2 * side, 2 * side)
    assert internal_shape(caffe, 'fc1') == internal_shape(default, 'fc1') == (1, 10)


def test_stride_in_1x1_needs_bottleneck_units():
    with pytest.raises(ValueError, match='stride_in_1x1 applies to bottleneck units; depth 18'):
        symbols.get_symbol('se-resnet', 10, num_layers=18, stride_in_1x1=True)


# ------------------------------------------------------------------------------------------------
# ResNeXt's base width.

@pytest.mark.parametrize('num_group,base_width,widths', [
    (64, 4, (256, 512, 1024, 2048)),  # 64x4d: the bottleneck as wide as the output
    (32, 8, (256, 512, 1024, 2048)),  # 32x8d
    (32, 4, (128, 256, 512, 1024)),   # 32x4d: today's width, output / 2
])
def test_base_width_sets_the_bottleneck(num_group, base_width, widths):
    sym = symbols.get_symbol('se-resnext', 1000, num_layers=101, num_group=num_group,
                             base_width=base_width)
    shapes = argument_shapes(sym)
    for stage, (width, out) in enumerate(zip(widths, (256, 512, 1024, 2048)), start=1):
        unit = 'stage%d_unit2_' % stage
        assert shapes[unit + 'conv1_weight'] == (width, out, 1, 1)
        assert shapes[unit + 'conv2_weight'] == (width, width // num_group, 3, 3)
        assert shapes[unit + 'conv3_weight'] == (out, width, 1, 1)
        assert shapes[unit + 'excitation1_weight'] == (out // 16, out)
    if base_width == 4 and num_group == 32:
        assert sym.tojson() == symbols.get_symbol('se-resnext', 1000, num_layers=101).tojson()


def test_base_width_rounds_each_group_down():
    """floor(planes * base_width / 64) channels a group: base width 6 on the small-image stages'
    16/32/64 planes gives 1, 3 and 6 channels to each of 2 groups."""
    sym = symbols.get_symbol('se-resnext', 10, num_layers=11, image_shape='3,32,32', num_group=2,
                             base_width=6)
    shapes = argument_shapes(sym, side=32)
    assert [shapes['stage%d_unit1_conv2_weight' % stage] for stage in (1, 2, 3)] == \
        [(2, 1, 3, 3), (6, 3, 3, 3), (12, 6, 3, 3)]


def test_base_width_and_groups_are_checked():
    with pytest.raises(ValueError, match='base width 0 leaves the groups of the first stage '
                                         r'\(64 planes\) no channel.*at least 1'):
        symbols.get_symbol('se-resnext', 10, num_layers=50, base_width=0)
    with pytest.raises(ValueError, match=r'floor\(16 \* base_width / 64\).*at least 4'):
        symbols.get_symbol('se-resnext', 10, num_layers=11, image_shape='3,32,32', base_width=3)
    with pytest.raises(ValueError, match='base width applies to bottleneck units; depth 34'):
        symbols.get_symbol('se-resnext', 10, num_layers=34, base_width=4)
    with pytest.raises(ValueError, match='--num-group must be positive, got 0'):
        symbols.get_symbol('se-resnext', 10, num_layers=50, num_group=0, base_width=4)
    # Without a base width the groups still have to divide output / 2; with one they need not.
    with pytest.raises(ValueError, match='--num-group 48 does not divide the bottleneck width 128'):
        symbols.get_symbol('se-resnext', 10, num_layers=50, num_group=48)
    shapes = argument_shapes(symbols.get_symbol('se-resnext', 10, num_layers=50, num_group=48,
                                                base_width=2))
    assert shapes['stage1_unit1_conv2_weight'] == (96, 2, 3, 3)


# ------------------------------------------------------------------------------------------------
# Depth 26 and the registry.

def test_depth_26_has_two_bottleneck_units_a_stage():
    sym = symbols.get_symbol('se-resnext', 1000, num_layers=26)
    units = {name.split('_')[0] + '_' + name.split('_')[1] for name in sym.list_arguments()
             if name.startswith('stage')}
    assert units == {'stage%d_unit%d' % (stage, unit) for stage in (1, 2, 3, 4) for unit in (1, 2)}
    assert argument_shapes(sym)['stage4_unit2_conv2_weight'] == (1024, 32, 3, 3)
    assert parameter_count(sym) == PARAMETER_COUNTS[('se-resnext', 26, '')]
    with pytest.raises(ValueError, match='depth 26 is not supported'):
        symbols.get_symbol('se-resnet', 10, num_layers=26)


@pytest.mark.parametrize('network,options', [
    ('se-resnext', {'base_width', 'stem_pool'}),
    ('se-resnet', {'stride_in_1x1', 'stem_pool'}),
    ('senet-154', {'stem_pool'}),
])
def test_keywords_are_builder_options(network, options):
    assert options <= set(symbols.builder_options(network))
