"""Example functions bundled with lambdasim."""

import os

HELLO_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "hello")
