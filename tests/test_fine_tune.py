"""fine-tune.py --model DIR from a converted ImageNet model, on a slice of the real Fashion-MNIST.

No weights can be downloaded here: timm's ``seresnet50`` gets random weights and BatchNorm
statistics (as in tests/test_convert_weights.py), is saved as timm publishes it and converted with
convert_weights.py. Fine-tuning then starts from that directory at 32x32, far below the 224x224 the
graph was converted for: the graph ends in global pooling, so only the feature maps shrink.
"""
import argparse
import os
import re
import runpy

import mxnet as mx
import numpy as np
import pytest

from senet import arguments, inference
from tests.conftest import ROOT
from tests.test_convert_weights import TimmSource, convert

SOURCE_MODEL = 'seresnet50'
"""timm's SE-ResNet-50: of the converted networks the fastest to train on the CPU (no grouped
convolutions)."""
CLASSIFIER = ('fc1_weight', 'fc1_bias')
IMAGE_SHAPE = '3,32,32'
BATCH_SIZE = 32
EXAMPLES = 384
EPOCHS = 3
"""3 epochs of 384 of the slice's images in batches of 32: 36 batches."""
LR = 0.001
"""docs/imagenet.md's fine-tuning rate (with NAG's momentum 0.9)."""


def fine_tune_module():
    return runpy.run_path(os.path.join(ROOT, 'fine-tune.py'), run_name='fine_tune')


@pytest.fixture(scope='module')
def converted(tmp_path_factory):
    """A converted directory of timm seresnet50 with random weights."""
    directory = tmp_path_factory.mktemp('fine-tune-source')
    source = TimmSource(SOURCE_MODEL, str(directory), seed=4)
    output = convert('timm', SOURCE_MODEL, source.checkpoint, str(directory / 'seresnet50-timm'))
    os.remove(source.checkpoint)
    return output


def converted_params(model_dir):
    card = inference.read_card(model_dir)
    _, arg_params, aux_params = inference.load_checkpoint(inference.card_prefix(model_dir, card),
                                                          card['epoch'])
    return card, arg_params, aux_params


def test_every_layer_but_fc1_starts_from_the_converted_weights(converted):
    card, arg_params, aux_params = converted_params(converted)
    assert card['input']['image_shape'] == [3, 224, 224]
    args = argparse.Namespace(model=converted, pretrained_prefix=None, pretrained_epoch=None,
                              num_classes=10, image_shape=(3, 32, 32))
    prepared = fine_tune_module()['prepare'](args)
    network = prepared['symbol']
    shapes = dict(zip(network.list_arguments(), network.infer_shape(data=(1, 3, 32, 32))[0]))
    assert shapes['fc1_weight'] == (10, 2048) and shapes['fc1_bias'] == (10,)
    trained = set(network.list_arguments()) - {'data', 'softmax_label'}
    assert sorted(prepared['arg_params']) == sorted(trained - set(CLASSIFIER))
    assert sorted(prepared['arg_params']) == sorted(set(arg_params) - set(CLASSIFIER))
    for name, value in prepared['arg_params'].items():
        assert (value.asnumpy() == arg_params[name].asnumpy()).all(), name
    assert sorted(prepared['aux_params']) == sorted(network.list_auxiliary_states())
    for name, value in prepared['aux_params'].items():
        assert (value.asnumpy() == aux_params[name].asnumpy()).all(), name


def cosine(first, second):
    first, second = first.ravel().astype(np.float64), second.ravel().astype(np.float64)
    return first @ second / (np.linalg.norm(first) * np.linalg.norm(second))


def test_fine_tune_from_a_converted_directory(converted, fmnist_slice, tmp_path, capsys):
    """36 batches at 32x32: the training loss falls, and every fine-tuned weight is the converted
    one moved, not a re-initialised one (whose cosine with it would be about 0)."""
    prefix = str(tmp_path / 'model' / 'fine-tune')
    log = str(tmp_path / 'fine-tune.log')
    code = fine_tune_module()['main']([
        '--model', converted, '--data-train', fmnist_slice['train'], '--num-classes', '10',
        '--num-examples', str(EXAMPLES), '--image-shape', IMAGE_SHAPE, '--batch-size',
        str(BATCH_SIZE), '--num-epochs', str(EPOCHS), '--lr', str(LR), '--lr-step-epochs',
        str(EPOCHS + 1), '--aug-level', '1', '--model-prefix', prefix, '--log-file', log])
    assert code == 0, capsys.readouterr().err
    with open(log) as stream:
        text = stream.read()
    assert 'fine-tuning at 32x32; the pretrained model took 224x224' in text
    losses = [float(value) for value in re.findall(r'Train-cross-entropy=([0-9.]+)', text)]
    print('training cross-entropy per epoch:', losses)
    assert len(losses) == EPOCHS and losses[-1] < 0.75 * losses[0], losses

    _, before, _ = converted_params(converted)
    _, after, _ = mx.model.load_checkpoint(prefix, EPOCHS)
    assert after['fc1_weight'].shape == (10, 2048) and sorted(after) == sorted(before)
    similarity = {name: cosine(before[name].asnumpy(), after[name].asnumpy())
                  for name in before if name.endswith('_weight') and name not in CLASSIFIER}
    print('cosine of fine-tuned and converted weights: min %.3f (%s), median %.3f' % (
        min(similarity.values()), min(similarity, key=similarity.get),
        np.median(list(similarity.values()))))
    assert min(similarity.values()) > 0.2 and np.median(list(similarity.values())) > 0.95


@pytest.mark.parametrize('flags,fragment', [
    ([], 'give either --model DIR'),
    (['--model', 'MODEL', '--pretrained-prefix', 'model/x', '--pretrained-epoch', '1'],
     'give either --model DIR'),
    (['--pretrained-prefix', 'model/x'], '--pretrained-prefix and --pretrained-epoch go together'),
    (['--model', 'nowhere'], '--model nowhere has no card.json'),
    (['--model', 'MODEL', '--image-shape', '1,32,32'],
     '--image-shape 1,32,32: the pretrained network takes 3-channel images'),
])
def test_one_line_errors(flags, fragment, converted, fmnist_slice, tmp_path, capsys):
    flags = [converted if flag == 'MODEL' else flag for flag in flags]
    if '--image-shape' not in flags:
        flags += ['--image-shape', IMAGE_SHAPE]
    code = fine_tune_module()['main'](flags + [
        '--data-train', fmnist_slice['train'], '--num-classes', '10',
        '--model-prefix', str(tmp_path / 'model' / 'x'), '--log-file', str(tmp_path / 'x.log')])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert ': error: ' in err and fragment in err, err


def test_too_small_images_name_the_smallest_size(tmp_path):
    """SENet-154's stem max-pool (3x3, no padding) needs 5x5 inputs; its converted graph at 4x4 is
    refused before anything trains."""
    import symbols
    with symbols.textbook_graph():
        symbol = symbols.get_symbol('senet-154', 1000, image_shape=(3, 224, 224))
    module = fine_tune_module()
    network = module['replace_classifier'](symbol, 10)
    assert module['smallest_side'](network, 3) == 5
    with pytest.raises(arguments.UsageError, match=r'--image-shape 3,4,4 is too small for the '
                                                    r'pretrained graph \(its layer pool0 refuses '
                                                    r'it\); it takes 5x5 and larger'):
        module['check_input_shape'](network, {}, (3, 4, 4))


def test_export_onnx_of_a_converted_directory(converted, tmp_path):
    """export_onnx.py --model DIR on the converted directory: onnxruntime's probabilities at the
    card's 224x224 equal MXNet's."""
    import onnxruntime
    path = str(tmp_path / 'seresnet50.onnx')
    code = runpy.run_path(os.path.join(ROOT, 'export_onnx.py'), run_name='export_onnx')['main'](
        ['--model', converted, '--output', path])
    assert code == 0
    images = np.random.RandomState(5).uniform(0, 255, (2, 3, 224, 224)).astype(np.float32)
    session = onnxruntime.InferenceSession(path, providers=['CPUExecutionProvider'])
    got = session.run(['softmax'], {'data': images})[0]
    _, arg_params, aux_params = converted_params(converted)
    symbol, _, _ = mx.model.load_checkpoint(os.path.join(converted, 'seresnet50-timm'), 0)
    mod = inference.inference_module(symbol, arg_params, aux_params, images.shape)
    mod.forward(mx.io.DataBatch([mx.nd.array(images)]), is_train=False)
    expected = mod.get_outputs()[0].asnumpy()
    assert got.shape == (2, 1000) and np.abs(got - expected).max() <= 1e-4
