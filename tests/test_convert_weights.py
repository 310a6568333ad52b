"""convert_weights.py: every supported GluonCV and timm model converts to a graph with the source's logits.

No weights can be downloaded here, so the sources' own model definitions (timm on PyTorch, GluonCV
on MXNet) get random, non-trivial weights, BatchNorm statistics, gamma and beta included, and are saved
the way the sources publish them. The converted directory is loaded with senet.inference and fed
raw 0-255 RGB pixels; the source model gets the same images normalised its way.
"""
import ctypes
import ctypes.util
import dataclasses
import gc
import json
import os
import shutil
import subprocess
import sys
import types

import mxnet as mx
import numpy as np
import pytest

import convert_weights
import data
from benchmarks.bench import import_gluoncv
from senet import inference, weights
from tests.conftest import ROOT, run_script

SIZE = 224
BATCH = 2
GAMMA = (0.5, 1.5)
LAST_GAMMA = (0.05, 0.15)
"""Ranges of the random BatchNorm gammas of timm models: every BatchNorm's, and here that of the
last BatchNorm of a bottleneck's branch (``bn3``, see TimmSource)."""
RTOL = 1e-5
"""Logits agree within RTOL relative, with an absolute floor of RTOL times the largest |logit|."""

SUPPORTED = [(model.source, model.name) for model in weights.source_models(supported=True)]
UNSUPPORTED = [(model.source, model.name) for model in weights.source_models(supported=False)]


def import_timm():
    """timm, with the CPU torch. PyPI's torchvision cannot register its compiled operators beside
    this torch ("operator torchvision::nms does not exist"); timm imports torchvision, which skips
    the registration when these two modules exist."""
    for name in ('torchvision._meta_registrations', 'torchvision._autograd_registrations'):
        sys.modules.setdefault(name, types.ModuleType(name))
    import timm
    return timm


def import_gluoncv_model_zoo():
    """gluoncv.model_zoo, imported as the benchmark does (GluonCV refuses to import beside torch)."""
    return import_gluoncv().model_zoo


def random_images(seed, size=SIZE, count=BATCH):
    """(count, size, size, 3) uint8 RGB noise."""
    return np.random.RandomState(seed).randint(0, 256, size=(count, size, size, 3), dtype=np.uint8)


def normalised(images):
    """The sources' input: (N, 3, H, W) float32 ``(x / 255 - mean) / std``."""
    pixels = images.transpose(0, 3, 1, 2).astype(np.float32) / np.float32(255)
    mean = np.asarray(weights.IMAGENET_MEAN, np.float32).reshape(1, 3, 1, 1)
    std = np.asarray(weights.IMAGENET_STD, np.float32).reshape(1, 3, 1, 1)
    return (pixels - mean) / std


class TimmSource:
    """A timm model with random weights, saved as timm publishes it (state dict in safetensors).

    ``last_gamma`` is the range of the gammas of the last BatchNorm of a bottleneck's branch
    (``bn3``, which timm initialises to zero). The tests here give it small ones (LAST_GAMMA), so
    that each unit adds a small change to its input: with gammas of order one, the random
    SE-ResNets of depth 101 and 152 are chaotic (measured: legacy_seresnet152's logits of 2e4
    differ by 50 % between two float32 implementations of the same function; 5e-7 with
    LAST_GAMMA).
    """

    def __init__(self, name, directory, seed=0, last_gamma=GAMMA):
        import torch
        timm = import_timm()
        torch.manual_seed(seed)
        self.model = timm.create_model(name, pretrained=False)
        last = {module.bn3 for module in self.model.modules() if hasattr(module, 'bn3')}
        with torch.no_grad():
            for module in self.model.modules():
                if isinstance(module, torch.nn.BatchNorm2d):
                    module.weight.uniform_(*(last_gamma if module in last else GAMMA))
                    module.bias.normal_(0, 0.2)
                    module.running_mean.normal_(0, 0.2)
                    module.running_var.uniform_(0.5, 2.0)
                elif isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)) and \
                        module.bias is not None:
                    module.bias.normal_(0, 0.2)
        self.model.eval()
        self.checkpoint = os.path.join(directory, name + '.safetensors')
        self.save(self.checkpoint)

    def save(self, path, wrap=False):
        import torch
        from safetensors.torch import save_file
        state = self.model.state_dict()
        if path.endswith('.safetensors'):
            save_file({key: value.contiguous() for key, value in state.items()}, path)
        else:
            torch.save(dict(state_dict=state, epoch=3) if wrap else state, path)

    def logits(self, images):
        import torch
        with torch.no_grad():
            return self.model(torch.from_numpy(normalised(images))).numpy()


class GluonSource:
    """A GluonCV model with random weights, initialised, run once and saved with save_parameters
    (structural names, as the model zoo files and ``load_parameters`` use)."""

    def __init__(self, name, directory, seed=0):
        model_zoo = import_gluoncv_model_zoo()
        mx.random.seed(seed)
        rng = np.random.RandomState(seed)
        self.net = model_zoo.get_model(name, pretrained=False)
        # He initialisation over the fan-out, as timm initialises: activations stay of order one.
        # Over the fan-in (large weights in the 4-channel groups) the random network is chaotic:
        # float32 rounding differences doubled with every unit of stage 3 (measured: logits of
        # 3e4, 50 % apart after SE-ResNeXt-101).
        self.net.initialize(mx.init.Xavier(rnd_type='gaussian', factor_type='out', magnitude=2))
        self.net(mx.nd.zeros((1, 3, SIZE, SIZE)))

        def randomise(block):
            def fill(param, values):
                param.set_data(mx.nd.array(values.astype(np.float32)))
            if isinstance(block, mx.gluon.nn.BatchNorm):
                channels = block.gamma.shape[0]
                fill(block.gamma, rng.uniform(0.5, 1.5, channels))  # GluonCV zero-inits the last
                fill(block.beta, rng.normal(0, 0.2, channels))
                fill(block.running_mean, rng.normal(0, 0.2, channels))
                fill(block.running_var, rng.uniform(0.5, 2.0, channels))
            elif isinstance(block, (mx.gluon.nn.Conv2D, mx.gluon.nn.Dense)) and \
                    block.bias is not None:
                fill(block.bias, rng.normal(0, 0.2, block.bias.shape))
        self.net.apply(randomise)
        self.checkpoint = os.path.join(directory, name + '.params')
        self.net.save_parameters(self.checkpoint)

    def save_legacy(self, path):
        """The older naming, also read by ``load_parameters``: automatic names without the
        network's prefix (``stage1_conv0_weight``)."""
        self.net.collect_params().save(path, strip_prefix=self.net.prefix)

    def logits(self, images):
        return self.net(mx.nd.array(normalised(images))).asnumpy()


def make_source(source, name, directory, seed=0):
    if source == 'gluoncv':
        return GluonSource(name, directory, seed)
    return TimmSource(name, directory, seed, last_gamma=LAST_GAMMA)


def convert(source, name, checkpoint, output):
    assert convert_weights.main(['--source', source, '--model', name, '--checkpoint', checkpoint,
                                 '--output', output]) == 0
    return output


def load(model_dir):
    card = inference.read_card(model_dir)
    return card, inference.load_checkpoint(inference.card_prefix(model_dir, card), card['epoch'])


def our_logits(model_dir, images):
    """fc1's output of the converted graph on raw 0-255 pixels, and its softmax as bound by
    senet.inference.inference_module."""
    _, (symbol, arg_params, aux_params) = load(model_dir)
    shape = (len(images), 3) + images.shape[1:3]
    probabilities = inference.inference_module(symbol, arg_params, aux_params, shape)
    probabilities.forward(pixel_batch(images), is_train=False)
    softmax_output = probabilities.get_outputs()[0].asnumpy()  # before fc1_output reuses its memory
    return (fc1_output(symbol, arg_params, aux_params, images, shared_module=probabilities),
            softmax_output)


def pixel_batch(images):
    return mx.io.DataBatch([mx.nd.array(images.transpose(0, 3, 1, 2).astype(np.float32))])


def fc1_output(symbol, arg_params, aux_params, images, shared_module=None):
    """fc1's output of ``symbol`` on raw 0-255 pixels, with these parameters (NDArrays) or those
    of ``shared_module``, a module of the same graph already bound (its memory is reused)."""
    logits = mx.mod.Module(symbol.get_internals()['fc1_output'], label_names=None,
                           context=mx.cpu())
    logits.bind(data_shapes=[('data', (len(images), 3) + images.shape[1:3])], for_training=False,
                shared_module=shared_module)
    if shared_module is None:
        logits.set_params(arg_params, aux_params, allow_missing=False, allow_extra=False)
    logits.forward(pixel_batch(images), is_train=False)
    return logits.get_outputs()[0].asnumpy()


LIBC = ctypes.CDLL(ctypes.util.find_library('c'))


@pytest.fixture(autouse=True)
def release_memory():
    """Give the memory of a test's models back to the system: glibc keeps the freed heap of
    MXNet's and numpy's arrays (measured: 2.8 of 3.4 GB after converting and running senet154),
    so the tests' peak would grow with every model."""
    yield
    gc.collect()
    if hasattr(LIBC, 'malloc_trim'):
        LIBC.malloc_trim(0)


def assert_same_logits(ours, theirs, what):
    """Logits within RTOL; prints the largest difference relative to the largest |logit|."""
    scale = np.abs(theirs).max()
    print('%s: max |ours - theirs| / max |theirs| = %.2e (max |logit| %.3g)'
          % (what, np.abs(ours - theirs).max() / scale, scale))
    np.testing.assert_allclose(ours, theirs, rtol=RTOL, atol=RTOL * scale)


def softmax(logits):
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


KEPT = (('timm', 'seresnext50_32x4d'), ('timm', 'seresnet50'), ('timm', 'legacy_seresnet50'))
"""Sources that several tests use, built once."""
_KEPT = {}


def kept_source(source, name, tmp_path_factory):
    if (source, name) not in _KEPT:
        directory = str(tmp_path_factory.mktemp('%s-%s' % (source, name)))
        _KEPT[source, name] = make_source(source, name, directory, seed=1)
    return _KEPT[source, name]


@pytest.fixture(scope='module')
def timm_seresnet50(tmp_path_factory):
    return kept_source('timm', 'seresnet50', tmp_path_factory)


@pytest.fixture(scope='module')
def timm_seresnext50_dir(tmp_path_factory):
    """(TimmSource, converted model directory) of timm seresnext50_32x4d."""
    source = kept_source('timm', 'seresnext50_32x4d', tmp_path_factory)
    output = str(tmp_path_factory.mktemp('converted') / 'seresnext50_32x4d-timm')
    return source, convert('timm', 'seresnext50_32x4d', source.checkpoint, output)


# ------------------------------------------------------------------------------------------------
# The table.

def test_table_covers_the_issue_list():
    names = {(model.source, model.name) for model in weights.SOURCE_MODELS}
    for source, name in [('gluoncv', 'se_resnext50_32x4d'), ('gluoncv', 'se_resnext101_32x4d'),
                         ('gluoncv', 'se_resnext101_64x4d'), ('gluoncv', 'senet_154'),
                         ('timm', 'seresnext50_32x4d'), ('timm', 'seresnext101_32x4d'),
                         ('timm', 'seresnet50'), ('timm', 'legacy_senet154')] + [
            ('timm', 'legacy_' + arch) for arch in (
                'seresnet18', 'seresnet34', 'seresnet50', 'seresnet101', 'seresnet152',
                'seresnext26_32x4d', 'seresnext50_32x4d', 'seresnext101_32x4d')]:
        assert (source, name) in names
    for model in weights.SOURCE_MODELS:
        assert model.supported == (model.needs is None), model.name
        assert model.supported == bool(model.weights), model.name
        if model.supported:
            assert model.layout in weights.LAYOUTS and model.accuracy and model.licence


def test_timm_facts_match_timm():
    """Tags (the first is timm's default), input size, crop, interpolation, mean, std, licence and
    the deprecated aliases are timm's own; every entry names a timm model."""
    timm = import_timm()
    from timm.models import get_deprecated_models, get_pretrained_cfg
    deprecated = get_deprecated_models()
    for model in weights.source_models('timm'):
        assert timm.is_model(model.name), model.name
        aliases = {alias: target.partition('.')[2] for alias, target in deprecated.items()
                   if target.partition('.')[0] == model.name}
        assert model.aliases == aliases, model.name
        if not model.supported:
            continue
        assert model.weights[0].tag == get_pretrained_cfg(model.name).tag, model.name
        for entry in model.weights:
            cfg = get_pretrained_cfg('%s.%s' % (model.name, entry.tag)).to_dict()
            assert cfg['input_size'] == (3, entry.image_size, entry.image_size)
            assert (cfg['crop_pct'], cfg['interpolation']) == (entry.crop_pct, entry.interpolation)
            assert cfg['mean'] == weights.IMAGENET_MEAN and cfg['std'] == weights.IMAGENET_STD
            assert cfg['license'] == model.licence and cfg['num_classes'] == weights.NUM_CLASSES


def test_synsets_are_the_sources_label_order():
    """The shipped class IDs equal timm's and GluonCV's lists."""
    timm = import_timm()
    import_gluoncv_model_zoo()
    from gluoncv.data.imagenet.classification import ImageNet1kAttr
    synsets = weights.imagenet_synsets()
    info = os.path.join(os.path.dirname(timm.__file__), 'data', '_info', 'imagenet_synsets.txt')
    with open(info) as stream:
        assert synsets == stream.read().split()
    assert synsets == ImageNet1kAttr().synset
    assert synsets[0] == 'n01440764' and len(set(synsets)) == 1000


def test_lookup():
    model, entry = weights.lookup('timm', 'seresnext50_32x4d')
    assert (model.network, entry.tag) == ('se-resnext', 'racm_in1k')
    assert weights.lookup('timm', 'gluon_seresnext50_32x4d')[1].tag == 'gluon_in1k'
    assert weights.lookup('timm', 'seresnet50.a3_in1k')[1].image_size == 160
    assert weights.resize_shorter('timm', weights.lookup('timm', 'seresnet50.a1_in1k')[1]) == 235
    assert weights.resize_shorter('gluoncv', weights.lookup('gluoncv', 'senet_154')[1]) == 256
    with pytest.raises(weights.WeightsError, match='seresnext50_32x4d.racm_in1k'):
        weights.lookup('timm', 'seresnext50_32x4d.nope')
    assert weights.lookup('timm', 'gluon_senet154')[0].builder == dict(stem_pool='pad')
    with pytest.raises(weights.WeightsError, match='seresnext26tn_32x4d needs a builder option'):
        weights.lookup('timm', 'seresnext26tn_32x4d')


def test_bn_data_computes_the_normalisation():
    params = weights.input_normalisation(2e-5)
    pixels = np.random.RandomState(0).uniform(0, 255, (2, 3, 5, 5))
    ours = ((pixels - params['bn_data_moving_mean'].reshape(1, 3, 1, 1))
            / np.sqrt(params['bn_data_moving_var'].reshape(1, 3, 1, 1) + 2e-5))
    theirs = (pixels / 255 - np.reshape(weights.IMAGENET_MEAN, (1, 3, 1, 1))) \
        / np.reshape(weights.IMAGENET_STD, (1, 3, 1, 1))
    np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-6)


# ------------------------------------------------------------------------------------------------
# Same logits as the source.

@pytest.mark.parametrize('source,name', SUPPORTED)
def test_converted_logits_equal_the_source(source, name, tmp_path, tmp_path_factory):
    kept = (source, name) in KEPT
    origin = (kept_source(source, name, tmp_path_factory) if kept
              else make_source(source, name, str(tmp_path)))
    output = convert(source, name, origin.checkpoint, str(tmp_path / 'converted'))
    images = random_images(seed=2)
    theirs = origin.logits(images)
    ours, probabilities = our_logits(output, images)
    assert_same_logits(ours, theirs, '%s %s' % (source, name))
    np.testing.assert_allclose(probabilities, softmax(theirs), rtol=1e-4, atol=1e-6)
    card = inference.read_card(output)
    model, entry = weights.lookup(source, name)
    assert (card['network'], card['builder']) == (model.network, model.builder)
    assert card['input'] == dict(image_shape=[3, SIZE, SIZE], color='rgb', resize='resize')
    assert card['source']['top1'] == entry.top1 and card['source']['licence'] == model.licence
    assert card['classes'] == weights.imagenet_synsets()
    assert sorted(os.listdir(output)) == sorted(['README.md', inference.CARD_FILE,
                                                 'converted-0000.params', 'converted-symbol.json'])
    saved = mx.nd.load(os.path.join(output, 'converted-0000.params'))
    assert all(key.startswith(('arg:', 'aux:')) for key in saved)
    with open(os.path.join(output, 'converted-symbol.json')) as stream:
        ops = {node['op'] for node in json.load(stream)['nodes']}
    assert 'broadcast_mul' in ops and 'batch_dot' not in ops  # the textbook graph
    if not kept:
        shutil.rmtree(str(tmp_path))


@pytest.mark.parametrize('option', ['stride_in_1x1', 'stem_pool'])
def test_the_builder_options_matter(option, tmp_path_factory):
    """Without one of its builder options legacy_seresnet50's checkpoint still fits se-resnet's
    graph, but the logits are not the source's: the test above tells a missing option."""
    origin = kept_source('timm', 'legacy_seresnet50', tmp_path_factory)
    model, entry = weights.lookup('timm', 'legacy_seresnet50')
    builder = {key: value for key, value in model.builder.items() if key != option}
    symbol, arg_params, aux_params = weights.convert(
        dataclasses.replace(model, builder=builder), entry,
        weights.read_checkpoint('timm', origin.checkpoint))
    images = random_images(seed=2)
    theirs = origin.logits(images)
    ours = fc1_output(symbol, {key: mx.nd.array(value) for key, value in arg_params.items()},
                      {key: mx.nd.array(value) for key, value in aux_params.items()}, images)
    difference = np.abs(ours - theirs).max() / np.abs(theirs).max()
    print('legacy_seresnet50 without %s: max |ours - theirs| / max |theirs| = %.2e'
          % (option, difference))
    assert difference > 100 * RTOL


@pytest.mark.parametrize('name', ['se_resnext50_32x4d', 'senet_154'])
def test_gluoncv_legacy_names_give_the_same_params(name, tmp_path):
    """A GluonCV file with automatic names (``stage1_conv0_weight``) converts like one with
    structural names (``features.4.0.body.0.weight``)."""
    origin = GluonSource(name, str(tmp_path), seed=3)
    legacy = str(tmp_path / 'legacy.params')
    origin.save_legacy(legacy)
    assert not any('.' in key for key in mx.nd.load(legacy))
    structural_dir = convert('gluoncv', name, origin.checkpoint, str(tmp_path / 'structural'))
    legacy_dir = convert('gluoncv', name, legacy, str(tmp_path / 'legacy'))
    _, (_, structural_args, structural_aux) = load(structural_dir)
    _, (_, legacy_args, legacy_aux) = load(legacy_dir)
    for ours, theirs in ((structural_args, legacy_args), (structural_aux, legacy_aux)):
        assert sorted(ours) == sorted(theirs)
        for key in ours:
            np.testing.assert_array_equal(ours[key].asnumpy(), theirs[key].asnumpy(), key)
    shutil.rmtree(str(tmp_path))


def test_pytorch_checkpoint_and_other_weights(timm_seresnet50, tmp_path):
    """A ``.pth`` wrapped as training scripts save it converts like the safetensors file; a tagged
    name takes that weights' input size."""
    pth = str(tmp_path / 'seresnet50.pth')
    timm_seresnet50.save(pth, wrap=True)
    from_pth = convert('timm', 'seresnet50', pth, str(tmp_path / 'pth'))
    images = random_images(seed=4)
    assert_same_logits(our_logits(from_pth, images)[0], timm_seresnet50.logits(images),
                       'timm seresnet50 (.pth)')
    small = convert('timm', 'seresnet50.a3_in1k', timm_seresnet50.checkpoint,
                    str(tmp_path / 'a3'))
    card = inference.read_card(small)
    assert card['input']['image_shape'] == [3, 160, 160]
    assert card['source']['model'] == 'seresnet50.a3_in1k'
    assert card['source']['preprocessing']['resize_shorter'] == 168
    images = random_images(seed=5, size=160)
    assert_same_logits(our_logits(small, images)[0], timm_seresnet50.logits(images),
                       'timm seresnet50 at 160x160')


# ------------------------------------------------------------------------------------------------
# predict.py and score.py on a converted directory.

def test_predict_names_the_source_top_class(timm_seresnext50_dir, tmp_path):
    import cv2
    origin, model_dir = timm_seresnext50_dir
    images = random_images(seed=6)
    paths = []
    for index, image in enumerate(images):
        paths.append(str(tmp_path / ('image%d.png' % index)))
        cv2.imwrite(paths[-1], image[:, :, ::-1])
    result = run_script('predict.py', ['--model', model_dir, '--top-k', '1'] + paths)
    assert result.returncode == 0, result.stderr
    synsets = weights.imagenet_synsets()
    expected = softmax(origin.logits(images))
    lines = result.stdout.strip().splitlines()
    assert len(lines) == len(paths)
    for line, path, probs in zip(lines, paths, expected):
        top = int(np.argmax(probs))
        assert line.startswith('%s: %s (' % (path, synsets[top])), line
        assert float(line.rsplit('(', 1)[1].rstrip(')')) == pytest.approx(probs[top], abs=2e-4)


def test_score_on_a_tiny_rec(timm_seresnext50_dir, tmp_path):
    """Four images labelled with the source model's top class (two of them shifted by one): top-1
    is exactly 0.5."""
    origin, model_dir = timm_seresnext50_dir
    images = random_images(seed=7, count=4)
    labels = np.argmax(origin.logits(images), axis=1)
    labels[2:] = (labels[2:] + 1) % weights.NUM_CLASSES
    rec = data.write_indexed_rec(str(tmp_path / 'val.rec'), images, labels)
    result = run_script('score.py', ['--model', model_dir, '--data-val', rec, '--batch-size', '2'])
    assert result.returncode == 0, result.stderr
    assert 'top-1 0.5000' in result.stdout and '4 images' in result.stdout


# ------------------------------------------------------------------------------------------------
# One-line errors.

def run_failing(args, tmp_path, env=None):
    """Run the converter into tmp_path/out; it fails with one line and leaves nothing behind."""
    output = tmp_path / 'out'
    result = subprocess.run([sys.executable, os.path.join(ROOT, 'convert_weights.py'),
                             '--output', str(output)] + list(args), capture_output=True,
                            text=True, timeout=600, cwd=ROOT, env=env)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert 'Traceback' not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('convert_weights.py: error: '), result.stderr
    assert not output.exists()
    assert not [name for name in os.listdir(str(tmp_path)) if name.startswith('.out.tmp-')]
    return lines[0]


def mutated_checkpoint(origin, tmp_path, change):
    from safetensors.numpy import load_file, save_file
    tensors = load_file(origin.checkpoint)
    change(tensors)
    path = str(tmp_path / 'changed.safetensors')
    save_file(tensors, path)
    return path


def test_checkpoint_of_another_network(timm_seresnet50, tmp_path):
    line = run_failing(['--source', 'timm', '--model', 'seresnext50_32x4d',
                        '--checkpoint', timm_seresnet50.checkpoint], tmp_path)
    assert 'layer1.0.conv1.weight' in line and '(64, 64, 1, 1)' in line
    assert '(128, 64, 1, 1)' in line and 'another network' in line
    line = run_failing(['--source', 'timm', '--model', 'legacy_senet154',
                        '--checkpoint', timm_seresnet50.checkpoint], tmp_path)
    assert 'lacks' in line and 'layer0.conv1.weight' in line


def test_truncated_files(timm_seresnet50, tmp_path):
    truncated = str(tmp_path / 'truncated.safetensors')
    with open(timm_seresnet50.checkpoint, 'rb') as stream:
        head = stream.read(os.path.getsize(timm_seresnet50.checkpoint) // 2)
    with open(truncated, 'wb') as stream:
        stream.write(head)
    line = run_failing(['--source', 'timm', '--model', 'seresnet50', '--checkpoint', truncated],
                       tmp_path)
    assert 'cannot read' in line and 'truncated' in line
    params = str(tmp_path / 'small.params')
    mx.nd.save(params, {'features.0.weight': mx.nd.ones((64, 3, 7, 7))})
    with open(params, 'rb') as stream:
        head = stream.read(os.path.getsize(params) - 100)
    with open(params, 'wb') as stream:
        stream.write(head)
    line = run_failing(['--source', 'gluoncv', '--model', 'se_resnext50_32x4d',
                        '--checkpoint', params], tmp_path)
    assert 'cannot read' in line and 'MXNet .params' in line
    line = run_failing(['--source', 'gluoncv', '--model', 'se_resnext50_32x4d',
                        '--checkpoint', timm_seresnet50.checkpoint], tmp_path)
    assert 'MXNet .params' in line


def test_missing_misshapen_and_extra_tensors(timm_seresnet50, tmp_path):
    def drop(tensors):
        del tensors['layer2.0.se.fc1.bias']
    path = mutated_checkpoint(timm_seresnet50, tmp_path, drop)
    line = run_failing(['--source', 'timm', '--model', 'seresnet50', '--checkpoint', path],
                       tmp_path)
    assert 'lacks 1 of the' in line and 'layer2.0.se.fc1.bias' in line

    def reshape(tensors):
        tensors['fc.weight'] = tensors['fc.weight'][:999]
    path = mutated_checkpoint(timm_seresnet50, tmp_path, reshape)
    line = run_failing(['--source', 'timm', '--model', 'seresnet50', '--checkpoint', path],
                       tmp_path)
    assert 'fc.weight' in line and '(999, 2048)' in line and '(1000, 2048)' in line

    def add(tensors):
        tensors['head.extra.weight'] = np.zeros(3, np.float32)
    path = mutated_checkpoint(timm_seresnet50, tmp_path, add)
    line = run_failing(['--source', 'timm', '--model', 'seresnet50', '--checkpoint', path],
                       tmp_path)
    assert 'head.extra.weight' in line


@pytest.mark.parametrize('source,name', [('timm', 'seresnext77_32x4d'),
                                         ('gluoncv', 'seresnext50_32x4d')])
def test_unknown_model_lists_the_known_ones(source, name, timm_seresnet50, tmp_path):
    line = run_failing(['--source', source, '--model', name, '--checkpoint',
                        timm_seresnet50.checkpoint], tmp_path)
    assert 'unknown %s model' % source in line
    for model in weights.source_models(source):
        assert model.name in line


@pytest.mark.parametrize('source,name', UNSUPPORTED)
def test_unsupported_model_names_the_missing_option(source, name, tmp_path):
    """Refused before the checkpoint is read (here there is none)."""
    line = run_failing(['--source', source, '--model', name, '--checkpoint', 'absent.pth'],
                       tmp_path)
    model = next(m for m in weights.source_models(source) if m.name == name)
    assert '%s %s needs a builder option' % (source, name) in line and model.needs in line


def test_pytorch_checkpoint_without_torch(timm_seresnet50, tmp_path):
    """Where torch is not installed, a .pth gets a one-line error saying so."""
    pth = str(tmp_path / 'seresnet50.pth')
    timm_seresnet50.save(pth)
    shadow = tmp_path / 'no-torch' / 'torch'
    shadow.mkdir(parents=True)
    (shadow / '__init__.py').write_text("raise ImportError('No module named torch')\n")
    env = dict(os.environ, PYTHONPATH=str(shadow.parent))
    line = run_failing(['--source', 'timm', '--model', 'seresnet50', '--checkpoint', pth],
                       tmp_path, env=env)
    assert 'needs torch' in line and '.safetensors' in line
    line = run_failing(['--source', 'timm', '--model', 'seresnet50', '--checkpoint',
                        str(tmp_path / 'absent.safetensors')], tmp_path)
    assert 'does not exist' in line


def test_interrupted_write_leaves_nothing(tmp_path):
    def write_files(directory):
        with open(os.path.join(directory, 'half.params'), 'w') as stream:
            stream.write('half')
        raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        convert_weights.write_directory(str(tmp_path / 'out'), write_files)
    assert os.listdir(str(tmp_path)) == []
