// npugen's behavioural model of the Lattice ECP5 DP16KD block RAM, for simulation only.
//
// Covers what npugen instantiates (rtl/common/ram.py): the 512 x 36 pseudo-dual-port mode
// (DATA_WIDTH_A = DATA_WIDTH_B = 36) with port A writing and port B reading, one clock,
// chip selects unused (CSDECODE 0b000, CS pins low), WRITEMODE NORMAL, and REGMODE_A/B both
// NOREG or both OUTREG. In that mode:
//   write: on a CLKA edge with CEA and WEA, byte k (DI[9k +: 9], DI = {DIB, DIA}) of the
//          word at ADA[13:5] is written where byte enable ADA[k] (k = 0..3) is high;
//   read:  on a CLKB edge with CEB, the read register takes the word at ADB[13:5];
//          with OUTREG, on a CLKB edge with the output clock enable the output register
//          takes the read register (DO = {DOB, DOA}); with NOREG, DO is the read register.
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
    initial begin
        if (DATA_WIDTH_A != 36 || DATA_WIDTH_B != 36 || REGMODE_A != REGMODE_B ||
            (REGMODE_B != "NOREG" && REGMODE_B != "OUTREG") || RESETMODE != "SYNC" ||
            CSDECODE_A != "0b000" || CSDECODE_B != "0b000" || WRITEMODE_A != "NORMAL") begin
            $display("DP16KD model: unsupported configuration");
            $finish;
        end
    end
    wire [35:0] di = {DIB17, DIB16, DIB15, DIB14, DIB13, DIB12, DIB11, DIB10, DIB9, DIB8,
                      DIB7, DIB6, DIB5, DIB4, DIB3, DIB2, DIB1, DIB0,
                      DIA17, DIA16, DIA15, DIA14, DIA13, DIA12, DIA11, DIA10, DIA9, DIA8,
                      DIA7, DIA6, DIA5, DIA4, DIA3, DIA2, DIA1, DIA0};
    wire [8:0] w_addr = {ADA13, ADA12, ADA11, ADA10, ADA9, ADA8, ADA7, ADA6, ADA5};
    wire [3:0] byte_en = {ADA3, ADA2, ADA1, ADA0};
    wire [8:0] r_addr = {ADB13, ADB12, ADB11, ADB10, ADB9, ADB8, ADB7, ADB6, ADB5};
    reg [35:0] mem [0:511];
    reg [35:0] read_q, out_q;
    integer k;
    initial begin
        for (k = 0; k < 512; k = k + 1) mem[k] = 36'd0;
        read_q = 36'd0;
        out_q = 36'd0;
    end
    always @(posedge CLKA) begin
        if ({CSA2, CSA1, CSA0} != 3'b000) begin
            $display("DP16KD model: chip selects are not modelled");
            $finish;
        end
        if (CEA && WEA) begin
            for (k = 0; k < 4; k = k + 1)
                if (byte_en[k]) mem[w_addr][9 * k +: 9] <= di[9 * k +: 9];
        end
    end
    always @(posedge CLKB) begin
        if (WEB || {CSB2, CSB1, CSB0} != 3'b000 || (OUTREG && OCEA != OCEB)) begin
            $display("DP16KD model: port B must only read, with OCEA == OCEB");
            $finish;
        end
        if (RSTB) read_q <= 36'd0;
        else if (CEB) read_q <= mem[r_addr];
        if (RSTB) out_q <= 36'd0;
        else if (OCEB) out_q <= read_q;
    end
    wire [35:0] do_ = OUTREG ? out_q : read_q;
    assign {DOB17, DOB16, DOB15, DOB14, DOB13, DOB12, DOB11, DOB10, DOB9, DOB8, DOB7, DOB6,
            DOB5, DOB4, DOB3, DOB2, DOB1, DOB0,
            DOA17, DOA16, DOA15, DOA14, DOA13, DOA12, DOA11, DOA10, DOA9, DOA8, DOA7, DOA6,
            DOA5, DOA4, DOA3, DOA2, DOA1, DOA0} = do_;
endmodule
`default_nettype wire
/* verilator lint_on UNUSEDPARAM */
/* verilator lint_on UNUSEDSIGNAL */
