"""Model families: converting a trained model into TFLite variants, and the bundled demo zoo.

TensorFlow is only needed to convert; running a family needs a TFLite runtime alone.
"""
