"""Inference on trained checkpoints: loading, model cards, image preprocessing and scoring.

Shared by ``predict.py``, ``score.py``, ``export_onnx.py``, ``fine-tune.py`` and
``make_model_card.py``. A checkpoint is MXNet's pair ``<prefix>-symbol.json`` +
``<prefix>-NNNN.params``, loaded with ``mx.model.load_checkpoint``. Inference runs the classifier
``softmax(fc1)`` (:func:`probabilities`): the training graph without its ``SoftmaxOutput`` loss, so
there is no label input left and every parameter must come from the file.

A model directory (``pretrained/<name>/``) holds ``<name>-symbol.json``, ``<name>-NNNN.params`` and a
model card ``card.json`` (written by ``make_model_card.py``). The card's fields: ``format`` (1),
``name`` (also the checkpoint prefix), ``epoch``, ``network`` and ``builder`` (registry name and
builder arguments), ``input`` (how images are fed: ``image_shape`` [C, H, W], ``color`` and
``resize`` as in :func:`preprocess`, with ``content_size`` and ``fill`` for ``pad``), ``classes``
(names in label order), ``test`` (``top1``, ``top5``, ``images``), ``params_sha256``,
``params_bytes`` and ``training`` (``command``, ``epochs``, ``wall_time_seconds``, ``machine``,
``log``). predict, score and export read ``name``, ``epoch``, ``input`` and ``classes``.
``quantize.py`` writes INT8 model directories: their card adds ``precision`` (``int8``; absent means
float32) and ``quantization`` (the float32 model, calibration data and mode), and their graph is
already the classifier, ending in ``softmax`` (see :func:`probabilities`).
"""
import json
import os
import sys

import numpy as np

from senet import checkpoint, metrics

CARD_FILE = 'card.json'
"""The machine-readable model card inside a model directory."""

CARD_FORMAT = 1

COLOR_MODES = ('rgb', 'gray')
"""``gray`` converts to one gray channel repeated three times (models trained on gray images)."""

RESIZE_MODES = ('resize', 'pad')
"""``resize`` stretches to the input size; ``pad`` fits the image inside ``content_size`` keeping its
aspect ratio and centres it on a canvas of the input size filled with ``fill`` (Fashion-MNIST: the
28x28 images were padded with zeros to 32x32)."""


class InferenceError(Exception):
    """A missing or unusable model, card or input; the message names it and says what to do."""


def load_checkpoint(prefix, epoch):
    """(symbol, arg_params, aux_params) of ``prefix`` at ``epoch``, with one-line errors."""
    import mxnet as mx
    sym_path, params_path, _ = checkpoint.checkpoint_paths(prefix, epoch)
    if not os.path.isfile(sym_path):
        raise InferenceError('no symbol file %s: --prefix is the checkpoint path without '
                             '"-symbol.json" (e.g. model/se-resnext-fashion-mnist-14)' % sym_path)
    if not os.path.isfile(params_path):
        epochs = checkpoint.saved_epochs(prefix)
        raise InferenceError('no params file %s; %s' % (
            params_path, 'saved epochs under this prefix: %s' % ', '.join(map(str, epochs))
            if epochs else 'no epochs are saved under %s' % prefix))
    try:
        with open(sym_path) as stream:
            json.load(stream)
    except ValueError as err:
        raise InferenceError('%s is not a symbol JSON file (%s); use the -symbol.json that the '
                             'trainer wrote beside the params' % (sym_path, err)) from None
    try:
        return mx.model.load_checkpoint(prefix, epoch)
    except (mx.base.MXNetError, ValueError) as err:
        raise InferenceError('cannot load the checkpoint %s / %s: %s' % (
            sym_path, params_path, first_line(err))) from None


def first_line(err):
    """The first non-empty line of an exception's message (MXNet's carry C++ stack traces)."""
    lines = [line for line in str(err).strip().splitlines()
             if line.strip() and not line.startswith(('Traceback', '  File ', '[bt]'))]
    return lines[0] if lines else type(err).__name__


def probabilities(symbol, name='softmax'):
    """``softmax(fc1)``: class probabilities of a training graph, without its label input.

    A graph that already ends in ``softmax`` without a label input, such as the INT8 graph that
    ``quantize.py`` writes (oneDNN folds ``fc1`` into a fused operator there), is returned as it is.
    """
    import mxnet as mx
    if is_classifier(symbol):
        return symbol
    internals = symbol.get_internals()
    if 'fc1_output' not in internals.list_outputs():
        raise InferenceError('the graph has no layer named fc1 (the classifier of every network '
                             'in this repository)')
    return mx.sym.softmax(internals['fc1_output'], name=name)


def is_classifier(symbol):
    """True for a graph whose one output is a ``softmax`` operator and that takes no label."""
    graph = json.loads(symbol.tojson())
    heads = graph['heads']
    return (len(heads) == 1 and graph['nodes'][heads[0][0]]['op'] == 'softmax'
            and not any(name.endswith('_label') for name in symbol.list_arguments()))


def inference_module(symbol, arg_params, aux_params, data_shape, context=None):
    """A ``Module`` bound for inference on ``softmax(fc1)`` with every parameter from the file."""
    import mxnet as mx
    net = probabilities(symbol)
    mod = mx.mod.Module(net, context=context or mx.cpu(), label_names=None)
    try:
        mod.bind(data_shapes=[('data', tuple(data_shape))], for_training=False)
        mod.set_params(arg_params, aux_params, allow_missing=False, allow_extra=False)
    except (RuntimeError, ValueError, AssertionError, mx.base.MXNetError) as err:
        raise InferenceError('the params do not fit the graph for input %s: %s'
                             % ('x'.join(map(str, data_shape)), first_line(err))) from None
    return mod


def read_card(model_dir):
    """The model card of ``model_dir`` as a dict, checked for the fields inference needs."""
    path = os.path.join(model_dir, CARD_FILE)
    if not os.path.isfile(path):
        raise InferenceError('%s has no %s; --model is a model directory such as '
                             'pretrained/<name>/ (or give --prefix and --epoch)' % (model_dir,
                                                                                   CARD_FILE))
    try:
        with open(path) as stream:
            card = json.load(stream)
        missing = [key for key in ('name', 'epoch', 'input', 'classes') if key not in card]
        shape = card['input'].get('image_shape') if 'input' in card else None
    except (ValueError, AttributeError, TypeError) as err:
        raise InferenceError('%s is not a valid model card (%s)' % (path, err)) from None
    if missing or not shape:
        raise InferenceError('%s lacks %s' % (path, ', '.join(missing or ['input.image_shape'])))
    return card


def class_names(classes_file, card, num_classes):
    """The model's class names: from ``classes_file`` (``--classes``, ``label name`` lines), else the
    card's, else the label numbers; InferenceError when their count is not ``num_classes``."""
    if classes_file:
        names = read_class_file(classes_file)
    elif card:
        names = list(card['classes'])
    else:
        return [str(label) for label in range(num_classes)]
    if len(names) != num_classes:
        raise InferenceError('%d class names for a model with %d classes' % (len(names), num_classes))
    return names


def require_float32(model_dir, card, tool):
    """Raise InferenceError when the card's model is quantized: ``tool`` needs the float32 one."""
    precision = card.get('precision', 'float32')
    if precision != 'float32':
        source = card.get('quantization', {}).get('float32_model') or 'the float32 model it was made from'
        raise InferenceError('%s holds an %s model (quantize.py), which %s cannot use; give it %s'
                             % (model_dir, precision.upper(), tool, source))


def card_prefix(model_dir, card):
    """Checkpoint prefix of a card's model: ``<model_dir>/<name>``."""
    return os.path.join(model_dir, card['name'])


def read_class_file(path):
    """Class names from a file of "label name" lines (``im2rec_prep.sh``'s PREFIX_classes.txt)."""
    try:
        with open(path) as stream:
            pairs = [line.rstrip('\n').split(' ', 1) for line in stream if line.strip()]
        names = {int(label): name for label, name in pairs}
    except OSError as err:
        raise InferenceError('cannot read the class file %s (%s)' % (path, err.strerror)) from None
    except ValueError:
        raise InferenceError('%s is not a class file of "label name" lines (as im2rec_prep.sh '
                             'writes)' % path) from None
    if sorted(names) != list(range(len(names))):
        raise InferenceError('%s must list the labels 0..N-1 once each' % path)
    return [names[label] for label in range(len(names))]


def read_image(path):
    """An image file (PNG, JPEG, ...; gray, colour or with alpha) as an H x W x 3 BGR uint8 array."""
    import cv2
    if os.path.isdir(path):
        raise InferenceError('%s is a directory, not an image file' % path)
    if not os.path.isfile(path):
        raise InferenceError('image %s does not exist' % path)
    try:
        raw = np.fromfile(path, dtype=np.uint8)
    except OSError as err:
        raise InferenceError('cannot read image %s (%s)' % (path, err.strerror)) from None
    image = cv2.imdecode(raw, cv2.IMREAD_COLOR) if raw.size else None
    if image is None:
        raise InferenceError('%s is not an image OpenCV can decode (PNG, JPEG, BMP, ...)' % path)
    return image


def preprocess(image, image_shape, color='rgb', resize='resize', content_size=None, fill=0):
    """A BGR image as the network's input: a (C, H, W) float32 array of raw 0-255 pixels.

    ``color`` and ``resize`` are one of :data:`COLOR_MODES` and :data:`RESIZE_MODES`.
    """
    import cv2
    channels, height, width = image_shape
    if color == 'gray':
        image = cv2.cvtColor(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2RGB)
    elif color == 'rgb':
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    else:
        raise InferenceError('unknown color mode %r; choose one of: %s' % (color,
                                                                         ', '.join(COLOR_MODES)))
    if resize == 'resize':
        out = _resized(image, width, height)
    elif resize == 'pad':
        box_h, box_w = content_size or (height, width)
        scale = min(box_h / image.shape[0], box_w / image.shape[1])
        new_h = max(1, int(round(image.shape[0] * scale)))
        new_w = max(1, int(round(image.shape[1] * scale)))
        out = np.full((height, width, 3), fill, dtype=np.uint8)
        top, left = (height - new_h) // 2, (width - new_w) // 2
        out[top:top + new_h, left:left + new_w] = _resized(image, new_w, new_h)
    else:
        raise InferenceError('unknown resize mode %r; choose one of: %s'
                             % (resize, ', '.join(RESIZE_MODES)))
    if channels != 3:
        raise InferenceError('input with %d channels is not supported; networks take 3 (RGB)'
                             % channels)
    return out.transpose(2, 0, 1).astype(np.float32)


def _resized(image, width, height):
    import cv2
    if image.shape[:2] == (height, width):
        return image
    shrink = width < image.shape[1] or height < image.shape[0]
    return cv2.resize(image, (width, height),
                      interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def write_model_directory(output, write_files):
    """Call ``write_files(tmp_dir)``, then put ``tmp_dir`` at ``output``, replacing a directory
    there whole; on any error nothing is left but what was at ``output`` before. Returns what
    ``write_files`` returns."""
    import shutil
    import tempfile
    output = os.path.abspath(output)
    parent = os.path.dirname(output)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix='.%s.tmp-' % os.path.basename(output), dir=parent)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp's 0700 would make the model private
        result = write_files(tmp)
        if os.path.exists(output):
            old = tempfile.mkdtemp(prefix='.%s.old-' % os.path.basename(output), dir=parent)
            os.rename(output, os.path.join(old, 'model'))
            os.rename(tmp, output)
            shutil.rmtree(old)
        else:
            os.rename(tmp, output)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return result


def checked_labels(batches, rec_path, num_classes):
    """The batches of ``batches``, each checked to hold class indices below ``num_classes``."""
    for batch in batches:
        labels = batch.label[0].asnumpy()
        if labels.size and (labels.max() >= num_classes or labels.min() < 0):
            raise InferenceError('%s holds label %g but the model has %d classes: score a model '
                                 'of this data set' % (rec_path, labels.max() if labels.max() >=
                                                       num_classes else labels.min(), num_classes))
        yield batch


def score(symbol, arg_params, aux_params, rec_path, image_shape, batch_size=64, context=None):
    """Top-1/top-5 accuracy and speed of a checkpoint over every record of an indexed ``.rec``.

    Returns a dict: ``top1``, ``top5`` (None for 5 classes or fewer), ``images``, ``seconds`` and
    ``img_per_sec`` (decoding included). The evaluation is :func:`senet.metrics.evaluate`, with
    the metrics training logs, on a fresh :func:`data.make_rec_iter` iterator, so each record
    counts once (MXNet 1.9.1's ``pad`` bug).
    """
    import time

    import mxnet as mx

    import data
    image_shape = tuple(image_shape)
    mod = inference_module(symbol, arg_params, aux_params, (batch_size,) + image_shape, context)
    num_classes = mod.output_shapes[0][1][1]
    warmup = mx.io.DataBatch([mx.nd.zeros((batch_size,) + image_shape)])
    mod.forward(warmup, is_train=False)  # oneDNN builds its primitives on the first batch
    mx.nd.waitall()

    def make_iter():
        return checked_labels(data.make_rec_iter(rec_path, image_shape, batch_size), rec_path,
                              num_classes)

    tic = time.time()
    try:
        values, count = metrics.evaluate(mod, make_iter, num_classes)
    except mx.base.MXNetError as err:
        raise InferenceError('cannot read %s as %s images: %s' % (
            rec_path, 'x'.join(map(str, image_shape)), first_line(err))) from None
    seconds = time.time() - tic
    return dict(top1=values['accuracy'], top5=values.get('top_k_accuracy_5'), images=count,
                cross_entropy=values['cross-entropy'], seconds=seconds,
                img_per_sec=count / seconds if seconds > 0 else float('inf'))


def add_model_args(parser, preprocessing=True):
    """``--model DIR`` (a model directory with a card) or ``--prefix P --epoch N``, and overrides."""
    group = parser.add_argument_group('model')
    group.add_argument('--model', help='model directory with a card.json, e.g. pretrained/<name>')
    group.add_argument('--prefix', help="checkpoint prefix (the path before '-symbol.json')")
    group.add_argument('--epoch', type=int,
                       help="checkpoint epoch; default the card's (required with --prefix)")
    group.add_argument('--image-shape',
                       help="network input C,H,W; default the card's (required without a card)")
    if preprocessing:
        group.add_argument('--color', choices=COLOR_MODES,
                           help="'gray' for models trained on gray images; default the card's, "
                                "else rgb")
        group.add_argument('--resize', choices=RESIZE_MODES,
                           help="'resize' stretches to the input size, 'pad' keeps the aspect "
                                "ratio; default the card's, else resize")
        group.add_argument('--classes', help='file of "label name" lines (im2rec_prep.sh\'s '
                                             'PREFIX_classes.txt); default the card\'s')
    return parser


def resolve_model(args):
    """(prefix, epoch, card or None, image_shape) from ``--model`` or ``--prefix/--epoch``."""
    from symbols import parse_image_shape
    if bool(args.model) == bool(args.prefix):
        raise InferenceError('give either --model DIR (a model directory with a card.json) or '
                             '--prefix P --epoch N')
    card = None
    if args.model:
        card = read_card(args.model)
        prefix = card_prefix(args.model, card)
        epoch = card['epoch'] if args.epoch is None else args.epoch
    else:
        prefix, epoch = args.prefix, args.epoch
        if epoch is None:
            raise InferenceError('--prefix needs --epoch N, the checkpoint epoch to load')
    shape = args.image_shape or (card['input']['image_shape'] if card else None)
    if shape is None:
        raise InferenceError('--image-shape C,H,W is required without a model card (e.g. '
                             '3,28,28 for the make-train Fashion-MNIST model, 3,224,224 for ImageNet)')
    try:
        image_shape = parse_image_shape(shape)
    except ValueError as err:
        raise InferenceError('--' + str(err).replace('_', '-')) from None
    return prefix, epoch, card, image_shape


def run_cli(parser, body, argv=None):
    """Parse ``argv`` and call ``body(args)``; problems become one line on stderr and exit 2."""
    args = parser.parse_args(argv)
    try:
        import mxnet as mx
        try:
            body(args)
        except mx.base.MXNetError as err:
            raise InferenceError('MXNet failed: %s' % first_line(err)) from None
    except InferenceError as err:
        sys.stderr.write('%s: error: %s\n' % (parser.prog, err))
        return 2
    except OSError as err:  # a full disk, a directory removed or read-only
        from senet import faults
        sys.stderr.write('%s: error: %s\n' % (parser.prog, faults.os_error_line(err)))
        return 1
    return 0
