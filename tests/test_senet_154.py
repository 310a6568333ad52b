"""SENet-154's layout (counts, shapes and gradients are in test_networks) and how it is trained."""
import json

import pytest

import symbols
from senet import arguments, network
from tests.conftest import run_script

SHAPE = (3, 224, 224)


@pytest.fixture(scope='module')
def senet():
    sym = symbols.get_symbol('senet-154', 1000)
    args, _, _ = sym.infer_shape(data=(1,) + SHAPE)
    nodes = {node['name']: node for node in json.loads(sym.tojson())['nodes']}
    return sym, dict(zip(sym.list_arguments(), args)), nodes


def test_stem_is_three_convolutions_then_max_pool(senet):
    sym, shapes, nodes = senet
    assert shapes['conv0_1_weight'] == (64, 3, 3, 3)
    assert nodes['conv0_1']['attrs']['stride'] == '(2, 2)'
    assert shapes['conv0_2_weight'] == (64, 64, 3, 3)
    assert shapes['conv0_3_weight'] == (128, 64, 3, 3)
    for name in ('bn0_1', 'relu0_1', 'bn0_3', 'relu0_3'):
        assert name in nodes
    pool = sym.get_internals()['pool0_output']
    assert pool.infer_shape(data=(1,) + SHAPE)[1] == [(1, 128, 56, 56)]


def test_units_and_shortcuts(senet):
    _, shapes, nodes = senet
    for stage, units in enumerate((3, 8, 36, 3), start=1):
        assert 'stage%d_unit%d_conv1_weight' % (stage, units) in shapes
        assert 'stage%d_unit%d_conv1_weight' % (stage, units + 1) not in shapes
    assert shapes['stage1_unit1_conv1_weight'] == (128, 128, 1, 1)
    assert shapes['stage1_unit1_conv2_weight'] == (256, 2, 3, 3)  # 64 groups, widening
    assert shapes['stage1_unit1_conv3_weight'] == (256, 256, 1, 1)
    assert shapes['stage4_unit1_conv2_weight'] == (2048, 16, 3, 3)
    assert nodes['stage4_unit1_conv2']['attrs']['num_group'] == '64'
    assert nodes['stage4_unit1_conv2']['attrs']['stride'] == '(2, 2)'
    assert shapes['stage1_unit1_sc_weight'] == (256, 128, 1, 1)
    for stage, channels in ((2, 512), (3, 1024), (4, 2048)):
        assert shapes['stage%d_unit1_sc_weight' % stage] == (channels, channels // 2, 3, 3)
        assert nodes['stage%d_unit1_sc' % stage]['attrs']['pad'] == '(1, 1)'
    assert 'stage1_unit2_sc_weight' not in shapes
    assert shapes['stage3_unit1_excitation1_weight'] == (64, 1024)


def test_dropout_before_fc1(senet):
    _, _, nodes = senet
    assert nodes['dp1']['attrs']['p'] == '0.2'
    without = json.loads(symbols.get_symbol('senet-154', 10, drop_out=0.0).tojson())
    assert 'dp1' not in [node['name'] for node in without['nodes']]


def test_too_small_input_is_refused():
    with pytest.raises(ValueError, match='at least 32x32'):
        symbols.get_symbol('senet-154', 10, image_shape='3,28,28')


def test_trained_through_the_se_resnext_trainer():
    """``train_se_resnext_w_d.py --network senet-154``: no depth, groups or version are passed."""
    parser = arguments.build_parser(network='se-resnext')
    args = arguments.resolve_args(parser.parse_args(['--network', 'senet-154', '--drop-out', '0.2',
                                               '--num-classes', '10']))
    assert args.model_prefix.endswith('senet-154-imagenet')
    nodes = [node['name'] for node in json.loads(network.build_symbol(args).tojson())['nodes']]
    assert 'dp1' in nodes and 'conv0_3' in nodes and 'stage3_unit36_excitation2' in nodes


@pytest.mark.parametrize('depth', [None, 154])
def test_builder_takes_its_own_depth(depth, senet):
    sym, _, _ = senet
    assert symbols.get_symbol('senet-154', 1000, num_layers=depth).tojson() == sym.tojson()


def test_trainer_refuses_another_depth_in_one_line(tmp_path):
    """``--depth 50 --network senet-154`` stops before training with one line naming 154, and
    leaves no log behind."""
    log = tmp_path / 'log' / 'net.log'
    result = run_script('train_se_resnext_w_d.py', [
        '--network', 'senet-154', '--depth', '50', '--num-classes', '10', '--benchmark',
        '--model-prefix', str(tmp_path / 'model' / 'net'), '--log-file', str(log)], timeout=300)
    errors = [line for line in result.stderr.splitlines() if 'error' in line]
    assert result.returncode == 2 and 'Traceback' not in result.stderr, result.stderr
    assert len(errors) == 1 and 'depth 50' in errors[0] and 'fixed depth 154' in errors[0], errors
    assert not log.exists()
