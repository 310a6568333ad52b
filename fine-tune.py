"""Fine-tune a trained checkpoint on a new data set: a new ``fc1`` for ``--num-classes``, then train.

The pretrained model is a model directory (``--model DIR``: a ``make_model_card.py`` or
``convert_weights.py`` directory, whose card names the checkpoint) or a checkpoint
(``--pretrained-prefix P --pretrained-epoch N``). The network is its graph with the classifier
``fc1`` (selected by that exact name) replaced by a freshly initialised one of ``--num-classes``
outputs; every other parameter starts from the checkpoint. The graph ends in global pooling, so
``--image-shape`` need not be the pretrained input size: any size the graph's strided layers
accept (every size for SE-ResNeXt and SE-ResNet, 5x5 and up for SENet-154, 75x75 and up for the
Inceptions); a smaller one is a one-line error naming the smallest. Training is the shared
trainer's (``senet/fit.py``): the same flags, logs, checkpoints and resume (``--model-load-epoch N
--retrain`` continues a fine-tuning run). The network flags (``--network``, ``--depth``,
``--num-group``, ``--drop-out``, ...) do not apply: the graph comes from the checkpoint.

Example::

    python fine-tune.py --pretrained-prefix model/se-resnext-fashion-mnist-14 --pretrained-epoch 5 \\
        --data-train data/shoes/shoes_train.rec --data-val data/shoes/shoes_val.rec \\
        --num-classes 2 --image-shape 3,28,28 --num-epochs 4 --lr 0.01
    python fine-tune.py --model pretrained/seresnext50_32x4d-timm \\
        --data-train data/products/products_train.rec --data-val data/products/products_val.rec \\
        --num-classes 12 --image-shape 3,224,224 --batch-size 32 --lr 0.001 --num-epochs 10
"""
import contextlib
import io
import logging
import os
import re
import sys

from senet import threads

threads.configure(sys.argv[1:])

from senet import arguments, fit, inference  # noqa: E402  (MXNet must load after OMP_NUM_THREADS is set)

CLASSIFIER = 'fc1'
CLASSIFIER_PARAMS = ('fc1_weight', 'fc1_bias')
MAX_SEARCHED_SIDE = 1024
"""Input sides up to which a too-small ``--image-shape`` error looks for the smallest one."""
LOG = logging.getLogger('senet')

DEFAULTS = dict(network='se-resnext', data_type='custom', lr=0.01, num_epochs=8,
                lr_step_epochs='6', model_prefix='model/fine-tune', log_file='log/fine-tune.log')
"""Fine-tuning presets: a lower learning rate and a short schedule than training from scratch.
``network`` only satisfies the shared argument checks; the graph comes from the checkpoint."""


def add_args(parser):
    group = parser.add_argument_group(
        'fine-tuning', 'the model to start from: --model DIR, or --pretrained-prefix with '
                       '--pretrained-epoch')
    group.add_argument('--model',
                       help='model directory with a card.json (pretrained/<name>, or the --output '
                            'of make_model_card.py or convert_weights.py)')
    group.add_argument('--pretrained-prefix',
                       help="prefix of the checkpoint to start from (the path before "
                            "'-symbol.json')")
    group.add_argument('--pretrained-epoch', type=int,
                       help='epoch of the checkpoint to start from')


def pretrained_checkpoint(args):
    """(prefix, epoch, card or None) of the model named by ``--model`` or the prefix flags."""
    prefix_flags = args.pretrained_prefix is not None or args.pretrained_epoch is not None
    if bool(args.model) == prefix_flags:
        raise arguments.UsageError('give either --model DIR (a model directory with a card.json) '
                                   'or --pretrained-prefix P --pretrained-epoch N')
    if args.model:
        if not os.path.isfile(os.path.join(args.model, inference.CARD_FILE)):
            raise arguments.UsageError(
                '--model %s has no %s: give a model directory (make_model_card.py or '
                'convert_weights.py writes one), or a checkpoint with --pretrained-prefix P '
                '--pretrained-epoch N' % (args.model, inference.CARD_FILE))
        try:
            card = inference.read_card(args.model)
            inference.require_float32(args.model, card, 'fine-tune.py')
        except inference.InferenceError as err:
            raise arguments.UsageError('--model: %s' % err) from None
        return inference.card_prefix(args.model, card), card['epoch'], card
    if args.pretrained_prefix is None or args.pretrained_epoch is None:
        raise arguments.UsageError('--pretrained-prefix and --pretrained-epoch go together: the '
                                   'checkpoint path before "-symbol.json" and its epoch')
    return args.pretrained_prefix, args.pretrained_epoch, None


def replace_classifier(symbol, num_classes):
    """``symbol`` with ``fc1`` (exact name) replaced by a new one of ``num_classes`` outputs."""
    import mxnet as mx
    internals = symbol.get_internals()
    if CLASSIFIER + '_output' not in internals.list_outputs():
        raise arguments.UsageError('the pretrained graph has no layer named %s to replace' % CLASSIFIER)
    features = internals[CLASSIFIER + '_output'].get_children()[0]
    fc1 = mx.sym.FullyConnected(data=features, num_hidden=num_classes, name=CLASSIFIER)
    return mx.sym.SoftmaxOutput(data=fc1, name='softmax')


def argument_shapes(network, image_shape):
    """({argument: shape}, None) of ``network`` for one ``image_shape`` input, or (None, MXNet's
    message without its stack trace) if its layers refuse that size."""
    import mxnet as mx
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # MXNet prints the arguments on failure
            shapes, _, _ = network.infer_shape(data=(1,) + tuple(image_shape))
    except mx.base.MXNetError as err:
        return None, inference.first_line(err)
    return dict(zip(network.list_arguments(), shapes)), None


def smallest_side(network, channels, largest=MAX_SEARCHED_SIDE):
    """The smallest side S for which ``network`` takes S x S inputs (None up to ``largest``).

    Larger inputs only lengthen the feature maps ahead of the global pooling, so the sizes the
    graph takes are S and up; a bisection finds S.
    """
    if argument_shapes(network, (channels, largest, largest))[0] is None:
        return None
    low, high = 1, largest
    while low < high:
        middle = (low + high) // 2
        if argument_shapes(network, (channels, middle, middle))[0] is None:
            low = middle + 1
        else:
            high = middle
    return low


def check_input_shape(network, arg_params, image_shape):
    """Raise UsageError unless the pretrained parameters fit ``network`` at ``image_shape``."""
    shape_text = ','.join(map(str, image_shape))
    channels = arg_params['bn_data_gamma'].shape[0] if 'bn_data_gamma' in arg_params else None
    if channels is not None and image_shape[0] != channels:
        raise arguments.UsageError('--image-shape %s: the pretrained network takes %d-channel '
                                   'images (e.g. --image-shape %d,%d,%d)'
                                   % (shape_text, channels, channels, image_shape[1],
                                      image_shape[2]))
    shapes, error = argument_shapes(network, image_shape)
    if shapes is None:
        side = smallest_side(network, image_shape[0])
        layer = re.search(r'Error in operator (\S+?):', error or '')
        raise arguments.UsageError('--image-shape %s is too small for the pretrained graph%s; %s'
                                   % (shape_text,
                                      ' (its layer %s refuses it)' % layer.group(1) if layer else '',
                                      'it takes %dx%d and larger' % (side, side) if side else
                                      'MXNet says: %s' % error))
    for name, value in sorted(arg_params.items()):
        if name in shapes and tuple(shapes[name]) != tuple(value.shape):
            raise arguments.UsageError('the pretrained %s has shape %s, but the graph at '
                                       '--image-shape %s needs %s' % (name, tuple(value.shape),
                                                                      shape_text,
                                                                      tuple(shapes[name])))


def prepare(args):
    """The new network and the pretrained parameters for ``fit.fit`` (all but the classifier's)."""
    prefix, epoch, card = pretrained_checkpoint(args)
    try:
        symbol, arg_params, aux_params = inference.load_checkpoint(prefix, epoch)
    except inference.InferenceError as err:
        flags = '--model' if card else '--pretrained-prefix/--pretrained-epoch'
        raise arguments.UsageError('%s: %s' % (flags, err)) from None
    network = replace_classifier(symbol, args.num_classes)
    initial = {name: value for name, value in arg_params.items()
               if name not in CLASSIFIER_PARAMS}
    expected = set(network.list_arguments()) - {'data', 'softmax_label'} - set(CLASSIFIER_PARAMS)
    lacking = sorted(expected - set(initial)) + sorted(
        set(network.list_auxiliary_states()) - set(aux_params))
    if lacking:
        raise arguments.UsageError('the pretrained params lack %s' % ', '.join(lacking[:5]))
    check_input_shape(network, initial, args.image_shape)
    pretrained_shape = tuple(card['input']['image_shape']) if card else None
    if pretrained_shape and pretrained_shape != tuple(args.image_shape):
        LOG.info('fine-tuning at %s; the pretrained model took %s', 'x'.join(
            map(str, args.image_shape[1:])), 'x'.join(map(str, pretrained_shape[1:])))
    return dict(symbol=network, arg_params=initial, aux_params=aux_params)


def main(argv=None):
    return fit.main(argv, description=__doc__, add_args=add_args, prepare=prepare, **DEFAULTS)


if __name__ == '__main__':
    sys.exit(main())
