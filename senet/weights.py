"""ImageNet weights from GluonCV and timm: which source models this project's builders express, and
how their checkpoints become this project's parameters.

:data:`SOURCE_MODELS` is the one table of source models, read by ``convert_weights.py``, its tests
and the README. A supported entry names the network and builder options whose graph computes the
same function as the source's model definition (stem, max-pool padding and rounding, where the
stride sits, bottleneck widths, SE widths and biases, convolution biases, shortcut form were checked
against GluonCV 0.10's ``model_zoo/resnext.py`` and ``senet.py`` and timm 1.0's ``models/resnet.py``
and ``senet.py``); every other entry says which builder option it needs, and converting it is
refused. Checkpoints are read without the source framework: GluonCV's ``.params`` with
``mx.nd.load``, timm's ``.safetensors`` with ``safetensors.numpy``, PyTorch ``.pth``/``.bin`` with
torch where it is installed.

Two things are folded into the parameters so that the converted graph's logits equal the source's:

* the source's input normalisation ``(x / 255 - mean) / std`` (RGB) goes into ``bn_data``, a
  BatchNorm with ``fix_gamma`` over raw 0-255 pixels: moving mean ``255 * mean``, moving variance
  ``(255 * std) ** 2 - eps``, beta 0;
* BatchNorm epsilons: every BatchNorm's moving variance becomes ``var + eps_source - eps_here``,
  with ``eps_here`` read from the graph (2e-5), so ``var' + eps_here = var + eps_source``.
"""
import dataclasses
import math
import os
import re

import numpy as np

NUM_CLASSES = 1000
"""ImageNet-1k."""

SOURCES = ('gluoncv', 'timm')

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
"""RGB mean and standard deviation of images scaled to [0, 1], as every source here normalises."""

SOURCE_BN_EPS = {'gluoncv': 1e-5, 'timm': 1e-5}
"""BatchNorm epsilon of the sources' layers (Gluon's ``nn.BatchNorm`` and PyTorch's default)."""

SYNSETS_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'imagenet_synsets.txt')
"""The 1,000 ILSVRC 2012 WordNet IDs in label order (sorted), one a line: a copy of timm's
``timm/data/_info/imagenet_synsets.txt``, which equals GluonCV's ``ImageNet1kAttr().synset``."""

GLUONCV_LICENCE = ('Apache-2.0: the licence of the GluonCV repository, which serves the model zoo; '
                   'it states no separate terms for the weights')
GLUONCV_ACCURACY = ('GluonCV model zoo, docs/model_zoo/csv_tables/Classifications/{table}.csv '
                    '(ImageNet val, 224x224 centre crop of the image resized to 256)')
TIMM_ACCURACY = ('timm results/results-imagenet.csv, row {model} at {size}x{size} '
                 '(crop_pct {crop_pct}, {interpolation})')


class WeightsError(Exception):
    """An unknown or unsupported source model, or an unusable checkpoint; the message says which."""


@dataclasses.dataclass(frozen=True)
class Weights:
    """One published set of weights of a source model and how its accuracy was measured.

    ``tag`` is timm's pretrained tag (``racm_in1k``), empty for GluonCV. ``image_size`` is the
    input side the source evaluates at, after resizing the shorter side (see :func:`resize_shorter`)
    and cropping the centre; ``top1``/``top5`` are the source's published ImageNet accuracy (%).
    """
    tag: str
    top1: float
    top5: float
    image_size: int = 224
    crop_pct: float = 0.875
    interpolation: str = 'bilinear'


@dataclasses.dataclass(frozen=True)
class SourceModel:
    """A model of a source framework and what it is here.

    ``network`` and ``builder`` are the registry name and ``get_symbol`` options of the equal graph,
    None for an unsupported model, whose ``needs`` names the builder options it lacks. ``layout``
    says how the checkpoint names its tensors (:data:`LAYOUTS`). ``aliases`` are other names of
    the same weights (timm's deprecated names, ``gluon_*``), each mapped to its weights' tag (empty:
    the default).
    """
    source: str
    name: str
    network: str = None
    builder: dict = dataclasses.field(default_factory=dict)
    layout: str = None
    weights: tuple = ()
    needs: str = None
    aliases: dict = dataclasses.field(default_factory=dict)
    licence: str = 'apache-2.0'
    accuracy: str = ''

    @property
    def supported(self):
        return self.network is not None


_DEEP_STEM = 'a deep stem (three 3x3 convolutions, {widths}) with an average-pool shortcut (avg_down)'
_LEGACY_BASIC = ('SE widths of C // 16 without rounding up to 8 (4 for 64 channels) and the SE '
                 'after the second ReLU of a basic unit')
_LEGACY_SE_RESNET = dict(version=1, stride_in_1x1=True, stem_pool='ceil')
"""The authors' Caffe SE-ResNets: stride on the first 1x1 convolution, stem pool in ceil mode."""

SOURCE_MODELS = (
    # GluonCV 0.10 model zoo: model_zoo/resnext.py (Block with use_se) and senet.py.
    SourceModel('gluoncv', 'se_resnext50_32x4d', 'se-resnext', dict(num_layers=50, num_group=32),
                'gluoncv-resnext', (Weights('', 79.95, 94.93),), licence=GLUONCV_LICENCE,
                accuracy=GLUONCV_ACCURACY.format(table='ResNext')),
    SourceModel('gluoncv', 'se_resnext101_32x4d', 'se-resnext', dict(num_layers=101, num_group=32),
                'gluoncv-resnext', (Weights('', 80.91, 95.39),), licence=GLUONCV_LICENCE,
                accuracy=GLUONCV_ACCURACY.format(table='ResNext')),
    SourceModel('gluoncv', 'se_resnext101_64x4d', 'se-resnext',
                dict(num_layers=101, num_group=64, base_width=4), 'gluoncv-resnext',
                (Weights('', 81.01, 95.32),), licence=GLUONCV_LICENCE,
                accuracy=GLUONCV_ACCURACY.format(table='ResNext')),
    SourceModel('gluoncv', 'senet_154', 'senet-154', {}, 'gluoncv-senet',
                (Weights('', 81.26, 95.51),), licence=GLUONCV_LICENCE,
                accuracy=GLUONCV_ACCURACY.format(table='Others')),
    # timm 1.0: models/resnet.py (ResNet with block_args attn_layer='se').
    SourceModel('timm', 'seresnet50', 'se-resnet', dict(num_layers=50, version=1), 'timm-resnet',
                (Weights('a1_in1k', 80.012, 94.704, crop_pct=0.95, interpolation='bicubic'),
                 Weights('a2_in1k', 80.102, 94.720, crop_pct=0.95, interpolation='bicubic'),
                 Weights('a3_in1k', 75.104, 92.096, image_size=160, crop_pct=0.95,
                         interpolation='bicubic'),
                 Weights('ra2_in1k', 80.260, 95.068, interpolation='bicubic')),
                accuracy=TIMM_ACCURACY),
    SourceModel('timm', 'seresnext50_32x4d', 'se-resnext', dict(num_layers=50, num_group=32),
                'timm-resnet',
                (Weights('racm_in1k', 81.268, 95.624, interpolation='bicubic'),
                 Weights('gluon_in1k', 79.916, 94.816, interpolation='bicubic')),
                aliases={'gluon_seresnext50_32x4d': 'gluon_in1k'}, accuracy=TIMM_ACCURACY),
    SourceModel('timm', 'seresnext101_32x4d', 'se-resnext', dict(num_layers=101, num_group=32),
                'timm-resnet', (Weights('gluon_in1k', 80.886, 95.268, interpolation='bicubic'),),
                aliases={'gluon_seresnext101_32x4d': 'gluon_in1k'}, accuracy=TIMM_ACCURACY),
    SourceModel('timm', 'seresnext101_64x4d', 'se-resnext',
                dict(num_layers=101, num_group=64, base_width=4), 'timm-resnet',
                (Weights('gluon_in1k', 80.884, 95.308, interpolation='bicubic'),),
                aliases={'gluon_seresnext101_64x4d': 'gluon_in1k'}, accuracy=TIMM_ACCURACY),
    SourceModel('timm', 'seresnext101_32x8d', 'se-resnext',
                dict(num_layers=101, num_group=32, base_width=8), 'timm-resnet',
                (Weights('ah_in1k', 83.618, 96.412, crop_pct=0.95, interpolation='bicubic'),),
                accuracy=TIMM_ACCURACY),
    # GluonCV's senet_154 weights on timm's ResNet, whose stem pool pads by 1 and rounds down.
    SourceModel('timm', 'senet154', 'senet-154', dict(stem_pool='pad'), 'timm-resnet',
                (Weights('gluon_in1k', 81.258, 95.358, interpolation='bicubic'),),
                aliases={'gluon_senet154': 'gluon_in1k'}, accuracy=TIMM_ACCURACY),
    SourceModel('timm', 'seresnet152d', needs=_DEEP_STEM.format(widths='32, 32, 64')),
    SourceModel('timm', 'seresnext26d_32x4d', needs=_DEEP_STEM.format(widths='32, 32, 64')),
    SourceModel('timm', 'seresnext26t_32x4d', aliases={'seresnext26tn_32x4d': ''},
                needs=_DEEP_STEM.format(widths='24, 32, 64')),
    SourceModel('timm', 'seresnext101d_32x8d', needs=_DEEP_STEM.format(widths='32, 32, 64')),
    SourceModel('timm', 'seresnextaa101d_32x8d',
                needs=_DEEP_STEM.format(widths='32, 32, 64')
                + ' and anti-aliased strides (3x3 convolutions at stride 1 followed by a 2x2 '
                  'average pool)'),
    # timm 1.0: models/senet.py, Cadene's port of the authors' Caffe models.
    SourceModel('timm', 'legacy_senet154', 'senet-154', {}, 'timm-legacy',
                (Weights('in1k', 81.320, 95.502),), accuracy=TIMM_ACCURACY),
    SourceModel('timm', 'legacy_seresnet18', needs=_LEGACY_BASIC),
    SourceModel('timm', 'legacy_seresnet34', needs=_LEGACY_BASIC),
    SourceModel('timm', 'legacy_seresnet50', 'se-resnet', dict(num_layers=50, **_LEGACY_SE_RESNET),
                'timm-legacy', (Weights('in1k', 77.650, 93.732),), accuracy=TIMM_ACCURACY),
    SourceModel('timm', 'legacy_seresnet101', 'se-resnet',
                dict(num_layers=101, **_LEGACY_SE_RESNET), 'timm-legacy',
                (Weights('in1k', 78.370, 94.264),), accuracy=TIMM_ACCURACY),
    SourceModel('timm', 'legacy_seresnet152', 'se-resnet',
                dict(num_layers=152, **_LEGACY_SE_RESNET), 'timm-legacy',
                (Weights('in1k', 78.662, 94.370),), accuracy=TIMM_ACCURACY),
    SourceModel('timm', 'legacy_seresnext26_32x4d', 'se-resnext',
                dict(num_layers=26, num_group=32, stem_pool='ceil'), 'timm-legacy',
                (Weights('in1k', 77.100, 93.332, interpolation='bicubic'),),
                accuracy=TIMM_ACCURACY),
    SourceModel('timm', 'legacy_seresnext50_32x4d', 'se-resnext',
                dict(num_layers=50, num_group=32, stem_pool='ceil'), 'timm-legacy',
                (Weights('in1k', 79.080, 94.428),), accuracy=TIMM_ACCURACY),
    SourceModel('timm', 'legacy_seresnext101_32x4d', 'se-resnext',
                dict(num_layers=101, num_group=32, stem_pool='ceil'), 'timm-legacy',
                (Weights('in1k', 80.274, 95.032),), accuracy=TIMM_ACCURACY),
)


def source_models(source=None, supported=None):
    """Entries of :data:`SOURCE_MODELS`, of one ``source`` and support status if given."""
    return [model for model in SOURCE_MODELS
            if (source is None or model.source == source)
            and (supported is None or model.supported == supported)]


def known_names(source):
    """Every name ``--model`` accepts for ``source``: models, ``model.tag`` and aliases."""
    names = []
    for model in source_models(source):
        names.append(model.name)
        names.extend('%s.%s' % (model.name, weights.tag) for weights in model.weights
                     if weights.tag)
        names.extend(model.aliases)
    return sorted(names)


def lookup(source, name):
    """(SourceModel, Weights or None) of ``name`` (``arch``, ``arch.tag`` or an alias).

    Without a tag the model's first weights are meant (timm's default tag). Raises WeightsError
    for an unknown name (listing the known ones) and for an unsupported model (naming the builder
    option it needs).
    """
    if source not in SOURCES:
        raise WeightsError('unknown source %r; choose one of: %s' % (source, ', '.join(SOURCES)))
    arch, _, tag = name.partition('.')
    model = next((m for m in source_models(source) if m.name == arch), None)
    if model is None and not tag:
        model = next((m for m in source_models(source) if arch in m.aliases), None)
        tag = model.aliases[arch] if model else ''
    if model is None:
        raise WeightsError('unknown %s model %r; known: %s' % (source, name,
                                                               ', '.join(known_names(source))))
    if not model.supported:
        raise WeightsError('%s %s needs a builder option this project does not have yet: %s'
                           % (source, name, model.needs))
    if not tag:
        return model, model.weights[0]
    weights = next((w for w in model.weights if w.tag == tag), None)
    if weights is None:
        raise WeightsError('unknown %s weights %r; %s has: %s' % (
            source, name, model.name, ', '.join('%s.%s' % (model.name, w.tag) for w in model.weights)))
    return model, weights


def resize_shorter(source, weights):
    """Side the source resizes an image's shorter side to before cropping ``image_size``."""
    ratio = weights.image_size / weights.crop_pct
    # timm: int(math.floor(size / crop_pct)); GluonCV: int(math.ceil(size / crop_ratio)).
    return int(math.ceil(ratio) if source == 'gluoncv' else math.floor(ratio))


def imagenet_synsets():
    """The 1,000 ImageNet class IDs (``n01440764``, ...) in label order."""
    with open(SYNSETS_FILE) as stream:
        synsets = stream.read().split()
    if len(synsets) != NUM_CLASSES:
        raise WeightsError('%s holds %d class IDs, not %d' % (SYNSETS_FILE, len(synsets),
                                                              NUM_CLASSES))
    return synsets


# ---------------------------------------------------------------------------------------------
# Checkpoint layouts: a parameter of this project's graph -> the source tensor it comes from.

UNIT_LAYER = re.compile(r'^stage(\d+)_unit(\d+)_(conv[123]|bn[123]|excitation[12]|sc|sc_bn)$')
"""A layer of a residual unit in this project's graphs (``stage2_unit1_sc_bn``)."""

TORCH_PARAMS = {'weight': 'weight', 'bias': 'bias', 'gamma': 'weight', 'beta': 'bias',
                'moving_mean': 'running_mean', 'moving_var': 'running_var'}
GLUON_PARAMS = {'weight': 'weight', 'bias': 'bias', 'gamma': 'gamma', 'beta': 'beta',
                'moving_mean': 'running_mean', 'moving_var': 'running_var'}
"""This project's parameter suffix -> the framework's."""

TIMM_RESNET_UNIT = {'conv1': 'conv1', 'bn1': 'bn1', 'conv2': 'conv2', 'bn2': 'bn2',
                    'conv3': 'conv3', 'bn3': 'bn3', 'excitation1': 'se.fc1',
                    'excitation2': 'se.fc2', 'sc': 'downsample.0', 'sc_bn': 'downsample.1'}
TIMM_LEGACY_UNIT = dict(TIMM_RESNET_UNIT, excitation1='se_module.fc1', excitation2='se_module.fc2')
GLUON_UNIT = {'conv1': 'body.0', 'bn1': 'body.1', 'conv2': 'body.3', 'bn2': 'body.4',
              'conv3': 'body.6', 'bn3': 'body.7', 'excitation1': 'se.0', 'excitation2': 'se.2',
              'sc': 'downsample.0', 'sc_bn': 'downsample.1'}
"""Layers of a unit: this project's name -> the module path inside the source's block."""

GLUON_CREATION_ORDER = ('conv1', 'bn1', 'conv2', 'bn2', 'conv3', 'bn3', 'excitation1',
                        'excitation2', 'sc', 'sc_bn')
"""Order in which GluonCV's blocks create their layers (body, SE, downsample): it numbers the layers'
automatic names in files saved the legacy way."""

LAYOUTS = {
    # framework parameter names, stem and head layers, unit layers, index of stage 1
    # ResNet.conv1 is the 7x7 convolution or, in a deep stem, Sequential(conv, bn, relu, conv, bn,
    # relu, conv); ResNet.bn1 is the stem's last BatchNorm either way.
    'timm-resnet': dict(params=TORCH_PARAMS, unit=TIMM_RESNET_UNIT,
                        stem={'conv0': 'conv1', 'bn0': 'bn1',
                              'conv0_1': 'conv1.0', 'bn0_1': 'conv1.1',
                              'conv0_2': 'conv1.3', 'bn0_2': 'conv1.4',
                              'conv0_3': 'conv1.6', 'bn0_3': 'bn1', 'fc1': 'fc'},
                        stage='layer{stage}.{index}.'),
    'timm-legacy': dict(params=TORCH_PARAMS, unit=TIMM_LEGACY_UNIT,
                        stem={'conv0': 'layer0.conv1', 'bn0': 'layer0.bn1',
                              'conv0_1': 'layer0.conv1', 'bn0_1': 'layer0.bn1',
                              'conv0_2': 'layer0.conv2', 'bn0_2': 'layer0.bn2',
                              'conv0_3': 'layer0.conv3', 'bn0_3': 'layer0.bn3',
                              'fc1': 'last_linear'},
                        stage='layer{stage}.{index}.'),
    # GluonCV ResNext.features: conv, bn, relu, max-pool, stages 1-4 (features.4-7), global pool.
    'gluoncv-resnext': dict(params=GLUON_PARAMS, unit=GLUON_UNIT,
                            stem={'conv0': 'features.0', 'bn0': 'features.1', 'fc1': 'output'},
                            stage='features.{feature}.{index}.', first_stage_feature=4),
    # GluonCV SENet.features: three conv-bn-relu, max-pool, stages 1-4 (features.10-13), pool, dropout.
    'gluoncv-senet': dict(params=GLUON_PARAMS, unit=GLUON_UNIT,
                          stem={'conv0_1': 'features.0', 'bn0_1': 'features.1',
                                'conv0_2': 'features.3', 'bn0_2': 'features.4',
                                'conv0_3': 'features.6', 'bn0_3': 'features.7', 'fc1': 'output'},
                          stage='features.{feature}.{index}.', first_stage_feature=10),
}


def split_param(name):
    """(layer, parameter) of one of this project's parameter names: ``bn0_moving_var`` ->
    (``bn0``, ``moving_var``)."""
    for suffix in ('moving_mean', 'moving_var', 'weight', 'bias', 'gamma', 'beta'):
        if name.endswith('_' + suffix):
            return name[:-len(suffix) - 1], suffix
    raise WeightsError('parameter %s has no known suffix' % name)


def source_layer(layout, layer):
    """The source's module path of this project's ``layer`` under ``layout``."""
    spec = LAYOUTS[layout]
    if layer in spec['stem']:
        return spec['stem'][layer]
    match = UNIT_LAYER.match(layer)
    if match is None:
        raise WeightsError('layer %s has no counterpart in %s checkpoints' % (layer, layout))
    stage, unit, part = int(match.group(1)), int(match.group(2)), match.group(3)
    prefix = spec['stage'].format(stage=stage, index=unit - 1,
                                  feature=spec.get('first_stage_feature', 0) + stage - 1)
    return prefix + spec['unit'][part]


def gluon_legacy_layers(layers):
    """This project's layer -> the automatic name GluonCV's layer has in a legacy file.

    Files written by ``collect_params().save(strip_prefix=net.prefix)`` (or Gluon's old
    ``save_params``) name a layer after its kind and a counter per name scope: ``conv0``,
    ``batchnorm1``, ``dense0`` in the network's scope and ``stage2_conv5`` inside a stage, numbered
    in the order the layers were created.
    """
    def kind(layer):
        base = UNIT_LAYER.match(layer).group(3) if UNIT_LAYER.match(layer) else layer
        if base == 'fc1':
            return 'dense'
        return 'batchnorm' if base.startswith('bn') or base == 'sc_bn' else 'conv'

    def creation_key(layer):
        # Only the order within a scope and kind matters: stem layers (conv0_1, conv0_2, ...) in
        # name order, units in order, a unit's layers in GLUON_CREATION_ORDER.
        match = UNIT_LAYER.match(layer)
        if match is None:
            return (0, 0, 0, layer)
        return (int(match.group(1)), int(match.group(2)),
                GLUON_CREATION_ORDER.index(match.group(3)), layer)

    counters, names = {}, {}
    for layer in sorted(layers, key=creation_key):
        match = UNIT_LAYER.match(layer)
        scope = 'stage%s_' % match.group(1) if match else ''
        key = (scope, kind(layer))
        names[layer] = '%s%s%d' % (scope, key[1], counters.get(key, 0))
        counters[key] = counters.get(key, 0) + 1
    return names


def parameter_sources(model, names):
    """This project's parameter name -> the source tensor name, for ``names`` (bn_data excluded).

    GluonCV files come in two namings, both read by GluonCV's ``load_parameters``: structural
    (``features.4.0.body.0.weight``, written by ``save_parameters``) and legacy automatic names
    (``stage1_conv0_weight``); ``legacy`` selects the second.
    """
    spec = LAYOUTS[model.layout]
    split = {name: split_param(name) for name in names}
    structural = {name: '%s.%s' % (source_layer(model.layout, layer), spec['params'][param])
                  for name, (layer, param) in split.items()}
    if model.source != 'gluoncv':
        return structural, None
    legacy_layers = gluon_legacy_layers({layer for layer, _ in split.values()})
    legacy = {name: '%s_%s' % (legacy_layers[layer], spec['params'][param])
              for name, (layer, param) in split.items()}
    return structural, legacy


# ---------------------------------------------------------------------------------------------
# Reading checkpoints.

TORCH_SUFFIXES = ('.pth', '.pt', '.bin', '.pth.tar')
IGNORED_SUFFIX = '.num_batches_tracked'
"""PyTorch BatchNorm's step counter: not a parameter."""


def read_checkpoint(source, path):
    """The tensors of a checkpoint file as {name: float32 array}, with one-line errors."""
    if not os.path.isfile(path):
        raise WeightsError('checkpoint %s does not exist' % path)
    if source == 'gluoncv':
        tensors = _read_mxnet(path)
    elif path.endswith('.safetensors'):
        tensors = _read_safetensors(path)
    elif path.endswith(TORCH_SUFFIXES):
        tensors = _read_torch(path)
    else:
        raise WeightsError('cannot tell the format of %s: timm checkpoints are .safetensors, or '
                           'PyTorch %s' % (path, ' / '.join(TORCH_SUFFIXES)))
    return {name: _as_float32(name, value, path) for name, value in tensors.items()
            if not name.endswith(IGNORED_SUFFIX)}


def _as_float32(name, value, path):
    array = np.asarray(value)
    if not np.issubdtype(array.dtype, np.floating):
        raise WeightsError('tensor %s of %s has dtype %s, not a floating-point type'
                           % (name, path, array.dtype))
    return array.astype(np.float32)


def _read_mxnet(path):
    import mxnet as mx
    try:
        loaded = mx.nd.load(path)
    except mx.base.MXNetError as err:
        raise WeightsError('cannot read %s as an MXNet .params file (%s): truncated, or not a '
                           'GluonCV parameter file' % (path, first_line(err))) from None
    if not isinstance(loaded, dict) or not loaded:
        raise WeightsError('%s holds no named tensors: not a GluonCV parameter file' % path)
    tensors = {}
    for name, value in loaded.items():
        # mx.model.save_checkpoint's prefixes, which GluonCV's loader strips too
        name = name[4:] if name.startswith(('arg:', 'aux:')) else name
        tensors[name] = value.asnumpy()
    return tensors


def _read_safetensors(path):
    try:
        from safetensors.numpy import load_file
    except ImportError:
        raise WeightsError('reading %s needs the safetensors package: pip install safetensors'
                           % path) from None
    try:
        loaded = load_file(path)
    except Exception as err:  # safetensors raises its own SafetensorError, and others for bad data
        raise WeightsError('cannot read %s as safetensors (%s): truncated, or not a safetensors '
                           'file' % (path, first_line(err))) from None
    return loaded


def _read_torch(path):
    try:
        import torch
    except ImportError:
        raise WeightsError('reading the PyTorch checkpoint %s needs torch, which is not installed: '
                           'pip install torch, or give the .safetensors file' % path) from None
    try:
        loaded = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as err:  # torch raises RuntimeError, EOFError, UnpicklingError, ...
        raise WeightsError('cannot read %s as a PyTorch checkpoint (%s): truncated, or not a '
                           'state dict' % (path, first_line(err))) from None
    # Training scripts (timm's among them) wrap the state dict: {'state_dict': ..., 'epoch': ...}.
    for key in ('state_dict', 'model'):
        if isinstance(loaded, dict) and isinstance(loaded.get(key), dict):
            loaded = loaded[key]
            break
    if not isinstance(loaded, dict) or not all(torch.is_tensor(v) for v in loaded.values()):
        raise WeightsError('%s is not a state dict of tensors' % path)
    if loaded and all(name.startswith('module.') for name in loaded):  # DataParallel's prefix
        loaded = {name[len('module.'):]: value for name, value in loaded.items()}
    return {name: value.detach().to(torch.float32).numpy() if value.is_floating_point()
            else value.numpy() for name, value in loaded.items()}


def first_line(err):
    """The first line of an exception's message that is not part of a stack trace (MXNet's
    messages start with one)."""
    lines = [line.strip() for line in str(err).strip().splitlines()
             if line.strip() and not line.startswith(('Traceback', '  File ', '[bt]'))]
    return lines[0] if lines else type(err).__name__


# ---------------------------------------------------------------------------------------------
# Conversion.

def build_symbol(model, weights):
    """This project's textbook graph (as checkpoints hold it) of ``model`` at the weights' size."""
    import symbols
    with symbols.textbook_graph():
        return symbols.get_symbol(model.network, NUM_CLASSES,
                                  image_shape=(3, weights.image_size, weights.image_size),
                                  **model.builder)


def batchnorm_eps(symbol):
    """{BatchNorm name: eps} of a graph."""
    aux = set(symbol.list_auxiliary_states())
    return {name: float(attrs['eps']) for name, attrs in symbol.attr_dict().items()
            if 'eps' in attrs and name + '_moving_var' in aux}


def convert(model, weights, tensors, checkpoint='the checkpoint'):
    """(symbol, arg_params, aux_params) of this project's graph holding the source's ``tensors``.

    The params are float32 numpy arrays keyed as ``mx.model.save_checkpoint`` expects (without the
    ``arg:``/``aux:`` prefixes). A tensor missing, left over or of another shape raises
    WeightsError naming it.
    """
    symbol = build_symbol(model, weights)
    size = weights.image_size
    arg_shapes, _, aux_shapes = symbol.infer_shape(data=(1, 3, size, size))
    shapes = dict(zip(symbol.list_arguments(), arg_shapes))
    shapes.update(zip(symbol.list_auxiliary_states(), aux_shapes))
    inputs = {'data', 'softmax_label'}
    names = [name for name in symbol.list_arguments() + symbol.list_auxiliary_states()
             if name not in inputs and not name.startswith('bn_data_')]
    structural, legacy = parameter_sources(model, names)
    mapping = structural
    if legacy is not None and not any('.' in name for name in tensors):
        mapping = legacy  # a GluonCV file saved with automatic names (see parameter_sources)
    what = '%s %s' % (model.source, model.name)
    missing = [mapping[name] for name in names if mapping[name] not in tensors]
    if missing:
        raise WeightsError('%s lacks %d of the %d tensors of %s (first: %s): not a checkpoint of '
                           'this model' % (checkpoint, len(missing), len(names), what, missing[0]))
    extra = sorted(set(tensors) - set(mapping.values()))
    if extra:
        raise WeightsError('%s has %d tensors that %s does not (first: %s): a checkpoint of another '
                           'network?' % (checkpoint, len(extra), what, extra[0]))
    eps_here = batchnorm_eps(symbol)
    eps_source = SOURCE_BN_EPS[model.source]
    params = {}
    for name in names:
        value = tensors[mapping[name]]
        expected = tuple(shapes[name])
        if value.ndim == 4 and value.shape[2:] == (1, 1) and len(expected) == 2:
            value = value.reshape(value.shape[:2])  # SE layers: 1x1 convolutions there, FC here
        if tuple(value.shape) != expected:
            raise WeightsError('tensor %s of %s has shape %s, but %s expects %s: a checkpoint of '
                               'another network?' % (mapping[name], checkpoint, tuple(value.shape),
                                                     what, expected))
        if name.endswith('_moving_var'):
            layer = name[:-len('_moving_var')]
            value = value.astype(np.float64) + eps_source - eps_here[layer]
        params[name] = value.astype(np.float32)
    params.update(input_normalisation(eps_here['bn_data']))
    arg_params = {name: params[name] for name in symbol.list_arguments() if name not in inputs}
    aux_params = {name: params[name] for name in symbol.list_auxiliary_states()}
    return symbol, arg_params, aux_params


def input_normalisation(eps, mean=IMAGENET_MEAN, std=IMAGENET_STD):
    """``bn_data``'s parameters computing ``(x / 255 - mean) / std`` from raw 0-255 pixels.

    ``bn_data`` has ``fix_gamma``: it computes ``(x - moving_mean) / sqrt(moving_var + eps) + beta``.
    """
    mean = 255.0 * np.asarray(mean, dtype=np.float64)
    var = (255.0 * np.asarray(std, dtype=np.float64)) ** 2 - eps
    return {'bn_data_gamma': np.ones(3, np.float32), 'bn_data_beta': np.zeros(3, np.float32),
            'bn_data_moving_mean': mean.astype(np.float32),
            'bn_data_moving_var': var.astype(np.float32)}
