"""The one metric set of training, validation, scoring and fine-tuning, and whole-set evaluation."""
import subprocess
import sys

import mxnet as mx
import numpy as np
import pytest

from senet import metrics
from tests.conftest import ROOT


def softmax(logits):
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


def expected_values(probabilities, labels):
    order = np.argsort(-probabilities, axis=1)
    values = {'accuracy': float(np.mean(order[:, 0] == labels))}
    if probabilities.shape[1] > 5:
        values['top_k_accuracy_5'] = float(np.mean([label in row[:5]
                                                    for row, label in zip(order, labels)]))
    values['cross-entropy'] = float(-np.mean(np.log(probabilities[np.arange(len(labels)),
                                                                  labels])))
    return values


@pytest.mark.parametrize('num_classes,names', [
    (5, ['accuracy', 'cross-entropy']),
    (6, ['accuracy', 'top_k_accuracy_5', 'cross-entropy']),
    (10, ['accuracy', 'top_k_accuracy_5', 'cross-entropy']),
    (1000, ['accuracy', 'top_k_accuracy_5', 'cross-entropy']),
])
def test_top5_is_reported_above_5_classes(num_classes, names):
    rng = np.random.RandomState(num_classes)
    labels = rng.randint(0, num_classes, 64)
    logits = rng.normal(0, 1, (64, num_classes))
    logits[np.arange(64), labels] += rng.uniform(1, 5, 64)  # a classifier that is often right
    probabilities = softmax(logits)
    metric = metrics.make_metric(num_classes)
    metric.update([mx.nd.array(labels)], [mx.nd.array(probabilities)])
    values = dict(metric.get_name_value())
    assert list(values) == names
    for name, value in expected_values(probabilities, labels).items():
        assert values[name] == pytest.approx(value, rel=1e-5), name
    if num_classes > 5:
        assert values['accuracy'] < values['top_k_accuracy_5']


def test_evaluate_counts_every_example_once():
    """10 examples in batches of 4: the last batch is padded with 2 wrapped-around rows, which
    must not count."""
    rng = np.random.RandomState(0)
    images, labels = rng.normal(0, 1, (10, 4)), rng.randint(0, 6, 10)
    weight, bias = rng.normal(0, 1, (6, 4)), rng.normal(0, 1, 6)
    net = mx.sym.SoftmaxOutput(mx.sym.FullyConnected(mx.sym.Variable('data'), num_hidden=6,
                                                     name='fc1'), name='softmax')
    mod = mx.mod.Module(net, context=mx.cpu())
    mod.bind(data_shapes=[('data', (4, 4))], label_shapes=[('softmax_label', (4,))],
             for_training=False)
    mod.set_params({'fc1_weight': mx.nd.array(weight), 'fc1_bias': mx.nd.array(bias)}, {})

    def make_iter():
        return mx.io.NDArrayIter(images, labels, batch_size=4, last_batch_handle='pad')

    assert [batch.pad for batch in make_iter()] == [0, 0, 2]
    values, count = metrics.evaluate(mod, make_iter, 6)
    assert count == 10
    expected = expected_values(softmax(images @ weight.T + bias), labels)
    assert values == pytest.approx(expected, rel=1e-5)


def test_inference_does_not_import_the_trainer():
    code = ('import sys; import senet.inference; '
            'assert "senet.fit" not in sys.modules and "senet.arguments" not in sys.modules')
    result = subprocess.run([sys.executable, '-c', code], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
