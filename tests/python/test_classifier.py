"""engine.Classifier: the center crop's scores are the net's own; ten crops average."""
import os
from pathlib import Path

import numpy as np

import engine as caffe

SOURCE = Path(os.environ.get("ENGINE_SOURCE_DIR", Path(__file__).parents[2]))
LENET = str(SOURCE.parent / "shared" / "caffe-models" / "examples" / "mnist" / "lenet.prototxt")


def test_classifier_scores_images(tmp_path):
    caffe.set_mode_cpu()
    caffe.set_random_seed(3)
    weights = str(tmp_path / "lenet.caffemodel")
    caffe.Net(LENET, caffe.TEST).save(weights)
    classifier = caffe.Classifier(LENET, weights, image_dims=(32, 32), raw_scale=255)
    rng = np.random.RandomState(4)
    images = [rng.rand(32, 32, 1).astype(np.float32) for _ in range(3)]

    center = classifier.predict(images, oversample=False)
    assert center.shape == (3, 10)
    np.testing.assert_allclose(center.sum(axis=1), 1, rtol=1e-5)
    # The same as running the net on the preprocessed 28 x 28 center crops by hand.
    net = caffe.Net(LENET, weights, caffe.TEST)
    crops = np.stack([255 * image[2:30, 2:30, 0][None] for image in images])
    by_hand = net.forward_all(data=crops)["prob"]
    np.testing.assert_allclose(center, by_hand, rtol=1e-4, atol=1e-6)

    ten = classifier.predict(images, oversample=True)
    assert ten.shape == (3, 10)
    np.testing.assert_allclose(ten.sum(axis=1), 1, rtol=1e-5)
    assert not np.allclose(ten, center)
