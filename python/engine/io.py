"""Input/output helpers of pycaffe's `caffe.io`, for `import engine as caffe`.

Images are handled as numpy float32 arrays in H x W x K layout with values in [0, 1] (what
load_image returns); the net wants K x H x W, often in BGR order, scaled to [0, 255] and with the
training mean subtracted. Transformer does that conversion per net input, in pycaffe's order:
resize, transpose, channel swap, raw scale, mean subtraction, input scale.

Only numpy, PIL and the generated protobuf messages are needed; nothing here uses the compiled
module.
"""
import io as _stdio

import numpy as np

from .proto import caffe_pb2


# ---------------------------------------------------------------------------------------------
# Blobs and data records
# ---------------------------------------------------------------------------------------------

def blobproto_to_array(blob, return_diff=False):
    """The data (or diff) of a BlobProto as a numpy array of the blob's shape.

    A blob written with the legacy num/channels/height/width fields comes back 4-d; otherwise the
    shape is `blob.shape.dim`. Blobs saved in double precision are read from double_data.
    """
    if return_diff:
        values = blob.diff if len(blob.diff) or not len(blob.double_diff) else blob.double_diff
    else:
        values = blob.data if len(blob.data) or not len(blob.double_data) else blob.double_data
    # np.array of a repeated float field is float64, as pycaffe returns.
    data = np.array(values)
    legacy = any(blob.HasField(f) for f in ('num', 'channels', 'height', 'width'))
    if legacy:
        return data.reshape(blob.num, blob.channels, blob.height, blob.width)
    return data.reshape(tuple(blob.shape.dim))


def array_to_blobproto(arr, diff=None):
    """A BlobProto holding `arr` (and `diff`, of the same shape, when given)."""
    arr = np.asarray(arr)
    blob = caffe_pb2.BlobProto()
    blob.shape.dim.extend(int(d) for d in arr.shape)
    blob.data.extend(arr.astype(float).flat)
    if diff is not None:
        diff = np.asarray(diff)
        if diff.shape != arr.shape:
            raise ValueError('diff shape {} differs from data shape {}'.format(diff.shape,
                                                                             arr.shape))
        blob.diff.extend(diff.astype(float).flat)
    return blob


def arraylist_to_blobprotovector_str(arraylist):
    """A serialized BlobProtoVector of the arrays in `arraylist`."""
    vec = caffe_pb2.BlobProtoVector()
    vec.blobs.extend(array_to_blobproto(arr) for arr in arraylist)
    return vec.SerializeToString()


def blobprotovector_str_to_arraylist(str):  # noqa: A002  (pycaffe's parameter name)
    """The arrays of a serialized BlobProtoVector."""
    vec = caffe_pb2.BlobProtoVector()
    vec.ParseFromString(str)
    return [blobproto_to_array(blob) for blob in vec.blobs]


def array_to_datum(arr, label=None):
    """A Datum of a C x H x W array: uint8 arrays go to `data` as bytes, others to float_data."""
    arr = np.asarray(arr)
    if arr.ndim != 3:
        raise ValueError('Incorrect array shape.')
    datum = caffe_pb2.Datum()
    datum.channels, datum.height, datum.width = (int(d) for d in arr.shape)
    if arr.dtype == np.uint8:
        datum.data = arr.tobytes()
    else:
        datum.float_data.extend(arr.astype(float).flat)
    if label is not None:
        datum.label = int(label)
    return datum


def datum_to_array(datum):
    """The C x H x W array of a Datum: uint8 from raw `data`, float64 from float_data.

    An encoded datum (a JPEG/PNG file in `data`) is decoded into uint8 C x H x W with colour
    images in BGR order, the order in which the engine's data layers see them.
    """
    if datum.encoded:
        from PIL import Image
        im = Image.open(_stdio.BytesIO(datum.data))
        im = im.convert('L' if im.mode in ('1', 'L', 'I;16', 'I') else 'RGB')
        pixels = np.asarray(im, dtype=np.uint8)
        if pixels.ndim == 2:
            return pixels[np.newaxis, :, :].copy()
        return pixels[:, :, ::-1].transpose(2, 0, 1).copy()
    shape = (datum.channels, datum.height, datum.width)
    if len(datum.data):
        return np.frombuffer(datum.data, dtype=np.uint8).reshape(shape).copy()
    return np.array(datum.float_data).astype(float).reshape(shape)


# ---------------------------------------------------------------------------------------------
# Preprocessing for net inputs
# ---------------------------------------------------------------------------------------------

class Transformer:
    """Converts between images (H x W x K float) and net inputs (K x H x W), per input blob.

    `inputs` maps each input name to its blob shape (N, K, H, W), e.g.
    `{'data': net.blobs['data'].data.shape}`.
    """

    def __init__(self, inputs):
        self.inputs = inputs
        self.transpose = {}
        self.channel_swap = {}
        self.raw_scale = {}
        self.mean = {}
        self.input_scale = {}

    def __check_input(self, in_):
        if in_ not in self.inputs:
            raise Exception('{} is not one of the net inputs: {}'.format(in_, self.inputs))

    def preprocess(self, in_, data):
        """An image (H x W x K) as the net input `in_` wants it (K x H x W, float32).

        Steps, each only when set: resize to the input's H x W, transpose, channel swap, raw
        scale, mean subtraction, input scale.
        """
        self.__check_input(in_)
        caffe_in = np.asarray(data).astype(np.float32, copy=False)
        in_dims = tuple(self.inputs[in_][2:])
        if tuple(caffe_in.shape[:2]) != in_dims:
            caffe_in = resize_image(caffe_in, in_dims)
        if in_ in self.transpose:
            caffe_in = caffe_in.transpose(self.transpose[in_])
        if in_ in self.channel_swap:
            caffe_in = caffe_in[self.channel_swap[in_], :, :]
        # Out-of-place arithmetic, so that `data` itself is never modified.
        if in_ in self.raw_scale:
            caffe_in = caffe_in * self.raw_scale[in_]
        if in_ in self.mean:
            caffe_in = caffe_in - self.mean[in_]
        if in_ in self.input_scale:
            caffe_in = caffe_in * self.input_scale[in_]
        return caffe_in.astype(np.float32, copy=False)

    def deprocess(self, in_, data):
        """Undo preprocess (except the resize): a net input or output back to H x W x K.

        Singleton axes are squeezed first, so a 1 x K x H x W blob slice can be passed directly.
        """
        self.__check_input(in_)
        decaf_in = np.array(data, copy=True).squeeze()
        if in_ in self.input_scale:
            decaf_in = decaf_in / self.input_scale[in_]
        if in_ in self.mean:
            decaf_in = decaf_in + self.mean[in_]
        if in_ in self.raw_scale:
            decaf_in = decaf_in / self.raw_scale[in_]
        if in_ in self.channel_swap:
            decaf_in = decaf_in[np.argsort(self.channel_swap[in_]), :, :]
        if in_ in self.transpose:
            decaf_in = decaf_in.transpose(np.argsort(self.transpose[in_]))
        return decaf_in

    def set_transpose(self, in_, order):
        """Axis order from image to input, e.g. (2, 0, 1) for H x W x K -> K x H x W."""
        self.__check_input(in_)
        if len(order) != len(self.inputs[in_]) - 1:
            raise Exception('Transpose order needs to have the same number of '
                            'dimensions as the input.')
        self.transpose[in_] = order

    def set_channel_swap(self, in_, order):
        """Channel order after the transpose, e.g. (2, 1, 0) for RGB -> BGR."""
        self.__check_input(in_)
        if len(order) != self.inputs[in_][1]:
            raise Exception('Channel swap needs to have the same number of '
                            'dimensions as the input channels.')
        self.channel_swap[in_] = order

    def set_raw_scale(self, in_, scale):
        """Factor applied before the mean, e.g. 255 for images loaded in [0, 1]."""
        self.__check_input(in_)
        self.raw_scale[in_] = scale

    def set_mean(self, in_, mean):
        """Mean subtracted after the raw scale: one value per channel (a K vector) or a whole
        K x H x W (or H x W for one channel) array of the input's shape."""
        self.__check_input(in_)
        mean = np.asarray(mean)
        ms = mean.shape
        if mean.ndim == 1:
            if ms[0] != self.inputs[in_][1]:
                raise ValueError('Mean channels incompatible with input.')
            # Broadcast over the spatial axes of a K x H x W input.
            mean = mean[:, np.newaxis, np.newaxis]
        else:
            if len(ms) == 2:
                ms = (1,) + ms
            if len(ms) != 3:
                raise ValueError('Mean shape invalid')
            if tuple(ms) != tuple(self.inputs[in_][1:]):
                raise ValueError('Mean shape incompatible with input shape.')
            mean = mean.reshape(ms)
        self.mean[in_] = mean

    def set_input_scale(self, in_, scale):
        """Factor applied last, after the mean subtraction."""
        self.__check_input(in_)
        self.input_scale[in_] = scale


# ---------------------------------------------------------------------------------------------
# Images
# ---------------------------------------------------------------------------------------------

# Luminance weights of ITU-R BT.709, which pycaffe's loader (scikit-image) uses for grey images.
_GREY_WEIGHTS = np.array([0.2125, 0.7154, 0.0721], dtype=np.float32)


def load_image(filename, color=True):
    """An image file as float32 H x W x 3 (RGB) in [0, 1], or H x W x 1 when color is False.

    Grey files are repeated into three channels when color is True; an alpha channel is dropped.
    """
    from PIL import Image
    with Image.open(filename) as im:
        im.load()
        if im.mode in ('I;16', 'I;16B', 'I;16L', 'I'):
            # 16-bit grey: scale by the type's range, as scikit-image's img_as_float does.
            img = np.asarray(im, dtype=np.float32) / 65535.0
        elif im.mode == 'F':
            img = np.asarray(im, dtype=np.float32)
        elif im.mode in ('1', 'L', 'LA'):
            img = np.asarray(im.convert('L'), dtype=np.float32) / 255.0
        else:
            img = np.asarray(im.convert('RGB'), dtype=np.float32) / 255.0
    if img.ndim == 2:
        img = img[:, :, np.newaxis]
    if color:
        if img.shape[2] == 1:
            img = np.tile(img, (1, 1, 3))
    elif img.shape[2] == 3:
        img = (img @ _GREY_WEIGHTS)[:, :, np.newaxis]
    return img.astype(np.float32, copy=False)


def _axis_weights(n_in, n_out, order):
    """Source indices and weights that resample an axis of length n_in to n_out.

    Pixel centres are aligned (output pixel i covers input coordinate (i + 0.5) * n_in / n_out
    - 0.5); coordinates beyond the edges repeat the edge pixel. Returns (index, weight) arrays of
    shape (n_out, taps).
    """
    x = (np.arange(n_out, dtype=np.float64) + 0.5) * (n_in / n_out) - 0.5
    if order == 0:
        index = np.clip(np.floor(x + 0.5).astype(int), 0, n_in - 1)[:, np.newaxis]
        return index, np.ones_like(index, dtype=np.float64)
    base = np.floor(x).astype(int)
    t = x - base
    if order == 1:
        offsets = np.array([0, 1])
        weights = np.stack([1 - t, t], axis=1)
    else:
        # Cubic convolution (Keys, a = -0.5) over four taps.
        offsets = np.array([-1, 0, 1, 2])
        d = np.abs(t[:, np.newaxis] - offsets[np.newaxis, :])
        a = -0.5
        weights = np.where(d <= 1, (a + 2) * d ** 3 - (a + 3) * d ** 2 + 1,
                           np.where(d < 2, a * d ** 3 - 5 * a * d ** 2 + 8 * a * d - 4 * a, 0.0))
    index = np.clip(base[:, np.newaxis] + offsets[np.newaxis, :], 0, n_in - 1)
    return index, weights


def _resample_axis(arr, axis, n_out, order):
    index, weights = _axis_weights(arr.shape[axis], n_out, order)
    moved = np.moveaxis(arr, axis, 0)
    # Sum over the taps: out[i] = sum_k weights[i, k] * in[index[i, k]].
    taps = moved[index]                                   # n_out x taps x rest...
    w = weights.reshape(weights.shape + (1,) * (moved.ndim - 1))
    return np.moveaxis((taps * w).sum(axis=1), 0, axis)


def resize_image(im, new_dims, interp_order=1):
    """Resize an H x W x K image (any K) to new_dims = (height, width).

    interp_order: 0 nearest, 1 bilinear (default), 2 or more bicubic. The result stays within
    the input's [min, max] range, as pycaffe's does, and is float32.
    """
    im = np.asarray(im)
    new_h, new_w = (int(d) for d in new_dims[:2])
    im_min, im_max = float(im.min()), float(im.max())
    if im_max <= im_min:
        # A constant image: every output pixel is that constant.
        return np.full((new_h, new_w) + im.shape[2:], im_min, dtype=np.float32)
    out = im.astype(np.float64)
    if out.shape[0] != new_h:
        out = _resample_axis(out, 0, new_h, interp_order)
    if out.shape[1] != new_w:
        out = _resample_axis(out, 1, new_w, interp_order)
    # Cubic weights can overshoot; clip to the input range.
    return np.clip(out, im_min, im_max).astype(np.float32)


def oversample(images, crop_dims):
    """The ten crops of each H x W x K image: four corners and the centre, then the same five
    mirrored left-right. Returns a (10 * len(images)) x crop_h x crop_w x K float32 array, the
    ten crops of the first image first.
    """
    images = [np.asarray(im) for im in images]
    im_h, im_w, channels = images[0].shape
    crop_h, crop_w = (int(d) for d in crop_dims)
    if crop_h > im_h or crop_w > im_w:
        raise ValueError('crop {}x{} larger than image {}x{}'.format(crop_h, crop_w, im_h, im_w))
    # Top-left corners: top-left, top-right, bottom-left, bottom-right, centre.
    corners = [(0, 0), (0, im_w - crop_w), (im_h - crop_h, 0), (im_h - crop_h, im_w - crop_w),
               (int(np.floor(im_h / 2.0 - crop_h / 2.0)), int(np.floor(im_w / 2.0 - crop_w / 2.0)))]
    crops = np.empty((10 * len(images), crop_h, crop_w, channels), dtype=np.float32)
    i = 0
    for im in images:
        for y, x in corners:
            crops[i] = im[y:y + crop_h, x:x + crop_w, :]
            i += 1
        crops[i:i + 5] = crops[i - 5:i, :, ::-1, :]  # the mirrors: flip the width axis
        i += 5
    return crops
