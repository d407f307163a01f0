"""Command-line interface: ``streamfeat COMMAND``."""
