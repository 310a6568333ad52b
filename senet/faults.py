"""Failures of the operating system during a training run, reported as one line.

A disk that fills while a checkpoint or the log is written, a checkpoint or log directory removed
or made read-only, a ``.rec`` file cut short or replaced under the running iterator, memory
exhausted when the network's arrays are allocated: each ends the run with exit status
:data:`EXIT_CODE` and one line on stderr naming the path, the system's reason and what was kept::

    train_se_resnext_w_d.py: error: cannot write model/net-symbol.json (No space left on device);
    last complete checkpoint: epoch 2 (model/net-0002.params); resume with --model-load-epoch 2
    --retrain

(one line; wrapped here). Checkpoints are written to a temporary name and renamed, so every
checkpoint file that exists is complete (:mod:`senet.checkpoint`). The catalogue with the test of
each failure is docs/reliability.md.
"""
import errno
import logging
import os
import sys

import data
from senet import checkpoint

EXIT_CODE = 1

OUT_OF_MEMORY = ('Failed to allocate', 'std::bad_alloc', 'out of memory')
"""Fragments of MXNet's errors when an allocation fails (``cpu_device_storage.h``: "Failed to
allocate CPU Memory"; CUDA's "out of memory")."""


class RunFailed(Exception):
    """The run cannot go on for a reason outside it (its data file changed under it)."""


def kept(prefix):
    """What a failed run leaves to resume from under ``prefix``, and how to resume."""
    directory = os.path.dirname(os.path.abspath(prefix))
    if not os.path.isdir(directory):
        return 'no checkpoint is left: the checkpoint directory %s no longer exists' % directory
    epochs = checkpoint.saved_epochs(prefix)
    partial = checkpoint.saved_partial(prefix)
    if partial and (not epochs or partial[0] >= epochs[-1]):
        return ('last checkpoint: %s (epoch %d, batch %d); resume with --model-load-epoch -1 '
                '--retrain' % (checkpoint.partial_paths(prefix, partial[0])[0], partial[0] + 1,
                               partial[1]))
    if not epochs:
        return 'no complete checkpoint was saved under %s' % prefix
    return ('last complete checkpoint: epoch %d (%s); resume with --model-load-epoch %d --retrain'
            % (epochs[-1], checkpoint.checkpoint_paths(prefix, epochs[-1])[1], epochs[-1]))


def is_failure(err):
    """Whether ``err`` is one of the failures this module reports."""
    return isinstance(err, (OSError, MemoryError, RunFailed)) or out_of_memory(err)


def out_of_memory(err):
    """Whether ``err`` (an MXNetError or MemoryError) says an allocation failed."""
    if isinstance(err, MemoryError):
        return True
    import mxnet as mx
    return isinstance(err, mx.base.MXNetError) and any(
        fragment in str(err) for fragment in OUT_OF_MEMORY)


def settle():
    """Wait for MXNet's engine to finish what was queued before a failure, dropping the errors it
    rethrows: the error is reported, and otherwise MXNet prints it again as a traceback when the
    process exits."""
    import mxnet as mx
    for _ in range(3):
        try:
            mx.nd.waitall()
            return
        except mx.base.MXNetError:
            continue


def describe(err, prefix):
    """The one line for ``err`` (see :func:`is_failure`), ending with what was kept under
    ``prefix`` (``--model-prefix``; None before it is known)."""
    if out_of_memory(err):
        what = ('out of memory while allocating the network\'s arrays (%s); lower --batch-size or '
                '--image-shape, add --memonger, or free memory' % mxnet_reason(err))
    elif isinstance(err, OSError):
        what = os_error_line(err)
    else:
        what = str(err)
    return what if prefix is None else '%s; %s' % (what, kept(prefix))


def os_error_line(err):
    """``cannot write PATH (REASON)`` for an OSError of a write (the destination of a copy)."""
    path = getattr(err, 'filename2', None) or err.filename
    if path is None:
        return 'the system refused an operation (%s)' % (err.strerror or err)
    return 'cannot write %s (%s)' % (path, err.strerror or err)


def mxnet_reason(err):
    """The line of an MXNet error that says what failed (its text starts with a C++ stack)."""
    lines = [line for line in str(err).strip().splitlines()
             if line.strip() and not line.startswith(('Traceback', '  File'))]
    text = lines[-1] if lines else type(err).__name__
    return text.split('MXNetError: ', 1)[-1].strip()


def check_rec(path, flag):
    """Raise :class:`RunFailed` if the ``.rec`` at ``path`` is no longer whole (checked before each
    epoch builds its iterator: MXNet 1.9.1's ImageRecordIter crashes on a ``.rec`` shorter than its
    ``.idx``)."""
    try:
        data.check_rec(path, flag)
    except data.DataError as err:
        raise RunFailed('%s changed during the run: %s' % (path, err)) from None


def next_batch(batches, path, flag, epoch, nbatch):
    """The next batch of ``batches``, an iterator over ``path``; a read failure (the file cut short
    or replaced while it is read) is a :class:`RunFailed` naming the file and why."""
    import mxnet as mx
    try:
        return next(batches)
    except StopIteration:
        raise RunFailed('%s ended at batch %d of epoch %d, before the epoch did: it holds fewer '
                        'records than --num-examples says, or it changed during the run'
                        % (path, nbatch, epoch)) from None
    except mx.base.MXNetError as err:
        try:
            data.check_rec(path, flag)
            reason = 'MXNet: %s' % mxnet_reason(err)
        except data.DataError as problem:
            reason = str(problem)
        raise RunFailed('cannot read %s at batch %d of epoch %d: %s' % (path, nbatch, epoch,
                                                                      reason)) from None


class RunLogHandler(logging.FileHandler):
    """The run's log file: a write that fails stops the run, and so does the file's removal.

    The standard handler prints a traceback for a failed write and carries on, and writes on into
    a file whose directory was removed (the open file lives on, unreachable). Here both raise an
    OSError naming the log, which the trainer reports as one line (:func:`describe`).
    """

    def emit(self, record):
        if self.stream is not None and os.fstat(self.stream.fileno()).st_nlink == 0:
            raise FileNotFoundError(errno.ENOENT, 'the log file was removed during the run',
                                    self.baseFilename)
        super().emit(record)

    def handleError(self, record):
        err = sys.exc_info()[1]
        if isinstance(err, OSError):
            raise OSError(err.errno, err.strerror, self.baseFilename) from None
        super().handleError(record)

    def close(self):
        """Close, dropping what a full disk refused (it cannot be written)."""
        try:
            super().close()
        except OSError:
            pass
