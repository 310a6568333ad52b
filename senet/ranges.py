"""The range of every numeric flag of the trainers, as one table.

:data:`RANGES` drives both :func:`check` (called by :func:`senet.arguments.resolve_args` before
anything is built) and the parametrized test ``tests/test_ranges.py``, which tries a value below and
above each range. A value outside its range, or not a number (``nan``), is a usage error that names
the range: ``--lr must be in [0, inf), got -0.1``.
"""
import dataclasses
import math

import symbols

INF = math.inf
SEED_MAX = 2 ** 32 - 1
"""numpy's and MXNet's seeds are 32-bit unsigned integers."""


@dataclasses.dataclass(frozen=True)
class Range:
    """The values ``--flag`` accepts: ``low`` to ``high``, each end included unless open.

    A bound may be a callable of the parsed flags (``--warmup-epochs`` up to ``--num-epochs``),
    whose docstring names it in docs/reliability.md's table;
    ``words`` replaces the interval in the message where a plain phrase says it better, and
    ``message`` the whole message (``{flag}``, ``{value}`` and ``{range}`` are filled in).
    """

    dest: str
    low: object
    high: object = INF
    low_open: bool = False
    high_open: bool = False
    words: str = None
    message: str = None
    value: object = None
    """A callable of the flags giving the value checked, when it is not the flag itself."""

    @property
    def flag(self):
        return '--' + self.dest.replace('_', '-')

    def bounds(self, args):
        low = self.low(args) if callable(self.low) else self.low
        high = self.high(args) if callable(self.high) else self.high
        return low, high

    def interval(self, args):
        low, high = self.bounds(args)
        return '%s%s, %s%s' % ('(' if self.low_open else '[', _number(low), _number(high),
                               ')' if self.high_open or high == INF else ']')

    def contains(self, value, args):
        low, high = self.bounds(args)
        if math.isnan(value):
            return False
        if value < low or (self.low_open and value == low):
            return False
        return value < high or (value == high and not self.high_open and high != INF)

    def error(self, value, args):
        """The usage error's text for ``value``."""
        template = self.message or '{flag} must be {range}, got {value}'
        return template.format(flag=self.flag, value=_number(value), args=args,
                               range=(self.words or 'in {interval}').format(
                                   interval=self.interval(args), args=args))


def _number(value):
    return '%g' % value if isinstance(value, float) else str(value)


def _min_side(args):
    """the network's minimum side (75 for the Inceptions, else 1)"""
    return symbols.min_image_size(args.network)


def _num_epochs(args):
    """--num-epochs"""
    return args.num_epochs


RANGES = (
    Range('lr', 0),  # 0 is a run that only updates the BatchNorm statistics
    Range('mom', 0, 1, high_open=True),
    Range('wd', 0),
    Range('lr_factor', 0, 1, low_open=True),
    Range('num_epochs', 1, words='positive'),
    Range('warmup_epochs', 0, _num_epochs,
          words='in {interval} (at most --num-epochs)'),
    Range('batch_size', 1, words='positive'),
    Range('cpus', 1, words='positive',
          message='{flag} {value}: give a {range} number of CPU contexts, and only without --gpus'),
    Range('image_shape', _min_side, value=lambda args: min(args.image_shape[1:]),
          message='--image-shape {args.image_shape[0]},{args.image_shape[1]},'
                  '{args.image_shape[2]}: the height and width must be in {range}',
          words='{interval} for --network {args.network}'),
    Range('drop_out', 0, 1, high_open=True),
    Range('bn_mom', 0, 1),
    Range('num_group', 1, words='positive'),
    Range('widen_factor', 1, words='positive'),
    Range('num_classes', 1, words='positive'),
    Range('num_examples', 1, words='positive'),
    Range('frequent', 1, words='positive'),
    Range('save_period', 1, words='positive'),
    Range('keep_last', 0, words='0 (keep every epoch) or positive'),
    Range('seed', 0, SEED_MAX),
    Range('label_smoothing', 0, 1, high_open=True),
    Range('mixup', 0, words='0 (off) or a positive Beta parameter ALPHA'),
    Range('cutmix', 0, words='0 (off) or a positive Beta parameter ALPHA'),
    Range('mixup_off_epoch', 0, words='0 (never) or a positive epoch'),
    Range('random_erasing', 0, 1),
    Range('ema', 0, 1, high_open=True),
    Range('loss_scale', 0, low_open=True, words='positive'),
    Range('data_nthreads', 1, words='in [1, processors]'),
)
"""Every numeric flag's range, in the order they are checked (``--num-epochs`` before the warm-up
that it bounds)."""


def check(args):
    """Return the message of the first flag of ``args`` outside its :data:`RANGES`, or None.

    A flag the parser does not have (a tool with fewer flags) or left unset (None: a default that
    depends on other flags) is not checked.
    """
    for row in RANGES:
        if getattr(args, row.dest, None) is None:
            continue
        value = row.value(args) if row.value is not None else getattr(args, row.dest)
        if not row.contains(value, args):
            return row.error(value, args)
    return None
