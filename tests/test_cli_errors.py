"""Bad input to the trainer: one line naming the problem and the fix, a non-zero exit, no traceback."""
import pytest

from tests.conftest import run_script

TRAINER = 'train_se_resnext_w_d.py'


def run_trainer(args, tmp_path):
    result = run_script(TRAINER, list(args) + ['--model-prefix', str(tmp_path / 'm' / 'net'),
                                               '--log-file', str(tmp_path / 'l' / 'net.log')],
                        timeout=120)
    errors = [line for line in result.stderr.splitlines() if 'error' in line]
    return result, errors


def assert_one_line_error(result, errors, *fragments):
    assert result.returncode != 0
    assert 'Traceback' not in result.stderr + result.stdout, result.stderr
    assert len(errors) == 1, result.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]


SMALL = ['--data-type', 'fashion-mnist', '--depth', '11', '--num-group', '2', '--batch-size', '16']


@pytest.mark.parametrize('args,fragments', [
    (['--data-type', 'imagenet', '--data-dir', '/nonexistent/imagenet'],
     ['/nonexistent/imagenet does not exist', 'im2rec_prep.sh']),
    (['--data-type', 'custom', '--data-train', '/nonexistent/train.rec', '--num-classes', '3',
      '--image-shape', '3,32,32', '--depth', '11', '--num-group', '2'],
     ['/nonexistent/train.rec does not exist', 'im2rec_prep.sh']),
    (['--data-type', 'mnist-9000'], ["invalid choice: 'mnist-9000'", 'fashion-mnist']),
    (['--data-type', 'fashion-mnist', '--depth', '77'],
     ['depth 77 is not supported', '29']),
    (['--depth', '77', '--benchmark'], ['depth 77 is not supported', '101']),
    (['--num-group', '48', '--benchmark'], ['--num-group 48 does not divide', '128']),
    (SMALL + ['--model-load-epoch', '3'], ['--model-load-epoch 3 needs --retrain']),
    (['--widen-factor', '2', '--benchmark'], ['widen factor applies to small-image networks']),
    (SMALL + ['--gpus', 'zero,one'], ["--gpus 'zero,one'", 'leave it empty']),
    (SMALL + ['--gpus', '0'], ['GPU 0', 'leave --gpus empty']),
    (SMALL + ['--kv-store', 'nccl-9000'], ["invalid choice: 'nccl-9000'"]),
    (SMALL + ['--optimizer', 'sgdd', '--benchmark'], ["unknown --optimizer 'sgdd'", 'nag']),
    (['--data-type', 'custom', '--data-train', 'x.rec'], ['--num-classes is required']),
])
def test_bad_input_gives_one_line(args, fragments, tmp_path):
    result, errors = run_trainer(args, tmp_path)
    assert_one_line_error(result, errors, *fragments)
    assert not (tmp_path / 'l' / 'net.log').exists()  # no log of a run that never started


def test_missing_resume_epoch_lists_saved_ones(fmnist_slice, tmp_path):
    prefix = tmp_path / 'm' / 'net'
    prefix.parent.mkdir()
    for epoch in (1, 2):
        (tmp_path / 'm' / ('net-%04d.params' % epoch)).write_bytes(b'')
    args = ['--data-type', 'custom', '--data-train', fmnist_slice['train'], '--num-classes', '10',
            '--image-shape', '3,32,32', '--depth', '11', '--num-group', '2', '--num-epochs', '9',
            '--model-load-epoch', '5', '--retrain']
    result, errors = run_trainer(args, tmp_path)
    assert_one_line_error(result, errors, 'net-0005.params', 'saved epochs under this prefix: 1, 2')


def test_corrupt_rec_is_named(tmp_path):
    bogus = tmp_path / 'bogus.rec'
    bogus.write_bytes(b'\x00' * 64)
    args = ['--data-type', 'custom', '--data-train', str(bogus), '--num-classes', '10',
            '--num-examples', '100', '--image-shape', '3,32,32', '--depth', '11']
    result, errors = run_trainer(args, tmp_path)
    assert_one_line_error(result, errors, str(bogus), 'not a RecordIO file')


def test_a_log_with_training_in_it_survives_a_usage_error(tmp_path):
    """fit.discard_log deletes the log of a run rejected before training, never one with epochs
    in it (a bad label can surface in the middle of a run)."""
    from senet import fit
    rejected, trained = tmp_path / 'rejected.log', tmp_path / 'trained.log'
    rejected.write_text('2026-12-01 1 CPU context with OMP_NUM_THREADS=2\n')
    trained.write_text('2026-12-01 Epoch[0] Train-accuracy=0.5\n')
    fit.discard_log(str(rejected))
    fit.discard_log(str(trained))
    fit.discard_log(None)
    assert not rejected.exists() and trained.exists()
