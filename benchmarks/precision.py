"""Training speed of bfloat16 against float32 on this machine, in one process.

Both precisions of the same network are bound side by side (the trainer's own ``bind`` and
``init_optimizer``, synthetic data) and timed in alternating rounds, so a change of the machine's
load hits both alike; the medians and their ratio are printed. Takes the trainer's flags::

    python -m benchmarks.precision --data-type fashion-mnist --image-shape 3,28,28 --depth 14 \\
        --cpus 2 --batch-size 64
    python -m benchmarks.precision --batch-size 16          # SE-ResNeXt-50, 224x224
"""
import sys
import time

from senet import threads

threads.configure(sys.argv[1:])

import mxnet as mx  # noqa: E402  (MXNet must load after OMP_NUM_THREADS is set)
import numpy as np  # noqa: E402

from senet import arguments, fit  # noqa: E402
from symbols import cpu_fast  # noqa: E402

DTYPES = ('float32', 'bfloat16')
ROUNDS = 5
"""Timed rounds per precision, after one warm-up round."""


def bind(argv, dtype='float32', conv_form='auto', se_form='fast'):
    """(module, synthetic batch, resolved flags) of the trainer's network for ``argv`` in
    ``dtype``, its grouped convolutions in ``conv_form`` and its SE blocks in ``se_form``
    (symbols.cpu_fast.GROUPED_CONV_IMPLS, SE_IMPLS)."""
    parser = arguments.build_parser(network='se-resnext')
    args = arguments.resolve_args(parser.parse_args(argv + ['--benchmark', '--dtype', dtype]))
    contexts = arguments.make_contexts(args.gpus, args.cpus)
    plan = fit.make_plan(args, mx.kv.create(args.kv_store), contexts)
    with cpu_fast.grouped_conv_implementation(conv_form), cpu_fast.se_implementation(se_form):
        symbol = fit.build_network(args)[0]
    mod = fit.bind(args, plan, symbol, fit.FRESH_START)
    fit.init_optimizer(mod, args, plan, fit.FRESH_START)
    batch = fit.SyntheticIter(args.batch_size, args.image_shape, 10, contexts[0]).batch
    return mod, batch, args


def time_alternately(bound, steps=None, rounds=ROUNDS):
    """Median training img/s of each module of ``bound`` (name -> what :func:`bind` returns), timed
    in ``rounds`` alternating rounds of ``steps`` steps each (default 3 for images over 100 pixels
    high, else 30) after one warm-up round."""
    args = next(iter(bound.values()))[2]
    if steps is None:
        steps = 3 if args.image_shape[1] > 100 else 30
    seconds = {name: [] for name in bound}
    for round_index in range(rounds + 1):
        for name, (mod, batch, _) in bound.items():
            for _ in range(steps):
                tic = time.time()
                mod.forward_backward(batch)
                mod.update()
                mx.nd.waitall()
                if round_index:  # the first round warms up
                    seconds[name].append(time.time() - tic)
    return {name: args.batch_size / np.median(values) for name, values in seconds.items()}


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        bound = {dtype: bind(argv, dtype) for dtype in DTYPES}
    except arguments.UsageError as err:
        sys.exit('error: %s' % err)
    speed = time_alternately(bound)
    for dtype in DTYPES:
        print('%-9s %9.2f img/s' % (dtype, speed[dtype]))
    print('bfloat16 / float32: %.2fx' % (speed['bfloat16'] / speed['float32']))
    return 0


if __name__ == '__main__':
    sys.exit(main())
