"""The cocotb test that drives the simulation top ``rtl_templates/snn_sim_top.sv`` (run by
:class:`snn2hw.verify.verilator.RtlSimulator` with ``driver="cocotb"`` through cocotb's Verilator runner).

The top (``rtl_templates/snn_sim_clocked.sv``) generates its own 10 ns clock, resets itself, runs the harness
on the files named by its plusargs and writes its results file; this test only waits for the top's
``finished`` level, so no clock edge costs a callback into Python or cocotb's GPI. Harness timeouts end the run
from inside the top; nothing else is needed here.
"""

import cocotb
from cocotb.triggers import RisingEdge


@cocotb.test()
async def run_harness(dut):
    """Wait until the top has written its results file."""
    await RisingEdge(dut.finished)
