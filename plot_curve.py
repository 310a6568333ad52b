"""Plot training and validation top-1 error against epochs from one or more training logs.

Usage::

    python plot_curve.py log/se-resnext-fashion-mnist-14.log              # -> log/...-14.png
    python plot_curve.py log/a.log log/b.log --out compare.png            # overlay several runs
"""
import argparse
import os
import sys

from senet import training_log


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('logs', nargs='+', help='log files written by the trainers')
    parser.add_argument('--out', help='PNG to write; default: beside the first log')
    parser.add_argument('--title', help='figure title')
    args = parser.parse_args(argv)
    for path in args.logs:
        if not os.path.isfile(path):
            parser.exit(2, '%s: error: log file %s does not exist\n' % (parser.prog, path))
    out = args.out or training_log.curve_path(args.logs[0])
    try:
        training_log.plot(args.logs, out, title=args.title)
    except ValueError as err:
        parser.exit(2, '%s: error: %s\n' % (parser.prog, err))
    print(out)
    return 0


if __name__ == '__main__':
    sys.exit(main())
