// npugen's behavioural model of the Lattice ECP5 MULT18X18D, for simulation only.
//
// Covers what npugen instantiates: signed or unsigned 18x18 multiply (SIGNEDA/SIGNEDB),
// SOURCEA/SOURCEB = 0 (parallel inputs), and each of the A, B, pipeline and output registers
// either bypassed ("NONE") or clocked by CLK0 with CE0 and a synchronous RST0. Any other
// setting stops the simulation instead of silently simulating something else.
// Written from the ECP5 sysDSP user guide (FPGA-TN-02205), not from vendor source.
// UNUSEDSIGNAL, UNUSEDPARAM (verilator -Wall): the model lists every pin and parameter of
// the primitive so that any instance connects; those of modes it does not model are not read.
/* verilator lint_off UNUSEDSIGNAL */
/* verilator lint_off UNUSEDPARAM */
`default_nettype none
module MULT18X18D #(
    parameter REG_INPUTA_CLK = "NONE",
    parameter REG_INPUTB_CLK = "NONE",
    parameter REG_INPUTC_CLK = "NONE",
    parameter REG_PIPELINE_CLK = "NONE",
    parameter REG_OUTPUT_CLK = "NONE",
    parameter CLK0_DIV = "ENABLED",
    parameter CLK1_DIV = "ENABLED",
    parameter CLK2_DIV = "ENABLED",
    parameter CLK3_DIV = "ENABLED",
    parameter GSR = "ENABLED",
    parameter RESETMODE = "SYNC",
    parameter SOURCEB_MODE = "B_SHIFT",
    parameter MULT_BYPASS = "DISABLED"
) (
    input wire A0, A1, A2, A3, A4, A5, A6, A7, A8, A9, A10, A11, A12, A13, A14, A15, A16, A17,
    input wire B0, B1, B2, B3, B4, B5, B6, B7, B8, B9, B10, B11, B12, B13, B14, B15, B16, B17,
    input wire SIGNEDA, SIGNEDB, SOURCEA, SOURCEB,
    input wire CLK0, CE0, RST0,
    output wire P0, P1, P2, P3, P4, P5, P6, P7, P8, P9, P10, P11, P12, P13, P14, P15, P16, P17,
    output wire P18, P19, P20, P21, P22, P23, P24, P25, P26, P27, P28, P29, P30, P31, P32,
    output wire P33, P34, P35
);
    wire [17:0] a = {A17, A16, A15, A14, A13, A12, A11, A10, A9, A8, A7, A6, A5, A4, A3, A2,
                     A1, A0};
    wire [17:0] b = {B17, B16, B15, B14, B13, B12, B11, B10, B9, B8, B7, B6, B5, B4, B3, B2,
                     B1, B0};
    initial begin
        if ((REG_INPUTA_CLK != "NONE" && REG_INPUTA_CLK != "CLK0") ||
            (REG_INPUTB_CLK != "NONE" && REG_INPUTB_CLK != "CLK0") ||
            (REG_PIPELINE_CLK != "NONE" && REG_PIPELINE_CLK != "CLK0") ||
            (REG_OUTPUT_CLK != "NONE" && REG_OUTPUT_CLK != "CLK0") ||
            MULT_BYPASS != "DISABLED") begin
            $display("MULT18X18D model: unsupported configuration");
            $finish;
        end
    end
    reg [17:0] a_q, b_q;
    reg sa_q, sb_q;
    always @(posedge CLK0) if (RST0) begin
        a_q <= 18'd0; b_q <= 18'd0; sa_q <= 1'b0; sb_q <= 1'b0;
    end else if (CE0) begin
        a_q <= a; b_q <= b; sa_q <= SIGNEDA; sb_q <= SIGNEDB;
    end
    wire [17:0] a_m = REG_INPUTA_CLK == "CLK0" ? a_q : a;
    wire sa_m = REG_INPUTA_CLK == "CLK0" ? sa_q : SIGNEDA;
    wire [17:0] b_m = REG_INPUTB_CLK == "CLK0" ? b_q : b;
    wire sb_m = REG_INPUTB_CLK == "CLK0" ? sb_q : SIGNEDB;
    wire signed [35:0] a_ext = {{18{sa_m & a_m[17]}}, a_m};
    wire signed [35:0] b_ext = {{18{sb_m & b_m[17]}}, b_m};
    wire [35:0] product = a_ext * b_ext;
    reg [35:0] pipe_q, out_q;
    always @(posedge CLK0) if (RST0) pipe_q <= 36'd0; else if (CE0) pipe_q <= product;
    wire [35:0] piped = REG_PIPELINE_CLK == "CLK0" ? pipe_q : product;
    always @(posedge CLK0) if (RST0) out_q <= 36'd0; else if (CE0) out_q <= piped;
    wire [35:0] p = REG_OUTPUT_CLK == "CLK0" ? out_q : piped;
    assign {P35, P34, P33, P32, P31, P30, P29, P28, P27, P26, P25, P24, P23, P22, P21, P20, P19,
            P18, P17, P16, P15, P14, P13, P12, P11, P10, P9, P8, P7, P6, P5, P4, P3, P2, P1,
            P0} = p;
endmodule
`default_nettype wire
/* verilator lint_on UNUSEDPARAM */
/* verilator lint_on UNUSEDSIGNAL */
