"""Convert ImageNet weights from GluonCV or timm into a model directory of this project.

The directory holds ``<name>-symbol.json`` (this project's textbook graph), ``<name>-0000.params``
(``arg:``/``aux:`` tensors, as ``mx.model.save_checkpoint`` writes them), ``card.json`` and
``README.md``; predict.py, score.py and export_onnx.py take it with ``--model``. The converted
network takes raw 0-255 RGB pixels: the source's normalisation and BatchNorm epsilon are folded into
the parameters (senet/weights.py), so its logits equal the source model's. Which source models
convert, and which builder option the others need, is ``senet.weights.SOURCE_MODELS``
(``--list`` prints it).

Examples::

    python convert_weights.py --source timm --model seresnext50_32x4d \\
        --checkpoint model.safetensors --output pretrained/seresnext50_32x4d-timm
    python convert_weights.py --source gluoncv --model se_resnext50_32x4d \\
        --checkpoint ~/.mxnet/models/se_resnext50_32x4d-7906e0e1.params \\
        --output pretrained/se_resnext50_32x4d-gluoncv
"""
import argparse
import json
import os
import shlex
import shutil
import sys
import tempfile
import textwrap

from senet import checkpoint
from senet import weights as source_weights

EPOCH = 0
"""Epoch number of the converted checkpoint's file name."""


class OneLineParser(argparse.ArgumentParser):
    """Usage errors as one line on stderr, exit status 2."""

    def error(self, message):
        self.exit(2, '%s: error: %s\n' % (self.prog, message))


def build_parser():
    parser = OneLineParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--source', choices=source_weights.SOURCES, help='framework of the weights')
    parser.add_argument('--model', help="the source's model name, e.g. seresnext50_32x4d, "
                                        "seresnext50_32x4d.gluon_in1k or se_resnext50_32x4d")
    parser.add_argument('--checkpoint', help='the weights file: GluonCV .params; timm .safetensors, '
                                             'or PyTorch .pth/.bin (needs torch)')
    parser.add_argument('--output', help='model directory to write; its name names the model')
    parser.add_argument('--list', action='store_true',
                        help='print the source models and what each needs, then exit')
    parser.add_argument('--table', choices=sorted(TABLES),
                        help="print a documentation table of the models that convert, then exit: "
                             "'readme' (README.md, ImageNet weights), 'evaluation' (how each source "
                             "measured its top-1, docs/imagenet.md)")
    return parser


def model_table():
    """The Markdown table of :data:`senet.weights.SOURCE_MODELS`."""
    lines = ['| source | model | here | published top-1 |', '|---|---|---|---|']
    for model in source_weights.SOURCE_MODELS:
        names = ', '.join(['`%s`' % model.name] + ['`%s`' % alias for alias in model.aliases])
        if model.supported:
            options = ', '.join('%s=%s' % item for item in model.builder.items())
            here = '`%s`%s' % (model.network, ' (%s)' % options if options else '')
            top1 = ', '.join('%s%.2f %%' % ('%s: ' % w.tag if w.tag else '', w.top1)
                             for w in model.weights)
        else:
            here, top1 = 'needs ' + model.needs, ''
        lines.append('| %s | %s | %s | %s |' % (model.source, names, here, top1))
    return '\n'.join(lines)


def make_card(args, model, weights, name, params_path, checkpoint_sha256):
    """The model card (fields in senet/inference.py, plus the source's)."""
    import mxnet as mx
    size = weights.image_size
    source_name = model.name + ('.' + weights.tag if weights.tag else '')
    return dict(
        format=1, name=name, epoch=EPOCH, network=model.network, builder=dict(model.builder),
        input=dict(image_shape=[3, size, size], color='rgb', resize='resize'),
        classes=source_weights.imagenet_synsets(),
        class_names='ImageNet-1k WordNet IDs in label order (senet/imagenet_synsets.txt)',
        data_set='ImageNet-1k (ILSVRC 2012)',
        source=dict(
            framework=model.source, model=source_name,
            checkpoint=os.path.basename(args.checkpoint), checkpoint_sha256=checkpoint_sha256,
            top1=weights.top1, top5=weights.top5,
            accuracy_reference=model.accuracy.format(model=source_name, size=size,
                                                     crop_pct=weights.crop_pct,
                                                     interpolation=weights.interpolation),
            licence=model.licence,
            preprocessing=dict(resize_shorter=source_weights.resize_shorter(model.source, weights),
                               center_crop=size, interpolation=weights.interpolation,
                               mean=list(source_weights.IMAGENET_MEAN),
                               std=list(source_weights.IMAGENET_STD)),
            bn_eps=source_weights.SOURCE_BN_EPS[model.source]),
        conversion=dict(command='python convert_weights.py ' + shlex.join(args.argv),
                        folded='input normalisation into bn_data; BatchNorm eps into moving_var'),
        params_file=os.path.basename(params_path), params_bytes=os.path.getsize(params_path),
        params_sha256=checkpoint.file_sha256(params_path), mxnet_version=mx.__version__,
    )


def card_markdown(card, directory):
    """The human-readable model card."""
    source, spec = card['source'], card['source']['preprocessing']
    builder = ', '.join('%s=%s' % item for item in card['builder'].items())
    size = card['input']['image_shape'][1]
    lines = [
        '# %s' % card['name'], '',
        'Converted by `convert_weights.py` from %s `%s`; the same facts, machine-readable, are in '
        '`card.json`.' % (source['framework'], source['model']), '',
        '| | |', '|---|---|',
        '| network | `%s`%s |' % (card['network'], ' (%s)' % builder if builder else ''),
        '| source | %s `%s`, file `%s` (sha256 `%s`) |' % (
            source['framework'], source['model'], source['checkpoint'], source['checkpoint_sha256']),
        '| ImageNet accuracy (published by the source) | top-1 **%.2f %%**, top-5 %.2f %% (%s) |' % (
            source['top1'], source['top5'], source['accuracy_reference']),
        '| weights licence (as the source states it) | %s |' % source['licence'],
        '| input | %dx%d RGB, raw 0-255 pixels (the source\'s normalisation, mean %s and std %s of '
        '0-1 pixels, is folded into `bn_data`) |' % (size, size, spec['mean'], spec['std']),
        '| source\'s evaluation | shorter side resized to %d (%s), centre %dx%d crop |' % (
            spec['resize_shorter'], spec['interpolation'], size, size),
        '| classes | %s |' % card['class_names'],
        '| params | `%s`, %d bytes, sha256 `%s` |' % (card['params_file'], card['params_bytes'],
                                                     card['params_sha256']),
        '| MXNet | %s |' % card['mxnet_version'],
        '', 'Converted with:', '', '```bash', card['conversion']['command'], '```', '',
        'predict.py stretches a whole image to %dx%d; for the published accuracy, resize the '
        'shorter side to %d and crop the centre as the source does.' % (
            size, size, spec['resize_shorter']), '',
        'Use it:', '', '```bash',
        'python predict.py --model %s image.jpg' % directory,
        'python score.py --model %s --data-val val.rec' % directory,
        'python export_onnx.py --model %s' % directory,
        '```', '']
    return '\n'.join(lines)


def write_directory(output, write_files):
    """Call ``write_files(tmp_dir)`` and move what it wrote into ``output``.

    Everything is written into a temporary directory beside ``output`` first: an error or an
    interruption leaves neither half-written files nor the temporary directory behind.
    """
    output = os.path.abspath(output)
    if os.path.exists(output) and not os.path.isdir(output):
        raise source_weights.WeightsError('--output %s exists and is not a directory' % output)
    parent = os.path.dirname(output)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix='.%s.tmp-' % os.path.basename(output), dir=parent)
    try:
        write_files(tmp)
        if not os.path.exists(output):
            os.rename(tmp, output)
            return
        for name in os.listdir(tmp):
            os.replace(os.path.join(tmp, name), os.path.join(output, name))
        os.rmdir(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def convert(args):
    """Read, convert and write; returns the card."""
    import mxnet as mx
    for flag in ('source', 'model', 'checkpoint', 'output'):
        if getattr(args, flag) is None:
            raise source_weights.WeightsError('--%s is required (or --list)' % flag)
    model, weights = source_weights.lookup(args.source, args.model)
    tensors = source_weights.read_checkpoint(args.source, args.checkpoint)
    symbol, arg_params, aux_params = source_weights.convert(model, weights, tensors,
                                                            checkpoint=args.checkpoint)
    name = os.path.basename(os.path.normpath(args.output))
    checkpoint_sha256 = checkpoint.file_sha256(args.checkpoint)
    card = {}

    def write_files(directory):
        prefix = os.path.join(directory, name)
        checkpoint.save_symbol('%s-symbol.json' % prefix, symbol)
        params_path = '%s-%04d.params' % (prefix, EPOCH)
        saved = {'arg:' + key: mx.nd.array(value, dtype='float32')
                 for key, value in arg_params.items()}
        saved.update({'aux:' + key: mx.nd.array(value, dtype='float32')
                      for key, value in aux_params.items()})
        checkpoint.save_ndarrays(params_path, saved)
        card.update(make_card(args, model, weights, name, params_path, checkpoint_sha256))
        with open(os.path.join(directory, 'card.json'), 'w') as stream:
            json.dump(card, stream, indent=2)
            stream.write('\n')
        with open(os.path.join(directory, 'README.md'), 'w') as stream:
            stream.write(card_markdown(card, args.output))

    write_directory(args.output, write_files)
    print('%s: %s %s -> %s (%s), source top-1 %.2f %%' % (
        args.output, model.source, card['source']['model'], model.network,
        ', '.join('%s=%s' % item for item in model.builder.items()) or 'defaults', weights.top1))
    return card


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if args.list:
        print(model_table())
        return 0
    if args.table:
        print(TABLES[args.table]())
        return 0
    try:
        import mxnet as mx
        try:
            convert(args)
        except mx.base.MXNetError as err:
            raise source_weights.WeightsError('MXNet failed: %s'
                                              % source_weights.first_line(err)) from None
    except source_weights.WeightsError as err:
        sys.stderr.write('%s: error: %s\n' % (parser.prog, err))
        return 2
    except OSError as err:  # a full disk, a directory removed or read-only
        from senet import faults
        sys.stderr.write('%s: error: %s\n' % (parser.prog, faults.os_error_line(err)))
        return 1
    return 0


def published_top1(model, weights):
    """``tag (aliases) top-1 [at size]`` of one weights of a model, for :func:`readme_table`."""
    aliases = [alias for alias, tag in model.aliases.items() if tag == weights.tag]
    text = '%.2f' % weights.top1
    if aliases:
        text = '(%s) %s' % (', '.join('`%s`' % alias for alias in aliases), text)
    if weights.tag:
        text = '`%s` %s' % (weights.tag, text)
    if weights.image_size != 224:
        text += ' at %dx%d' % (weights.image_size, weights.image_size)
    return text


def readme_table():
    """The README's table of :data:`senet.weights.SOURCE_MODELS`: one row per model that converts
    (a timm alias beside the weights it names), then the models refused, wrapped at 100 columns."""
    lines = ['| network | source model | builder options | published top-1 (%) | licence |',
             '|---|---|---|---|---|']
    for model in source_weights.source_models(supported=True):
        options = ', '.join('%s=%s' % item for item in model.builder.items()) or 'defaults'
        top1 = ', '.join(published_top1(model, weights) for weights in model.weights)
        lines.append('| `%s` | %s `%s` | %s | %s | %s |' % (
            model.network, model.source, model.name, options, top1,
            model.licence.split(':')[0]))
    refused = ['%s %s' % (source, ', '.join('`%s`' % model.name for model in
                                            source_weights.source_models(source, supported=False)))
               for source in source_weights.SOURCES
               if source_weights.source_models(source, supported=False)]
    if refused:
        lines += [''] + textwrap.wrap(
            'Refused until the builders have the option each needs (`python convert_weights.py '
            '--list` names it): %s.' % '; '.join(refused), width=100, break_on_hyphens=False)
    return '\n'.join(lines)


def evaluation_table():
    """docs/imagenet.md's table: how each source measured the top-1 of each weights it publishes."""
    lines = ['| source model | input | shorter side resized to | crop_pct | interpolation | '
             'published top-1 / top-5 (%) |', '|---|---|---|---|---|---|']
    for model in source_weights.source_models(supported=True):
        for weights in model.weights:
            name = model.name + ('.' + weights.tag if weights.tag else '')
            lines.append('| %s `%s` | %dx%d | %d | %s | %s | %.2f / %.2f |' % (
                model.source, name, weights.image_size, weights.image_size,
                source_weights.resize_shorter(model.source, weights), weights.crop_pct,
                weights.interpolation, weights.top1, weights.top5))
    return '\n'.join(lines)


TABLES = {'readme': readme_table, 'evaluation': evaluation_table}
"""The documentation tables ``--table`` prints; tests/test_readme.py checks that README.md and
docs/imagenet.md hold them as printed."""


if __name__ == '__main__':
    sys.exit(main())
