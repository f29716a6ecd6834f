"""distill-workbench: distil a BERT-style teacher into small students (see README.md)."""

import logging as _logging


class _DropKnownNoise(_logging.Filter):
    """Drops log records whose message holds one of `needles` (and nothing else)."""

    def __init__(self, *needles: str):
        super().__init__()
        self.needles = needles

    def filter(self, record: _logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a record that cannot format is not ours to judge
            return True
        return not any(n in message for n in self.needles)


# transformers probes for torchao whenever it builds or saves a model (transformers.quantizers), and
# importing torchao logs these on torch builds its prebuilt kernels do not match, though nothing here
# uses them: the two optional CUDA kernels that fail to load, and torch's deprecation of register_constant()
# on Enum subclasses that torchao still calls. Only these exact messages are dropped.
_logging.getLogger("torchao").addFilter(_DropKnownNoise("_C_mxfp8", "_C_cutlass_90a"))
_logging.getLogger("torch.utils._pytree").addFilter(
    _DropKnownNoise("is an Enum subclass and is now natively supported by torch.compile"))
