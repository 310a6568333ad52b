"""Quantize a model to INT8: calibrate it on images of a .rec and write an INT8 model directory.

The input is a model directory (``--model DIR``, as make_model_card.py and convert_weights.py write
them) or a checkpoint (``--prefix P --epoch N``). The output directory holds
``<name>-symbol.json`` (the INT8 classifier graph of MXNet's oneDNN backend, see
senet/quantization.py), ``<name>-NNNN.params``, ``card.json`` (the float32 model's card with
``precision: int8`` and how it was calibrated) and ``README.md``; ``<name>`` is the directory's
name. predict.py and score.py take it with ``--model`` like any other model directory. It is
written into a temporary directory and renamed into place: an error leaves nothing behind, and an
earlier model directory at ``--output`` is replaced whole.

Calibrate on images like those the model will see, e.g. a few hundred training images: their
order matters only through which images are taken (the first N records).

Examples::

    python quantize.py --model pretrained/se-resnext-fashion-mnist-14 \\
        --data-calib data/fashion-mnist/train.rec --output pretrained/se-resnext-fashion-mnist-14-int8
    python score.py --model pretrained/se-resnext-fashion-mnist-14-int8 \\
        --data-val data/fashion-mnist/val.rec
"""
import json
import os
import shlex
import sys

from senet import threads

threads.configure(sys.argv[1:])

import data  # noqa: E402  (MXNet must load after OMP_NUM_THREADS is set)
from senet import checkpoint, inference, quantization  # noqa: E402
from senet.arguments import OneLineParser  # noqa: E402

DEFAULT_CALIB_IMAGES = 512
"""Calibration images unless --num-calib-images/--num-calib-batches say otherwise (naive
calibration of the make-train model: test top-1 93.19 % with 64 images, 93.14 % with 512, 93.02 %
with 5,000; float32 93.26 %)."""


def build_parser():
    parser = OneLineParser(description=__doc__.split('\n\n')[0])
    inference.add_model_args(parser)
    calib = parser.add_argument_group('calibration')
    calib.add_argument('--data-calib', required=True,
                       help='.rec file whose first images calibrate the INT8 ranges (e.g. training '
                            'images)')
    count = calib.add_mutually_exclusive_group()
    count.add_argument('--num-calib-images', type=int,
                       help='calibrate on this many images (fewer if the .rec holds fewer); '
                            'default %d' % DEFAULT_CALIB_IMAGES)
    count.add_argument('--num-calib-batches', type=int,
                       help='calibrate on this many batches of --batch-size images')
    calib.add_argument('--calib-mode', choices=quantization.CALIB_MODES, default='naive',
                       help="naive: each layer's min/max on the calibration images; entropy: "
                            "KL-optimal ranges that clip outliers (lost 1.3 points on the make-train "
                            "model, naive 0.1)")
    calib.add_argument('--batch-size', type=int, default=64, help='images per calibration batch')
    parser.add_argument('--output', required=True,
                        help='INT8 model directory to write; its name names the model')
    return parser


def check_args(args):
    """Reject what cannot work before anything is read; returns the number of calibration images."""
    for flag in ('batch_size', 'num_calib_images', 'num_calib_batches'):
        value = getattr(args, flag)
        if value is not None and value < 1:
            raise inference.InferenceError('--%s must be positive, got %d'
                                           % (flag.replace('_', '-'), value))
    output = os.path.abspath(args.output)
    if args.model and output == os.path.abspath(args.model):
        raise inference.InferenceError('--output must not be the float32 model directory %s'
                                       % args.model)
    if os.path.exists(output) and not os.path.isdir(output):
        raise inference.InferenceError('--output %s exists and is not a directory' % args.output)
    if os.path.isdir(output) and os.listdir(output) and \
            not os.path.isfile(os.path.join(output, inference.CARD_FILE)):
        raise inference.InferenceError('--output %s is a directory with other files than a model '
                                       'directory; name a new or a model directory'
                                       % args.output)
    if os.path.isfile(args.data_calib) and os.path.getsize(args.data_calib) == 0:
        raise inference.InferenceError('--data-calib %s is empty: no images to calibrate on'
                                       % args.data_calib)
    try:
        data.check_rec(args.data_calib, '--data-calib')
    except data.DataError as err:
        raise inference.InferenceError(str(err)) from None
    if args.num_calib_batches is not None:
        return args.num_calib_batches * args.batch_size
    return args.num_calib_images or DEFAULT_CALIB_IMAGES


def agreement(symbol, arg_params, aux_params, qsym, qarg, qaux, images, batch_size):
    """Fraction of ``images`` on which the INT8 and the float32 model predict the same class."""
    import mxnet as mx
    import numpy as np
    batch_size = min(batch_size, len(images))
    shape = (batch_size,) + images.shape[1:]
    modules = [inference.inference_module(symbol, arg_params, aux_params, shape),
               inference.inference_module(qsym, qarg, qaux, shape)]
    same = 0
    for start in range(0, len(images), batch_size):
        chunk = images[start:start + batch_size]
        filled = np.zeros(shape, dtype=np.float32)
        filled[:len(chunk)] = chunk
        classes = []
        for mod in modules:
            mod.forward(mx.io.DataBatch([mx.nd.array(filled)]), is_train=False)
            classes.append(mod.get_outputs()[0].asnumpy()[:len(chunk)].argmax(axis=1))
        same += int((classes[0] == classes[1]).sum())
    return same / len(images)


def int8_card(args, card, name, epoch, image_shape, classes, calibration):
    """The INT8 model's card: the float32 card (or one from the flags) with what quantize.py did.

    The float32 test accuracy moves under ``quantization.float32_test``: score.py measures the
    INT8 model's own.
    """
    import mxnet as mx
    card = dict(card or dict(format=inference.CARD_FORMAT))
    settings = dict(card.get('input', {}), image_shape=list(image_shape))
    for flag in ('color', 'resize'):
        if getattr(args, flag):
            settings[flag] = getattr(args, flag)
    float32_test = card.pop('test', None)
    card.update(name=name, epoch=epoch, input=settings, classes=classes, precision='int8',
                quantization=dict(
                    float32_model=args.model or '%s-%04d' % (args.prefix, args.epoch),
                    float32_test=float32_test, calibration=calibration,
                    backend='MXNet %s oneDNN (mx.contrib.quantization.quantize_model_mkldnn, '
                            'quantized_dtype %s)' % (mx.__version__, quantization.QUANTIZED_DTYPE),
                    command='python quantize.py ' + shlex.join(args.argv)))
    return card


def card_markdown(card, directory):
    """The INT8 model directory's README.md."""
    quant, calib = card['quantization'], card['quantization']['calibration']
    source_test = quant['float32_test']
    lines = [
        '# %s' % card['name'], '',
        'INT8 model made by `quantize.py` from `%s`%s; the same facts, machine-readable, are in '
        '`card.json`.' % (quant['float32_model'], ' (float32 test top-1 %.2f %%)' % (
            100 * source_test['top1']) if source_test and 'top1' in source_test else ''), '',
        '| | |', '|---|---|',
        '| calibration | %s, first %d images of `%s` |' % (calib['mode'], calib['images'],
                                                            calib['rec']),
        '| INT8 and float32 agree | on %.2f %% of the calibration images |'
        % (100 * calib['agreement']),
        '| backend | %s |' % quant['backend'],
        '| input | %s |' % 'x'.join(map(str, card['input']['image_shape'])),
        '| params | `%s`, %d bytes, sha256 `%s` |' % (card['params_file'], card['params_bytes'],
                                                     card['params_sha256']),
        '', 'Made with:', '', '```bash', quant['command'], '```', '',
        'Use it (CPU only: the INT8 operators are oneDNN\'s):', '', '```bash',
        'python predict.py --model %s image.png' % directory,
        'python score.py --model %s --data-val val.rec' % directory,
        '```', '']
    return '\n'.join(lines)


def run(args):
    """Read, calibrate, quantize and write; returns the INT8 card."""
    import mxnet as mx
    count = check_args(args)
    prefix, epoch, card, image_shape = inference.resolve_model(args)
    if card is not None and card.get('precision', 'float32') != 'float32':
        raise inference.InferenceError('%s is already quantized (precision %s); quantize its '
                                       'float32 model' % (args.model, card['precision']))
    symbol, arg_params, aux_params = inference.load_checkpoint(prefix, epoch)
    if inference.is_classifier(symbol) and quantization.quantized_operators(symbol):
        raise inference.InferenceError('%s-%04d is already quantized; quantize its float32 model'
                                       % (prefix, epoch))
    probe = inference.inference_module(symbol, arg_params, aux_params, (1,) + tuple(image_shape))
    num_classes = probe.output_shapes[0][1][1]
    classes = inference.class_names(args.classes, card, num_classes)
    images = quantization.calibration_images(args.data_calib, image_shape, count,
                                             args.batch_size)
    if len(images) < count:
        print('%s holds %d images: calibrating on all of them' % (args.data_calib, len(images)))
    try:
        qsym, qarg, qaux = quantization.quantize(symbol, arg_params, aux_params, images,
                                                 args.batch_size, args.calib_mode)
    except (ValueError, AssertionError, KeyError) as err:
        raise inference.InferenceError('cannot quantize %s-%04d: %s' % (
            prefix, epoch, inference.first_line(err))) from None
    calibration = dict(rec=args.data_calib, images=len(images), mode=args.calib_mode,
                       batch_size=min(args.batch_size, len(images)),
                       agreement=agreement(symbol, arg_params, aux_params, qsym, qarg, qaux,
                                           images, args.batch_size))
    name = os.path.basename(os.path.normpath(args.output))
    written = {}

    def write_files(directory):
        path = os.path.join(directory, name)
        checkpoint.save_symbol('%s-symbol.json' % path, qsym)
        params_path = '%s-%04d.params' % (path, epoch)
        saved = {'arg:' + key: value for key, value in qarg.items()}
        saved.update({'aux:' + key: value for key, value in qaux.items()})
        checkpoint.save_ndarrays(params_path, saved)
        written.update(int8_card(args, card, name, epoch, image_shape, classes, calibration))
        written.update(params_file=os.path.basename(params_path),
                       params_bytes=os.path.getsize(params_path),
                       params_sha256=checkpoint.file_sha256(params_path),
                       mxnet_version=mx.__version__)
        with open(os.path.join(directory, inference.CARD_FILE), 'w') as stream:
            json.dump(written, stream, indent=2)
            stream.write('\n')
        with open(os.path.join(directory, 'README.md'), 'w') as stream:
            stream.write(card_markdown(written, args.output))

    inference.write_model_directory(args.output, write_files)
    print('%s: INT8 of %s, %s calibration on %d images of %s; INT8 and float32 agree on %.2f %% '
          'of them' % (args.output, written['quantization']['float32_model'], args.calib_mode,
                       len(images), args.data_calib, 100 * calibration['agreement']))
    return written


def main(argv=None):
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)

    def body(args):
        args.argv = argv
        run(args)

    return inference.run_cli(parser, body, argv)


if __name__ == '__main__':
    sys.exit(main())
