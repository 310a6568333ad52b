"""Print a markdown table of a training log: epoch, train and validation accuracy, time, lr.

Usage::

    python parse_log.py log/se-resnext-fashion-mnist-14.log
"""
import argparse
import os
import sys

from senet import training_log


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('log', help='a log file written by a trainer')
    args = parser.parse_args(argv)
    if not os.path.isfile(args.log):
        parser.exit(2, '%s: error: log file %s does not exist\n' % (parser.prog, args.log))
    rows = training_log.parse(args.log)
    if not rows:
        parser.exit(2, '%s: error: %s has no "Epoch[n] ..." lines; is it a trainer\'s log?\n'
                    % (parser.prog, args.log))
    print(training_log.markdown_table(rows))
    return 0


if __name__ == '__main__':
    sys.exit(main())
