"""parse_log.py and plot_curve.py on a real training log."""
import struct
import zlib

from senet import training_log
from tests.conftest import run_script


def png_size_and_pixels(path):
    """(width, height) from the IHDR chunk, and the decompressed scanline bytes of a PNG."""
    raw = path.read_bytes()
    assert raw[:8] == b'\x89PNG\r\n\x1a\n'
    width, height = struct.unpack('>II', raw[16:24])
    chunks, offset = [], 8
    while offset < len(raw):
        length = struct.unpack('>I', raw[offset:offset + 4])[0]
        if raw[offset + 4:offset + 8] == b'IDAT':
            chunks.append(raw[offset + 8:offset + 8 + length])
        offset += 12 + length
    return (width, height), zlib.decompress(b''.join(chunks))


def test_parse_log_table(trained_slice_model):
    log = trained_slice_model / 'log' / 'net.log'
    rows = training_log.parse(str(log))
    assert [row['epoch'] for row in rows] == [1, 2, 3]
    assert all(0 <= row['train'] <= 1 and 0 <= row['val'] <= 1 and row['time'] > 0
               for row in rows)
    result = run_script('parse_log.py', [str(log)])
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith('| epoch | train accuracy | validation accuracy')
    assert len(lines) == 2 + 3
    assert lines[-1].startswith('| 3 | %.4f | %.4f |' % (rows[2]['train'], rows[2]['val']))


def test_resumed_epoch_replaces_the_earlier_line(tmp_path):
    log = tmp_path / 'run.log'
    log.write_text('x Epoch[0] Train-accuracy=0.5\nx Epoch[0] Validation-accuracy=0.4\n'
                   'x Epoch[0] Train-accuracy=0.6\nx Epoch[0] Throughput=10.0 samples/sec\t'
                   'lr=0.1\testimated time left=0:00:01\n')
    assert training_log.parse(str(log)) == [dict(epoch=1, train=0.6, val=0.4, throughput=10.0,
                                                 lr=0.1)]


def test_a_fresh_run_into_the_same_log_starts_the_table_again(tmp_path):
    log = tmp_path / 'run.log'
    fresh = "t arguments: {'lr': 0.1, 'retrain': False, 'frequent': 50}\n"
    resumed = fresh.replace("'retrain': False", "'retrain': True")
    log.write_text(fresh + ''.join('x Epoch[%d] Validation-accuracy=0.%d\n' % (e, e + 1)
                                   for e in range(3))
                   + fresh + 'x Epoch[0] Validation-accuracy=0.7\n'
                   + resumed + 'x Epoch[1] Validation-accuracy=0.8\n')
    assert training_log.parse(str(log)) == [dict(epoch=1, val=0.7), dict(epoch=2, val=0.8)]


def test_every_run_writes_a_curve_and_plot_curve_overlays(trained_slice_model, tmp_path):
    own = trained_slice_model / 'log' / 'net.png'
    assert own.is_file()  # written by the trainer next to its log
    (width, height), pixels = png_size_and_pixels(own)
    assert (width, height) == (700, 450)
    assert len(set(pixels)) > 20  # axes, two curves, text: not a blank image

    other = tmp_path / 'other.log'
    other.write_text('a Epoch[0] Train-accuracy=0.3\na Epoch[0] Validation-accuracy=0.35\n'
                     'a Epoch[1] Train-accuracy=0.6\na Epoch[1] Validation-accuracy=0.55\n')
    out = tmp_path / 'both.png'
    result = run_script('plot_curve.py', [str(trained_slice_model / 'log' / 'net.log'),
                                          str(other), '--out', str(out)])
    assert result.returncode == 0, result.stderr
    _, both = png_size_and_pixels(out)
    assert both != pixels


def test_log_without_epochs_is_one_line(tmp_path):
    log = tmp_path / 'empty.log'
    log.write_text('nothing here\n')
    for script in ('parse_log.py', 'plot_curve.py'):
        result = run_script(script, [str(log)])
        assert result.returncode == 2
        assert 'Traceback' not in result.stderr and 'no "Epoch[n]' in result.stderr
