"""What each recipe flag does to a short Fashion-MNIST run's test top-1, against the plain run.

Trains the same configuration once without any recipe flag and once with each trick alone (each a
child ``train_se_resnext_w_d.py`` run, one after the other), then prints every run's final
validation top-1 (the whole Fashion-MNIST test set), its difference to the plain run, and its wall
time as a ratio of the plain run's. The runs are deterministic, so the accuracies repeat on any
machine; the times only compare within one run of this script. The default configuration is
``make train``'s; ``--base`` replaces it::

    python -m benchmarks.recipe                       # make train's run, about 4 minutes per trick
    python -m benchmarks.recipe --tricks plain label-smoothing random-erasing
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from senet import training_log  # noqa: E402

MAKE_TRAIN = ('--data-type fashion-mnist --image-shape 3,28,28 --depth 14 --cpus 2 --batch-size 64 '
              '--lr 0.1 --lr-mode cosine --warmup-epochs 0.2 --num-epochs 5 --aug-level 0 '
              '--frequent 200')
"""``make train``'s flags (the Makefile's TRAIN_ARGS)."""

TRICKS = {
    'plain': [],
    'label-smoothing': ['--label-smoothing', '0.1'],
    'random-erasing': ['--random-erasing', '0.5'],
    'mixup': ['--mixup', '0.2'],
    'cutmix': ['--cutmix', '1.0'],
    'zero-gamma': ['--zero-gamma'],
    'no-wd': ['--no-wd'],
    'ema': ['--ema', '0.999'],
}
"""Each trick's flags, at the value GluonCV's or timm's ImageNet recipes use."""


def final_top1(log_path, ema):
    """The last epoch's validation top-1 in ``log_path`` (the moving average's with ``ema``)."""
    prefix = 'Validation-ema-accuracy=' if ema else 'Validation-accuracy='
    values = [float(line.split(prefix)[1]) for line in training_log.current_run(log_path)
              if prefix in line]
    return values[-1] if values else None


def run(name, base, workdir):
    """(seconds, top-1) of the trainer run with ``base`` and trick ``name``'s flags."""
    log_path = os.path.join(workdir, name + '.log')
    command = [sys.executable, os.path.join(ROOT, 'train_se_resnext_w_d.py')] + base + TRICKS[name] + [
        '--model-prefix', os.path.join(workdir, name), '--log-file', log_path, '--keep-last', '1']
    tic = time.time()
    status = subprocess.call(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seconds = time.time() - tic
    if status:
        sys.exit('error: the %s run failed with status %d; its log: %s' % (name, status, log_path))
    return seconds, final_top1(log_path, ema=name == 'ema')


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--base', default=MAKE_TRAIN,
                        help="the trainer's flags every run shares (default: make train's)")
    parser.add_argument('--tricks', nargs='+', default=list(TRICKS), choices=list(TRICKS),
                        help='the runs, in order; plain (no recipe flag) is always first')
    args = parser.parse_args(argv)
    names = ['plain'] + [name for name in args.tricks if name != 'plain']
    base = args.base.split()
    print('base flags: %s' % ' '.join(base))
    print('| run | flags | test top-1 | vs plain | wall time | vs plain |')
    print('|---|---|---|---|---|---|')
    with tempfile.TemporaryDirectory(prefix='recipe-') as workdir:
        plain = None
        for name in names:
            seconds, top1 = run(name, base, workdir)
            plain = plain or (seconds, top1)
            print('| %s | `%s` | %.2f %% | %+.2f | %.0f s | %.2fx |' % (
                name, ' '.join(TRICKS[name]) or '-', 100 * top1, 100 * (top1 - plain[1]), seconds,
                seconds / plain[0]), flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
