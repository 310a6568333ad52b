"""Training speed of the CPU training forms of the graph on this machine, in one process.

The trainers build a grouped convolution whose groups are not a multiple of 16 channels wide between
plain-layout boundaries where oneDNN runs its AVX-512 kernels, and without them elsewhere
(``symbols.cpu_fast``: the 'auto' form), and SE blocks in the 'fast' form. This binds the trainer's
network with boundaries, without them, and as the textbook graph (``broadcast_mul`` SE, no
boundaries) side by side and times them in alternating rounds (:mod:`benchmarks.precision`), so
that a change of the machine's load hits all alike; it prints the medians, their ratios and the
form 'auto' picks here. Takes the trainer's flags::

    python -m benchmarks.layouts --batch-size 16                  # SE-ResNeXt-50 32x4d, 224x224
    python -m benchmarks.layouts --data-type fashion-mnist --depth 29 --num-group 8 --batch-size 32
"""
import sys

from benchmarks import bench, precision  # precision sets the OpenMP threads from the trainer's flags
from senet import arguments
from symbols import cpu_fast

FORMS = ('fast-plain-layout', 'fast-grouped', 'broadcast')
"""The graphs timed, named as in :data:`benchmarks.bench.GRAPHS`: the training graph with and
without boundaries, and the textbook graph."""


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        bound = {name: precision.bind(argv, se_form=bench.GRAPHS[name][0],
                                      conv_form=bench.GRAPHS[name][1]) for name in FORMS}
    except arguments.UsageError as err:
        sys.exit('error: %s' % err)
    speed = precision.time_alternately(bound)
    for name in FORMS:
        print('%-17s %9.2f img/s' % (name, speed[name]))
    print('without / with boundaries: %.2fx; fast SE / textbook SE (no boundaries): %.2fx' % (
        speed['fast-grouped'] / speed['fast-plain-layout'],
        speed['fast-grouped'] / speed['broadcast']))
    print('the trainers build fast-%s here (oneDNN AVX-512 kernels: %s)' % (
        cpu_fast.grouped_conv_form(), 'yes' if cpu_fast.onednn_uses_avx512() else 'no'))
    return 0


if __name__ == '__main__':
    sys.exit(main())
