"""SE-Inception-v4 and SE-Inception-ResNet-v2: counts, SE placement read from the graph, shapes,
gradients on real Fashion-MNIST images, and train + resume through train_se_inception.py."""
import collections
import json
import re

import mxnet as mx
import numpy as np
import pytest

import data
import symbols
import train_se_inception
from senet import arguments
from symbols import cpu_fast, inception_common
from tests.conftest import assert_every_parameter_has_a_gradient, trainable_parameters
from tests.counts import PARAMETER_COUNTS, SE_PARAMETER_COUNTS

INCEPTIONS = ('se-inception-v4', 'se-inception-resnet-v2')

# The blocks that carry an SE block, by their exact operator prefixes.
SE_BLOCKS = {
    'se-inception-v4': ['inception_a%d' % i for i in range(1, 5)]
    + ['inception_b%d' % i for i in range(1, 8)] + ['inception_c%d' % i for i in range(1, 4)],
    'se-inception-resnet-v2': ['block35_%d' % i for i in range(1, 11)]
    + ['block17_%d' % i for i in range(1, 21)] + ['block8_%d' % i for i in range(1, 11)],
}

MIN_SIZE = inception_common.MIN_IMAGE_SIZE


def argument_shapes(sym, size=224):
    shapes, _, _ = sym.infer_shape(data=(1, 3, size, size))
    return dict(zip(sym.list_arguments(), shapes))


def graph(sym):
    """(nodes, consumers): the JSON nodes and, for each node index, the indices that read it."""
    nodes = json.loads(sym.tojson())['nodes']
    consumers = collections.defaultdict(list)
    for index, node in enumerate(nodes):
        for source, _, _ in node['inputs']:
            consumers[source].append(index)
    return nodes, consumers


def se_scales(nodes):
    """Indices of SE products: x * reshape(sigmoid(FullyConnected(...))), as ``broadcast_mul``
    or as ``elemwise_mul`` of ``broadcast_like(gate, x)`` (symbols.cpu_fast.SE_IMPLS)."""
    found = []
    for index, node in enumerate(nodes):
        if node['op'] not in ('broadcast_mul', 'elemwise_mul'):
            continue
        gate = nodes[node['inputs'][1][0]]
        if gate['op'] == 'broadcast_like':
            gate = nodes[gate['inputs'][0][0]]
        if gate['op'] != 'Reshape':
            continue
        sigmoid = nodes[gate['inputs'][0][0]]
        if sigmoid['op'] == 'Activation' and sigmoid['attrs']['act_type'] == 'sigmoid' and \
                nodes[sigmoid['inputs'][0][0]]['op'] == 'FullyConnected':
            found.append(index)
    return found


def ancestors(nodes, index):
    seen, stack = set(), [index]
    while stack:
        for source, _, _ in nodes[stack.pop()]['inputs']:
            if source not in seen:
                seen.add(source)
                stack.append(source)
    return seen


@pytest.mark.parametrize('network', INCEPTIONS)
def test_reference_parameter_counts(network):
    """The SE blocks of SE_BLOCKS hold the pinned SE count; the rest is the peer backbone's count
    (timm's inception_v4 / inception_resnet_v2)."""
    counts = trainable_parameters(symbols.get_symbol(network, 1000))
    se_names = ['%s_excitation%d_%s' % (block, fc, kind) for block in SE_BLOCKS[network]
                for fc in (1, 2) for kind in ('weight', 'bias')]
    se_count = sum(counts[name] for name in se_names)
    key = (network, None, '')
    assert se_count == SE_PARAMETER_COUNTS[key]
    assert sum(counts.values()) - se_count == PARAMETER_COUNTS[key] - SE_PARAMETER_COUNTS[key]
    assert sum(counts.values()) == PARAMETER_COUNTS[key]


def test_se_widths_are_c_over_16():
    shapes = argument_shapes(symbols.get_symbol('se-inception-resnet-v2', 1000))
    widths = {block: shapes[block + '_excitation1_weight'] for block in
              ('block35_1', 'block17_1', 'block8_1')}
    assert widths == {'block35_1': (20, 320), 'block17_1': (68, 1088), 'block8_1': (130, 2080)}
    shapes = argument_shapes(symbols.get_symbol('se-inception-v4', 1000))
    assert [shapes[block + '_excitation1_weight'] for block in
            ('inception_a1', 'inception_b1', 'inception_c1')] == [(24, 384), (64, 1024), (96, 1536)]


def textbook_graph(network):
    """Nodes of ``network`` built with the textbook SE formulation (``broadcast_mul(x, gate)``),
    whose first input is the SE input; the default formulation only differs in how it computes
    the same product (tests/test_se_equivalence.py)."""
    with cpu_fast.se_implementation('broadcast'):
        return graph(symbols.get_symbol(network, 1000))


def test_v4_se_on_every_inception_module_only():
    nodes, _ = textbook_graph('se-inception-v4')
    scaled = [nodes[nodes[i]['inputs'][0][0]] for i in se_scales(nodes)]
    assert len(scaled) == 14
    assert all(node['op'] == 'Concat' for node in scaled)
    assert [node['name'] for node in scaled] == [b + '_concat' for b in SE_BLOCKS['se-inception-v4']]
    unscaled = sorted(node['name'] for node in nodes if node['op'] == 'Concat'
                      and node not in scaled)
    assert unscaled == ['mixed_3a_concat', 'mixed_4a_concat', 'mixed_5a_concat',
                        'reduction_a_concat', 'reduction_b_concat']


def test_resnet_v2_se_scales_the_residual_branch_before_the_add():
    nodes, consumers = textbook_graph('se-inception-resnet-v2')
    found = se_scales(nodes)
    assert len(found) == 40
    residual_scales = collections.Counter()
    activated = 0
    for index in found:
        up = nodes[nodes[index]['inputs'][0][0]]
        # The SE input is the linear 1x1 convolution (with bias, no BatchNorm) of the branches.
        assert up['op'] == 'Convolution' and up['attrs']['kernel'] == '(1, 1)'
        assert up['attrs'].get('no_bias', 'False') == 'False'
        assert nodes[up['inputs'][0][0]]['op'] == 'Concat'
        (scaled,) = consumers[index]
        assert nodes[scaled]['op'] == '_mul_scalar'
        residual_scales[float(nodes[scaled]['attrs']['scalar'])] += 1
        (add,) = consumers[scaled]
        assert nodes[add]['op'] == 'elemwise_add'
        (shortcut,) = [source for source, _, _ in nodes[add]['inputs'] if source != scaled]
        # The other summand is the block input itself, which also feeds the branches.
        assert shortcut in ancestors(nodes, index)
        assert shortcut not in found and nodes[shortcut]['op'] in ('Activation', 'Concat')
        (after,) = consumers[add]
        activated += nodes[after]['op'] == 'Activation'
    assert residual_scales == {0.17: 10, 0.1: 20, 0.2: 10}
    assert activated == 39  # the last block8 has no ReLU after its add


@pytest.mark.parametrize('network', INCEPTIONS)
@pytest.mark.parametrize('size,feature_side', [(299, 8), (224, 5), (MIN_SIZE, 1)])
def test_output_and_final_feature_map_shapes(network, size, feature_side):
    sym = symbols.get_symbol(network, 7, image_shape=(3, size, size))
    nodes, _ = graph(sym)
    (pool,) = [node for node in nodes if node['name'] == 'pool1']
    features = nodes[pool['inputs'][0][0]]['name'] + '_output'
    _, (feature_shape,), _ = sym.get_internals()[features].infer_shape(data=(2, 3, size, size))
    assert feature_shape == (2, 1536, feature_side, feature_side)
    assert sym.infer_shape(data=(2, 3, size, size))[1] == [(2, 7)]


@pytest.mark.parametrize('network', INCEPTIONS)
@pytest.mark.parametrize('shape', ['3,74,74', (3, 224, 74), (3, 32, 32)])
def test_too_small_inputs_are_a_clear_error(network, shape):
    with pytest.raises(ValueError, match='at least 75x75'):
        symbols.get_symbol(network, 10, image_shape=shape)


def test_registry_minimum_sizes():
    assert symbols.min_image_size('se-inception-v4') == MIN_SIZE == 75
    assert symbols.min_image_size('se-inception-resnet-v2') == MIN_SIZE
    assert symbols.min_image_size('se-resnext') == 1


def test_names_are_explicit_and_independent_of_build_history():
    def names(network):
        return [node['name'] for node in graph(symbols.get_symbol(network, 10))[0]]
    first = names('se-inception-resnet-v2')
    names('se-inception-v4')
    assert names('se-inception-resnet-v2') == first
    for network in INCEPTIONS:
        for node in graph(symbols.get_symbol(network, 10))[0]:
            if node['op'] != 'null':  # automatic names in a fresh NameManager: <op lower-case>0
                assert node['name'] != node['op'].lower() + '0', node['name']


@pytest.mark.parametrize('network', INCEPTIONS)
def test_real_images_forward_backward_every_parameter_gets_a_gradient(network, fmnist_slice):
    """32x32 Fashion-MNIST records, resized to 75x75 by the trainer's iterator, train the network.

    Batch 4: at 75x75 the last stage is 1x1, so its BatchNorm statistics come from the batch alone;
    with 2 images they are degenerate (each normalised value is +-1) and the gradients below explode.
    """
    batch_size, shape = 4, (3, MIN_SIZE, MIN_SIZE)
    batch = next(iter(data.make_rec_iter(fmnist_slice['train'], shape, batch_size)))
    images = batch.data[0].asnumpy()
    assert images.shape == (batch_size,) + shape and images.max() > 100 and images.std() > 10
    sym = symbols.get_symbol(network, 10, image_shape=shape)
    exe = sym.simple_bind(mx.cpu(), data=images.shape, softmax_label=(batch_size,))
    initializer = mx.init.Xavier(rnd_type='gaussian', factor_type='in', magnitude=2)
    attrs = sym.attr_dict()
    for name, arr in list(exe.arg_dict.items()) + list(exe.aux_dict.items()):
        if name == 'data':
            arr[:] = batch.data[0]
        elif name == 'softmax_label':
            arr[:] = batch.label[0]
        else:
            initializer(mx.init.InitDesc(name, attrs.get(name)), arr)
    exe.forward(is_train=True)
    probabilities = exe.outputs[0].asnumpy()
    assert probabilities.shape == (batch_size, 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1, rtol=1e-5)
    exe.backward()
    assert_every_parameter_has_a_gradient(exe)


def test_trainer_defaults_are_the_originals():
    args = arguments.build_parser(**train_se_inception.PRESETS).parse_args([])
    arguments.resolve_args(args)
    assert args.network == 'se-inception-v4'
    assert (args.batch_size, args.drop_out, args.image_shape) == (384, 0.2, (3, 224, 224))
    assert (args.data_type, args.num_classes) == ('imagenet', 1000)
    assert args.num_epochs == arguments.SCHEDULES['imagenet']['num_epochs']
    assert args.model_prefix.endswith('se-inception-v4-imagenet')  # no depth in the tag


@pytest.mark.parametrize('network', INCEPTIONS)
def test_trains_one_epoch_and_resumes(network, fmnist_slice, tmp_path):
    prefix, log = tmp_path / 'model' / 'net', tmp_path / 'log' / 'net.log'
    args = ['--network', network, '--data-type', 'custom', '--data-train', fmnist_slice['train'],
            '--num-classes', '10', '--image-shape', '3,%d,%d' % (MIN_SIZE, MIN_SIZE),
            '--batch-size', '8', '--num-examples', '16', '--aug-level', '1', '--lr', '0.01',
            '--frequent', '1', '--model-prefix', str(prefix), '--log-file', str(log)]
    assert train_se_inception.main(args + ['--num-epochs', '1']) == 0
    first = log.read_text()
    assert 'Epoch[0] Time cost=' in first
    for name in ('net-symbol.json', 'net-0001.params', 'net-0001.states'):
        assert (tmp_path / 'model' / name).is_file(), name
    sym, arg_params, _ = mx.model.load_checkpoint(str(prefix), 1)
    assert set(arg_params) == set(sym.list_arguments()) - {'data', 'softmax_label'}

    assert train_se_inception.main(args + ['--num-epochs', '2', '--model-load-epoch', '1',
                                           '--retrain']) == 0
    resumed = log.read_text()[len(first):]
    assert 'resumed from epoch 1' in resumed
    assert 'Epoch[1] Time cost=' in resumed and 'Epoch[0]' not in resumed
    losses = [float(v) for v in re.findall(r'Epoch\[\d\] Train-cross-entropy=([0-9.]+)', resumed)]
    assert len(losses) == 1 and np.isfinite(losses[0])
    _, after, _ = mx.model.load_checkpoint(str(prefix), 2)
    moved = np.abs(after['fc1_weight'].asnumpy() - arg_params['fc1_weight'].asnumpy()).max()
    assert moved > 0  # epoch 2 updated the parameters loaded from epoch 1


@pytest.mark.parametrize('network,data_type,shape', [
    ('se-inception-v4', 'fashion-mnist', (3, 75, 75)),
    ('se-inception-resnet-v2', 'cifar10', (3, 75, 75)),
    ('se-inception-v4', 'imagenet', (3, 224, 224))])
def test_small_image_data_is_resized_to_the_network_minimum(network, data_type, shape):
    parser = arguments.build_parser(networks=train_se_inception.NETWORKS, **train_se_inception.PRESETS)
    args = parser.parse_args(['--network', network, '--data-type', data_type])
    assert arguments.resolve_args(args).image_shape == shape


def test_small_images_stay_small_for_se_resnext():
    args = arguments.build_parser(network='se-resnext').parse_args(['--data-type', 'fashion-mnist'])
    assert arguments.resolve_args(args).image_shape == (3, 32, 32)


def test_inception_trainer_offers_only_inceptions():
    parser = arguments.build_parser(networks=train_se_inception.NETWORKS, **train_se_inception.PRESETS)
    with pytest.raises(SystemExit):
        parser.parse_args(['--network', 'se-resnext'])


def test_fashion_mnist_records_train_without_an_image_shape(fmnist_slice, tmp_path):
    log = tmp_path / 'net.log'
    assert train_se_inception.main([
        '--network', 'se-inception-v4', '--data-type', 'fashion-mnist',
        '--data-train', fmnist_slice['train'], '--num-examples', '16', '--batch-size', '8',
        '--num-epochs', '1', '--model-prefix', str(tmp_path / 'net'), '--log-file', str(log)]) == 0
    assert "'image_shape': (3, 75, 75)" in log.read_text()
