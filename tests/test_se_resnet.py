"""SE-ResNet's two versions: the layout of each (counts, shapes and gradients are in test_networks)."""
import json

import pytest

import symbols


def graph(**kwargs):
    """name -> (op, names of its inputs) of an SE-ResNet graph."""
    doc = json.loads(symbols.get_symbol('se-resnet', 10, **kwargs).tojson())
    nodes = doc['nodes']
    return {node['name']: (node['op'], [nodes[i[0]]['name'] for i in node['inputs']])
            for node in nodes}


def argument_shapes(network, image_shape=(3, 224, 224), **kwargs):
    sym = symbols.get_symbol(network, 1000, image_shape=image_shape, **kwargs)
    shapes, _, _ = sym.infer_shape(data=(1,) + image_shape)
    return dict(zip(sym.list_arguments(), shapes))


@pytest.mark.parametrize('depth', [18, 50, 101])
def test_version_1_is_the_se_resnext_unit_with_one_group_and_quarter_width(depth):
    resnet = argument_shapes('se-resnet', num_layers=depth)
    resnext = argument_shapes('se-resnext', num_layers=depth)
    assert sorted(resnet) == sorted(resnext)
    if depth >= 50:
        assert resnet['stage1_unit1_conv1_weight'] == (64, 64, 1, 1)
        assert resnet['stage1_unit1_conv2_weight'] == (64, 64, 3, 3)
        assert resnet['stage1_unit1_conv3_weight'] == (256, 64, 1, 1)
        assert resnet['stage4_unit1_conv2_weight'] == (512, 512, 3, 3)
        assert resnet['stage1_unit1_excitation1_weight'] == (16, 256)
    else:
        assert resnet == resnext  # basic units have no groups: the two families agree


def se_source(nodes, unit):
    """The node whose channels ``unit``'s SE block squeezes (through the fast form's reshape)."""
    (source,) = nodes[unit + '_squeeze'][1]
    if source == unit + '_se_input':
        (source,) = nodes[source][1]
    return source


def test_version_1_is_post_activation():
    nodes = graph(num_layers=50)
    assert se_source(nodes, 'stage1_unit1') == 'stage1_unit1_bn3'
    assert nodes['stage1_unit1_relu'][1] == ['stage1_unit1_plus']
    assert nodes['stage1_unit1_sc_bn'][1][0] == 'stage1_unit1_sc'
    assert nodes['pool1'][1] == ['stage4_unit3_relu']


def test_version_2_is_pre_activation():
    nodes = graph(num_layers=50, version=2)
    assert nodes['stage1_unit1_bn1'][1][0] == 'pool0'
    assert nodes['stage1_unit1_conv1'][1][0] == 'stage1_unit1_relu1'
    assert se_source(nodes, 'stage1_unit1') == 'stage1_unit1_conv3'
    assert nodes['stage1_unit1_sc'][1][0] == 'stage1_unit1_relu1'
    assert nodes['stage1_unit2_bn1'][1][0] == 'stage1_unit1_plus'  # no ReLU after the add
    assert 'stage1_unit1_relu' not in nodes and 'stage1_unit1_sc_bn' not in nodes
    assert nodes['relu1'][1] == ['bn1'] and nodes['bn1'][1][0] == 'stage4_unit3_plus'
    assert nodes['pool1'][1] == ['relu1']


def test_version_2_small_image_stem_is_a_bare_convolution():
    small = graph(num_layers=8, image_shape=(3, 32, 32), version=2)
    assert 'bn0' not in small and small['stage1_unit1_bn1'][1][0] == 'conv0'
    assert 'bn0' in graph(num_layers=8, image_shape=(3, 32, 32), version=1)


def test_version_2_widths():
    shapes = argument_shapes('se-resnet', num_layers=50, version=2)
    assert shapes['stage1_unit1_bn1_gamma'] == (64,)
    assert shapes['stage1_unit1_bn3_gamma'] == (64,)
    assert shapes['stage1_unit1_sc_weight'] == (256, 64, 1, 1)
    assert shapes['bn1_gamma'] == (2048,)


@pytest.mark.parametrize('version', [0, 3, '2'])
def test_unsupported_version_names_the_supported_ones(version):
    with pytest.raises(ValueError, match='choose one of: 1, 2'):
        symbols.get_symbol('se-resnet', 10, version=version)
