"""pycaffe's name for the schema's generated messages.

Scripts written for Caffe do `from caffe.proto import caffe_pb2`; the engine's schema
(proto/engine.proto, package `engine`) has the same messages and fields, so this module only
re-exports engine_pb2, which the build generates next to it with protoc.
"""
from . import engine_pb2  # noqa: F401
from .engine_pb2 import *  # noqa: F401,F403  (messages, top-level enum values, DESCRIPTOR)
