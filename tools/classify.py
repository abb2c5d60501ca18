#!/usr/bin/python3
"""Classifies images with a trained net and saves the class scores (pycaffe's classify.py).

INPUT is an image file, a folder of images (--ext) or a .npy array of images (N x H x W x K,
values in [0, 1]); OUTPUT gets a .npy array of scores, one row per image in that order.
"""
import argparse
import glob
import os
import sys
import time

import numpy as np

import engine


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input_file", help="an image, a folder of images or a .npy array")
    parser.add_argument("output_file", help="where the scores go (.npy)")
    parser.add_argument("--model_def", required=True, help="the deploy prototxt")
    parser.add_argument("--pretrained_model", required=True, help="the .caffemodel")
    parser.add_argument("--gpu", action="store_true", help="compute on GPU 0")
    parser.add_argument("--center_only", action="store_true",
                        help="score the center crop only, not the ten crops' mean")
    parser.add_argument("--images_dim", default="256,256",
                        help="height,width the images are resized to before cropping")
    parser.add_argument("--mean_file", default="",
                        help="a .npy mean (K x H x W) to subtract; none by default")
    parser.add_argument("--input_scale", type=float, help="multiply the input after the mean")
    parser.add_argument("--raw_scale", type=float, default=255.0,
                        help="multiply the [0, 1] images by this before the mean")
    parser.add_argument("--channel_swap", default="2,1,0",
                        help="channel order for the net (RGB to BGR by default)")
    parser.add_argument("--ext", default="jpg", help="image extension when INPUT is a folder")
    return parser.parse_args(argv)


def main(argv):
    args = parse_args(argv)
    if args.gpu:
        engine.set_mode_gpu()
    else:
        engine.set_mode_cpu()
    mean = np.load(args.mean_file) if args.mean_file else None
    channel_swap = [int(s) for s in args.channel_swap.split(",")] if args.channel_swap else None
    classifier = engine.Classifier(
        args.model_def, args.pretrained_model,
        image_dims=[int(s) for s in args.images_dim.split(",")], mean=mean,
        input_scale=args.input_scale, raw_scale=args.raw_scale, channel_swap=channel_swap)

    if args.input_file.endswith(".npy"):
        inputs = np.load(args.input_file)
    elif os.path.isdir(args.input_file):
        files = sorted(glob.glob(os.path.join(args.input_file, "*." + args.ext)))
        inputs = [engine.io.load_image(f) for f in files]
    else:
        inputs = [engine.io.load_image(args.input_file)]
    if len(inputs) == 0:
        sys.exit("classify.py: no images in %s" % args.input_file)
    # A net with one input channel reads gray images.
    if classifier.blobs[classifier.inputs[0]].channels == 1:
        inputs = [image.mean(axis=2, keepdims=True) for image in inputs]

    print("Classifying %d inputs." % len(inputs))
    start = time.time()
    predictions = classifier.predict(inputs, not args.center_only)
    print("Done in %.2f s." % (time.time() - start))
    np.save(args.output_file, predictions)
    print("Saved to %s." % args.output_file)


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except engine.Error as error:
        sys.exit("classify.py: error: %s" % error)
