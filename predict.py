"""Classify image files with a trained checkpoint: the top-k classes and their probabilities.

Images may be PNG, JPEG or anything else OpenCV decodes, of any size, gray or colour. They are
prepared as the model card says (input size, gray or RGB, stretched or padded; see senet/inference.py),
or as ``--image-shape``/``--color``/``--resize`` say for a checkpoint without a card.

Examples::

    python predict.py --model pretrained/se-resnext-fashion-mnist-14 shirt.png boot.jpg
    python predict.py --prefix model/se-resnext-fashion-mnist-14 --epoch 5 --image-shape 3,28,28 \\
        --color gray --resize pad --top-k 3 shirt.png
"""
import sys

from senet import threads

threads.configure(sys.argv[1:])

import numpy as np  # noqa: E402

from senet import inference  # noqa: E402  (MXNet must load after OMP_NUM_THREADS is set)
from senet.arguments import OneLineParser  # noqa: E402

MAX_BATCH = 32
"""Images are classified in batches of at most this many."""


def build_parser():
    parser = OneLineParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('images', nargs='+', help='image files')
    inference.add_model_args(parser)
    parser.add_argument('--top-k', type=int, default=5, help='classes to print per image')
    return parser


def predict(args):
    """Print ``path: name (probability), ...`` for each image, most probable first."""
    import mxnet as mx
    if args.top_k < 1:
        raise inference.InferenceError('--top-k must be at least 1, got %d' % args.top_k)
    prefix, epoch, card, image_shape = inference.resolve_model(args)
    settings = dict(card['input']) if card else {}
    color = args.color or settings.get('color', 'rgb')
    resize = args.resize or settings.get('resize', 'resize')
    content_size = settings.get('content_size') if not args.image_shape else None
    fill = settings.get('fill', 0)
    inputs = [inference.preprocess(inference.read_image(path), image_shape, color=color,
                                   resize=resize, content_size=content_size, fill=fill)
              for path in args.images]
    symbol, arg_params, aux_params = inference.load_checkpoint(prefix, epoch)
    batch_size = min(len(inputs), MAX_BATCH)
    mod = inference.inference_module(symbol, arg_params, aux_params,
                                     (batch_size,) + tuple(image_shape))
    probs = []
    for start in range(0, len(inputs), batch_size):
        chunk = np.stack(inputs[start:start + batch_size])
        filled = np.zeros((batch_size,) + chunk.shape[1:], dtype=np.float32)
        filled[:len(chunk)] = chunk
        mod.forward(mx.io.DataBatch([mx.nd.array(filled)]), is_train=False)
        probs.append(mod.get_outputs()[0].asnumpy()[:len(chunk)])
    probs = np.concatenate(probs)
    names = inference.class_names(args.classes, card, probs.shape[1])
    for path, prob in zip(args.images, probs):
        top = np.argsort(-prob, kind='stable')[:args.top_k]
        print('%s: %s' % (path, ', '.join('%s (%.4f)' % (names[i], prob[i]) for i in top)))


def main(argv=None):
    return inference.run_cli(build_parser(), predict, argv)


if __name__ == '__main__':
    sys.exit(main())
