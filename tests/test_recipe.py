"""The training recipe of issue 18: each flag's effect, on small real networks and data.

Label smoothing, mixup, CutMix and random erasing (senet/recipe.py), --zero-gamma, MXNet's weight
decay rule, --ema and the best checkpoint, --dtype float16/bfloat16 with --loss-scale,
--data-nthreads, --test-io and --aug-level 4.
"""
import json
import re
import types

import mxnet as mx
import numpy as np
import pytest

import data
import symbols
import train_se_resnext_w_d
from senet import arguments, checkpoint, fit, metrics, network, recipe, threads
from senet.ema import ModelEma

SMALL = ['--image-shape', '3,28,28', '--depth', '14']
"""SE-ResNeXt-14 at 28x28: three stages of two basic SE units, 16/32/64 channels."""


def resolve(argv):
    parser = arguments.build_parser(network='se-resnext')
    return arguments.resolve_args(parser.parse_args(['--data-type', 'fashion-mnist'] + argv))


def slice_run(fmnist_slice, directory, epochs, extra=()):
    return ['--data-type', 'custom', '--data-train', fmnist_slice['train'],
            '--data-val', fmnist_slice['val'], '--num-classes', '10', '--batch-size', '64',
            '--num-epochs', str(epochs), '--model-prefix', str(directory / 'model' / 'net'),
            '--log-file', str(directory / 'log' / 'net.log')] + SMALL + list(extra)


def bound_module(argv=(), batch_size=8):
    """A fresh SE-ResNeXt-14 bound as fit binds it, and its arguments and plan."""
    args = resolve(['--benchmark', '--batch-size', str(batch_size), '--kv-store', 'local'] + SMALL +
                   list(argv))
    train_symbol, _ = fit.build_network(args)
    plan = fit.make_plan(args, mx.kv.create('local'), [mx.cpu()])
    mod = fit.bind(args, plan, train_symbol, fit.FRESH_START,
                   soft_labels=fit.BatchRecipe.from_args(args).soft_labels)
    return mod, args, plan


def random_batch(rng, batch_size=8, num_classes=10, side=28):
    images = mx.nd.array(rng.uniform(0, 255, (batch_size, 3, side, side)))
    labels = mx.nd.array(rng.randint(0, num_classes, batch_size))
    return mx.io.DataBatch(data=[images], label=[labels], pad=0)


# --- label smoothing and loss scaling ---

@pytest.mark.parametrize('loss_scale', [1.0, 64.0])
def test_smoothed_loss_is_the_formula(loss_scale):
    """The trained head back-propagates the gradient of L = -sum_k t_k log softmax(z)_k with
    t = 1 - eps + eps/K on the label and eps/K elsewhere, times --loss-scale: checked against
    finite differences of that formula on a fixed batch of logits."""
    eps, num_classes = 0.1, 10
    targets = recipe.smooth_targets([3, 0, 9], num_classes, eps)
    assert targets[0, 3] == pytest.approx(1 - eps + eps / num_classes)
    assert targets[0, 0] == pytest.approx(eps / num_classes) and np.allclose(targets.sum(1), 1)

    head = mx.sym.SoftmaxOutput(mx.sym.Variable('data'), name='softmax')
    head = network.with_precision(head, 'float32', loss_scale)
    logits = np.random.RandomState(0).normal(0, 2, (3, num_classes))
    exe = head.simple_bind(mx.cpu(), data=logits.shape, softmax_label=targets.shape)
    exe.forward(is_train=True, data=mx.nd.array(logits), softmax_label=mx.nd.array(targets))
    exe.backward()

    def loss(z):
        z = z - z.max(axis=1, keepdims=True)
        return -(targets * (z - np.log(np.exp(z).sum(axis=1, keepdims=True)))).sum()

    numeric = np.zeros_like(logits)
    for index in np.ndindex(*logits.shape):
        step = np.zeros_like(logits)
        step[index] = 1e-4
        numeric[index] = (loss(logits + step) - loss(logits - step)) / 2e-4
    assert np.allclose(exe.grad_dict['data'].asnumpy(), loss_scale * numeric, atol=1e-3 * loss_scale)


# --- mixup, CutMix, random erasing ---

def test_mixup_mixes_each_image_and_label_with_the_reversed_batch():
    rng = np.random.RandomState(5)
    batch = random_batch(rng)
    images, labels = batch.data[0].asnumpy(), batch.label[0].asnumpy()
    mixed, targets, mix = recipe.mix_batch(batch.data[0], labels, 10, np.random.RandomState(1),
                                           mixup=0.4, eps=0.1)
    lam = np.random.RandomState(1).beta(0.4, 0.4)
    assert mix.kind == 'mixup' and mix.lam == pytest.approx(lam)
    assert np.allclose(mixed.asnumpy(), lam * images + (1 - lam) * images[::-1], atol=1e-3)
    own = recipe.smooth_targets(labels, 10, 0.1)
    assert np.allclose(targets, lam * own + (1 - lam) * own[::-1])
    assert np.allclose(targets.sum(axis=1), 1)


def test_cutmix_pastes_one_box_and_mixes_labels_by_its_area():
    rng = np.random.RandomState(6)
    batch = random_batch(rng)
    images, labels = batch.data[0].asnumpy(), batch.label[0].asnumpy()
    kinds = set()
    for seed in range(20):
        mixed, targets, mix = recipe.mix_batch(batch.data[0], labels, 10,
                                               np.random.RandomState(seed), mixup=0.2, cutmix=1.0)
        kinds.add(mix.kind)
        if mix.kind != 'cutmix':
            continue
        top, left, bottom, right = mix.box
        inside = np.zeros(images.shape, dtype=bool)
        inside[:, :, top:bottom, left:right] = True
        mixed = mixed.asnumpy()
        assert np.array_equal(mixed[inside], images[::-1][inside])
        assert np.array_equal(mixed[~inside], images[~inside])
        assert mix.lam == pytest.approx(1 - (bottom - top) * (right - left) / 28.0 ** 2)
        onehot = np.eye(10)[labels.astype(int)]
        assert np.allclose(targets, mix.lam * onehot + (1 - mix.lam) * onehot[::-1])
    assert kinds == {'mixup', 'cutmix'}  # with both on, each batch uses one of them


def test_batch_recipe_stops_mixing_at_mixup_off_epoch_and_is_reproducible():
    batch = random_batch(np.random.RandomState(7))
    plan = recipe.BatchRecipe(10, label_smoothing=0.2, mixup=1.0, mixup_off_epoch=3, seed=4)
    first, mix = plan.apply(batch, 2, 5)
    again, _ = plan.apply(batch, 2, 5)
    assert mix.kind == 'mixup' and first.label[0].shape == (8, 10)
    assert np.array_equal(first.data[0].asnumpy(), again.data[0].asnumpy())
    late, mix = plan.apply(batch, 3, 5)
    assert mix.kind is None
    assert np.array_equal(late.data[0].asnumpy(), batch.data[0].asnumpy())
    assert np.allclose(late.label[0].asnumpy(),
                       recipe.smooth_targets(batch.label[0].asnumpy(), 10, 0.2))


@pytest.mark.parametrize('probability', [0.0, 0.3, 1.0])
def test_random_erasing_blanks_one_box_per_erased_image_at_the_rate_asked(probability):
    count = 400
    images = mx.nd.array(np.random.RandomState(8).uniform(0, 255, (count, 3, 28, 28)))
    erased, boxes = recipe.random_erase(images, np.random.RandomState(9), probability)
    changed = np.abs(erased.asnumpy() - images.asnumpy()).max(axis=1) > 0
    for image, box in enumerate(boxes):
        if box is None:
            assert not changed[image].any()
            continue
        top, left, bottom, right = box
        expected = np.zeros((28, 28), dtype=bool)
        expected[top:bottom, left:right] = True
        assert np.array_equal(changed[image], expected)
        assert 0.02 * 28 * 28 * 0.8 <= expected.sum() <= 28 * 28 / 3.0 * 1.2
    erased_count = sum(box is not None for box in boxes)
    spread = 4 * np.sqrt(count * probability * (1 - probability))
    assert abs(erased_count - count * probability) <= spread + 2


# --- zero gamma and weight decay ---

def test_zero_gamma_sets_the_last_branch_batchnorms_to_zero_and_only_those():
    mod, _, _ = bound_module(['--zero-gamma'])
    arg_params, _ = checkpoint.current_params(mod)
    zeroed = {'stage%d_unit%d_bn2_gamma' % (stage, unit) for stage in (1, 2, 3) for unit in (1, 2)}
    for name, value in arg_params.items():
        if name.endswith('_gamma'):
            assert np.all(value.asnumpy() == (0 if name in zeroed else 1)), name
    plain, _, _ = bound_module()
    assert all(np.all(value.asnumpy() == 1) for name, value in
               checkpoint.current_params(plain)[0].items() if name.endswith('_gamma'))


def test_zero_gamma_names_of_each_family():
    def names(network_name, **kwargs):
        with symbols.textbook_graph():
            return network.zero_gamma_names(symbols.get_symbol(network_name, 10, **kwargs))
    bottleneck = names('se-resnext', num_layers=50)
    assert len(bottleneck) == 16 and all(n.endswith('_bn3_gamma') for n in bottleneck)
    # SE-ResNet-20 for small images: pre-activation bottleneck units, two per stage.
    assert names('se-resnet', num_layers=20, image_shape=(3, 32, 32), version=2) == sorted(
        'stage%d_unit%d_bn3_gamma' % (s, u) for s in (1, 2, 3) for u in (1, 2))
    assert names('se-inception-resnet-v2', image_shape=(3, 75, 75)) == []
    args = arguments.resolve_args(arguments.build_parser(network='se-inception-v4').parse_args(
        ['--data-type', 'fashion-mnist', '--zero-gamma', '--benchmark']))
    with pytest.raises(arguments.UsageError, match='--zero-gamma applies to residual units'):
        fit.build_network(args)


@pytest.mark.parametrize('no_wd', [False, True])
def test_weight_decay_reaches_weights_and_gammas_only(no_wd):
    """MXNet's rule (Optimizer.set_wd_mult): decay on names ending in _weight or _gamma, none on
    _bias and _beta; --no-wd takes the gammas out too. One SGD step with zero gradients moves
    exactly the decayed parameters, each by -lr * wd * value."""
    mod, args, plan = bound_module(['--optimizer', 'sgd', '--mom', '0', '--wd', '0.01',
                                    '--lr', '0.5', '--lr-step-epochs', '100'] +
                                   (['--no-wd'] if no_wd else []))
    arg_params, aux_params = checkpoint.current_params(mod)
    rng = np.random.RandomState(0)
    start = {name: rng.uniform(0.5, 1.5, value.shape) for name, value in arg_params.items()}
    mod.set_params({name: mx.nd.array(value) for name, value in start.items()}, aux_params)
    fit.init_optimizer(mod, args, plan, fit.FRESH_START)
    for grads in mod._exec_group.grad_arrays:
        for grad in grads:
            grad[:] = 0
    mod.update()
    decayed = set()
    for name, value in checkpoint.current_params(mod)[0].items():
        factor = value.asnumpy() / start[name]
        if not np.allclose(factor, 1):
            assert np.allclose(factor, 1 - 0.5 * 0.01, atol=1e-6), name
            decayed.add(name)
    suffixes = ('_weight',) if no_wd else ('_weight', '_gamma')
    assert decayed == {n for n in start if n.endswith(suffixes)}
    assert {'fc1_weight', 'stage1_unit1_excitation1_weight', 'conv0_weight'} <= decayed
    assert ('stage1_unit1_bn1_gamma' in decayed) != no_wd
    assert not {'fc1_bias', 'stage1_unit1_excitation1_bias', 'stage1_unit1_bn1_beta'} & decayed
    with symbols.textbook_graph():
        assert fit.build_network(args)[1].tojson() == network.build_symbol(args).tojson()


# --- EMA and the best checkpoint ---

def test_ema_is_the_formula_after_k_updates():
    mod, args, plan = bound_module(['--lr', '0.05'])
    fit.init_optimizer(mod, args, plan, fit.FRESH_START)
    arg_params, aux_params = checkpoint.current_params(mod)
    expected = {name: value.asnumpy().copy() for name, value in {**arg_params,
                                                                  **aux_params}.items()}
    ema = ModelEma(0.8, arg_params, aux_params)
    rng = np.random.RandomState(3)
    for _ in range(3):
        mod.forward_backward(random_batch(rng))
        mod.update()
        ema.update(mod)
        current = checkpoint.current_params(mod)
        for name, value in {**current[0], **current[1]}.items():
            expected[name] = 0.8 * expected[name] + 0.2 * value.asnumpy()
    ema_all = {**ema.arg_params, **ema.aux_params}
    moved = 0
    for name, value in expected.items():
        assert np.allclose(ema_all[name].asnumpy(), value, rtol=1e-5, atol=1e-6), name
        moved += not np.allclose(value, arg_params.get(name, aux_params.get(name)).asnumpy())
    assert moved > 50 and 'bn0_moving_mean' in ema_all


def validation(log, name):
    return [float(v) for v in re.findall(r'Epoch\[\d+\] Validation-%s=([0-9.]+)' % name, log)]


def test_recipe_run_resumes_its_ema_and_keeps_the_best_epoch(fmnist_slice, tmp_path):
    """Every batch flag together, 2 epochs straight == 1 + resumed 1 in raw and EMA weights; the
    best checkpoint is the best EMA epoch's and survives --keep-last 1."""
    recipe_flags = ['--label-smoothing', '0.1', '--mixup', '0.2', '--cutmix', '1.0',
                    '--mixup-off-epoch', '2', '--random-erasing', '0.25', '--zero-gamma',
                    '--ema', '0.7', '--save-best', '--num-examples', '256', '--lr', '0.05',
                    '--aug-level', '0']
    straight, split = tmp_path / 'straight', tmp_path / 'split'
    assert train_se_resnext_w_d.main(slice_run(fmnist_slice, straight, 2, recipe_flags +
                                               ['--keep-last', '1'])) == 0
    assert train_se_resnext_w_d.main(slice_run(fmnist_slice, split, 1, recipe_flags)) == 0
    assert train_se_resnext_w_d.main(slice_run(fmnist_slice, split, 2, recipe_flags +
                                               ['--model-load-epoch', '1', '--retrain'])) == 0
    log = (split / 'log' / 'net.log').read_text()
    assert 'restarts from the resumed weights' not in log

    def params(directory, prefix, epoch):
        _, arg_params, aux_params = mx.model.load_checkpoint(
            str(directory / 'model' / prefix), epoch)
        return {**arg_params, **aux_params}

    for prefix in ('net', 'net-ema'):
        a, b = params(straight, prefix, 2), params(split, prefix, 2)
        assert set(a) == set(b)
        for name in a:
            assert np.linalg.norm(a[name].asnumpy() - b[name].asnumpy()) <= \
                1e-4 * np.linalg.norm(a[name].asnumpy()) + 1e-6, (prefix, name)
    ema_2, raw_2 = params(split, 'net-ema', 2), params(split, 'net', 2)
    assert not np.allclose(ema_2['fc1_weight'].asnumpy(), raw_2['fc1_weight'].asnumpy())
    # The logged EMA accuracy is that of the saved average, loaded as any checkpoint is.
    saved_symbol, arg_params, aux_params = mx.model.load_checkpoint(
        str(split / 'model' / 'net-ema'), 2)
    scorer = mx.mod.Module(saved_symbol, context=mx.cpu())
    scorer.bind(data_shapes=[('data', (64, 3, 28, 28))], label_shapes=[('softmax_label', (64,))],
                for_training=False)
    scorer.set_params(arg_params, aux_params)
    values, _ = metrics.evaluate(scorer, lambda: data.make_rec_iter(
        fmnist_slice['val'], (3, 28, 28), 64), 10)
    assert values['accuracy'] == pytest.approx(validation(log, 'ema-accuracy')[-1], abs=1e-6)

    for directory in (straight, split):
        accuracies = validation((directory / 'log' / 'net.log').read_text(), 'ema-accuracy')
        best = json.loads((directory / 'model' / 'net-best.json').read_text())
        assert len(accuracies) == 2 and best['weights'] == 'ema'
        assert best['epoch'] == int(np.argmax(accuracies)) + 1
        assert best['accuracy'] == pytest.approx(max(accuracies), abs=1e-6)
        saved = params(directory, 'net-best', best['epoch'])
        if directory == split:
            ema = params(split, 'net-ema', best['epoch'])
            assert all(np.array_equal(saved[n].asnumpy(), ema[n].asnumpy()) for n in ema)
    names = sorted(p.name for p in (straight / 'model').iterdir())
    assert 'net-0001.params' not in names and 'net-ema-0001.params' not in names
    assert {'net-0002.params', 'net-ema-0002.params', 'net-ema-symbol.json',
            'net-best-symbol.json'} <= set(names)


# --- precision ---

def test_float16_graph_casts_the_input_and_keeps_the_softmax_in_float32():
    args = resolve(['--gpus', '0', '--dtype', 'float16', '--loss-scale', '128', '--batch-size',
                    '32', '--benchmark', '--kv-store', 'local'] + SMALL)
    train_symbol, saved_symbol = network.training_symbols(args)
    arg_types, out_types, aux_types = train_symbol.infer_type(data='float32')
    types_by_name = dict(zip(train_symbol.list_arguments(), map(np.dtype, arg_types)))
    for name, dtype in types_by_name.items():
        if name.endswith(('_gamma', '_beta')) or name in ('data', 'softmax_label'):
            assert dtype == np.float32, name
        else:
            assert dtype == np.float16, name
    assert out_types == [np.float32] and set(map(np.dtype, aux_types)) == {np.dtype(np.float32)}
    nodes = {node['name']: node for node in json.loads(train_symbol.tojson())['nodes']}
    assert nodes['data_float16']['op'] == 'Cast' and nodes['data_float16']['attrs'] == {
        'dtype': 'float16'}
    assert nodes['fc1_float32']['attrs'] == {'dtype': 'float32'}
    assert nodes['softmax']['inputs'][0][0] == list(nodes).index('fc1_float32')
    assert float(nodes['softmax']['attrs']['grad_scale']) == 128
    assert train_symbol.list_arguments() == saved_symbol.list_arguments()
    with symbols.textbook_graph():
        assert saved_symbol.tojson() == network.build_symbol(args).tojson()
    plan = fit.make_plan(args, types.SimpleNamespace(type='device', num_workers=1, rank=0),
                         [mx.cpu()])
    settings = fit.optimizer_params(args, plan, None, 0)
    assert settings['multi_precision'] is True
    assert settings['rescale_grad'] == pytest.approx(1.0 / (128 * 32))
    usable = 'bfloat16' if network.bfloat16_runs_on_cpu() else 'float32'
    with pytest.raises(arguments.UsageError, match=re.escape(
            '--dtype float16 needs --gpus: MXNet 1.9.1 has no float16 convolution on the CPU '
            '(use --dtype %s there)' % usable)):
        resolve(['--dtype', 'float16'])


def test_bfloat16_trains_end_to_end_or_is_refused_in_one_line(fmnist_slice, tmp_path, capsys):
    """bfloat16 trains where MXNet's oneDNN has bfloat16 convolutions (AVX-512 CPUs); elsewhere the
    trainer refuses it in one line, and the probe behind that says what MXNet really does."""
    args = resolve(['--benchmark'] + SMALL)
    args.dtype = 'bfloat16'  # what resolve() gives where the CPU has it
    train_symbol, _ = network.training_symbols(args)
    internals = train_symbol.get_internals()
    assert internals['stage1_unit1_conv1_output'].infer_type(data='float32')[1][0].names == \
        ('bfloat16',)
    arg_types, out_types, _ = train_symbol.infer_type(data='float32')
    assert set(map(np.dtype, arg_types)) == {np.dtype(np.float32)} and out_types == [np.float32]

    argv = slice_run(fmnist_slice, tmp_path, 3, ['--dtype', 'bfloat16', '--lr', '0.05',
                                                  '--aug-level', '0'])
    if not network.bfloat16_runs_on_cpu():
        executor = train_symbol.simple_bind(mx.cpu(), data=(8, 3, 28, 28), softmax_label=(8,))
        with pytest.raises(mx.base.MXNetError, match='primitive descriptor'):
            executor.forward(is_train=True)
            executor.backward()
            mx.nd.waitall()
        assert train_se_resnext_w_d.main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.endswith('--dtype bfloat16 needs a CPU with AVX-512: MXNet 1.9.1\'s oneDNN has '
                            'no bfloat16 convolution for this one (use --dtype float32)')
        assert len(err.splitlines()) == 1 and not (tmp_path / 'model').exists()
        return
    assert train_se_resnext_w_d.main(argv) == 0
    log = (tmp_path / 'log' / 'net.log').read_text()
    assert max(validation(log, 'accuracy')) > 0.4, log  # chance is 0.1
    losses = [float(v) for v in re.findall(r'Train-cross-entropy=([0-9.]+)', log)]
    assert losses[-1] < losses[0]
    saved = mx.nd.load(str(tmp_path / 'model' / 'net-0003.params'))
    assert {value.dtype for value in saved.values()} == {np.float32}


# --- data ---

def test_data_nthreads_reaches_the_iterators_and_test_io_reads_without_training(
        fmnist_slice, tmp_path, capfd):
    default = resolve(SMALL)
    assert default.data_nthreads == threads.usable_cores()
    args = resolve(['--data-train', fmnist_slice['train'], '--data-val', fmnist_slice['val'],
                    '--data-nthreads', '3'] + SMALL)
    plan = fit.make_plan(args, types.SimpleNamespace(type='device', num_workers=1, rank=0),
                         [mx.cpu()])
    assert fit.train_iter(args, plan, 0).params['preprocess_threads'] == 3
    assert fit.val_iter(args, plan).params['preprocess_threads'] == 3
    assert data.decoding_threads(3, processors=2) == 1
    assert data.decoding_threads(3, processors=16) == 3 and data.decoding_threads(9, 16) == 7

    assert train_se_resnext_w_d.main(slice_run(fmnist_slice, tmp_path, 1, [
        '--test-io', '--data-nthreads', '2', '--random-erasing', '0.5', '--frequent', '4'])) == 0
    log = (tmp_path / 'log' / 'net.log').read_text()
    speed = re.search(r'test-io: 512 images of .* ([0-9.]+) img/s with --data-nthreads 2', log)
    assert speed and float(speed.group(1)) > 0, log
    assert 'use %d threads for decoding' % data.decoding_threads(2) in capfd.readouterr().err
    assert not (tmp_path / 'model').exists() and 'Train-accuracy' not in log


def test_aug_level_4_is_inception_style_and_validation_is_not_augmented(fmnist_slice):
    params = data.rec_iter_params(fmnist_slice['train'], (3, 24, 24), 64, train=True,
                                  data_type='custom', aug_level=4)
    assert params['random_resized_crop'] and (params['min_random_area'],
                                              params['max_random_area']) == (0.08, 1.0)
    assert (params['min_aspect_ratio'], params['max_aspect_ratio']) == pytest.approx((0.75, 4 / 3))
    assert (params['brightness'], params['contrast'], params['saturation'],
            params['pca_noise']) == (0.4, 0.4, 0.4, 0.1)
    assert data.augmentation('imagenet', 4) == data.INCEPTION_AUGMENTATION
    val = data.rec_iter_params(fmnist_slice['val'], (3, 24, 24), 64, aug_level=4)
    assert not set(val) & set(data.INCEPTION_AUGMENTATION)

    def first_batch(level):
        return next(iter(data.make_rec_iter(fmnist_slice['train'], (3, 24, 24), 64, train=True,
                                            data_type='custom', aug_level=level))).data[0]
    plain, augmented = first_batch(0).asnumpy(), first_batch(4).asnumpy()
    assert augmented.shape == plain.shape == (64, 3, 24, 24)
    assert np.abs(augmented - plain).mean() > 5


def test_save_best_needs_validation_data(fmnist_slice, tmp_path, capsys):
    argv = slice_run(fmnist_slice, tmp_path, 1, ['--save-best'])
    del argv[argv.index('--data-val'):argv.index('--data-val') + 2]
    assert train_se_resnext_w_d.main(argv) == 2
    assert '--save-best needs validation data (--data-val)' in capsys.readouterr().err
    assert not (tmp_path / 'model').exists()


@pytest.mark.parametrize('argv,fragment', [
    (['--label-smoothing', '1'], '--label-smoothing must be in [0, 1), got 1'),
    (['--random-erasing', '1.5'], '--random-erasing must be in [0, 1], got 1.5'),
    (['--ema', '-0.1'], '--ema must be in [0, 1), got -0.1'),
    (['--mixup', '-1'], '--mixup must be 0 (off) or a positive Beta parameter'),
    (['--cutmix', '-0.5'], '--cutmix must be 0 (off) or a positive Beta parameter'),
    (['--mixup-off-epoch', '3'], '--mixup-off-epoch 3 needs --mixup or --cutmix'),
    (['--mixup', '0.2', '--mixup-off-epoch', '-1'], '--mixup-off-epoch must be 0 (never) or a '
                                                    'positive epoch, got -1'),
    (['--loss-scale', '0'], '--loss-scale must be positive, got 0'),
    (['--data-nthreads', '0'], '--data-nthreads must be in [1, processors], got 0'),
    (['--test-io', '--benchmark'], '--test-io reads the training data and --benchmark trains'),
])
def test_recipe_flags_out_of_range_are_one_line_usage_errors(argv, fragment):
    with pytest.raises(arguments.UsageError, match=re.escape(fragment)):
        resolve(argv)
