"""Writing nets in Python, as pycaffe's `caffe.net_spec`.

    from engine import layers as L, params as P, NetSpec
    n = NetSpec()
    n.data, n.label = L.Data(source='train_lmdb', backend=P.Data.LMDB, batch_size=64, ntop=2)
    n.conv1 = L.Convolution(n.data, kernel_size=5, num_output=20,
                            weight_filler=dict(type='xavier'))
    n.pool1 = L.Pooling(n.conv1, kernel_size=2, stride=2, pool=P.Pooling.MAX)
    print(n.to_proto())

`L.<Type>(*bottoms, **params)` records one layer of type <Type> and returns its top (a tuple of
tops with `ntop=`, the layer itself with `ntop=0`). Keyword arguments go into the layer's
`<type>_param` message when that message has the field, else into LayerParameter itself
(`param`, `include`, `loss_weight`, `propagate_down`, ...); keywords ending in `param` are always
LayerParameter fields. Dicts become sub-messages, lists repeated fields.

Names: in NetSpec.to_proto a top takes the attribute name it was assigned to, and a layer the
name of its first top; anything unnamed gets its type and a counter (`Convolution1`).
"""
from collections import Counter, OrderedDict

from .proto import caffe_pb2


def param_name_dict():
    """Layer type -> prefix of its `<prefix>_param` field, e.g. 'InnerProduct' -> 'inner_product'.

    Derived from LayerParameter: a field `foo_param` of message type `FooParameter` serves layer
    type `Foo`.
    """
    names = {}
    for field in caffe_pb2.LayerParameter.DESCRIPTOR.fields:
        if field.name.endswith('_param') and field.message_type is not None:
            type_name = field.message_type.name
            if type_name.endswith('Parameter'):
                names[type_name[:-len('Parameter')]] = field.name[:-len('_param')]
    # Layer types whose parameter message is named after another type.
    names.setdefault('Deconvolution', 'convolution')
    return names


_param_names = param_name_dict()


def _as_field_value(field, value):
    """Enum fields also accept the value's name (e.g. 'MAX'); everything else passes through."""
    if field.enum_type is not None and isinstance(value, str):
        enum_value = field.enum_type.values_by_name.get(value)
        if enum_value is None:
            raise ValueError('{} is not a value of {}'.format(value, field.enum_type.full_name))
        return enum_value.number
    if isinstance(value, bool) or field.type == field.TYPE_BOOL:
        return value
    # numpy integers and floats are not accepted by every protobuf backend.
    if hasattr(value, 'item') and not isinstance(value, (str, bytes)):
        return value.item()
    return value


def assign_proto(proto, name, val):
    """Set field `name` of message `proto` from a Python value.

    Dicts fill sub-messages, lists (or tuples) fill repeated fields (a list of dicts adds one
    sub-message each), and a single value given to a repeated field becomes a one-item list.
    Raises AttributeError when the message has no such field.
    """
    field = proto.DESCRIPTOR.fields_by_name.get(name)
    if field is None:
        raise AttributeError('{} has no field {}'.format(proto.DESCRIPTOR.full_name, name))
    if field.label == field.LABEL_REPEATED:
        items = list(val) if isinstance(val, (list, tuple)) else [val]
        container = getattr(proto, name)
        for item in items:
            if isinstance(item, dict):
                sub = container.add()
                for k, v in item.items():
                    assign_proto(sub, k, v)
            elif field.message_type is not None:
                container.add().CopyFrom(item)
            else:
                container.append(_as_field_value(field, item))
    elif isinstance(val, dict):
        sub = getattr(proto, name)
        sub.SetInParent()  # an empty dict still marks the sub-message as present
        for k, v in val.items():
            assign_proto(sub, k, v)
    elif field.message_type is not None:
        getattr(proto, name).CopyFrom(val)
    else:
        setattr(proto, name, _as_field_value(field, val))


class Top:
    """One output blob of a layer (the n-th top of Function `fn`)."""

    def __init__(self, fn, n):
        self.fn = fn
        self.n = n

    def to_proto(self):
        """A NetParameter of this top and every layer it depends on."""
        return to_proto(self)

    def _update(self, params):
        self.fn._update(params)

    def _to_proto(self, layers, names, autonames):
        return self.fn._to_proto(layers, names, autonames)


class Function:
    """One layer: its type, its bottoms (Tops) and its keyword parameters."""

    def __init__(self, type_name, inputs, params):
        self.type_name = type_name
        for index, inp in enumerate(inputs):
            if not isinstance(inp, Top):
                raise TypeError('{} input {} is not a Top (type is {})'.format(
                    type_name, index, type(inp)))
        self.inputs = inputs
        self.params = dict(params)
        # ntop and in_place shape the layer's tops; they are not LayerParameter fields.
        self.ntop = self.params.pop('ntop', 1)
        self.in_place = self.params.pop('in_place', False)
        self.tops = tuple(Top(self, n) for n in range(self.ntop))

    def _update(self, params):
        self.params.update(params)

    def _get_name(self, names, autonames):
        # A layer is named after its first top; a layer without tops gets its own name.
        if self not in names:
            if self.ntop > 0:
                names[self] = self._get_top_name(self.tops[0], names, autonames)
            else:
                autonames[self.type_name] += 1
                names[self] = self.type_name + str(autonames[self.type_name])
        return names[self]

    def _get_top_name(self, top, names, autonames):
        if top not in names:
            autonames[top.fn.type_name] += 1
            names[top] = top.fn.type_name + str(autonames[top.fn.type_name])
        return names[top]

    def _to_proto(self, layers, names, autonames):
        """Add this layer (after the layers of its bottoms) to `layers`, an ordered dict from
        Function to LayerParameter."""
        if self in layers:
            return
        bottom_names = []
        for inp in self.inputs:
            inp._to_proto(layers, names, autonames)
            bottom_names.append(layers[inp.fn].top[inp.n])
        layer = caffe_pb2.LayerParameter()
        layer.type = self.type_name
        layer.bottom.extend(bottom_names)
        if self.in_place:
            layer.top.extend(layer.bottom)
        else:
            for top in self.tops:
                layer.top.append(self._get_top_name(top, names, autonames))
        layer.name = self._get_name(names, autonames)

        prefix = _param_names.get(self.type_name)
        for k, v in self.params.items():
            if k.endswith('param') or prefix is None:
                assign_proto(layer, k, v)
                continue
            type_param = getattr(layer, prefix + '_param')
            if k in type_param.DESCRIPTOR.fields_by_name:
                assign_proto(type_param, k, v)
            else:
                assign_proto(layer, k, v)
        layers[self] = layer


class NetSpec:
    """A net under construction: assign tops as attributes (or items); their names become the
    blob and layer names in to_proto()."""

    def __init__(self):
        super().__setattr__('tops', OrderedDict())

    def __setattr__(self, name, value):
        self.tops[name] = value

    def __getattr__(self, name):
        try:
            return self.tops[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setitem__(self, key, value):
        self.__setattr__(key, value)

    def __getitem__(self, item):
        return self.tops[item]

    def __delitem__(self, name):
        del self.tops[name]

    def keys(self):
        return list(self.tops.keys())

    def vals(self):
        return list(self.tops.values())

    def to_proto(self):
        """A NetParameter with every assigned top's layers, in assignment order."""
        names = {v: k for k, v in self.tops.items()}
        autonames = Counter()
        layers = OrderedDict()
        for top in self.tops.values():
            top._to_proto(layers, names, autonames)
        net = caffe_pb2.NetParameter()
        net.layer.extend(layers.values())
        return net


def to_proto(*tops):
    """A NetParameter of the given tops and every layer they depend on; all names automatic."""
    layers = OrderedDict()
    autonames = Counter()
    for top in tops:
        top.fn._to_proto(layers, {}, autonames)
    net = caffe_pb2.NetParameter()
    net.layer.extend(layers.values())
    return net


class Layers:
    """`layers.Foo(*bottoms, **params)` makes a layer of type 'Foo' (see the module doc)."""

    def __getattr__(self, name):
        if name.startswith('__'):
            raise AttributeError(name)  # keep copy/pickle from seeing every name as a layer

        def layer_fn(*args, **kwargs):
            fn = Function(name, args, kwargs)
            if fn.ntop == 0:
                return fn
            if fn.ntop == 1:
                return fn.tops[0]
            return fn.tops
        return layer_fn


class Parameters:
    """`params.Pooling.MAX` is the value MAX of an enum inside PoolingParameter."""

    def __getattr__(self, name):
        if name.startswith('__'):
            raise AttributeError(name)
        message = getattr(caffe_pb2, name + 'Parameter')

        class Param:
            def __getattr__(self, param_name):
                return getattr(message, param_name)
        return Param()


layers = Layers()
params = Parameters()
