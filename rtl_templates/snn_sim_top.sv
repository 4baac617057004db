// Top of the Verilator simulation of an emitted accelerator (built by snn2hw/verify/verilator.py): the
// memories of the stimulus harness (snn2hw/verify/harness.py), loaded from and dumped to files, reset for
// two cycles, one `go`, results written once the harness has finished, then `finished` rises. Its driver
// only toggles `clk` until `finished`: either sim_main.cpp (a standalone program) or the cocotb test
// snn2hw/verify/cocotb_sim_tb.py (a GPI clock). Not Amaranth: file I/O and plusargs are testbench constructs.
//
// Plusargs: +in_beats=FILE (input beats, hex, one a line) +samples=N +max_cycles=N +results=FILE, and
// with N > 0 weight words +image=FILE (hex, one a line) +image_words=N; +vcd=FILE dumps a waveform (needs
// a --trace build).
// Results file (decimal): "completed timed_out loaded out_count", then the cycle counts of the completed
// samples, then the out_count output beats, one number a line. With +membranes=FILE the membrane readout's
// beats go to FILE: their count (decimal), then the beats (hex), one a line.

module snn_sim_top #(
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
    input logic clk,
    output logic finished = 0  // results file written: the driver stops the clock
);
    localparam int IN_ADDR = $clog2(IN_DEPTH), OUT_ADDR = $clog2(OUT_DEPTH);
    localparam int SAMPLE_ADDR = $clog2(SAMPLE_DEPTH), IMAGE_ADDR = $clog2(IMAGE_DEPTH);
    localparam int MEM_ADDR = $clog2(MEM_DEPTH);

    logic [IN_WIDTH-1:0] in_beats [IN_DEPTH];
    logic [IMAGE_WIDTH-1:0] weight_image [IMAGE_DEPTH];
    logic [OUT_WIDTH-1:0] out_beats [OUT_DEPTH];
    logic [CYCLE_BITS-1:0] sample_cycles [SAMPLE_DEPTH];
    logic [MEM_WIDTH-1:0] membrane_beats [MEM_DEPTH];

    logic rst = 1, go = 0;
    logic [1:0] step = 0;  // 0, 1: in reset; 2: go; 3: running
    logic [$clog2(SAMPLE_DEPTH + 1)-1:0] samples = 0, completed;
    logic [$clog2(IMAGE_DEPTH + 1)-1:0] image_words = 0;
    logic [CYCLE_BITS-1:0] max_cycles = 0, cycles_data;
    logic [$clog2(OUT_DEPTH + 1)-1:0] out_count;
    logic [$clog2(MEM_DEPTH + 1)-1:0] mem_count;
    logic harness_finished, timed_out, loaded, out_en, cycles_en, mem_en;
    logic [MEM_ADDR-1:0] mem_addr;
    logic [MEM_WIDTH-1:0] mem_data;
    logic [IN_ADDR-1:0] in_addr;
    logic [IMAGE_ADDR-1:0] image_addr;
    logic [OUT_ADDR-1:0] out_addr;
    logic [SAMPLE_ADDR-1:0] cycles_addr;
    logic [OUT_WIDTH-1:0] out_data;

    snn_harness harness (
        .clk(clk), .rst(rst), .go(go), .samples(samples), .image_words(image_words), .max_cycles(max_cycles),
        .finished(harness_finished), .timed_out(timed_out), .completed(completed), .out_count(out_count),
        .loaded(loaded), .in_addr(in_addr), .in_data(in_beats[in_addr]), .image_addr(image_addr),
        .image_data(weight_image[image_addr]), .out_en(out_en), .out_addr(out_addr), .out_data(out_data),
        .cycles_en(cycles_en), .cycles_addr(cycles_addr), .cycles_data(cycles_data), .mem_count(mem_count),
        .mem_en(mem_en), .mem_addr(mem_addr), .mem_data(mem_data)
    );

    string in_file, image_file, results_file, vcd_file, membranes_file;
    int words, fd;

    initial begin
        if (!$value$plusargs("in_beats=%s", in_file) || !$value$plusargs("samples=%d", samples)
            || !$value$plusargs("max_cycles=%d", max_cycles) || !$value$plusargs("results=%s", results_file))
            $fatal(1, "snn_sim_top needs +in_beats= +samples= +max_cycles= +results=");
        $readmemh(in_file, in_beats);
        if ($value$plusargs("image_words=%d", words) && words > 0) begin
            if (!$value$plusargs("image=%s", image_file)) $fatal(1, "+image_words= needs +image=");
            image_words = words[$bits(image_words)-1:0];
            $readmemh(image_file, weight_image);
        end
        if ($value$plusargs("vcd=%s", vcd_file)) begin
            $dumpfile(vcd_file);
            $dumpvars(0, snn_sim_top);
        end
    end

    always @(posedge clk) begin
        if (out_en) out_beats[out_addr] <= out_data;
        if (cycles_en) sample_cycles[cycles_addr] <= cycles_data;
        if (mem_en) membrane_beats[mem_addr] <= mem_data;
    end

    always @(posedge clk) begin
        if (step != 3) step <= step + 1;
        rst <= step == 0;
        go <= step == 1;
        if (step == 3 && harness_finished && !finished) begin
            fd = $fopen(results_file, "w");
            if (fd == 0) $fatal(1, "cannot write %s", results_file);
            $fwrite(fd, "%0d %0d %0d %0d\n", completed, timed_out, loaded, out_count);
            for (int i = 0; i < int'(completed); i++) $fwrite(fd, "%0d\n", sample_cycles[i]);
            for (int i = 0; i < int'(out_count); i++) $fwrite(fd, "%0d\n", out_beats[i]);
            $fclose(fd);
            if ($value$plusargs("membranes=%s", membranes_file)) begin
                fd = $fopen(membranes_file, "w");
                if (fd == 0) $fatal(1, "cannot write %s", membranes_file);
                $fwrite(fd, "%0d\n", mem_count);
                for (int i = 0; i < int'(mem_count); i++) $fwrite(fd, "%h\n", membrane_beats[i]);
                $fclose(fd);
            end
            finished <= 1;
        end
    end
endmodule
