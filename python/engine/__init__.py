"""engine: a Caffe-style training engine, with pycaffe's Python interface.

Scripts written for pycaffe run with ``import engine as caffe``: Net, the solvers, the mode and
device settings, engine.io, NetSpec, draw and coord_map keep pycaffe's names and behaviour.
"""
from ._engine import (NCCL, Blob, Error, device_count, export_onnx, has_nccl, layer_type_list, set_device,
                      set_log_level, set_mode_cpu, set_mode_gpu, set_random_seed,
                      set_solver_count, set_solver_rank, solver_count, solver_rank)
from .proto import caffe_pb2
from .pycaffe import (AdaDeltaSolver, AdaGradSolver, AdamSolver, Layer, Net, NesterovSolver,
                      RMSPropSolver, SGDSolver, Timer, get_solver, multiprocess, set_multiprocess)
from . import io
from .classifier import Classifier
from .detector import Detector
from .net_spec import NetSpec, layers, params, to_proto

TRAIN = caffe_pb2.TRAIN
TEST = caffe_pb2.TEST

__version__ = "1.0.0"
