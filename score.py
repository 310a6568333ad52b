"""Score a trained checkpoint on a RecordIO file: top-1 and top-5 accuracy and images per second.

Every record counts exactly once: the evaluation is ``senet.metrics.evaluate`` on a fresh
``data.make_rec_iter`` iterator (MXNet 1.9.1's ImageRecordIter reports a wrong ``pad`` after a
reset). The speed includes JPEG/PNG decoding by the iterator's threads.

Examples::

    python score.py --model pretrained/se-resnext-fashion-mnist-14 --data-val data/fashion-mnist/val.rec
    python score.py --prefix model/se-resnext-fashion-mnist-14 --epoch 5 --image-shape 3,28,28 \\
        --data-val data/fashion-mnist/val.rec --batch-size 128
"""
import sys

from senet import threads

threads.configure(sys.argv[1:])

import data  # noqa: E402  (MXNet must load after OMP_NUM_THREADS is set)
from senet import inference  # noqa: E402
from senet.arguments import OneLineParser  # noqa: E402


def build_parser():
    parser = OneLineParser(description=__doc__.split('\n\n')[0])
    inference.add_model_args(parser, preprocessing=False)
    parser.add_argument('--data-val', required=True, help='the .rec file to score')
    parser.add_argument('--batch-size', type=int, default=64, help='images per forward pass')
    return parser


def format_result(result):
    """One line: top-1, top-5, images and speed."""
    top5 = 'n/a (5 classes or fewer)' if result['top5'] is None else '%.4f' % result['top5']
    return ('top-1 %.4f  top-5 %s  cross-entropy %.4f  %d images in %.1f s: %.1f img/s'
            % (result['top1'], top5, result['cross_entropy'], result['images'],
               result['seconds'], result['img_per_sec']))


def score(args):
    if args.batch_size < 1:
        raise inference.InferenceError('--batch-size must be positive, got %d' % args.batch_size)
    prefix, epoch, _, image_shape = inference.resolve_model(args)
    try:
        data.check_rec(args.data_val, '--data-val')
    except data.DataError as err:
        raise inference.InferenceError(str(err)) from None
    symbol, arg_params, aux_params = inference.load_checkpoint(prefix, epoch)
    result = inference.score(symbol, arg_params, aux_params, args.data_val, image_shape,
                             batch_size=args.batch_size)
    print('%s epoch %d on %s (%s, batch %d)' % (prefix, epoch, args.data_val,
                                                 'x'.join(map(str, image_shape)), args.batch_size))
    print(format_result(result))
    return result


def main(argv=None):
    return inference.run_cli(build_parser(), score, argv)


if __name__ == '__main__':
    sys.exit(main())
