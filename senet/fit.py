"""The training loop shared by every trainer: plan the run, bind, then train epoch by epoch.

The trainers (``train_se_resnext_w_d.py``, ...) only choose their family's defaults and call
:func:`main`, which parses and checks the flags (:mod:`senet.arguments`) and calls :func:`fit`.
:func:`fit` is the run as a list of steps: the network (:mod:`senet.network`), the run plan
(:class:`RunPlan`: devices, kvstore, data, epoch length), the resume point, the checkpointer
(:class:`senet.checkpoint.Checkpointer`), bind and initialise, the optimizer, then for each epoch
:func:`train_one_epoch` and :func:`end_of_epoch` (checks, checkpoint, validation, curve).

Checkpoints are ``<prefix>-symbol.json``, ``<prefix>-%04d.params`` and ``<prefix>-%04d.states``
after every epoch; ``--model-load-epoch N --retrain`` restores parameters, optimizer state and the
learning-rate position and continues with epoch N + 1.

The training recipe (docs/recipe.md) enters as steps of its own: the batch transforms of
:class:`senet.recipe.BatchRecipe` between the iterator and the network, ``--zero-gamma`` after
initialisation, the moving average :class:`senet.ema.ModelEma` after each update and at each
validation, the precision in the trained graph (:func:`senet.network.with_precision`) and the
optimizer (:func:`optimizer_params`).
"""
import collections
import dataclasses
import functools
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
from senet import arguments, checkpoint, faults, metrics, network, training_log
from senet.arguments import UsageError
from senet.ema import ModelEma
from senet.lr_schedule import CosineScheduler, EpochStepScheduler
from senet.recipe import BatchRecipe

LOG = logging.getLogger('senet')

ResumePoint = collections.namedtuple('ResumePoint',
                                     'epoch batch arg_params aux_params states_path ema_params',
                                     defaults=(None,))
"""Where a run begins: epochs and batches done, their parameters and optimizer-state file (0, 0
and None for a fresh run), and with ``--ema`` the moving average's (arg, aux) parameters saved with
them (None: none saved)."""

FRESH_START = ResumePoint(0, 0, None, None, None)


def main(argv=None, description=None, networks=None, add_args=None, prepare=None, **defaults):
    """Parse ``argv`` with the trainer's ``defaults`` and train; returns a process exit code.

    Parameters
    ----------
    argv : list of str, optional
        The command line without the program name; default ``sys.argv[1:]``.
    description : str, optional
        The ``--help`` text.
    networks : iterable of str, optional
        The choices of ``--network`` (default: every registered network).
    add_args : callable, optional
        ``add_args(parser)`` adds a script's own flags.
    prepare : callable, optional
        ``prepare(args)`` returns extra keyword arguments of :func:`fit` (fine-tune.py: the
        network and initial parameters) or raises UsageError.
    **defaults
        The trainer's presets.

    Returns
    -------
    int
        0, 2 for a usage error, the code of :class:`TrainingStopped`, or 1 when MXNet or the
        operating system fails (:mod:`senet.faults`: a full disk, a removed directory, no memory).
    """
    parser = arguments.build_parser(description, networks, **defaults)
    if add_args is not None:
        add_args(parser)
    args = parser.parse_args(argv)
    new_log = None
    try:
        arguments.resolve_args(args)
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
        if faults.is_failure(err):  # a full disk, a removed directory, a changed .rec, no memory
            _remove_handlers(logging.getLogger())
            faults.settle()
            sys.stderr.write('%s: error: %s\n' % (
                parser.prog, faults.describe(err, getattr(args, 'model_prefix', None))))
            return faults.EXIT_CODE
        if not isinstance(err, mx.base.MXNetError):
            raise
        sys.stderr.write('%s: error: MXNet failed: %s\n' % (parser.prog, faults.mxnet_reason(err)))
        return 1
    return 0


def fit(args, symbol=None, arg_params=None, aux_params=None):
    """Train ``args.network`` as the resolved arguments say.

    Parameters
    ----------
    args : argparse.Namespace
        Flags completed by :func:`senet.arguments.resolve_args`.
    symbol : mx.sym.Symbol, optional
        Fine-tuning: a textbook graph trained instead of ``args.network``'s (in its training
        form, :func:`senet.network.training_symbols`).
    arg_params, aux_params : dict of str to NDArray, optional
        Fine-tuning: initial parameters; the initializer fills only those they lack (the new
        classifier). ``--retrain`` resumes from ``--model-prefix``'s checkpoint instead.

    Returns
    -------
    dict
        The last validation metrics ({} without validation data; img/s for ``--benchmark``).
    """
    contexts = arguments.make_contexts(args.gpus, args.cpus)
    log_threads(args)
    train_symbol, saved_symbol = build_network(args, symbol)
    plan = make_plan(args, start_job(args), contexts)
    if plan.distributed:
        tag_worker_logs(plan.rank, plan.num_workers)
    if args.save_best and not plan.val_rec:
        raise UsageError('--save-best needs validation data (--data-val)')
    recipe = BatchRecipe.from_args(args)
    if args.test_io:
        return test_io(args, plan, recipe)
    resume = load_resume_point(args)
    saver = make_checkpointer(args, plan, saved_symbol)
    LOG.info('arguments: %s', vars(args))
    initial = (arg_params, aux_params) if arg_params is not None and not args.retrain else None
    mod = bind(args, plan, train_symbol, resume, initial, soft_labels=recipe.soft_labels)
    saver.ema = make_ema(args, mod, resume, plan.contexts[0])
    scheduler = init_optimizer(mod, args, plan, resume)
    if args.benchmark:
        return benchmark(mod, args, plan.contexts[0], recipe, saver.ema)
    return train(mod, args, plan, resume, scheduler, saver, recipe)


# --- the run plan ---

@dataclasses.dataclass(frozen=True)
class RunPlan:
    """Where and on what a run trains, computed once by :func:`make_plan`.

    Attributes
    ----------
    contexts : list of mx.Context
        The devices each batch is split over.
    kvstore : mx.kvstore.KVStore
        Aggregates the gradients (and, for ``dist_*``, joins the job).
    num_workers, rank : int
        Workers of the job and this one's rank (1 and 0 without a ``dist_*`` kvstore).
    distributed : bool
        A ``dist_*`` kvstore: rank 0 alone writes checkpoints, without optimizer states (they
        live on the servers), and every worker logs a digest of its parameters.
    sync : bool
        Distributed and synchronous: the servers sum the workers' gradients into one update.
    train_rec, val_rec : str or None
        The data files (None for ``--benchmark``; ``val_rec`` None without validation).
    epoch_size : int
        Batches of one worker per epoch.
    updates_per_batch : int
        Optimizer updates per batch of this worker.
    update_batch : int
        Examples per optimizer update (the gradients are rescaled by its inverse).
    """

    contexts: list
    kvstore: object
    num_workers: int
    rank: int
    distributed: bool
    sync: bool
    train_rec: str | None
    val_rec: str | None
    epoch_size: int
    updates_per_batch: int
    update_batch: int

    def updates(self, epoch, batch):
        """Optimizer updates done when ``batch`` batches of ``epoch`` (0-based) are trained."""
        return (epoch * self.epoch_size + batch) * self.updates_per_batch


def make_plan(args, kv, contexts):
    """The :class:`RunPlan` of ``args`` for the worker ``kv`` on ``contexts``.

    ``kv`` is the kvstore, or anything with its ``type``, ``num_workers`` and ``rank``.
    """
    distributed = kv.type.startswith('dist')
    sync = distributed and '_sync' in kv.type
    train_rec, val_rec, epoch_size = arguments.resolve_data(args, kv.num_workers)
    # With dist_* kvstores the servers update: dist_sync once per global batch (the workers'
    # gradients summed), dist_async once per worker batch. The schedule counts their updates, so an
    # epoch is epoch_size global batches and lr steps land on the same epochs as in a 1-worker run.
    return RunPlan(contexts=list(contexts), kvstore=kv, num_workers=kv.num_workers, rank=kv.rank,
                   distributed=distributed, sync=sync, train_rec=train_rec, val_rec=val_rec,
                   epoch_size=epoch_size,
                   updates_per_batch=kv.num_workers if kv.type == 'dist_async' else 1,
                   update_batch=args.batch_size * (kv.num_workers if sync else 1))


def log_threads(args):
    """Log the OpenMP threads of the CPU contexts (warning when several contexts share every core)
    and the image decoding threads."""
    LOG.info('--data-nthreads %d: ImageRecordIter decodes with %d thread(s) (MXNet 1.9.1 uses at '
             'most half the processors minus one)', args.data_nthreads,
             data.decoding_threads(args.data_nthreads))
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


def build_network(args, symbol=None):
    """(graph to train, graph to checkpoint); a network the builder rejects is a UsageError, and
    so is ``--zero-gamma`` for a network without residual branches ending in a BatchNorm."""
    try:
        train_symbol, saved_symbol = network.training_symbols(args, symbol)
    except ValueError as err:
        raise UsageError(str(err)) from None
    if args.zero_gamma and not network.zero_gamma_names(saved_symbol):
        raise UsageError('--zero-gamma applies to residual units whose branch ends in a BatchNorm '
                         '(se-resnext, se-resnet, senet-154); this network has none')
    return train_symbol, saved_symbol


def start_job(args):
    """Seed the random generators and create the kvstore (a ``dist_*`` one joins the job)."""
    import mxnet as mx
    if args.memonger:
        os.environ['MXNET_BACKWARD_DO_MIRROR'] = '1'
    mx.random.seed(args.seed)
    np.random.seed(args.seed)
    return mx.kv.create(args.kv_store)


def load_resume_point(args):
    """The :class:`ResumePoint` of ``--retrain``, or :data:`FRESH_START`."""
    if not args.retrain:
        return FRESH_START
    try:
        epoch, batch, params_path, states_path = checkpoint.resume_point(args.model_prefix,
                                                                         args.model_load_epoch)
        arg_params, aux_params = checkpoint.load_params(params_path)
        ema_path = checkpoint.ema_params_path(args.model_prefix, params_path)
        ema_params = checkpoint.load_params(ema_path) if args.ema and os.path.isfile(ema_path) \
            else None
    except checkpoint.CheckpointError as err:
        raise UsageError(str(err)) from None
    if epoch >= args.num_epochs:
        raise UsageError('the checkpoint of epoch %d is not before --num-epochs %d: nothing to '
                         'train; raise --num-epochs' % (epoch, args.num_epochs))
    LOG.info('resuming from %s: epoch %d, batch %d', params_path, epoch, batch)
    if args.ema and ema_params is None:
        LOG.warning('no moving average saved as %s: --ema restarts from the resumed weights',
                    ema_path)
    return ResumePoint(epoch, batch, arg_params, aux_params, states_path, ema_params)


def make_checkpointer(args, plan, symbol):
    """The run's :class:`senet.checkpoint.Checkpointer`, its directory ready."""
    saver = checkpoint.Checkpointer(args.model_prefix, symbol, keep_last=args.keep_last,
                                    rank=plan.rank, save_states=not plan.distributed)
    try:
        saver.prepare()
    except checkpoint.CheckpointError as err:
        raise UsageError(str(err)) from None
    if args.retrain:
        saver.resume_best()
    return saver


# --- bind and optimizer ---

def bind(args, plan, symbol, resume, initial=None, soft_labels=False):
    """A Module of ``symbol`` over the plan's contexts, bound for ``--batch-size`` and initialised.

    Parameters come from ``initial`` (fine-tuning; the Xavier initializer fills those it lacks) or
    from the resume point; a fresh run draws them all from the initializer, and ``--zero-gamma``
    then sets the gammas of :func:`senet.network.zero_gamma_names` that the initializer drew to 0.
    With ``soft_labels`` the label is bound as (batch, classes) target distributions.
    """
    import mxnet as mx
    arg_params, aux_params = initial or (resume.arg_params, resume.aux_params)
    mod = mx.mod.Module(symbol, context=plan.contexts)
    data_shape = (args.batch_size,) + tuple(args.image_shape)
    label_shape = (args.batch_size, args.num_classes) if soft_labels else (args.batch_size,)
    mod.bind(data_shapes=[('data', data_shape)], label_shapes=[('softmax_label', label_shape)])
    initializer = mx.init.Xavier(rnd_type='gaussian', factor_type='in', magnitude=2)
    try:
        mod.init_params(initializer, arg_params=arg_params, aux_params=aux_params,
                        allow_missing=bool(initial))
    except (RuntimeError, ValueError, AssertionError, mx.base.MXNetError) as err:
        raise UsageError('the checkpoint of epoch %d does not fit this network (%s); check '
                         '--network, --depth, --num-group and --num-classes'
                         % (resume.epoch, str(err).strip().splitlines()[0])) from None
    if args.zero_gamma and resume.arg_params is None:
        zero_gammas(mod, exclude=arg_params or {})
    return mod


def zero_gammas(mod, exclude=()):
    """Set the last BatchNorm gamma of every residual branch of ``mod`` to 0, except ``exclude``."""
    arg_params, aux_params = checkpoint.current_params(mod)
    names = [name for name in network.zero_gamma_names(mod.symbol) if name not in exclude]
    for name in names:
        arg_params[name][:] = 0
    mod.set_params(arg_params, aux_params)
    LOG.info('--zero-gamma: %d BatchNorm gammas start at 0', len(names))


def make_ema(args, mod, resume, context):
    """The moving average of ``--ema`` on ``context`` (None without it): the resumed one, else
    the weights now."""
    if not args.ema:
        return None
    start = resume.ema_params if resume.ema_params is not None else checkpoint.current_params(mod)
    return ModelEma(args.ema, *start, context=context)


def make_scheduler(args, epoch_updates):
    """The learning-rate schedule of ``--lr-mode``, counting ``epoch_updates`` updates per epoch."""
    if args.lr_mode == 'cosine':
        return CosineScheduler(args.lr, epoch_updates, args.num_epochs, args.warmup_epochs)
    return EpochStepScheduler(args.lr, epoch_updates, args.lr_steps, args.lr_factor,
                              args.warmup_epochs)


def optimizer_params(args, plan, scheduler, begin_update):
    """The optimizer's settings: learning rate and schedule, weight decay, momentum, and the
    gradient scale 1 / (``--loss-scale`` x examples per update); below float32 a multi-precision
    update, which keeps float32 master weights of float16 ones."""
    params = dict(learning_rate=args.lr, wd=args.wd, lr_scheduler=scheduler,
                  rescale_grad=1.0 / (args.loss_scale * plan.update_batch),
                  begin_num_update=begin_update)
    if args.optimizer in ('sgd', 'nag'):
        params['momentum'] = args.mom
    if args.dtype != 'float32':
        params['multi_precision'] = True
    return params


def init_optimizer(mod, args, plan, resume):
    """Set up the optimizer at the resume point (states and learning rate); returns the schedule."""
    scheduler = make_scheduler(args, plan.epoch_size * plan.updates_per_batch)
    for step in args.lr_steps if args.lr_mode == 'step' else ():
        if step >= args.num_epochs:
            LOG.warning('learning-rate step at epoch %g is never reached in %d epochs', step,
                        args.num_epochs)
    begin_update = plan.updates(resume.epoch, resume.batch)
    mod.init_optimizer(kvstore=plan.kvstore, optimizer=args.optimizer,
                       optimizer_params=optimizer_params(args, plan, scheduler, begin_update))
    if args.retrain and plan.distributed:
        LOG.warning('--kv-store %s keeps optimizer states on the servers, which cannot load them: '
                    'resumed from epoch %d with the parameters and learning rate %g; momentum '
                    'restarts from zero', plan.kvstore.type, resume.epoch,
                    scheduler(begin_update + 1))
    elif resume.states_path:
        checkpoint.load_optimizer_states(mod, resume.states_path)
        LOG.info('resumed from epoch %d: params, optimizer states and learning rate %g',
                 resume.epoch, scheduler(begin_update + 1))
    elif args.retrain:
        LOG.warning('no optimizer states for epoch %d; momentum restarts from zero', resume.epoch)
    return scheduler


# --- the epoch loop ---

def train(mod, args, plan, resume, scheduler, saver, recipe=None):
    """Train from the resume point to ``--num-epochs``; returns the last validation metrics (of
    the moving average with ``--ema``)."""
    progress = Progress(resume.epoch, args.num_epochs)
    with StopRequest() as stop:
        for epoch in range(resume.epoch, args.num_epochs):
            first = resume.batch if epoch == resume.epoch else 0
            tic = time.time()
            metric = train_one_epoch(mod, args, plan, epoch, first, scheduler, saver, stop, recipe)
            progress.log_epoch(epoch, metric, (plan.epoch_size - first) * args.batch_size,
                               time.time() - tic, scheduler(plan.updates(epoch + 1, 0)))
            end_of_epoch(mod, args, plan, epoch, saver, stop, progress)
    if plan.val_rec:
        progress.log_summary(args)
    return progress.val_metrics


def train_one_epoch(mod, args, plan, epoch, first, scheduler, saver, stop, recipe=None):
    """Train batches ``first`` .. ``plan.epoch_size`` - 1 of ``epoch``; returns its training metric.

    Each batch's labels and loss are checked, every ``--frequent`` batches speed and metrics are
    logged, and a stop request (``stop``, a :class:`StopRequest`) saves a partial checkpoint and
    raises :class:`TrainingStopped`. Resuming inside the epoch skips the batches already trained
    of the same deterministically shuffled order. ``recipe`` (a :class:`BatchRecipe`) transforms
    each batch before training; the metric compares the outputs with the batch's own labels. The
    moving average of ``--ema`` (``saver.ema``) follows every update.
    """
    metric = metrics.make_metric(args.num_classes)
    batches = iter(train_iter(args, plan, epoch))
    for nbatch in range(first):
        faults.next_batch(batches, plan.train_rec, '--data-train', epoch, nbatch)
    window_tic, window_start = time.time(), first
    for nbatch in range(first, plan.epoch_size):
        batch = faults.next_batch(batches, plan.train_rec, '--data-train', epoch, nbatch)
        check_labels(batch, args.num_classes, plan.train_rec)
        trained = recipe.apply(batch, epoch, nbatch)[0] if recipe is not None else batch
        mod.forward_backward(trained)
        mod.update()
        if not all(np.isfinite(out.asnumpy()).all() for out in mod.get_outputs()):
            raise TrainingStopped(
                'non-finite loss at epoch %d, batch %d; nothing was saved after it. Last good '
                'checkpoint: %s; lower --lr or add --warmup-epochs'
                % (epoch, nbatch, saver.last_good()), 3)
        if saver.ema is not None:
            saver.ema.update(mod)
        mod.update_metric(metric, batch.label)
        if (nbatch + 1) % args.frequent == 0:
            speed = (nbatch + 1 - window_start) * args.batch_size / (time.time() - window_tic)
            LOG.info('Epoch[%d] Batch [%d-%d]\tSpeed: %.2f samples/sec\t%s\tlr=%.8g',
                     epoch, window_start, nbatch + 1, speed, metrics.format_metrics(metric),
                     scheduler(plan.updates(epoch, nbatch + 1)))
            window_tic, window_start = time.time(), nbatch + 1
        if stop.signum is not None and nbatch + 1 < plan.epoch_size:
            path = saver.save_partial(mod, epoch, nbatch + 1)
            raise TrainingStopped(
                'stopped by %s at epoch %d, batch %d; saved %s: continue with --model-load-epoch '
                '-1 --retrain' % (signal.Signals(stop.signum).name, epoch, nbatch + 1, path),
                128 + stop.signum)
    return metric


def end_of_epoch(mod, args, plan, epoch, saver, stop, progress):
    """After ``epoch``: check the parameters, checkpoint, validate, redraw the curve.

    Raises :class:`TrainingStopped` for non-finite parameters (nothing saved) and, once the
    checkpoint is written, for a stop request before the last epoch.
    """
    arg_params, aux_params = checkpoint.current_params(mod)
    broken = nonfinite_name(arg_params) or nonfinite_name(aux_params)
    if broken:
        raise TrainingStopped(
            'parameter %s is not finite after epoch %d; not saved. Last good checkpoint: %s; '
            'lower --lr' % (broken, epoch, saver.last_good()), 3)
    if plan.distributed:
        LOG.info('Epoch[%d] Parameters sha256=%s', epoch, params_digest(arg_params))
    last = epoch + 1 == args.num_epochs
    if last or (epoch + 1) % args.save_period == 0 or stop.signum is not None:
        saver.save(mod, epoch + 1)
    if plan.val_rec:
        make_val_iter = functools.partial(val_iter, args, plan)
        values, count = metrics.evaluate(mod, make_val_iter, args.num_classes)
        for name, value in values.items():
            LOG.info('Epoch[%d] Validation-%s=%f', epoch, name, value)
        result, weights = values, (arg_params, aux_params)
        if saver.ema is not None:
            result = evaluate_ema(mod, saver.ema, make_val_iter, args.num_classes)
            weights = saver.ema.params()
            for name, value in result.items():
                LOG.info('Epoch[%d] Validation-ema-%s=%f', epoch, name, value)
        progress.validated(epoch, result, count)
        if args.save_best:
            saver.save_best(*weights, epoch + 1, result['accuracy'],
                            'ema' if saver.ema is not None else 'raw')
    if plan.rank == 0:
        write_curve(args)
    if stop.signum is not None and not last:
        raise TrainingStopped(
            'stopped by %s after epoch %d; continue with --model-load-epoch -1 --retrain'
            % (signal.Signals(stop.signum).name, epoch + 1), 128 + stop.signum)


def evaluate_ema(mod, ema, make_iter, num_classes):
    """Validation metrics of the moving average ``ema``, evaluated in ``mod`` whose own weights are
    put back afterwards."""
    arg_params, aux_params = checkpoint.current_params(mod)
    raw = ({k: v.copy() for k, v in arg_params.items()}, {k: v.copy() for k, v in aux_params.items()})
    mod.set_params(*ema.params())
    try:
        return metrics.evaluate(mod, make_iter, num_classes)[0]
    finally:
        mod.set_params(*raw)


def train_iter(args, plan, epoch):
    """This worker's share of the training data, shuffled by a seed of ``--seed`` and the epoch,
    decoded by ``--data-nthreads`` threads; the file is checked first (it may have changed)."""
    faults.check_rec(plan.train_rec, '--data-train')
    return data.make_rec_iter(plan.train_rec, args.image_shape, args.batch_size, train=True,
                              data_type=args.data_type, aug_level=args.aug_level, shuffle=True,
                              seed=args.seed * 1000 + epoch, num_parts=plan.num_workers,
                              part_index=plan.rank, threads=args.data_nthreads)


def val_iter(args, plan):
    """This worker's share of the validation data, the file checked first."""
    faults.check_rec(plan.val_rec, '--data-val')
    return data.make_rec_iter(plan.val_rec, args.image_shape, args.batch_size,
                              num_parts=plan.num_workers, part_index=plan.rank,
                              threads=args.data_nthreads)


def test_io(args, plan, recipe):
    """``--test-io``: read, decode and augment one epoch of this worker's training data (and the
    recipe's batch transforms) without training; log and return img/s."""
    import mxnet as mx
    batches = iter(train_iter(args, plan, 0))
    tic = window_tic = time.time()
    for nbatch in range(plan.epoch_size):
        batch = recipe.apply(next(batches), 0, nbatch)[0]
        for array in batch.data + batch.label:
            array.wait_to_read()
        if (nbatch + 1) % args.frequent == 0:
            LOG.info('test-io: Batch [%d]\tSpeed: %.2f samples/sec', nbatch + 1,
                     args.frequent * args.batch_size / (time.time() - window_tic))
            window_tic = time.time()
    mx.nd.waitall()
    speed = plan.epoch_size * args.batch_size / (time.time() - tic)
    LOG.info('test-io: %d images of %s in %.2f s: %.1f img/s with --data-nthreads %d, '
             '--aug-level %d', plan.epoch_size * args.batch_size, plan.train_rec,
             time.time() - tic, speed, args.data_nthreads, args.aug_level)
    return {'img_per_sec': speed}


class Progress:
    """A run's clock and validation record, for the per-epoch lines and the final summary."""

    def __init__(self, begin_epoch, num_epochs):
        self.begin_epoch = begin_epoch
        self.num_epochs = num_epochs
        self.start = time.time()
        self.best_epoch, self.best_accuracy = None, -1.0
        self.val_metrics, self.val_count = {}, 0

    def log_epoch(self, epoch, metric, examples, elapsed, lr):
        """The training metrics, time, throughput, learning rate and time left after ``epoch``."""
        for name, value in metric.get_name_value():
            LOG.info('Epoch[%d] Train-%s=%f', epoch, name, value)
        LOG.info('Epoch[%d] Time cost=%.3f', epoch, elapsed)
        remaining = (time.time() - self.start) / (epoch + 1 - self.begin_epoch) * \
            (self.num_epochs - epoch - 1)
        LOG.info('Epoch[%d] Throughput=%.1f samples/sec\tlr=%.8g\testimated time left=%s',
                 epoch, examples / elapsed, lr, format_duration(remaining))

    def validated(self, epoch, values, count):
        """Record the validation ``values`` over ``count`` examples after ``epoch``."""
        self.val_metrics, self.val_count = values, count
        if values['accuracy'] > self.best_accuracy:
            self.best_epoch, self.best_accuracy = epoch + 1, values['accuracy']

    def log_summary(self, args):
        """The final line: last and best validation accuracy, epochs, time and where things are."""
        LOG.info('Final validation accuracy%s %.4f on %d images (best %.4f after epoch %d); '
                 'trained %d epochs in %s; checkpoints under %s; curve %s',
                 ' of the --ema average' if args.ema else '',
                 self.val_metrics['accuracy'], self.val_count, self.best_accuracy,
                 self.best_epoch, self.num_epochs - self.begin_epoch,
                 format_duration(time.time() - self.start), args.model_prefix,
                 training_log.curve_path(args.log_file))


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


def params_digest(arg_params):
    """sha256 of the trainable parameters by name: equal on workers that hold the same weights."""
    digest = hashlib.sha256()
    for name in sorted(arg_params):
        digest.update(name.encode())
        digest.update(arg_params[name].asnumpy().tobytes())
    return digest.hexdigest()


def write_curve(args):
    """Redraw the run's learning-curve PNG beside its log; a failure only warns."""
    try:
        training_log.plot([args.log_file], training_log.curve_path(args.log_file),
                          title=os.path.splitext(os.path.basename(args.log_file))[0])
    except (OSError, ValueError) as err:
        LOG.warning('could not draw the learning curve: %s', err)


def format_duration(seconds):
    """``H:MM:SS``."""
    minutes, seconds = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return '%d:%02d:%02d' % (hours, minutes, seconds)


# --- benchmark ---

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


def benchmark(mod, args, context, recipe=None, ema=None):
    """Time forward, backward and update on synthetic batches (with the recipe's batch transforms
    and the moving average's update, if any); log and return img/s."""
    import mxnet as mx
    batches = SyntheticIter(args.batch_size, args.image_shape, args.num_classes, context)
    times = []
    for i in range(arguments.BENCHMARK_WARMUP + arguments.BENCHMARK_BATCHES):
        tic = time.time()
        batch = next(batches)
        mod.forward_backward(recipe.apply(batch, 0, i)[0] if recipe is not None else batch)
        mod.update()
        if ema is not None:
            ema.update(mod)
        mx.nd.waitall()
        if i >= arguments.BENCHMARK_WARMUP:
            times.append(time.time() - tic)
    speed = args.batch_size / float(np.median(times))
    depth = ' depth %d' % args.depth if symbols.fixed_depth(args.network) is None else ''
    LOG.info('benchmark: %s%s, batch %d, input %s, %s: training %.2f img/s (median of %d '
             'batches)', args.network, depth, args.batch_size,
             'x'.join(map(str, args.image_shape)), args.dtype, speed, arguments.BENCHMARK_BATCHES)
    return {'img_per_sec': speed}


# --- log files ---

def setup_logging(log_file):
    """Log to the console and to ``log_file`` (its directory is created)."""
    directory = os.path.dirname(os.path.abspath(log_file))
    try:
        os.makedirs(directory, exist_ok=True)
        file_handler = faults.RunLogHandler(log_file)
    except OSError as err:
        raise UsageError('cannot write the log file %s (%s); choose another --log-file'
                         % (log_file, err.strerror or err)) from None
    formatter = logging.Formatter('%(asctime)s %(message)s')
    root = logging.getLogger()
    _remove_handlers(root)
    console = logging.StreamHandler(sys.stdout)
    for handler in (console, file_handler):
        handler.setFormatter(formatter)
        handler.senet_handler = True
        root.addHandler(handler)
    root.setLevel(logging.INFO)


def _remove_handlers(root):
    for handler in list(root.handlers):
        if getattr(handler, 'senet_handler', False):
            root.removeHandler(handler)
            handler.close()


def discard_log(log_file):
    """Delete ``log_file``, a log this run began, when it records no batch or epoch: the run
    stopped at a usage error before training, and the file would only carry the rejected
    arguments' name. A log with training in it is kept (e.g. a bad label found in epoch 3)."""
    if log_file is None or not os.path.exists(log_file):
        return
    with open(log_file) as stream:
        if 'Epoch[' in stream.read():
            return
    _remove_handlers(logging.getLogger())
    os.remove(log_file)


def tag_worker_logs(rank, num_workers):
    """Put ``[worker RANK/NUM]`` in every line of the trainer's log handlers (distributed jobs)."""
    formatter = logging.Formatter('%%(asctime)s [worker %d/%d] %%(message)s' % (rank, num_workers))
    for handler in logging.getLogger().handlers:
        if getattr(handler, 'senet_handler', False):
            handler.setFormatter(formatter)
