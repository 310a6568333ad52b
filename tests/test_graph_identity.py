"""The builders' graphs stay byte for byte what they were: a change that moves code must not change
what a checkpoint holds or what training binds.

Each row pins the sha256 of ``Symbol.tojson()`` (10 classes) in the textbook form that checkpoints
hold (``symbols.textbook_graph``) and in the training form with plain-layout boundaries (the
default where oneDNN runs AVX-512 kernels: ``symbols.cpu_fast.GROUPED_CONV_IMPLS``), as the
builders produced them before the code was reorganised into the ``senet`` package and the split
``symbols`` modules. A deliberate change of a graph updates its row here, in the same commit, with
the reason.
"""
import hashlib
import os

import pytest

import symbols
from symbols import cpu_fast
from tests.conftest import ROOT

GRAPHS = [
    ('se-resnext', {'num_layers': 50, 'num_group': 32},
     '525ff68efe5af43d2e2d8a3d189c4217f4910f5e93e449f2d16d798dfece1af5',
     '659d1b13e872e33890961b6394ea3a9ae605ab093dd3fbd31262217a06d27d64'),
    ('se-resnext', {'num_layers': 101, 'num_group': 32},
     'e3efe3ae22cf03eeb45fdc7c29d07ba9097547053ed700197fd4fa6b806f7b6b',
     '141e26ac5b14f2afa32ffffe3cd9dfad3c4d40c84d335884f470284ee5f71637'),
    ('se-resnext', {'num_layers': 18},
     'cd0bcf5b62456d685b3c750e26078a034d42d4d2c691259345434bde8a8568cc',
     'd76bfd96f041a9187af1b0803d81e885eae65683d6771300ba9d4025cdddc128'),
    ('se-resnext', {'num_layers': 34},
     '39bc80609ba96b30538538d1edc11138f12d583c2e29bc066904e8c2636b44e7',
     'd36754d666591a296f1990602e8b3e2d0301ebd0010b9308d1ba5a869195d8ef'),
    ('se-resnext', {'num_layers': 50, 'num_group': 64},
     'c4c8707414f7594f91d15f0be8a1f639cbb186e910bde4d8721020bf42c28643',
     'a159a27937ab5a3577fe890e93219f5e6d3587b7df4fc01d49312452ede9940d'),
    ('se-resnext', {'num_layers': 14, 'image_shape': (3, 28, 28)},
     'b5fbccb5216db29c029ccaf6c9b6fd7ee1cf7b84fe1196f042079a289f5e88e9',
     '4965601759133c22b5e604dda72da56bcde7ded5f8f5dd9df9f694204b9409c6'),
    ('se-resnext', {'num_layers': 14, 'image_shape': (3, 28, 28), 'widen_factor': 2},
     '6f42d824473df32b9eb5afb3837334f549e99e5ee62a2309205332f1d5edebdd',
     '34559829cab69e18211c3bd6c6709312f311ee881467fc007a53bba45488f28f'),
    ('se-resnext', {'num_layers': 29, 'num_group': 8, 'image_shape': (3, 32, 32)},
     '4712a929af4fe11c420f66f192363943dbf2e35cfb6d26a7699b910e10d44622',
     'c8939fb20da1191b76232c5ed90a3dc39917282990fa120446e42fc06f86515a'),
    ('se-resnext', {'num_layers': 11, 'num_group': 2, 'image_shape': (3, 32, 32)},
     '01bbf1d5680ad14cc3beb95ed7516fa5087fa36e477b0bd01f6f3eb33bda92d6',
     '5b51591a143ec43636bb4d3ef4a4913431110f6ca4638b7b941582066677f0ed'),
    ('se-resnet', {'num_layers': 50},
     'dd488f070fe5b48f2c772a6623076e431a66d1377c8aadcd049ae2c27bf8af8d',
     'd178273e901c51e11191d7177a0012417c90ddf9ac4c38460bfa42cec3e6980d'),
    ('se-resnet', {'num_layers': 50, 'version': 2},
     '4230832740d78f454c9cf7387ac601e6e870e3903940836c21b6c50754327dd2',
     '4da0ba647ddc17ecf5a4fc979ebbba65457b575c0c194b0eb5194640ffd290e9'),
    ('se-resnet', {'num_layers': 18},
     'cd0bcf5b62456d685b3c750e26078a034d42d4d2c691259345434bde8a8568cc',
     'd76bfd96f041a9187af1b0803d81e885eae65683d6771300ba9d4025cdddc128'),
    ('se-resnet', {'num_layers': 18, 'version': 2},
     'c399b03511628914d73666016c8009949671b265292ff3546c40669794d25fb0',
     'f9b0fd16f09374db892f2e2b6d630c78453a3152965f2491390641f82007a87c'),
    ('se-resnet', {'num_layers': 20, 'image_shape': (3, 32, 32)},
     '6652f771835080354139655fe7e35eda4d2b39a28c4345d6bfc7d9cb869ac88b',
     'ce6cae6b56acbeaeb33db58a1fa7de168674b238d5410f08b86ed82ce789f374'),
    ('se-resnet', {'num_layers': 20, 'image_shape': (3, 32, 32), 'version': 2},
     '721c054c759f8daee710b5aca3eb45a65d3444063a05875f3c600308b99cea92',
     'c41655bbab4cb1c757ef27fbfc6c19b8ac8cd9dd85bbb6c2c0ac906ef0f58797'),
    ('se-resnet', {'num_layers': 29, 'image_shape': (3, 32, 32), 'version': 2, 'drop_out': 0.3},
     '18263028ee7b708934cf83e600c027adfe6ce06c3e011f7e1c7525a6ef9a1fbf',
     '3b361e6ef70b667fe60748c475ba063669561bc6be82e5626d5f52a95ca71abc'),
    ('senet-154', {},
     '57220de07a9d0cecc7ec36aee624590f6c5e792ca1b22bd1dc9d0a1c2680889b',
     'de14e0d60fa48994a055b95808182036cd4a99f1d44ecdab46d0275b281d3cd1'),
    ('senet-154', {'image_shape': (3, 64, 64)},
     '57220de07a9d0cecc7ec36aee624590f6c5e792ca1b22bd1dc9d0a1c2680889b',
     'de14e0d60fa48994a055b95808182036cd4a99f1d44ecdab46d0275b281d3cd1'),
    ('se-inception-v4', {'image_shape': (3, 299, 299)},
     'e96e35b269832d94f8cdebe995fd8875796c61a5657592ba7b64c5f2a2d0efe4',
     '09f10136c780fdc1f11b7b34c79ef03e31304ef2d908dcec8d3080f5b635a5d6'),
    ('se-inception-v4', {},
     'e96e35b269832d94f8cdebe995fd8875796c61a5657592ba7b64c5f2a2d0efe4',
     '09f10136c780fdc1f11b7b34c79ef03e31304ef2d908dcec8d3080f5b635a5d6'),
    ('se-inception-resnet-v2', {'image_shape': (3, 299, 299)},
     '0bd328e71c52029e8dd4660109698cbe3b513e11f923a14a712fbc57ae761912',
     '0e5716b42f896ecf8bf362da45c6ba0a7de8feb969f1e7039728f74a65657c69'),
    ('se-inception-resnet-v2', {'image_shape': (3, 75, 75)},
     '0bd328e71c52029e8dd4660109698cbe3b513e11f923a14a712fbc57ae761912',
     '0e5716b42f896ecf8bf362da45c6ba0a7de8feb969f1e7039728f74a65657c69'),
]
"""(network, builder arguments, sha256 of the textbook JSON, sha256 of the training-form JSON)."""


def _sha256(symbol):
    return hashlib.sha256(symbol.tojson().encode()).hexdigest()


@pytest.mark.parametrize('network, kwargs, textbook, training', GRAPHS,
                         ids=['%s-%s' % (row[0], '-'.join('%s%s' % item for item in row[1].items()))
                              for row in GRAPHS])
def test_graph_json_is_unchanged(network, kwargs, textbook, training):
    with symbols.textbook_graph():
        assert _sha256(symbols.get_symbol(network, 10, **kwargs)) == textbook
    with cpu_fast.grouped_conv_implementation('plain-layout'):
        assert _sha256(symbols.get_symbol(network, 10, **kwargs)) == training


@pytest.mark.parametrize('network, kwargs, textbook, training', GRAPHS[:1] + GRAPHS[8:9])
def test_training_graph_rewrites_the_textbook_form_into_the_training_form(network, kwargs, textbook,
                                                                          training):
    with symbols.textbook_graph():
        saved = symbols.get_symbol(network, 10, **kwargs)
    shape = (1,) + tuple(kwargs.get('image_shape', (3, 224, 224)))
    with cpu_fast.grouped_conv_implementation('plain-layout'):
        assert _sha256(symbols.training_graph(saved, shape)) == training


@pytest.mark.parametrize('model, widen_factor', [('se-resnext-fashion-mnist-14', 1),
                                                 ('se-resnext-fashion-mnist-14-w2', 2)])
def test_make_train_graph_is_the_shipped_one(model, widen_factor):
    """``make train`` (and ``make train-full``, widened 2x) save the graph their shipped model holds."""
    with symbols.textbook_graph():
        built = symbols.get_symbol('se-resnext', 10, num_layers=14, image_shape=(3, 28, 28),
                                   widen_factor=widen_factor)
    with open(os.path.join(ROOT, 'pretrained', model, model + '-symbol.json')) as stream:
        assert stream.read() == built.tojson()
