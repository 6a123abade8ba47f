"""Build hooks: export a model to the artifact Vertex AI's prebuilt containers serve.

Pure functions with explicit input and output paths. TensorFlow and torch are imported
only inside the functions that need them.
"""
