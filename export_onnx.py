"""Export a trained checkpoint to ONNX: input ``data`` (N x C x H x W raw 0-255 RGB, any N), output
``softmax`` (class probabilities).

The exported graph is ``softmax(fc1)``: MXNet's exporter cannot convert ``SoftmaxOutput`` (an
IndexError in 1.9.1), and inference needs no label. Two things are done around
``mx.onnx.export_model``:

* BatchNorm layers with ``fix_gamma`` (``bn_data``) get a gamma of ones, which is what MXNet
  computes with, whatever value the params file holds; the exporter would use the stored one.
* The weights are attached afterwards as raw ONNX initializers, and not listed as graph inputs: the
  exporter's own conversion goes through Python lists (minutes for SENet-154's 115 M weights), and
  initializers listed as inputs keep onnxruntime from folding constants.

Examples::

    python export_onnx.py --model pretrained/se-resnext-fashion-mnist-14
    python export_onnx.py --prefix model/se-resnext-fashion-mnist-14 --epoch 5 --image-shape 3,28,28 \\
        --output se-resnext-14.onnx
"""
import json
import os
import sys

from senet import threads

threads.configure(sys.argv[1:])

import numpy as np  # noqa: E402

from senet import inference  # noqa: E402  (MXNet must load after OMP_NUM_THREADS is set)
from senet.arguments import OneLineParser  # noqa: E402

INPUT_NAME = 'data'
OUTPUT_NAME = 'softmax'


def build_parser():
    parser = OneLineParser(description=__doc__.split('\n\n')[0])
    inference.add_model_args(parser, preprocessing=False)
    parser.add_argument('--output', help='the .onnx file; default <prefix>-<epoch>.onnx')
    return parser


def _is_true(value):
    return str(value).lower() in ('true', '1')


def fixed_gamma_names(symbol):
    """Gamma parameters of the BatchNorm layers with ``fix_gamma`` (MXNet's default is True)."""
    nodes = json.loads(symbol.tojson())['nodes']
    names = []
    for node in nodes:
        attrs = node.get('attrs', node.get('attr', {}))
        if node['op'] == 'BatchNorm' and _is_true(attrs.get('fix_gamma', 'True')):
            names.append(nodes[node['inputs'][1][0]]['name'])
    return names


def export(symbol, arg_params, aux_params, image_shape, path):
    """Write ``softmax(fc1)`` of a checkpoint to the ONNX file ``path``, with a dynamic batch axis."""
    import mxnet as mx
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:
        raise inference.InferenceError('the onnx package is missing; install the pinned '
                                       'requirements: pip install -r requirements.txt') from None
    net = inference.probabilities(symbol, name=OUTPUT_NAME)
    params = {name: array.asnumpy() for name, array in list(arg_params.items()) +
              list(aux_params.items())}
    for name in fixed_gamma_names(net):
        params[name] = np.ones_like(params[name])
    variables = [node['name'] for node in json.loads(net.tojson())['nodes']
                 if node['op'] == 'null']
    # The exporter pairs in_shapes with the graph's variables in list_inputs() order for shape
    # inference and in node order for the inputs it writes: they must agree.
    if variables != net.list_inputs() or INPUT_NAME not in variables:
        raise inference.InferenceError('unexpected graph inputs %s' % ', '.join(variables[:5]))
    missing = [name for name in variables if name != INPUT_NAME and name not in params]
    if missing:
        raise inference.InferenceError('the params lack %s' % ', '.join(missing))
    in_shapes = [(1,) + tuple(image_shape) if name == INPUT_NAME else params[name].shape
                 for name in variables]
    dynamic_shapes = [(None,) + tuple(image_shape) if name == INPUT_NAME else params[name].shape
                      for name in variables]
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = '%s.tmp-%d' % (path, os.getpid())
    try:
        # Every variable goes in as an input with its shape; the weights are attached below.
        try:
            mx.onnx.export_model(net, {}, in_shapes=in_shapes,
                                 in_types=[np.float32] * len(variables), onnx_file_path=tmp,
                                 dynamic=True, dynamic_input_shapes=dynamic_shapes)
        except (AttributeError, NotImplementedError, ValueError, KeyError, IndexError) as err:
            raise inference.InferenceError('MXNet cannot export this graph to ONNX: %s'
                                           % inference.first_line(err)) from None
        model = onnx.load(tmp)
        graph = model.graph
        kept = [value for value in graph.input if value.name == INPUT_NAME]
        del graph.input[:]
        graph.input.extend(kept)
        graph.initializer.extend(numpy_helper.from_array(params[name], name)
                                 for name in variables if name != INPUT_NAME)
        onnx.save(model, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def export_command(args):
    prefix, epoch, card, image_shape = inference.resolve_model(args)
    if card is not None:
        inference.require_float32(args.model, card, 'export_onnx.py')
    output = args.output or '%s-%04d.onnx' % (prefix, epoch)
    symbol, arg_params, aux_params = inference.load_checkpoint(prefix, epoch)
    try:
        export(symbol, arg_params, aux_params, image_shape, output)
    except OSError as err:
        raise inference.InferenceError('cannot write %s (%s)' % (output, err.strerror or err)) \
            from None
    print('%s: input %s (N x %s, raw 0-255 RGB), output %s (N x %d probabilities), %.1f MB'
          % (output, INPUT_NAME, 'x'.join(map(str, image_shape)), OUTPUT_NAME,
             arg_params['fc1_bias'].shape[0], os.path.getsize(output) / 1e6))


def main(argv=None):
    return inference.run_cli(build_parser(), export_command, argv)


if __name__ == '__main__':
    sys.exit(main())
