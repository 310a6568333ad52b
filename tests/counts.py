"""The pinned parameter counts of every network, in one table that every test reads.

A count is the number of trainable values for 1000 classes, excluding ``bn_data_*`` (the input
BatchNorm that peer models do not have): ``tests.conftest.parameter_count``.
"""

PARAMETER_COUNTS = {
    # timm seresnext50_32x4d / seresnext101_32x4d, Cadene's se_resnext*_32x4d.
    ('se-resnext', 50, ''): 27559896,
    ('se-resnext', 101, ''): 48955416,
    # timm seresnet18 / seresnet34: basic units have no groups, so they equal SE-ResNet.
    ('se-resnext', 18, ''): 11779624,
    ('se-resnext', 34, ''): 21960416,
    # timm legacy_seresnext26_32x4d (timm's weights in Cadene's SENet layout), 16.79 M in its
    # results-imagenet.csv.
    ('se-resnext', 26, ''): 16790280,
    # The original SENet.mxnet's released SE-ResNeXt-50 (64 groups): its symbol JSON has these
    # shapes (test_se_resnext.test_released_model_names_and_shapes).
    ('se-resnext', 50, 'num_group=64'): 26852568,
    # No peer implementation: regression pins of this builder, unchanged since it was written.
    ('se-resnext', 152, ''): 66580440,
    ('se-resnext', 200, ''): 71635416,
    ('se-resnext', 269, ''): 113753112,
    # timm seresnet18/34/50/101/152.
    ('se-resnet', 18, 'version=1'): 11779624,
    ('se-resnet', 34, 'version=1'): 21960416,
    ('se-resnet', 50, 'version=1'): 28088024,
    ('se-resnet', 101, 'version=1'): 49326872,
    ('se-resnet', 152, 'version=1'): 66821848,
    # No peer implementation (timm's seresnet200d has a deep stem): regression pin.
    ('se-resnet', 200, 'version=1'): 71835864,
    # Pre-activation: no peer implementation with SE biases and this shortcut rule; regression pins,
    # checked by hand against version 1, which has 2 x (C_last - C_stem + projected channels - 2048)
    # more BatchNorm parameters: 1,664 at depth 18, 7,552 at depth 50.
    ('se-resnet', 18, 'version=2'): 11777960,
    ('se-resnet', 34, 'version=2'): 21958752,
    ('se-resnet', 50, 'version=2'): 28080472,
    ('se-resnet', 101, 'version=2'): 49319320,
    ('se-resnet', 152, 'version=2'): 66814296,
    ('se-resnet', 200, 'version=2'): 71828312,
    # Cadene's senet154 (a port of the authors' Caffe model) and timm's legacy_senet154.
    ('senet-154', None, ''): 115088984,
    # timm's inception_v4 (42,679,816) and inception_resnet_v2 (55,843,464) backbones plus the SE
    # blocks of SE_PARAMETER_COUNTS.
    ('se-inception-v4', None, ''): 44569928,
    ('se-inception-resnet-v2', None, ''): 64387444,
}
"""(network, depth or None for a fixed-depth network, extra builder arguments as 'key=value,...';
'' = the defaults) -> trainable parameters."""

SE_PARAMETER_COUNTS = {
    ('se-inception-v4', None, ''): 1890112,
    ('se-inception-resnet-v2', None, ''): 8543980,
}
"""Of a network's PARAMETER_COUNTS, those of its SE blocks (``{block}_excitation{1,2}``), where the
rest is a peer backbone's count."""
