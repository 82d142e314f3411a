"""mnist_core: everything of the MNIST dashboard that is not UI.

Data flows one way: IDX files -> ``data`` -> ``train`` (with ``model``) -> ``runs`` / ``report``.
Nothing in this package imports streamlit.
"""

__version__ = "0.1.0"
