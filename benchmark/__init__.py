"""tracer-bench harness: backbone, SID tokenizer, training, decoding, metrics, runner, CLI."""

__version__ = "0.10.0"
