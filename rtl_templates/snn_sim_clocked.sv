// The cocotb driver's top (snn2hw/verify/cocotb_sim_tb.py): snn_sim_top with its 10 ns clock generated in
// SystemVerilog (built with Verilator's --timing), so that no clock edge costs a VPI callback; cocotb only
// waits for `finished`. The standalone program (sim_main.cpp) toggles snn_sim_top's clock itself instead.
// The parameters are snn_sim_top's, passed through.

module snn_sim_clocked #(
    parameter int IN_WIDTH = 8,
    parameter int OUT_WIDTH = 8,
    parameter int IN_DEPTH = 1024,
    parameter int OUT_DEPTH = 1024,
    parameter int SAMPLE_DEPTH = 16,
    parameter int IMAGE_DEPTH = 16,
    parameter int IMAGE_WIDTH = 16,
    parameter int CYCLE_BITS = 32,
    parameter int MEM_WIDTH = 16,
    parameter int MEM_DEPTH = 1024
) (
    output logic finished /*verilator public_flat_rd*/
);
    logic clk = 0;
    always #5 clk = ~clk;

    snn_sim_top #(
        .IN_WIDTH(IN_WIDTH), .OUT_WIDTH(OUT_WIDTH), .IN_DEPTH(IN_DEPTH), .OUT_DEPTH(OUT_DEPTH),
        .SAMPLE_DEPTH(SAMPLE_DEPTH), .IMAGE_DEPTH(IMAGE_DEPTH), .IMAGE_WIDTH(IMAGE_WIDTH), .CYCLE_BITS(CYCLE_BITS),
        .MEM_WIDTH(MEM_WIDTH), .MEM_DEPTH(MEM_DEPTH)
    ) top (.clk(clk), .finished(finished));
endmodule
