"""Shared training code for every trainer: arguments, contexts, the training loop, checkpoints, resume.

The trainers (``train_se_resnext_w_d.py``, ...) only choose their family's defaults and call
:func:`main`. Checkpoints are ``<prefix>-symbol.json``, ``<prefix>-%04d.params`` and
``<prefix>-%04d.states`` after every epoch; ``--model-load-epoch N --retrain`` restores parameters,
optimizer state and the learning-rate position and continues with epoch N + 1.
"""
import argparse
import hashlib
import logging
import os
import signal
import sys
import threading
import time

import numpy as np

import data
import symbols
from senet import checkpoint, training_log
from senet.lr_schedule import CosineScheduler, EpochStepScheduler
from symbols import SMALL_IMAGE_MAX_SIDE, parse_image_shape, textbook_graph, training_graph

LOG = logging.getLogger('senet')

KV_STORES = ('local', 'device', 'dist_sync', 'dist_device_sync', 'dist_async')
LR_MODES = ('step', 'cosine')

SCHEDULES = {
    'imagenet': dict(num_epochs=100, lr_step_epochs='30,60,90'),
    'cifar10': dict(num_epochs=200, lr_step_epochs='100,150'),
    'fashion-mnist': dict(num_epochs=12, lr_step_epochs='6,9'),
    'custom': dict(num_epochs=30, lr_step_epochs='10,20'),
}
"""Default epochs and learning-rate steps (in epochs) per data type; steps lie inside the run."""

SMALL_IMAGE_DEPTH = 29
"""Default depth for inputs of 32x32 or less (three stages of three bottleneck units)."""

IMAGENET_DEPTH = 50

BENCHMARK_WARMUP = 2
BENCHMARK_BATCHES = 10


class UsageError(Exception):
    """A problem with the command line or the files it names; the message says how to fix it."""


class OneLineParser(argparse.ArgumentParser):
    """ArgumentParser whose errors are one line naming the problem and pointing at ``--help``."""

    def error(self, message):
        self.exit(2, '%s: error: %s (see --help)\n' % (self.prog, message))


def add_fit_args(parser):
    """Model, optimisation, checkpoint and device flags (the original's, plus MXNet example's)."""
    net = parser.add_argument_group('network')
    net.add_argument('--network', choices=sorted(symbols.NETWORKS),
                     help='registry network to train')
    net.add_argument('--depth', type=int,
                     help='network depth; default 50 for 224x224 inputs, %d for 32x32'
                          % SMALL_IMAGE_DEPTH)
    net.add_argument('--num-group', type=int, default=32,
                     help='groups (cardinality) of the grouped 3x3 convolutions')
    net.add_argument('--widen-factor', type=int,
                     help='multiply the stage widths of a small-image network (height <= 32) by '
                          'this, as in wide residual networks; default 1')
    net.add_argument('--drop-out', type=float,
                     help="dropout probability before the classifier fc1; default: the network's "
                          '(0 for SE-ResNeXt and SE-ResNet, 0.2 for SENet-154 and the Inceptions)')
    net.add_argument('--bn-mom', type=float, default=0.9, help='momentum of BatchNorm statistics')
    net.add_argument('--workspace', type=int, default=512, help='convolution workspace (MB)')
    net.add_argument('--version', type=int, choices=(1, 2),
                     help='SE-ResNet version: 1 post-activation (the paper), 2 pre-activation '
                          '(the original repository); other networks ignore it')
    net.add_argument('--memonger', action='store_true',
                     help='trade compute for memory: recompute cheap activations in backward '
                          '(sets MXNET_BACKWARD_DO_MIRROR=1)')

    opt = parser.add_argument_group('optimisation')
    opt.add_argument('--optimizer', default='nag', help='MXNet optimizer name (nag, sgd, adam, ...)')
    opt.add_argument('--lr', type=float, default=0.1, help='initial learning rate')
    opt.add_argument('--mom', type=float, default=0.9, help='momentum (sgd, nag)')
    opt.add_argument('--wd', type=float, default=1e-4, help='weight decay')
    opt.add_argument('--batch-size', type=int, default=256,
                     help='batch size of one worker, split over its devices (a dist_* job '
                          'of N workers trains on N times this per update)')
    opt.add_argument('--num-epochs', type=int, help='epochs to train; default per data type')
    opt.add_argument('--lr-step-epochs', help='comma-separated epochs at which the learning rate '
                                              'is multiplied by --lr-factor; default per data type')
    opt.add_argument('--lr-factor', type=float, default=0.1,
                     help='learning-rate decay factor of --lr-mode step')
    opt.add_argument('--lr-mode', default='step', choices=LR_MODES,
                     help='step: multiply by --lr-factor at --lr-step-epochs; cosine: a half '
                          'cosine from --lr to 0 over --num-epochs (after any warm-up)')
    opt.add_argument('--warmup-epochs', type=float, default=0.0,
                     help='epochs of linear learning-rate warm-up from 0')
    opt.add_argument('--seed', type=int, default=0,
                     help='seed of initialisation, shuffling and augmentation')

    run = parser.add_argument_group('devices, checkpoints and logging')
    run.add_argument('--gpus', default='',
                     help="GPU ids like '0,1,2,3'; empty trains on the CPU")
    run.add_argument('--cpus', type=int, default=1,
                     help='without --gpus: split each batch over this many CPU contexts, as '
                          '--gpus does over GPUs; each context runs its operators on its own '
                          'engine thread with physical cores / N OpenMP threads, unless '
                          'OMP_NUM_THREADS is set (one context: every physical core); a speed-up '
                          'for small networks: set it to the number of cores')
    run.add_argument('--kv-store', default='device', choices=KV_STORES,
                     help='key-value store for gradient aggregation; dist_* need launch.py')
    run.add_argument('--model-prefix', help='checkpoint prefix; default model/<net>-<data>-<depth>')
    run.add_argument('--log-file', help='log file; default log/<net>-<data>-<depth>.log')
    run.add_argument('--model-load-epoch', type=int, default=0,
                     help='with --retrain: resume from the checkpoint of this epoch; -1 resumes '
                          'from the newest one, including one written when a run was stopped')
    run.add_argument('--save-period', type=int, default=1,
                     help='write a checkpoint every this many epochs (and after the last)')
    run.add_argument('--keep-last', type=int, default=0,
                     help='keep only the newest N epochs\' .params/.states (0 keeps all)')
    run.add_argument('--retrain', action='store_true',
                     help='resume training from --model-load-epoch')
    run.add_argument('--frequent', type=int, default=50,
                     help='log training speed and metrics every this many batches')
    run.add_argument('--benchmark', action='store_true',
                     help='train on synthetic data and report img/s; no data files needed')
    return parser


def add_data_args(parser):
    """Data-set flags (see data.py for the data types)."""
    group = parser.add_argument_group('data')
    group.add_argument('--data-type', default='imagenet', choices=sorted(data.DATA_TYPES),
                       help='data set; fashion-mnist is built in')
    group.add_argument('--data-dir', help='directory of the data type\'s .rec files; '
                                          'default ./data/<data-type>/')
    group.add_argument('--data-train', help='training .rec (overrides --data-dir)')
    group.add_argument('--data-val', help='validation .rec (overrides --data-dir)')
    group.add_argument('--image-shape', help='input shape C,H,W; default per data type, raised to '
                                             'the network\'s minimum input side (75 for the '
                                             'Inceptions)')
    group.add_argument('--num-classes', type=int, help='classes; default per data type')
    group.add_argument('--num-examples', type=int,
                       help='training examples per epoch; default per data type')
    group.add_argument('--aug-level', type=int, default=2, choices=(0, 1, 2, 3),
                       help='augmentation: 0 none, 1 crop+mirror, 2 +scale/aspect/colour, '
                            '3 +rotation/shear (levels 2-3 apply to ImageNet)')
    return parser


def build_parser(description=None, networks=None, **defaults):
    """The trainers' parser; ``defaults`` are the trainer's presets, applied before parsing, and
    ``networks`` (default: every registered one) the choices of ``--network``."""
    parser = OneLineParser(description=description,
                           formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_data_args(parser)
    add_fit_args(parser)
    if networks is not None:
        for action in parser._actions:
            if action.dest == 'network':
                action.choices = sorted(networks)
    parser.set_defaults(**defaults)
    return parser


def parse_gpus(text):
    """'0,1' -> [0, 1]; '' -> []."""
    text = text.strip()
    if not text:
        return []
    try:
        ids = [int(part) for part in text.split(',')]
    except ValueError:
        raise UsageError("--gpus %r is not a comma-separated list of GPU ids such as '0,1' (leave "
                         "it empty to use the CPU)" % text) from None
    if any(i < 0 for i in ids) or len(set(ids)) != len(ids):
        raise UsageError('--gpus %r must list distinct non-negative GPU ids' % text)
    return ids


def make_scheduler(args, epoch_updates):
    """The learning-rate schedule of ``--lr-mode``, counting ``epoch_updates`` updates per epoch."""
    if args.lr_mode == 'cosine':
        return CosineScheduler(args.lr, epoch_updates, args.num_epochs, args.warmup_epochs)
    return EpochStepScheduler(args.lr, epoch_updates, args.lr_steps, args.lr_factor,
                              args.warmup_epochs)


def make_contexts(gpus, cpus=1):
    """Contexts for ``--gpus``: the GPUs named, or ``cpus`` CPU contexts (``--cpus``)."""
    import mxnet as mx
    ids = parse_gpus(gpus)
    if cpus < 1 or (ids and cpus != 1):
        raise UsageError('--cpus %d: give a positive number of CPU contexts, and only without '
                         '--gpus' % cpus)
    if not ids:
        return [mx.cpu(i) for i in range(cpus)]
    available = mx.context.num_gpus()
    missing = [i for i in ids if i >= available]
    if missing:
        raise UsageError('--gpus asks for GPU %s but this machine has %d visible GPU(s) (a CPU '
                         'build of MXNet has none); leave --gpus empty to train on the CPU'
                         % (','.join(map(str, missing)), available))
    return [mx.gpu(i) for i in ids]


def parse_step_epochs(text):
    """'30,60' -> [30.0, 60.0], increasing and positive."""
    try:
        steps = [float(part) for part in text.split(',') if part.strip()]
    except ValueError:
        raise UsageError('--lr-step-epochs %r is not a comma-separated list of epochs' % text) \
            from None
    if any(s <= 0 for s in steps) or steps != sorted(steps):
        raise UsageError('--lr-step-epochs %r must be increasing positive epochs' % text)
    return steps


def resolve_args(args):
    """Fill the per-data-type defaults that the user left unset; never overwrite a given value."""
    spec = data.DATA_TYPES[args.data_type]
    schedule = SCHEDULES[args.data_type]
    if args.num_classes is None:
        args.num_classes = spec['num_classes']
    if args.num_classes is None:
        raise UsageError('--num-classes is required with --data-type %s' % args.data_type)
    if args.image_shape is None:
        if spec['image_shape'] is None:
            raise UsageError('--image-shape C,H,W is required with --data-type %s'
                             % args.data_type)
        channels, height, width = spec['image_shape']
        # A network with a minimum input side (the Inceptions: 75) gets small images resized up to
        # it: ImageRecordIter upsamples (bilinear) records smaller than its data_shape.
        min_side = symbols.min_image_size(args.network)
        args.image_shape = '%d,%d,%d' % (channels, max(height, min_side), max(width, min_side))
    try:
        args.image_shape = parse_image_shape(args.image_shape)
    except ValueError as err:
        raise UsageError('--' + str(err).replace('_', '-')) from None
    if args.depth is None and symbols.fixed_depth(args.network) is None:
        small = args.image_shape[1] <= SMALL_IMAGE_MAX_SIDE
        args.depth = SMALL_IMAGE_DEPTH if small else IMAGENET_DEPTH
    if args.num_epochs is None:
        args.num_epochs = schedule['num_epochs']
    if args.lr_step_epochs is None:
        args.lr_step_epochs = schedule['lr_step_epochs']
    args.lr_steps = parse_step_epochs(args.lr_step_epochs)
    if args.data_dir is None:
        args.data_dir = os.path.join('.', 'data', args.data_type)
    tag = '%s-%s' % (args.network, args.data_type)
    if symbols.fixed_depth(args.network) is None:
        tag += '-%d' % args.depth
    if 'version' in symbols.builder_options(args.network) and args.version is not None:
        tag += '-v%d' % args.version
    if args.widen_factor not in (None, 1):
        if 'widen_factor' not in symbols.builder_options(args.network):
            raise UsageError('--widen-factor applies to se-resnext and se-resnet, not to %s'
                             % args.network)
        tag += '-w%d' % args.widen_factor
    if args.model_prefix is None:
        args.model_prefix = os.path.join('model', tag)
    if args.log_file is None:
        args.log_file = os.path.join('log', tag + '.log')
    if args.keep_last < 0:
        raise UsageError('--keep-last must be 0 (keep every epoch) or positive, got %d'
                         % args.keep_last)
    for name in ('batch_size', 'num_epochs', 'frequent', 'num_classes', 'save_period'):
        if getattr(args, name) <= 0:
            raise UsageError('--%s must be positive, got %d' % (name.replace('_', '-'),
                                                               getattr(args, name)))
    if args.model_load_epoch and not args.retrain:
        raise UsageError('--model-load-epoch %d needs --retrain to resume from that checkpoint '
                         '(without it the run would silently start from scratch)'
                         % args.model_load_epoch)
    if args.retrain and (args.model_load_epoch == 0 or args.model_load_epoch < -1):
        raise UsageError('--retrain needs --model-load-epoch N, the epoch to resume from (N >= 1, '
                         'or -1 for the newest checkpoint)')
    if args.model_load_epoch >= args.num_epochs:
        raise UsageError('--model-load-epoch %d is not before --num-epochs %d: nothing to train'
                         % (args.model_load_epoch, args.num_epochs))
    return args


def make_metric(num_classes):
    """Accuracy, top-5 accuracy where there are more than 10 classes, and cross-entropy."""
    import mxnet as mx
    metrics = [mx.metric.Accuracy()]
    if num_classes > 10:
        metrics.append(mx.metric.TopKAccuracy(top_k=5))
    metrics.append(mx.metric.CrossEntropy())
    return mx.metric.CompositeEvalMetric(metrics)


def evaluate(mod, make_iter, num_classes, metric=None):
    """Metrics of ``mod`` over every record of a fresh iterator, padding excluded.

    A fresh iterator reports ``pad`` correctly (NOTES: the 1.9.1 reset bug), so the wrapped-around
    rows of the last batch are dropped and each example counts exactly once. ``metric`` defaults
    to :func:`make_metric`'s (score.py passes one with top-5 for 10 classes).
    """
    import mxnet as mx
    metric = make_metric(num_classes) if metric is None else metric
    count = 0
    for batch in make_iter():
        mod.forward(batch, is_train=False)
        keep = batch.data[0].shape[0] - batch.pad
        outputs = [out[:keep] for out in mod.get_outputs()]
        metric.update([batch.label[0][:keep]], outputs)
        count += keep
    mx.nd.waitall()
    return dict(metric.get_name_value()), count


class SyntheticIter:
    """Endless batches of random pixels and labels for ``--benchmark``."""

    def __init__(self, batch_size, image_shape, num_classes, context):
        import mxnet as mx
        rng = np.random.RandomState(0)
        self.batch = mx.io.DataBatch(
            data=[mx.nd.array(rng.uniform(0, 255, (batch_size,) + tuple(image_shape)),
                              ctx=context)],
            label=[mx.nd.array(rng.randint(0, num_classes, batch_size), ctx=context)], pad=0)

    def __iter__(self):
        return self

    def __next__(self):
        return self.batch


def setup_logging(log_file):
    """Log to the console and to ``log_file`` (its directory is created)."""
    directory = os.path.dirname(os.path.abspath(log_file))
    try:
        os.makedirs(directory, exist_ok=True)
        file_handler = logging.FileHandler(log_file)
    except OSError as err:
        raise UsageError('cannot write the log file %s (%s); choose another --log-file'
                         % (log_file, err.strerror or err)) from None
    formatter = logging.Formatter('%(asctime)s %(message)s')
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, 'senet_handler', False):
            root.removeHandler(handler)
            handler.close()
    console = logging.StreamHandler(sys.stdout)
    for handler in (console, file_handler):
        handler.setFormatter(formatter)
        handler.senet_handler = True
        root.addHandler(handler)
    root.setLevel(logging.INFO)


def discard_log(log_file):
    """Delete ``log_file``, a log this run began, when it records no batch or epoch: the run
    stopped at a usage error before training, and the file would only carry the rejected
    arguments' name. A log with training in it is kept (e.g. a bad label found in epoch 3)."""
    if log_file is None or not os.path.exists(log_file):
        return
    with open(log_file) as stream:
        if 'Epoch[' in stream.read():
            return
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, 'senet_handler', False):
            root.removeHandler(handler)
            handler.close()
    os.remove(log_file)


def tag_worker_logs(rank, num_workers):
    """Put ``[worker RANK/NUM]`` in every line of the trainer's log handlers (distributed jobs)."""
    formatter = logging.Formatter('%%(asctime)s [worker %d/%d] %%(message)s' % (rank, num_workers))
    for handler in logging.getLogger().handlers:
        if getattr(handler, 'senet_handler', False):
            handler.setFormatter(formatter)


def params_digest(arg_params):
    """sha256 of the trainable parameters by name: equal on workers that hold the same weights."""
    digest = hashlib.sha256()
    for name in sorted(arg_params):
        digest.update(name.encode())
        digest.update(arg_params[name].asnumpy().tobytes())
    return digest.hexdigest()


def _format_metrics(metric):
    return '\t'.join('%s=%f' % (name, value) for name, value in metric.get_name_value())


def _format_duration(seconds):
    minutes, seconds = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return '%d:%02d:%02d' % (hours, minutes, seconds)


NETWORK_FLAGS = {'num_layers': 'depth', 'image_shape': 'image_shape', 'num_group': 'num_group',
                 'drop_out': 'drop_out', 'bn_mom': 'bn_mom', 'workspace': 'workspace',
                 'version': 'version', 'widen_factor': 'widen_factor'}
"""Builder keyword -> attribute of the parsed arguments; each network gets those it accepts."""


def build_symbol(args):
    """The symbol of ``args.network`` from the flags its builder accepts (symbols.builder_options)."""
    accepted = symbols.builder_options(args.network)
    kwargs = {key: getattr(args, flag) for key, flag in NETWORK_FLAGS.items()
              if key in accepted and getattr(args, flag, None) is not None}
    return symbols.get_symbol(args.network, args.num_classes, **kwargs)


def training_symbols(args, saved=None):
    """(graph to train, graph to checkpoint), with the same parameters: of ``args.network``, or of
    the textbook graph ``saved`` (fine-tune.py: a checkpoint's network with a new classifier).

    Checkpoints hold the textbook graph (symbols.common.textbook_graph). On the CPU training binds
    the default fast forms, which avoid oneDNN's slow paths in MXNet 1.9.1 (for ``saved``:
    symbols.common.training_graph); with ``--gpus`` it binds the textbook graph as well, since
    those paths do not exist there.
    """
    if saved is not None:
        if args.gpus:
            return saved, saved
        return training_graph(saved, (1,) + tuple(args.image_shape)), saved
    with textbook_graph():
        saved = build_symbol(args)
    return (saved if args.gpus else build_symbol(args)), saved


class TrainingStopped(Exception):
    """Training stopped before its last epoch; ``exit_code`` is the process status to return."""

    def __init__(self, message, exit_code):
        super().__init__(message)
        self.exit_code = exit_code


class StopRequest:
    """Turns SIGINT/SIGTERM into a flag that the training loop reads between batches.

    A second signal gets the default behaviour back (a second Ctrl-C interrupts at once).
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.signum = None
        self._previous = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for signum in self.SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc):
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum, frame):
        self.signum = signum
        signal.signal(signum, self._previous.get(signum, signal.SIG_DFL))
        LOG.warning('%s received: stopping after this batch and saving a checkpoint',
                    signal.Signals(signum).name)


def check_labels(batch, num_classes, rec_path):
    """Raise UsageError when a label of ``batch`` is not a class index below ``num_classes``."""
    labels = batch.label[0].asnumpy()
    if labels.size and (labels.max() >= num_classes or labels.min() < 0):
        bad = labels.max() if labels.max() >= num_classes else labels.min()
        raise UsageError('%s holds label %g but --num-classes is %d; give --num-classes larger '
                         'than every label' % (rec_path, bad, num_classes))


def nonfinite_name(arrays):
    """Name of the first array holding a NaN or inf, or None."""
    for name, array in arrays.items():
        if not np.isfinite(array.asnumpy()).all():
            return name
    return None


def last_good_checkpoint(prefix):
    epochs = checkpoint.saved_epochs(prefix)
    if not epochs:
        return 'none saved yet'
    return '%s (resume with --model-load-epoch %d --retrain)' % (
        checkpoint.checkpoint_paths(prefix, epochs[-1])[1], epochs[-1])


def resolve_data(args, num_workers):
    """(train .rec, val .rec or None, examples per epoch) for ``args``."""
    if args.benchmark:
        return None, None, args.batch_size * (BENCHMARK_WARMUP + BENCHMARK_BATCHES)
    try:
        train_rec, val_rec = data.resolve_rec_files(args.data_type, args.data_dir, args.aug_level,
                                                    args.data_train, args.data_val)
    except data.DataError as err:
        raise UsageError(str(err)) from None
    num_examples = args.num_examples
    if num_examples is None:
        num_examples = data.DATA_TYPES[args.data_type]['num_examples'] \
            or data.count_records(train_rec)
    if num_examples is None:
        raise UsageError('--num-examples is required: %s has no .idx file to count its records'
                         % train_rec)
    return train_rec, val_rec, num_examples


def prepare_checkpoint_dir(prefix):
    directory = os.path.dirname(os.path.abspath(prefix))
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as err:
        raise UsageError('cannot create the checkpoint directory %s (%s); choose another '
                         '--model-prefix' % (directory, err.strerror or err)) from None
    if not os.access(directory, os.W_OK):
        raise UsageError('the checkpoint directory %s is not writable; choose another '
                         '--model-prefix' % directory)


def load_resume_point(args):
    """(epoch, batch, arg_params, aux_params, states path) to start from; zeros for a fresh run."""
    if not args.retrain:
        return 0, 0, None, None, None
    try:
        epoch, batch, params_path, states_path = checkpoint.resume_point(args.model_prefix,
                                                                         args.model_load_epoch)
        arg_params, aux_params = checkpoint.load_params(params_path)
    except checkpoint.CheckpointError as err:
        raise UsageError(str(err)) from None
    if epoch >= args.num_epochs:
        raise UsageError('the checkpoint of epoch %d is not before --num-epochs %d: nothing to '
                         'train; raise --num-epochs' % (epoch, args.num_epochs))
    LOG.info('resuming from %s: epoch %d, batch %d', params_path, epoch, batch)
    return epoch, batch, arg_params, aux_params, states_path


def write_curve(args):
    """Redraw the run's learning-curve PNG beside its log; a failure only warns."""
    try:
        training_log.plot([args.log_file], training_log.curve_path(args.log_file),
                          title=os.path.splitext(os.path.basename(args.log_file))[0])
    except (OSError, ValueError) as err:
        LOG.warning('could not draw the learning curve: %s', err)


def fit(args, symbol=None, arg_params=None, aux_params=None):
    """Train ``args.network`` as the parsed arguments say; returns the final validation metrics.

    Fine-tuning passes ``symbol``, a textbook graph used instead of ``args.network``'s (trained in
    its training form, :func:`training_symbols`), and initial ``arg_params``/
    ``aux_params``: the initializer fills only the parameters they lack (the new classifier).
    ``--retrain`` resumes from ``--model-prefix``'s checkpoint instead.
    """
    import mxnet as mx
    if args.memonger:
        os.environ['MXNET_BACKWARD_DO_MIRROR'] = '1'
    contexts = make_contexts(args.gpus, args.cpus)
    if args.cpus == 1 and not args.gpus:
        LOG.info('1 CPU context with OMP_NUM_THREADS=%s',
                 os.environ.get('OMP_NUM_THREADS', "unset (MXNet's default)"))
    elif args.cpus > 1 and 'OMP_NUM_THREADS' in os.environ:
        LOG.info('%d CPU contexts, each with OMP_NUM_THREADS=%s', args.cpus,
                 os.environ['OMP_NUM_THREADS'])
    elif args.cpus > 1:
        LOG.warning('--cpus %d without OMP_NUM_THREADS: every context uses all cores\' OpenMP '
                    'threads, which is slower; start through a train_*.py script, or set '
                    'OMP_NUM_THREADS=%d before MXNet loads', args.cpus,
                    max(1, (os.cpu_count() or 1) // args.cpus))
    if args.batch_size < len(contexts):
        raise UsageError('--batch-size %d is smaller than the %d devices of --gpus %s; use at '
                         'least one example per device' % (args.batch_size, len(contexts),
                                                           args.gpus))
    if 'dist' in args.kv_store and 'DMLC_ROLE' not in os.environ:
        raise UsageError('--kv-store %s needs a distributed job: start the trainer through '
                         'launch.py (see the README)' % args.kv_store)
    if args.optimizer not in mx.optimizer.Optimizer.opt_registry:
        raise UsageError('unknown --optimizer %r; choose one of: %s' % (
            args.optimizer, ', '.join(sorted(mx.optimizer.Optimizer.opt_registry))))
    try:
        symbol, saved_symbol = training_symbols(args, symbol)
    except ValueError as err:
        raise UsageError(str(err)) from None

    mx.random.seed(args.seed)
    np.random.seed(args.seed)
    kv = mx.kv.create(args.kv_store)
    num_workers, rank = kv.num_workers, kv.rank
    if 'dist' in kv.type:
        tag_worker_logs(rank, num_workers)
    train_rec, val_rec, num_examples = resolve_data(args, num_workers)
    epoch_size = num_examples // num_workers // args.batch_size
    if epoch_size < 1:
        raise UsageError('--batch-size %d is larger than the %d training examples per worker'
                         % (args.batch_size, num_examples // num_workers))
    initial = (arg_params, aux_params) if arg_params is not None and not args.retrain else None
    begin_epoch, begin_batch, arg_params, aux_params, states_path = load_resume_point(args)
    if initial:
        arg_params, aux_params = initial
    prepare_checkpoint_dir(args.model_prefix)
    checkpoint.remove_stale_temporaries(args.model_prefix)

    LOG.info('arguments: %s', vars(args))
    mod = mx.mod.Module(symbol, context=contexts)
    data_shape = (args.batch_size,) + tuple(args.image_shape)
    mod.bind(data_shapes=[('data', data_shape)], label_shapes=[('softmax_label',
                                                                 (args.batch_size,))])
    initializer = mx.init.Xavier(rnd_type='gaussian', factor_type='in', magnitude=2)
    try:
        mod.init_params(initializer, arg_params=arg_params, aux_params=aux_params,
                        allow_missing=bool(initial))
    except (RuntimeError, ValueError, AssertionError, mx.base.MXNetError) as err:
        raise UsageError('the checkpoint of epoch %d does not fit this network (%s); check '
                         '--network, --depth, --num-group and --num-classes'
                         % (begin_epoch, str(err).strip().splitlines()[0])) from None
    # With dist_* kvstores the servers update: dist_sync once per global batch (the workers'
    # gradients summed), dist_async once per worker batch. The schedule counts their updates, so an
    # epoch is epoch_size global batches and lr steps land on the same epochs as in a 1-worker run.
    updates_per_batch = num_workers if kv.type == 'dist_async' else 1
    update_batch = args.batch_size * (num_workers if 'dist' in kv.type and '_sync' in kv.type
                                      else 1)
    scheduler = make_scheduler(args, epoch_size * updates_per_batch)
    for step in args.lr_steps if args.lr_mode == 'step' else ():
        if step >= args.num_epochs:
            LOG.warning('learning-rate step at epoch %g is never reached in %d epochs', step,
                        args.num_epochs)
    begin_update = (begin_epoch * epoch_size + begin_batch) * updates_per_batch
    optimizer_params = dict(learning_rate=args.lr, wd=args.wd, lr_scheduler=scheduler,
                            rescale_grad=1.0 / update_batch, begin_num_update=begin_update)
    if args.optimizer in ('sgd', 'nag'):
        optimizer_params['momentum'] = args.mom
    mod.init_optimizer(kvstore=kv, optimizer=args.optimizer, optimizer_params=optimizer_params)
    if args.retrain and 'dist' in kv.type:
        LOG.warning('--kv-store %s keeps optimizer states on the servers, which cannot load them: '
                    'resumed from epoch %d with the parameters and learning rate %g; momentum '
                    'restarts from zero', kv.type, begin_epoch, scheduler(begin_update + 1))
    elif states_path:
        checkpoint.load_optimizer_states(mod, states_path)
        LOG.info('resumed from epoch %d: params, optimizer states and learning rate %g',
                 begin_epoch, scheduler(begin_update + 1))
    elif args.retrain:
        LOG.warning('no optimizer states for epoch %d; momentum restarts from zero', begin_epoch)

    if args.benchmark:
        return benchmark(mod, args, contexts[0])

    def train_iter(epoch):
        return data.make_rec_iter(train_rec, args.image_shape, args.batch_size, train=True,
                                  data_type=args.data_type, aug_level=args.aug_level,
                                  shuffle=True, seed=args.seed * 1000 + epoch,
                                  num_parts=num_workers, part_index=rank)

    def val_iter():
        return data.make_rec_iter(val_rec, args.image_shape, args.batch_size,
                                  num_parts=num_workers, part_index=rank)

    def save(epoch, batch=None):
        if rank == 0:
            path = checkpoint.save(mod, saved_symbol, args.model_prefix, epoch,
                                   save_states='dist' not in args.kv_store, batch=batch)
            LOG.info('Saved checkpoint to "%s"', path)
            if batch is None:
                checkpoint.prune(args.model_prefix, args.keep_last)
            return path

    metric = make_metric(args.num_classes)
    run_start = time.time()
    best = (None, -1.0)
    val_metrics, val_count = {}, 0
    with StopRequest() as stop:
        for epoch in range(begin_epoch, args.num_epochs):
            tic = time.time()
            metric.reset()
            first = begin_batch if epoch == begin_epoch else 0
            batches = iter(train_iter(epoch))
            for _ in range(first):
                next(batches)
            window_tic, window_start = time.time(), first
            for nbatch in range(first, epoch_size):
                batch = next(batches)
                check_labels(batch, args.num_classes, train_rec)
                mod.forward_backward(batch)
                mod.update()
                outputs = mod.get_outputs()
                if not all(np.isfinite(out.asnumpy()).all() for out in outputs):
                    raise TrainingStopped(
                        'non-finite loss at epoch %d, batch %d; nothing was saved after it. Last '
                        'good checkpoint: %s; lower --lr or add --warmup-epochs'
                        % (epoch, nbatch, last_good_checkpoint(args.model_prefix)), 3)
                mod.update_metric(metric, batch.label)
                if (nbatch + 1) % args.frequent == 0:
                    num_update = epoch * epoch_size + nbatch + 1
                    speed = (nbatch + 1 - window_start) * args.batch_size / \
                        (time.time() - window_tic)
                    LOG.info('Epoch[%d] Batch [%d-%d]\tSpeed: %.2f samples/sec\t%s\tlr=%.8g',
                             epoch, window_start, nbatch + 1, speed, _format_metrics(metric),
                             scheduler(num_update * updates_per_batch))
                    window_tic, window_start = time.time(), nbatch + 1
                if stop.signum is not None and nbatch + 1 < epoch_size:
                    path = save(epoch, batch=nbatch + 1)
                    raise TrainingStopped(
                        'stopped by %s at epoch %d, batch %d; saved %s: continue with '
                        '--model-load-epoch -1 --retrain' % (signal.Signals(stop.signum).name,
                                                             epoch, nbatch + 1, path),
                        128 + stop.signum)
            for name, value in metric.get_name_value():
                LOG.info('Epoch[%d] Train-%s=%f', epoch, name, value)
            elapsed = time.time() - tic
            LOG.info('Epoch[%d] Time cost=%.3f', epoch, elapsed)
            remaining = (time.time() - run_start) / (epoch + 1 - begin_epoch) * \
                (args.num_epochs - epoch - 1)
            LOG.info('Epoch[%d] Throughput=%.1f samples/sec\tlr=%.8g\testimated time left=%s',
                     epoch, (epoch_size - first) * args.batch_size / elapsed,
                     scheduler((epoch + 1) * epoch_size * updates_per_batch),
                     _format_duration(remaining))
            arg_params, aux_params = checkpoint.current_params(mod)
            broken = nonfinite_name(arg_params) or nonfinite_name(aux_params)
            if broken:
                raise TrainingStopped(
                    'parameter %s is not finite after epoch %d; not saved. Last good checkpoint: '
                    '%s; lower --lr' % (broken, epoch, last_good_checkpoint(args.model_prefix)),
                    3)
            if 'dist' in kv.type:
                LOG.info('Epoch[%d] Parameters sha256=%s', epoch, params_digest(arg_params))
            last = epoch + 1 == args.num_epochs
            if last or (epoch + 1) % args.save_period == 0 or stop.signum is not None:
                save(epoch + 1)
            if val_rec:
                val_metrics, val_count = evaluate(mod, val_iter, args.num_classes)
                for name, value in val_metrics.items():
                    LOG.info('Epoch[%d] Validation-%s=%f', epoch, name, value)
                if val_metrics['accuracy'] > best[1]:
                    best = (epoch + 1, val_metrics['accuracy'])
            if rank == 0:
                write_curve(args)
            if stop.signum is not None and not last:
                raise TrainingStopped(
                    'stopped by %s after epoch %d; continue with --model-load-epoch -1 --retrain'
                    % (signal.Signals(stop.signum).name, epoch + 1), 128 + stop.signum)
    if val_rec:
        LOG.info('Final validation accuracy %.4f on %d images (best %.4f after epoch %d); '
                 'trained %d epochs in %s; checkpoints under %s; curve %s',
                 val_metrics['accuracy'], val_count, best[1], best[0],
                 args.num_epochs - begin_epoch, _format_duration(time.time() - run_start),
                 args.model_prefix, training_log.curve_path(args.log_file))
    return val_metrics


def benchmark(mod, args, context):
    """Time forward, backward and update on synthetic batches; log and return img/s."""
    import mxnet as mx
    batches = SyntheticIter(args.batch_size, args.image_shape, args.num_classes, context)
    times = []
    for i in range(BENCHMARK_WARMUP + BENCHMARK_BATCHES):
        tic = time.time()
        mod.forward_backward(next(batches))
        mod.update()
        mx.nd.waitall()
        if i >= BENCHMARK_WARMUP:
            times.append(time.time() - tic)
    speed = args.batch_size / float(np.median(times))
    depth = ' depth %d' % args.depth if symbols.fixed_depth(args.network) is None else ''
    LOG.info('benchmark: %s%s, batch %d, input %s: training %.2f img/s (median of %d '
             'batches)', args.network, depth, args.batch_size,
             'x'.join(map(str, args.image_shape)), speed, BENCHMARK_BATCHES)
    return {'img_per_sec': speed}


def main(argv=None, description=None, networks=None, add_args=None, prepare=None, **defaults):
    """Parse ``argv`` with the trainer's ``defaults`` and train; returns a process exit code.

    ``add_args(parser)`` adds a script's own flags; ``prepare(args)`` returns extra keyword
    arguments of :func:`fit` (fine-tune.py: the network and initial parameters) or raises UsageError.
    """
    parser = build_parser(description, networks, **defaults)
    if add_args is not None:
        add_args(parser)
    args = parser.parse_args(argv)
    new_log = None
    try:
        resolve_args(args)
        if not os.path.exists(args.log_file):
            new_log = args.log_file
        setup_logging(args.log_file)
        fit(args, **(prepare(args) if prepare is not None else {}))
    except UsageError as err:
        discard_log(new_log)
        sys.stderr.write('%s: error: %s\n' % (parser.prog, err))
        return 2
    except TrainingStopped as err:
        LOG.error('%s', err)
        return err.exit_code
    except Exception as err:  # MXNet's C++ errors carry a stack trace: keep the first line.
        import mxnet as mx
        if not isinstance(err, mx.base.MXNetError):
            raise
        sys.stderr.write('%s: error: MXNet failed: %s\n'
                         % (parser.prog, str(err).strip().splitlines()[0]))
        return 1
    return 0
