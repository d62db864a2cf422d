// npugen's behavioural model of the Lattice ECP5 DP16KD block RAM, for simulation only.
//
// Covers what npugen instantiates (rtl/common/ram.py): port A writing and port B reading,
// one clock, chip selects unused (CSDECODE 0b000, CS pins low), WRITEMODE NORMAL, REGMODE_A/B
// both NOREG or both OUTREG, DATA_WIDTH_A = DATA_WIDTH_B = W, and either
//   W = 36, the 512 x 36 pseudo-dual-port mode:
//   write: on a CLKA edge with CEA and WEA, byte k (DI[9k +: 9], DI = {DIB, DIA}) of the
//          word at ADA[13:5] is written where byte enable ADA[k] (k = 0..3) is high;
//   read:  on a CLKB edge with CEB, the read register takes the word at ADB[13:5];
//          with OUTREG, on a CLKB edge with the output clock enable the output register
//          takes the read register (DO = {DOB, DOA}); with NOREG, DO is the read register;
// or W = 18, 9, 4, 2, 1 (1024 x 18 ... 16384 x 1, true dual-port pins):
//   write: on a CLKA edge with CEA and WEA, DIA[W-1:0] is written at ADA[13:L] (L = 4, 3,
//          2, 1, 0); with W = 18, byte k only where byte enable ADA[k] (k = 0, 1) is high;
//   read:  as above from ADB[13:L], the data on DOB[W-1:0].
// RSTB (RESETMODE SYNC) clears the read and output registers. The data sheet does not say
// which of OCEA/OCEB enables DOA's register in this mode, so npugen drives both with the
// same signal and the model stops if they ever differ. Any other setting stops the
// simulation instead of silently simulating something else. Reading the word written on
// the same edge is left undefined (X) in hardware terms; npugen's buffers never do it, and
// the model returns the old word. Written from the ECP5 memory usage guide (FPGA-TN-02204)
// and yosys's DP16KD mapping, not from vendor source.
// UNUSEDSIGNAL, UNUSEDPARAM (verilator -Wall): the model lists every pin and parameter of
// the primitive so that any instance connects; those of modes it does not model are not read.
/* verilator lint_off UNUSEDSIGNAL */
/* verilator lint_off UNUSEDPARAM */
`default_nettype none
module DP16KD #(
    parameter DATA_WIDTH_A = 18,
    parameter DATA_WIDTH_B = 18,
    parameter REGMODE_A = "NOREG",
    parameter REGMODE_B = "NOREG",
    parameter RESETMODE = "SYNC",
    parameter ASYNC_RESET_RELEASE = "SYNC",
    parameter CSDECODE_A = "0b000",
    parameter CSDECODE_B = "0b000",
    parameter WRITEMODE_A = "NORMAL",
    parameter WRITEMODE_B = "NORMAL",
    parameter GSR = "ENABLED"
) (
    input wire DIA17, DIA16, DIA15, DIA14, DIA13, DIA12, DIA11, DIA10, DIA9, DIA8, DIA7,
    input wire DIA6, DIA5, DIA4, DIA3, DIA2, DIA1, DIA0,
    input wire ADA13, ADA12, ADA11, ADA10, ADA9, ADA8, ADA7, ADA6, ADA5, ADA4, ADA3, ADA2,
    input wire ADA1, ADA0,
    input wire CEA, OCEA, CLKA, WEA, RSTA, CSA2, CSA1, CSA0,
    output wire DOA17, DOA16, DOA15, DOA14, DOA13, DOA12, DOA11, DOA10, DOA9, DOA8, DOA7,
    output wire DOA6, DOA5, DOA4, DOA3, DOA2, DOA1, DOA0,
    input wire DIB17, DIB16, DIB15, DIB14, DIB13, DIB12, DIB11, DIB10, DIB9, DIB8, DIB7,
    input wire DIB6, DIB5, DIB4, DIB3, DIB2, DIB1, DIB0,
    input wire ADB13, ADB12, ADB11, ADB10, ADB9, ADB8, ADB7, ADB6, ADB5, ADB4, ADB3, ADB2,
    input wire ADB1, ADB0,
    input wire CEB, OCEB, CLKB, WEB, RSTB, CSB2, CSB1, CSB0,
    output wire DOB17, DOB16, DOB15, DOB14, DOB13, DOB12, DOB11, DOB10, DOB9, DOB8, DOB7,
    output wire DOB6, DOB5, DOB4, DOB3, DOB2, DOB1, DOB0
);
    localparam OUTREG = REGMODE_B == "OUTREG";
    localparam W = DATA_WIDTH_A;
    localparam WIDE = W == 36;
    // Lowest address pin and words per block of each aspect ratio.
    localparam LO = W == 36 ? 5 : W == 18 ? 4 : W == 9 ? 3 : W == 4 ? 2 : W == 2 ? 1 : 0;
    localparam DEPTH = 1 << (14 - LO);
    initial begin
        if ((W != 36 && W != 18 && W != 9 && W != 4 && W != 2 && W != 1) ||
            DATA_WIDTH_B != W || REGMODE_A != REGMODE_B ||
            (REGMODE_B != "NOREG" && REGMODE_B != "OUTREG") || RESETMODE != "SYNC" ||
            CSDECODE_A != "0b000" || CSDECODE_B != "0b000" || WRITEMODE_A != "NORMAL") begin
            $display("DP16KD model: unsupported configuration");
            $finish;
        end
    end
    wire [17:0] dia = {DIA17, DIA16, DIA15, DIA14, DIA13, DIA12, DIA11, DIA10, DIA9, DIA8,
                       DIA7, DIA6, DIA5, DIA4, DIA3, DIA2, DIA1, DIA0};
    wire [17:0] dib = {DIB17, DIB16, DIB15, DIB14, DIB13, DIB12, DIB11, DIB10, DIB9, DIB8,
                       DIB7, DIB6, DIB5, DIB4, DIB3, DIB2, DIB1, DIB0};
    wire [35:0] di = WIDE ? {dib, dia} : {18'd0, dia};
    wire [13:0] ada = {ADA13, ADA12, ADA11, ADA10, ADA9, ADA8, ADA7, ADA6, ADA5, ADA4, ADA3,
                       ADA2, ADA1, ADA0};
    wire [13:0] adb = {ADB13, ADB12, ADB11, ADB10, ADB9, ADB8, ADB7, ADB6, ADB5, ADB4, ADB3,
                       ADB2, ADB1, ADB0};
    wire [13:0] w_addr = ada >> LO;
    wire [13:0] r_addr = adb >> LO;
    // Byte enables: four in the 36-bit mode, two in the 18-bit mode, none below.
    wire [3:0] byte_en = WIDE ? ada[3:0] : W == 18 ? {2'b00, ada[1:0]} : 4'b0001;
    wire [35:0] bit_en = W == 36 ? {{9{byte_en[3]}}, {9{byte_en[2]}}, {9{byte_en[1]}},
                                   {9{byte_en[0]}}}
                       : W == 18 ? {18'd0, {9{byte_en[1]}}, {9{byte_en[0]}}}
                       : (36'd1 << W) - 36'd1;
    reg [35:0] mem [0:DEPTH-1];
    reg [35:0] read_q, out_q;
    integer k;
    initial begin
        for (k = 0; k < DEPTH; k = k + 1) mem[k] = 36'd0;
        read_q = 36'd0;
        out_q = 36'd0;
    end
    always @(posedge CLKA) begin
        if ({CSA2, CSA1, CSA0} != 3'b000) begin
            $display("DP16KD model: chip selects are not modelled");
            $finish;
        end
        if (CEA && WEA)
            mem[w_addr[13 - LO:0]] <= (mem[w_addr[13 - LO:0]] & ~bit_en) | (di & bit_en);
    end
    always @(posedge CLKB) begin
        if (WEB || {CSB2, CSB1, CSB0} != 3'b000 || (OUTREG && OCEA != OCEB)) begin
            $display("DP16KD model: port B must only read, with OCEA == OCEB");
            $finish;
        end
        if (RSTB) read_q <= 36'd0;
        else if (CEB) read_q <= mem[r_addr[13 - LO:0]];
        if (RSTB) out_q <= 36'd0;
        else if (OCEB) out_q <= read_q;
    end
    wire [35:0] do_ = OUTREG ? out_q : read_q;
    // 36-bit mode: DO = {DOB, DOA}; narrower modes: the word on DOB, DOA unused (zero).
    assign {DOB17, DOB16, DOB15, DOB14, DOB13, DOB12, DOB11, DOB10, DOB9, DOB8, DOB7, DOB6,
            DOB5, DOB4, DOB3, DOB2, DOB1, DOB0} = WIDE ? do_[35:18] : do_[17:0];
    assign {DOA17, DOA16, DOA15, DOA14, DOA13, DOA12, DOA11, DOA10, DOA9, DOA8, DOA7, DOA6,
            DOA5, DOA4, DOA3, DOA2, DOA1, DOA0} = WIDE ? do_[17:0] : 18'd0;
endmodule
`default_nettype wire
/* verilator lint_on UNUSEDPARAM */
/* verilator lint_on UNUSEDSIGNAL */
