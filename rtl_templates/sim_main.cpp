// C++ main of the standalone Verilator simulation built by snn2hw/verify/verilator.py: a 10 ns clock on
// snn_sim_top's `clk` until its `finished` rises (or a $fatal). Not Amaranth: Verilator's own harness code.
// The cocotb driver of the same top is snn2hw/verify/cocotb_sim_tb.py.
#include <memory>

#include "Vsnn_sim_top.h"
#include "verilated.h"

int main(int argc, char** argv) {
    const auto context = std::make_unique<VerilatedContext>();
    context->commandArgs(argc, argv);
    context->traceEverOn(true);  // lets $dumpvars work in a --trace build; a no-op otherwise
    const auto top = std::make_unique<Vsnn_sim_top>(context.get());
    top->clk = 0;
    top->eval();
    while (!top->finished && !context->gotFinish()) {
        context->timeInc(5);
        top->clk = !top->clk;
        top->eval();
    }
    top->final();
    return context->gotFinish() ? 1 : 0;
}
