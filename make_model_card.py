"""Package a trained checkpoint as a model directory with a model card (``pretrained/<name>/``).

Copies the symbol and params as ``<name>-symbol.json`` / ``<name>-NNNN.params`` and the training log
as ``train.log``, measures top-1/top-5 on the test set with score.py's evaluation (every image of
the ``.rec``, once), and writes ``card.json`` (machine-readable, read by predict.py, score.py and
export_onnx.py; fields in senet/inference.py) and ``README.md`` (the same for people). The network, data
type and input shape come from the log's ``arguments:`` line. ``train.log`` is the log from the last
fresh run on (a resumed run appends to it; earlier runs into the same file are left out); the wall
time is the time between the first and last line of each run in it, and ``curve.png`` its curve.

Example::

    python make_model_card.py --prefix model/se-resnext-fashion-mnist-14 --epoch 5 \\
        --log log/se-resnext-fashion-mnist-14.log --command "make train" \\
        --output pretrained/my-se-resnext
"""
import ast
import datetime
import json
import os
import platform
import re
import shutil
import sys

from senet import threads

threads.configure(sys.argv[1:])

import data  # noqa: E402
from senet import checkpoint, inference, network, training_log  # noqa: E402  (MXNet loads after threads)
from senet.arguments import OneLineParser  # noqa: E402

MAX_PARAMS_BYTES = 20 * 1000 * 1000
"""Size limit of a params file committed under ``pretrained/``."""

DATA_PRESETS = {
    'fashion-mnist': dict(color='gray', resize='pad', content_size=[28, 28], fill=0,
                          classes=list(data.FASHION_MNIST_CLASSES),
                          description='Fashion-MNIST (60,000 training and 10,000 test images)'),
}
"""Preprocessing and class names of the built-in data set: 28x28 gray images padded to 32x32."""

SCORE_REC = {DATA_PRESETS['fashion-mnist']['description']: 'data/fashion-mnist/val.rec'}
"""The test set's path after ``make train``, for the card's example command."""

TIMESTAMP = re.compile(r'^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) ')
RUN_START = ' arguments: '


def build_parser():
    parser = OneLineParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--prefix', required=True, help='checkpoint prefix of the trained model')
    parser.add_argument('--epoch', type=int, required=True, help='checkpoint epoch')
    parser.add_argument('--log', required=True, help="the training run's log file")
    parser.add_argument('--command', required=True, help='the command that trained the model')
    parser.add_argument('--output', required=True,
                        help='model directory to write; its name names the model')
    parser.add_argument('--data-type', help="data set; default the log's --data-type")
    parser.add_argument('--data-val', help='test .rec to measure; default the data type\'s test '
                                           'set (Fashion-MNIST: all 10,000 images)')
    parser.add_argument('--data-dir', default=os.path.join('data', 'fashion-mnist'),
                        help='where the built-in Fashion-MNIST .rec files are (packed if missing)')
    parser.add_argument('--image-shape', help="input C,H,W; default the log's")
    parser.add_argument('--classes', help='file of "label name" lines; default the data '
                                          'type\'s class names')
    parser.add_argument('--machine', help='description of the training machine; default this '
                                          "machine's CPU, cores, memory and OS")
    parser.add_argument('--batch-size', type=int, default=100, help='batch size for scoring')
    return parser


def run_arguments(log_path):
    """The trainer's arguments from the last ``arguments: {...}`` line of the log, or {}."""
    found = {}
    with open(log_path, errors='replace') as stream:
        for line in stream:
            if RUN_START in line:
                try:
                    found = ast.literal_eval(line.split(RUN_START, 1)[1].strip())
                except (ValueError, SyntaxError):
                    continue
    return found if isinstance(found, dict) else {}


def wall_time(lines):
    """Seconds from the first to the last timestamped line of each run in ``lines``, summed."""
    total = 0.0
    first = last = None
    for line in lines:
        match = TIMESTAMP.match(line)
        if not match:
            continue
        stamp = datetime.datetime.strptime(match.group(1), '%Y-%m-%d %H:%M:%S') + \
            datetime.timedelta(milliseconds=int(match.group(2)))
        if RUN_START in line and first is not None:
            total += (last - first).total_seconds()
            first = None
        first = stamp if first is None else first
        last = stamp
    if first is not None:
        total += (last - first).total_seconds()
    return total


def format_duration(seconds):
    minutes, seconds = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return '%d:%02d:%02d' % (hours, minutes, seconds)


def describe_machine():
    """CPU model, cores, memory and OS of this machine, e.g. for a card made where it trained."""
    cpu = platform.processor() or platform.machine()
    memory = ''
    try:
        with open('/proc/cpuinfo') as stream:
            names = [line.split(':', 1)[1].strip() for line in stream
                     if line.startswith('model name')]
        cpu = names[0] if names else cpu
        with open('/proc/meminfo') as stream:
            kib = int(stream.readline().split()[1])
        memory = ', %.0f GiB' % (kib / 2 ** 20)
    except (OSError, ValueError, IndexError):
        pass
    return '%s, %d cores%s, %s, Python %s' % (cpu, os.cpu_count() or 1, memory,
                                              platform.platform(terse=True),
                                              platform.python_version())


def test_rec(args, data_type, arguments):
    """The ``.rec`` to measure: ``--data-val``, Fashion-MNIST's test set, or the log's."""
    if args.data_val:
        return args.data_val
    if data_type == 'fashion-mnist':
        try:
            return data.prepare_fashion_mnist(args.data_dir)[1]
        except data.DataError as err:
            raise inference.InferenceError(str(err)) from None
    if arguments.get('data_val'):
        return arguments['data_val']
    raise inference.InferenceError('--data-val is required: the log names no test .rec')


def make_card(args):
    """Write the model directory; returns the card."""
    import mxnet as mx

    from symbols import parse_image_shape
    if args.batch_size < 1:
        raise inference.InferenceError('--batch-size must be positive, got %d' % args.batch_size)
    if not os.path.isfile(args.log):
        raise inference.InferenceError('log file %s does not exist' % args.log)
    symbol, arg_params, aux_params = inference.load_checkpoint(args.prefix, args.epoch)
    sym_path, params_path, _ = checkpoint.checkpoint_paths(args.prefix, args.epoch)
    size = os.path.getsize(params_path)
    if size > MAX_PARAMS_BYTES:
        raise inference.InferenceError('%s is %.1f MB, over the %d MB limit for pretrained/'
                                       % (params_path, size / 1e6, MAX_PARAMS_BYTES // 10 ** 6))
    arguments = run_arguments(args.log)
    data_type = args.data_type or arguments.get('data_type')
    shape = args.image_shape or arguments.get('image_shape')
    if shape is None:
        raise inference.InferenceError('--image-shape is required: the log has no arguments line')
    try:
        image_shape = parse_image_shape(shape)
    except ValueError as err:
        raise inference.InferenceError('--' + str(err).replace('_', '-')) from None
    num_classes = int(arg_params['fc1_bias'].shape[0])
    preset = DATA_PRESETS.get(data_type, {})
    classes = (inference.read_class_file(args.classes) if args.classes
               else preset.get('classes') or [str(label) for label in range(num_classes)])
    if len(classes) != num_classes:
        raise inference.InferenceError('%d class names for a model with %d classes'
                                       % (len(classes), num_classes))
    rec = test_rec(args, data_type, arguments)
    try:
        data.check_rec(rec, '--data-val')
    except data.DataError as err:
        raise inference.InferenceError(str(err)) from None
    result = inference.score(symbol, arg_params, aux_params, rec, image_shape,
                             batch_size=args.batch_size)

    name = os.path.basename(os.path.normpath(args.output))

    def write_files(directory):
        target_prefix = os.path.join(directory, name)
        target_sym, target_params, _ = checkpoint.checkpoint_paths(target_prefix, args.epoch)
        shutil.copyfile(sym_path, target_sym)
        shutil.copyfile(params_path, target_params)
        # The model's own run: a log file may hold earlier runs before it.
        run_lines = training_log.current_run(args.log)
        log_copy = os.path.join(directory, 'train.log')
        with open(log_copy, 'w') as stream:
            stream.writelines(run_lines)
        epochs = training_log.parse(log_copy)
        seconds = wall_time(run_lines)
        training_log.plot([log_copy], os.path.join(directory, 'curve.png'), title=name)
        builder_flags = {key: arguments[flag] for key, flag in network.NETWORK_FLAGS.items()
                         if key not in ('image_shape', 'workspace')
                         and arguments.get(flag) is not None}
        input_spec = dict(image_shape=list(image_shape), color=preset.get('color', 'rgb'),
                          resize=preset.get('resize', 'resize'))
        if input_spec['resize'] == 'pad':
            input_spec.update(content_size=preset['content_size'], fill=preset['fill'])
        card = dict(
            format=inference.CARD_FORMAT, name=name, epoch=args.epoch,
            network=arguments.get('network'), builder=builder_flags,
            input=input_spec, classes=classes,
            data_set=preset.get('description', data_type),
            test=dict(rec=os.path.basename(rec), images=result['images'],
                      top1=round(result['top1'], 6),
                      top5=None if result['top5'] is None else round(result['top5'], 6)),
            params_file=os.path.basename(target_params), params_bytes=size,
            params_sha256=checkpoint.file_sha256(target_params),
            training=dict(command=args.command, epochs=len(epochs) or None,
                          wall_time_seconds=round(seconds, 1), wall_time=format_duration(seconds),
                          machine=args.machine or describe_machine(), log='train.log'),
            mxnet_version=mx.__version__,
        )
        with open(os.path.join(directory, inference.CARD_FILE), 'w') as stream:
            json.dump(card, stream, indent=2)
            stream.write('\n')
        with open(os.path.join(directory, 'README.md'), 'w') as stream:
            stream.write(card_markdown(card, epochs))
        return card

    # Written into a temporary directory and renamed: a failure leaves no half-written model.
    card = inference.write_model_directory(args.output, write_files)
    print('%s: test top-1 %.4f on %d images, params %s (%.1f MB), trained in %s'
          % (args.output, result['top1'], result['images'], card['params_sha256'][:12],
             size / 1e6, card['training']['wall_time']))
    return card


def card_markdown(card, epochs):
    """The human-readable model card (README.md of the model directory)."""
    directory = os.path.join('pretrained', card['name'])
    test, training, spec = card['test'], card['training'], card['input']
    builder = ', '.join('%s=%s' % item for item in sorted(card['builder'].items()))
    feed = '%s, raw 0-255 pixels, %s' % ('x'.join(map(str, spec['image_shape'])), spec['color'])
    if spec['resize'] == 'pad':
        feed += ', fitted into %s and padded with %s' % ('x'.join(map(str, spec['content_size'])),
                                                           spec['fill'])
    else:
        feed += ', resized'
    top5 = '' if test['top5'] is None else ', top-5 %.2f %%' % (100 * test['top5'])
    lines = [
        '# %s' % card['name'], '',
        'Written by `make_model_card.py`; the same facts, machine-readable, are in `card.json`.', '',
        '| | |', '|---|---|',
        '| network | `%s` (%s) |' % (card['network'], builder),
        '| data | %s |' % card['data_set'],
        '| input | %s |' % feed,
        '| test accuracy | top-1 **%.2f %%**%s on %d images (`%s`) |' % (
            100 * test['top1'], top5, test['images'], test['rec']),
        '| epochs | %s |' % training['epochs'],
        '| wall time | %s (%s s) |' % (training['wall_time'], training['wall_time_seconds']),
        '| machine | %s |' % training['machine'],
        '| params | `%s`, %d bytes, sha256 `%s` |' % (card['params_file'], card['params_bytes'],
                                                     card['params_sha256']),
        '| MXNet | %s |' % card['mxnet_version'],
        '', 'Trained with:', '', '```bash', training['command'], '```', '',
        'The full training log is `%s`. Per epoch:' % training['log'], '',
        training_log.markdown_table(epochs) if epochs else '(no epoch lines in the log)', '',
        'Use it:', '', '```bash',
        'python predict.py --model %s image.png' % directory,
        'python score.py --model %s --data-val %s' % (directory, SCORE_REC.get(
            card['data_set'], test['rec'])),
        'python export_onnx.py --model %s' % directory,
        '```', '',
        'or load it with `mx.model.load_checkpoint(\'%s/%s\', %d)`.' % (directory, card['name'],
                                                                       card['epoch']),
        '']
    return '\n'.join(lines)


def main(argv=None):
    return inference.run_cli(build_parser(), make_card, argv)


if __name__ == '__main__':
    sys.exit(main())
