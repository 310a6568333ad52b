"""benchmarks/bench.py: the FLOP count behind its GFLOP/s column, and its table."""
import mxnet as mx

from benchmarks import bench


def test_flops_of_se_resnext_50_32x4d():
    """4.23 G multiply-adds per 224x224 image, the figure the ResNeXt paper gives (4.2 G)."""
    for impl in ('broadcast', 'fast'):
        sym = bench.build_symbol(bench.IMAGENET, impl)
        assert bench.conv_fc_flops(sym, (1, 3, 224, 224)) == 8465989632


def test_flops_count_groups_strides_and_batch():
    data = mx.sym.Variable('data')
    conv = mx.sym.Convolution(data=data, num_filter=32, kernel=(3, 3), stride=(2, 2), pad=(1, 1),
                              num_group=4, no_bias=True, name='c')
    fc = mx.sym.FullyConnected(data=conv, num_hidden=10, name='f')
    # conv: 2 x (32 x 8 x 8 outputs) x (16 / 4 inputs x 9 taps); fc: 2 x 2048 x 10; batch 3.
    assert bench.conv_fc_flops(fc, (3, 16, 16, 16)) == 3 * (2 * 32 * 64 * 4 * 9 + 2 * 2048 * 10)


def test_table_lists_every_row_with_its_ratio():
    item = dict(network='net', batch=16, input='224x224', img_per_sec=2.0, gflops=50.0,
                fraction_of_peak=0.25)
    results = dict(threads=2, mxnet='1.9.1',
                   peak=dict(shape=[16, 128, 28, 28], forward_gflops=300.0, train_gflops=200.0),
                   train=[item, dict(item, network='peer', speedup_vs_peer=1.5)], infer=[item])
    table = bench.format_table(results)
    assert 'forward 300 GFLOP/s' in table
    assert '1.50x' in table
    assert table.count('25.0%') == 3
