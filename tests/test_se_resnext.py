"""SE-ResNeXt builder: reference parameter counts, the released model's names, shapes, gradients."""
import json

import mxnet as mx
import numpy as np
import pytest

import symbols
from symbols import layers, se_resnext
from tests.conftest import assert_every_parameter_has_a_gradient, parameter_count
from tests.counts import PARAMETER_COUNTS


@pytest.mark.parametrize('depth', [18, 34, 50, 101])
def test_reference_parameter_counts(depth):
    """32 groups (32x4d; the basic units of depths 18 and 34 have none) give the peer models'
    counts: timm's seresnext50_32x4d/seresnext101_32x4d and seresnet18/34, Cadene's port."""
    sym = symbols.get_symbol('se-resnext', 1000, num_layers=depth, num_group=32)
    assert parameter_count(sym) == PARAMETER_COUNTS[('se-resnext', depth, '')]


def test_released_model_names_and_shapes(released_json):
    released = mx.sym.load(released_json)
    ours = symbols.get_symbol('se-resnext', 1000, num_layers=50, num_group=64)
    shape = dict(data=(1, 3, 224, 224))
    ref_args, _, ref_aux = released.infer_shape(**shape)
    args, _, aux = ours.infer_shape(**shape)
    assert dict(zip(ours.list_arguments(), args)) == dict(zip(released.list_arguments(), ref_args))
    assert dict(zip(ours.list_auxiliary_states(), aux)) == \
        dict(zip(released.list_auxiliary_states(), ref_aux))


@pytest.mark.parametrize('depth', sorted(se_resnext.IMAGENET_UNITS))
def test_imagenet_depths_output_shape(depth):
    sym = symbols.get_symbol('se-resnext', 7, num_layers=depth)
    _, out_shapes, _ = sym.infer_shape(data=(2, 3, 224, 224))
    assert out_shapes == [(2, 7)]
    assert sym.get_internals()['fc1_output'].infer_shape(data=(2, 3, 224, 224))[1] == [(2, 7)]


@pytest.mark.parametrize('depth', [8, 11, 14, 20, 29])
def test_small_image_depths_shape_and_gradients(depth):
    """Every parameter receives a finite, non-zero gradient of its own shape on 32x32 inputs."""
    sym = symbols.get_symbol('se-resnext', 10, num_layers=depth, image_shape='3,32,32',
                             num_group=4)
    batch = 4
    exe = sym.simple_bind(mx.cpu(), data=(batch, 3, 32, 32), softmax_label=(batch,))
    rng = np.random.RandomState(0)
    for name, arr in exe.arg_dict.items():
        if name == 'data':
            arr[:] = rng.uniform(0, 255, arr.shape)
        elif name == 'softmax_label':
            arr[:] = rng.randint(0, 10, batch)
        elif name.endswith('_gamma'):
            arr[:] = 1
        elif name.endswith('_weight'):
            arr[:] = rng.normal(0, 0.1, arr.shape)
        else:
            arr[:] = rng.normal(0, 0.01, arr.shape)
    exe.forward(is_train=True)
    assert exe.outputs[0].shape == (batch, 10)
    exe.backward()
    assert_every_parameter_has_a_gradient(exe)


def test_num_classes_changes_only_fc1():
    def shapes(num_classes):
        sym = symbols.get_symbol('se-resnext', num_classes, num_layers=50)
        args, _, _ = sym.infer_shape(data=(1, 3, 224, 224))
        return dict(zip(sym.list_arguments(), args))
    a, b = shapes(1000), shapes(37)
    changed = sorted(name for name in a if a[name] != b[name])
    assert changed == ['fc1_bias', 'fc1_weight']
    assert b['fc1_weight'] == (37, 2048)


@pytest.mark.parametrize('depth,shape', [(77, '3,224,224'), (51, '3,32,32'), (4, '3,32,32')])
def test_unsupported_depth_names_supported_ones(depth, shape):
    with pytest.raises(ValueError) as err:
        symbols.get_symbol('se-resnext', 10, num_layers=depth, image_shape=shape)
    message = str(err.value)
    assert 'depth %d' % depth in message
    assert ('101' in message) if shape.endswith('224') else ('29' in message)


def test_num_group_must_divide_width():
    with pytest.raises(ValueError, match='does not divide'):
        symbols.get_symbol('se-resnext', 10, num_layers=50, num_group=48)


@pytest.mark.parametrize('network', ['se-resnext', 'se-resnet'])
@pytest.mark.parametrize('depth,outputs', [(14, (16, 32, 64)), (11, (64, 128, 256))])
def test_widen_factor_multiplies_small_image_stage_widths(network, depth, outputs):
    """Widen factor 2 doubles every stage's output (the 16-channel stem stays), and with it about
    quadruples the parameters; ImageNet inputs and a factor below 1 are refused."""
    kwargs = dict(num_layers=depth, image_shape=(3, 28, 28))
    if network == 'se-resnext':
        kwargs['num_group'] = 2
    plain = symbols.get_symbol(network, 10, **kwargs)
    wide = symbols.get_symbol(network, 10, widen_factor=2, **kwargs)
    shapes = dict(zip(wide.list_arguments(), wide.infer_shape(data=(1, 3, 28, 28))[0]))
    assert shapes['conv0_weight'][0] == 16
    for stage, out in enumerate(outputs, start=1):
        last_conv = 'stage%d_unit1_conv%d_weight' % (stage, 3 if depth == 11 else 2)
        assert shapes[last_conv][0] == 2 * out
    ratio = parameter_count(wide, (3, 28, 28)) / parameter_count(plain, (3, 28, 28))
    assert 3.0 < ratio < 4.2, ratio
    with pytest.raises(ValueError, match='small-image networks'):
        symbols.get_symbol(network, 10, num_layers=50, widen_factor=2)
    with pytest.raises(ValueError, match='positive integer'):
        symbols.get_symbol(network, 10, widen_factor=0, **kwargs)


def test_unknown_network_lists_registry():
    with pytest.raises(ValueError, match='se-resnext'):
        symbols.get_symbol('se-resnet-9000', 10)


def test_names_do_not_depend_on_build_history():
    first = json.loads(symbols.get_symbol('se-resnext', 10, num_layers=11,
                                          image_shape=(3, 32, 32), num_group=2).tojson())
    symbols.get_symbol('se-resnext', 10, num_layers=29, image_shape=(3, 32, 32))
    second = json.loads(symbols.get_symbol('se-resnext', 10, num_layers=11,
                                           image_shape=(3, 32, 32), num_group=2).tojson())
    assert [n['name'] for n in first['nodes']] == [n['name'] for n in second['nodes']]
    assert not any(n['name'].startswith(('_plus', 'broadcast_mul', 'reshape', 'flatten0'))
                   for n in first['nodes'])


def test_drop_out_and_bn_mom_reach_the_graph():
    sym = symbols.get_symbol('se-resnext', 10, num_layers=11, image_shape=(3, 32, 32),
                             num_group=2, drop_out=0.3, bn_mom=0.8)
    nodes = {n['name']: n for n in json.loads(sym.tojson())['nodes']}
    assert nodes['dp1']['attrs']['p'] == '0.3'
    assert nodes['stage1_unit1_bn1']['attrs']['momentum'] == '0.8'
    assert nodes['stage2_unit1_conv2']['attrs']['num_group'] == '2'


def test_se_block_matches_numpy():
    """The SE block computes x * sigmoid(W2 relu(W1 mean(x) + b1) + b2) channel-wise."""
    x = mx.sym.Variable('x')
    sym = layers.se_block(x, 32, 'u')
    rng = np.random.RandomState(1)
    values = {'x': rng.randn(3, 32, 5, 5), 'u_excitation1_weight': rng.randn(8, 32),
              'u_excitation1_bias': rng.randn(8), 'u_excitation2_weight': rng.randn(32, 8),
              'u_excitation2_bias': rng.randn(32)}
    out = sym.eval(ctx=mx.cpu(), **{k: mx.nd.array(v) for k, v in values.items()})[0].asnumpy()
    squeeze = values['x'].mean(axis=(2, 3))
    hidden = np.maximum(squeeze @ values['u_excitation1_weight'].T + values['u_excitation1_bias'], 0)
    gate = 1 / (1 + np.exp(-(hidden @ values['u_excitation2_weight'].T
                             + values['u_excitation2_bias'])))
    np.testing.assert_allclose(out, values['x'] * gate[:, :, None, None], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize('channels,width', [(64, 8), (256, 16), (2048, 128), (1536, 96)])
def test_se_width_rounding(channels, width):
    assert layers.se_width(channels) == width


@pytest.mark.parametrize('text', ['3,224', 'a,b,c', '3,0,32'])
def test_bad_image_shape(text):
    with pytest.raises(ValueError, match='C,H,W'):
        layers.parse_image_shape(text)
