"""INT8 post-training quantization of a trained Fashion-MNIST checkpoint: accuracy and speed.

The float32 model runs bound for inference (``Module``, ``for_training=False``), where MXNet's
oneDNN subgraph backend fuses convolution, BatchNorm and ReLU. The INT8 model is made by
``mx.contrib.quantization.quantize_model_mkldnn``, calibrated on Fashion-MNIST *training* images;
both are scored on the 10,000 test images, and timed on the same batches (median img/s after a
warm-up batch).

The checkpoint's graph is used as saved. With ``--network`` and the builder flags it is rebuilt
in the textbook formulation (``symbols.textbook_graph``), which has the
same parameters (checked on a test batch) and runs inference faster; MXNet 1.9.1 fails to quantize
the fast formulation's ``elemwise_mul``, so checkpoints saved with it need ``--network``.
Calibration is 'naive' (min/max): 'entropy' loses ~35 accuracy points on these models.

Usage::

    python -m benchmarks.quantize --prefix model/se-resnext-fashion-mnist-14 --epoch 3 \\
        [--network se-resnext --depth 14] [--calib-images 1280] [--output log/quantize.json]
"""
import argparse
import json
import logging
import os
import sys
import time

import numpy as np

LOG = logging.getLogger('quantize')

CALIB_MODES = ('naive', 'entropy')
"""Calibration modes of mx.contrib.quantization."""


def fashion_mnist(split, count=None, side=32):
    """(images N x 3 x side x side float32 0-255, labels N): at 32 as the trainer's .rec files hold
    them (padded by 2), at 28 the original images, as the trainers' 28x28 center crop gives them."""
    import data
    images, labels = data.load_fashion_mnist(split)
    if count is not None:
        images, labels = images[:count], labels[:count]
    rgb = data.to_rgb32(images)
    crop = (rgb.shape[1] - side) // 2
    rgb = rgb[:, crop:crop + side, crop:crop + side]
    return rgb.transpose(0, 3, 1, 2).astype(np.float32), labels.astype(np.int64)


def classifier(sym):
    """The logits ``fc1_output`` of a training graph (no label input)."""
    return sym.get_internals()['fc1_output']


def rebuild(args, num_classes):
    """The checkpoint's network rebuilt with the textbook SE formulation, logits only."""
    import symbols
    from symbols import cpu_fast
    kwargs = dict(image_shape=(3, args.image_size, args.image_size))
    if args.depth is not None:
        kwargs['num_layers'] = args.depth
    if args.num_group is not None:
        kwargs['num_group'] = args.num_group
    with cpu_fast.textbook_graph():
        return classifier(symbols.get_symbol(args.network, num_classes, **kwargs))


def bind(sym, arg_params, aux_params, batch_size, side=32):
    import mxnet as mx
    mod = mx.mod.Module(sym, data_names=('data',), label_names=None, context=mx.cpu())
    mod.bind(data_shapes=[('data', (batch_size, 3, side, side))], for_training=False)
    mod.set_params(arg_params, aux_params)
    return mod


def evaluate(mod, images, labels, batch_size):
    """(top-1 accuracy, median img/s over full batches, predictions) on ``images``."""
    import mxnet as mx
    predictions, times = [], []
    for start in range(0, len(images), batch_size):
        chunk = images[start:start + batch_size]
        padded = np.zeros((batch_size,) + chunk.shape[1:], dtype=np.float32)
        padded[:len(chunk)] = chunk
        tic = time.perf_counter()
        mod.forward(mx.io.DataBatch([mx.nd.array(padded)]), is_train=False)
        logits = mod.get_outputs()[0].asnumpy()
        if len(chunk) == batch_size:
            times.append(time.perf_counter() - tic)
        predictions.append(logits[:len(chunk)].argmax(axis=1))
    predictions = np.concatenate(predictions)
    speed = batch_size / float(np.median(times[1:] if len(times) > 1 else times))
    return float((predictions == labels).mean()), speed, predictions


def quantize(sym, arg_params, aux_params, calib_images, batch_size, calib_mode):
    import mxnet as mx
    from mxnet.contrib import quantization
    calib = mx.io.NDArrayIter(data=calib_images, batch_size=batch_size, data_name='data')
    logger = logging.getLogger('quantization')
    logger.setLevel(logging.WARNING)
    return quantization.quantize_model_mkldnn(
        sym, arg_params, aux_params, data_names=('data',), label_names=(), ctx=mx.cpu(),
        calib_mode=calib_mode, calib_data=calib,
        num_calib_examples=len(calib_images), quantized_dtype='auto', logger=logger)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--prefix', required=True, help='checkpoint prefix')
    parser.add_argument('--epoch', type=int, required=True, help='checkpoint epoch')
    parser.add_argument('--network', help='registry network: rebuild the graph in the textbook '
                                          'SE formulation (same parameters)')
    parser.add_argument('--depth', type=int, help='with --network: its depth')
    parser.add_argument('--num-group', type=int, help='with --network: its groups')
    parser.add_argument('--batch-size', type=int, default=128)
    parser.add_argument('--image-size', type=int, default=32, choices=(28, 32),
                        help='input side: 32 (the stored records) or 28 (--image-shape 3,28,28 '
                             'models, such as make train\'s)')
    parser.add_argument('--calib-images', type=int, default=1280,
                        help='first N Fashion-MNIST training images used for calibration')
    parser.add_argument('--calib-mode', default='naive', choices=CALIB_MODES,
                        help='naive: min/max of the calibration activations; entropy: KL-optimal '
                             'thresholds (loses ~35 points on the make-train model)')
    parser.add_argument('--threads', type=int, default=2, help='OpenMP threads (OMP_NUM_THREADS)')
    parser.add_argument('--output', default=os.path.join('log', 'quantize.json'))
    args = parser.parse_args(argv)
    os.environ['OMP_NUM_THREADS'] = str(args.threads)
    logging.basicConfig(level=logging.INFO, format='%(asctime)s %(message)s')
    import mxnet as mx

    test_images, test_labels = fashion_mnist('val', side=args.image_size)
    if os.path.isfile('%s-symbol.json' % args.prefix):
        sym, arg_params, aux_params = mx.model.load_checkpoint(args.prefix, args.epoch)
        sym = classifier(sym)
    elif args.network:
        saved = mx.nd.load('%s-%04d.params' % (args.prefix, args.epoch))
        arg_params = {k[4:]: v for k, v in saved.items() if k.startswith('arg:')}
        aux_params = {k[4:]: v for k, v in saved.items() if k.startswith('aux:')}
        sym = None
    else:
        parser.error('%s-symbol.json does not exist: give --network and its builder flags'
                     % args.prefix)
    num_classes = arg_params['fc1_bias'].shape[0]
    graph = 'checkpoint graph'
    if args.network and sym is None:
        sym, graph = rebuild(args, num_classes), 'rebuilt, textbook SE'
    elif args.network:
        rebuilt = rebuild(args, num_classes)
        probe = test_images[:args.batch_size]
        outputs = []
        for candidate in (sym, rebuilt):
            mod = bind(candidate, arg_params, aux_params, args.batch_size, args.image_size)
            mod.forward(mx.io.DataBatch([mx.nd.array(probe)]), is_train=False)
            outputs.append(mod.get_outputs()[0].asnumpy())
        error = np.abs(outputs[0] - outputs[1]).max() / np.abs(outputs[1]).max()
        if error > 1e-4:
            parser.error('the rebuilt %s differs from the checkpoint (relative error %.2g): check '
                         '--depth and --num-group' % (args.network, error))
        sym, graph = rebuilt, 'rebuilt, textbook SE'
    calib_images, _ = fashion_mnist('train', args.calib_images, side=args.image_size)

    LOG.info('float32: %s', graph)
    fp32 = bind(sym, arg_params, aux_params, args.batch_size, args.image_size)
    fp32_accuracy, fp32_speed, fp32_pred = evaluate(fp32, test_images, test_labels,
                                                    args.batch_size)
    LOG.info('quantizing (%s calibration on %d training images)', args.calib_mode,
             len(calib_images))
    try:
        qsym, qarg, qaux = quantize(sym, arg_params, aux_params, calib_images, args.batch_size,
                                    args.calib_mode)
        int8 = bind(qsym, qarg, qaux, args.batch_size, args.image_size)
        int8_accuracy, int8_speed, int8_pred = evaluate(int8, test_images, test_labels,
                                                        args.batch_size)
    except mx.base.MXNetError as err:
        # MXNet 1.9.1 quantizes the fast SE formulation's elemwise_mul with mismatched int8/uint8
        # inputs; the textbook formulation (--network) quantizes.
        parser.error('quantizing the %s failed (%s); rebuild it in the textbook SE formulation '
                     'with --network and its builder flags' % (graph, str(err).strip().splitlines()[-1]))
    quantized_ops = sorted({node['op'] for node in json.loads(qsym.tojson())['nodes']
                            if 'quantiz' in node['op'] or node['op'].startswith('_sg_mkldnn')})
    results = {
        'checkpoint': '%s-%04d' % (args.prefix, args.epoch), 'graph': graph,
        'threads': args.threads, 'batch_size': args.batch_size, 'test_images': len(test_images),
        'calibration': dict(mode=args.calib_mode, images=len(calib_images)),
        'float32': dict(accuracy=fp32_accuracy, img_per_sec=fp32_speed),
        'int8': dict(accuracy=int8_accuracy, img_per_sec=int8_speed),
        'accuracy_change': int8_accuracy - fp32_accuracy,
        'speed_ratio': int8_speed / fp32_speed,
        'prediction_agreement': float((fp32_pred == int8_pred).mean()),
        'int8_graph_ops': quantized_ops,
    }
    print('%s (%s), %d test images, batch %d, %d threads' % (
        results['checkpoint'], graph, len(test_images), args.batch_size, args.threads))
    print('%-8s %9s %9s' % ('', 'top-1', 'img/s'))
    for name in ('float32', 'int8'):
        print('%-8s %8.2f%% %9.1f' % (name, 100 * results[name]['accuracy'],
                                      results[name]['img_per_sec']))
    print('int8 - float32: %+.2f points; speed x%.2f; same prediction on %.2f%% of images' % (
        100 * results['accuracy_change'], results['speed_ratio'],
        100 * results['prediction_agreement']))
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, 'w') as stream:
        json.dump(results, stream, indent=1)
    return 0


if __name__ == '__main__':
    sys.exit(main())
