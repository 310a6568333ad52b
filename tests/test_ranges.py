"""Every numeric flag has a range: the table senet/ranges.py drives the check and these tests."""
import math

import pytest

from senet import arguments, ranges
from tests.conftest import run_script

BASE = ['--data-type', 'fashion-mnist', '--network', 'se-resnext']
INCEPTION = ['--network', 'se-inception-v4']


def resolve(argv):
    parser = arguments.build_parser(network='se-resnext')
    return arguments.resolve_args(parser.parse_args(BASE + argv))


def flag_type(dest):
    parser = arguments.build_parser()
    return next(action.type for action in parser._actions if action.dest == dest)


def command_line(row, value):
    """The flags that make ``row``'s checked value ``value``."""
    if row.dest == 'image_shape':
        return INCEPTION + ['--image-shape', '3,%d,%d' % (value, value)]
    return [row.flag, repr(value) if isinstance(value, float) else str(value)]


def edges(row):
    """(values inside, values outside) ``row``'s range: each closed bound is inside, one step
    beyond it outside; an open bound is outside; nan is outside for a float flag."""
    args = resolve(INCEPTION if row.dest == 'image_shape' else [])
    low, high = row.bounds(args)
    integer = row.dest == 'image_shape' or flag_type(row.dest) is int
    step = 1 if integer else 0.5
    inside, outside = [], [low if row.low_open else low - step]
    if not row.low_open:
        inside.append(low)
    if high == math.inf:
        inside.append(low + step)
    elif row.high_open:
        outside.append(high)
        inside.append((low + high) / 2)
    else:
        inside.append(high)
        outside.append(high + step)
    if not integer:
        outside.append(math.nan)
    return inside, outside


def needs(row):
    """Flags some values need beside them (--mixup-off-epoch needs --mixup)."""
    return ['--mixup', '0.2'] if row.dest == 'mixup_off_epoch' else []


@pytest.mark.parametrize('row', ranges.RANGES, ids=lambda row: row.flag)
def test_every_numeric_flag_has_a_range(row):
    inside, outside = edges(row)
    for value in outside:
        with pytest.raises(arguments.UsageError) as raised:
            resolve(command_line(row, value) + needs(row))
        message = str(raised.value)
        assert message.startswith(row.flag), message
        words = row.words or 'in {interval}'
        assert words.split('{')[0] in message, message
        if '{interval}' in words:
            assert row.interval(resolve(INCEPTION if row.dest == 'image_shape' else [])) \
                in message, message
    for value in inside:
        resolve(command_line(row, value) + needs(row))


def test_the_table_names_every_numeric_flag():
    """A new int or float flag of the trainers must get a row (or be listed here with why not)."""
    unranged = {
        'depth': 'a choice among the builder\'s depths, checked by the builder',
        'workspace': "MXNet's convolution scratch space in MB; any size works",
        'version': 'argparse choices',
        'aug_level': 'argparse choices',
        'model_load_epoch': 'an epoch number checked against the saved epochs',
    }
    numeric = {action.dest for action in arguments.build_parser()._actions
               if action.type in (int, float)}
    assert numeric - {row.dest for row in ranges.RANGES} - set(unranged) == set()


@pytest.mark.parametrize('argv,line', [
    (['--lr', '-0.1'], '--lr must be in [0, inf), got -0.1'),
    (['--wd', '-1'], '--wd must be in [0, inf), got -1'),
    (['--warmup-epochs', '-1'], '--warmup-epochs must be in [0, 1] (at most --num-epochs), got -1'),
])
def test_the_issue_examples_stop_the_trainer_with_one_line(argv, line, tmp_path):
    result = run_script('train_se_resnext_w_d.py', BASE + [
        '--depth', '11', '--num-group', '2', '--num-epochs', '1', '--model-prefix',
        str(tmp_path / 'm' / 'net'), '--log-file', str(tmp_path / 'net.log')] + argv, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ['train_se_resnext_w_d.py: error: ' + line]
    assert not (tmp_path / 'm').exists() and not (tmp_path / 'net.log').exists()
