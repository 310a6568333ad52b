"""INT8 post-training quantization of a classifier with MXNet's oneDNN backend.

Used by ``quantize.py`` (a model directory in, an INT8 model directory out) and by ``make bench``
(its INT8 row). The float32 classifier ``softmax(fc1)`` (:func:`senet.inference.probabilities`) goes
through ``mx.contrib.quantization.quantize_model_mkldnn``: oneDNN fuses convolution, BatchNorm, ReLU
and the residual sum into one operator per convolution, quantizes those and the fully-connected
layers to INT8, and keeps the rest (SE scale, softmax) in float32. Calibration runs the float32 graph
on sample images and stores each quantized layer's output range in the graph:

* ``naive``: the minimum and maximum seen (the default: on the shipped Fashion-MNIST models, 64 to
  5,000 calibration images keep test top-1 within 0.25 points of float32);
* ``entropy``: the range whose INT8 histogram is closest (KL divergence) to the float32 one, which
  clips outliers; it lost 1.3 and 0.2 points on the shipped models (docs/performance.md).

The result is an ordinary checkpoint: ``mx.model.load_checkpoint`` reads it and ``Module`` binds
it on the CPU. Its graph already ends in ``softmax``, and ``fc1`` is folded into a oneDNN operator.
"""
import logging

import numpy as np

from senet import inference

CALIB_MODES = ('naive', 'entropy')
"""Calibration modes of ``mx.contrib.quantization`` offered here (see the module docstring)."""

QUANTIZED_DTYPE = 'auto'
"""oneDNN picks uint8 for layers whose calibrated output is non-negative (after ReLU), else int8."""

LOG = logging.getLogger(__name__)


def calibration_images(rec_path, image_shape, count, batch_size):
    """The first ``count`` images of an indexed ``.rec`` (fewer if it holds fewer) as an
    (N, C, H, W) float32 array of raw pixels, read as score.py reads them (center crop to
    ``image_shape``)."""
    import mxnet as mx

    import data
    batches, total = [], 0
    records = data.count_records(rec_path)
    if records == 0:
        raise inference.InferenceError('%s holds no images to calibrate on' % rec_path)
    # ImageRecordIter refuses a batch larger than the file.
    batch_size = min(batch_size, count, records or batch_size)
    try:
        for batch in data.make_rec_iter(rec_path, image_shape, batch_size):
            images = batch.data[0].asnumpy()[:batch_size - (batch.pad or 0)]
            batches.append(images[:count - total])
            total += len(batches[-1])
            if total >= count:
                break
    except mx.base.MXNetError as err:
        raise inference.InferenceError('cannot read %s as %s images: %s' % (
            rec_path, 'x'.join(map(str, image_shape)), inference.first_line(err))) from None
    if not total:
        raise inference.InferenceError('%s holds no images to calibrate on' % rec_path)
    return np.concatenate(batches)


def quantize(symbol, arg_params, aux_params, images, batch_size, calib_mode='naive'):
    """(INT8 symbol, arg_params, aux_params) of the classifier of ``symbol``, calibrated on
    ``images`` ((N, C, H, W) raw pixels) in batches of ``batch_size``.

    Only the parameters the INT8 graph takes are returned, so that ``Module.set_params`` can
    insist on every one of them and no other.
    """
    import mxnet as mx
    from mxnet.contrib import quantization
    if calib_mode not in CALIB_MODES:
        raise ValueError('unknown calibration mode %r; choose one of: %s'
                         % (calib_mode, ', '.join(CALIB_MODES)))
    classifier = inference.probabilities(symbol)
    batch_size = min(batch_size, len(images))
    # 'pad' repeats the first images to fill the last batch: they change no minimum or maximum.
    calib = mx.io.NDArrayIter(data=images, batch_size=batch_size, data_name='data',
                              last_batch_handle='pad')
    LOG.info('calibrating (%s) on %d images', calib_mode, len(images))
    qsym, qarg, qaux = quantization.quantize_model_mkldnn(
        classifier, arg_params, aux_params, data_names=('data',), label_names=(), ctx=mx.cpu(),
        calib_mode=calib_mode, calib_data=calib, num_calib_examples=len(images),
        quantized_dtype=QUANTIZED_DTYPE)
    arguments, auxiliaries = set(qsym.list_arguments()), set(qsym.list_auxiliary_states())
    return (qsym, {name: value for name, value in qarg.items() if name in arguments},
            {name: value for name, value in qaux.items() if name in auxiliaries})


def quantized_operators(symbol):
    """Sorted names of the INT8 and oneDNN-fused operators in ``symbol``'s graph."""
    import json
    nodes = json.loads(symbol.tojson())['nodes']
    return sorted({node['op'] for node in nodes
                   if 'quantiz' in node['op'] or node['op'].startswith('_sg_mkldnn')})
