"""Training speed of the two forms of narrow grouped convolutions on this machine, in one process.

The trainers build a grouped convolution whose groups are not a multiple of 16 channels wide between
plain-layout boundaries where oneDNN runs its AVX-512 kernels, and without them elsewhere
(``symbols.cpu_fast``: the 'auto' form). This binds the trainer's network in both forms side by side
and times them in alternating rounds (:mod:`benchmarks.precision`), so that a change of the
machine's load hits both alike, and prints the medians, their ratio and the form 'auto' picks here.
Takes the trainer's flags::

    python -m benchmarks.layouts --batch-size 16                  # SE-ResNeXt-50 32x4d, 224x224
    python -m benchmarks.layouts --data-type fashion-mnist --depth 29 --num-group 8 --batch-size 128
"""
import sys

from benchmarks import precision  # sets the OpenMP threads from the trainer's flags first
from senet import arguments
from symbols import cpu_fast

FORMS = ('plain-layout', 'grouped')


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        bound = {form: precision.bind(argv, conv_form=form) for form in FORMS}
    except arguments.UsageError as err:
        sys.exit('error: %s' % err)
    speed = precision.time_alternately(bound)
    for form in FORMS:
        print('%-12s %9.2f img/s' % (form, speed[form]))
    print('grouped / plain-layout: %.2fx; auto builds %s here (oneDNN AVX-512 kernels: %s)' % (
        speed['grouped'] / speed['plain-layout'], cpu_fast.grouped_conv_form(),
        'yes' if cpu_fast.onednn_uses_avx512() else 'no'))
    return 0


if __name__ == '__main__':
    sys.exit(main())
