"""The trainers' command line: flag groups, per-data-type defaults and every check of the flags.

Following MXNet's ``example/image-classification`` the flags come in groups (:func:`add_fit_args`,
:func:`add_data_args`) that a trainer composes with :func:`build_parser`, setting its family's
presets before parsing. :func:`resolve_args` fills the defaults that depend on other flags and
rejects every combination that cannot train, before anything is logged or written; a problem is
a :class:`UsageError` whose message says how to fix it, printed as one line. Two checks need what
only the run can know: whether the named GPUs exist (:func:`make_contexts`) and how many examples
the data files hold for each worker of the job (:func:`resolve_data`).
"""
import argparse
import os

import data
import symbols
from senet import ranges, threads
from symbols import SMALL_IMAGE_MAX_SIDE, parse_image_shape

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
"""``--benchmark`` times this many synthetic batches after the warm-up ones."""

DTYPES = ('float32', 'float16', 'bfloat16')
AUG_LEVELS = (0, 1, 2, 3, 4)
INCEPTION_AUG_LEVEL = 4
"""The ``--aug-level`` of Inception-style random-resized crops, colour jitter and PCA lighting."""


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
    _add_optimisation_args(parser)
    _add_recipe_args(parser)
    _add_run_args(parser)
    return parser


def _add_optimisation_args(parser):
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


def _add_recipe_args(parser):
    recipe = parser.add_argument_group(
        'training recipe', 'regularisation and precision as GluonCV and timm train (docs/recipe.md); '
                           'all off by default')
    recipe.add_argument('--label-smoothing', type=float, default=0.0, metavar='EPS',
                        help='train on targets 1 - EPS + EPS/K for the true class and EPS/K for the '
                             'others (K classes); 0 turns it off')
    recipe.add_argument('--mixup', type=float, default=0.0, metavar='ALPHA',
                        help='mixup: blend each image and its target with another of the batch by '
                             'lambda ~ Beta(ALPHA, ALPHA); 0 turns it off')
    recipe.add_argument('--cutmix', type=float, default=0.0, metavar='ALPHA',
                        help='CutMix: paste a box of another image of the batch, of area 1 - lambda '
                             '(lambda ~ Beta(ALPHA, ALPHA)), and mix the targets by the pasted area; '
                             'with --mixup each batch uses one of the two, chosen at random')
    recipe.add_argument('--mixup-off-epoch', type=int, default=0, metavar='N',
                        help='stop mixup and CutMix from epoch N on (0-based; 0: never)')
    recipe.add_argument('--zero-gamma', action='store_true',
                        help='initialise the gamma of the last BatchNorm of every residual branch '
                             'to 0, so each residual unit starts as the identity (ResNet-family '
                             'networks)')
    recipe.add_argument('--no-wd', action='store_true',
                        help="no weight decay on BatchNorm gammas, as GluonCV's --no-wd (MXNet's "
                             'optimizer already decays only parameters named *_weight or *_gamma: '
                             'biases and betas never)')
    recipe.add_argument('--random-erasing', type=float, default=0.0, metavar='P',
                        help='with probability P per training image, replace one random box '
                             '(2-33%% of the area, aspect 0.3-3.3) by noise of the batch\'s pixel '
                             'mean and spread, as timm\'s random erasing; 0 turns it off')
    recipe.add_argument('--ema', type=float, default=0.0, metavar='DECAY',
                        help='keep a moving average of the weights and BatchNorm statistics, '
                             'ema = DECAY * ema + (1 - DECAY) * weights after every update; it is '
                             'validated each epoch and saved as <prefix>-ema-NNNN.params; 0 turns '
                             'it off')
    recipe.add_argument('--dtype', default='float32', choices=DTYPES,
                        help='training precision; checkpoints stay float32. float16 needs --gpus '
                             '(MXNet 1.9.1 has no float16 convolution on the CPU). bfloat16 runs '
                             'on CPUs with AVX-512 through oneDNN, which in MXNet 1.9.1 has no AMX '
                             'path (and no bfloat16 convolution without AVX-512): on '
                             'a 2-core AVX512-BF16 CPU it trained at 1.05-1.13x float32\'s speed '
                             'on make train\'s narrow network and 1.4-1.8x on the 2x-wide one '
                             '(docs/recipe.md)')
    recipe.add_argument('--loss-scale', type=float, default=1.0, metavar='S',
                        help='static loss scaling: the loss gradient is multiplied by S and the '
                             'weight gradients divided by S x batch (float16)')


def _add_run_args(parser):
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
    run.add_argument('--save-best', action='store_true',
                     help='keep the epoch of the best validation top-1 so far (of the --ema '
                          'average if given) as <prefix>-best-NNNN.params, which --keep-last '
                          'never prunes')
    run.add_argument('--retrain', action='store_true',
                     help='resume training from --model-load-epoch')
    run.add_argument('--frequent', type=int, default=50,
                     help='log training speed and metrics every this many batches')
    run.add_argument('--benchmark', action='store_true',
                     help='train on synthetic data and report img/s; no data files needed')
    run.add_argument('--test-io', action='store_true',
                     help='read, decode and augment one epoch of the training data at full speed '
                          'without training, and report img/s')


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
    group.add_argument('--aug-level', type=int, default=2, choices=AUG_LEVELS,
                       help='augmentation: 0 none, 1 crop+mirror, 2 +scale/aspect/colour, '
                            '3 +rotation/shear (levels 2-3 apply to ImageNet), 4 Inception-style '
                            'random-resized crop (area 0.08-1, aspect 3/4-4/3), mirror, colour '
                            'jitter 0.4 and PCA lighting 0.1 (ImageNet and custom data); '
                            'small-image data sets crop and mirror at every level >= 1')
    group.add_argument('--data-nthreads', type=int,
                       help='threads that decode and augment images; default: the cores this '
                            'process may use (MXNet caps it at the machine\'s processors)')
    return parser


def build_parser(description=None, networks=None, **defaults):
    """The trainers' parser.

    Parameters
    ----------
    description : str, optional
        The ``--help`` text.
    networks : iterable of str, optional
        The choices of ``--network``; default every registered network.
    **defaults
        The trainer's presets, applied before parsing (a flag given on the command line wins).
    """
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


def count_devices(gpus, cpus=1):
    """Devices that ``--gpus``/``--cpus`` ask for: the GPUs named, else ``cpus`` CPU contexts."""
    ids = parse_gpus(gpus)
    if cpus < 1 or (ids and cpus != 1):
        raise UsageError('--cpus %d: give a positive number of CPU contexts, and only without '
                         '--gpus' % cpus)
    return len(ids) or cpus


def make_contexts(gpus, cpus=1):
    """Contexts for ``--gpus``: the GPUs named, or ``cpus`` CPU contexts (``--cpus``).

    Unlike the other checks this one asks the machine (how many GPUs it has), so it runs when the
    run starts, not in :func:`resolve_args`.
    """
    import mxnet as mx
    count = count_devices(gpus, cpus)
    ids = parse_gpus(gpus)
    if not ids:
        return [mx.cpu(i) for i in range(count)]
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
    """Fill the per-data-type defaults that the user left unset, then check every flag.

    A given value is never overwritten. The checks cover each flag alone, the flags together
    (devices against the batch size, resume against the epochs) and the environment a flag
    needs (a ``dist_*`` kvstore needs launch.py's ``DMLC_ROLE``; ``--optimizer`` must be one that
    MXNet registers).

    Parameters
    ----------
    args : argparse.Namespace
        The parsed flags of :func:`build_parser`; completed in place.

    Returns
    -------
    argparse.Namespace
        ``args``, with ``image_shape`` a (C, H, W) tuple and ``lr_steps`` the parsed steps.

    Raises
    ------
    UsageError
        For the first problem found, with the text to show the user.
    """
    _fill_data_defaults(args)
    out_of_range = ranges.check(args)
    if out_of_range:
        raise UsageError(out_of_range)
    tag = _run_tag(args)
    if args.model_prefix is None:
        args.model_prefix = os.path.join('model', tag)
    if args.log_file is None:
        args.log_file = os.path.join('log', tag + '.log')
    _check_run_flags(args)
    _check_recipe_flags(args)
    _check_devices(args)
    return args


def _fill_data_defaults(args):
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


def _run_tag(args):
    """``<network>-<data type>[-<depth>][-v<version>][-w<widen factor>]``: the default names."""
    options = symbols.builder_options(args.network)
    tag = '%s-%s' % (args.network, args.data_type)
    if symbols.fixed_depth(args.network) is None:
        tag += '-%d' % args.depth
    if 'version' in options and args.version is not None:
        tag += '-v%d' % args.version
    if args.widen_factor not in (None, 1):
        if 'widen_factor' not in options:
            raise UsageError('--widen-factor applies to se-resnext and se-resnet, not to %s'
                             % args.network)
        tag += '-w%d' % args.widen_factor
    return tag


def _check_run_flags(args):
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
    import mxnet as mx
    if args.optimizer not in mx.optimizer.Optimizer.opt_registry:
        raise UsageError('unknown --optimizer %r; choose one of: %s' % (
            args.optimizer, ', '.join(sorted(mx.optimizer.Optimizer.opt_registry))))


def _check_recipe_flags(args):
    """The recipe flags together (their ranges are in :mod:`senet.ranges`)."""
    if args.mixup_off_epoch and not (args.mixup or args.cutmix):
        raise UsageError('--mixup-off-epoch %d needs --mixup or --cutmix' % args.mixup_off_epoch)
    if args.dtype in ('float16', 'bfloat16') and not parse_gpus(args.gpus):
        from senet import network
        bfloat16_runs = network.bfloat16_runs_on_cpu()
        if args.dtype == 'float16':
            raise UsageError('--dtype float16 needs --gpus: MXNet 1.9.1 has no float16 convolution '
                             'on the CPU (use --dtype %s there)'
                             % ('bfloat16' if bfloat16_runs else 'float32'))
        if not bfloat16_runs:
            raise UsageError('--dtype bfloat16 needs a CPU with AVX-512: MXNet 1.9.1\'s oneDNN has '
                             'no bfloat16 convolution for this one (use --dtype float32)')
    if args.data_nthreads is None:
        args.data_nthreads = threads.usable_cores()
    if args.test_io and args.benchmark:
        raise UsageError('--test-io reads the training data and --benchmark trains on synthetic '
                         'data: give one of them')


def _check_devices(args):
    devices = count_devices(args.gpus, args.cpus)
    if args.batch_size < devices:
        raise UsageError('--batch-size %d is smaller than the %d devices of --gpus %s; use at '
                         'least one example per device' % (args.batch_size, devices, args.gpus))
    if args.kv_store.startswith('dist') and 'DMLC_ROLE' not in os.environ:
        raise UsageError('--kv-store %s needs a distributed job: start the trainer through '
                         'launch.py (see docs/distributed.md)' % args.kv_store)


def resolve_data(args, num_workers):
    """The run's data files and epoch length, checked.

    Parameters
    ----------
    args : argparse.Namespace
        Flags completed by :func:`resolve_args`.
    num_workers : int
        Workers of the job (1 without a ``dist_*`` kvstore); each reads its share of the data.

    Returns
    -------
    tuple
        (training .rec or None for ``--benchmark``, validation .rec or None, batches per epoch
        of one worker).
    """
    if args.benchmark:
        train_rec, val_rec = None, None
        num_examples = args.batch_size * (BENCHMARK_WARMUP + BENCHMARK_BATCHES)
    else:
        train_rec, val_rec, num_examples = _data_files(args)
    epoch_size = num_examples // num_workers // args.batch_size
    if epoch_size < 1:
        raise UsageError('--batch-size %d is larger than the %d training examples per worker'
                         % (args.batch_size, num_examples // num_workers))
    return train_rec, val_rec, epoch_size


def _data_files(args):
    try:
        train_rec, val_rec = data.resolve_rec_files(args.data_type, args.data_dir, args.aug_level,
                                                    args.data_train, args.data_val)
    except data.DataError as err:
        raise UsageError(str(err)) from None
    num_examples = args.num_examples
    records = data.count_records(train_rec)
    if num_examples is not None and records is not None and num_examples > records:
        raise UsageError('--num-examples %d is more than the %d records of %s; give at most %d'
                         % (num_examples, records, train_rec, records))
    if num_examples is None:
        num_examples = data.DATA_TYPES[args.data_type]['num_examples'] or records
    if num_examples is None:
        raise UsageError('--num-examples is required: %s has no .idx file to count its records'
                         % train_rec)
    return train_rec, val_rec, num_examples
