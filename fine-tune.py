"""Fine-tune a trained checkpoint on a new data set: a new ``fc1`` for ``--num-classes``, then train.

The network is the pretrained checkpoint's graph with its classifier ``fc1`` (selected by that exact
name) replaced by a freshly initialised one of ``--num-classes`` outputs; every other parameter
starts from the checkpoint. Training is the shared trainer's (``senet/fit.py``): the same flags, logs,
checkpoints and resume (``--model-load-epoch N --retrain`` continues a fine-tuning run). The
network flags (``--network``, ``--depth``, ``--num-group``, ``--drop-out``, ...) do not apply: the
graph comes from the checkpoint.

Example::

    python fine-tune.py --pretrained-prefix model/se-resnext-fashion-mnist-29 --pretrained-epoch 12 \\
        --data-train data/shoes/shoes_train.rec --data-val data/shoes/shoes_val.rec \\
        --num-classes 2 --image-shape 3,32,32 --num-epochs 4 --lr 0.01
"""
import sys

from senet import threads

threads.configure(sys.argv[1:])

from senet import arguments, fit, inference  # noqa: E402  (MXNet must load after OMP_NUM_THREADS is set)

CLASSIFIER = 'fc1'
CLASSIFIER_PARAMS = ('fc1_weight', 'fc1_bias')

DEFAULTS = dict(network='se-resnext', data_type='custom', lr=0.01, num_epochs=8,
                lr_step_epochs='6', model_prefix='model/fine-tune', log_file='log/fine-tune.log')
"""Fine-tuning presets: a lower learning rate and a short schedule than training from scratch.
``network`` only satisfies the shared argument checks; the graph comes from the checkpoint."""


def add_args(parser):
    group = parser.add_argument_group('fine-tuning')
    group.add_argument('--pretrained-prefix', required=True,
                       help="prefix of the checkpoint to start from (the path before "
                            "'-symbol.json')")
    group.add_argument('--pretrained-epoch', type=int, required=True,
                       help='epoch of the checkpoint to start from')


def replace_classifier(symbol, num_classes):
    """``symbol`` with ``fc1`` (exact name) replaced by a new one of ``num_classes`` outputs."""
    import mxnet as mx
    internals = symbol.get_internals()
    if CLASSIFIER + '_output' not in internals.list_outputs():
        raise arguments.UsageError('the pretrained graph has no layer named %s to replace' % CLASSIFIER)
    features = internals[CLASSIFIER + '_output'].get_children()[0]
    fc1 = mx.sym.FullyConnected(data=features, num_hidden=num_classes, name=CLASSIFIER)
    return mx.sym.SoftmaxOutput(data=fc1, name='softmax')


def prepare(args):
    """The new network and the pretrained parameters for ``fit.fit`` (all but the classifier's)."""
    try:
        symbol, arg_params, aux_params = inference.load_checkpoint(args.pretrained_prefix,
                                                                   args.pretrained_epoch)
    except inference.InferenceError as err:
        raise arguments.UsageError('--pretrained-prefix/--pretrained-epoch: %s' % err) from None
    network = replace_classifier(symbol, args.num_classes)
    initial = {name: value for name, value in arg_params.items()
               if name not in CLASSIFIER_PARAMS}
    expected = set(network.list_arguments()) - {'data', 'softmax_label'} - set(CLASSIFIER_PARAMS)
    lacking = sorted(expected - set(initial)) + sorted(
        set(network.list_auxiliary_states()) - set(aux_params))
    if lacking:
        raise arguments.UsageError('the pretrained params lack %s' % ', '.join(lacking[:5]))
    return dict(symbol=network, arg_params=initial, aux_params=aux_params)


def main(argv=None):
    return fit.main(argv, description=__doc__, add_args=add_args, prepare=prepare, **DEFAULTS)


if __name__ == '__main__':
    sys.exit(main())
