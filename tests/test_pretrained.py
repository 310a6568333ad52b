"""pretrained/: the ImageNet symbol files match the builders, and each trained model matches its card."""
import glob
import hashlib
import json
import os

import mxnet as mx
import pytest

import data
from pretrained import make_symbols
from senet import inference
from tests.conftest import ROOT

PRETRAINED = os.path.join(ROOT, 'pretrained')
REGENERATE = 'run `python -m pretrained.make_symbols` after a deliberate change'
MAX_PARAMS_BYTES = 20 * 1000 * 1000
ACCURACY_TOLERANCE = 0.001
"""The measured test accuracy must be within 0.1 percentage points of the card's."""

MODEL_DIRS = sorted(os.path.dirname(path)
                    for path in glob.glob(os.path.join(PRETRAINED, '*', inference.CARD_FILE)))


def test_symbol_files_are_those_of_the_registered_networks():
    committed = sorted(os.path.basename(path)[:-len('-symbol.json')] for path in
                       glob.glob(os.path.join(make_symbols.DIRECTORY, '*-symbol.json')))
    assert committed == sorted(make_symbols.available()), REGENERATE


@pytest.mark.parametrize('name', sorted(make_symbols.available()))
def test_symbol_file_matches_builder(name):
    with open(make_symbols.symbol_path(name)) as stream:
        committed = json.load(stream)
    built = json.loads(make_symbols.symbol_json(name))
    committed_nodes = [(node['op'], node['name'], node.get('attrs', {}), node['inputs'])
                       for node in committed['nodes']]
    built_nodes = [(node['op'], node['name'], node.get('attrs', {}), node['inputs'])
                   for node in built['nodes']]
    for index, (old, new) in enumerate(zip(committed_nodes, built_nodes)):
        assert old == new, 'node %d differs: committed %s, built %s; %s' % (index, old[:2], new[:2],
                                                                           REGENERATE)
    assert len(committed_nodes) == len(built_nodes), REGENERATE
    assert committed == built, REGENERATE
    symbol = mx.sym.load(make_symbols.symbol_path(name))
    assert symbol.list_outputs() == ['softmax_output']


@pytest.fixture(scope='module')
def fashion_mnist_test_rec(tmp_path_factory):
    """All 10,000 Fashion-MNIST test images as an indexed .rec (lossless PNG, 32x32)."""
    images, labels = data.load_fashion_mnist('val')
    path = str(tmp_path_factory.mktemp('fmnist-test') / 'val.rec')
    return data.write_indexed_rec(path, data.to_rgb32(images), labels)


@pytest.mark.parametrize('model_dir', MODEL_DIRS or [None],
                         ids=[os.path.basename(path) for path in MODEL_DIRS] or ['none'])
def test_trained_model_matches_its_card(model_dir, request):
    if model_dir is None:
        pytest.skip('no trained model under pretrained/ yet (a directory with a card.json, '
                    'written by make_model_card.py)')
    test_rec = request.getfixturevalue('fashion_mnist_test_rec')
    card = inference.read_card(model_dir)
    params_path = os.path.join(model_dir, card['params_file'])
    assert os.path.getsize(params_path) <= MAX_PARAMS_BYTES
    with open(params_path, 'rb') as stream:
        assert hashlib.sha256(stream.read()).hexdigest() == card['params_sha256']
    symbol, arg_params, aux_params = mx.model.load_checkpoint(
        inference.card_prefix(model_dir, card), card['epoch'])
    result = inference.score(symbol, arg_params, aux_params, test_rec,
                             card['input']['image_shape'], batch_size=100)
    assert result['images'] == card['test']['images'] == 10000
    assert abs(result['top1'] - card['test']['top1']) <= ACCURACY_TOLERANCE
    assert len(card['classes']) == arg_params['fc1_bias'].shape[0]
    assert os.path.isfile(os.path.join(model_dir, card['training']['log']))
