"""The tools keep the trainer's contract: a bad input or a full disk is one line and a non-zero
status, and nothing half-written is left at the output.

Many cases are tested beside each tool (tests/test_inference.py, test_quantize.py,
test_convert_weights.py, test_fine_tune.py); these are the ones that slipped through before:
labels beyond the model's classes (a traceback from the metric), ``launch.py -n 0`` (argparse's
multi-line usage), and a full disk under the output (MXNet's "FileStream.Write incomplete").
:data:`CATALOGUE` is the tools' part of docs/reliability.md's failure table.
"""
import os

import pytest

import data
from tests.conftest import ROOT, run_script
from tests.test_os_failures import Failure, line_pattern, tmpfs

MODEL = os.path.join(ROOT, 'pretrained', 'se-resnext-fashion-mnist-14')
PREFIX = os.path.join(MODEL, 'se-resnext-fashion-mnist-14')

CATALOGUE = [
    Failure('`score.py` on a `.rec` whose labels exceed the model\'s classes',
            '<rec> holds label 14 but the model has 10 classes: score a model of this data set',
            'nothing is written', 'test_tool_failure[score-labels]'),
    Failure('`make_model_card.py` on such a `.rec`',
            '<rec> holds label 14 but the model has 10 classes: score a model of this data set',
            'no model directory', 'test_tool_failure[card-labels]'),
    Failure('`score.py` on an empty `.rec`',
            '--data-val <rec> is not a RecordIO file (bad magic number); <hint>',
            'nothing is written', 'test_tool_failure[score-empty-rec]'),
    Failure('`launch.py -n 0`', '-n and -s must be at least 1 (see --help)',
            'no process is started', 'test_tool_failure[launch-no-workers]'),
    Failure('`launch.py --timeout -5`', '--timeout must be in [0, inf), got -5 (see --help)',
            'no process is started', 'test_tool_failure[launch-negative-timeout]'),
    Failure('`make_model_card.py` onto a full disk', 'cannot write <path> (No space left on device)',
            'no model directory, no temporary one', 'test_tool_failure[card-disk-full]'),
    Failure('`export_onnx.py` onto a full disk', 'cannot write <path> (No space left on device)',
            'no .onnx file, no temporary one', 'test_tool_failure[onnx-disk-full]'),
    Failure('`quantize.py` onto a full disk', 'cannot write <path> (No space left on device)',
            'no model directory, no temporary one', 'test_tool_failure[quantize-disk-full]'),
]
ROWS = {row.test: row for row in CATALOGUE}


@pytest.fixture(scope='module')
def recs(tmp_path_factory):
    """64 test images as an indexed .rec, the same with labels 5-14, and an empty file."""
    directory = tmp_path_factory.mktemp('tool-recs')
    images, labels = data.load_fashion_mnist('val')
    images = data.to_rgb32(images[:64])
    empty = directory / 'empty.rec'
    empty.write_bytes(b'')
    return {'val': data.write_indexed_rec(str(directory / 'val.rec'), images, labels[:64]),
            'shifted': data.write_indexed_rec(str(directory / 'shifted.rec'), images,
                                              labels[:64] + 5),
            'empty': str(empty)}


def card_args(rec, output):
    return ['--prefix', PREFIX, '--epoch', '5', '--log', os.path.join(MODEL, 'train.log'),
            '--command', 'make train', '--data-val', rec, '--output', str(output)]


# (case, tool, arguments from the recs and an output directory, exit status, needs a full disk)
CASES = [
    ('score-labels', 'score.py', lambda recs, out: ['--model', MODEL, '--data-val', recs['shifted']],
     2, False),
    ('card-labels', 'make_model_card.py', lambda recs, out: card_args(recs['shifted'],
                                                                      out / 'card'), 2, False),
    ('score-empty-rec', 'score.py', lambda recs, out: ['--model', MODEL, '--data-val',
                                                       recs['empty']], 2, False),
    ('launch-no-workers', 'launch.py', lambda recs, out: ['-n', '0', 'true'], 2, False),
    ('launch-negative-timeout', 'launch.py', lambda recs, out: ['-n', '1', '--timeout', '-5',
                                                                'true'], 2, False),
    ('card-disk-full', 'make_model_card.py', lambda recs, out: card_args(recs['val'],
                                                                         out / 'card'), 1, True),
    ('onnx-disk-full', 'export_onnx.py', lambda recs, out: ['--model', MODEL, '--output',
                                                            str(out / 'net.onnx')], 2, True),
    ('quantize-disk-full', 'quantize.py', lambda recs, out: [
        '--model', MODEL, '--data-calib', recs['val'], '--num-calib-images', '64',
        '--output', str(out / 'int8')], 1, True),
]


@pytest.mark.parametrize('case,tool,make_args,status,full_disk', CASES,
                         ids=[case[0] for case in CASES])
def test_tool_failure(case, tool, make_args, status, full_disk, recs, tmp_path):
    if tool == 'export_onnx.py':
        pytest.importorskip('onnx')
    out = tmp_path / 'out'
    if full_disk:  # 256 KB: less than the 0.7 MB params file of the model
        context = tmpfs(out, '256k')
    else:
        out.mkdir()
        context = open(os.devnull)
    with context:
        result = run_script(tool, make_args(recs, out), timeout=300)
        assert result.returncode == status, result.stderr
        assert 'Traceback' not in result.stderr, result.stderr
        errors = [line for line in result.stderr.splitlines() if 'error' in line.lower()]
        assert len(errors) == 1 and result.stderr.rstrip().endswith(errors[0]), result.stderr
        head = tool + ': error: '
        assert errors[0].startswith(head), errors[0]
        row = ROWS['test_tool_failure[%s]' % case]
        assert line_pattern(row.line).fullmatch(errors[0][len(head):]), errors[0]
        assert os.listdir(out) == []  # nothing written, nothing half-written, no temporary
