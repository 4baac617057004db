"""The cocotb test that drives the simulation top ``rtl_templates/snn_sim_top.sv`` (run by
:class:`snn2hw.verify.verilator.RtlSimulator` with ``driver="cocotb"`` through cocotb's Verilator runner).

The top resets itself, runs the harness on the files named by its plusargs and writes its results file; this
test only starts a 10 ns clock implemented in C in cocotb's GPI (no Python per clock edge) and waits for
the top's ``finished`` level. Harness timeouts end the run from inside the top; nothing else is needed here.
"""

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import RisingEdge

CLOCK_PERIOD_NS = 10


@cocotb.test()
async def run_harness(dut):
    """Clock the top until its results file is written."""
    Clock(dut.clk, CLOCK_PERIOD_NS, unit="ns", impl="gpi").start(start_high=False)
    await RisingEdge(dut.finished)
