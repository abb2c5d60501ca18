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


COLOR_NET = """
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 10 dim: 3 dim: 8 dim: 8 } } }
layer { name: "fc" type: "InnerProduct" bottom: "data" top: "fc"
  inner_product_param { num_output: 4 weight_filler { type: "gaussian" std: 0.1 } } }
layer { name: "prob" type: "Softmax" bottom: "fc" top: "prob" }
"""


def test_classify_tool_scores_a_folder_of_images(tmp_path):
    import subprocess
    from PIL import Image
    (tmp_path / "net.prototxt").write_text(COLOR_NET)
    weights = str(tmp_path / "w.caffemodel")
    caffe.Net(str(tmp_path / "net.prototxt"), caffe.TEST).save(weights)
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.RandomState(7)
    for i in range(3):
        Image.fromarray((rng.rand(12, 12, 3) * 255).astype(np.uint8)).save(images / ("%d.png" % i))
    tool = SOURCE / "tools" / "classify.py"
    out = tmp_path / "scores.npy"
    result = subprocess.run(["/usr/bin/python3", str(tool), str(images), str(out),
                             "--model_def", str(tmp_path / "net.prototxt"),
                             "--pretrained_model", weights, "--images_dim", "10,10",
                             "--ext", "png"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    scores = np.load(out)
    assert scores.shape == (3, 4)
    np.testing.assert_allclose(scores.sum(axis=1), 1, rtol=1e-5)
    bad = subprocess.run(["/usr/bin/python3", str(tool), str(images), str(out),
                          "--model_def", str(tmp_path / "missing.prototxt"),
                          "--pretrained_model", weights], capture_output=True, text=True)
    assert bad.returncode != 0 and "missing.prototxt" in bad.stderr
