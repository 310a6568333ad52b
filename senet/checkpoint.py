"""Checkpoints: written atomically, found again for resume, pruned on request.

An epoch's checkpoint is ``<prefix>-symbol.json``, ``<prefix>-NNNN.states`` and ``<prefix>-NNNN.params``
(MXNet's ``mx.model.load_checkpoint`` layout). Every file is written under a temporary name and renamed
into place, and the params file comes last: a params file that exists is complete, and so is the
states file beside it. A kill at any moment leaves the previous checkpoint whole.

A run stopped by SIGINT/SIGTERM between batches writes a *partial* checkpoint
``<prefix>-NNNN-partial.{params,states,json}``: NNNN epochs done and the JSON's ``batch`` batches of
the next one. Resuming from it skips those batches of the (deterministically shuffled) epoch.

With ``--ema`` the moving average of the weights is saved beside every (partial) checkpoint as its
own checkpoint under the prefix ``<prefix>-ema``: ``<prefix>-ema-symbol.json`` and
``<prefix>-ema-NNNN.params`` (``<prefix>-ema-NNNN-partial.params``), so every tool loads it with
``--prefix <prefix>-ema --epoch NNNN``. With ``--save-best`` the best epoch so far (by validation
top-1 of the weights the run validates as its result: the average with ``--ema``, else the raw
weights) is kept as ``<prefix>-best-symbol.json`` and ``<prefix>-best-NNNN.params`` (NNNN: that
epoch; one at a time), described by ``<prefix>-best.json``; ``--keep-last`` never prunes it.

Parameters are saved in float32 whatever precision trained them.

A training run writes through a :class:`Checkpointer`, which also prunes and names the last good
checkpoint; the functions below are what it and resume are built from.
"""
import glob
import hashlib
import json
import logging
import os
import re
import shutil
import signal

import numpy as np

LOG = logging.getLogger('senet')

FAULT_ENV = 'SENET_FAULT_KILL_IN_SAVE'
"""Fault injection for tests: ``<epoch>`` makes the process SIGKILL itself while writing that
epoch's params file (after the temporary file is written, before it is renamed into place)."""


class CheckpointError(Exception):
    """A checkpoint that is missing or unusable; the message says what exists and what to do."""


def checkpoint_paths(prefix, epoch):
    """The symbol, params and states files of ``epoch``."""
    return ('%s-symbol.json' % prefix, '%s-%04d.params' % (prefix, epoch),
            '%s-%04d.states' % (prefix, epoch))


def partial_paths(prefix, epoch):
    """The params, states and position files of a partial checkpoint after ``epoch`` epochs."""
    base = '%s-%04d-partial' % (prefix, epoch)
    return base + '.params', base + '.states', base + '.json'


def ema_prefix(prefix):
    """The checkpoint prefix of the moving average of ``prefix``'s weights."""
    return prefix + '-ema'


def best_prefix(prefix):
    """The checkpoint prefix of ``prefix``'s best epoch."""
    return prefix + '-best'


def ema_params_path(prefix, params_path):
    """The moving average's params file beside ``params_path`` (a file under ``prefix``)."""
    return ema_prefix(prefix) + params_path[len(prefix):]


def params_dict(arg_params, aux_params):
    """The ``arg:``/``aux:`` dictionary of a params file, in float32."""
    def float32(value):
        return value if value.dtype == np.float32 else value.astype(np.float32)
    params = {'arg:' + k: float32(v) for k, v in arg_params.items()}
    params.update({'aux:' + k: float32(v) for k, v in aux_params.items()})
    return params


def saved_epochs(prefix):
    """Epochs that have a (complete) params file under ``prefix``, sorted."""
    pattern = re.compile(re.escape(os.path.basename(prefix)) + r'-(\d{4})\.params$')
    found = [pattern.match(os.path.basename(path))
             for path in glob.glob(glob.escape(prefix) + '-*.params')]
    return sorted(int(match.group(1)) for match in found if match)


def saved_partial(prefix):
    """(epoch, batch) of the partial checkpoint under ``prefix``, or None."""
    newest = None
    for path in glob.glob(glob.escape(prefix) + '-*-partial.json'):
        try:
            with open(path) as stream:
                position = json.load(stream)
            epoch, batch = int(position['epoch']), int(position['batch'])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if os.path.isfile(partial_paths(prefix, epoch)[0]) and (newest is None or
                                                                 (epoch, batch) > newest):
            newest = (epoch, batch)
    return newest


def atomic_write(path, write):
    """Call ``write(tmp_path)`` and rename the result onto ``path``.

    An OSError (a full disk, a removed or read-only directory) names ``path`` and leaves no
    temporary file behind where the system still lets it be removed.
    """
    tmp = '%s.tmp-%d' % (path, os.getpid())
    try:
        write(tmp)
        fault = os.environ.get(FAULT_ENV)
        if fault and fault == _fault_tag(path):
            os.kill(os.getpid(), signal.SIGKILL)
        os.replace(tmp, path)
    except OSError as err:
        raise OSError(err.errno, err.strerror, path) from None
    finally:
        try:
            if os.path.exists(tmp):
                os.remove(tmp)
        except OSError:
            pass


def save_ndarrays(path, arrays):
    """``mx.nd.save(path, arrays)``, with the system's reason when the file cannot be written.

    MXNet's own file writer reports a full disk as "FileStream.Write incomplete", without the reason.
    Where Linux offers anonymous memory files, MXNet writes into one and Python copies it to
    ``path`` (same bytes), so a failed write raises an OSError that says why; the copy holds the
    parameters in memory a second time while it is written.
    """
    import mxnet as mx
    if not hasattr(os, 'memfd_create'):
        mx.nd.save(path, arrays)
        return
    memory = os.memfd_create('params')
    try:
        mx.nd.save('/proc/self/fd/%d' % memory, arrays)
        with open(memory, 'rb', closefd=False) as source, open(path, 'wb') as target:
            shutil.copyfileobj(source, target, 1 << 20)
    except OSError as err:
        raise OSError(err.errno, err.strerror, path) from None
    finally:
        os.close(memory)


def save_symbol(path, symbol):
    """``symbol.save(path)`` (the same JSON), through Python's file writer for the same reason."""
    try:
        with open(path, 'w') as stream:
            stream.write(symbol.tojson())
    except OSError as err:
        raise OSError(err.errno, err.strerror, path) from None


def _fault_tag(path):
    match = re.search(r'-(\d{4})\.params$', path)
    return str(int(match.group(1))) if match else None


def current_params(mod):
    """(arg_params, aux_params) of a training Module, with up-to-date BatchNorm statistics."""
    import mxnet as mx
    # MXNet 1.9.1's oneDNN BatchNorm updates its moving statistics outside the engine's dependency
    # tracking, and Module caches what get_params() copied: wait first, or the copy is stale.
    mx.nd.waitall()
    return mod.get_params()


def save(mod, symbol, prefix, epoch, save_states=True, batch=None, ema=None):
    """Write the checkpoint of ``epoch`` (partial, after ``batch`` batches of the next, if given),
    with the moving average ``ema`` (a :class:`senet.ema.ModelEma`) beside it if given."""
    params = params_dict(*current_params(mod))
    sym_path, params_path, states_path = checkpoint_paths(prefix, epoch)
    if batch is not None:
        params_path, states_path, position_path = partial_paths(prefix, epoch)
    atomic_write(sym_path, lambda tmp: save_symbol(tmp, symbol))
    if save_states:
        atomic_write(states_path, mod.save_optimizer_states)
    if batch is not None:
        atomic_write(position_path, lambda tmp: _write_json(tmp, dict(epoch=epoch, batch=batch)))
    if ema is not None:
        atomic_write(checkpoint_paths(ema_prefix(prefix), epoch)[0],
                     lambda tmp: save_symbol(tmp, symbol))
        ema_params = params_dict(*ema.params())
        atomic_write(ema_params_path(prefix, params_path),
                     lambda tmp: save_ndarrays(tmp, ema_params))
    atomic_write(params_path, lambda tmp: save_ndarrays(tmp, params))
    if batch is None:
        remove_partials(prefix)
    return params_path


def _write_json(path, value):
    with open(path, 'w') as stream:
        json.dump(value, stream)


def remove_stale_temporaries(prefix):
    """Delete temporary checkpoint files under ``prefix`` left by processes that no longer run."""
    for path in glob.glob(glob.escape(prefix) + '-*.tmp-*'):
        pid = path.rsplit('.tmp-', 1)[1]
        if pid.isdigit() and not os.path.exists('/proc/%s' % pid) or pid == str(os.getpid()):
            os.remove(path)


def remove_partials(prefix):
    """Delete every partial checkpoint under ``prefix`` (a complete epoch supersedes them)."""
    for path in glob.glob(glob.escape(prefix) + '-*-partial.*'):
        os.remove(path)


def prune(prefix, keep_last):
    """Keep only the newest ``keep_last`` epochs' params/states under ``prefix`` (0 keeps all)."""
    if keep_last <= 0:
        return
    for epoch in saved_epochs(prefix)[:-keep_last]:
        _, params_path, states_path = checkpoint_paths(prefix, epoch)
        for path in (params_path, states_path, ema_params_path(prefix, params_path)):
            if os.path.exists(path):
                os.remove(path)


def read_best(prefix):
    """The record of ``prefix``'s best checkpoint (epoch, accuracy, weights), or None."""
    try:
        with open(best_prefix(prefix) + '.json') as stream:
            record = json.load(stream)
        epoch = int(record['epoch'])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return record if os.path.isfile(checkpoint_paths(best_prefix(prefix), epoch)[1]) else None


class Checkpointer:
    """Writes the checkpoints of one run under ``prefix`` and knows the last good one.

    Like timm's ``CheckpointSaver`` it owns everything about a run's files: the directory, complete
    checkpoints after an epoch (pruned to the newest ``keep_last``), partial ones when a signal
    stops the run between batches, and where to resume after a failure. In a distributed job every
    worker holds the same weights, so only rank 0 writes; ``save_states`` is False there, since a
    ``dist_*`` kvstore keeps the optimizer states on its servers.

    Parameters
    ----------
    prefix : str
        Checkpoint prefix (``--model-prefix``).
    symbol : mx.sym.Symbol
        The graph saved as ``<prefix>-symbol.json`` (the textbook graph).
    keep_last : int
        Epochs whose params/states to keep (``--keep-last``); 0 keeps all.
    rank : int
        This worker's rank; only rank 0 writes.
    save_states : bool
        Whether to write the optimizer states beside the params.

    ema : senet.ema.ModelEma, optional
        The moving average of the weights (``--ema``), saved beside every checkpoint.
    """

    def __init__(self, prefix, symbol, keep_last=0, rank=0, save_states=True, ema=None):
        self.prefix = prefix
        self.symbol = symbol
        self.keep_last = keep_last
        self.rank = rank
        self.save_states = save_states
        self.ema = ema
        self.best = None

    def prepare(self):
        """Create the checkpoint directory and delete temporaries left by dead processes."""
        directory = os.path.dirname(os.path.abspath(self.prefix))
        try:
            os.makedirs(directory, exist_ok=True)
        except OSError as err:
            raise CheckpointError('cannot create the checkpoint directory %s (%s); choose another '
                                  '--model-prefix' % (directory, err.strerror or err)) from None
        if not os.access(directory, os.W_OK):
            raise CheckpointError('the checkpoint directory %s is not writable; choose another '
                                  '--model-prefix' % directory)
        remove_stale_temporaries(self.prefix)

    def save(self, mod, epoch):
        """Write the checkpoint after ``epoch`` epochs, then prune; the params path (rank 0)."""
        path = self._write(mod, epoch)
        if path is not None:
            prune(self.prefix, self.keep_last)
        return path

    def save_partial(self, mod, epoch, batch):
        """Write a partial checkpoint: ``epoch`` epochs and ``batch`` batches of the next."""
        return self._write(mod, epoch, batch)

    def _write(self, mod, epoch, batch=None):
        if self.rank != 0:
            return None
        path = save(mod, self.symbol, self.prefix, epoch, save_states=self.save_states,
                    batch=batch, ema=self.ema)
        LOG.info('Saved checkpoint to "%s"', path)
        return path

    def resume_best(self):
        """Continue the best-epoch record of the run being resumed (``--retrain``)."""
        self.best = read_best(self.prefix)

    def save_best(self, arg_params, aux_params, epoch, accuracy, weights):
        """Keep ``epoch``'s parameters as ``<prefix>-best`` if ``accuracy`` beats the best so far.

        ``weights`` says which weights they are ('ema' or 'raw'). Returns the params path written,
        or None.
        """
        if self.rank != 0 or (self.best is not None and accuracy <= self.best['accuracy']):
            return None
        prefix = best_prefix(self.prefix)
        sym_path, params_path, _ = checkpoint_paths(prefix, epoch)
        params = params_dict(arg_params, aux_params)
        atomic_write(sym_path, lambda tmp: save_symbol(tmp, self.symbol))
        atomic_write(params_path, lambda tmp: save_ndarrays(tmp, params))
        self.best = dict(epoch=epoch, accuracy=accuracy, weights=weights,
                         params=os.path.basename(params_path))
        atomic_write(prefix + '.json', lambda tmp: _write_json(tmp, self.best))
        for path in glob.glob(glob.escape(prefix) + '-*.params'):
            if path != params_path:
                os.remove(path)
        LOG.info('Epoch[%d] best validation accuracy so far %f: saved "%s"', epoch - 1, accuracy,
                 params_path)
        return params_path

    def last_good(self):
        """The newest complete params file and how to resume from it, for error messages."""
        epochs = saved_epochs(self.prefix)
        if not epochs:
            return 'none saved yet'
        return '%s (resume with --model-load-epoch %d --retrain)' % (
            checkpoint_paths(self.prefix, epochs[-1])[1], epochs[-1])


def resume_point(prefix, epoch):
    """(epoch, batch, params path, states path) to resume from; ``epoch`` -1 means the newest."""
    epochs = saved_epochs(prefix)
    listing = ('saved epochs under this prefix: %s' % ', '.join(map(str, epochs)) if epochs
               else 'no epochs are saved under --model-prefix %s' % prefix)
    if epoch == -1:
        partial = saved_partial(prefix)
        if partial and (not epochs or partial[0] >= epochs[-1]):
            params_path, states_path, _ = partial_paths(prefix, partial[0])
            return partial[0], partial[1], params_path, _existing(states_path)
        if not epochs:
            raise CheckpointError('no checkpoint to resume from: %s; start without --retrain'
                                  % listing)
        epoch = epochs[-1]
    _, params_path, states_path = checkpoint_paths(prefix, epoch)
    if not os.path.isfile(params_path):
        raise CheckpointError('no checkpoint %s to resume from; %s' % (params_path, listing))
    return epoch, 0, params_path, _existing(states_path)


def _existing(path):
    return path if os.path.isfile(path) else None


def load_params(params_path):
    """(arg_params, aux_params) of a params file; an unreadable one is a CheckpointError."""
    import mxnet as mx
    try:
        saved = mx.nd.load(params_path)
    except mx.base.MXNetError:
        raise CheckpointError('%s is not a readable params file (truncated or corrupt); resume '
                              'from another epoch' % params_path) from None
    if not isinstance(saved, dict) or not saved:
        raise CheckpointError('%s holds no named parameters; resume from another epoch'
                              % params_path)
    arg_params = {k[4:]: v for k, v in saved.items() if k.startswith('arg:')}
    aux_params = {k[4:]: v for k, v in saved.items() if k.startswith('aux:')}
    return arg_params, aux_params


def load_optimizer_states(mod, path):
    """Module.load_optimizer_states, without leaving the file open (MXNet's kvstore does)."""
    updater = mod._kvstore._updater if mod._update_on_kvstore else mod._updater
    with open(path, 'rb') as stream:
        updater.set_states(stream.read())


def file_sha256(path):
    """SHA-256 of a file's bytes, read in 1 MB blocks (model cards record it for each file)."""
    digest = hashlib.sha256()
    with open(path, 'rb') as stream:
        for block in iter(lambda: stream.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()
