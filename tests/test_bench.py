"""benchmarks/bench.py: the FLOP count behind its GFLOP/s column and its table; benchmarks/recipe.py;
benchmarks/averaging.py."""
import json
import os
import re

import mxnet as mx
import numpy as np
import pytest

import data
from benchmarks import averaging, bench, recipe
from senet import arguments, inference
from symbols import cpu_fast


def test_flops_of_se_resnext_50_32x4d():
    """4.23 G multiply-adds per 224x224 image, the figure the ResNeXt paper gives (4.2 G)."""
    for impl in bench.GRAPHS:
        sym = bench.build_symbol(bench.IMAGENET, impl)
        assert bench.conv_fc_flops(sym, (1, 3, 224, 224)) == 8465989632


def test_the_other_grouped_convolution_row_is_the_form_auto_does_not_pick():
    other, label = bench.other_conv_form()
    picked = cpu_fast.grouped_conv_form()
    assert bench.GRAPHS['fast'] == ('fast', 'auto')
    assert bench.GRAPHS[other] == ('fast', 'grouped' if picked == 'plain-layout' else 'plain-layout')
    assert label == ('without' if picked == 'plain-layout' else 'with') + ' layout boundaries'


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


def test_child_measures_with_its_own_thread_count_and_contexts():
    """The split-context rows run in a child interpreter (OMP_NUM_THREADS is read at import)."""
    train, infer = bench.time_in_child(1, 'make-train', bench.QUICK_RUN, contexts=2, batch=4)
    assert train > 0 and infer > 0


def test_scaling_table_has_a_line_per_setup():
    results = dict(threads=2, mxnet='1.9.1', train=[], infer=[],
                   peak=dict(shape=[16, 128, 28, 28], forward_gflops=300.0, train_gflops=200.0),
                   scaling=[dict(batch=b, setup=s, train_img_per_sec=10.0 * b,
                                 infer_img_per_sec=100.0 * b)
                            for s in ('1 thread', '2 threads') for b in (8, 16)])
    lines = bench.format_table(results).splitlines()
    assert any('batch 8' in line and 'batch 16' in line for line in lines)
    one = [line for line in lines if line.startswith('1 thread')]
    assert len(one) == 1 and '80.0 /   800' in one[0] and '160.0 /  1600' in one[0]


def test_quantize_feeds_the_trainers_inputs():
    """At 28 the original images (the 28x28 center crop of the records), at 32 the padded ones."""
    import data
    from benchmarks import quantize
    images, labels = data.load_fashion_mnist('val')
    small, small_labels = quantize.fashion_mnist('val', 8, side=28)
    padded, _ = quantize.fashion_mnist('val', 8)
    assert small.shape == (8, 3, 28, 28) and padded.shape == (8, 3, 32, 32)
    assert (small == images[:8, None]).all() and (small_labels == labels[:8]).all()
    assert (padded[:, :, 2:30, 2:30] == small).all() and padded[:, :, :2].max() == 0


def test_pytorch_ratios_table():
    """Each of this project's SE-ResNeXt-50 rows against every PyTorch row of its kind."""
    ours = [('train', dict(network='ours', img_per_sec=6.0)),
            ('infer', dict(network='ours int8', img_per_sec=60.0))]
    theirs = [('train', 'fp32', dict(img_per_sec=3.0)), ('infer', 'fp32', dict(img_per_sec=20.0)),
              ('train', 'bf16', dict(img_per_sec=12.0)), ('infer', 'bf16', dict(img_per_sec=40.0))]
    versus = bench.versus(ours, theirs)
    assert versus == [dict(kind='train', network='ours', img_per_sec=6.0,
                           ratios=dict(fp32=2.0, bf16=0.5)),
                      dict(kind='infer', network='ours int8', img_per_sec=60.0,
                           ratios=dict(fp32=3.0, bf16=1.5))]
    results = dict(threads=2, mxnet='1.9.1', train=[], infer=[], versus_pytorch=versus,
                   peak=dict(shape=[16, 128, 28, 28], forward_gflops=300.0, train_gflops=200.0),
                   pytorch=dict(version='2.13.0', model='seresnext50_32x4d', threads=2))
    lines = bench.format_table(results).splitlines()
    assert any('PyTorch 2.13.0 timm seresnext50_32x4d' in line and
               'bf16 = bfloat16 autocast, channels-last' in line for line in lines)
    int8 = [line for line in lines if line.startswith('infer') and 'ours int8' in line]
    assert len(int8) == 1 and int8[0].split()[-2:] == ['3.00x', '1.50x']


def test_int8_row_times_the_quantized_graph():
    """The INT8 row quantizes the trained parameters as quantize.py does and binds the result."""
    config = dict(bench.CONFIGS['make-train'], batch=4)
    train, infer, int8 = bench.time_module(config, bench.QUICK_RUN, int8=True)
    assert train > 0 and infer > 0 and int8 > 0


def test_recipe_bench_reads_the_last_runs_final_top1(tmp_path):
    log = tmp_path / 'net.log'
    fresh = "arguments: {'lr': 0.1, 'retrain': False}\n"
    log.write_text(fresh + 'Epoch[0] Validation-accuracy=0.500000\n' + fresh +
                   'Epoch[0] Validation-accuracy=0.800000\nEpoch[0] Validation-ema-accuracy=0.810000\n'
                   'Epoch[1] Validation-accuracy=0.900000\nEpoch[1] Validation-ema-accuracy=0.905000\n')
    assert recipe.final_top1(str(log), ema=False) == 0.9
    assert recipe.final_top1(str(log), ema=True) == 0.905


def test_recipe_bench_tricks_are_trainer_flags():
    """Each run of benchmarks/recipe.py is a valid trainer command, and changes one recipe field."""
    with open(os.path.join(recipe.ROOT, 'Makefile')) as stream:
        makefile = stream.read().replace('\\\n', ' ')
    assert recipe.MAKE_TRAIN.split() == re.search(r'TRAIN_ARGS \?= (.*)', makefile).group(1).split()

    def resolved(extra):
        parser = arguments.build_parser(network='se-resnext')
        return vars(arguments.resolve_args(parser.parse_args(recipe.MAKE_TRAIN.split() + extra)))
    plain = resolved([])
    for name, flags in recipe.TRICKS.items():
        changed = {key for key, value in resolved(flags).items() if plain[key] != value}
        assert len(changed) == (0 if name == 'plain' else 1), (name, changed)


def _tiny_checkpoints(prefix, epochs=3):
    """A conv + BatchNorm + fc1 graph saved with different random parameters at each epoch."""
    images = mx.sym.Variable('data')
    net = mx.sym.Convolution(images, num_filter=4, kernel=(3, 3), stride=(4, 4), name='conv0')
    net = mx.sym.BatchNorm(net, name='bn0')
    net = mx.sym.FullyConnected(mx.sym.flatten(net), num_hidden=10, name='fc1')
    net = mx.sym.SoftmaxOutput(net, name='softmax')
    shapes, _, aux_shapes = net.infer_shape(data=(1, 3, 32, 32))
    saved = []
    for epoch in range(1, epochs + 1):
        rng = np.random.RandomState(epoch)
        args = {name: mx.nd.array(rng.normal(size=shape)) for name, shape in
                zip(net.list_arguments(), shapes) if name not in ('data', 'softmax_label')}
        aux = {name: mx.nd.array(rng.uniform(0.5, 1.5, size=shape))
               for name, shape in zip(net.list_auxiliary_states(), aux_shapes)}
        mx.model.save_checkpoint(prefix, epoch, net, args, aux)
        saved.append((args, aux))
    return saved


def test_averaging_means_the_last_epochs_and_mirrors_the_images(tmp_path, fmnist_slice):
    """benchmarks/averaging.py: the mean of the last epochs' parameters (BatchNorm statistics too),
    mirrored views, and top-1."""
    prefix = str(tmp_path / 'tiny')
    saved = _tiny_checkpoints(prefix)
    _, arg_params, aux_params = averaging.average_params(prefix, 3, 2)
    for name in ('conv0_weight', 'fc1_bias'):
        expected = (saved[1][0][name].asnumpy() + saved[2][0][name].asnumpy()) / 2
        np.testing.assert_allclose(arg_params[name].asnumpy(), expected, rtol=1e-6)
    expected = (saved[1][1]['bn0_moving_var'].asnumpy() + saved[2][1]['bn0_moving_var'].asnumpy()) / 2
    np.testing.assert_allclose(aux_params['bn0_moving_var'].asnumpy(), expected, rtol=1e-6)
    with pytest.raises(inference.InferenceError, match='--last 4'):
        averaging.average_params(prefix, 3, 4)

    loaded = inference.load_checkpoint(prefix, 3)
    probs, labels = averaging.predict(*loaded, fmnist_slice['val'], (3, 32, 32), batch_size=100)
    assert probs.shape == (256, 10) and labels.shape == (256,)   # the padded last batch dropped
    mirrored, _ = averaging.predict(*loaded, fmnist_slice['val'], (3, 32, 32), batch_size=100,
                                    flip=True)
    assert not np.allclose(probs, mirrored)
    batch = next(iter(data.make_rec_iter(fmnist_slice['val'], (3, 32, 32), 100)))
    mod = inference.inference_module(*loaded, (100, 3, 32, 32))
    by_hand = mx.nd.array(batch.data[0].asnumpy()[:, :, :, ::-1].copy())
    mod.forward(mx.io.DataBatch([by_hand]), is_train=False)
    np.testing.assert_allclose(mod.get_outputs()[0].asnumpy(), mirrored[:100], rtol=1e-4, atol=1e-6)
    assert averaging.top1(np.eye(10)[labels], labels) == 1.0
    assert averaging.top1(np.eye(10)[(labels + 1) % 10], labels) == 0.0
    wrong = np.eye(10)[np.where(labels == 3, 4, labels)]
    assert averaging.errors_by_class(wrong, labels) == [int((labels == 3).sum()) if k == 3 else 0
                                                        for k in range(10)]


def test_layouts_benchmark_binds_and_times_both_grouped_convolution_forms(monkeypatch):
    """benchmarks/layouts.py's parts: the trainer's SE-ResNeXt-11 (8 groups of 4, 8 and 16
    channels) bound with plain-layout boundaries around its two narrow grouped convolutions, without
    any, and as the textbook graph, and all timed."""
    # benchmarks.precision sets OMP_NUM_THREADS from sys.argv when first imported, unless it is set.
    monkeypatch.setenv('OMP_NUM_THREADS', os.environ.get('OMP_NUM_THREADS', '1'))
    from benchmarks import layouts, precision
    argv = ['--data-type', 'fashion-mnist', '--depth', '11', '--num-group', '8', '--batch-size', '8']
    bound = {name: precision.bind(argv, se_form=bench.GRAPHS[name][0],
                                  conv_form=bench.GRAPHS[name][1]) for name in layouts.FORMS}

    def boundaries(mod):
        suffix = '_plain_input_output'
        return sorted(name[:-len(suffix)] for name in mod.symbol.get_internals().list_outputs()
                      if name.endswith(suffix))

    def se_scales(mod):
        return sorted({node['op'] for node in json.loads(mod.symbol.tojson())['nodes']}
                      & {'broadcast_mul', 'elemwise_mul'})
    assert boundaries(bound['fast-plain-layout'][0]) == ['stage1_unit1_conv2', 'stage2_unit1_conv2']
    assert boundaries(bound['fast-grouped'][0]) == boundaries(bound['broadcast'][0]) == []
    assert se_scales(bound['fast-plain-layout'][0]) == se_scales(bound['fast-grouped'][0]) == [
        'elemwise_mul']
    assert se_scales(bound['broadcast'][0]) == ['broadcast_mul']
    speed = precision.time_alternately(bound, steps=2, rounds=1)
    assert sorted(speed) == sorted(layouts.FORMS) and min(speed.values()) > 0
