"""Every registered network at every depth: output shape, pinned counts, gradients, classes, depths.

Parametrized over ``symbols.NETWORKS``. A family built at several depths is tested at every depth
of its module's ``IMAGENET_UNITS`` (and at every entry of ``VERSIONS`` if it takes ``version``); a
fixed-depth network (its module's ``DEPTH``) once, with its defaults. Full-size networks are checked by
shape inference only; gradients are computed on small inputs: the small-image depths of the
residual families (32x32) and their ImageNet layout at 64x64, and each fixed-depth network at its
module's ``MIN_IMAGE_SIZE`` (32 when it declares none).
"""
import functools
import json

import mxnet as mx
import numpy as np
import pytest

import symbols
from tests.conftest import assert_every_parameter_has_a_gradient, parameter_count
from tests.counts import PARAMETER_COUNTS

IMAGENET_SHAPE = (3, 224, 224)

SMALL_DEPTHS = (8, 11)
"""Small-image depths for gradients: one basic and one bottleneck unit per stage."""

GRADIENT_IMAGENET_DEPTHS = (18, 50)
"""ImageNet layouts (basic, bottleneck) whose gradients are checked on 64x64 inputs."""


def extra_kwargs(extra):
    """'version=2,num_group=64' -> {'version': 2, 'num_group': 64}."""
    return {key: int(value) for key, value in (item.split('=') for item in extra.split(',') if item)}


def declared_configurations(network):
    """(network, depth, extra) for every depth (and version) the network's module declares."""
    module = symbols.NETWORKS[network]
    options = symbols.builder_options(network)
    depths = [None] if symbols.fixed_depth(network) is not None else sorted(module.IMAGENET_UNITS)
    extras = ['version=%d' % v for v in module.VERSIONS] if 'version' in options else ['']
    return [(network, depth, extra) for depth in depths for extra in extras]


def key_order(key):
    network, depth, extra = key
    return network, depth or 0, extra


CONFIGURATIONS = sorted(
    {key for network in symbols.NETWORKS for key in declared_configurations(network)}
    | {key for key in PARAMETER_COUNTS if key[0] in symbols.NETWORKS}, key=key_order)
"""Every declared network/depth/version, plus the pinned variants (e.g. 64 groups)."""


def config_id(key):
    network, depth, extra = key
    return '-'.join(str(part) for part in (network, depth, extra) if part not in (None, ''))


def gradient_configurations():
    """pytest params (network, depth, extra, image_shape) for the gradient test."""
    configs = []
    for network, module in sorted(symbols.NETWORKS.items()):
        options = symbols.builder_options(network)
        extras = ['version=%d' % v for v in module.VERSIONS] if 'version' in options else ['']
        if symbols.fixed_depth(network) is None:
            configs += [(network, depth, extra, (3, 32, 32))
                        for depth in SMALL_DEPTHS for extra in extras]
            configs += [(network, depth, extra, (3, 64, 64))
                        for depth in GRADIENT_IMAGENET_DEPTHS for extra in extras]
        else:
            side = getattr(module, 'MIN_IMAGE_SIZE', 32)
            configs += [(network, None, extra, (3, side, side)) for extra in extras]
    return [pytest.param(*config, id='%s-%dx%d' % ((config_id(config[:3]),) + config[3][1:]))
            for config in configs]


@functools.lru_cache(maxsize=None)
def build(key, num_classes=1000, image_shape=IMAGENET_SHAPE):
    network, depth, extra = key
    kwargs = extra_kwargs(extra)
    if depth is not None:
        kwargs['num_layers'] = depth
    return symbols.get_symbol(network, num_classes, image_shape=image_shape, **kwargs)


def argument_shapes(sym, image_shape=IMAGENET_SHAPE, batch=1):
    shapes, _, _ = sym.infer_shape(data=(batch,) + tuple(image_shape))
    return dict(zip(sym.list_arguments(), shapes))


def test_every_network_is_covered():
    covered = {key[0] for key in CONFIGURATIONS}
    assert covered == set(symbols.NETWORKS)
    assert len(CONFIGURATIONS) >= len(symbols.NETWORKS)


@pytest.mark.parametrize('key', CONFIGURATIONS, ids=config_id)
def test_output_shape(key):
    sym = build(key)
    _, out_shapes, _ = sym.infer_shape(data=(2,) + IMAGENET_SHAPE)
    assert sym.list_outputs() == ['softmax_output']
    assert out_shapes == [(2, 1000)]
    fc1 = sym.get_internals()['fc1_output']
    assert fc1.infer_shape(data=(2,) + IMAGENET_SHAPE)[1] == [(2, 1000)]
    assert sym.list_arguments()[:2] == ['data', 'bn_data_gamma']


@pytest.mark.parametrize('key', CONFIGURATIONS, ids=config_id)
def test_parameter_count_is_pinned(key):
    assert key in PARAMETER_COUNTS, 'no pinned count for %s: add one to tests/counts.py, citing ' \
                                    'its source' % (key,)
    assert parameter_count(build(key)) == PARAMETER_COUNTS[key]


def initialised_executor(sym, image_shape, batch, num_classes, seed=0):
    """Executor with He-uniform weights, unit gammas, zero biases, random pixels and labels.

    (Uniform draws into the bound arrays: Xavier's Gaussian costs seconds for SENet-154.)
    """
    exe = sym.simple_bind(mx.cpu(), data=(batch,) + tuple(image_shape), softmax_label=(batch,))
    rng = np.random.RandomState(seed)
    mx.random.seed(seed)
    for name, arr in exe.arg_dict.items():
        if name == 'data':
            arr[:] = rng.uniform(0, 255, arr.shape)
        elif name == 'softmax_label':
            arr[:] = rng.randint(0, num_classes, batch)
        elif name.endswith('_gamma'):
            arr[:] = 1
        elif name.endswith(('_beta', '_bias')):
            arr[:] = 0
        else:
            bound = float(np.sqrt(6.0 / np.prod(arr.shape[1:])))
            mx.nd.random.uniform(-bound, bound, arr.shape, out=arr)
    for name, arr in exe.aux_dict.items():
        arr[:] = 1 if name.endswith('_moving_var') else 0
    return exe


@pytest.mark.parametrize('network,depth,extra,image_shape', gradient_configurations())
def test_every_parameter_gets_a_gradient(network, depth, extra, image_shape):
    """Every parameter receives a finite, non-zero gradient of its own shape."""
    sym = build((network, depth, extra), num_classes=10, image_shape=image_shape)
    batch = 2
    exe = initialised_executor(sym, image_shape, batch, 10)
    exe.forward(is_train=True)
    assert exe.outputs[0].shape == (batch, 10)
    exe.backward()
    assert sorted(exe.grad_dict) == sorted(sym.list_arguments())
    assert_every_parameter_has_a_gradient(exe)


@pytest.mark.parametrize('network', sorted(symbols.NETWORKS))
def test_num_classes_changes_only_fc1(network):
    """Built with its defaults, a network differs between 1000 and 37 classes only in fc1."""
    a = argument_shapes(symbols.get_symbol(network, 1000))
    b = argument_shapes(symbols.get_symbol(network, 37))
    assert sorted(a) == sorted(b)
    changed = sorted(name for name in a if a[name] != b[name])
    assert changed == ['fc1_bias', 'fc1_weight']
    assert b['fc1_weight'][0] == 37 and b['fc1_bias'] == (37,)


DEPTH_NETWORKS = sorted(n for n in symbols.NETWORKS if symbols.fixed_depth(n) is None)
FIXED_DEPTH_NETWORKS = sorted(set(symbols.NETWORKS) - set(DEPTH_NETWORKS))


@pytest.mark.parametrize('network', DEPTH_NETWORKS)
@pytest.mark.parametrize('depth', [0, 49, 77, 1001])
def test_unsupported_depth_names_the_supported_ones(network, depth):
    with pytest.raises(ValueError) as err:
        symbols.get_symbol(network, 10, num_layers=depth)
    message = str(err.value)
    assert 'depth %d' % depth in message
    supported = message.split('supported depths:')[1]
    assert [int(d) for d in supported.split(',')] == \
        sorted(symbols.NETWORKS[network].IMAGENET_UNITS)


@pytest.mark.parametrize('network', DEPTH_NETWORKS)
@pytest.mark.parametrize('depth', [4, 12, 51])
def test_unsupported_small_image_depth_names_the_rule(network, depth):
    with pytest.raises(ValueError) as err:
        symbols.get_symbol(network, 10, num_layers=depth, image_shape='3,32,32')
    message = str(err.value)
    assert 'depth %d' % depth in message and '(d-2) % 9' in message and '29' in message


@pytest.mark.parametrize('network', FIXED_DEPTH_NETWORKS)
@pytest.mark.parametrize('depth', [50, 0, 1000])
def test_fixed_depth_network_rejects_another_depth(network, depth):
    """The error names the depth asked for, the network and its one depth."""
    fixed = symbols.NETWORKS[network].DEPTH
    with pytest.raises(ValueError) as err:
        symbols.get_symbol(network, 10, num_layers=depth)
    message = str(err.value)
    assert 'depth %d' % depth in message and network in message
    assert 'fixed depth %d' % fixed in message


@pytest.mark.parametrize('network', FIXED_DEPTH_NETWORKS)
def test_fixed_depth_network_accepts_its_depth_or_none(network):
    """Every builder takes ``num_layers``; a fixed-depth one builds the same graph with its own
    depth as with None or without it."""
    assert 'num_layers' in symbols.builder_options(network)
    side = getattr(symbols.NETWORKS[network], 'MIN_IMAGE_SIZE', 32)
    kwargs = dict(image_shape=(3, side, side))
    default = symbols.get_symbol(network, 10, **kwargs).tojson()
    assert symbols.get_symbol(network, 10, num_layers=None, **kwargs).tojson() == default
    depth = symbols.fixed_depth(network)
    assert symbols.get_symbol(network, 10, num_layers=depth, **kwargs).tojson() == default


def weighted_depth(sym):
    """Convolutions and fully connected layers on the longest path from ``data`` to the output,
    SE layers excepted: the count that names ResNet-50 (He et al. 2016) and SENet-154."""
    nodes = json.loads(sym.tojson())['nodes']
    depths = []
    for node in nodes:
        weighted = node['op'] in ('Convolution', 'FullyConnected') and \
            '_excitation' not in node['name']
        depths.append(int(weighted) + max([depths[source] for source, _, _ in node['inputs']],
                                          default=0))
    return depths[-1]


@pytest.mark.parametrize('network,depth', [('se-resnext', 50), ('se-resnext', 18),
                                           ('se-resnet', 101), ('se-resnext', 29)]
                         + [(network, None) for network in FIXED_DEPTH_NETWORKS])
def test_depth_counts_the_weighted_layers(network, depth):
    """A family's depth and a fixed-depth network's DEPTH count the same layers of the graph."""
    kwargs = {} if depth is None else dict(num_layers=depth)
    if depth == 29:
        kwargs['image_shape'] = (3, 32, 32)
    sym = symbols.get_symbol(network, 10, **kwargs)
    assert weighted_depth(sym) == (symbols.fixed_depth(network) if depth is None else depth)


def smallest_build(network):
    """Builder arguments of a small configuration of ``network``."""
    if network in DEPTH_NETWORKS:
        return dict(num_layers=11, image_shape=(3, 32, 32))
    side = getattr(symbols.NETWORKS[network], 'MIN_IMAGE_SIZE', 32)
    return dict(image_shape=(3, side, side))


@pytest.mark.parametrize('network', sorted(symbols.NETWORKS))
def test_names_do_not_depend_on_build_history(network):
    """Two builds give the same graph, with no counter-generated names."""
    first = symbols.get_symbol(network, 10, **smallest_build(network)).tojson()
    second = symbols.get_symbol(network, 10, **smallest_build(network)).tojson()
    assert first == second
    names = [node['name'] for node in json.loads(first)['nodes']]
    assert not any(name.startswith(('_plus', 'broadcast_mul', 'reshape', 'flatten0',
                                    'convolution', 'batchnorm', 'activation', 'pooling'))
                   for name in names)
