"""The CPU training forms: the SE block and grouped convolutions rewritten around oneDNN's slow paths.

Not from a paper. MXNet 1.9.1's CPU build trains the textbook graphs of Hu et al. (2018) slowly:
oneDNN runs some operators with its reference kernels when an input and its gradient arrive in
different memory layouts. The forms here compute the same function with the same parameters, only
through other operators, and are what the builders make by default:

* the 'fast' SE block (:data:`SE_IMPLS`): :func:`fast_squeeze` and :func:`fast_se_scale` replace
  the textbook global pool and ``broadcast_mul`` of :func:`symbols.layers.se_block`;
* the 'auto' grouped convolution (:data:`GROUPED_CONV_IMPLS`): on CPUs where oneDNN runs AVX-512
  kernels, a narrow grouped convolution between two :func:`plain_layout` boundaries
  (:func:`symbols.layers.grouped_conv`).

:func:`textbook_graph` switches the builders back to the textbook forms, the graph checkpoints and
shipped symbol files hold; :func:`training_graph` turns such a graph into the training form.
"""
import contextlib
import contextvars
import functools
import json
import os

import mxnet as mx

CHANNEL_BLOCK = 16
"""Channel block of oneDNN's AVX-512 layouts."""

GROUPED_CONV_IMPLS = ('auto', 'plain-layout', 'grouped')
"""How :func:`symbols.layers.grouped_conv` builds a grouped convolution; all compute the same
function with the same ``{name}_weight`` parameter.

``grouped``: MXNet's ``Convolution`` with ``num_group``, the textbook graph.
``plain-layout``: the same convolution between two :func:`plain_layout` boundaries when a group's
channels are not a multiple of ``CHANNEL_BLOCK``. With its AVX-512 kernels oneDNN then stores the
convolution's output, and the gradient it sends back, in a layout blocked by the group width (4 or 8
channels), while the BatchNorms around it work in blocks of 16: a BatchNorm whose data and gradient
layouts differ runs oneDNN's reference kernel, which took 3.5 s of SE-ResNeXt-50's 5.3 s training
step (batch 16, 224x224) on an AVX-512 CPU. With the boundaries every BatchNorm runs a vectorised
kernel.
``auto`` (the default): ``plain-layout`` where oneDNN runs its AVX-512 kernels
(:func:`onednn_uses_avx512`), else ``grouped``. With its AVX2 kernels oneDNN keeps a narrow grouped
convolution's data and gradients in the plain layout by itself, and the boundaries only add copies:
SE-ResNeXt-50 32x4d trained 5-12 % slower with them on an AVX2-only CPU (docs/performance.md)."""

AVX512_FLAG = 'avx512f'
"""The ``/proc/cpuinfo`` flag of the CPUs on which oneDNN picks AVX-512 kernels."""

SE_IMPLS = ('fast', 'broadcast')
"""Formulations of the SE block; both compute the same function with the same parameters.

``broadcast``: Pooling -> Flatten -> FCs -> ``broadcast_mul(data, reshape(gate))``, the textbook graph.
``fast``: the same with three changes that matter on MXNet 1.9.1's CPU build, where the textbook
graph trains slowly:

* the squeeze is ``contrib.AdaptiveAvgPooling2D``: oneDNN runs the global average Pooling's backward
  with its reference kernel when the gradient arrives in another layout than the input (2 s and
  more per call on a 128x64x32x32 batch);
* the gate is spread over the pixels by a per-sample outer product with ones (``batch_dot``) and
  applied with ``elemwise_mul``: the gate's gradient then is a matrix-vector product instead of
  ``broadcast_mul``'s slow generic reduction;
* ``data`` is reshaped to itself once, which converts oneDNN's blocked layout to the plain one a
  single time instead of once for every non-oneDNN operator that reads it.

Both accept any batch and image size."""

_SE_IMPL = contextvars.ContextVar('se_impl', default='fast')
_GROUPED_CONV_IMPL = contextvars.ContextVar('grouped_conv_impl', default='auto')


def _checked(impl, choices, what):
    if impl not in choices:
        raise ValueError('unknown %s implementation %r; choose one of: %s'
                         % (what, impl, ', '.join(choices)))
    return impl


@contextlib.contextmanager
def _setting(variable, impl):
    token = variable.set(impl)
    try:
        yield
    finally:
        variable.reset(token)


def se_implementation(impl):
    """Context manager: build SE blocks with formulation ``impl`` (one of SE_IMPLS) inside it."""
    return _setting(_SE_IMPL, _checked(impl, SE_IMPLS, 'SE'))


def grouped_conv_implementation(impl):
    """Context manager: build grouped convolutions with ``impl`` (one of GROUPED_CONV_IMPLS)."""
    return _setting(_GROUPED_CONV_IMPL, _checked(impl, GROUPED_CONV_IMPLS, 'grouped convolution'))


@contextlib.contextmanager
def textbook_graph():
    """Build the textbook forms inside the block: ``broadcast`` SE blocks and MXNet's grouped
    convolutions. Same parameters and function as the default (training) forms; it is the graph
    checkpoints and shipped symbol files hold: shorter to run forward, fused whole by oneDNN for
    inference, and the one INT8 quantization accepts."""
    with se_implementation('broadcast'), grouped_conv_implementation('grouped'):
        yield


def se_form(impl=None):
    """The SE formulation to build: ``impl`` if given, else the one :func:`se_implementation`
    set (default 'fast'); ValueError for a name outside SE_IMPLS."""
    return _checked(_SE_IMPL.get() if impl is None else impl, SE_IMPLS, 'SE')


def grouped_conv_form():
    """The grouped-convolution implementation to build, 'plain-layout' or 'grouped': the one
    :func:`grouped_conv_implementation` set (default 'auto', resolved for this machine)."""
    impl = _GROUPED_CONV_IMPL.get()
    if impl == 'auto':
        return 'plain-layout' if onednn_uses_avx512() else 'grouped'
    return impl


def needs_plain_layout(in_channels, num_group):
    """Whether a convolution of ``in_channels`` inputs in ``num_group`` groups is built between
    plain-layout boundaries: in the 'plain-layout' form (:func:`grouped_conv_form`), when it is
    narrow (:func:`is_narrow`)."""
    return is_narrow(in_channels, num_group) and grouped_conv_form() == 'plain-layout'


@functools.lru_cache(maxsize=None)
def onednn_uses_avx512():
    """Whether MXNet's oneDNN runs its AVX-512 kernels in this process: the CPU's flags in
    ``/proc/cpuinfo`` and oneDNN's ``DNNL_MAX_CPU_ISA`` (:func:`avx512_kernels`)."""
    try:
        with open('/proc/cpuinfo', encoding='utf-8', errors='replace') as cpuinfo:
            flags = next((line.partition(':')[2].split() for line in cpuinfo
                          if line.startswith('flags')), None)
    except OSError:
        flags = None
    return avx512_kernels(flags, os.environ.get('DNNL_MAX_CPU_ISA', ''))


def avx512_kernels(cpu_flags, max_isa=''):
    """Whether oneDNN picks AVX-512 kernels on a CPU with ``cpu_flags`` (None: unknown, taken as
    yes, the form this project was tuned on) when ``DNNL_MAX_CPU_ISA`` is ``max_isa`` ('' or 'ALL':
    no limit; a name below AVX512_* keeps oneDNN to narrower kernels)."""
    isa = max_isa.strip().upper()
    if isa not in ('', 'ALL') and not isa.startswith('AVX512'):
        return False
    return cpu_flags is None or AVX512_FLAG in cpu_flags


def is_narrow(in_channels, num_group):
    """A grouped convolution whose groups are not a multiple of CHANNEL_BLOCK channels wide."""
    return num_group > 1 and (in_channels // num_group) % CHANNEL_BLOCK != 0


def plain_layout(data, name):
    """``data`` itself, with both it and its gradient in MXNet's plain NCHW layout.

    A full-range ``slice_axis``: it and its backward run outside oneDNN, so MXNet hands them plain
    arrays and they return plain arrays (a ``reshape``'s backward keeps oneDNN's layout)."""
    return mx.sym.slice_axis(data=data, axis=1, begin=0, end=None, name=name)


def between_plain_layouts(make, data, name):
    """``make(data)`` (the operator ``name``) with its input and output :func:`plain_layout`."""
    return plain_layout(make(plain_layout(data, name + '_plain_input')), name + '_plain_output')


def fast_squeeze(data, name):
    """(``data`` reshaped to itself, its ``AdaptiveAvgPooling2D`` squeeze) of the 'fast' SE block
    ``name``: the reshape converts oneDNN's blocked layout to the plain one once for all readers."""
    data = mx.sym.reshape(data=data, shape=(0, 0, 0, 0), name=name + '_se_input')
    return data, mx.sym.contrib.AdaptiveAvgPooling2D(data=data, output_size=1,
                                                     name=name + '_squeeze')


def fast_se_scale(data, gate, name):
    """``data`` (N, C, H, W) times ``gate`` (N, C) per channel, as ``elemwise_mul`` with the gate
    spread over the pixels by ``batch_dot(gate (N, C, 1), ones (N, 1, H*W))``."""
    gate = mx.sym.reshape(data=gate, shape=(0, 0, 1), name=name + '_se_gate')
    # Ones of shape (N, 1, H*W), taken from the data so that any batch and image size works; no
    # gradient flows back through them.
    pixels = mx.sym.BlockGrad(data=data, name=name + '_se_pixels_nograd')
    pixels = mx.sym.slice_axis(data=pixels, axis=1, begin=0, end=1, name=name + '_se_pixels')
    pixels = mx.sym.reshape(data=pixels, shape=(0, 1, -1), name=name + '_se_pixels_flat')
    ones = mx.sym.ones_like(data=pixels, name=name + '_se_ones')
    gate = mx.sym.batch_dot(gate, ones, name=name + '_se_gate_map')
    gate = mx.sym.reshape_like(gate, data, name=name + '_se_gate_like')
    return mx.sym.elemwise_mul(data, gate, name=name + '_se_scale')


def _symbol_creator(op):
    """The ``mx.sym`` function that makes operator ``op`` (as a graph's JSON names it)."""
    if op.startswith('_contrib_'):
        return getattr(mx.sym.contrib, op[len('_contrib_'):])
    return getattr(mx.sym, op, None) or getattr(mx.sym._internal, op)  # pylint: disable=W0212


def _recreate(op, name, attrs, other_inputs, *data):
    """Operator ``op`` named ``name`` with the JSON attributes ``attrs`` (``__x__`` ones as the
    node's attributes) on ``data`` (its first input, if it has any) and ``other_inputs``."""
    user = {key: value for key, value in attrs.items() if key.startswith('__')}
    params = {key: value for key, value in attrs.items() if key not in user}
    return _symbol_creator(op)(*data, *other_inputs, name=name, attr=user or None, **params)


def _textbook_se_blocks(nodes):
    """(index of each SE ``broadcast_mul`` -> index of its squeeze, squeeze index -> block name)
    of the textbook SE blocks among the JSON ``nodes``."""
    squeezes = {tuple(node['inputs'][0][:2]): index for index, node in enumerate(nodes)
                if node['op'] == 'Pooling' and node['name'].endswith('_squeeze')
                and node.get('attrs', {}).get('global_pool') == 'True'
                and node.get('attrs', {}).get('pool_type') == 'avg'}
    scales = {index: squeezes[tuple(node['inputs'][0][:2])] for index, node in enumerate(nodes)
              if node['op'] == 'broadcast_mul' and tuple(node['inputs'][0][:2]) in squeezes}
    blocks = {squeeze: nodes[squeeze]['name'][:-len('_squeeze')] for squeeze in scales.values()}
    return scales, blocks


def training_graph(symbol, data_shape):
    """The training form of a textbook-graph ``symbol`` (a checkpoint's, see :func:`textbook_graph`).

    Returns the same graph with every SE block in the 'fast' formulation and, in the
    'plain-layout' form (:func:`grouped_conv_form`: by default on CPUs where oneDNN runs AVX-512
    kernels), every narrow grouped convolution between plain-layout boundaries: node for node what
    the builders make by default, the same parameters and the same function. An SE block is a
    global average ``Pooling`` named ``{block}_squeeze`` and a ``broadcast_mul`` of that pooling's
    input (this project's graphs and the original repository's released model); anything else is
    kept as it is, so a graph already in the training form comes back unchanged. ``data_shape`` is
    the shape of the input ``data``, from which the convolutions' input channels are inferred.
    """
    graph = json.loads(symbol.tojson())
    nodes = graph['nodes']
    arg_shapes, _, _ = symbol.infer_shape_partial(data=tuple(data_shape))
    shapes = dict(zip(symbol.list_arguments(), arg_shapes))
    scales, blocks = _textbook_se_blocks(nodes)
    outputs, se_inputs = [], {}
    for index, node in enumerate(nodes):
        name, op, attrs = node['name'], node['op'], dict(node.get('attrs', {}))
        inputs = [outputs[source][output] for source, output, _ in node['inputs']]
        if op == 'null':
            out = mx.sym.var(name)
            if attrs:
                out._set_attr(**attrs)  # pylint: disable=protected-access
        elif index in blocks:
            se_inputs[index], out = fast_squeeze(inputs[0], blocks[index])
        elif index in scales:
            gate_node = nodes[node['inputs'][1][0]]
            gate = (outputs[gate_node['inputs'][0][0]][gate_node['inputs'][0][1]]
                    if gate_node['op'] == 'Reshape' else
                    mx.sym.reshape(data=inputs[1], shape=(0, 0), name=name + '_gate'))
            out = fast_se_scale(se_inputs[scales[index]], gate, blocks[scales[index]])
        else:
            groups = int(attrs.get('num_group', 1))
            weight = (shapes.get(nodes[node['inputs'][1][0]]['name']) if op == 'Convolution'
                      and len(node['inputs']) > 1 else None) or (0, 0)
            bounded = op == 'Convolution' and needs_plain_layout(groups * weight[1], groups)
            make = functools.partial(_recreate, op, name, attrs, inputs[1:])
            if bounded and inputs[0].name != name + '_plain_input':
                out = between_plain_layouts(make, inputs[0], name)
            else:
                out = make(*inputs[:1])
        outputs.append(out)
    heads = [outputs[source][output] for source, output, _ in graph['heads']]
    return heads[0] if len(heads) == 1 else mx.sym.Group(heads)
