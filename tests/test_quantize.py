"""quantize.py: the shipped Fashion-MNIST model to INT8, run by score.py and predict.py unchanged.

The INT8 directory is made once (256 calibration images of the training slice) and scored on the
first 2,000 real test images next to the float32 model. Bad input is one line on stderr, exit 2,
and leaves nothing at ``--output`` or beside it.
"""
import json
import os
import shutil

import cv2
import numpy as np
import pytest

import data
import predict
import quantize
import score
from senet import inference, quantization
from tests.conftest import ROOT, run_script

SHIPPED = os.path.join(ROOT, 'pretrained', 'se-resnext-fashion-mnist-14')
CALIB_IMAGES = 256
TEST_IMAGES = 2000
MAX_CHANGE = 0.01
"""INT8 top-1 within one point of float32 (on all 10,000 test images: -0.12 and +0.04 points)."""


def one_line_error(code, err, *fragments):
    """Exit status 2, no traceback and one error line on stderr naming the problem (MXNet's own
    log lines, such as its oneDNN notice, aside)."""
    lines = [line for line in err.splitlines() if 'error' in line.lower()]
    assert code == 2, err
    assert 'Traceback' not in err and len(lines) == 1, err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.fixture(scope='module')
def test_rec(tmp_path_factory):
    """The first TEST_IMAGES Fashion-MNIST test images as an indexed .rec (as data.py packs them)."""
    images, labels = data.load_fashion_mnist('val')
    path = str(tmp_path_factory.mktemp('test-set') / 'val.rec')
    return data.write_indexed_rec(path, data.to_rgb32(images[:TEST_IMAGES]),
                                  labels[:TEST_IMAGES])


@pytest.fixture(scope='module')
def int8_dir(fmnist_slice, tmp_path_factory):
    output = tmp_path_factory.mktemp('int8') / 'fashion-int8'
    assert quantize.main(['--model', SHIPPED, '--data-calib', fmnist_slice['train'],
                          '--num-calib-images', str(CALIB_IMAGES), '--output', str(output)]) == 0
    return output


def test_int8_directory_is_a_model_directory(int8_dir):
    card = inference.read_card(str(int8_dir))
    with open(os.path.join(SHIPPED, inference.CARD_FILE)) as stream:
        shipped = json.load(stream)
    assert card['name'] == 'fashion-int8' and card['epoch'] == shipped['epoch']
    assert card['precision'] == 'int8' and 'test' not in card
    assert card['input'] == shipped['input'] and card['classes'] == shipped['classes']
    quant = card['quantization']
    assert quant['float32_test'] == shipped['test'] and quant['float32_model'] == SHIPPED
    assert quant['calibration']['images'] == CALIB_IMAGES
    assert quant['calibration']['mode'] == 'naive'
    assert quant['calibration']['agreement'] > 0.95
    assert sorted(os.listdir(int8_dir)) == sorted([
        'README.md', 'card.json', 'fashion-int8-symbol.json',
        'fashion-int8-%04d.params' % shipped['epoch']])
    assert not [name for name in os.listdir(int8_dir.parent) if name.startswith('.')]
    symbol, arg_params, _ = inference.load_checkpoint(inference.card_prefix(str(int8_dir), card),
                                                      card['epoch'])
    assert inference.is_classifier(symbol)
    operators = quantization.quantized_operators(symbol)
    assert '_sg_mkldnn_conv' in operators and '_contrib_quantize_v2' in operators, operators
    assert os.path.getsize(os.path.join(int8_dir, card['params_file'])) == card['params_bytes']


def test_score_int8_within_a_point_of_float32(int8_dir, test_rec):
    """score.py's own code on both directories: the same 2,000 images, top-1 within a point."""
    results = {}
    for name, model in (('float32', SHIPPED), ('int8', str(int8_dir))):
        args = score.build_parser().parse_args(['--model', model, '--data-val', test_rec])
        results[name] = score.score(args)
    assert results['float32']['images'] == results['int8']['images'] == TEST_IMAGES
    assert results['float32']['top1'] > 0.9
    assert abs(results['int8']['top1'] - results['float32']['top1']) <= MAX_CHANGE, results


def test_predict_runs_on_int8(int8_dir, tmp_path, capsys):
    """predict.py classifies image files with the INT8 directory as with the float32 one."""
    images, labels = data.load_fashion_mnist('val')
    paths = []
    for label in (0, 1, 8, 9):  # T-shirt/top, Trouser, Bag, Ankle boot: clear cases
        index = int(np.flatnonzero(labels == label)[0])
        paths.append(str(tmp_path / ('%d.png' % label)))
        cv2.imwrite(paths[-1], images[index])
    printed = {}
    for name, model in (('float32', SHIPPED), ('int8', str(int8_dir))):
        assert predict.main(['--model', model, '--top-k', '1'] + paths) == 0
        printed[name] = [line.split(': ', 1)[1].split(' (')[0]
                         for line in capsys.readouterr().out.splitlines()]
    classes = inference.read_card(str(int8_dir))['classes']
    assert printed['int8'] == printed['float32'] == [classes[label] for label in (0, 1, 8, 9)]


@pytest.fixture(scope='module')
def bad_inputs(tmp_path_factory):
    """Files for the error cases: an indexed .rec without records, a plain file."""
    directory = tmp_path_factory.mktemp('bad')
    images, labels = data.load_fashion_mnist('val')
    data.write_indexed_rec(str(directory / 'empty.rec'), data.to_rgb32(images[:0]), labels[:0])
    (directory / 'file').write_text('not a directory')
    return directory


def bad_cases():
    calib = ['--data-calib', '{train}']
    model = ['--model', SHIPPED]
    return [
        (['--model', '{dir}/nothing'] + calib, ['nothing has no card.json']),
        (model + ['--data-calib', '{dir}/missing.rec'], ['missing.rec does not exist']),
        (model + ['--data-calib', '{dir}/empty.rec'], ['empty.rec is empty']),
        (model + ['--data-calib', '{dir}/file'], ['not a RecordIO file']),
        (model + calib + ['--image-shape', '1,28,28'], ['params do not fit', '1x28x28']),
        (model + calib + ['--image-shape', '3,28'], ['--image-shape']),
        (model + calib + ['--batch-size', '0'], ['--batch-size must be positive']),
        (model + calib + ['--num-calib-images', '8', '--num-calib-batches', '1'],
         ['not allowed with argument']),
        (model + calib + ['--calib-mode', 'kl'], ["invalid choice: 'kl'"]),
        (['--prefix', '{dir}/none', '--epoch', '1', '--image-shape', '3,28,28'] + calib,
         ['no symbol file']),
    ]


@pytest.mark.parametrize('args, fragments', bad_cases())
def test_bad_input_is_one_line_and_writes_nothing(args, fragments, bad_inputs, fmnist_slice,
                                                  tmp_path, capfd):
    output = tmp_path / 'out' / 'int8'
    args = [arg.format(dir=bad_inputs, train=fmnist_slice['train']) for arg in args]
    try:
        code = quantize.main(args + ['--output', str(output)])
    except SystemExit as stop:  # argparse errors
        code = stop.code
    one_line_error(code, capfd.readouterr().err, *fragments)
    assert not os.path.exists(output.parent) or not os.listdir(output.parent)


def test_output_that_cannot_be_replaced(int8_dir, bad_inputs, fmnist_slice, capfd):
    """A file, the float32 model itself, an INT8 model as input: refused before any work."""
    calib = ['--data-calib', fmnist_slice['train']]
    cases = [
        (['--model', SHIPPED, '--output', str(bad_inputs / 'file')], 'exists and is not a directory'),
        (['--model', SHIPPED, '--output', SHIPPED + '/'], 'must not be the float32 model'),
        (['--model', str(int8_dir), '--output', str(bad_inputs / 'again')], 'already quantized'),
        (['--model', SHIPPED, '--output', str(bad_inputs)], 'other files than a model directory'),
    ]
    for args, fragment in cases:
        one_line_error(quantize.main(args + calib), capfd.readouterr().err, fragment)
    assert not os.path.exists(bad_inputs / 'again')


def test_failed_write_keeps_the_previous_directory(int8_dir, fmnist_slice, tmp_path, monkeypatch):
    """An error while writing leaves the earlier INT8 directory as it was and no temporary files;
    a successful run (here from --prefix/--epoch and the preprocessing flags) replaces it whole."""
    output = tmp_path / 'models' / 'int8'
    shutil.copytree(int8_dir, output)
    (output / 'stale.txt').write_text('from an earlier run')
    before = sorted(os.listdir(output))

    def fail(*args):
        raise OSError('disk full')

    args = ['--model', SHIPPED, '--data-calib', fmnist_slice['train'], '--num-calib-images', '64',
            '--output', str(output)]
    monkeypatch.setattr(quantize, 'card_markdown', fail)
    assert quantize.main(args) == 1  # one line on stderr (tests/test_tool_failures.py)
    assert sorted(os.listdir(output)) == before
    assert os.listdir(output.parent) == ['int8']
    monkeypatch.undo()
    prefix = os.path.join(SHIPPED, 'se-resnext-fashion-mnist-14')
    assert quantize.main(['--prefix', prefix, '--epoch', '5', '--image-shape', '3,28,28',
                          '--color', 'gray', '--resize', 'pad'] + args[2:]) == 0
    assert os.listdir(output.parent) == ['int8']
    assert sorted(os.listdir(output)) == ['README.md', 'card.json', 'int8-0005.params',
                                          'int8-symbol.json']
    card = inference.read_card(str(output))
    assert card['classes'] == [str(label) for label in range(10)]
    assert card['input'] == dict(image_shape=[3, 28, 28], color='gray', resize='pad')
    assert card['quantization']['float32_model'] == prefix + '-0005'


def test_process_error_is_one_line(bad_inputs):
    """As a real process: exit status 2 and one line."""
    result = run_script('quantize.py', ['--model', SHIPPED, '--data-calib',
                                        str(bad_inputs / 'empty.rec'), '--output',
                                        str(bad_inputs / 'out')])
    one_line_error(result.returncode, result.stderr, 'is empty')
    assert not result.stdout and not os.path.exists(bad_inputs / 'out')


@pytest.mark.parametrize('script,args', [
    ('export_onnx.py', ['--output', 'int8.onnx']),
    ('fine-tune.py', ['--data-train', 'train.rec', '--num-classes', '2', '--image-shape', '3,28,28']),
])
def test_tools_that_need_float32_refuse_int8(script, args, int8_dir, fmnist_slice, tmp_path):
    """export_onnx.py and fine-tune.py name the INT8 directory and the float32 model to give instead
    (MXNet cannot export or train the quantized operators)."""
    args = [str(tmp_path / arg) if arg.endswith(('.onnx', '.rec')) else arg for arg in args]
    args = [fmnist_slice['train'] if arg.endswith('train.rec') else arg for arg in args]
    result = run_script(script, ['--model', str(int8_dir)] + args, cwd=str(tmp_path))
    one_line_error(result.returncode, result.stderr, 'INT8', SHIPPED)
    assert not [name for _, _, files in os.walk(tmp_path) for name in files]  # no output, no log
