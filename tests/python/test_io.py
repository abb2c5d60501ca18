"""engine.io: Transformer, images, ten-crop oversampling, blob and datum conversions."""
import io as stdio

import numpy as np
import pytest
from PIL import Image

from engine import io as eio
from engine.proto import caffe_pb2


# --- Transformer ------------------------------------------------------------------------------

def make_transformer(shape=(1, 3, 4, 5)):
    t = eio.Transformer({'data': shape})
    t.set_transpose('data', (2, 0, 1))
    t.set_channel_swap('data', (2, 1, 0))
    t.set_raw_scale('data', 255)
    t.set_mean('data', np.array([10.0, 20.0, 30.0]))
    t.set_input_scale('data', 0.5)
    return t


def test_preprocess_hand_worked():
    im = np.zeros((4, 5, 3), dtype=np.float32)
    im[1, 2] = [0.2, 0.4, 0.6]   # R, G, B of one pixel
    im[3, 0] = [1.0, 0.0, 0.5]
    out = make_transformer().preprocess('data', im)
    assert out.shape == (3, 4, 5)
    assert out.dtype == np.float32
    # channel c of the output is ((BGR[c] * 255) - mean[c]) * 0.5
    np.testing.assert_allclose(out[:, 1, 2], [(0.6 * 255 - 10) * 0.5,    # 71.5
                                              (0.4 * 255 - 20) * 0.5,    # 41
                                              (0.2 * 255 - 30) * 0.5],   # 10.5
                               rtol=1e-6)
    np.testing.assert_allclose(out[:, 3, 0], [(127.5 - 10) * 0.5, -10.0, (255 - 30) * 0.5],
                               rtol=1e-6)
    # an untouched pixel is just -mean * 0.5
    np.testing.assert_allclose(out[:, 0, 0], [-5.0, -10.0, -15.0])


def test_deprocess_inverts_preprocess():
    rng = np.random.RandomState(0)
    im = rng.rand(4, 5, 3).astype(np.float32)
    t = make_transformer()
    out = t.preprocess('data', im)
    back = t.deprocess('data', out[np.newaxis])  # a 1 x K x H x W blob is squeezed
    assert back.shape == (4, 5, 3)
    np.testing.assert_allclose(back, im, atol=1e-5)


def test_preprocess_leaves_input_alone_and_resizes():
    im = np.full((8, 10, 3), 0.5, dtype=np.float32)
    before = im.copy()
    out = make_transformer().preprocess('data', im)
    np.testing.assert_array_equal(im, before)
    assert out.shape == (3, 4, 5)
    np.testing.assert_allclose(out[0], (0.5 * 255 - 10) * 0.5, rtol=1e-6)


def test_full_mean_array():
    t = eio.Transformer({'data': (2, 3, 2, 2)})
    t.set_transpose('data', (2, 0, 1))
    mean = np.arange(12, dtype=np.float32).reshape(3, 2, 2)
    t.set_mean('data', mean)
    im = np.ones((2, 2, 3), dtype=np.float32)
    np.testing.assert_allclose(t.preprocess('data', im), 1 - mean)


def test_two_dim_mean_for_one_channel():
    t = eio.Transformer({'data': (1, 1, 2, 3)})
    t.set_transpose('data', (2, 0, 1))
    t.set_mean('data', np.array([[1, 2, 3], [4, 5, 6]], dtype=np.float32))
    out = t.preprocess('data', np.zeros((2, 3, 1), dtype=np.float32))
    np.testing.assert_allclose(out, -np.array([[[1, 2, 3], [4, 5, 6]]]))


def test_transformer_checks():
    t = eio.Transformer({'data': (1, 3, 4, 5)})
    with pytest.raises(Exception, match='not one of the net inputs'):
        t.set_raw_scale('label', 255)
    with pytest.raises(Exception, match='Transpose order needs to have the same number'):
        t.set_transpose('data', (1, 0))
    with pytest.raises(Exception, match='Channel swap needs to have the same number'):
        t.set_channel_swap('data', (1, 0))
    with pytest.raises(ValueError, match='Mean channels incompatible with input.'):
        t.set_mean('data', np.zeros(4))
    with pytest.raises(ValueError, match='Mean shape incompatible with input shape.'):
        t.set_mean('data', np.zeros((3, 5, 4)))
    with pytest.raises(ValueError, match='Mean shape invalid'):
        t.set_mean('data', np.zeros((1, 3, 4, 5)))


# --- images -----------------------------------------------------------------------------------

def test_resize_bilinear_hand_worked():
    im = np.array([[0, 1], [2, 3]], dtype=np.float32)[:, :, np.newaxis]
    out = eio.resize_image(im, (4, 4))
    assert out.shape == (4, 4, 1) and out.dtype == np.float32
    # pixel centres: output column j sits at input x = (j + 0.5) / 2 - 0.5, edges repeat
    np.testing.assert_allclose(out[0, :, 0], [0, 0.25, 0.75, 1])
    np.testing.assert_allclose(out[1, :, 0], [0.5, 0.75, 1.25, 1.5])
    np.testing.assert_allclose(out[3, :, 0], [2, 2.25, 2.75, 3])


def test_resize_nearest_and_downscale():
    im = np.array([[0, 1], [2, 3]], dtype=np.float32)[:, :, np.newaxis]
    out = eio.resize_image(im, (4, 4), interp_order=0)
    np.testing.assert_array_equal(out[:, :, 0], np.kron([[0, 1], [2, 3]], np.ones((2, 2))))
    big = np.arange(16, dtype=np.float32).reshape(4, 4, 1)
    small = eio.resize_image(big, (2, 2))
    # each output pixel is the mean of a 2x2 block's centre, i.e. of the block
    np.testing.assert_allclose(small[:, :, 0], [[2.5, 4.5], [10.5, 12.5]])


@pytest.mark.parametrize('channels', [1, 3, 4, 7])
@pytest.mark.parametrize('order', [0, 1, 3])
def test_resize_any_channels_keeps_range(channels, order):
    rng = np.random.RandomState(channels)
    im = (rng.rand(9, 13, channels) * 200 - 50).astype(np.float32)
    out = eio.resize_image(im, (20, 7), interp_order=order)
    assert out.shape == (20, 7, channels)
    assert out.min() >= im.min() - 1e-4 and out.max() <= im.max() + 1e-4


def test_resize_constant_image():
    out = eio.resize_image(np.full((3, 3, 2), 7.0), (5, 6))
    assert out.shape == (5, 6, 2)
    assert (out == 7).all()


def save_png(path, array, mode):
    Image.fromarray(array, mode).save(path)
    return str(path)


def test_load_image_color_and_grey(tmp_path):
    rgb = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255]],
                    [[0, 0, 0], [255, 255, 255], [51, 102, 153]]], dtype=np.uint8)
    path = save_png(tmp_path / 'rgb.png', rgb, 'RGB')
    im = eio.load_image(path)
    assert im.shape == (2, 3, 3) and im.dtype == np.float32
    np.testing.assert_allclose(im, rgb / 255.0, atol=1e-6)
    grey = eio.load_image(path, color=False)
    assert grey.shape == (2, 3, 1)
    np.testing.assert_allclose(grey[0, :, 0], [0.2125, 0.7154, 0.0721], atol=1e-6)
    np.testing.assert_allclose(grey[1, 1, 0], 1.0, atol=1e-6)


def test_load_image_grey_file_and_alpha(tmp_path):
    g = np.array([[0, 128], [255, 64]], dtype=np.uint8)
    path = save_png(tmp_path / 'g.png', g, 'L')
    im = eio.load_image(path)
    assert im.shape == (2, 2, 3)
    for c in range(3):
        np.testing.assert_allclose(im[:, :, c], g / 255.0, atol=1e-6)
    assert eio.load_image(path, color=False).shape == (2, 2, 1)
    rgba = np.zeros((2, 2, 4), dtype=np.uint8)
    rgba[..., 0] = 255
    rgba[..., 3] = 10
    im = eio.load_image(save_png(tmp_path / 'a.png', rgba, 'RGBA'))
    assert im.shape == (2, 2, 3)
    np.testing.assert_allclose(im[0, 0], [1, 0, 0])


# --- oversample -------------------------------------------------------------------------------

def test_oversample_positions_and_mirrors():
    im1 = np.arange(7 * 9 * 2, dtype=np.float32).reshape(7, 9, 2)
    im2 = -im1
    crops = eio.oversample([im1, im2], (4, 4))
    assert crops.shape == (20, 4, 4, 2) and crops.dtype == np.float32
    for k, im in enumerate([im1, im2]):
        c = crops[10 * k:10 * (k + 1)]
        np.testing.assert_array_equal(c[0], im[0:4, 0:4])   # top left
        np.testing.assert_array_equal(c[1], im[0:4, 5:9])   # top right
        np.testing.assert_array_equal(c[2], im[3:7, 0:4])   # bottom left
        np.testing.assert_array_equal(c[3], im[3:7, 5:9])   # bottom right
        # centre: floor(7/2 - 2) = 1, floor(9/2 - 2) = 2
        np.testing.assert_array_equal(c[4], im[1:5, 2:6])
        for i in range(5):
            np.testing.assert_array_equal(c[5 + i], c[i][:, ::-1, :])


def test_oversample_even_centre():
    im = np.arange(256 * 256, dtype=np.float32).reshape(256, 256, 1)
    crops = eio.oversample([im], (227, 227))
    np.testing.assert_array_equal(crops[4], im[14:241, 14:241])


# --- blobs and data ---------------------------------------------------------------------------

def test_blobproto_round_trip():
    arr = np.arange(24, dtype=np.float32).reshape(2, 3, 4) / 7
    diff = -arr
    blob = eio.array_to_blobproto(arr, diff)
    assert list(blob.shape.dim) == [2, 3, 4]
    blob2 = caffe_pb2.BlobProto.FromString(blob.SerializeToString())
    np.testing.assert_allclose(eio.blobproto_to_array(blob2), arr, rtol=1e-7)
    np.testing.assert_allclose(eio.blobproto_to_array(blob2, return_diff=True), diff, rtol=1e-7)
    with pytest.raises(ValueError):
        eio.array_to_blobproto(arr, np.zeros(3))


def test_blobproto_legacy_shape():
    blob = caffe_pb2.BlobProto(num=1, channels=2, height=1, width=3)
    blob.data.extend([1, 2, 3, 4, 5, 6])
    out = eio.blobproto_to_array(blob)
    assert out.shape == (1, 2, 1, 3)
    assert out[0, 1, 0, 2] == 6


def test_blobprotovector_round_trip():
    arrays = [np.ones((2, 2)), np.arange(5, dtype=float)]
    s = eio.arraylist_to_blobprotovector_str(arrays)
    assert isinstance(s, bytes)
    back = eio.blobprotovector_str_to_arraylist(s)
    assert len(back) == 2
    for a, b in zip(arrays, back):
        np.testing.assert_array_equal(a, b)


def test_datum_round_trip():
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    datum = eio.array_to_datum(arr, label=7)
    assert (datum.channels, datum.height, datum.width, datum.label) == (2, 3, 4, 7)
    assert datum.data == arr.tobytes() and len(datum.float_data) == 0
    back = eio.datum_to_array(caffe_pb2.Datum.FromString(datum.SerializeToString()))
    assert back.dtype == np.uint8
    np.testing.assert_array_equal(back, arr)

    farr = arr.astype(np.float32) / 3
    fdatum = eio.array_to_datum(farr)
    assert len(fdatum.data) == 0 and not fdatum.HasField('label')
    np.testing.assert_allclose(eio.datum_to_array(fdatum), farr, rtol=1e-6)
    with pytest.raises(ValueError, match='Incorrect array shape'):
        eio.array_to_datum(np.zeros((2, 2)))


def test_encoded_datum_decodes_to_bgr():
    rgb = np.zeros((2, 3, 3), dtype=np.uint8)
    rgb[..., 0] = 200   # red
    rgb[..., 2] = 10    # blue
    buf = stdio.BytesIO()
    Image.fromarray(rgb, 'RGB').save(buf, format='PNG')
    datum = caffe_pb2.Datum(data=buf.getvalue(), encoded=True, label=1)
    out = eio.datum_to_array(datum)
    assert out.shape == (3, 2, 3)
    assert (out[0] == 10).all() and (out[1] == 0).all() and (out[2] == 200).all()
