"""engine.Detector: each window's scores are the net's on that window, cropped and resized."""

import numpy as np
from PIL import Image

import engine as caffe
from engine import io


NET = """
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 4 dim: 3 dim: 8 dim: 8 } } }
layer { name: "fc" type: "InnerProduct" bottom: "data" top: "fc"
  inner_product_param { num_output: 3 weight_filler { type: "gaussian" std: 0.1 } } }
layer { name: "prob" type: "Softmax" bottom: "fc" top: "prob" }
"""


def test_detector_scores_windows(tmp_path):
    caffe.set_mode_cpu()
    (tmp_path / "net.prototxt").write_text(NET)
    weights = str(tmp_path / "w.caffemodel")
    caffe.Net(str(tmp_path / "net.prototxt"), caffe.TEST).save(weights)
    rng = np.random.RandomState(6)
    pixels = (rng.rand(20, 24, 3) * 255).astype(np.uint8)
    image_file = str(tmp_path / "image.png")
    Image.fromarray(pixels).save(image_file)
    windows = [(0, 0, 8, 8), (4, 6, 20, 24), (2, 2, 10, 18)]

    detector = caffe.Detector(str(tmp_path / "net.prototxt"), weights, raw_scale=255)
    detections = detector.detect_windows([(image_file, windows)])
    assert [d["window"] for d in detections] == windows
    image = io.load_image(image_file)
    net = caffe.Net(str(tmp_path / "net.prototxt"), weights, caffe.TEST)
    for detection in detections:
        y0, x0, y1, x1 = detection["window"]
        crop = io.resize_image(image[y0:y1, x0:x1], (8, 8))
        expected = net.forward(data=np.repeat(255 * crop.transpose(2, 0, 1)[None], 4, 0))["prob"][0]
        np.testing.assert_allclose(detection["prediction"], expected, rtol=1e-4, atol=1e-6)

    padded = caffe.Detector(str(tmp_path / "net.prototxt"), weights, raw_scale=255,
                            mean=np.array([100.0, 110.0, 120.0]), context_pad=2)
    assert padded.crop(image, (0, 0, 8, 8)).shape == (8, 8, 3)
    np.testing.assert_allclose(padded.crop_mean, np.array([100, 110, 120]) / 255.0)


def test_selective_search_windows_go_through_detect_windows(tmp_path, monkeypatch):
    import sys
    import types
    caffe.set_mode_cpu()
    (tmp_path / "net.prototxt").write_text(NET)
    weights = str(tmp_path / "w.caffemodel")
    caffe.Net(str(tmp_path / "net.prototxt"), caffe.TEST).save(weights)
    image_file = str(tmp_path / "image.png")
    Image.fromarray(np.full((16, 16, 3), 90, np.uint8)).save(image_file)
    calls = []

    def get_windows(fnames, cmd):
        calls.append((list(fnames), cmd))
        return [np.array([[0, 0, 8, 8], [2, 4, 16, 16]])]

    detector = caffe.Detector(str(tmp_path / "net.prototxt"), weights, raw_scale=255)
    monkeypatch.setitem(sys.modules, "selective_search_ijcv_with_python", None)
    try:
        detector.detect_selective_search([image_file])
        assert False, "expected ImportError"
    except ImportError as error:
        assert "selective_search_ijcv_with_python" in str(error)
    monkeypatch.setitem(sys.modules, "selective_search_ijcv_with_python",
                        types.SimpleNamespace(get_windows=get_windows))
    detections = detector.detect_selective_search([image_file])
    assert calls == [([image_file], "selective_search_rcnn")]
    expected = detector.detect_windows([(image_file, [[0, 0, 8, 8], [2, 4, 16, 16]])])
    assert len(detections) == 2
    for got, want in zip(detections, expected):
        np.testing.assert_allclose(got["prediction"], want["prediction"])
