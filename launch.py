"""Start a distributed MXNet job: one scheduler, the parameter servers and the workers.

Every process runs the same command; the ``DMLC_*`` environment tells each its role (``import mxnet``
in a scheduler or server process serves the job and exits when it ends). Examples::

    # one machine, 127.0.0.1 only: 2 workers and 1 server
    python launch.py -n 2 -s 1 --launcher local \\
        python train_se_resnext_w_d.py --kv-store dist_sync --data-type fashion-mnist

    # several machines over ssh: servers and workers go round-robin over the hosts file
    python launch.py -n 4 -s 2 -H hosts \\
        .venv/bin/python train_se_resnext_w_d.py --kv-store dist_sync ...

The job succeeds when every worker exits 0. The first worker (or scheduler/server) to fail fails the
job: the launcher stops every other process and exits with that process's status, since ps-lite
itself would leave the survivors waiting forever and report success from the scheduler. Every
process runs in its own process group and dies with the launcher (SIGTERM first, SIGKILL after
``--grace`` seconds); on SIGINT/SIGTERM the workers get SIGTERM and a chance to save a checkpoint.

Written for this repository instead of wrapping ``mxnet/tools/launch.py``, whose ``dmlc_tracker``
fails on Python >= 3.9, binds to a non-loopback address for local jobs and does not judge workers'
exit codes.
"""
import argparse
import ctypes
import logging
import os
import shlex
import signal
import socket
import subprocess
import sys
import time

from senet import threads

LOG = logging.getLogger('launch')

LOOPBACK = '127.0.0.1'
POLL_SECONDS = 0.1
SSH_PORT = '22'
FORWARDED_ENV = ('OMP_NUM_THREADS', 'MXNET_ENGINE_TYPE', 'MXNET_CPU_WORKER_NTHREADS', 'DMLC_INTERFACE',
                 'PS_VERBOSE')
"""Variables passed on to ssh processes when set here, besides ``--env``."""

PR_SET_PDEATHSIG = 1
"""prctl option: the signal a child gets when its parent dies (Linux)."""


class LaunchError(Exception):
    """A bad command line or hosts file; the message says what to fix."""


def parse_hostfile(path):
    """[(host, ssh port)] from a file of ``host`` or ``host:port`` lines; ``#`` starts a comment."""
    try:
        with open(path) as stream:
            lines = stream.read().splitlines()
    except OSError as err:
        raise LaunchError('cannot read the hosts file %s (%s)' % (path, err.strerror)) from None
    hosts = []
    for line in lines:
        line = line.split('#', 1)[0].strip()
        if not line:
            continue
        host, _, port = line.partition(':')
        if not port.isdigit() and port:
            raise LaunchError('%s: %r is not "host" or "host:port"' % (path, line))
        hosts.append((host, port or SSH_PORT))
    if not hosts:
        raise LaunchError('the hosts file %s lists no host' % path)
    return hosts


def free_port(address):
    """A TCP port that is free on ``address`` now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((address, 0))
        return sock.getsockname()[1]


def route_address(host):
    """This machine's address on the route to ``host`` (a UDP connect sends no packet)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect((host, 9))
        return sock.getsockname()[0]


def _die_with_parent():
    """preexec_fn: SIGKILL this child when the launcher dies, even by SIGKILL."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


class Process:
    """One role of the job: a child process in its own process group."""

    def __init__(self, role, name, argv, env, cwd=None):
        self.role = role
        self.name = name
        self.popen = subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                                      start_new_session=True, preexec_fn=_die_with_parent)
        LOG.info('started %s (pid %d)', name, self.popen.pid)

    def poll(self):
        return self.popen.poll()

    def signal(self, signum):
        if self.popen.poll() is None:
            try:
                os.killpg(self.popen.pid, signum)
            except ProcessLookupError:
                pass


def exit_status(returncode):
    """A shell-style status: the code, or 128 + signal for a process killed by a signal."""
    return 128 - returncode if returncode < 0 else returncode


class Job:
    """The processes of one job and the rules that end it."""

    def __init__(self, grace):
        self.grace = grace
        self.processes = []
        self.signum = None

    def start(self, role, name, argv, env, cwd=None):
        self.processes.append(Process(role, name, argv, env, cwd))

    def _on_signal(self, signum, frame):
        if self.signum is None:
            self.signum = signum
            LOG.warning('%s received: asking the workers to stop', signal.Signals(signum).name)
            for process in self.processes:
                if process.role == 'worker':
                    process.signal(signal.SIGTERM)

    def stop(self, grace):
        """SIGTERM every live process group, SIGKILL after ``grace`` seconds, reap them all."""
        for process in self.processes:
            process.signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(p.poll() is None for p in self.processes):
            time.sleep(POLL_SECONDS)
        for process in self.processes:
            if process.poll() is None:
                LOG.warning('%s (pid %d) did not stop within %gs: killing it', process.name,
                            process.popen.pid, grace)
                process.signal(signal.SIGKILL)
        for process in self.processes:
            process.popen.wait()

    def wait(self, timeout):
        """Watch the job until it ends; returns the launcher's exit status."""
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, self._on_signal)
        start = time.monotonic()
        try:
            return self._watch(start, timeout)
        finally:
            self.stop(self.grace)

    def _watch(self, start, timeout):
        workers = [p for p in self.processes if p.role == 'worker']
        others = [p for p in self.processes if p.role != 'worker']
        signalled_at = None
        while True:
            for process in workers + others:  # a failed worker is the cause; report it first
                code = process.poll()
                if code and self.signum is None:
                    LOG.error('%s (pid %d) exited with status %d: stopping the job', process.name,
                              process.popen.pid, exit_status(code))
                    return exit_status(code)
            if all(p.poll() == 0 for p in workers):
                LOG.info('job finished: all %d workers exited with status 0', len(workers))
                deadline = time.monotonic() + self.grace
                while any(p.poll() is None for p in others) and time.monotonic() < deadline:
                    time.sleep(POLL_SECONDS)
                return self._signal_status() or 0
            if self.signum is not None:
                signalled_at = signalled_at or time.monotonic()
                if all(p.poll() is not None for p in workers) or \
                        time.monotonic() - signalled_at > self.grace:
                    return self._signal_status()
            if timeout and time.monotonic() - start > timeout:
                LOG.error('the job ran longer than --timeout %gs: stopping it', timeout)
                return 124
            time.sleep(POLL_SECONDS)

    def _signal_status(self):
        return 128 + self.signum if self.signum is not None else None


def role_env(role, base, root_uri, port, num_servers, num_workers, node_host, interface=None):
    """The ``DMLC_*`` variables of one role added to ``base``."""
    env = dict(base)
    env.update(DMLC_ROLE=role, DMLC_PS_ROOT_URI=root_uri, DMLC_PS_ROOT_PORT=str(port),
               DMLC_NUM_SERVER=str(num_servers), DMLC_NUM_WORKER=str(num_workers),
               DMLC_NODE_HOST=node_host)
    if interface:
        env['DMLC_INTERFACE'] = interface
    return env


def ssh_argv(host, port, env, command, workdir):
    """``ssh`` running ``command`` in ``workdir`` on ``host`` with ``env``.

    ``-tt`` gives the remote command a terminal, so that it gets SIGHUP when the launcher closes
    the connection: stopping the launcher stops the remote processes too.
    """
    assignments = ' '.join(shlex.quote('%s=%s' % item) for item in sorted(env.items()))
    remote = 'cd %s && exec env %s %s' % (shlex.quote(workdir), assignments,
                                          ' '.join(shlex.quote(arg) for arg in command))
    return ['ssh', '-tt', '-o', 'BatchMode=yes', '-o', 'LogLevel=ERROR', '-p', port, host, remote]


def parse_env_options(options):
    """``--env NAME`` (this machine's value) and ``--env NAME=VALUE`` -> dict."""
    env = {}
    for option in options:
        name, sep, value = option.partition('=')
        if not sep:
            if name not in os.environ:
                raise LaunchError('--env %s: %s is not set here' % (name, name))
            value = os.environ[name]
        env[name] = value
    return env


def launch(args):
    """Start the job that ``args`` describes and watch it; returns the exit status."""
    command = args.command
    job = Job(args.grace)
    try:
        if args.launcher == 'local':
            port = args.port or free_port(LOOPBACK)
            for role, name in plan_roles(args.num_servers, args.num_workers):
                env = role_env(role, os.environ, LOOPBACK, port, args.num_servers,
                               args.num_workers, LOOPBACK, interface='lo')
                env.update(local_threads(role, args.num_workers))
                env.update(parse_env_options(args.env))
                job.start(role, name, command, env)
        else:
            hosts = parse_hostfile(args.hostfile)
            host_ip = args.host_ip or route_address(hosts[0][0])
            port = args.port or free_port(host_ip)
            extra_env = parse_env_options(args.env)
            remote_base = {name: os.environ[name] for name in FORWARDED_ENV if name in os.environ}
            remote_base.update(extra_env)
            workdir = args.workdir or os.getcwd()
            scheduler_env = role_env('scheduler', os.environ, host_ip, port, args.num_servers,
                                     args.num_workers, host_ip)
            scheduler_env.update(extra_env)
            job.start('scheduler', 'scheduler', command, scheduler_env,
                      cwd=workdir if os.path.isdir(workdir) else None)
            counters = {'server': 0, 'worker': 0}
            for role, name in plan_roles(args.num_servers, args.num_workers, scheduler=False):
                host, ssh_port = hosts[counters[role] % len(hosts)]
                counters[role] += 1
                env = role_env(role, remote_base, host_ip, port, args.num_servers,
                               args.num_workers, host)
                job.start(role, '%s on %s' % (name, host),
                          ssh_argv(host, ssh_port, env, command, workdir), os.environ)
    except (LaunchError, OSError) as err:
        job.stop(0)
        if isinstance(err, LaunchError):
            raise
        raise LaunchError('cannot start the job: %s' % err) from None
    return job.wait(args.timeout)


def local_threads(role, num_workers):
    """``OMP_NUM_THREADS`` of one process of a job on this machine, unless it is set here: the
    workers share the physical cores out (each trainer alone would take them all), the scheduler
    and the servers, which only pass messages and sum gradients, get one thread."""
    if 'OMP_NUM_THREADS' in os.environ:
        return {}
    count = max(1, threads.usable_cores() // num_workers) if role == 'worker' else 1
    return {'OMP_NUM_THREADS': str(count)}


def plan_roles(num_servers, num_workers, scheduler=True):
    """[(role, display name)]: the scheduler, then the servers, then the workers."""
    roles = [('scheduler', 'scheduler')] if scheduler else []
    roles += [('server', 'server %d' % i) for i in range(num_servers)]
    roles += [('worker', 'worker %d' % i) for i in range(num_workers)]
    return roles


class OneLineParser(argparse.ArgumentParser):
    """Errors as one line, as the trainers' ``senet.arguments.OneLineParser`` (importing that
    module would load MXNet into the launcher)."""

    def error(self, message):
        self.exit(2, '%s: error: %s (see --help)\n' % (self.prog, message))


def build_parser():
    parser = OneLineParser(
        description=__doc__.split('\n\n')[0],
        epilog='Worker numbers here are launch order; the rank a trainer logs is the one ps-lite '
               'assigns, which may differ.')
    parser.add_argument('-n', '--num-workers', type=int, required=True, help='worker processes')
    parser.add_argument('-s', '--num-servers', type=int,
                        help='parameter-server processes (default: as many as workers)')
    parser.add_argument('-H', '--hostfile',
                        help='file of hosts ("host" or "host:sshport" per line) for --launcher ssh')
    parser.add_argument('--launcher', choices=('local', 'ssh'),
                        help='local: every process on this machine, on 127.0.0.1 only; ssh: the '
                             'scheduler here, servers and workers round-robin over the hosts '
                             '(default: ssh with -H, else local)')
    parser.add_argument('--host-ip',
                        help='ssh: the address of this machine that the hosts reach the scheduler '
                             'at (default: the one on the route to the first host)')
    parser.add_argument('--port', type=int, default=0,
                        help='scheduler port (default: a free one)')
    parser.add_argument('--workdir',
                        help='ssh: directory to run the command in on every host (default: the '
                             'current directory, which must exist there with the same contents)')
    parser.add_argument('--env', action='append', default=[], metavar='NAME[=VALUE]',
                        help='environment variable for every process (repeatable); NAME alone '
                             'passes this machine\'s value on to ssh processes. Passed on without '
                             '--env over ssh: %s' % ', '.join(FORWARDED_ENV))
    parser.add_argument('--timeout', type=float, default=0,
                        help='stop the job and exit with status 124 after this many seconds '
                             '(0: no limit)')
    parser.add_argument('--grace', type=float, default=10,
                        help='seconds between SIGTERM and SIGKILL when the job is stopped')
    parser.add_argument('command', nargs=argparse.REMAINDER,
                        help='the command every process runs, e.g. python train_se_resnext_w_d.py '
                             '--kv-store dist_sync ...')
    return parser


def check_args(parser, args):
    if args.command and args.command[0] == '--':
        args.command = args.command[1:]
    if not args.command:
        parser.error('give the command to run, e.g. python train_se_resnext_w_d.py --kv-store '
                     'dist_sync ...')
    if args.num_servers is None:
        args.num_servers = args.num_workers
    if args.num_workers < 1 or args.num_servers < 1:
        parser.error('-n and -s must be at least 1')
    if not 0 <= args.port <= 65535:
        parser.error('--port must be in [0, 65535] (0: a free one), got %d' % args.port)
    for flag in ('timeout', 'grace'):
        if not getattr(args, flag) >= 0:  # nan fails too
            parser.error('--%s must be in [0, inf), got %g' % (flag, getattr(args, flag)))
    if args.launcher is None:
        args.launcher = 'ssh' if args.hostfile else 'local'
    if args.launcher == 'ssh' and not args.hostfile:
        parser.error('--launcher ssh needs -H HOSTFILE')
    if args.launcher == 'local' and (args.hostfile or args.host_ip or args.workdir):
        parser.error('-H, --host-ip and --workdir apply to --launcher ssh only')


def main(argv=None):
    logging.basicConfig(format='%(asctime)s launch.py: %(message)s', level=logging.INFO,
                        stream=sys.stderr)
    parser = build_parser()
    args = parser.parse_args(argv)
    check_args(parser, args)
    try:
        return launch(args)
    except LaunchError as err:
        sys.stderr.write('%s: error: %s\n' % (parser.prog, err))
        return 2


if __name__ == '__main__':
    sys.exit(main())
