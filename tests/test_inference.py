"""make_model_card.py, predict.py, score.py, export_onnx.py and fine-tune.py, run as the README shows.

The README's commands are executed as written (plus a few flags appended to keep them short) in a
directory laid out like the repository after ``make train``: ``model/``, ``log/`` and ``data/``
hold a small SE-ResNeXt trained on a Fashion-MNIST slice, its log and real test images.
"""
import argparse
import hashlib
import os
import re
import runpy
import shlex
import shutil
import subprocess

import cv2
import mxnet as mx
import numpy as np
import onnxruntime
import pytest

import data
from senet import inference
from tests.conftest import ROOT, SLICE_TRAIN, run_script

README_PREFIX = 'model/se-resnext-fashion-mnist-14'
README_EPOCH = 5
MODEL_DIR = 'pretrained/se-resnext-fashion-mnist-14'
SCRIPTS = ('make_model_card.py', 'predict.py', 'score.py', 'export_onnx.py', 'fine-tune.py')
FINE_TUNE_CLASSES = (1, 8)
"""Trouser and Bag: the two-class subset that fine-tune.py learns from (labels 0 and 1)."""


def readme_commands():
    """{script: [argument list, ...]} of the README's ``python <script> ...`` lines."""
    with open(os.path.join(ROOT, 'README.md')) as stream:
        text = stream.read().replace('\\\n', ' ')
    commands = {}
    for block in re.findall(r'```bash\n(.*?)```', text, re.S):
        for line in block.splitlines():
            words = shlex.split(line, comments=True)
            if len(words) > 1 and words[0] == 'python' and words[1] in SCRIPTS:
                commands.setdefault(words[1], []).append(words[2:])
    return commands


def one_line_error(result, *fragments):
    """Assert a non-zero exit with exactly one error line containing ``fragments``."""
    assert result.returncode != 0, result.stdout
    assert 'Traceback' not in result.stderr + result.stdout, result.stderr
    errors = [line for line in result.stderr.splitlines() if 'error' in line]
    assert len(errors) == 1, result.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]


def write_two_class_rec(path, images, labels):
    keep = np.flatnonzero(np.isin(labels, FINE_TUNE_CLASSES))
    binary = (labels[keep] == FINE_TUNE_CLASSES[1]).astype(np.uint8)
    return data.write_indexed_rec(path, data.to_rgb32(images[keep]), binary)


@pytest.fixture(scope='module')
def workdir(trained_slice_model, fmnist_slice, tmp_path_factory):
    """A working directory shaped like the README's examples, around the slice-trained model."""
    root = tmp_path_factory.mktemp('readme')
    for path in ('model', 'log', 'data/fashion-mnist', 'data/trousers-bags'):
        (root / path).mkdir(parents=True)
    trained = trained_slice_model / 'model' / 'net'
    shutil.copy(str(trained) + '-symbol.json', root / (README_PREFIX + '-symbol.json'))
    shutil.copy(str(trained) + '-0003.params',
                root / ('%s-%04d.params' % (README_PREFIX, README_EPOCH)))
    shutil.copy(trained_slice_model / 'log' / 'net.log', root / (README_PREFIX.replace(
        'model/', 'log/') + '.log'))
    for suffix in ('.rec', '.idx'):
        shutil.copy(os.path.splitext(fmnist_slice['val'])[0] + suffix,
                    root / ('data/fashion-mnist/val' + suffix))
    images, labels = data.load_fashion_mnist('train')
    unseen = slice(SLICE_TRAIN, SLICE_TRAIN + 1500)
    write_two_class_rec(str(root / 'data/trousers-bags/trousers-bags_train.rec'),
                        images[unseen][:700], labels[unseen][:700])
    write_two_class_rec(str(root / 'data/trousers-bags/trousers-bags_val.rec'),
                        images[unseen][700:], labels[unseen][700:])
    test_images, test_labels = data.load_fashion_mnist('val')
    shirt = test_images[np.flatnonzero(test_labels == 6)[0]]
    boot = test_images[np.flatnonzero(test_labels == 9)[0]]
    cv2.imwrite(str(root / 'shirt.png'), shirt)  # 28x28 gray, as in the data set
    cv2.imwrite(str(root / 'boot.jpg'), cv2.resize(cv2.cvtColor(boot, cv2.COLOR_GRAY2BGR),
                                                    (120, 90)))  # colour, other size and aspect
    (root / 'notes.png').write_text('not an image')
    return root


def run_readme(script, workdir, extra=(), index=0):
    """Run the README's ``index``-th command of ``script`` in ``workdir``, ``extra`` appended."""
    commands = readme_commands().get(script)
    assert commands, 'the README shows no `python %s` command' % script
    return run_script(script, commands[index] + list(extra), timeout=300, cwd=str(workdir))


@pytest.fixture(scope='module')
def model_dir(workdir):
    """The README's make_model_card.py command, measured on the slice's 256 test images."""
    result = run_readme('make_model_card.py', workdir,
                        ['--data-val', 'data/fashion-mnist/val.rec', '--data-type', 'fashion-mnist'])
    assert result.returncode == 0, result.stderr
    return workdir / MODEL_DIR


def test_model_card(model_dir, trained_slice_model):
    card = inference.read_card(str(model_dir))
    assert card['epoch'] == README_EPOCH and card['network'] == 'se-resnext'
    assert card['input'] == dict(image_shape=[3, 32, 32], color='gray', resize='pad',
                                 content_size=[28, 28], fill=0)
    assert card['classes'][6] == 'Shirt' and len(card['classes']) == 10
    params = model_dir / card['params_file']
    assert card['params_sha256'] == hashlib.sha256(params.read_bytes()).hexdigest()
    assert card['training']['epochs'] == 3
    assert card['test']['images'] == 256
    log_accuracy = re.findall(r'Epoch\[2\] Validation-accuracy=([0-9.]+)',
                              (trained_slice_model / 'log' / 'net.log').read_text())
    assert abs(card['test']['top1'] - float(log_accuracy[-1])) < 1e-6
    assert 0 < card['training']['wall_time_seconds'] < 3600
    assert (model_dir / 'train.log').is_file() and 'sha256' in (model_dir / 'README.md').read_text()
    assert (model_dir / 'curve.png').stat().st_size > 1000


def test_predict_readme_command(model_dir, workdir):
    result = run_readme('predict.py', workdir)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert [line.split(':')[0] for line in lines] == ['shirt.png', 'boot.jpg']
    for line in lines:
        probs = [float(p) for p in re.findall(r'\(([0-9.]+)\)', line)]
        assert len(probs) == 5 and probs == sorted(probs, reverse=True) and sum(probs) <= 1.0001


def test_predict_matches_training_input(model_dir, workdir, fmnist_slice):
    """A 28x28 test image through the card's preprocessing is exactly the .rec's 32x32 record."""
    images, _ = data.load_fashion_mnist('val')
    record = mx.recordio.MXIndexedRecordIO(os.path.splitext(fmnist_slice['val'])[0] + '.idx',
                                           fmnist_slice['val'], 'r')
    _, packed = mx.recordio.unpack_img(record.read_idx(0), cv2.IMREAD_COLOR)
    record.close()
    card = inference.read_card(str(model_dir))
    spec = card['input']
    gray = cv2.cvtColor(images[0], cv2.COLOR_GRAY2BGR)
    prepared = inference.preprocess(gray, spec['image_shape'], color=spec['color'],
                                    resize=spec['resize'], content_size=spec['content_size'],
                                    fill=spec['fill'])
    np.testing.assert_array_equal(prepared, packed[:, :, ::-1].transpose(2, 0, 1))


def test_predict_with_prefix_and_flags(model_dir, workdir):
    result = run_readme('predict.py', workdir, index=1)
    assert result.returncode == 0, result.stderr
    assert len(re.findall(r'\(([0-9.]+)\)', result.stdout)) == 3  # --top-k 3


def test_score_readme_command(model_dir, workdir):
    result = run_readme('score.py', workdir)
    assert result.returncode == 0, result.stderr
    top1, top5, images = re.search(r'top-1 ([0-9.]+)\s+top-5 ([0-9.]+).*?(\d+) images',
                                   result.stdout).groups()
    card = inference.read_card(str(model_dir))
    assert int(images) == 256 and abs(float(top1) - card['test']['top1']) <= 5e-5  # 4 decimals
    assert float(top5) >= float(top1) > 0.3  # chance is 0.1
    assert re.search(r'[0-9.]+ img/s', result.stdout)


def test_export_readme_command_matches_mxnet(model_dir, workdir):
    result = run_readme('export_onnx.py', workdir)
    assert result.returncode == 0, result.stderr
    path = workdir / MODEL_DIR / ('se-resnext-fashion-mnist-14-%04d.onnx' % README_EPOCH)
    images, _ = data.load_fashion_mnist('val')
    batch = data.to_rgb32(images[:16]).transpose(0, 3, 1, 2).astype(np.float32)
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    session = onnxruntime.InferenceSession(str(path), options, providers=['CPUExecutionProvider'])
    got = session.run(['softmax'], {'data': batch})[0]
    symbol, arg_params, aux_params = mx.model.load_checkpoint(
        str(workdir / README_PREFIX), README_EPOCH)
    mod = inference.inference_module(symbol, arg_params, aux_params, batch.shape)
    mod.forward(mx.io.DataBatch([mx.nd.array(batch)]), is_train=False)
    expected = mod.get_outputs()[0].asnumpy()
    assert np.abs(got - expected).max() <= 1e-4
    assert (got.argmax(1) == expected.argmax(1)).all()


def test_fine_tune_readme_command_learns_two_classes(workdir):
    result = run_readme('fine-tune.py', workdir, ['--num-epochs', '2', '--batch-size', '32'])
    assert result.returncode == 0, result.stderr
    accuracy = float(re.findall(r'Epoch\[1\] Validation-accuracy=([0-9.]+)', result.stdout)[-1])
    assert accuracy > 0.8  # chance is about 0.5 after 2 short epochs from the pretrained features


@pytest.mark.parametrize('script,args,fragments', [
    ('predict.py', ['--model', MODEL_DIR, 'missing.png'], ['missing.png does not exist']),
    ('predict.py', ['--model', MODEL_DIR, 'notes.png'], ['notes.png is not an image']),
    ('predict.py', ['--model', MODEL_DIR, '--epoch', '7', 'shirt.png'],
     ['-0007.params', 'saved epochs under this prefix: %d' % README_EPOCH]),
    ('predict.py', ['--prefix', README_PREFIX, 'shirt.png'], ['--prefix needs --epoch']),
    ('predict.py', ['--model', 'pretrained/nothing-here', 'shirt.png'], ['has no card.json']),
    ('predict.py', ['--prefix', 'model/nothing', '--epoch', '1', '--image-shape', '3,32,32',
                    'shirt.png'], ['no symbol file model/nothing-symbol.json']),
    ('score.py', ['--model', MODEL_DIR, '--data-val', 'data/missing.rec'],
     ['data/missing.rec does not exist', 'im2rec_prep.sh']),
    ('score.py', ['--model', MODEL_DIR, '--data-val', 'notes.png'], ['not a RecordIO file']),
    ('score.py', ['--prefix', README_PREFIX, '--epoch', '7', '--data-val',
                  'data/fashion-mnist/val.rec', '--image-shape', '3,32,32'],
     ['-0007.params', 'saved epochs under this prefix: %d' % README_EPOCH]),
    ('score.py', ['--prefix', README_PREFIX, '--epoch', str(README_EPOCH), '--data-val',
                  'data/fashion-mnist/val.rec'], ['--image-shape C,H,W is required']),
    ('export_onnx.py', ['--model', MODEL_DIR, '--epoch', '99'], ['-0099.params']),
    ('fine-tune.py', ['--pretrained-prefix', README_PREFIX, '--pretrained-epoch', '9',
                      '--data-train', 'data/fashion-mnist/val.rec', '--num-classes', '2',
                      '--image-shape', '3,32,32'], ['-0009.params', 'saved epochs']),
    ('fine-tune.py', ['--pretrained-prefix', README_PREFIX, '--pretrained-epoch', str(README_EPOCH),
                      '--data-train', 'data/missing.rec', '--num-classes', '2',
                      '--image-shape', '3,32,32'], ['data/missing.rec does not exist']),
    ('make_model_card.py', ['--prefix', README_PREFIX, '--epoch', str(README_EPOCH), '--log',
                            'log/none.log',
                            '--command', 'x', '--output', 'pretrained/x'],
     ['log file log/none.log does not exist']),
])
def test_bad_input_gives_one_line(script, args, fragments, model_dir, workdir, monkeypatch, capfd):
    """In-process (each script's ``main``), so no interpreter start-up per case."""
    monkeypatch.chdir(workdir)
    main = runpy.run_path(os.path.join(ROOT, script), run_name=script[:-3].replace('-', '_'))['main']
    try:
        code = main(args)
    except SystemExit as stop:  # argparse errors
        code = stop.code
    out, err = capfd.readouterr()
    one_line_error(subprocess.CompletedProcess(script, code, out, err), *fragments)


def test_bad_input_in_a_process(model_dir, workdir):
    """The same as a real process: exit status 2, one line, no traceback."""
    result = run_script('predict.py', ['--model', MODEL_DIR, 'notes.png'], cwd=str(workdir))
    assert result.returncode == 2
    one_line_error(result, 'notes.png is not an image')


def test_fine_tune_replaces_only_fc1(trained_slice_model):
    """The new network differs from the pretrained one only in fc1, whose weights are left out."""
    fine_tune = runpy.run_path(os.path.join(ROOT, 'fine-tune.py'), run_name='fine_tune')
    prefix = str(trained_slice_model / 'model' / 'net')
    args = argparse.Namespace(model=None, pretrained_prefix=prefix, pretrained_epoch=3, num_classes=2,
                              image_shape=(3, 32, 32))
    prepared = fine_tune['prepare'](args)
    pretrained, arg_params, aux_params = mx.model.load_checkpoint(prefix, 3)
    network = prepared['symbol']
    assert network.list_arguments() == pretrained.list_arguments()
    arg_shapes, _, _ = network.infer_shape(data=(1, 3, 32, 32))
    shapes = dict(zip(network.list_arguments(), arg_shapes))
    assert shapes['fc1_weight'] == (2, arg_params['fc1_weight'].shape[1])
    assert sorted(prepared['arg_params']) == sorted(set(arg_params) - {'fc1_weight', 'fc1_bias'})
    for name, value in prepared['arg_params'].items():
        assert (value.asnumpy() == arg_params[name].asnumpy()).all(), name
    assert sorted(prepared['aux_params']) == sorted(aux_params)


def test_symbol_file_that_is_not_json(trained_slice_model, tmp_path):
    prefix = tmp_path / 'broken'
    shutil.copy(trained_slice_model / 'model' / 'net-0003.params', str(prefix) + '-0003.params')
    (tmp_path / 'broken-symbol.json').write_text('{not json')
    image = tmp_path / 'x.png'
    image.write_bytes((trained_slice_model / 'log' / 'net.png').read_bytes())
    result = run_script('predict.py', ['--prefix', str(prefix), '--epoch', '3', '--image-shape',
                                       '3,32,32', str(image)])
    assert result.returncode == 2
    one_line_error(result, 'broken-symbol.json is not a symbol JSON file')
