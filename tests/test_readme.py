"""The README's inference snippet, executed on a model this repository trained."""
import os
import re

import cv2
import numpy as np

import data
from tests.conftest import ROOT, SLICE_TRAIN


def readme_block(after_heading):
    with open(os.path.join(ROOT, 'README.md')) as stream:
        text = stream.read()
    section = text.split(after_heading, 1)[1]
    return re.search(r'```python\n(.*?)```', section, re.S).group(1)


def test_inference_snippet_classifies_real_images(trained_slice_model, tmp_path):
    code = readme_block('## Inference')
    prefix_line = re.compile(r"^prefix, epoch = .*$", re.M)
    assert prefix_line.search(code)
    code = prefix_line.sub('prefix, epoch = %r, 3' % str(trained_slice_model / 'model' / 'net'),
                           code)
    namespace = {}
    exec(compile(code, 'README.md', 'exec'), namespace)

    images, labels = data.load_fashion_mnist('train')
    images, labels = data.to_rgb32(images[SLICE_TRAIN:SLICE_TRAIN + 40]), labels[SLICE_TRAIN:]
    correct = 0
    for i, image in enumerate(images):
        path = str(tmp_path / ('%d.png' % i))
        cv2.imwrite(path, image[:, :, ::-1])
        label, prob = namespace['classify'](path)
        assert 0.0 < prob <= 1.0
        correct += label == labels[i]
    assert correct / len(images) > 0.4  # chance is 0.1; images unseen in training
    assert np.isfinite(prob)
