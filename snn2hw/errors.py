"""The exception hierarchy. The CLI turns any :class:`Snn2hwError` into one line on stderr and exit code 2."""


class Snn2hwError(Exception):
    """Base of every error caused by the user's input or environment (not a bug in snn2hw)."""


class ModelFormatError(Snn2hwError):
    """The model file is missing, unreadable, truncated or of an unknown format."""


class UnsupportedModelError(Snn2hwError):
    """The model is readable but uses an operator, layer or construct snn2hw cannot map."""


class QuantizationError(Snn2hwError):
    """Parameters that cannot be represented (NaN/Inf, bad thresholds or betas, widths too small)."""


class ResourceError(Snn2hwError):
    """The network does not fit the selected board."""


class ToolError(Snn2hwError):
    """An external tool (Verilator, Yosys, nextpnr) failed or is missing."""


class OutputError(Snn2hwError):
    """An output directory is missing, incomplete or would be clobbered."""


class VerificationError(Snn2hwError):
    """The RTL disagrees with the golden model."""
