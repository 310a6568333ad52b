"""The original's released SE-ResNeXt-50 loads into this repository's symbol, as docs/python.md shows.

There is no released params file here, so one is made with the released symbol JSON's argument and
auxiliary names and shapes (random values, saved under MXNet's ``arg:``/``aux:`` names); the
docs/python.md's snippet must load it strictly and compute what the released graph computes.
"""
import os
import re
import shutil

import mxnet as mx
import numpy as np

from tests.conftest import ROOT

RELEASED_EPOCH = 125


def readme_snippet():
    with open(os.path.join(ROOT, 'docs', 'python.md')) as stream:
        text = stream.read()
    section = text.split('**Released-model compatibility**', 1)[1]
    return re.search(r'```python\n(.*?)```', section, re.S).group(1)


def released_params(symbol, rng):
    """Random arrays with the shapes of ``symbol``'s arguments and auxiliary states, by name."""
    arg_shapes, _, aux_shapes = symbol.infer_shape(data=(1, 3, 224, 224))
    arg_params = {}
    for name, shape in zip(symbol.list_arguments(), arg_shapes):
        if name in ('data', 'softmax_label'):
            continue
        if name.endswith('_weight'):
            value = rng.standard_normal(shape) / np.sqrt(np.prod(shape[1:]))
        elif name.endswith('_gamma'):
            value = rng.uniform(0.5, 1.0, shape)
        else:
            value = rng.uniform(-0.1, 0.1, shape)
        arg_params[name] = mx.nd.array(value)
    aux_params = {name: mx.nd.array(rng.uniform(0.5, 1.5, shape) if name.endswith('_var')
                                    else rng.uniform(-0.1, 0.1, shape))
                  for name, shape in zip(symbol.list_auxiliary_states(), aux_shapes)}
    return arg_params, aux_params


def test_released_params_load_into_our_symbol(tmp_path, released_json):
    released = mx.sym.load(released_json)
    arg_params, aux_params = released_params(released, np.random.default_rng(0))
    prefix = str(tmp_path / 'se-resnext-imagenet-50-0')
    shutil.copy(released_json, prefix + '-symbol.json')
    saved = {'arg:' + name: value for name, value in arg_params.items()}
    saved.update({'aux:' + name: value for name, value in aux_params.items()})
    mx.nd.save('%s-%04d.params' % (prefix, RELEASED_EPOCH), saved)

    code = readme_snippet()
    prefix_line = re.compile(r'^prefix, epoch = .*$', re.M)
    assert prefix_line.search(code)
    code = prefix_line.sub('prefix, epoch = %r, %d' % (prefix, RELEASED_EPOCH), code)
    namespace = {}
    exec(compile(code, 'docs/python.md', 'exec'), namespace)  # set_params is strict: no missing, no extra
    mod = namespace['mod']

    images = np.random.default_rng(1).uniform(0, 255, (1, 3, 224, 224)).astype(np.float32)
    mod.forward(mx.io.DataBatch([mx.nd.array(images)]), is_train=False)
    ours = mod.get_outputs()[0].asnumpy()

    original = mx.mod.Module(released, label_names=None)
    original.bind(data_shapes=[('data', images.shape)], for_training=False)
    original.set_params(arg_params, aux_params, allow_missing=True, allow_extra=False)
    original.forward(mx.io.DataBatch([mx.nd.array(images)]), is_train=False)
    theirs = original.get_outputs()[0].asnumpy()
    assert ours.shape == (1, 1000)
    assert theirs.max() < 0.99  # the comparison is not between two saturated outputs
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-6)
