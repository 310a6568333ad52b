"""ONNX export of every network family, run by onnxruntime on real Fashion-MNIST images.

Each family is exported in a small configuration (a small-image depth, or the smallest input an
Inception accepts) with random weights whose BatchNorm statistics are measured on the images, and
onnxruntime's probabilities must match MXNet's within 1e-4. A trained SE-ResNeXt goes through
``export_onnx.py`` itself in tests/test_inference.py.
"""
import cv2
import mxnet as mx
import numpy as np
import onnxruntime
import pytest

import data
import export_onnx
import symbols
from senet import inference

NUM_IMAGES = 6
NUM_CLASSES = 10

SMALL_CONFIGS = {
    'se-resnext': [dict(num_layers=11, num_group=2, image_shape=(3, 32, 32))],
    'se-resnet': [dict(num_layers=11, version=1, image_shape=(3, 32, 32)),
                  dict(num_layers=11, version=2, image_shape=(3, 32, 32))],
    'senet-154': [dict(image_shape=(3, 32, 32))],
    'se-inception-v4': [dict(image_shape=(3, 75, 75))],
    'se-inception-resnet-v2': [dict(image_shape=(3, 75, 75))],
}
"""Per registry network, the configurations exported (fixed-depth networks at their smallest input)."""

CASES = [(network, config) for network in sorted(SMALL_CONFIGS) if network in symbols.NETWORKS
         for config in SMALL_CONFIGS[network]]

BN_OFFSET = 0.5
"""BatchNorm beta of the random networks: most ReLUs pass, so the network is not chaotic."""

WEIGHT_POOL = 1_000_003
"""Random weights are windows of one pool of normal samples (a prime length): generating 115 M
independent samples for SENet-154 would take longer than the rest of its test."""


def test_every_network_has_a_small_configuration():
    assert set(symbols.NETWORKS) <= set(SMALL_CONFIGS)


def fashion_mnist_images(side):
    """The first test images as (N, 3, side, side) raw pixels, resized like the trainers do."""
    images, _ = data.load_fashion_mnist('val')
    rgb = data.to_rgb32(images[:NUM_IMAGES])
    if side != rgb.shape[1]:
        rgb = np.stack([cv2.resize(image, (side, side), interpolation=cv2.INTER_LINEAR)
                        for image in rgb])
    return rgb.transpose(0, 3, 1, 2).astype(np.float32)


def calibrated_params(symbol, images):
    """Random weights, and BatchNorm statistics measured on ``images`` (one training-mode pass).

    At initialisation a deep BatchNorm-ReLU network is chaotic: it amplifies float32 rounding
    (1e-7) to 1e-3 and more, which no exporter could match. Positive offsets (BN_OFFSET) and
    variances floored at their layer's median make it tame while its outputs still depend on the
    image; the test checks that they do.
    """
    # Gradients of the BatchNorm scales only: enough for the backward pass to run everywhere.
    grad_req = {name: 'write' if name.endswith('_gamma') else 'null'
                for name in symbol.list_arguments()}
    executor = symbol.simple_bind(mx.cpu(), data=images.shape, grad_req=grad_req)
    rng = np.random.default_rng(0)
    pool = rng.standard_normal(WEIGHT_POOL).astype(np.float32)
    for name, array in executor.arg_dict.items():
        if name.endswith('_weight'):
            fan_in = int(np.prod(array.shape[1:]))
            start = int(rng.integers(WEIGHT_POOL))
            window = np.resize(np.roll(pool, -start), array.shape)
            array[:] = window * np.float32(np.sqrt(2.0 / fan_in))
        elif name.endswith('_gamma'):
            array[:] = 1.0
        elif name.endswith('_beta'):
            array[:] = BN_OFFSET
        elif name.endswith('_bias'):
            array[:] = rng.uniform(-0.1, 0.1, array.shape)
    executor.arg_dict['data'][:] = images
    executor.forward(is_train=True)
    executor.backward()  # MXNet's BatchNorm updates its moving statistics in the backward pass
    mx.nd.waitall()
    arg_params = {name: array.copy() for name, array in executor.arg_dict.items()
                  if name not in ('data', 'softmax_label')}
    aux_params = {}
    for name, array in executor.aux_dict.items():
        value = array.asnumpy()
        if name.endswith('_moving_var'):
            value = np.maximum(value, np.median(value))
        aux_params[name] = mx.nd.array(value)
    return arg_params, aux_params


def onnx_probabilities(path, images):
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    session = onnxruntime.InferenceSession(path, options, providers=['CPUExecutionProvider'])
    assert [value.name for value in session.get_inputs()] == ['data']
    return session.run(['softmax'], {'data': images})[0]


def mxnet_probabilities(symbol, arg_params, aux_params, images):
    mod = inference.inference_module(symbol, arg_params, aux_params, images.shape)
    mod.forward(mx.io.DataBatch([mx.nd.array(images)]), is_train=False)
    return mod.get_outputs()[0].asnumpy()


def case_id(case):
    network, config = case
    return '-'.join([network] + ['%s%s' % (key.split('_')[-1], value[1] if key == 'image_shape'
                                           else value) for key, value in config.items()])


@pytest.mark.parametrize('network,config', CASES, ids=[case_id(case) for case in CASES])
def test_onnxruntime_matches_mxnet(network, config, tmp_path):
    image_shape = config['image_shape']
    images = fashion_mnist_images(image_shape[1])
    symbol = symbols.get_symbol(network, NUM_CLASSES, bn_mom=0.0, **config)
    arg_params, aux_params = calibrated_params(symbol, images)
    path = export_onnx.export(symbol, arg_params, aux_params, image_shape,
                              str(tmp_path / 'net.onnx'))
    expected = mxnet_probabilities(symbol, arg_params, aux_params, images)
    got = onnx_probabilities(path, images)
    assert got.shape == (NUM_IMAGES, NUM_CLASSES)
    assert np.ptp(expected, axis=0).max() > 0.02, 'outputs do not depend on the image'
    assert np.abs(got - expected).max() <= 1e-4
