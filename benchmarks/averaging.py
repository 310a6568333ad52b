"""What averaging adds to trained checkpoints: weights of the last epochs, mirrored views, two runs.

Scores one checkpoint on a ``.rec`` file (as ``score.py``), then

- the average of the last K epochs' parameters (BatchNorm statistics included; what ``--ema``
  approaches at the end of a cosine schedule), for each K of ``--last``;
- with ``--flip``, the mean of the probabilities of each image and its mirror image (test-time
  augmentation: an evaluation trick, not a training recipe);
- with ``--ensemble PREFIX:EPOCH``, the mean of the probabilities of the two checkpoints (twice
  the training compute).

Each line is the top-1 over every record and its difference to the checkpoint alone; the
checkpoint's errors are counted by true class::

    python -m benchmarks.averaging --prefix model/se-resnext-fashion-mnist-14-w3 --epoch 26 \\
        --last 2,3,6 --flip --ensemble model/se-resnext-fashion-mnist-26-w2:23 \\
        --image-shape 3,28,28 --data-val data/fashion-mnist/val.rec
"""
import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from senet import threads  # noqa: E402

threads.configure([])

import mxnet as mx  # noqa: E402
import numpy as np  # noqa: E402

import data  # noqa: E402
from senet import inference  # noqa: E402


def check_last(last, epoch):
    """A one-line error unless 1 <= ``last`` <= ``epoch``."""
    if last < 1 or last > epoch:
        raise inference.InferenceError('--last %d: average 1 to %d epochs (those up to --epoch)'
                                       % (last, epoch))


def average_params(prefix, epoch, last):
    """(symbol, arg_params, aux_params): the mean of epochs ``epoch - last + 1`` .. ``epoch``."""
    check_last(last, epoch)
    symbol, arg_sum, aux_sum = inference.load_checkpoint(prefix, epoch)
    arg_sum = {name: value.astype('float64') for name, value in arg_sum.items()}
    aux_sum = {name: value.astype('float64') for name, value in aux_sum.items()}
    for other in range(epoch - last + 1, epoch):
        _, arg_params, aux_params = inference.load_checkpoint(prefix, other)
        for total, params in ((arg_sum, arg_params), (aux_sum, aux_params)):
            if set(params) != set(total):
                raise inference.InferenceError('epoch %d of %s holds other parameters than epoch '
                                               '%d: average epochs of one run' % (other, prefix, epoch))
            for name, value in params.items():
                total[name] += value.astype('float64')

    def mean(total):
        return {name: (value / last).astype('float32') for name, value in total.items()}
    return symbol, mean(arg_sum), mean(aux_sum)


def predict(symbol, arg_params, aux_params, rec_path, image_shape, batch_size=128, flip=False):
    """(probabilities (N, K), labels (N,)) over every record; with ``flip``, of mirrored images."""
    mod = inference.inference_module(symbol, arg_params, aux_params, (batch_size,) + image_shape)
    num_classes = mod.output_shapes[0][1][1]
    probs, labels = [], []
    batches = data.make_rec_iter(rec_path, image_shape, batch_size)
    for batch in inference.checked_labels(batches, rec_path, num_classes):
        images = batch.data[0].flip(axis=3) if flip else batch.data[0]
        mod.forward(mx.io.DataBatch([images]), is_train=False)
        keep = images.shape[0] - batch.pad
        probs.append(mod.get_outputs()[0].asnumpy()[:keep])
        labels.append(batch.label[0].asnumpy()[:keep].astype(int))
    return np.concatenate(probs), np.concatenate(labels)


def top1(probs, labels):
    """The fraction of rows of ``probs`` whose largest value is at the row's label."""
    return float((probs.argmax(axis=1) == labels).mean())


def errors_by_class(probs, labels):
    """Misclassified images of each true class (index = class)."""
    wrong = labels[probs.argmax(axis=1) != labels]
    return np.bincount(wrong, minlength=probs.shape[1]).tolist()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--prefix', required=True, help='checkpoint prefix of the run')
    parser.add_argument('--epoch', type=int, required=True, help='its last epoch')
    parser.add_argument('--last', default='2,3', help='comma-separated numbers of last epochs to average')
    parser.add_argument('--flip', action='store_true', help='also score with mirrored views')
    parser.add_argument('--ensemble', metavar='PREFIX:EPOCH', help='also score the mean with this checkpoint')
    parser.add_argument('--image-shape', default='3,28,28', help='C,H,W of the network input')
    parser.add_argument('--data-val', required=True, help='the .rec file to score')
    parser.add_argument('--batch-size', type=int, default=128, help='images per forward pass')
    args = parser.parse_args(argv)
    try:
        image_shape = tuple(int(v) for v in args.image_shape.split(','))
        lasts = [int(v) for v in args.last.split(',') if v]
        if args.ensemble and ':' not in args.ensemble:
            raise inference.InferenceError('--ensemble %s: give PREFIX:EPOCH' % args.ensemble)
        for last in lasts:
            check_last(last, args.epoch)
        data.check_rec(args.data_val, '--data-val')
        loaded = inference.load_checkpoint(args.prefix, args.epoch)
        probs, labels = predict(*loaded, args.data_val, image_shape, args.batch_size)
        base = top1(probs, labels)
        print('%s epoch %d: top-1 %.4f (%d images)' % (args.prefix, args.epoch, base, len(labels)))
        print('its errors by true class: %s' % ', '.join(
            '%d: %d' % (label, count) for label, count in enumerate(errors_by_class(probs, labels))))

        def report(what, value):
            print('%-44s top-1 %.4f  %+.4f' % (what, value, value - base), flush=True)
        for last in lasts:
            averaged = average_params(args.prefix, args.epoch, last)
            report('mean weights of the last %d epochs' % last,
                   top1(predict(*averaged, args.data_val, image_shape, args.batch_size)[0], labels))
        if args.flip:
            mirrored, _ = predict(*loaded, args.data_val, image_shape, args.batch_size, flip=True)
            report('mean of image and mirror image', top1(probs + mirrored, labels))
        if args.ensemble:
            prefix, epoch = args.ensemble.rsplit(':', 1)
            other, _ = predict(*inference.load_checkpoint(prefix, int(epoch)), args.data_val,
                               image_shape, args.batch_size)
            report('mean with %s epoch %s' % (prefix, epoch), top1(probs + other, labels))
    except (inference.InferenceError, data.DataError, ValueError) as err:
        sys.exit('error: %s' % err)
    except mx.base.MXNetError as err:
        sys.exit('error: cannot score %s: %s' % (args.data_val, inference.first_line(err)))
    return 0


if __name__ == '__main__':
    sys.exit(main())
