"""The fast SE formulation computes the same outputs and gradients as the textbook one.

``symbols.layers.se_block`` builds either formulation (``symbols.cpu_fast.SE_IMPLS``); these tests
bind both graphs with the same parameters on real Fashion-MNIST images and compare every output and
gradient.
"""
import json
import os
import subprocess
import sys

import mxnet as mx
import numpy as np
import pytest

import data
import symbols
from symbols import cpu_fast, layers
from tests.conftest import ROOT

RTOL = 1e-4
"""Largest accepted max|fast - plain| / max|plain| of any output or gradient."""


def relative_error(fast, plain):
    fast, plain = np.asarray(fast, dtype=np.float64), np.asarray(plain, dtype=np.float64)
    return np.abs(fast - plain).max() / max(np.abs(plain).max(), 1e-30)


@pytest.fixture(scope='module')
def fmnist_batch():
    """The first 64 training images of Fashion-MNIST, NCHW float32 0-255, and their labels."""
    images, labels = data.load_fashion_mnist('train')
    pixels = data.to_rgb32(images[:64]).transpose(0, 3, 1, 2).astype(np.float32)
    return pixels, labels[:64].astype(np.float32)


def build(impl, conv_form='plain-layout', **kwargs):
    """The network with the fast ('fast') or the textbook ('broadcast') SE block and grouped
    convolution (symbols.cpu_fast.SE_IMPLS, GROUPED_CONV_IMPLS); the fast one with its grouped
    convolutions in ``conv_form``, by default the form with plain-layout boundaries, whatever
    this CPU's 'auto' picks."""
    if impl == 'fast':
        with cpu_fast.grouped_conv_implementation(conv_form):
            return symbols.get_symbol('se-resnext', **kwargs)
    with cpu_fast.textbook_graph():
        return symbols.get_symbol('se-resnext', **kwargs)


def random_params(sym, data_shape, seed=0):
    """He-normal weights, non-trivial BatchNorm affine parameters and biases, fixed by ``seed``."""
    shapes, _, _ = sym.infer_shape(data=data_shape)
    rng = np.random.RandomState(seed)
    params = {}
    for name, shape in zip(sym.list_arguments(), shapes):
        if name in ('data', 'softmax_label'):
            continue
        if name.endswith('_weight'):
            params[name] = rng.normal(0, np.sqrt(2.0 / np.prod(shape[1:])), shape)
        elif name.endswith('_gamma'):
            params[name] = rng.uniform(0.5, 1.5, shape)
        else:
            params[name] = rng.normal(0, 0.1, shape)
    return params


def train_step(sym, params, pixels, labels, dtype=np.float32):
    """Outputs, parameter gradients and updated BatchNorm statistics of one training batch."""
    exe = sym.simple_bind(mx.cpu(), data=pixels.shape, softmax_label=labels.shape,
                          type_dict={'data': dtype})
    exe.arg_dict['data'][:] = pixels
    exe.arg_dict['softmax_label'][:] = labels
    for name, value in params.items():
        exe.arg_dict[name][:] = value
    for name, array in exe.aux_dict.items():
        array[:] = 1.0 if name.endswith('_var') else 0.0
    exe.forward(is_train=True)
    exe.backward()
    mx.nd.waitall()
    grads = {name: grad.asnumpy() for name, grad in exe.grad_dict.items()
             if name not in ('data', 'softmax_label')}
    aux = {name: array.asnumpy() for name, array in exe.aux_dict.items()}
    return exe.outputs[0].asnumpy(), grads, aux


def assert_same_training_step(fast, plain, pixels, labels, dtype=np.float32, rtol=RTOL):
    """Every output, gradient and BatchNorm statistic of one training step of ``fast`` within
    ``rtol`` of ``plain``'s, or in float32 within what ``plain`` moves by itself when the batch is
    reordered (the same sums added in another order), whichever is larger: which kernels oneDNN
    picks, and so how a result rounds, depends on the CPU (AVX-512 or AVX2 only)."""
    assert fast.list_arguments() == plain.list_arguments()
    assert fast.list_auxiliary_states() == plain.list_auxiliary_states()
    params = random_params(plain, pixels.shape)
    out_fast, grads_fast, aux_fast = train_step(fast, params, pixels, labels, dtype)
    out_plain, grads_plain, aux_plain = train_step(plain, params, pixels, labels, dtype)
    tolerance = {name: rtol for name in ['output'] + list(grads_plain) + list(aux_plain)}
    if dtype == np.float32:
        order = np.random.RandomState(1).permutation(len(labels))
        out_again, grads_again, aux_again = train_step(plain, params, pixels[order],
                                                       labels[order], dtype)
        again = dict(grads_again, output=out_again, **aux_again)
        before = dict(grads_plain, output=out_plain[order], **aux_plain)
        for name in tolerance:
            tolerance[name] = max(rtol, relative_error(again[name], before[name]))
    assert relative_error(out_fast, out_plain) <= tolerance['output']
    assert sorted(grads_fast) == sorted(grads_plain)
    errors = {name: relative_error(grads_fast[name], grads_plain[name]) / tolerance[name]
              for name in grads_plain}
    worst = max(errors, key=errors.get)
    assert errors[worst] <= 1, (worst, errors[worst] * tolerance[worst], tolerance[worst])
    for name in aux_plain:
        assert relative_error(aux_fast[name], aux_plain[name]) <= tolerance[name], name
    # The gradients are not trivially equal because they are all zero.
    assert np.abs(grads_plain['stage1_unit1_excitation1_weight']).max() > 0


@pytest.mark.parametrize('conv_form', ['plain-layout', 'grouped'])
def test_small_image_network_matches_broadcast(fmnist_batch, conv_form):
    """SE-ResNeXt-29 8x4d (depth 29, 8 groups of 4, 8 and 16 channels: in the 'plain-layout'
    form the first two stages' grouped convolutions sit between plain-layout boundaries) on 64 real
    32x32 images, in float32, in both forms the 'auto' grouped convolution picks from."""
    pixels, labels = fmnist_batch
    kwargs = dict(num_classes=10, num_layers=29, image_shape=(3, 32, 32), num_group=8)
    assert_same_training_step(build('fast', conv_form, **kwargs), build('broadcast', **kwargs),
                              pixels, labels)


def test_narrow_grouped_convolutions_have_plain_layout_boundaries():
    """In the fast graph a grouped convolution reads and feeds a plain-layout ``slice_axis`` where
    its groups are narrower than oneDNN's 16-channel block (SE-ResNeXt-50 32x4d: stages 1 and 2,
    4 and 8 channels a group), and nowhere else; the textbook graph has none, nor has the fast
    graph in the 'grouped' form, and the default 'auto' form is one of the two as this CPU says."""
    def boundaries(sym):
        nodes = json.loads(sym.tojson())['nodes']
        found = {}
        for node in nodes:
            if node['op'] == 'Convolution' and int(node['attrs'].get('num_group', 1)) > 1:
                source = nodes[node['inputs'][0][0]]
                readers = [n for n in nodes if any(nodes[i[0]] is node for i in n['inputs'])]
                found[node['name']] = (source['op'] == 'slice_axis',
                                       [n['op'] for n in readers] == ['slice_axis'])
        return found
    kwargs = dict(num_classes=10, num_layers=50, image_shape=(3, 224, 224), num_group=32)
    fast = boundaries(build('fast', **kwargs))
    assert len(fast) == 16
    for name, (before, after) in fast.items():
        narrow = name.startswith(('stage1_', 'stage2_'))
        assert before == after == narrow, name
    assert not any(any(pair) for pair in boundaries(build('broadcast', **kwargs)).values())
    assert not any(any(pair) for pair in boundaries(build('fast', 'grouped', **kwargs)).values())
    picked = 'plain-layout' if cpu_fast.onednn_uses_avx512() else 'grouped'
    assert build('fast', 'auto', **kwargs).tojson() == build('fast', picked, **kwargs).tojson()


@pytest.mark.parametrize('flags,max_isa,expected', [
    (['fpu', 'avx2', 'avx512f', 'avx512bw'], '', True),
    (['fpu', 'avx2', 'avx512f', 'avx512bw'], 'ALL', True),
    (['fpu', 'avx2', 'avx512f', 'avx512bw'], 'avx512_core_bf16', True),
    (['fpu', 'avx2', 'avx512f', 'avx512bw'], 'AVX2', False),
    (['fpu', 'avx2', 'fma'], '', False),
    (None, '', True),
    (None, 'SSE41', False),
])
def test_avx512_kernels_from_cpu_flags_and_dnnl_max_cpu_isa(flags, max_isa, expected):
    assert cpu_fast.avx512_kernels(flags, max_isa) is expected


@pytest.mark.parametrize('max_isa', [None, 'AVX2'])
def test_onednn_uses_avx512_says_what_onednn_runs(max_isa):
    """In a process (with DNNL_MAX_CPU_ISA as given), onednn_uses_avx512 is True exactly when the
    kernel oneDNN runs for a convolution is an AVX-512 one, as DNNL_VERBOSE names it."""
    code = ('import mxnet as mx\n'
            'from symbols import cpu_fast\n'
            'data, weight = mx.nd.ones((2, 32, 8, 8)), mx.nd.ones((32, 32, 3, 3))\n'
            'mx.nd.Convolution(data, weight, kernel=(3, 3), pad=(1, 1), num_filter=32,\n'
            '                  no_bias=True).wait_to_read()\n'
            'print("avx512:", cpu_fast.onednn_uses_avx512())\n')
    env = dict(os.environ, DNNL_VERBOSE='1')
    env.pop('DNNL_MAX_CPU_ISA', None)
    if max_isa:
        env['DNNL_MAX_CPU_ISA'] = max_isa
    out = subprocess.run([sys.executable, '-c', code], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=120, check=True).stdout.splitlines()
    kernels = [line.split(',')[4] for line in out
               if line.startswith('dnnl_verbose,exec,cpu,convolution,')]
    assert kernels, out
    says = [line for line in out if line.startswith('avx512:')]
    assert says == ['avx512: %s' % any('avx512' in kernel for kernel in kernels)], (says, kernels)
    if max_isa:
        assert says == ['avx512: False']


def test_make_train_network_matches_broadcast_float32(fmnist_batch):
    """SE-ResNeXt-14 (make train; basic units, no groups) in float32: every output and gradient
    within 1e-4 of the textbook graph's."""
    pixels, labels = fmnist_batch
    kwargs = dict(num_classes=10, num_layers=14, image_shape=(3, 32, 32))
    assert_same_training_step(build('fast', **kwargs), build('broadcast', **kwargs), pixels,
                              labels)


def test_imagenet_network_matches_broadcast(fmnist_batch):
    """SE-ResNeXt-50 32x4d on two real images enlarged to 224x224 (every stage's SE shapes).

    In float64: with two images, BatchNorm at 7x7 amplifies float32 rounding so much that either
    formulation's float32 gradients are 10-20 % away from its float64 ones; in float64 both
    formulations agree to ~1e-13.
    """
    pixels, labels = fmnist_batch
    large = np.repeat(np.repeat(pixels[:2], 7, axis=2), 7, axis=3)
    kwargs = dict(num_classes=10, num_layers=50, image_shape=(3, 224, 224), num_group=32)
    assert_same_training_step(build('fast', **kwargs), build('broadcast', **kwargs), large,
                              labels[:2], dtype=np.float64, rtol=1e-9)


@pytest.mark.parametrize('batch,height,width', [(1, 32, 32), (5, 32, 32), (3, 40, 24)])
def test_inference_at_other_batch_and_image_sizes(fmnist_batch, batch, height, width):
    """A graph built for batch 128 and 32x32 (8 groups of 4 in stage 1, between plain-layout
    boundaries) binds for inference, oneDNN-fused, at other batch and image sizes."""
    pixels, _ = fmnist_batch
    images = np.zeros((batch, 3, height, width), dtype=np.float32)
    images[:, :, :min(height, 32), :min(width, 32)] = pixels[:batch, :, :height, :width]
    kwargs = dict(num_classes=10, num_layers=11, image_shape=(3, 32, 32), num_group=8)
    fast, plain = build('fast', **kwargs), build('broadcast', **kwargs)
    params = random_params(plain, (128, 3, 32, 32))
    aux_shapes = plain.infer_shape(data=(1, 3, 32, 32))[2]
    rng = np.random.RandomState(1)
    aux = {name: rng.uniform(0.5, 1.5, shape) if name.endswith('_var')
           else rng.normal(0, 0.1, shape)
           for name, shape in zip(plain.list_auxiliary_states(), aux_shapes)}
    outputs = []
    for sym, dtype in ((fast, np.float32), (plain, np.float32), (fast, np.float64),
                       (plain, np.float64)):
        exe = sym.simple_bind(mx.cpu(), grad_req='null', data=images.shape,
                              softmax_label=(batch,), type_dict={'data': dtype})
        exe.copy_params_from({k: mx.nd.array(v, dtype=dtype) for k, v in params.items()},
                             {k: mx.nd.array(v, dtype=dtype) for k, v in aux.items()})
        exe.arg_dict['data'][:] = images
        exe.forward(is_train=False)
        outputs.append(exe.outputs[0].asnumpy())
    fast32, plain32, fast64, exact = outputs
    assert fast32.shape == (batch, 10)
    assert relative_error(fast64, exact) <= 1e-9
    # In float32 the fast graph is as close to the float64 answer as the textbook graph (oneDNN's
    # kernels, and so the rounding, differ between CPUs).
    assert relative_error(fast32, exact) <= max(RTOL, 2 * relative_error(plain32, exact))


@pytest.mark.parametrize('shape', [(4, 32, 6, 6), (2, 48, 5, 7), (3, 16, 1, 1)])
def test_se_block_gradients_match(shape):
    """Both formulations of one SE block: output and gradients w.r.t. input and parameters."""
    rng = np.random.RandomState(2)
    results = []
    for impl in cpu_fast.SE_IMPLS:
        sym = layers.se_block(mx.sym.Variable('data'), shape[1], 'u', impl=impl)
        exe = sym.simple_bind(mx.cpu(), data=shape)
        values = random_params(sym, shape, seed=3)
        values['data'] = np.random.RandomState(4).normal(0, 1, shape)
        for name, value in values.items():
            exe.arg_dict[name][:] = value
        out_grad = mx.nd.array(rng.normal(0, 1, shape)) if not results else results[0][0]
        exe.forward(is_train=True)
        exe.backward([out_grad])
        results.append((out_grad, exe.outputs[0].asnumpy(),
                        {k: v.asnumpy() for k, v in exe.grad_dict.items()}))
    (_, out_a, grads_a), (_, out_b, grads_b) = results
    assert relative_error(out_a, out_b) <= RTOL
    for name in grads_b:
        assert relative_error(grads_a[name], grads_b[name]) <= RTOL, name


def test_unknown_se_implementation():
    with pytest.raises(ValueError, match='broadcast'):
        layers.se_block(mx.sym.Variable('x'), 16, 'u', impl='magic')
    with pytest.raises(ValueError, match='fast'):
        with cpu_fast.se_implementation('magic'):
            pass


def test_default_is_fast_and_context_restores():
    def op_names(sym):
        return [node['op'] for node in json.loads(sym.tojson())['nodes']]
    x = mx.sym.Variable('x')
    assert 'broadcast_mul' not in op_names(layers.se_block(x, 16, 'u'))
    with cpu_fast.se_implementation('broadcast'):
        assert 'broadcast_mul' in op_names(layers.se_block(x, 16, 'u'))
    assert 'broadcast_mul' not in op_names(layers.se_block(x, 16, 'u'))


@pytest.mark.parametrize('network,kwargs,data_shape', [
    ('se-resnext', dict(num_layers=29, num_group=8, image_shape=(3, 32, 32)), (1, 3, 32, 32)),
    ('se-resnext', dict(num_layers=50), (1, 3, 224, 224)),
    ('se-resnet', dict(num_layers=50, version=2), (1, 3, 224, 224)),
    ('se-inception-resnet-v2', dict(image_shape=(3, 75, 75)), (1, 3, 75, 75)),
])
@pytest.mark.parametrize('conv_form', ['plain-layout', 'grouped'])
def test_training_graph_of_a_textbook_graph_is_the_builders_fast_graph(network, kwargs,
                                                                       data_shape, conv_form):
    """cpu_fast.training_graph turns a checkpoint's textbook graph into exactly the graph the builder
    makes for training in the same grouped-convolution form (the same JSON, so the equivalence
    tests above cover it), and leaves that graph as it is."""
    with cpu_fast.textbook_graph():
        textbook = symbols.get_symbol(network, 10, **kwargs)
    with cpu_fast.grouped_conv_implementation(conv_form):
        fast = symbols.get_symbol(network, 10, **kwargs)
        rewritten = cpu_fast.training_graph(textbook, data_shape)
        again = cpu_fast.training_graph(rewritten, data_shape)
    assert textbook.tojson() != fast.tojson()
    assert rewritten.tojson() == fast.tojson()
    assert again.tojson() == fast.tojson()


def test_training_graph_of_the_original_released_model(fmnist_batch, released_json):
    """The original repository's released SE-ResNeXt-50 graph (64 groups, its own operator names)
    in its training form: no broadcast_mul left, boundaries around the 13 narrow grouped
    convolutions, and the same outputs, gradients and BatchNorm statistics (float64, two real
    images at 64x64)."""
    released = mx.sym.load(released_json)
    with cpu_fast.grouped_conv_implementation('plain-layout'):
        fast = cpu_fast.training_graph(released, (1, 3, 224, 224))
    ops = [node['op'] for node in json.loads(fast.tojson())['nodes']]
    assert 'broadcast_mul' not in ops and ops.count('elemwise_mul') == 16
    assert ops.count('slice_axis') == 2 * 13 + 16
    pixels, labels = fmnist_batch
    large = np.repeat(np.repeat(pixels[:2], 2, axis=2), 2, axis=3)
    assert_same_training_step(fast, released, large, labels[:2], dtype=np.float64, rtol=1e-9)
