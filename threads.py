"""OpenMP threads for a run split over several CPU contexts (``--cpus N``).

MXNet runs each CPU context's operators on an engine thread of its own, and each operator uses
OpenMP's thread count, which the OpenMP runtime reads from ``OMP_NUM_THREADS`` once, when MXNet
loads. Small networks gain almost nothing from a second OpenMP thread but nearly double their speed
when two contexts each run on one core. The trainers call :func:`configure` before importing MXNet.
"""
import argparse
import os


def threads_per_context(argv, cores=None):
    """OpenMP threads per context for command line ``argv``: cores // --cpus, or None when the run
    is not split over several CPU contexts (or ``argv`` does not parse; the trainer reports that)."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument('--cpus', type=int, default=1)
    parser.add_argument('--gpus', default='')
    try:
        known, _ = parser.parse_known_args(argv)
    except SystemExit:
        return None
    if known.cpus <= 1 or known.gpus.strip():
        return None
    return max(1, (cores or os.cpu_count() or 1) // known.cpus)


def configure(argv):
    """Set ``OMP_NUM_THREADS`` for ``argv`` unless the user set it; call before ``import mxnet``.
    Returns the value in effect (None: OpenMP's default)."""
    if 'OMP_NUM_THREADS' not in os.environ:
        threads = threads_per_context(argv)
        if threads is not None:
            os.environ['OMP_NUM_THREADS'] = str(threads)
    return os.environ.get('OMP_NUM_THREADS')
