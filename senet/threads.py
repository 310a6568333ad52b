"""OpenMP threads of a run: every physical core, shared out over several CPU contexts (``--cpus N``).

Each operator uses OpenMP's thread count, which the OpenMP runtime reads from ``OMP_NUM_THREADS``
once, when MXNet loads. Without it MXNet 1.9.1 takes half the logical CPUs, assuming two hardware
threads per core: on a machine without hyper-threading that leaves half the cores idle (SE-ResNeXt-50
at 224x224 trained at 5.2 instead of 8.2 img/s on 2 cores). MXNet runs each CPU context's operators
on an engine thread of its own; small networks gain almost nothing from a second OpenMP thread but
nearly double their speed when two contexts each run on one core. The scripts call
:func:`configure` before importing MXNet; a user's ``OMP_NUM_THREADS`` always wins. Inside a
container the cgroup's CPU quota caps the count (more threads than the quota's CPUs only wait).
"""
import argparse
import os


def physical_cores(cpuinfo='/proc/cpuinfo', allowed=None):
    """Physical cores among the logical CPUs ``allowed`` (default: those this process may run on):
    distinct (package, core) pairs of ``cpuinfo``; the number of allowed CPUs where that file says
    nothing about cores."""
    if allowed is None and hasattr(os, 'sched_getaffinity'):
        allowed = os.sched_getaffinity(0)
    try:
        with open(cpuinfo) as stream:
            blocks = stream.read().strip().split('\n\n')
    except OSError:
        blocks = []
    cores = set()
    for block in blocks:
        fields = dict(line.split(':', 1) for line in block.splitlines() if ':' in line)
        fields = {key.strip(): value.strip() for key, value in fields.items()}
        if 'processor' not in fields or 'core id' not in fields:
            continue
        if allowed is not None and int(fields['processor']) not in allowed:
            continue
        cores.add((fields.get('physical id', '0'), fields['core id']))
    if cores:
        return len(cores)
    return len(allowed) if allowed else (os.cpu_count() or 1)


CGROUP_QUOTAS = (('/sys/fs/cgroup/cpu.max',),
                 ('/sys/fs/cgroup/cpu/cpu.cfs_quota_us', '/sys/fs/cgroup/cpu/cpu.cfs_period_us'))
"""cgroup v2's ``cpu.max`` (``quota period`` or ``max period``), and v1's quota and period files."""


def cpu_quota(files=CGROUP_QUOTAS):
    """CPUs' worth of time a container's cgroup quota allows (rounded up), or None without one."""
    for paths in files:
        try:
            fields = []
            for path in paths:
                with open(path) as stream:
                    fields += stream.read().split()
            quota, period = int(fields[0]), int(fields[1])
        except (OSError, ValueError, IndexError):
            continue
        if quota > 0 and period > 0:
            return -(-quota // period)
    return None


def usable_cores():
    """OpenMP threads that keep every core this process may use busy without oversubscribing:
    the physical cores of its affinity mask, no more than a container's CPU quota."""
    quota = cpu_quota()
    cores = physical_cores()
    return min(cores, quota) if quota else cores


def threads_per_context(argv, cores=None):
    """OpenMP threads per context for command line ``argv``: ``cores`` (default: usable_cores())
    split evenly over ``--cpus N`` CPU contexts, all of them for one context or for ``--gpus``;
    None when ``argv`` does not parse (the trainer reports that)."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument('--cpus', type=int, default=1)
    parser.add_argument('--gpus', default='')
    try:
        known, _ = parser.parse_known_args(argv)
    except SystemExit:
        return None
    cores = cores or usable_cores()
    if known.cpus <= 1 or known.gpus.strip():
        return cores
    return max(1, cores // known.cpus)


def configure(argv):
    """Set ``OMP_NUM_THREADS`` for ``argv`` unless the user set it; call before ``import mxnet``.
    Returns the value in effect (None: OpenMP's default)."""
    if 'OMP_NUM_THREADS' not in os.environ:
        threads = threads_per_context(argv)
        if threads is not None:
            os.environ['OMP_NUM_THREADS'] = str(threads)
    return os.environ.get('OMP_NUM_THREADS')
