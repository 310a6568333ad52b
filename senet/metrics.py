"""Classification metrics, and evaluation of a bound module over a whole data set.

One metric set serves training (the batch and epoch lines), validation, fine-tuning and
``score.py``, so a number in a training log and one from scoring the checkpoint mean the same thing.
"""
TOP_K = 5
"""The k of top-k accuracy, reported when there are more than k classes."""


def make_metric(num_classes):
    """The metrics of a classifier with ``num_classes`` classes.

    Top-1 accuracy, top-5 accuracy and cross-entropy. Top-5 accuracy is meaningful whenever there
    are more than 5 classes (with 5 or fewer every label is among the top 5 and it is always 1),
    so it is left out only then: 10-class Fashion-MNIST reports it, as ImageNet does.

    Parameters
    ----------
    num_classes : int
        Outputs of the classifier.

    Returns
    -------
    mx.metric.CompositeEvalMetric
        Named ``accuracy``, ``top_k_accuracy_5`` (more than 5 classes) and ``cross-entropy``.
    """
    import mxnet as mx
    metrics = [mx.metric.Accuracy()]
    if num_classes > TOP_K:
        metrics.append(mx.metric.TopKAccuracy(top_k=TOP_K))
    metrics.append(mx.metric.CrossEntropy())
    return mx.metric.CompositeEvalMetric(metrics)


def evaluate(mod, make_iter, num_classes):
    """Metrics of ``mod`` over every record of a fresh iterator, padding excluded.

    A fresh iterator reports ``pad`` correctly (MXNet 1.9.1's ImageRecordIter does not after a
    reset), so the wrapped-around rows of the last batch are dropped and each example counts
    exactly once.

    Parameters
    ----------
    mod : mx.mod.Module
        Bound with the iterator's batch shape; run forward in inference mode.
    make_iter : callable
        Returns a new iterator over the data set.
    num_classes : int
        Outputs of the classifier (chooses the metrics, :func:`make_metric`).

    Returns
    -------
    tuple
        ({metric name: value}, number of examples evaluated).
    """
    import mxnet as mx
    metric = make_metric(num_classes)
    count = 0
    for batch in make_iter():
        # Without its labels: a training module may be bound for (N, K) target distributions.
        mod.forward(mx.io.DataBatch(data=batch.data, pad=batch.pad), is_train=False)
        keep = batch.data[0].shape[0] - batch.pad
        outputs = [out[:keep] for out in mod.get_outputs()]
        metric.update([batch.label[0][:keep]], outputs)
        count += keep
    mx.nd.waitall()
    return dict(metric.get_name_value()), count


def format_metrics(metric):
    """``name=value`` of each metric, tab-separated (the training log's batch lines)."""
    return '\t'.join('%s=%f' % (name, value) for name, value in metric.get_name_value())
